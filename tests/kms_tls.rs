//! `kmsfs kms serve --tls-cert --tls-key`: https on the TCP listener,
//! trusted by boto3, the AWS CLI and `kmsfs kms` through the CA bundle the
//! AWS tools use (AWS_CA_BUNDLE, `verify=`), and refused by clients that do
//! not trust the certificate.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::BIN;
use common::kms_server::{KmsServer, stderr};

/// A self-signed CA and a server certificate it signed for 127.0.0.1 and
/// localhost, made with openssl: (ca.pem, server.pem, server.key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=kmsfs test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[test]
fn https_for_boto3_the_aws_cli_and_kmsfs_kms() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(certs.path());
    let s = KmsServer::start_with(
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[("AWS_REGION", "local")],
    );
    let https = format!("https://127.0.0.1:{}", s.port);
    let root = s.user_with_key("root");
    let ca = ca.to_str().unwrap();

    // boto3, trusting the CA; and refusing a server it cannot verify.
    s.boto3(
        &root,
        &format!(
            r#"
import botocore.exceptions
k = boto3.client('kms', endpoint_url='{https}', region_name='local', verify='{ca}',
                 aws_access_key_id='{id}', aws_secret_access_key='{secret}')
key = k.create_key(Description='over tls')['KeyMetadata']['KeyId']
blob = k.encrypt(KeyId=key, Plaintext=b'secret')['CiphertextBlob']
assert k.decrypt(CiphertextBlob=blob)['Plaintext'] == b'secret'
untrusting = boto3.client('kms', endpoint_url='{https}', region_name='local',
                          aws_access_key_id='{id}', aws_secret_access_key='{secret}')
try:
    untrusting.list_keys()
    raise AssertionError('a client without the CA trusted the server')
except botocore.exceptions.SSLError:
    pass
plain = boto3.client('kms', endpoint_url='{http}', region_name='local',
                     aws_access_key_id='{id}', aws_secret_access_key='{secret}')
try:
    plain.list_keys()
    raise AssertionError('plain HTTP was answered on the TLS port')
except (botocore.exceptions.ConnectionClosedError, botocore.exceptions.EndpointConnectionError,
        botocore.exceptions.HTTPClientError):
    pass
print('OK')
"#,
            id = root.id,
            secret = root.secret,
            http = s.url(),
        ),
    );

    // The AWS CLI, with AWS_CA_BUNDLE as AWS documents it.
    let out = Command::new("aws")
        .args([
            "--endpoint-url",
            &https,
            "kms",
            "list-keys",
            "--query",
            "length(Keys)",
        ])
        .env("AWS_CA_BUNDLE", ca)
        .env("AWS_ACCESS_KEY_ID", &root.id)
        .env("AWS_SECRET_ACCESS_KEY", &root.secret)
        .env("AWS_DEFAULT_REGION", "local")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");

    // kmsfs kms --endpoint-url https://…, with and without the CA.
    let kmsfs = |ca_bundle: Option<&str>| {
        let mut c = Command::new(BIN);
        c.args(["kms", "--endpoint-url", &https, "list-keys"])
            .env("AWS_ACCESS_KEY_ID", &root.id)
            .env("AWS_SECRET_ACCESS_KEY", &root.secret)
            .env("AWS_REGION", "local")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env_remove("AWS_SESSION_TOKEN");
        match ca_bundle {
            Some(b) => c.env("AWS_CA_BUNDLE", b),
            None => c.env_remove("AWS_CA_BUNDLE"),
        };
        c.output().unwrap()
    };
    let trusted = kmsfs(Some(ca));
    assert!(trusted.status.success(), "{}", stderr(&trusted));
    let listed: serde_json::Value = serde_json::from_slice(&trusted.stdout).unwrap();
    assert_eq!(listed["Keys"].as_array().unwrap().len(), 1);
    // A CA bundle others may write is not trusted at all.
    let shared = certs.path().join("shared-ca.pem");
    std::fs::copy(ca, &shared).unwrap();
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let writable = kmsfs(Some(shared.to_str().unwrap()));
    assert!(!writable.status.success());
    assert!(
        stderr(&writable).contains("may be changed by others"),
        "{}",
        stderr(&writable)
    );
    let untrusted = kmsfs(None);
    assert!(!untrusted.status.success());
    assert!(
        stderr(&untrusted).contains("cannot reach the key service"),
        "{}",
        stderr(&untrusted)
    );
}

#[test]
fn a_bad_certificate_or_key_stops_the_server_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = certificates(dir.path());
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    for (c, k) in [
        (dir.path().join("empty.pem"), key.clone()),
        (cert.clone(), dir.path().join("empty.pem")),
        (cert.clone(), dir.path().join("ca.key")),
    ] {
        let out = Command::new(BIN)
            .arg("--keystore")
            .arg(dir.path().join("keystore"))
            .args(["kms", "serve", "--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(&c)
            .arg("--tls-key")
            .arg(&k)
            .env_remove("KMSFS_PASSPHRASE_FILE")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{c:?} {k:?}");
        assert!(stderr(&out).contains("TLS"), "{}", stderr(&out));
        // The key's PEM text never reaches the message.
        assert!(
            !stderr(&out).contains("PRIVATE KEY-----"),
            "{}",
            stderr(&out)
        );
    }
    let out = Command::new(BIN)
        .args(["kms", "serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(!out.status.success(), "--tls-cert without --tls-key");
}
