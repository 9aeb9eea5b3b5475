//! `kmsfs kms …` end to end: the built binary against a key store in a
//! temporary folder. AWS names, flags, JSON fields, exit codes (254 service
//! error, 252 usage error), the lab script, store protection and the key
//! policy as seen by the invoking user.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use tempfile::TempDir;

use kmsfs_kms::policy::{ADMIN_ACTIONS, USER_ACTIONS};

const BIN: &str = env!("CARGO_BIN_EXE_kmsfs");

/// Every `kmsfs kms` subcommand (the `aws kms` names).
const SUBCOMMANDS: &[&str] = &[
    "create-key",
    "describe-key",
    "list-keys",
    "create-alias",
    "update-alias",
    "delete-alias",
    "list-aliases",
    "enable-key",
    "disable-key",
    "schedule-key-deletion",
    "cancel-key-deletion",
    "enable-key-rotation",
    "disable-key-rotation",
    "get-key-rotation-status",
    "rotate-key-on-demand",
    "list-key-rotations",
    "encrypt",
    "decrypt",
    "re-encrypt",
    "generate-data-key",
    "generate-data-key-without-plaintext",
    "get-key-policy",
    "put-key-policy",
    "get-parameters-for-import",
    "import-key-material",
    "get-public-key",
    "sign",
    "verify",
    "generate-mac",
    "verify-mac",
    "generate-data-key-pair",
    "generate-data-key-pair-without-plaintext",
    "derive-shared-secret",
];

struct Lab {
    dir: TempDir,
    store: PathBuf,
    passphrase_file: Option<PathBuf>,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store/keystore");
        Lab {
            dir,
            store,
            passphrase_file: None,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self) -> Command {
        self.with_env(Command::new(BIN))
    }

    /// `c`, run in the lab folder against the lab's store.
    fn with_env(&self, mut c: Command) -> Command {
        c.current_dir(self.dir.path())
            .env("KMSFS_KEYSTORE", &self.store)
            .env_remove("KMSFS_PASSPHRASE_FILE")
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_PROFILE")
            // No region from a config file of whoever runs the tests.
            .env("AWS_CONFIG_FILE", self.dir.path().join("no-aws-config"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        if let Some(p) = &self.passphrase_file {
            c.env("KMSFS_PASSPHRASE_FILE", p);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// Runs `kmsfs kms ARGS…`, which must succeed; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let mut all = vec!["kms"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "kmsfs {all:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Like `ok`, with stdout parsed as JSON.
    fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    }

    /// Runs `kmsfs kms ARGS…`, which must fail; returns (exit code, stderr).
    fn fail(&self, args: &[&str]) -> (i32, String) {
        let mut all = vec!["kms"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(
            !out.status.success(),
            "kmsfs {all:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(out.stdout.is_empty(), "a failure printed on stdout");
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    /// A failure that must be the AWS service error `exception` (exit 254).
    fn service_error(&self, args: &[&str], exception: &str) -> String {
        let (code, stderr) = self.fail(args);
        assert_eq!(code, 254, "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("({exception})")),
            "{args:?}: expected {exception}, got: {stderr}"
        );
        stderr
    }

    fn usage_error(&self, args: &[&str]) -> String {
        let (code, stderr) = self.fail(args);
        assert_eq!(code, 252, "{args:?}: {stderr}");
        stderr
    }

    fn create_key(&self) -> String {
        let out = self.json(&["create-key"]);
        out["KeyMetadata"]["KeyId"].as_str().unwrap().to_string()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        std::fs::write(self.path(name), bytes).unwrap();
        format!("fileb://{name}")
    }

    fn store_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.store).unwrap()
    }
}

fn uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

fn b64(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().unwrap_or_else(|| panic!("not a string: {v}")))
        .unwrap()
}

fn is_iso_date(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

// ---------------------------------------------------------------------------
// The lab
// ---------------------------------------------------------------------------

#[test]
fn lab_script_end_to_end() {
    let lab = Lab::new();
    let secret = b"My credit card number is 4111 1111 1111 1111\n\x00\xffbinary too";
    std::fs::write(lab.path("secret.txt"), secret).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab.sh");
    let out = lab
        .with_env(Command::new("bash"))
        .arg(&script)
        .env("KMSFS_BIN", BIN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lab.sh failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();

    assert_eq!(
        std::fs::read(lab.path("decryptedsecret.txt")).unwrap(),
        secret
    );
    let encrypted = std::fs::read(lab.path("encryptedsecret.txt")).unwrap();
    let header = kmsfs_kms::blob::parse_header(&encrypted).unwrap();
    assert_eq!(header.key_id.to_string(), key);
    assert_eq!(header.key_version, 1);
    assert_ne!(&encrypted[..], &secret[..]);

    // newencryption.txt is the base64 of re-encrypt's JSON output.
    let encoded: String = std::fs::read_to_string(lab.path("newencryption.txt"))
        .unwrap()
        .split_whitespace()
        .collect();
    let response: Value = serde_json::from_slice(&B64.decode(encoded).unwrap()).unwrap();
    assert!(response["KeyId"].as_str().unwrap().ends_with(&key));
    assert!(response["SourceKeyId"].as_str().unwrap().ends_with(&key));
    let again = lab.write("again.bin", &b64(&response["CiphertextBlob"]));
    let decrypted = lab.json(&["decrypt", "--ciphertext-blob", &again]);
    assert_eq!(b64(&decrypted["Plaintext"]), secret);

    let status = lab.json(&["get-key-rotation-status", "--key-id", &key]);
    assert_eq!(status["KeyRotationEnabled"], true);
    assert_eq!(status["RotationPeriodInDays"], 365);
}

// ---------------------------------------------------------------------------
// Every subcommand, with its JSON fields
// ---------------------------------------------------------------------------

#[test]
fn key_life_cycle_subcommands() {
    let lab = Lab::new();
    let created = lab.json(&[
        "create-key",
        "--description",
        "life cycle",
        "--key-usage",
        "ENCRYPT_DECRYPT",
        "--key-spec",
        "SYMMETRIC_DEFAULT",
        "--tags",
        "TagKey=team,TagValue=storage",
    ]);
    let meta = &created["KeyMetadata"];
    let key = meta["KeyId"].as_str().unwrap().to_string();
    let arn = meta["Arn"].as_str().unwrap().to_string();
    assert_eq!(arn, format!("arn:aws:kms:local:000000000000:key/{key}"));
    assert_eq!(meta["AWSAccountId"], "000000000000");
    assert_eq!(meta["Description"], "life cycle");
    assert_eq!(meta["KeyState"], "Enabled");
    assert_eq!(meta["Enabled"], true);
    assert_eq!(meta["KeyUsage"], "ENCRYPT_DECRYPT");
    assert_eq!(meta["KeySpec"], "SYMMETRIC_DEFAULT");
    assert_eq!(meta["Origin"], "AWS_KMS");
    assert_eq!(meta["KeyManager"], "CUSTOMER");
    assert_eq!(meta["EncryptionAlgorithms"], json!(["SYMMETRIC_DEFAULT"]));
    assert!(is_iso_date(&meta["CreationDate"]), "{meta}");

    // The store and its root key were created with the right modes.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&lab.store), 0o600);
    assert_eq!(mode(lab.store.parent().unwrap()), 0o700);
    assert_eq!(mode(&lab.path("store/keystore.rootkey")), 0o600);

    let listed = lab.json(&["list-keys"]);
    assert_eq!(listed["Keys"], json!([{"KeyId": key, "KeyArn": arn}]));
    assert_eq!(listed["Truncated"], false);

    // Describe by id, ARN, alias and alias ARN.
    assert_eq!(
        lab.ok(&[
            "create-alias",
            "--alias-name",
            "alias/life",
            "--target-key-id",
            &key
        ]),
        ""
    );
    let alias_arn = "arn:aws:kms:local:000000000000:alias/life";
    for name in [key.as_str(), arn.as_str(), "alias/life", alias_arn] {
        let d = lab.json(&["describe-key", "--key-id", name]);
        assert_eq!(d["KeyMetadata"]["KeyId"], key.as_str(), "{name}");
    }

    // Disable / enable print nothing, as the AWS CLI does.
    assert_eq!(lab.ok(&["disable-key", "--key-id", &key]), "");
    let d = lab.json(&["describe-key", "--key-id", &key]);
    assert_eq!(d["KeyMetadata"]["KeyState"], "Disabled");
    assert_eq!(d["KeyMetadata"]["Enabled"], false);
    lab.service_error(
        &["encrypt", "--key-id", &key, "--plaintext", "aGVsbG8="],
        "DisabledException",
    );
    assert_eq!(lab.ok(&["enable-key", "--key-id", &key]), "");
    assert_eq!(
        lab.json(&["describe-key", "--key-id", &key])["KeyMetadata"]["KeyState"],
        "Enabled"
    );

    // Deletion: windows 6 and 31 refused, 7 and 30 accepted; cancel leaves Disabled.
    for days in ["6", "31"] {
        lab.service_error(
            &[
                "schedule-key-deletion",
                "--key-id",
                &key,
                "--pending-window-in-days",
                days,
            ],
            "ValidationException",
        );
    }
    for days in ["7", "30"] {
        let s = lab.json(&[
            "schedule-key-deletion",
            "--key-id",
            &key,
            "--pending-window-in-days",
            days,
        ]);
        assert_eq!(s["KeyId"], arn.as_str());
        assert_eq!(s["KeyState"], "PendingDeletion");
        assert_eq!(s["PendingWindowInDays"], days.parse::<u32>().unwrap());
        assert!(is_iso_date(&s["DeletionDate"]), "{s}");
        let d = lab.json(&["describe-key", "--key-id", &key]);
        assert_eq!(d["KeyMetadata"]["KeyState"], "PendingDeletion");
        assert_eq!(d["KeyMetadata"]["DeletionDate"], s["DeletionDate"]);
        lab.service_error(
            &["encrypt", "--key-id", &key, "--plaintext", "aGVsbG8="],
            "KMSInvalidStateException",
        );
        lab.service_error(
            &[
                "create-alias",
                "--alias-name",
                "alias/late",
                "--target-key-id",
                &key,
            ],
            "KMSInvalidStateException",
        );
        let c = lab.json(&["cancel-key-deletion", "--key-id", &key]);
        assert_eq!(c["KeyId"], arn.as_str());
        assert_eq!(
            lab.json(&["describe-key", "--key-id", &key])["KeyMetadata"]["KeyState"],
            "Disabled"
        );
        lab.ok(&["enable-key", "--key-id", &key]);
    }
    lab.service_error(
        &["cancel-key-deletion", "--key-id", &key],
        "KMSInvalidStateException",
    );
}

#[test]
fn alias_subcommands() {
    let lab = Lab::new();
    let k1 = lab.create_key();
    let k2 = lab.create_key();
    lab.ok(&[
        "create-alias",
        "--alias-name",
        "alias/one",
        "--target-key-id",
        &k1,
    ]);
    lab.ok(&[
        "create-alias",
        "--alias-name",
        "alias/uno",
        "--target-key-id",
        &k1,
    ]);
    lab.service_error(
        &[
            "create-alias",
            "--alias-name",
            "alias/one",
            "--target-key-id",
            &k2,
        ],
        "AlreadyExistsException",
    );
    lab.service_error(
        &[
            "create-alias",
            "--alias-name",
            "alias/aws/s3",
            "--target-key-id",
            &k2,
        ],
        "InvalidAliasNameException",
    );
    let all = lab.json(&["list-aliases"]);
    let aliases = all["Aliases"].as_array().unwrap();
    assert_eq!(aliases.len(), 2);
    assert_eq!(aliases[0]["AliasName"], "alias/one");
    assert_eq!(
        aliases[0]["AliasArn"],
        "arn:aws:kms:local:000000000000:alias/one"
    );
    assert_eq!(aliases[0]["TargetKeyId"], k1.as_str());
    assert!(is_iso_date(&aliases[0]["CreationDate"]));
    assert!(is_iso_date(&aliases[0]["LastUpdatedDate"]));
    assert_eq!(
        lab.json(&["list-aliases", "--key-id", &k2])["Aliases"],
        json!([])
    );

    assert_eq!(
        lab.ok(&[
            "update-alias",
            "--alias-name",
            "alias/one",
            "--target-key-id",
            &k2
        ]),
        ""
    );
    let of_k2 = lab.json(&["list-aliases", "--key-id", &k2]);
    assert_eq!(of_k2["Aliases"][0]["AliasName"], "alias/one");
    let enc = lab.json(&["encrypt", "--key-id", "alias/one", "--plaintext", "eA=="]);
    assert!(enc["KeyId"].as_str().unwrap().ends_with(&k2));

    assert_eq!(lab.ok(&["delete-alias", "--alias-name", "alias/one"]), "");
    lab.service_error(
        &["describe-key", "--key-id", "alias/one"],
        "NotFoundException",
    );
    lab.service_error(
        &["delete-alias", "--alias-name", "alias/one"],
        "NotFoundException",
    );
    assert_eq!(
        lab.json(&["list-aliases"])["Aliases"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn rotation_subcommands() {
    let lab = Lab::new();
    let key = lab.create_key();
    let arn = format!("arn:aws:kms:local:000000000000:key/{key}");
    let s = lab.json(&["get-key-rotation-status", "--key-id", &key]);
    assert_eq!(s["KeyRotationEnabled"], false);
    assert_eq!(s["KeyId"], arn.as_str());
    lab.service_error(
        &[
            "enable-key-rotation",
            "--key-id",
            &key,
            "--rotation-period-in-days",
            "89",
        ],
        "ValidationException",
    );
    lab.service_error(
        &[
            "enable-key-rotation",
            "--key-id",
            &key,
            "--rotation-period-in-days",
            "2561",
        ],
        "ValidationException",
    );
    assert_eq!(
        lab.ok(&[
            "enable-key-rotation",
            "--key-id",
            &key,
            "--rotation-period-in-days",
            "90"
        ]),
        ""
    );
    let s = lab.json(&["get-key-rotation-status", "--key-id", &key]);
    assert_eq!(s["KeyRotationEnabled"], true);
    assert_eq!(s["RotationPeriodInDays"], 90);
    assert!(is_iso_date(&s["NextRotationDate"]), "{s}");

    let plain = lab.write("plain.txt", b"before rotation");
    let before = lab.json(&["encrypt", "--key-id", &key, "--plaintext", &plain]);
    let before_blob = lab.write("before.bin", &b64(&before["CiphertextBlob"]));

    assert_eq!(
        lab.json(&["list-key-rotations", "--key-id", &key])["Rotations"],
        json!([])
    );
    let r = lab.json(&["rotate-key-on-demand", "--key-id", &key]);
    assert_eq!(r["KeyId"], arn.as_str());
    lab.json(&["rotate-key-on-demand", "--key-id", &key]);
    let rotations = lab.json(&["list-key-rotations", "--key-id", &key]);
    let list = rotations["Rotations"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    for r in list {
        assert_eq!(r["KeyId"], arn.as_str());
        assert_eq!(r["RotationType"], "ON_DEMAND");
        assert!(is_iso_date(&r["RotationDate"]), "{r}");
    }
    assert_eq!(rotations["Truncated"], false);

    let after = lab.json(&["encrypt", "--key-id", &key, "--plaintext", &plain]);
    let after_bytes = b64(&after["CiphertextBlob"]);
    assert_eq!(
        kmsfs_kms::blob::parse_header(&after_bytes)
            .unwrap()
            .key_version,
        3
    );
    let d = lab.json(&["decrypt", "--ciphertext-blob", &before_blob]);
    assert_eq!(b64(&d["Plaintext"]), b"before rotation");

    assert_eq!(lab.ok(&["disable-key-rotation", "--key-id", &key]), "");
    let s = lab.json(&["get-key-rotation-status", "--key-id", &key]);
    assert_eq!(s["KeyRotationEnabled"], false);
    assert!(s.get("NextRotationDate").is_none(), "{s}");
}

#[test]
fn cryptographic_subcommands() {
    let lab = Lab::new();
    let key = lab.create_key();
    let other = lab.create_key();
    let arn = format!("arn:aws:kms:local:000000000000:key/{key}");
    let secret = lab.write("secret.bin", b"\x00\x01binary secret\xff");

    // encrypt / decrypt with an encryption context (shorthand and JSON).
    let enc = lab.json(&[
        "encrypt",
        "--key-id",
        &key,
        "--plaintext",
        &secret,
        "--encryption-context",
        "purpose=test,file=/a",
    ]);
    assert_eq!(enc["KeyId"], arn.as_str());
    assert_eq!(enc["EncryptionAlgorithm"], "SYMMETRIC_DEFAULT");
    let blob = lab.write("blob.bin", &b64(&enc["CiphertextBlob"]));
    let dec = lab.json(&[
        "decrypt",
        "--ciphertext-blob",
        &blob,
        "--encryption-context",
        r#"{"file": "/a", "purpose": "test"}"#,
    ]);
    assert_eq!(b64(&dec["Plaintext"]), b"\x00\x01binary secret\xff");
    assert_eq!(dec["KeyId"], arn.as_str());
    assert_eq!(dec["EncryptionAlgorithm"], "SYMMETRIC_DEFAULT");
    lab.service_error(
        &["decrypt", "--ciphertext-blob", &blob],
        "InvalidCiphertextException",
    );
    lab.service_error(
        &[
            "decrypt",
            "--ciphertext-blob",
            &blob,
            "--encryption-context",
            "purpose=other,file=/a",
        ],
        "InvalidCiphertextException",
    );
    lab.service_error(
        &[
            "decrypt",
            "--ciphertext-blob",
            &blob,
            "--encryption-context",
            "purpose=test,file=/a",
            "--key-id",
            &other,
        ],
        "IncorrectKeyException",
    );
    // A tampered blob.
    let mut tampered = b64(&enc["CiphertextBlob"]);
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let tampered = lab.write("tampered.bin", &tampered);
    lab.service_error(
        &[
            "decrypt",
            "--ciphertext-blob",
            &tampered,
            "--encryption-context",
            "purpose=test,file=/a",
        ],
        "InvalidCiphertextException",
    );
    // Plaintext as base64 on the command line, as the AWS CLI v2 takes it.
    let enc = lab.json(&[
        "encrypt",
        "--key-id",
        &key,
        "--plaintext",
        &B64.encode(b"inline"),
    ]);
    let dec = lab.json(&[
        "decrypt",
        "--ciphertext-blob",
        enc["CiphertextBlob"].as_str().unwrap(),
    ]);
    assert_eq!(b64(&dec["Plaintext"]), b"inline");
    // Size limits.
    let empty = lab.write("empty.bin", b"");
    lab.service_error(
        &["encrypt", "--key-id", &key, "--plaintext", &empty],
        "ValidationException",
    );
    let big = lab.write("big.bin", &[7u8; 4097]);
    lab.service_error(
        &["encrypt", "--key-id", &key, "--plaintext", &big],
        "ValidationException",
    );

    // re-encrypt to the other key, with new context.
    let re = lab.json(&[
        "re-encrypt",
        "--ciphertext-blob",
        &blob,
        "--source-encryption-context",
        "purpose=test,file=/a",
        "--destination-key-id",
        &other,
        "--destination-encryption-context",
        "moved=yes",
    ]);
    assert_eq!(re["SourceKeyId"], arn.as_str());
    assert!(re["KeyId"].as_str().unwrap().ends_with(&other));
    assert_eq!(re["SourceEncryptionAlgorithm"], "SYMMETRIC_DEFAULT");
    assert_eq!(re["DestinationEncryptionAlgorithm"], "SYMMETRIC_DEFAULT");
    let moved = lab.write("moved.bin", &b64(&re["CiphertextBlob"]));
    let dec = lab.json(&[
        "decrypt",
        "--ciphertext-blob",
        &moved,
        "--encryption-context",
        "moved=yes",
    ]);
    assert_eq!(b64(&dec["Plaintext"]), b"\x00\x01binary secret\xff");

    // generate-data-key sizes.
    for (args, len) in [
        (vec!["--key-spec", "AES_256"], 32),
        (vec!["--key-spec", "AES_128"], 16),
        (vec!["--number-of-bytes", "1"], 1),
        (vec!["--number-of-bytes", "1024"], 1024),
    ] {
        let mut all = vec!["generate-data-key", "--key-id", key.as_str()];
        all.extend(args);
        let out = lab.json(&all);
        let plaintext = b64(&out["Plaintext"]);
        assert_eq!(plaintext.len(), len, "{all:?}");
        assert_eq!(out["KeyId"], arn.as_str());
        let wrapped = lab.write("dk.bin", &b64(&out["CiphertextBlob"]));
        let dec = lab.json(&["decrypt", "--ciphertext-blob", &wrapped]);
        assert_eq!(b64(&dec["Plaintext"]), plaintext);
    }
    for n in ["0", "1025"] {
        lab.service_error(
            &[
                "generate-data-key",
                "--key-id",
                &key,
                "--number-of-bytes",
                n,
            ],
            "ValidationException",
        );
    }
    lab.service_error(
        &["generate-data-key", "--key-id", &key],
        "ValidationException",
    );
    let out = lab.json(&[
        "generate-data-key-without-plaintext",
        "--key-id",
        &key,
        "--key-spec",
        "AES_256",
        "--encryption-context",
        "a=b",
    ]);
    assert!(out.get("Plaintext").is_none(), "{out}");
    assert_eq!(out["KeyId"], arn.as_str());
    let wrapped = lab.write("dk2.bin", &b64(&out["CiphertextBlob"]));
    let dec = lab.json(&[
        "decrypt",
        "--ciphertext-blob",
        &wrapped,
        "--encryption-context",
        "a=b",
    ]);
    assert_eq!(b64(&dec["Plaintext"]).len(), 32);
}

#[test]
fn policy_subcommands() {
    let lab = Lab::new();
    let key = lab.create_key();
    let got = lab.json(&["get-key-policy", "--key-id", &key]);
    assert_eq!(got["PolicyName"], "default");
    let doc: Value = serde_json::from_str(got["Policy"].as_str().unwrap()).unwrap();
    assert_eq!(
        doc["Statement"][0]["Principal"]["User"],
        json!([uid().to_string()])
    );
    assert_eq!(doc["Statement"][0]["Action"], "kms:*");
    let text = lab.ok(&[
        "get-key-policy",
        "--key-id",
        &key,
        "--policy-name",
        "default",
        "--output",
        "text",
        "--query",
        "Policy",
    ]);
    assert_eq!(text.trim_end(), got["Policy"].as_str().unwrap());
    lab.service_error(
        &["get-key-policy", "--key-id", &key, "--policy-name", "other"],
        "NotFoundException",
    );

    // put-key-policy from a file:// document, then read it back.
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{"Sid": "all", "Effect": "Allow", "Principal": {"User": [uid().to_string()]}, "Action": "kms:*", "Resource": "*"},
                      {"Effect": "Allow", "Principal": {"Group": "4242"}, "Action": USER_ACTIONS}]
    })
    .to_string();
    std::fs::write(lab.path("policy.json"), &policy).unwrap();
    assert_eq!(
        lab.ok(&[
            "put-key-policy",
            "--key-id",
            &key,
            "--policy-name",
            "default",
            "--policy",
            "file://policy.json"
        ]),
        ""
    );
    assert_eq!(
        lab.json(&["get-key-policy", "--key-id", &key])["Policy"],
        policy.as_str()
    );
    lab.service_error(
        &["put-key-policy", "--key-id", &key, "--policy", "{not json"],
        "MalformedPolicyDocumentException",
    );
    // A key created with a policy.
    let created = lab.json(&["create-key", "--policy", "file://policy.json"]);
    let id = created["KeyMetadata"]["KeyId"].as_str().unwrap();
    assert_eq!(
        lab.json(&["get-key-policy", "--key-id", id])["Policy"],
        policy.as_str()
    );
}

fn rsa_wrap(public_der: &[u8], material: &[u8]) -> Vec<u8> {
    use rsa::pkcs8::DecodePublicKey;
    rsa::PublicKey::from_public_key_der(public_der)
        .unwrap()
        .oaep_encrypt::<sha2::Sha256>(material)
        .unwrap()
}

#[test]
fn import_subcommands() {
    let lab = Lab::new();
    let created = lab.json(&[
        "create-key",
        "--origin",
        "EXTERNAL",
        "--description",
        "byok",
    ]);
    let meta = &created["KeyMetadata"];
    assert_eq!(meta["Origin"], "EXTERNAL");
    assert_eq!(meta["KeyState"], "PendingImport");
    assert_eq!(meta["ExpirationModel"], "KEY_MATERIAL_DOES_NOT_EXPIRE");
    let key = meta["KeyId"].as_str().unwrap().to_string();
    lab.service_error(
        &["encrypt", "--key-id", &key, "--plaintext", "eA=="],
        "KMSInvalidStateException",
    );

    let params = lab.json(&[
        "get-parameters-for-import",
        "--key-id",
        &key,
        "--wrapping-algorithm",
        "RSAES_OAEP_SHA_256",
        "--wrapping-key-spec",
        "RSA_2048",
    ]);
    assert!(params["KeyId"].as_str().unwrap().ends_with(&key));
    assert!(is_iso_date(&params["ParametersValidTo"]), "{params}");
    let token = lab.write("token.bin", &b64(&params["ImportToken"]));
    let mut material = [0u8; 32];
    rand::fill(&mut material[..]);
    let wrapped = lab.write(
        "material.bin",
        &rsa_wrap(&b64(&params["PublicKey"]), &material),
    );

    let bad_token = lab.write("badtoken.bin", b"not the token");
    lab.service_error(
        &[
            "import-key-material",
            "--key-id",
            &key,
            "--import-token",
            &bad_token,
            "--encrypted-key-material",
            &wrapped,
        ],
        "InvalidImportTokenException",
    );
    assert_eq!(
        lab.ok(&[
            "import-key-material",
            "--key-id",
            &key,
            "--import-token",
            &token,
            "--encrypted-key-material",
            &wrapped,
            "--expiration-model",
            "KEY_MATERIAL_DOES_NOT_EXPIRE",
        ]),
        ""
    );
    assert_eq!(
        lab.json(&["describe-key", "--key-id", &key])["KeyMetadata"]["KeyState"],
        "Enabled"
    );
    let enc = lab.json(&["encrypt", "--key-id", &key, "--plaintext", "aW1wb3J0ZWQ="]);
    let dec = lab.json(&[
        "decrypt",
        "--ciphertext-blob",
        enc["CiphertextBlob"].as_str().unwrap(),
    ]);
    assert_eq!(b64(&dec["Plaintext"]), b"imported");
    lab.service_error(
        &["rotate-key-on-demand", "--key-id", &key],
        "UnsupportedOperationException",
    );
    lab.service_error(
        &["enable-key-rotation", "--key-id", &key],
        "UnsupportedOperationException",
    );
}

// ---------------------------------------------------------------------------
// Output shaping, errors, help
// ---------------------------------------------------------------------------

#[test]
fn output_text_and_query() {
    let lab = Lab::new();
    let key = lab.create_key();
    let arn = format!("arn:aws:kms:local:000000000000:key/{key}");
    assert_eq!(
        lab.ok(&[
            "describe-key",
            "--key-id",
            &key,
            "--query",
            "KeyMetadata.KeyState"
        ]),
        "\"Enabled\"\n"
    );
    assert_eq!(
        lab.ok(&[
            "describe-key",
            "--key-id",
            &key,
            "--query",
            "KeyMetadata.KeyState",
            "--output",
            "text"
        ]),
        "Enabled\n"
    );
    assert_eq!(
        lab.ok(&[
            "create-key",
            "--query",
            "KeyMetadata.KeyState",
            "--output",
            "text"
        ]),
        "Enabled\n"
    );
    assert_eq!(
        lab.ok(&[
            "get-key-rotation-status",
            "--key-id",
            &key,
            "--output",
            "text"
        ]),
        format!("{arn}\tFalse\n")
    );
    let ct = lab.ok(&[
        "encrypt",
        "--key-id",
        &key,
        "--plaintext",
        "aGk=",
        "--output",
        "text",
        "--query",
        "CiphertextBlob",
    ]);
    assert!(
        ct.ends_with('\n') && !ct.trim_end().contains(['\n', '\t', '"']),
        "{ct:?}"
    );
    let blob = B64.decode(ct.trim_end()).unwrap();
    assert_eq!(&blob[..3], b"KB\x01");
    let plain = lab.ok(&[
        "decrypt",
        "--ciphertext-blob",
        ct.trim_end(),
        "--output",
        "text",
        "--query",
        "Plaintext",
    ]);
    assert_eq!(plain, "aGk=\n");
    // The whole response as text: tab-separated values.
    let text = lab.ok(&[
        "encrypt",
        "--key-id",
        &key,
        "--plaintext",
        "aGk=",
        "--output",
        "text",
    ]);
    let fields: Vec<&str> = text.trim_end().split('\t').collect();
    assert_eq!(fields.len(), 3, "{text:?}");
    assert!(fields.contains(&arn.as_str()) && fields.contains(&"SYMMETRIC_DEFAULT"));
    let keys = lab.ok(&["list-keys", "--output", "text"]);
    assert!(keys.contains(&format!("KEYS\t{arn}\t{key}")), "{keys:?}");
    // JSON output is indented by 4, as the AWS CLI prints it.
    let json_text = lab.ok(&["list-keys"]);
    assert!(json_text.starts_with("{\n    \"Keys\": [\n"), "{json_text}");
    // A query naming nothing prints null.
    assert_eq!(lab.ok(&["list-keys", "--query", "Nothing"]), "null\n");
    // A bad query is a usage error.
    lab.usage_error(&["list-keys", "--query", "Keys[?"]);
}

#[test]
fn exit_codes_and_error_names() {
    let lab = Lab::new();
    let key = lab.create_key();
    // Service errors: 254 and the AWS exception name, one line of reason.
    let stderr = lab.service_error(
        &["describe-key", "--key-id", "alias/none"],
        "NotFoundException",
    );
    assert!(
        stderr.contains("when calling the DescribeKey operation"),
        "{stderr}"
    );
    lab.service_error(
        &[
            "describe-key",
            "--key-id",
            "00000000-0000-0000-0000-000000000000",
        ],
        "NotFoundException",
    );
    lab.service_error(
        &["create-key", "--key-usage", "SIGN_VERIFY"],
        "ValidationException",
    );
    lab.service_error(
        &["decrypt", "--ciphertext-blob", "AAAA"],
        "InvalidCiphertextException",
    );
    lab.service_error(
        &[
            "encrypt",
            "--key-id",
            &key,
            "--plaintext",
            "eA==",
            "--encryption-algorithm",
            "RSAES_OAEP_SHA_1",
        ],
        "InvalidKeyUsageException",
    );

    // Usage errors: 252.
    lab.usage_error(&["encrypt", "--key-id", &key]); // missing --plaintext
    lab.usage_error(&["describe-key"]); // missing --key-id
    let stderr = lab.usage_error(&[
        "encrypt",
        "--key-id",
        &key,
        "--plaintext",
        "fileb://no/such/file",
    ]);
    assert!(
        stderr.contains("--plaintext") && stderr.contains("no/such/file"),
        "{stderr}"
    );
    lab.usage_error(&["decrypt", "--ciphertext-blob", "fileb://missing.bin"]);
    lab.usage_error(&[
        "put-key-policy",
        "--key-id",
        &key,
        "--policy",
        "file://missing.json",
    ]);
    lab.usage_error(&["list-keys", "--output", "yaml"]);
    lab.usage_error(&["no-such-subcommand"]);
    lab.usage_error(&[
        "schedule-key-deletion",
        "--key-id",
        &key,
        "--pending-window-in-days",
        "seven",
    ]);
    lab.usage_error(&[
        "encrypt",
        "--key-id",
        &key,
        "--plaintext",
        "eA==",
        "--encryption-context",
        "{bad json",
    ]);
    // None of that touched the key.
    assert_eq!(
        lab.json(&["describe-key", "--key-id", &key])["KeyMetadata"]["KeyState"],
        "Enabled"
    );
}

#[test]
fn help_for_every_subcommand() {
    let lab = Lab::new();
    let top = lab.ok(&["--help"]);
    for sub in SUBCOMMANDS {
        assert!(top.contains(sub), "kms --help does not list {sub}");
        let help = lab.ok(&[sub, "--help"]);
        assert!(help.contains("Usage: kmsfs kms"), "{sub}: {help}");
        assert!(help.contains(sub), "{sub}: {help}");
        let short = lab.ok(&["help", sub]);
        assert!(short.contains("Usage"), "{sub}");
    }
    let help = lab.ok(&["decrypt", "--help"]);
    assert!(help.contains("--ciphertext-blob") && help.contains("--encryption-context"));
    // --help needs no key store.
    assert!(!lab.store.exists());
}

// ---------------------------------------------------------------------------
// The store: corruption, wrong secrets, concurrency
// ---------------------------------------------------------------------------

#[test]
fn corrupted_store_is_refused_and_left_byte_identical() {
    let lab = Lab::new();
    let key = lab.create_key();
    let good = lab.store_bytes();
    for i in [5, 20, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[i] ^= 0x10;
        std::fs::write(&lab.store, &bad).unwrap();
        for args in [
            vec!["list-keys"],
            vec!["create-key"],
            vec!["disable-key", "--key-id", key.as_str()],
        ] {
            let (code, stderr) = lab.fail(&args);
            assert_ne!(code, 0);
            assert!(stderr.contains("key store"), "byte {i}, {args:?}: {stderr}");
            assert_eq!(
                lab.store_bytes(),
                bad,
                "byte {i}, {args:?} changed the store"
            );
        }
    }
    std::fs::write(&lab.store, &good).unwrap();
    assert_eq!(
        lab.json(&["list-keys"])["Keys"].as_array().unwrap().len(),
        1
    );
}

#[test]
fn wrong_root_key_file_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::new();
    lab.create_key();
    let good = lab.store_bytes();
    // The root key of another store.
    let other = Lab::new();
    other.create_key();
    let root = lab.path("store/keystore.rootkey");
    let original_root = std::fs::read(&root).unwrap();
    std::fs::copy(other.path("store/keystore.rootkey"), &root).unwrap();
    let (code, stderr) = lab.fail(&["list-keys"]);
    assert_eq!(code, 254, "{stderr}");
    assert!(stderr.contains("cannot be authenticated"), "{stderr}");
    lab.fail(&["create-key"]);
    assert_eq!(lab.store_bytes(), good);
    // A root key file that is not one at all.
    std::fs::write(&root, b"garbage").unwrap();
    let (_, stderr) = lab.fail(&["list-keys"]);
    assert!(stderr.contains("root key"), "{stderr}");
    assert_eq!(lab.store_bytes(), good);
    // No root key file.
    std::fs::remove_file(&root).unwrap();
    lab.fail(&["list-keys"]);
    assert_eq!(lab.store_bytes(), good);
    assert!(
        !root.exists(),
        "a missing root key must not be replaced by a new one"
    );
    // The right key, but in a file others may read: refused until it is
    // private again.
    std::fs::write(&root, &original_root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_, stderr) = lab.fail(&["list-keys"]);
    assert!(stderr.contains("chmod 600"), "{stderr}");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        lab.json(&["list-keys"])["Keys"].as_array().unwrap().len(),
        1
    );
}

#[test]
fn passphrase_store() {
    let mut lab = Lab::new();
    std::fs::write(lab.path("pass"), "correct horse battery staple\n").unwrap();
    std::fs::write(lab.path("wrong"), "incorrect horse\n").unwrap();
    std::fs::write(lab.path("empty"), "").unwrap();
    lab.passphrase_file = Some(lab.path("pass"));
    let key = lab.create_key();
    assert!(!lab.path("store/keystore.rootkey").exists());
    let good = lab.store_bytes();
    assert_eq!(&good[..8], b"KMSFSKS\0");

    lab.passphrase_file = Some(lab.path("wrong"));
    let (code, stderr) = lab.fail(&["describe-key", "--key-id", &key]);
    assert_eq!(code, 254);
    assert!(stderr.contains("cannot be authenticated"), "{stderr}");
    lab.fail(&["create-key"]);
    assert_eq!(lab.store_bytes(), good);

    lab.passphrase_file = Some(lab.path("empty"));
    lab.fail(&["list-keys"]);
    lab.passphrase_file = Some(lab.path("missing"));
    lab.fail(&["list-keys"]);
    // No passphrase at all (and no terminal to ask on).
    lab.passphrase_file = None;
    let (_, stderr) = lab.fail(&["list-keys"]);
    assert!(stderr.contains("passphrase"), "{stderr}");
    assert_eq!(lab.store_bytes(), good);

    lab.passphrase_file = Some(lab.path("pass"));
    let d = lab.json(&["describe-key", "--key-id", &key]);
    assert_eq!(d["KeyMetadata"]["KeyState"], "Enabled");
}

#[test]
fn concurrent_cli_processes_lose_nothing() {
    let lab = Lab::new();
    lab.create_key(); // the store exists before the race
    let loop_script = r#"for i in $(seq 10); do "$KMSFS_BIN" kms create-key --description "$1-$i" >/dev/null || exit 1; done"#;
    let children: Vec<_> = ["a", "b"]
        .iter()
        .map(|tag| {
            lab.with_env(Command::new("bash"))
                .args(["-c", loop_script, "loop", tag])
                .env("KMSFS_BIN", BIN)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let keys = lab.json(&["list-keys"]);
    let keys = keys["Keys"].as_array().unwrap();
    assert_eq!(keys.len(), 21);
    let mut descriptions: Vec<String> = keys
        .iter()
        .map(|k| {
            let d = lab.json(&["describe-key", "--key-id", k["KeyId"].as_str().unwrap()]);
            d["KeyMetadata"]["Description"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .filter(|d| !d.is_empty())
        .collect();
    descriptions.sort();
    let mut expected: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|t| (1..=10).map(move |i| format!("{t}-{i}")))
        .collect();
    expected.sort();
    assert_eq!(descriptions, expected);
}

#[test]
fn concurrent_first_use_creates_one_store() {
    // Two processes racing to create the store (and its root key) must agree.
    let lab = Lab::new();
    let children: Vec<_> = (0..2)
        .map(|_| {
            lab.command()
                .args(["kms", "create-key"])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(
        lab.json(&["list-keys"])["Keys"].as_array().unwrap().len(),
        2
    );
}

// ---------------------------------------------------------------------------
// Key policy at the CLI: the invoking uid is the caller
// ---------------------------------------------------------------------------

fn policy_for_me(actions: &[&str]) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"User": [uid().to_string()]}, "Action": actions, "Resource": "*"}]
    })
    .to_string()
}

#[test]
fn administrator_only_policy_refuses_cryptography() {
    let lab = Lab::new();
    let key = lab.create_key();
    let plaintext = lab.write("p.txt", b"data");
    let before = lab.json(&["encrypt", "--key-id", &key, "--plaintext", &plaintext]);
    let before = lab.write("before.bin", &b64(&before["CiphertextBlob"]));
    // ADMIN_ACTIONS includes kms:Put*, so the lockout check passes unbypassed.
    lab.ok(&[
        "put-key-policy",
        "--key-id",
        &key,
        "--policy",
        &policy_for_me(ADMIN_ACTIONS),
    ]);

    let stderr = lab.service_error(
        &["encrypt", "--key-id", &key, "--plaintext", &plaintext],
        "AccessDeniedException",
    );
    assert!(stderr.contains(&format!("uid:{}", uid())), "{stderr}");
    lab.service_error(
        &["decrypt", "--ciphertext-blob", &before],
        "AccessDeniedException",
    );
    lab.service_error(
        &[
            "generate-data-key",
            "--key-id",
            &key,
            "--key-spec",
            "AES_256",
        ],
        "AccessDeniedException",
    );
    lab.service_error(
        &[
            "re-encrypt",
            "--ciphertext-blob",
            &before,
            "--destination-key-id",
            &key,
        ],
        "AccessDeniedException",
    );
    // Management still works.
    assert_eq!(lab.ok(&["disable-key", "--key-id", &key]), "");
    assert_eq!(
        lab.json(&["describe-key", "--key-id", &key])["KeyMetadata"]["KeyState"],
        "Disabled"
    );
    lab.ok(&["enable-key", "--key-id", &key]);
    lab.ok(&["enable-key-rotation", "--key-id", &key]);
    lab.ok(&[
        "create-alias",
        "--alias-name",
        "alias/managed",
        "--target-key-id",
        &key,
    ]);

    // Audit: the refusals are recorded under the invoking uid.
    let audit = std::fs::read_to_string(lab.path("store/keystore.audit.log")).unwrap();
    let denied: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["outcome"] == "AccessDeniedException")
        .collect();
    assert_eq!(denied.len(), 4, "{audit}");
    assert!(denied.iter().all(|l| l["callerUid"] == uid()));
    assert!(
        !audit.contains("ZGF0YQ=="),
        "the plaintext's base64 is in the audit log"
    );
}

#[test]
fn user_only_policy_refuses_management() {
    let lab = Lab::new();
    let key = lab.create_key();
    let users = policy_for_me(USER_ACTIONS);
    // Without the bypass, the lockout check refuses it.
    lab.service_error(
        &["put-key-policy", "--key-id", &key, "--policy", &users],
        "MalformedPolicyDocumentException",
    );
    lab.ok(&["disable-key", "--key-id", &key]);
    lab.ok(&["enable-key", "--key-id", &key]);
    lab.ok(&[
        "put-key-policy",
        "--key-id",
        &key,
        "--policy",
        &users,
        "--bypass-policy-lockout-safety-check",
    ]);
    lab.service_error(&["disable-key", "--key-id", &key], "AccessDeniedException");
    lab.service_error(
        &[
            "schedule-key-deletion",
            "--key-id",
            &key,
            "--pending-window-in-days",
            "7",
        ],
        "AccessDeniedException",
    );
    lab.service_error(
        &[
            "put-key-policy",
            "--key-id",
            &key,
            "--policy",
            &policy_for_me(&["kms:*"]),
        ],
        "AccessDeniedException",
    );
    lab.service_error(
        &[
            "create-alias",
            "--alias-name",
            "alias/nope",
            "--target-key-id",
            &key,
        ],
        "AccessDeniedException",
    );
    // Cryptography still works.
    let enc = lab.json(&["encrypt", "--key-id", &key, "--plaintext", "ZGF0YQ=="]);
    let dec = lab.json(&[
        "decrypt",
        "--ciphertext-blob",
        enc["CiphertextBlob"].as_str().unwrap(),
    ]);
    assert_eq!(b64(&dec["Plaintext"]), b"data");
    assert_eq!(
        lab.json(&["describe-key", "--key-id", &key])["KeyMetadata"]["KeyState"],
        "Enabled"
    );
}

#[test]
fn keystore_flag_overrides_the_environment() {
    let lab = Lab::new();
    let elsewhere = lab.path("elsewhere/ks");
    let out = lab
        .command()
        .args([
            "--keystore",
            elsewhere.to_str().unwrap(),
            "kms",
            "create-key",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(elsewhere.exists());
    assert!(
        !lab.store.exists(),
        "--keystore must win over KMSFS_KEYSTORE"
    );
}
