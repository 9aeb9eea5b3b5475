//! The KeyService conformance suite (kmsfs-kms's `testsuite` feature)
//! against the kmsfs server, in process: `serve` on a fresh store, and
//! `RemoteKms` talking to it
//! - over HTTP on 127.0.0.1:0, every request SigV4-signed with an IAM
//!   access key of the current Unix user (the outsider: "nobody"'s key);
//! - over the Unix socket (`unix:/…/kms.sock`), unsigned: the server knows
//!   the caller by SO_PEERCRED. Every key is made with the default policy,
//!   which names only the current uid, so each passing case shows that the
//!   server took the peer's uid; the outsider case narrows a key's policy
//!   to another uid and sees the same peer refused.
//!
//! Administrative steps go to the store directly (the server shares it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use kmsfs_kms::remote::{Credentials, KmsClient, RemoteKms};
use kmsfs_kms::testsuite::{
    Capabilities, Harness, KeyAdmin, LocalStore, Outsider, Support, other_uid,
};
use kmsfs_kms::{Caller, KeyService, KmsError};
use kmsfs_kms_server::{ServeOptions, serve};

enum Transport {
    Http,
    Unix,
}

struct Served {
    store: LocalStore,
    remote: Arc<RemoteKms>,
    /// Over HTTP: a client signing as "nobody" (or "daemon" when the suite
    /// runs as nobody), whom no key policy names.
    stranger: Option<Arc<RemoteKms>>,
    transport: Transport,
}

/// Starts the server on `opts` (its thread lives until the process ends;
/// its store goes with the harness) and returns what it bound.
fn start(store: &LocalStore, opts: ServeOptions) -> (Option<SocketAddr>, Option<PathBuf>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let kms = store.kms().clone();
    std::thread::spawn(move || {
        serve(kms, opts, |addr, socket| {
            let _ = tx.send((addr, socket.map(PathBuf::from)));
        })
        .expect("serve");
    });
    rx.recv().expect("the server did not start")
}

/// An IAM user for the Unix user `name`, and an access key of it.
fn access_key(store: &LocalStore, name: &str) -> Credentials {
    let (id, secret) = store
        .kms()
        .iam_update(|iam, now| {
            iam.create_user(name, now, kmsfs_kms::iam::UnixLink::IfExists)?;
            iam.create_access_key(name, now)
        })
        .unwrap();
    Credentials {
        access_key_id: id,
        secret_access_key: secret,
        session_token: None,
    }
}

fn http() -> Served {
    let store = LocalStore::new(Caller::current()).unwrap();
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .expect("the current uid has a user name (IAM users are Unix users)")
        .name;
    let mine = access_key(&store, &me);
    // Any other Unix user will do; the default policy names only `me`.
    let nobody = access_key(&store, if me == "nobody" { "daemon" } else { "nobody" });
    let (region, _) = store.kms().region_and_account().unwrap();
    let (addr, _) = start(
        &store,
        ServeOptions {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..ServeOptions::default()
        },
    );
    let url = format!("http://{}", addr.expect("a TCP address"));
    let client = |creds| RemoteKms::new(KmsClient::new(&url, Some(creds), &region).unwrap());
    Served {
        remote: Arc::new(client(mine)),
        stranger: Some(Arc::new(client(nobody))),
        store,
        transport: Transport::Http,
    }
}

fn unix() -> Served {
    let store = LocalStore::new(Caller::current()).unwrap();
    let (_, socket) = start(
        &store,
        ServeOptions {
            socket: Some(store.dir().join("kms.sock")),
            ..ServeOptions::default()
        },
    );
    let url = format!("unix:{}", socket.expect("a socket").display());
    // No credentials: nothing is signed over the socket.
    let client = KmsClient::new(&url, None, "local").unwrap();
    assert_eq!(client.url(), url);
    Served {
        remote: Arc::new(RemoteKms::new(client)),
        stranger: None,
        store,
        transport: Transport::Unix,
    }
}

impl Harness for Served {
    fn backend(&self) -> &str {
        match self.transport {
            Transport::Http => "server(http)",
            Transport::Unix => "server(unix)",
        }
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            versions_of_unusable_keys: Support::No(
                "RemoteKms learns the current version from a GenerateDataKeyWithoutPlaintext probe (remote.rs), which a key that is not Enabled refuses",
            ),
            ..Capabilities::FULL
        }
    }
    fn service(&self) -> &dyn KeyService {
        self.remote.as_ref()
    }
    fn caller(&self) -> Caller {
        // Not sent: the server knows the caller by access key or peer uid.
        self.store.admin().clone()
    }
    fn admin(&self) -> &dyn KeyAdmin {
        &self.store
    }
    fn outsider(&self, arn: &str) -> Result<Outsider, KmsError> {
        let me = self.store.admin().clone();
        match &self.stranger {
            Some(stranger) => Ok(Outsider {
                service: stranger.clone(),
                caller: Caller {
                    uid: 65534,
                    gid: 65534,
                    groups: vec![],
                    iam_user: None,
                    region: None,
                },
            }),
            None => {
                // One peer only: make it the outsider of this key.
                self.store.restrict_use(arn, &[other_uid(&me)])?;
                Ok(Outsider {
                    service: self.remote.clone(),
                    caller: me,
                })
            }
        }
    }
}

mod over_http {
    kmsfs_kms::key_service_conformance!(super::http());
}

mod over_unix_socket {
    kmsfs_kms::key_service_conformance!(super::unix());
}

/// The socket transport against the real server, outside the suite: an
/// error answer keeps its AWS exception, and a server that is gone is an
/// unreachable service, not a hang.
#[test]
fn unix_socket_transport_errors() {
    let h = unix();
    let client = KmsClient::new(
        &format!("unix:{}", h.store.dir().join("kms.sock").display()),
        None,
        "local",
    )
    .unwrap();
    let e = client
        .call("NoSuchOperation", &serde_json::json!({}))
        .unwrap_err();
    assert_eq!(e.code(), "KMSInternalException");
    assert!(e.message().contains("UnknownOperationException"), "{e}");
    let e = client
        .call("DescribeKey", &serde_json::json!({"KeyId": "alias/none"}))
        .unwrap_err();
    assert_eq!(e.code(), "NotFoundException", "{e}");
    let gone = KmsClient::new(
        &format!("unix:{}", h.store.dir().join("absent.sock").display()),
        None,
        "local",
    )
    .unwrap();
    let e = gone.call("ListKeys", &serde_json::json!({})).unwrap_err();
    assert_eq!(e.code(), "KMSInternalException");
    assert!(e.message().contains("cannot reach"), "{e}");
}
