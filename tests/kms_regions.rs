//! Regions and accounts, end to end: one store serves every region; a key
//! lives in the region it was created in and is NotFound from any other;
//! clients are configured the ordinary way (a named region in the AWS config
//! file for the AWS CLI, `region_name` for boto3, `--region` / AWS_REGION /
//! the config file for `kmsfs kms`); the account id is a store setting; a
//! store written before regions keeps its keys' ARNs; and identical
//! state-changing requests inside the signature window all succeed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;

use common::BIN;
use common::kms_server::{AccessKey, KmsServer};

const ACCOUNT: &str = "111122223333";

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A server over a new store created with account [`ACCOUNT`] and no
/// region in its environment (so its default region is `local`), and an
/// access key of the IAM user of the Unix user running the test.
fn start() -> (KmsServer, AccessKey) {
    let s = KmsServer::start_with(&[], &[("KMSFS_ACCOUNT_ID", ACCOUNT)]);
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    let key = s.user_with_key(&me);
    (s, key)
}

/// An AWS config file whose default profile is in `region`, and a profile
/// `eu` in eu-west-1: how AWS CLI users name their region. (A named profile
/// takes its credentials from the files, not the environment, so `eu`
/// carries them.)
fn aws_config(s: &KmsServer, key: &AccessKey, region: &str) -> PathBuf {
    let path = s.dir.path().join(format!("config-{region}"));
    std::fs::write(
        &path,
        format!(
            "[default]\nregion = {region}\noutput = json\n\n[profile eu]\nregion = eu-west-1\n\
             aws_access_key_id = {}\naws_secret_access_key = {}\n",
            key.id, key.secret
        ),
    )
    .unwrap();
    path
}

/// The AWS CLI with its region from `config` only; its JSON output.
fn aws_json(s: &KmsServer, key: &AccessKey, config: &Path, args: &[&str]) -> Value {
    let out = s.aws_in(key, &[("AWS_CONFIG_FILE", config.to_str().unwrap())], args);
    assert!(out.status.success(), "aws {args:?}: {}", text(&out));
    if out.stdout.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_key_lives_in_its_region_and_is_not_found_from_another() {
    let (s, key) = start();
    let us = aws_config(&s, &key, "us-east-1");
    // The AWS CLI configured the usual way (`aws configure`: us-east-1).
    let meta = aws_json(
        &s,
        &key,
        &us,
        &["kms", "create-key", "--description", "in us"],
    );
    let id = meta["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    let arn = meta["KeyMetadata"]["Arn"].as_str().unwrap().to_string();
    assert_eq!(arn, format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{id}"));
    assert_eq!(meta["KeyMetadata"]["AWSAccountId"], ACCOUNT);
    aws_json(
        &s,
        &key,
        &us,
        &[
            "kms",
            "create-alias",
            "--alias-name",
            "alias/app",
            "--target-key-id",
            &id,
        ],
    );
    // The profile `eu` of the same config file is in eu-west-1.
    let out = s.aws_in(
        &key,
        &[("AWS_CONFIG_FILE", us.to_str().unwrap())],
        &["--profile", "eu", "kms", "describe-key", "--key-id", &id],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(NotFoundException)"),
        "{}",
        text(&out)
    );

    let got = s.boto3(
        &key,
        &format!(
        r#"
us, eu = kms('us-east-1'), kms('eu-west-1')
key_id, arn = '{id}', '{arn}'
assert us.describe_key(KeyId=key_id)['KeyMetadata']['Arn'] == arn
assert us.describe_key(KeyId='alias/app')['KeyMetadata']['KeyId'] == key_id
# From another region: by id, by ARN, by alias, all NotFound.
for ref in (key_id, arn, 'alias/app'):
    c, m = code(eu.describe_key, KeyId=ref)
    assert c == 'NotFoundException', (ref, c, m)
c, m = code(eu.describe_key, KeyId=key_id)
assert m == "Key 'arn:aws:kms:eu-west-1:{ACCOUNT}:key/" + key_id + "' does not exist", m
assert code(eu.encrypt, KeyId=key_id, Plaintext=b'x')[0] == 'NotFoundException'
assert [k['KeyId'] for k in eu.list_keys()['Keys']] == []
assert [k['KeyId'] for k in us.list_keys()['Keys']] == [key_id]
assert [a['AliasName'] for a in eu.list_aliases()['Aliases']] == []
assert [a['AliasArn'] for a in us.list_aliases()['Aliases']] == ['arn:aws:kms:us-east-1:{ACCOUNT}:alias/app']
# Aliases are regional: the same name points elsewhere in eu-west-1.
eu_key = eu.create_key()['KeyMetadata']
assert eu_key['Arn'] == 'arn:aws:kms:eu-west-1:{ACCOUNT}:key/' + eu_key['KeyId']
eu.create_alias(AliasName='alias/app', TargetKeyId=eu_key['KeyId'])
assert eu.describe_key(KeyId='alias/app')['KeyMetadata']['KeyId'] == eu_key['KeyId']
assert us.describe_key(KeyId='alias/app')['KeyMetadata']['KeyId'] == key_id
# A ciphertext is only good in its key's region.
blob = us.encrypt(KeyId=key_id, Plaintext=b'secret')['CiphertextBlob']
assert us.decrypt(CiphertextBlob=blob)['Plaintext'] == b'secret'
assert code(eu.decrypt, CiphertextBlob=blob)[0] == 'InvalidCiphertextException'
# Another account's ARN: NotFound, naming the ARN, as AWS answers.
other = 'arn:aws:kms:us-east-1:999999999999:key/' + key_id
c, m = code(us.describe_key, KeyId=other)
assert (c, m) == ('NotFoundException', "Key '" + other + "' does not exist"), (c, m)
print('ok')
"#
    ));
    assert_eq!(got.trim(), "ok");
}

#[test]
fn the_same_state_change_twice_in_a_row_succeeds() {
    let (s, key) = start();
    let us = aws_config(&s, &key, "us-east-1");
    let id = aws_json(&s, &key, &us, &["kms", "create-key"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let state = || {
        aws_json(&s, &key, &us, &["kms", "describe-key", "--key-id", &id])["KeyMetadata"]["KeyState"]
            .clone()
    };
    // A script's disable, enable, disable, all inside one second: the first
    // and third requests can be byte-identical (botocore signs no nonce).
    for (cmd, want) in [
        ("disable-key", "Disabled"),
        ("enable-key", "Enabled"),
        ("disable-key", "Disabled"),
        ("disable-key", "Disabled"),
    ] {
        aws_json(&s, &key, &us, &["kms", cmd, "--key-id", &id]);
        assert_eq!(state(), want, "after {cmd}");
    }
    aws_json(&s, &key, &us, &["kms", "enable-key", "--key-id", &id]);
    for _ in 0..2 {
        aws_json(
            &s,
            &key,
            &us,
            &["kms", "rotate-key-on-demand", "--key-id", &id],
        );
    }
    let rotations = aws_json(
        &s,
        &key,
        &us,
        &["kms", "list-key-rotations", "--key-id", &id],
    );
    assert_eq!(
        rotations["Rotations"].as_array().unwrap().len(),
        2,
        "{rotations}"
    );
}

/// `kmsfs kms` on the embedded store: its region from `--region`, then
/// AWS_REGION, then the AWS config file; with none, the store's default.
#[test]
fn the_cli_resolves_the_region_as_the_aws_cli_does() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("keystore");
    let config = dir.path().join("config");
    std::fs::write(&config, "[default]\nregion = ap-south-1\n").unwrap();
    let run = |env: &[(&str, &str)], args: &[&str]| -> Output {
        let mut c = Command::new(BIN);
        c.arg("--keystore")
            .arg(&store)
            .arg("kms")
            .args(args)
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_PROFILE")
            .env_remove("KMSFS_PASSPHRASE_FILE")
            .env("AWS_CONFIG_FILE", dir.path().join("none"));
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let arn_of = |env: &[(&str, &str)], args: &[&str]| -> String {
        let out = run(env, args);
        assert!(out.status.success(), "{}", text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["KeyMetadata"]["Arn"].as_str().unwrap().to_string()
    };
    let default = arn_of(&[], &["create-key"]);
    assert!(
        default.starts_with("arn:aws:kms:local:000000000000:key/"),
        "{default}"
    );
    let flag = arn_of(
        &[("AWS_REGION", "eu-west-1")],
        &["--region", "eu-north-1", "create-key"],
    );
    assert!(flag.starts_with("arn:aws:kms:eu-north-1:"), "{flag}");
    let env = arn_of(&[("AWS_DEFAULT_REGION", "sa-east-1")], &["create-key"]);
    assert!(env.starts_with("arn:aws:kms:sa-east-1:"), "{env}");
    let config_s = config.to_str().unwrap();
    let file = arn_of(&[("AWS_CONFIG_FILE", config_s)], &["create-key"]);
    assert!(file.starts_with("arn:aws:kms:ap-south-1:"), "{file}");
    // Each region lists its own keys only.
    let listed = |region: &str| -> Vec<String> {
        let out = run(
            &[],
            &["--region", region, "list-keys", "--query", "Keys[].KeyArn"],
        );
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(listed("eu-north-1"), vec![flag.clone()]);
    assert_eq!(listed("ap-south-1"), vec![file]);
    let out = run(
        &[("AWS_REGION", "sa-east-1")],
        &["describe-key", "--key-id", &flag],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NotFoundException"),
        "{}",
        text(&out)
    );
    // Without a region, a key ARN names its own region and is found.
    let out = run(&[], &["describe-key", "--key-id", &flag]);
    assert!(out.status.success(), "{}", text(&out));
}

/// A store written before regions (the fixed volume_v1 fixture): its keys
/// keep their ARNs and aliases, read through the current build.
#[test]
fn a_store_from_before_regions_keeps_its_arns() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/volume_v1");
    for name in ["keystore", "keystore.rootkey"] {
        let to = dir.path().join(name);
        std::fs::copy(fixture.join(name), &to).unwrap();
        // The store refuses a root key others could read (git keeps 0644).
        std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    let store = dir.path().join("keystore");
    let kms = |args: &[&str]| -> Value {
        let out = Command::new(BIN)
            .arg("--keystore")
            .arg(&store)
            .arg("kms")
            .args(args)
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("KMSFS_PASSPHRASE_FILE")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .output()
            .unwrap();
        assert!(out.status.success(), "kms {args:?}: {}", text(&out));
        if out.stdout.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let before = kms(&["list-keys"]);
    let keys = before["Keys"].as_array().unwrap().clone();
    assert!(!keys.is_empty(), "{before}");
    for k in &keys {
        let id = k["KeyId"].as_str().unwrap();
        assert_eq!(
            k["KeyArn"].as_str().unwrap(),
            format!("arn:aws:kms:local:000000000000:key/{id}")
        );
    }
    let first = keys[0]["KeyId"].as_str().unwrap().to_string();
    // A change rewrites the store in the current layout; ARNs stay.
    kms(&[
        "create-alias",
        "--alias-name",
        "alias/after",
        "--target-key-id",
        &first,
    ]);
    assert_eq!(kms(&["list-keys"])["Keys"], Value::Array(keys));
    let aliases = kms(&["--region", "local", "list-aliases", "--key-id", &first]);
    assert_eq!(
        aliases["Aliases"][0]["AliasArn"],
        "arn:aws:kms:local:000000000000:alias/after"
    );
    let described = kms(&[
        "--region",
        "local",
        "describe-key",
        "--key-id",
        "alias/after",
    ]);
    assert_eq!(described["KeyMetadata"]["KeyId"], first.as_str());
}
