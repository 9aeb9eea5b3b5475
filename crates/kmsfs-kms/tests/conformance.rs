//! The KeyService conformance suite (src/testsuite) against the backends
//! this crate holds: the embedded store, the data key cache in front of it
//! (twice: with an age limit, on a manual clock, and with age 0, which must
//! behave exactly like the store), and — with `--features aws-kms` — AWS KMS
//! itself, played by moto (`pip install 'moto[server]'`), started here.
//!
//! The server backends (HTTP, Unix socket) run the same suite in
//! crates/kmsfs-kms-server/tests/conformance.rs.

use std::sync::Arc;

use kmsfs_kms::cache::{CacheLimits, CachingKms};
use kmsfs_kms::clock::ManualClock;
use kmsfs_kms::testsuite::{
    Capabilities, Harness, KeyAdmin, LocalStore, Outsider, StateChanges, other_uid,
};
use kmsfs_kms::{Caller, KeyService, KmsError};

/// A caller the default policy of the store's keys does not name.
fn stranger(of: &Caller) -> Caller {
    let uid = other_uid(of);
    Caller {
        uid,
        gid: uid,
        groups: vec![],
        iam_user: None,
        region: None,
    }
}

/// The embedded store, called directly.
struct Local {
    store: LocalStore,
}

fn local() -> Local {
    Local {
        store: LocalStore::new(Caller::current()).unwrap(),
    }
}

impl Harness for Local {
    fn backend(&self) -> &str {
        "local"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::FULL
    }
    fn service(&self) -> &dyn KeyService {
        self.store.kms().as_ref()
    }
    fn caller(&self) -> Caller {
        self.store.admin().clone()
    }
    fn admin(&self) -> &dyn KeyAdmin {
        &self.store
    }
    fn outsider(&self, _arn: &str) -> Result<Outsider, KmsError> {
        Ok(Outsider {
            service: self.store.kms().clone(),
            caller: stranger(self.store.admin()),
        })
    }
}

mod local_store {
    kmsfs_kms::key_service_conformance!(super::local());
}

/// `CachingKms` over the embedded store. The cache's clock is manual:
/// `settle` moves it by the age limit, the most a cached answer may be
/// served after the store changed (cache.rs), so the suite checks both the
/// stale answer inside the limit and the refusal at it.
struct Cached {
    store: LocalStore,
    cache: Arc<CachingKms>,
    clock: Arc<ManualClock>,
    max_age: i64,
    name: &'static str,
}

fn cached(name: &'static str, max_age: i64) -> Cached {
    let store = LocalStore::new(Caller::current()).unwrap();
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let limits = CacheLimits {
        max_keys: 100,
        max_age_seconds: max_age,
    };
    let cache = Arc::new(CachingKms::new(store.kms().clone(), limits, clock.clone()));
    Cached {
        store,
        cache,
        clock,
        max_age,
        name,
    }
}

impl Harness for Cached {
    fn backend(&self) -> &str {
        self.name
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            state_changes: if self.max_age > 0 {
                StateChanges::AfterSettle(
                    "cache.rs: an unwrapped data key is served for up to max_age_seconds after the service gave it, whatever became of its CMK",
                )
            } else {
                StateChanges::Immediate
            },
            ..Capabilities::FULL
        }
    }
    fn service(&self) -> &dyn KeyService {
        self.cache.as_ref()
    }
    fn caller(&self) -> Caller {
        self.store.admin().clone()
    }
    fn admin(&self) -> &dyn KeyAdmin {
        &self.store
    }
    /// Through the same cache: its entries are per caller, so what the key
    /// user unwrapped must not be served to the outsider.
    fn outsider(&self, _arn: &str) -> Result<Outsider, KmsError> {
        Ok(Outsider {
            service: self.cache.clone(),
            caller: stranger(self.store.admin()),
        })
    }
    fn settle(&self) {
        self.clock.advance(self.max_age);
    }
}

mod cache_max_age_60 {
    kmsfs_kms::key_service_conformance!(super::cached("cache(max_age=60)", 60));
}

mod cache_max_age_0 {
    kmsfs_kms::key_service_conformance!(super::cached("cache(max_age=0)", 0));
}

/// The cache's own promise, beyond the suite: one second short of the age
/// limit a disabled key's data key is still served; at the limit it is not.
#[test]
fn cache_serves_a_disabled_keys_data_key_until_exactly_max_age() {
    use kmsfs_kms::EncryptionContext;
    let h = cached("cache(max_age=60)", 60);
    let arn = h.admin().create_key().unwrap();
    let me = h.caller();
    let pair = h
        .service()
        .generate_data_key(&me, &arn, &EncryptionContext::new())
        .unwrap();
    h.admin().disable_key(&arn).unwrap();
    h.clock.advance(59);
    let d = h
        .service()
        .decrypt(&me, &pair.ciphertext_blob, &EncryptionContext::new())
        .unwrap();
    assert_eq!(d.plaintext, pair.plaintext);
    h.clock.advance(1);
    let e = h
        .service()
        .decrypt(&me, &pair.ciphertext_blob, &EncryptionContext::new())
        .unwrap_err();
    assert_eq!(e.code(), "DisabledException");
    assert_eq!(h.cache.stats().hits, 1);
}

#[cfg(feature = "aws-kms")]
mod aws {
    //! AWS KMS through the AWS SDK (`AwsKms`) against moto. Administrative
    //! steps go through the SDK too. One moto serves every test of this
    //! binary (it takes a second or two to start); each test makes its own
    //! keys. moto runs under `setpriv --pdeathsig KILL` from a thread that
    //! never ends, so it dies with this process however the process ends.

    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::OnceLock;

    use zeroize::Zeroizing;

    use kmsfs_kms::aws::AwsKms;
    use kmsfs_kms::remote::Credentials;
    use kmsfs_kms::testsuite::{Capabilities, Harness, KeyAdmin, Support};
    use kmsfs_kms::{Caller, KeyService, KmsError};

    const REGION: &str = "us-east-1";

    fn moto_url() -> &'static str {
        static URL: OnceLock<String> = OnceLock::new();
        URL.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut child = Command::new("setpriv")
                    .args([
                        "--pdeathsig",
                        "KILL",
                        "moto_server",
                        "-H",
                        "127.0.0.1",
                        "-p",
                        "0",
                    ])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("setpriv and moto_server (pip install 'moto[server]') must be on PATH");
                let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
                let url = loop {
                    let line = lines
                        .next()
                        .expect("moto_server exited before listening")
                        .unwrap();
                    if let Some(i) = line.find("http://127.0.0.1:") {
                        break line[i..].trim().to_string();
                    }
                };
                tx.send(url).unwrap();
                for _ in lines {}
                // moto is gone (it never should be before the process).
                let _ = child.wait();
                loop {
                    std::thread::park();
                }
            });
            rx.recv().expect("moto's address")
        })
    }

    fn credentials() -> Credentials {
        Credentials {
            access_key_id: "testing".into(),
            secret_access_key: Zeroizing::new("testing".into()),
            session_token: None,
        }
    }

    pub(super) struct Aws {
        kms: AwsKms,
        admin: aws_sdk_kms::Client,
        runtime: tokio::runtime::Runtime,
    }

    pub(super) fn aws() -> Aws {
        let url = moto_url();
        let kms = AwsKms::with_credentials(Some(REGION), Some(url), Some(&credentials())).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let config = runtime.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(REGION))
                .endpoint_url(url)
                .credentials_provider(aws_sdk_kms::config::Credentials::new(
                    "testing", "testing", None, None, "test",
                ))
                .load(),
        );
        Aws {
            kms,
            admin: aws_sdk_kms::Client::new(&config),
            runtime,
        }
    }

    /// The key id of an ARN. moto's DisableKey, EnableKey and
    /// ScheduleKeyDeletion look keys up by id only (an ARN is a 500 there,
    /// though AWS takes either), so the harness sends ids.
    fn key_id(arn: &str) -> &str {
        arn.rsplit_once("key/").map_or(arn, |(_, id)| id)
    }

    fn admin_error<E: std::fmt::Debug>(step: &str, e: E) -> KmsError {
        KmsError::Internal(format!("moto {step}: {e:?}"))
    }

    impl Harness for Aws {
        fn backend(&self) -> &str {
            "aws(moto)"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                kmsfs_blobs: Support::No(
                    "AWS ciphertext blobs are opaque: their key and version cannot be read or forged",
                ),
                key_versions: Support::No(
                    "AwsKms reports key version 1 always (aws.rs): AWS rotation is invisible to clients",
                ),
                versions_of_unusable_keys: Support::No(
                    "AwsKms knows a current version only for Enabled keys",
                ),
                key_states: Support::No(
                    "moto 5 does not refuse Encrypt/Decrypt/GenerateDataKey/ReEncrypt of Disabled or PendingDeletion keys (AWS KMS does)",
                ),
                pending_import: Support::No(
                    "moto 5 creates EXTERNAL-origin keys without a PendingImport state",
                ),
                key_policy: Support::No(
                    "moto 5 does not enforce key policies on cryptographic calls, and has one identity",
                ),
                ..Capabilities::FULL
            }
        }
        fn service(&self) -> &dyn KeyService {
            &self.kms
        }
        fn caller(&self) -> Caller {
            // Not sent: AWS knows the caller by its credentials.
            Caller::current()
        }
        fn admin(&self) -> &dyn KeyAdmin {
            self
        }
    }

    impl KeyAdmin for Aws {
        fn create_key(&self) -> Result<String, KmsError> {
            let out = self
                .runtime
                .block_on(
                    self.admin
                        .create_key()
                        .description("kmsfs conformance")
                        .send(),
                )
                .map_err(|e| admin_error("CreateKey", e))?;
            out.key_metadata()
                .and_then(|m| m.arn())
                .map(str::to_string)
                .ok_or_else(|| admin_error("CreateKey", "no Arn"))
        }
        fn disable_key(&self, arn: &str) -> Result<(), KmsError> {
            self.runtime
                .block_on(self.admin.disable_key().key_id(key_id(arn)).send())
                .map(drop)
                .map_err(|e| admin_error("DisableKey", e))
        }
        fn enable_key(&self, arn: &str) -> Result<(), KmsError> {
            self.runtime
                .block_on(self.admin.enable_key().key_id(key_id(arn)).send())
                .map(drop)
                .map_err(|e| admin_error("EnableKey", e))
        }
        fn schedule_key_deletion(&self, arn: &str) -> Result<(), KmsError> {
            self.runtime
                .block_on(
                    self.admin
                        .schedule_key_deletion()
                        .key_id(key_id(arn))
                        .pending_window_in_days(7)
                        .send(),
                )
                .map(drop)
                .map_err(|e| admin_error("ScheduleKeyDeletion", e))
        }
        fn rotate_key(&self, arn: &str) -> Result<(), KmsError> {
            self.runtime
                .block_on(self.admin.rotate_key_on_demand().key_id(arn).send())
                .map(drop)
                .map_err(|e| admin_error("RotateKeyOnDemand", e))
        }
    }

    mod on_moto {
        kmsfs_kms::key_service_conformance!(super::aws());
    }
}
