//! The study notes' KMS lab (../shared/seed), end to end with the real AWS
//! CLI against `kmsfs kms serve`:
//! 1. IAM: a group and users, a KMS access policy attached to the group;
//! 2. the group's users administer keys but cannot encrypt or decrypt;
//! 3. a key made in one region (KMS-provided material);
//! 4. its policy names the administrators (through IAM) and the key user.
//!
//! Then the key user runs `aws configure` and the lab's script:
//! encrypt, decrypt, re-encrypt and enable-key-rotation with fileb:// files.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::kms_server::{AccessKey, KmsServer, stderr};

const REGION: &str = "eu-west-1";

/// The AWS CLI as configured by `aws configure` in `home` (its own config
/// and credentials files), nothing else of the machine's configuration.
fn aws_configured(s: &KmsServer, home: &Path, script: &str) -> Output {
    Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(home)
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_ENDPOINT_URL", s.url())
        .env("AWS_MAX_ATTEMPTS", "1")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .expect("bash and the AWS CLI (pip install awscli)")
}

/// `aws configure` for `key` in region `region`, in a new directory.
fn configure(s: &KmsServer, key: &AccessKey, region: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let out = aws_configured(
        s,
        home.path(),
        &format!(
            "aws configure set aws_access_key_id {}\naws configure set aws_secret_access_key {}\naws configure set region {region}",
            key.id, key.secret
        ),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    home
}

fn ok(s: &KmsServer, home: &Path, script: &str) -> String {
    let out = aws_configured(s, home, script);
    assert!(out.status.success(), "{script}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// `script` fails, its error naming each of `needles` (the exception, and
/// for an AccessDeniedException the action refused).
fn refused(s: &KmsServer, home: &Path, script: &str, needles: &[&str]) {
    let out = aws_configured(s, home, script);
    assert!(!out.status.success(), "{script} succeeded");
    for n in needles {
        assert!(stderr(&out).contains(n), "{script}: {}", stderr(&out));
    }
}

fn iam(s: &KmsServer, args: &[&str]) {
    let mut all = vec!["iam"];
    all.extend_from_slice(args);
    s.kmsfs_json(&all);
}

#[test]
fn the_seed_lab_with_the_aws_cli() {
    let s = KmsServer::start();
    let root = s.user_with_key("root");
    // Step 1: the administrators' group, its users, its KMS access policy.
    let admin = s.user_with_key("daemon");
    let developer = s.user_with_key("bin");
    iam(&s, &["create-group", "--group-name", "KMSAdmins"]);
    iam(
        &s,
        &[
            "add-user-to-group",
            "--group-name",
            "KMSAdmins",
            "--user-name",
            "daemon",
        ],
    );
    // Step 2: management, no cryptography.
    iam(
        &s,
        &[
            "put-group-policy",
            "--group-name",
            "KMSAdmins",
            "--policy-name",
            "kms-admin",
            "--policy-document",
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*",
               "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*",
                          "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
                          "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
                          "kms:CancelKeyDeletion"]}]}"#,
        ],
    );
    // Steps 3 and 4: a key in eu-west-1 whose policy delegates to IAM for
    // the administrators and lets the developer use it.
    let root_home = configure(&s, &root, REGION);
    let policy = r#"{"Version": "2012-10-17", "Id": "key-consolepolicy-3", "Statement": [
      {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
       "Principal": {"AWS": "arn:aws:iam::000000000000:root"}, "Action": "kms:*", "Resource": "*"},
      {"Sid": "Allow use of the key", "Effect": "Allow",
       "Principal": {"AWS": ["arn:aws:iam::000000000000:user/bin"]},
       "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
       "Resource": "*"}]}"#;
    std::fs::write(root_home.path().join("policy.json"), policy).unwrap();
    let key = ok(
        &s,
        root_home.path(),
        "aws kms create-key --description 'lab key' --origin AWS_KMS --policy file://policy.json --query KeyMetadata.KeyId --output text",
    )
    .trim()
    .to_string();
    ok(
        &s,
        root_home.path(),
        &format!("aws kms create-alias --alias-name alias/lab --target-key-id {key}"),
    );

    // The administrator manages the key and cannot use it.
    let admin_home = configure(&s, &admin, REGION);
    let described = ok(
        &s,
        admin_home.path(),
        "aws kms describe-key --key-id alias/lab --query KeyMetadata.[Description,KeyState] --output text",
    );
    assert_eq!(described.trim(), "lab key\tEnabled");
    std::fs::write(admin_home.path().join("secret.txt"), b"s3cr3t\n").unwrap();
    refused(
        &s,
        admin_home.path(),
        &format!("aws kms encrypt --key-id {key} --plaintext fileb://secret.txt"),
        &["AccessDeniedException", "kms:Encrypt"],
    );

    // The developer: `aws configure`, then the lab's script.
    let dev_home = configure(&s, &developer, REGION);
    let dir = dev_home.path();
    std::fs::write(dir.join("secret.txt"), b"the lab's secret\n").unwrap();
    ok(
        &s,
        dir,
        &format!(
            "aws kms encrypt --key-id {key} --plaintext fileb://secret.txt --output text --query CiphertextBlob | base64 --decode > encryptedsecret.txt
aws kms decrypt --ciphertext-blob fileb://encryptedsecret.txt --output text --query Plaintext | base64 --decode > decryptedsecret.txt
aws kms re-encrypt --destination-key-id {key} --ciphertext-blob fileb://encryptedsecret.txt | base64 > newencryption.txt"
        ),
    );
    assert_eq!(
        std::fs::read(dir.join("decryptedsecret.txt")).unwrap(),
        b"the lab's secret\n"
    );
    let encrypted = std::fs::read(dir.join("encryptedsecret.txt")).unwrap();
    assert!(encrypted.len() > 16 && !encrypted.windows(6).any(|w| w == b"secret"));
    assert!(
        std::fs::metadata(dir.join("newencryption.txt"))
            .unwrap()
            .len()
            > 100
    );
    // The lab's last line is the administrators' to run, not the developer's.
    refused(
        &s,
        dir,
        &format!("aws kms enable-key-rotation --key-id {key}"),
        &["AccessDeniedException", "kms:EnableKeyRotation"],
    );
    ok(
        &s,
        admin_home.path(),
        &format!("aws kms enable-key-rotation --key-id {key}"),
    );
    let status = ok(
        &s,
        admin_home.path(),
        &format!("aws kms get-key-rotation-status --key-id {key} --query KeyRotationEnabled"),
    );
    assert_eq!(status.trim(), "true");

    // IAM is global, keys are regional: the same user in another region does
    // not find the key.
    let elsewhere = configure(&s, &developer, "us-east-1");
    std::fs::write(elsewhere.path().join("secret.txt"), b"x").unwrap();
    refused(
        &s,
        elsewhere.path(),
        &format!("aws kms encrypt --key-id {key} --plaintext fileb://secret.txt"),
        &["NotFoundException"],
    );

    // Deletion: disabled first, then scheduled 7 to 30 days out.
    ok(
        &s,
        admin_home.path(),
        &format!("aws kms disable-key --key-id {key}"),
    );
    refused(
        &s,
        admin_home.path(),
        &format!("aws kms schedule-key-deletion --key-id {key} --pending-window-in-days 6"),
        &["ValidationException"],
    );
    let state = ok(
        &s,
        admin_home.path(),
        &format!(
            "aws kms schedule-key-deletion --key-id {key} --pending-window-in-days 7 --query KeyState --output text"
        ),
    );
    assert_eq!(state.trim(), "PendingDeletion");
    refused(
        &s,
        dir,
        "aws kms decrypt --ciphertext-blob fileb://encryptedsecret.txt",
        &["KMSInvalidStateException"],
    );
}
