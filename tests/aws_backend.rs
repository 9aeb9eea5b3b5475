//! A volume whose key service is an AWS KMS implementation other than
//! kmsfs: moto in server mode (`pip install 'moto[server]'`), on loopback.
//! The CMK is created there with the real AWS CLI; kmsfs inits a volume on
//! it, writes, remounts, reads back and rotates (re-keys to a second moto
//! key, re-wrapping every file with moto's ReEncrypt).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kmsfs");

struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    fn start() -> Moto {
        let mut child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("moto_server (pip install 'moto[server]') must be on PATH");
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
        std::thread::spawn(move || for _ in lines {});
        Moto { child, url }
    }

    fn aws(&self, args: &[&str]) -> Value {
        let out = Command::new("aws")
            .arg("--endpoint-url")
            .arg(&self.url)
            .args(args)
            .envs(ENV)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .stdin(Stdio::null())
            .output()
            .expect("the AWS CLI must be on PATH");
        assert!(out.status.success(), "aws {args:?}: {}", stderr(&out));
        if out.stdout.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&out.stdout).unwrap()
        }
    }
}

const ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
];

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn kmsfs(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .envs(ENV)
        .env("KMSFS_KEYSTORE", dir.join("no-local-store"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kmsfs {args:?}: {}\nmount log: {}",
        stderr(&out),
        std::fs::read_to_string(dir.join("mount.log")).unwrap_or_default()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The volume goes to moto through kmsfs's own AWS-protocol client.
#[test]
fn volume_on_moto_kms() {
    volume_scenario(false);
}

/// The same through the AWS SDK for Rust (`--features aws-kms`).
#[cfg(feature = "aws-kms")]
#[test]
fn volume_on_moto_kms_through_the_aws_sdk() {
    volume_scenario(true);
}

fn volume_scenario(aws_sdk: bool) {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let arn =
        moto.aws(&["kms", "create-key", "--description", "kmsfs on moto"])["KeyMetadata"]["Arn"]
            .as_str()
            .unwrap()
            .to_string();
    assert!(arn.starts_with("arn:aws:kms:us-east-1:"), "{arn}");

    let (backing, mnt, log) = (d.join("backing"), d.join("mnt"), d.join("mount.log"));
    std::fs::create_dir(&mnt).unwrap();
    let (b, m, l) = (
        backing.to_str().unwrap(),
        mnt.to_str().unwrap(),
        log.to_str().unwrap(),
    );
    let mut init = vec!["init", "--endpoint-url", &moto.url, "--key-id", &arn, b];
    if aws_sdk {
        init.extend(["--aws-kms", "--aws-region", "us-east-1"]);
    }
    kmsfs(d, &init);
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(backing.join(".kmsfs.volume.json")).unwrap())
            .unwrap();
    assert_eq!(config["key_id"], arn.as_str());
    let kind = if aws_sdk { "aws" } else { "endpoint" };
    assert_eq!(config["key_service"]["type"], kind);

    let files: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| {
            (
                format!("f{i}"),
                common::pseudo_random(i, 1000 + 5000 * i as usize),
            )
        })
        .collect();
    kmsfs(d, &["mount", b, m, "--log-file", l]);
    std::fs::create_dir(mnt.join("sub")).unwrap();
    for (name, data) in &files {
        std::fs::write(mnt.join("sub").join(name), data).unwrap();
    }
    kmsfs(d, &["umount", m]);
    assert!(common::wait_unmounted(&mnt, Duration::from_secs(10)));

    kmsfs(d, &["mount", b, m, "--log-file", l]);
    for (name, data) in &files {
        assert_eq!(&std::fs::read(mnt.join("sub").join(name)).unwrap(), data);
    }
    kmsfs(d, &["umount", m]);
    assert!(common::wait_unmounted(&mnt, Duration::from_secs(10)));

    // Rotate: moto's own rotation, then re-key every file to a second moto
    // CMK (ReEncrypt at moto; the data stays, only headers change).
    moto.aws(&["kms", "rotate-key-on-demand", "--key-id", &arn]);
    let arn2 = moto.aws(&["kms", "create-key"])["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    kmsfs(d, &["rotate", b, "--to-key-id", &arn2]);
    let status = kmsfs(d, &["status", b, "--json"]);
    let status: Value = serde_json::from_str(&status).unwrap();
    let text = status.to_string();
    assert!(text.contains(&arn2), "{text}");

    kmsfs(d, &["mount", b, m, "--log-file", l]);
    for (name, data) in &files {
        assert_eq!(&std::fs::read(mnt.join("sub").join(name)).unwrap(), data);
    }
    std::fs::write(mnt.join("new"), b"after rotation").unwrap();
    kmsfs(d, &["umount", m]);
    assert!(common::wait_unmounted(&mnt, Duration::from_secs(10)));

    assert!(!d.join("no-local-store").exists());
}
