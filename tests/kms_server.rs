//! `kmsfs kms serve` end to end: the real AWS CLI (`pip install awscli`)
//! against the server on a random loopback port; IAM users, groups and
//! access keys; SigV4 refusals; the Unix socket; bad input; `kmsfs kms
//! --endpoint-url`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::kms_server::{AccessKey as Key, KmsServer as Server, stderr};

use kmsfs_kms::policy::{ADMIN_ACTIONS, USER_ACTIONS};
use kmsfs_kms::sigv4;

const BIN: &str = env!("CARGO_BIN_EXE_kmsfs");

/// One HTTP exchange on a fresh connection; (status, JSON body).
fn raw_exchange(stream: &mut dyn ReadWrite, request: &[u8]) -> (u16, Value) {
    stream.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A request, signed (if `key`) as of `when`, with `Connection: close`.
fn request(
    port: u16,
    key: Option<&Key>,
    target: &str,
    body: &[u8],
    when: i64,
    region: &str,
) -> Vec<u8> {
    let host = format!("127.0.0.1:{port}");
    let base = vec![
        (
            "Content-Type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        ("X-Amz-Target".to_string(), target.to_string()),
    ];
    let signed = key.map_or_else(Vec::new, |k| {
        sigv4::sign_post(
            &k.id, &k.secret, None, region, "kms", &host, "/", &base, body, when,
        )
    });
    let mut out = format!("POST / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (n, v) in base.iter().chain(signed.iter()) {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn send(port: u16, req: &[u8]) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    raw_exchange(&mut s, req)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    std::fs::write(dir.join(name), bytes).unwrap();
    format!("fileb://{}", dir.join(name).display())
}

#[test]
fn lab_commands_through_the_real_aws_cli() {
    let s = Server::start();
    let root = s.user_with_key("root");
    let meta = s.aws_json(&root, &["kms", "create-key", "--description", "lab key"]);
    let key_id = meta["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    let arn = meta["KeyMetadata"]["Arn"].as_str().unwrap().to_string();
    assert_eq!(arn, format!("arn:aws:kms:local:000000000000:key/{key_id}"));
    assert_eq!(meta["KeyMetadata"]["KeyState"], "Enabled");
    assert!(meta["KeyMetadata"]["CreationDate"].is_number());
    s.aws_ok(
        &root,
        &[
            "kms",
            "create-alias",
            "--alias-name",
            "alias/demo",
            "--target-key-id",
            &key_id,
        ],
    );

    let secret = b"the lab's secret text\n";
    let plain_arg = write(s.dir.path(), "secret.txt", secret);
    let b64 = s.aws_ok(
        &root,
        &[
            "kms",
            "encrypt",
            "--key-id",
            "alias/demo",
            "--plaintext",
            &plain_arg,
            "--output",
            "text",
            "--query",
            "CiphertextBlob",
        ],
    );
    use base64::Engine;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    let blob_arg = write(s.dir.path(), "secret.enc", &blob);
    let back = s.aws_ok(
        &root,
        &[
            "kms",
            "decrypt",
            "--ciphertext-blob",
            &blob_arg,
            "--output",
            "text",
            "--query",
            "Plaintext",
        ],
    );
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(back.trim())
            .unwrap(),
        secret
    );
    let decrypted = s.aws_json(&root, &["kms", "decrypt", "--ciphertext-blob", &blob_arg]);
    assert_eq!(decrypted["KeyId"], arn.as_str());
    assert_eq!(decrypted["EncryptionAlgorithm"], "SYMMETRIC_DEFAULT");

    // A second key; re-encrypt moves the blob to it.
    let other = s.aws_json(&root, &["kms", "create-key"])["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    let re = s.aws_json(
        &root,
        &[
            "kms",
            "re-encrypt",
            "--ciphertext-blob",
            &blob_arg,
            "--destination-key-id",
            &other,
        ],
    );
    assert_eq!(re["SourceKeyId"], arn.as_str());
    assert_eq!(re["KeyId"], other.as_str());

    s.aws_ok(&root, &["kms", "enable-key-rotation", "--key-id", &key_id]);
    let status = s.aws_json(
        &root,
        &["kms", "get-key-rotation-status", "--key-id", &key_id],
    );
    assert_eq!(status["KeyRotationEnabled"], true);
    let described = s.aws_json(&root, &["kms", "describe-key", "--key-id", "alias/demo"]);
    assert_eq!(described["KeyMetadata"]["Arn"], arn.as_str());
    let aliases = s.aws_json(&root, &["kms", "list-aliases"]);
    assert_eq!(aliases["Aliases"][0]["AliasName"], "alias/demo");
    let dk = s.aws_json(
        &root,
        &[
            "kms",
            "generate-data-key",
            "--key-id",
            "alias/demo",
            "--key-spec",
            "AES_256",
        ],
    );
    assert_eq!(dk["Plaintext"].as_str().unwrap().len(), 44);

    let sched = s.aws_json(
        &root,
        &[
            "kms",
            "schedule-key-deletion",
            "--key-id",
            &key_id,
            "--pending-window-in-days",
            "7",
        ],
    );
    assert_eq!(sched["KeyState"], "PendingDeletion");
    assert_eq!(sched["PendingWindowInDays"], 7);
    // State refusals come back with their AWS names.
    let err = s.aws_err(
        &root,
        &[
            "kms",
            "encrypt",
            "--key-id",
            &key_id,
            "--plaintext",
            &plain_arg,
        ],
    );
    assert!(err.contains("(KMSInvalidStateException)"), "{err}");
    let err = s.aws_err(&root, &["kms", "describe-key", "--key-id", "alias/none"]);
    assert!(err.contains("(NotFoundException)"), "{err}");
    s.aws_ok(&root, &["kms", "cancel-key-deletion", "--key-id", &key_id]);
    let err = s.aws_err(
        &root,
        &[
            "kms",
            "encrypt",
            "--key-id",
            &key_id,
            "--plaintext",
            &plain_arg,
        ],
    );
    assert!(err.contains("(DisabledException)"), "{err}");

    // The same through `kmsfs kms --endpoint-url`, with the AWS CLI's flag.
    let out = Command::new(BIN)
        .args([
            "kms",
            "--endpoint-url",
            &s.url(),
            "encrypt",
            "--key-id",
            &other,
        ])
        .args([
            "--plaintext",
            &plain_arg,
            "--output",
            "text",
            "--query",
            "KeyId",
        ])
        .env("AWS_ACCESS_KEY_ID", &root.id)
        .env("AWS_SECRET_ACCESS_KEY", &root.secret)
        .env("AWS_REGION", "local")
        .env("KMSFS_KEYSTORE", s.dir.path().join("elsewhere/none"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), other);
    assert!(!s.dir.path().join("elsewhere").exists());
    let out = Command::new(BIN)
        .args(["kms", "--endpoint-url", &s.url(), "list-keys"])
        .env("AWS_ACCESS_KEY_ID", &root.id)
        .env("AWS_SECRET_ACCESS_KEY", "wrong")
        .env("AWS_REGION", "local")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(254));
    assert!(
        stderr(&out).contains("InvalidSignatureException"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn sigv4_refusals() {
    let s = Server::start();
    let root = s.user_with_key("root");
    let list = |key: &Key| s.aws(key, &["kms", "list-keys"]);
    assert!(list(&root).status.success());

    let wrong_secret = Key {
        id: root.id.clone(),
        secret: "x".repeat(40),
    };
    let err = s.aws_err(&wrong_secret, &["kms", "list-keys"]);
    assert!(err.contains("(InvalidSignatureException)"), "{err}");
    let unknown = Key {
        id: "AKIAUNKNOWNUNKNOWN00".into(),
        secret: root.secret.clone(),
    };
    let err = s.aws_err(&unknown, &["kms", "list-keys"]);
    assert!(err.contains("(UnrecognizedClientException)"), "{err}");

    // The same state change twice inside the signature window is served
    // twice, as at AWS (the AWS CLI signs no nonce): disable, enable,
    // disable with the very same bytes.
    let key_id = s.aws_json(&root, &["kms", "create-key"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"KeyId": key_id}).to_string();
    let req = request(
        s.port,
        Some(&root),
        "TrentService.DisableKey",
        body.as_bytes(),
        now(),
        "local",
    );
    let state = || {
        s.aws_json(&root, &["kms", "describe-key", "--key-id", &key_id])["KeyMetadata"]["KeyState"]
            .clone()
    };
    assert_eq!(send(s.port, &req).0, 200);
    assert_eq!(state(), "Disabled");
    s.aws_ok(&root, &["kms", "enable-key", "--key-id", &key_id]);
    assert_eq!(state(), "Enabled");
    assert_eq!(send(s.port, &req).0, 200);
    assert_eq!(state(), "Disabled");

    // What steers a request must be signed: an X-Amz-Target added after
    // signing is refused, though the signature over the rest matches.
    let unsigned_target = {
        let host = format!("127.0.0.1:{}", s.port);
        let base = vec![(
            "Content-Type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        )];
        let signed = sigv4::sign_post(
            &root.id,
            &root.secret,
            None,
            "local",
            "kms",
            &host,
            "/",
            &base,
            b"{}",
            now(),
        );
        let mut out = format!(
            "POST / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nX-Amz-Target: TrentService.ListKeys\r\n"
        );
        for (n, v) in base.iter().chain(signed.iter()) {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str("Content-Length: 2\r\n\r\n{}");
        out.into_bytes()
    };
    let (status, body) = send(s.port, &unsigned_target);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["__type"], "IncompleteSignatureException", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("x-amz-target"),
        "{body}"
    );

    // Clock skew beyond 5 minutes, either way.
    for skew in [-400, 400] {
        let req = request(
            s.port,
            Some(&root),
            "TrentService.ListKeys",
            b"{}",
            now() + skew,
            "local",
        );
        let (status, body) = send(s.port, &req);
        assert_eq!(status, 400);
        assert_eq!(body["__type"], "InvalidSignatureException", "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("Signature expired")
        );
    }
    // Within the skew: fine.
    let req = request(
        s.port,
        Some(&root),
        "TrentService.ListKeys",
        b"{}",
        now() - 120,
        "local",
    );
    assert_eq!(send(s.port, &req).0, 200);

    // Unsigned, badly signed header, wrong region.
    let (status, body) = send(
        s.port,
        &request(s.port, None, "TrentService.ListKeys", b"{}", 0, ""),
    );
    assert_eq!(status, 400);
    assert_eq!(body["__type"], "MissingAuthenticationTokenException");
    let mut bad = request(
        s.port,
        Some(&root),
        "TrentService.ListKeys",
        b"{}",
        now(),
        "local",
    );
    let text = String::from_utf8(bad.clone()).unwrap();
    bad = text.replace("SignedHeaders=", "SignedHeadrs=").into_bytes();
    let (_, body) = send(s.port, &bad);
    assert_eq!(body["__type"], "IncompleteSignatureException");
    // Another region is served, and holds none of this region's keys.
    let (status, body) = send(
        s.port,
        &request(
            s.port,
            Some(&root),
            "TrentService.ListKeys",
            b"{}",
            now(),
            "us-east-1",
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Keys"], json!([]), "{body}");

    // A tampered body no longer matches its signature.
    let req = request(
        s.port,
        Some(&root),
        "TrentService.ListKeys",
        b"{}",
        now(),
        "local",
    );
    let mut tampered = req.clone();
    let n = tampered.len();
    tampered[n - 2..].copy_from_slice(b" }"[..2].as_ref());
    let (_, body) = send(s.port, &tampered);
    assert_eq!(body["__type"], "InvalidSignatureException");

    // A deactivated key stops working.
    s.kmsfs_json(&["iam", "list-access-keys", "--user-name", "root"]);
    let out = s.kmsfs(&[
        "iam",
        "update-access-key",
        "--access-key-id",
        &root.id,
        "--status",
        "Inactive",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = s.aws_err(&root, &["kms", "list-keys"]);
    assert!(err.contains("(UnrecognizedClientException)"), "{err}");
}

/// The seed's steps: a group with administrative rights over a key but not
/// usage, and another user with usage but not administration.
#[test]
fn iam_groups_administer_users_use() {
    let s = Server::start();
    let root = s.user_with_key("root");
    // Unix users that exist on any Debian system stand for the people.
    let admin = s.user_with_key("daemon");
    let user = s.user_with_key("bin");
    s.kmsfs_json(&["iam", "create-group", "--group-name", "KMSAdmins"]);
    let out = s.kmsfs(&[
        "iam",
        "add-user-to-group",
        "--group-name",
        "KMSAdmins",
        "--user-name",
        "daemon",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let users = s.kmsfs_json(&["iam", "list-users", "--query", "Users[].UserName"]);
    assert_eq!(users, json!(["bin", "daemon", "root"]));
    let group = s.kmsfs_json(&["iam", "get-group", "--group-name", "KMSAdmins"]);
    assert_eq!(group["Users"][0]["UserName"], "daemon");

    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Enable root", "Effect": "Allow", "Principal": {"User": ["root"]},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "Allow administration of the key", "Effect": "Allow",
             "Principal": {"Group": ["KMSAdmins"]}, "Action": ADMIN_ACTIONS, "Resource": "*"},
            {"Sid": "Allow use of the key", "Effect": "Allow",
             "Principal": {"User": ["bin"]}, "Action": USER_ACTIONS, "Resource": "*"}
        ]
    })
    .to_string();
    let key_id =
        s.aws_json(&root, &["kms", "create-key", "--policy", &policy])["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_string();
    let plain = write(s.dir.path(), "p.txt", b"payroll");

    // The administrator manages but cannot use.
    s.aws_ok(&admin, &["kms", "disable-key", "--key-id", &key_id]);
    s.aws_ok(&admin, &["kms", "enable-key", "--key-id", &key_id]);
    s.aws_ok(&admin, &["kms", "enable-key-rotation", "--key-id", &key_id]);
    let err = s.aws_err(
        &admin,
        &["kms", "encrypt", "--key-id", &key_id, "--plaintext", &plain],
    );
    assert!(err.contains("(AccessDeniedException)"), "{err}");
    assert!(err.contains("kms:Encrypt"), "{err}");

    // The user uses but cannot manage.
    let blob = s.aws_ok(
        &user,
        &[
            "kms",
            "encrypt",
            "--key-id",
            &key_id,
            "--plaintext",
            &plain,
            "--output",
            "text",
            "--query",
            "CiphertextBlob",
        ],
    );
    use base64::Engine;
    let blob_arg = write(
        s.dir.path(),
        "p.enc",
        &base64::engine::general_purpose::STANDARD
            .decode(blob.trim())
            .unwrap(),
    );
    s.aws_ok(&user, &["kms", "decrypt", "--ciphertext-blob", &blob_arg]);
    let err = s.aws_err(&user, &["kms", "disable-key", "--key-id", &key_id]);
    assert!(err.contains("(AccessDeniedException)"), "{err}");
    assert!(err.contains("kms:DisableKey"), "{err}");
    let err = s.aws_err(
        &user,
        &["kms", "schedule-key-deletion", "--key-id", &key_id],
    );
    assert!(err.contains("kms:ScheduleKeyDeletion"), "{err}");
    let err = s.aws_err(&admin, &["kms", "decrypt", "--ciphertext-blob", &blob_arg]);
    assert!(err.contains("kms:Decrypt"), "{err}");

    // Leaving the group takes the rights away.
    let out = s.kmsfs(&[
        "iam",
        "remove-user-from-group",
        "--group-name",
        "KMSAdmins",
        "--user-name",
        "daemon",
    ]);
    assert!(out.status.success());
    let err = s.aws_err(&admin, &["kms", "disable-key", "--key-id", &key_id]);
    assert!(err.contains("kms:DisableKey"), "{err}");

    // IAM housekeeping refusals.
    let out = s.kmsfs(&["iam", "delete-user", "--user-name", "bin"]);
    assert_eq!(out.status.code(), Some(254));
    let out = s.kmsfs(&["iam", "create-user", "--user-name", "bin"]);
    assert_eq!(out.status.code(), Some(254));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    let keys = s.kmsfs_json(&["iam", "list-access-keys", "--user-name", "bin"]);
    assert!(
        keys["AccessKeyMetadata"][0]
            .get("SecretAccessKey")
            .is_none()
    );
    let out = s.kmsfs(&["iam", "delete-access-key", "--access-key-id", &user.id]);
    assert!(out.status.success());
    let out = s.kmsfs(&["iam", "delete-user", "--user-name", "bin"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn unix_socket_caller_is_the_peer() {
    let s = Server::start();
    let over_socket = |target: &str, body: &str| {
        let mut sock = std::os::unix::net::UnixStream::connect(&s.socket).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let req = format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: {target}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        raw_exchange(&mut sock, req.as_bytes())
    };
    let (status, created) = over_socket("TrentService.CreateKey", "{}");
    assert_eq!(status, 200, "{created}");
    let key_id = created["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    // The creator (uid 0, this test) owns it by the default policy.
    let policy = over_socket(
        "TrentService.GetKeyPolicy",
        &json!({"KeyId": key_id}).to_string(),
    )
    .1;
    assert!(
        policy["Policy"].as_str().unwrap().contains("\"0\""),
        "{policy}"
    );
    let mode = std::fs::metadata(&s.socket).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o666
    );
}

/// One request over the Unix socket made by a process running as `uid`
/// with no supplementary groups (perl, so no interpreter under root's home
/// is needed); (status, body).
fn over_socket_as(socket: &Path, uid: u32, target: &str, body: &str) -> (u16, Value) {
    const CLIENT: &str = r#"use IO::Socket::UNIX;
my ($path, $target, $body) = @ARGV;
my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $path) or die "connect: $!";
print $s "POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: $target\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
local $/; print <$s>;"#;
    let out = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .args(["--clear-groups", "perl", "-e", CLIENT])
        .arg(socket)
        .args([target, body])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let (_, body) = text.split_once("\r\n\r\n").unwrap_or(("", ""));
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

// The account-level operations (CreateKey, ListKeys, GenerateRandom, …)
// name no key, so no key policy speaks for them: a local user on the 0666
// socket needs what an IAM user needs at AWS, an identity policy.
#[test]
fn an_unprivileged_local_user_cannot_create_keys_without_an_identity_policy() {
    use std::os::unix::fs::PermissionsExt;
    let s = Server::start();
    // Let uid 1 (`daemon`) reach the socket in the server's directory.
    let dir = s.socket.parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    const DAEMON: u32 = 1;
    let keys_before = s.kmsfs_json(&["kms", "list-keys"])["Keys"]
        .as_array()
        .unwrap()
        .len();
    for (target, body) in [
        ("TrentService.CreateKey", "{}"),
        ("TrentService.ListKeys", "{}"),
        ("TrentService.GenerateRandom", r#"{"NumberOfBytes": 8}"#),
    ] {
        let (status, err) = over_socket_as(&s.socket, DAEMON, target, body);
        assert_eq!(status, 400, "{target}: {err}");
        assert_eq!(err["__type"], "AccessDeniedException", "{target}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(
                "User: arn:aws:iam::000000000000:user/daemon is not authorized to perform: kms:"
            ),
            "{err}"
        );
    }
    let keys = s.kmsfs_json(&["kms", "list-keys"])["Keys"].clone();
    assert_eq!(keys.as_array().unwrap().len(), keys_before, "{keys}");

    // What an administrator does at AWS: an IAM user with a policy.
    s.kmsfs_json(&["iam", "create-user", "--user-name", "daemon"]);
    let put_policy = |name: &str, statement: &str| {
        let document = format!(r#"{{"Statement": [{statement}]}}"#);
        let mut args = vec!["iam", "put-user-policy", "--user-name", "daemon"];
        args.extend(["--policy-name", name, "--policy-document", &document]);
        let out = s.kmsfs(&args);
        assert!(out.status.success(), "{}", stderr(&out));
    };
    put_policy(
        "make-keys",
        r#"{"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*"}"#,
    );
    let (status, created) = over_socket_as(&s.socket, DAEMON, "TrentService.CreateKey", "{}");
    assert_eq!(status, 200, "{created}");
    let key_id = created["KeyMetadata"]["KeyId"].as_str().unwrap();
    // The creator administers what it made (the default key policy), yet
    // listing the account's keys is still not its to do.
    let (status, described) = over_socket_as(
        &s.socket,
        DAEMON,
        "TrentService.DescribeKey",
        &json!({"KeyId": key_id}).to_string(),
    );
    assert_eq!(status, 200, "{described}");
    let (status, err) = over_socket_as(&s.socket, DAEMON, "TrentService.ListKeys", "{}");
    assert_eq!(
        (status, &err["__type"]),
        (400, &json!("AccessDeniedException"))
    );
    // An explicit Deny wins over the Allow, and says so.
    put_policy(
        "no-more",
        r#"{"Effect": "Deny", "Action": "kms:Create*", "Resource": "*"}"#,
    );
    let (status, err) = over_socket_as(&s.socket, DAEMON, "TrentService.CreateKey", "{}");
    assert_eq!(status, 400, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("explicit deny"),
        "{err}"
    );
}

// A key service for many hosts names its principals itself: an IAM user
// needs no Unix account on the server, acts as no uid, and is named by its
// ARN in policies, grants and the audit log.
#[test]
fn iam_user_names_need_no_unix_account() {
    let s = Server::start();
    const APP: &str = "fleet-app-7";
    assert!(nix::unistd::User::from_name(APP).unwrap().is_none());
    let app = s.user_with_key(APP);
    let peer = s.user_with_key("fleet-app-8");
    let arn = format!("arn:aws:iam::000000000000:user/{APP}");
    let users = s.kmsfs_json(&["iam", "list-users"]);
    assert!(users.to_string().contains(&arn), "{users}");

    // Account-level permission as for anyone, then its own key.
    let err = s.aws_err(&app, &["kms", "create-key"]);
    assert!(
        err.contains("AccessDeniedException") && err.contains(&arn),
        "{err}"
    );
    let out = s.kmsfs(&[
        "iam",
        "put-user-policy",
        "--user-name",
        APP,
        "--policy-name",
        "make-keys",
        "--policy-document",
        r#"{"Statement": [{"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*"}]}"#,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let key = s.aws_json(&app, &["kms", "create-key"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    // The default policy names the creator by ARN: it has no uid.
    let policy = s.aws_json(&app, &["kms", "get-key-policy", "--key-id", &key]);
    let policy: Value = serde_json::from_str(policy["Policy"].as_str().unwrap()).unwrap();
    assert_eq!(
        policy["Statement"][0]["Principal"],
        json!({"AWS": [arn.clone()]})
    );
    let b64 = s.aws_json(
        &app,
        &["kms", "encrypt", "--key-id", &key, "--plaintext", "hi"],
    )["CiphertextBlob"]
        .as_str()
        .unwrap()
        .to_string();
    use base64::Engine;
    let blob = write(
        s.dir.path(),
        "app.enc",
        &base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    );
    let decrypts = |who: &Key| {
        let out = s.aws_json(who, &["kms", "decrypt", "--ciphertext-blob", &blob]);
        out["Plaintext"] == "aGk="
    };
    assert!(decrypts(&app));
    // Another IAM-only user is a stranger to it, until granted by ARN.
    let err = s.aws_err(&peer, &["kms", "decrypt", "--ciphertext-blob", &blob]);
    assert!(
        err.contains("AccessDeniedException")
            && err.contains("User arn:aws:iam::000000000000:user/fleet-app-8 is not authorized"),
        "{err}"
    );
    s.aws_json(
        &app,
        &[
            "kms",
            "create-grant",
            "--key-id",
            &key,
            "--grantee-principal",
            "arn:aws:iam::000000000000:user/fleet-app-8",
            "--operations",
            "Decrypt",
        ],
    );
    assert!(decrypts(&peer));

    // A name a Unix account has, made IAM-only: the signed requests do not
    // act as that uid (daemon, uid 1), and that account gains nothing of it.
    let out = s.kmsfs(&[
        "iam",
        "create-user",
        "--user-name",
        "daemon",
        "--no-unix-user",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let daemon = s.kmsfs_json(&["iam", "create-access-key", "--user-name", "daemon"]);
    let daemon = Key {
        id: daemon["AccessKey"]["AccessKeyId"].as_str().unwrap().into(),
        secret: daemon["AccessKey"]["SecretAccessKey"]
            .as_str()
            .unwrap()
            .into(),
    };
    let root = s.user_with_key("root");
    let uid_key = s.aws_json(
        &root,
        &[
            "kms",
            "create-key",
            "--policy",
            r#"{"Statement": [{"Effect": "Allow", "Principal": {"User": ["0"]}, "Action": "kms:*", "Resource": "*"},
                              {"Effect": "Allow", "Principal": {"User": ["1"]}, "Action": "kms:DescribeKey", "Resource": "*"}]}"#,
        ],
    )["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let err = s.aws_err(&daemon, &["kms", "describe-key", "--key-id", &uid_key]);
    assert!(err.contains("AccessDeniedException"), "{err}");

    // The audit log names the IAM principal by ARN and gives it no uid.
    let audit = std::fs::read_to_string(format!("{}.audit.log", s.store.display())).unwrap();
    let mine: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["callerArn"] == json!(arn))
        .collect();
    assert!(
        mine.iter()
            .any(|e| e["eventName"] == "CreateKey" && e["outcome"] == "Success")
    );
    assert!(
        mine.iter().all(|e| e.get("callerUid").is_none()),
        "{mine:?}"
    );
}

// Quotas as AWS KMS has them: a request rate per principal
// (ThrottlingException, each principal its own bucket) and a number of keys
// per region (LimitExceededException).
#[test]
fn per_principal_rate_limits_and_the_key_quota() {
    let s = Server::start_with(
        &["--requests-per-second", "5", "--key-quota", "3"],
        &[("AWS_REGION", "local")],
    );
    let root = s.user_with_key("root");
    let bin = s.user_with_key("bin");
    let call = |key: &Key, target: &str| {
        send(
            s.port,
            &request(s.port, Some(key), target, b"{}", now(), "local"),
        )
    };
    // 30 requests at once from 10 threads: well within one second however
    // slow the machine.
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..10)
            .map(|_| {
                scope.spawn(|| {
                    (0..3)
                        .map(|_| call(&root, "TrentService.ListKeys"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    let served = answers.iter().filter(|(status, _)| *status == 200).count();
    let throttled: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status != 200)
        .map(|(_, body)| body)
        .collect();
    assert!(served >= 5, "a burst of one second's worth: {answers:?}");
    assert!(throttled.len() >= 10, "{answers:?}");
    for body in &throttled {
        assert_eq!(body["__type"], "ThrottlingException", "{body}");
    }
    // Another principal has its own bucket: served (and refused for what
    // it may not do, not for root's rate).
    let (status, body) = call(&bin, "TrentService.ListKeys");
    assert_eq!(
        (status, &body["__type"]),
        (400, &json!("AccessDeniedException"))
    );

    std::thread::sleep(Duration::from_millis(1200));
    for _ in 0..3 {
        let (status, body) = call(&root, "TrentService.CreateKey");
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = call(&root, "TrentService.CreateKey");
    assert_eq!(
        (status, &body["__type"]),
        (400, &json!("LimitExceededException")),
        "{body}"
    );
    std::thread::sleep(Duration::from_millis(1200));
    let (status, listed) = call(&root, "TrentService.ListKeys");
    assert_eq!(status, 200);
    assert_eq!(listed["Keys"].as_array().unwrap().len(), 3, "{listed}");
}

#[test]
fn bad_input_does_not_hurt_the_server() {
    let s = Server::start_with(
        &["--read-timeout", "1", "--max-body", "4096"],
        &[("AWS_REGION", "local")],
    );
    let root = s.user_with_key("root");
    let signed = |target: &str, body: &[u8]| {
        send(
            s.port,
            &request(s.port, Some(&root), target, body, now(), "local"),
        )
    };
    let (status, body) = signed("TrentService.ListKeys", b"{not json");
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("SerializationException"))
    );
    let (status, body) = signed("TrentService.ListKeys", b"[1,2]");
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("SerializationException"))
    );
    let (status, body) = signed("TrentService.LaunchRockets", b"{}");
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("UnknownOperationException"))
    );
    let (status, body) = signed("TrentService.Encrypt", br#"{"KeyId": 5}"#);
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("ValidationException"))
    );
    // Oversized: refused by its Content-Length, before reading it.
    let big = vec![b' '; 100_000];
    let (status, body) = signed("TrentService.ListKeys", &big);
    assert_eq!(status, 413, "{body}");
    // Not POST /.
    let (status, _) = send(
        s.port,
        format!(
            "GET /x HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            s.port
        )
        .as_bytes(),
    );
    assert_eq!(status, 404);
    // Garbage instead of HTTP: the connection is dropped, the server lives.
    {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.write_all(b"\x00\x01\x02 not http at all\r\n\r\n")
            .unwrap();
        let mut buf = Vec::new();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = c.read_to_end(&mut buf);
    }
    // Slowloris: half a header, then silence. The server hangs up after
    // its read timeout (1 s here) and keeps serving others meanwhile.
    let started = Instant::now();
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
            c.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            c
        })
        .collect();
    assert_eq!(signed("TrentService.ListKeys", b"{}").0, 200);
    for c in &mut slow {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    // A body that never finishes arriving.
    {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nX-Amz-Target: TrentService.ListKeys\r\n\r\n{",
        )
        .unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (status, body) = raw_exchange(&mut c, b"");
        assert_eq!(status, 408, "{body}");
    }
    // Many clients at once.
    let port = s.port;
    let threads: Vec<_> = (0..32)
        .map(|i| {
            let key = Key {
                id: root.id.clone(),
                secret: root.secret.clone(),
            };
            std::thread::spawn(move || {
                // Limit is 1..=1000.
                let body = format!("{{\"Limit\": {}}}", i + 1);
                send(
                    port,
                    &request(
                        port,
                        Some(&key),
                        "TrentService.ListKeys",
                        body.as_bytes(),
                        now(),
                        "local",
                    ),
                )
                .0
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert_eq!(signed("TrentService.ListKeys", b"{}").0, 200);
    // The operations were audited.
    let audit = std::fs::read_to_string(
        std::fs::read_dir(s.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains("audit"))
            .expect("an audit log beside the store"),
    )
    .unwrap();
    assert!(audit.contains("ListKeys"));
}

/// A volume whose key service is the kmsfs server: init, mount, write,
/// remount, read back, rotate; the store stays with the server.
#[test]
fn volume_on_the_kmsfs_server() {
    let s = Server::start();
    let root = s.user_with_key("root");
    let backing = s.dir.path().join("backing");
    let mnt = s.dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let log = s.dir.path().join("mount.log");
    let client = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &root.id)
            .env("AWS_SECRET_ACCESS_KEY", &root.secret)
            .env("AWS_REGION", "local")
            // No embedded store on this side: everything goes to the server.
            .env("KMSFS_KEYSTORE", s.dir.path().join("client/none"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| {
        let out = client(args);
        assert!(
            out.status.success(),
            "kmsfs {args:?}: {}\nmount log: {}",
            stderr(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (b, m, l) = (
        backing.to_str().unwrap(),
        mnt.to_str().unwrap(),
        log.to_str().unwrap(),
    );
    ok(&[
        "init",
        "--endpoint-url",
        &s.url(),
        "--cache-max-age",
        "30",
        b,
    ]);
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(backing.join(".kmsfs.volume.json")).unwrap())
            .unwrap();
    assert_eq!(config["key_service"]["type"], "endpoint");
    assert_eq!(config["key_service"]["url"], format!("{}/", s.url()));
    assert_eq!(config["key_service"]["cache_max_age_seconds"], 30);
    let arn = config["key_id"].as_str().unwrap().to_string();
    // The default key was made at the server.
    let described = s.aws_json(
        &root,
        &["kms", "describe-key", "--key-id", "alias/kmsfs/default"],
    );
    assert_eq!(described["KeyMetadata"]["Arn"], arn.as_str());

    ok(&["mount", b, m, "--log-file", l]);
    let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    for i in 0..5 {
        std::fs::write(mnt.join(format!("f{i}")), &data).unwrap();
    }
    ok(&["umount", m]);
    assert!(common::wait_unmounted(&mnt, Duration::from_secs(10)));
    ok(&["mount", b, m, "--log-file", l]);
    for i in 0..5 {
        assert_eq!(std::fs::read(mnt.join(format!("f{i}"))).unwrap(), data);
    }
    ok(&["umount", m]);
    assert!(common::wait_unmounted(&mnt, Duration::from_secs(10)));

    // Rotate the CMK at the server; `kmsfs rotate` re-wraps every file.
    let key_id = described["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    s.aws_ok(&root, &["kms", "rotate-key-on-demand", "--key-id", &key_id]);
    ok(&["rotate", b]);
    let status = ok(&["status", b, "--json"]);
    assert!(status.contains(&arn), "{status}");
    ok(&["mount", b, m, "--log-file", l]);
    assert_eq!(std::fs::read(mnt.join("f3")).unwrap(), data);
    ok(&["umount", m]);
    assert!(common::wait_unmounted(&mnt, Duration::from_secs(10)));

    // A key disabled at the server: a new mount is refused (as attaching
    // an EBS volume is): its name key no longer unwraps.
    s.aws_ok(&root, &["kms", "disable-key", "--key-id", &key_id]);
    let out = client(&["mount", b, m, "--log-file", l]);
    assert!(!out.status.success(), "mounted with a disabled key");
    assert!(
        stderr(&out).contains("DisabledException"),
        "{}",
        stderr(&out)
    );
    assert!(!common::is_mounted(&mnt));

    // The server did the key work, as the access key's user (uid 0).
    let audit = std::fs::read_to_string(format!("{}.audit.log", s.store.display())).unwrap();
    assert!(
        audit.contains("\"eventName\":\"GenerateDataKey\""),
        "{audit}"
    );
    assert!(audit.contains("\"eventName\":\"ReEncrypt\""), "{audit}");
    assert!(!s.dir.path().join("client").exists());
}

/// Each key-state and input refusal, as the AWS CLI reports it.
#[test]
fn state_refusals_through_the_aws_cli() {
    let s = Server::start();
    let root = s.user_with_key("root");
    let create = |args: &[&str]| {
        let mut all = vec!["kms", "create-key"];
        all.extend_from_slice(args);
        s.aws_json(&root, &all)["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let a = create(&[]);
    let b = create(&[]);
    let plain = write(s.dir.path(), "p", b"state");
    let blob_b64 = s.aws_ok(
        &root,
        &[
            "kms",
            "encrypt",
            "--key-id",
            &a,
            "--plaintext",
            &plain,
            "--output",
            "text",
            "--query",
            "CiphertextBlob",
        ],
    );
    use base64::Engine;
    let mut blob = base64::engine::general_purpose::STANDARD
        .decode(blob_b64.trim())
        .unwrap();
    let blob_arg = write(s.dir.path(), "c", &blob);
    let expect = |args: &[&str], code: &str| {
        let err = s.aws_err(&root, args);
        assert!(err.contains(&format!("({code})")), "{args:?}: {err}");
    };
    // Decrypt naming another key; a tampered blob; a wrong context.
    expect(
        &[
            "kms",
            "decrypt",
            "--ciphertext-blob",
            &blob_arg,
            "--key-id",
            &b,
        ],
        "IncorrectKeyException",
    );
    let n = blob.len();
    blob[n - 1] ^= 1;
    let bad_arg = write(s.dir.path(), "bad", &blob);
    expect(
        &["kms", "decrypt", "--ciphertext-blob", &bad_arg],
        "InvalidCiphertextException",
    );
    expect(
        &[
            "kms",
            "decrypt",
            "--ciphertext-blob",
            &blob_arg,
            "--encryption-context",
            "k=v",
        ],
        "InvalidCiphertextException",
    );
    // Aliases.
    s.aws_ok(
        &root,
        &[
            "kms",
            "create-alias",
            "--alias-name",
            "alias/x",
            "--target-key-id",
            &a,
        ],
    );
    expect(
        &[
            "kms",
            "create-alias",
            "--alias-name",
            "alias/x",
            "--target-key-id",
            &b,
        ],
        "AlreadyExistsException",
    );
    let err = s.aws_err(
        &root,
        &[
            "kms",
            "create-alias",
            "--alias-name",
            "alias/aws/x",
            "--target-key-id",
            &b,
        ],
    );
    assert!(err.contains("(InvalidAliasNameException)"), "{err}");
    // Disabled, then pending deletion.
    s.aws_ok(&root, &["kms", "disable-key", "--key-id", &a]);
    expect(
        &["kms", "encrypt", "--key-id", &a, "--plaintext", &plain],
        "DisabledException",
    );
    expect(
        &["kms", "decrypt", "--ciphertext-blob", &blob_arg],
        "DisabledException",
    );
    s.aws_ok(&root, &["kms", "schedule-key-deletion", "--key-id", &a]);
    expect(
        &["kms", "enable-key", "--key-id", &a],
        "KMSInvalidStateException",
    );
    expect(
        &[
            "kms",
            "generate-data-key",
            "--key-id",
            &a,
            "--key-spec",
            "AES_256",
        ],
        "KMSInvalidStateException",
    );
    expect(
        &[
            "kms",
            "schedule-key-deletion",
            "--key-id",
            &a,
            "--pending-window-in-days",
            "9",
        ],
        "KMSInvalidStateException",
    );
    // Imported-material key before its material arrives.
    let ext = create(&["--origin", "EXTERNAL"]);
    expect(
        &["kms", "encrypt", "--key-id", &ext, "--plaintext", &plain],
        "KMSInvalidStateException",
    );
    expect(
        &["kms", "enable-key-rotation", "--key-id", &ext],
        "UnsupportedOperationException",
    );
    // Inputs.
    expect(
        &[
            "kms",
            "schedule-key-deletion",
            "--key-id",
            &b,
            "--pending-window-in-days",
            "3",
        ],
        "ValidationException",
    );
    expect(
        &[
            "kms",
            "describe-key",
            "--key-id",
            "00000000-0000-0000-0000-000000000000",
        ],
        "NotFoundException",
    );
}

/// Issue 13: 512 idle unauthenticated connections used to hold every
/// connection slot (taken before accept) until their header timeout, and
/// signed clients waited behind them. Now a newcomer sheds an idle
/// connection that never signed anything, and one peer's unauthenticated
/// connections are capped.
#[test]
fn a_flood_of_idle_connections_does_not_lock_out_signed_clients() {
    let s = Server::start_with(
        &[
            "--max-connections",
            "64",
            "--max-connections-per-peer",
            "48",
            // Long enough that waiting for the flood to time out would fail
            // every signed request below (each allows 10 s).
            "--read-timeout",
            "60",
        ],
        &[("AWS_REGION", "local")],
    );
    let root = s.user_with_key("root");
    let flood: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(("127.0.0.1", s.port)).unwrap())
        .collect();
    let mut served = 0;
    for _ in 0..20 {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(&request(
            s.port,
            Some(&root),
            "TrentService.ListKeys",
            b"{}",
            now(),
            "local",
        ))
        .unwrap();
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
        if buf.starts_with(b"HTTP/1.1 200") {
            served += 1;
        }
    }
    assert_eq!(served, 20, "signed requests served while the flood idles");
    // The flood was shed down to the per-peer cap: the server closed the
    // rest (a read sees end of file rather than timing out).
    let closed = flood
        .into_iter()
        .filter(|c| {
            let mut c = c.try_clone().unwrap();
            c.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            c.read(&mut [0u8; 1]).is_ok_and(|n| n == 0)
        })
        .count();
    assert!(
        closed >= 300 - 48,
        "only {closed} of 300 idle connections were closed"
    );
}
