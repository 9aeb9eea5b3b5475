//! The operations of kmsfs issue 12 through `api::handle` (the JSON
//! protocol the CLI and the server use) over a `LocalKms`: tags, key
//! descriptions, key policies' names, last usage and how it reaches the
//! store, imported material deletion, GenerateRandom, custom key stores,
//! pagination and DryRun.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use kmsfs_kms::clock::{Clock, ManualClock};
use kmsfs_kms::local::LocalKms;
use kmsfs_kms::store::RootSecret;
use kmsfs_kms::{Caller, KmsError, api};

const T0: i64 = 1_700_000_000;

fn owner() -> Caller {
    Caller {
        uid: 1000,
        gid: 1000,
        groups: vec![],
        iam_user: None,
        region: None,
    }
}

fn stranger() -> Caller {
    Caller {
        uid: 4242,
        gid: 4242,
        groups: vec![],
        iam_user: None,
        region: None,
    }
}

fn open(path: &Path, clock: &Arc<ManualClock>) -> LocalKms {
    let clock: Arc<dyn Clock> = clock.clone();
    LocalKms::open(path, &RootSecret::KeyFile, clock)
        .unwrap()
        .with_owner(owner().uid)
}

struct Env {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    kms: LocalKms,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let kms = open(&dir.path().join("keystore"), &clock);
        Env { dir, clock, kms }
    }

    fn reopen(&self) -> LocalKms {
        open(&self.dir.path().join("keystore"), &self.clock)
    }

    fn call(&self, op: &str, body: Value) -> Result<Value, KmsError> {
        api::handle(&self.kms, &owner(), op, &body)
    }

    fn ok(&self, op: &str, body: Value) -> Value {
        self.call(op, body.clone())
            .unwrap_or_else(|e| panic!("{op} {body}: {} {e}", e.code()))
    }

    fn code(&self, op: &str, body: Value) -> &'static str {
        match self.call(op, body.clone()) {
            Ok(v) => panic!("{op} {body} succeeded: {v}"),
            Err(e) => e.code(),
        }
    }

    fn key(&self) -> String {
        self.ok("CreateKey", json!({}))["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

fn last_audit_outcome(env: &Env) -> String {
    let log = std::fs::read_to_string(env.dir.path().join("keystore.audit.log")).unwrap();
    let last: Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    format!(
        "{} {}",
        last["eventName"].as_str().unwrap(),
        last["outcome"].as_str().unwrap()
    )
}

#[test]
fn tags_are_added_replaced_listed_sorted_and_removed() {
    let env = Env::new();
    let key = env.key();
    env.ok(
        "TagResource",
        json!({"KeyId": key, "Tags": [{"TagKey": "b", "TagValue": "1"}, {"TagKey": "a", "TagValue": ""}]}),
    );
    env.ok(
        "TagResource",
        json!({"KeyId": key, "Tags": [{"TagKey": "b", "TagValue": "2"}]}),
    );
    let listed = env.ok("ListResourceTags", json!({"KeyId": key}));
    assert_eq!(
        listed["Tags"],
        json!([{"TagKey": "a", "TagValue": ""}, {"TagKey": "b", "TagValue": "2"}])
    );
    assert_eq!(listed["Truncated"], false);
    assert!(listed.get("NextMarker").is_none());
    env.ok(
        "UntagResource",
        json!({"KeyId": key, "TagKeys": ["a", "absent"]}),
    );
    let listed = env.ok("ListResourceTags", json!({"KeyId": key}));
    assert_eq!(listed["Tags"], json!([{"TagKey": "b", "TagValue": "2"}]));

    let tag = |k: &str| json!({"KeyId": key, "Tags": [{"TagKey": k, "TagValue": "v"}]});
    assert_eq!(env.code("TagResource", tag("aws:reserved")), "TagException");
    assert_eq!(
        env.code("TagResource", tag(&"k".repeat(129))),
        "ValidationException"
    );
    assert_eq!(
        env.code("UntagResource", json!({"KeyId": key, "TagKeys": ["aws:x"]})),
        "TagException"
    );
    // 49 more make 50; one more is too many, and nothing of it is kept.
    let many: Vec<Value> = (0..49)
        .map(|i| json!({"TagKey": format!("t{i:02}"), "TagValue": "v"}))
        .collect();
    env.ok("TagResource", json!({"KeyId": key, "Tags": many}));
    assert_eq!(env.code("TagResource", tag("one-too-many")), "TagException");
    let all = env.ok("ListResourceTags", json!({"KeyId": key, "Limit": 1000}));
    assert_eq!(all["Tags"].as_array().unwrap().len(), 50);
    // Tags at creation follow the same rules.
    assert_eq!(
        env.code(
            "CreateKey",
            json!({"Tags": [{"TagKey": "aws:x", "TagValue": ""}]})
        ),
        "TagException"
    );

    env.ok(
        "CreateAlias",
        json!({"AliasName": "alias/t", "TargetKeyId": key}),
    );
    assert_eq!(
        env.code("ListResourceTags", json!({"KeyId": "alias/t"})),
        "NotFoundException"
    );
    assert_eq!(
        env.code("TagResource", json!({"KeyId": "alias/t", "Tags": []})),
        "NotFoundException"
    );
    assert_eq!(
        api::handle(&env.kms, &stranger(), "TagResource", &tag("x"))
            .map_err(|e| e.code())
            .err(),
        Some("AccessDeniedException")
    );
    env.ok(
        "ScheduleKeyDeletion",
        json!({"KeyId": key, "PendingWindowInDays": 7}),
    );
    assert_eq!(
        env.code("TagResource", tag("x")),
        "KMSInvalidStateException"
    );
    assert_eq!(
        env.code("UntagResource", json!({"KeyId": key, "TagKeys": ["b"]})),
        "KMSInvalidStateException"
    );
    // Listing still works on a key pending deletion.
    env.ok("ListResourceTags", json!({"KeyId": key}));
}

#[test]
fn description_updates_and_refusals() {
    let env = Env::new();
    let key = env.key();
    env.ok(
        "UpdateKeyDescription",
        json!({"KeyId": key, "Description": "new words"}),
    );
    let meta = env.ok("DescribeKey", json!({"KeyId": key}));
    assert_eq!(meta["KeyMetadata"]["Description"], "new words");
    env.ok(
        "CreateAlias",
        json!({"AliasName": "alias/d", "TargetKeyId": key}),
    );
    assert_eq!(
        env.code(
            "UpdateKeyDescription",
            json!({"KeyId": "alias/d", "Description": "x"})
        ),
        "NotFoundException"
    );
    assert_eq!(
        env.code(
            "UpdateKeyDescription",
            json!({"KeyId": key, "Description": "x".repeat(8193)})
        ),
        "ValidationException"
    );
    assert_eq!(
        env.code("UpdateKeyDescription", json!({"KeyId": key})),
        "ValidationException"
    );
    env.ok("ScheduleKeyDeletion", json!({"KeyId": key}));
    assert_eq!(
        env.code(
            "UpdateKeyDescription",
            json!({"KeyId": key, "Description": "x"})
        ),
        "KMSInvalidStateException"
    );
    let policies = env.ok("ListKeyPolicies", json!({"KeyId": key}));
    assert_eq!(
        policies,
        json!({"PolicyNames": ["default"], "Truncated": false})
    );
    assert_eq!(
        env.code("ListKeyPolicies", json!({"KeyId": key, "Limit": 0})),
        "ValidationException"
    );
}

#[test]
fn last_usage_is_seen_at_once_here_and_after_a_write_elsewhere() {
    let env = Env::new();
    let key = env.key();
    let before = env.ok("GetKeyLastUsage", json!({"KeyId": key}));
    assert!(before.get("KeyLastUsage").is_none(), "{before}");
    assert_eq!(before["KeyCreationDate"], T0);
    assert_eq!(before["TrackingStartDate"], T0);

    env.clock.advance(60);
    env.ok(
        "Encrypt",
        json!({"KeyId": key, "Plaintext": B64.encode(b"x")}),
    );
    let after = env.ok("GetKeyLastUsage", json!({"KeyId": key}));
    assert_eq!(after["KeyLastUsage"]["Operation"], "Encrypt");
    assert_eq!(after["KeyLastUsage"]["Timestamp"], T0 + 60);

    // Another process reads the store: not there until this one writes.
    let other = env.reopen();
    let seen = api::handle(&other, &owner(), "GetKeyLastUsage", &json!({"KeyId": key})).unwrap();
    assert!(seen.get("KeyLastUsage").is_none(), "{seen}");
    env.ok(
        "UpdateKeyDescription",
        json!({"KeyId": key, "Description": "any write"}),
    );
    let seen = api::handle(&other, &owner(), "GetKeyLastUsage", &json!({"KeyId": key})).unwrap();
    assert_eq!(seen["KeyLastUsage"]["Timestamp"], T0 + 60);

    // A process that ends writes what it recorded.
    env.clock.advance(60);
    let blob = {
        let third = env.reopen();
        let out = api::handle(
            &third,
            &owner(),
            "GenerateDataKey",
            &json!({"KeyId": key, "KeySpec": "AES_256"}),
        )
        .unwrap();
        out["CiphertextBlob"].clone()
    };
    let seen = api::handle(&other, &owner(), "GetKeyLastUsage", &json!({"KeyId": key})).unwrap();
    assert_eq!(seen["KeyLastUsage"]["Operation"], "GenerateDataKey");
    assert_eq!(seen["KeyLastUsage"]["Timestamp"], T0 + 120);
    drop(other);

    // ReEncrypt counts for both keys; DryRun for none.
    env.clock.advance(60);
    let second = env.key();
    env.ok(
        "ReEncrypt",
        json!({"CiphertextBlob": blob, "DestinationKeyId": second}),
    );
    for k in [&key, &second] {
        let u = env.ok("GetKeyLastUsage", json!({"KeyId": k}));
        assert_eq!(u["KeyLastUsage"]["Operation"], "ReEncrypt", "{k}");
    }
    env.clock.advance(60);
    env.code(
        "Encrypt",
        json!({"KeyId": key, "Plaintext": B64.encode(b"x"), "DryRun": true}),
    );
    let u = env.ok("GetKeyLastUsage", json!({"KeyId": key}));
    assert_eq!(u["KeyLastUsage"]["Timestamp"], T0 + 180);
    assert_eq!(
        api::handle(
            &env.kms,
            &stranger(),
            "GetKeyLastUsage",
            &json!({"KeyId": key})
        )
        .map_err(|e| e.code())
        .err(),
        Some("AccessDeniedException")
    );
}

#[test]
fn dry_run_authorizes_validates_and_does_nothing() {
    let env = Env::new();
    let key = env.key();
    let plain = B64.encode(b"secret");
    let blob =
        env.ok("Encrypt", json!({"KeyId": key, "Plaintext": plain}))["CiphertextBlob"].clone();
    let dry = |op: &str, body: Value| env.code(op, body);
    assert_eq!(
        dry(
            "Encrypt",
            json!({"KeyId": key, "Plaintext": plain, "DryRun": true})
        ),
        "DryRunOperationException"
    );
    assert_eq!(last_audit_outcome(&env), "Encrypt DryRunOperationException");
    assert_eq!(
        dry("Decrypt", json!({"CiphertextBlob": blob, "DryRun": true})),
        "DryRunOperationException"
    );
    assert_eq!(
        dry(
            "ReEncrypt",
            json!({"CiphertextBlob": blob, "DestinationKeyId": key, "DryRun": true})
        ),
        "DryRunOperationException"
    );
    assert_eq!(
        dry(
            "GenerateDataKey",
            json!({"KeyId": key, "NumberOfBytes": 32, "DryRun": true})
        ),
        "DryRunOperationException"
    );
    assert_eq!(
        dry(
            "GenerateDataKeyWithoutPlaintext",
            json!({"KeyId": key, "KeySpec": "AES_128", "DryRun": true})
        ),
        "DryRunOperationException"
    );
    let e = env
        .call(
            "Encrypt",
            json!({"KeyId": key, "Plaintext": plain, "DryRun": true}),
        )
        .unwrap_err();
    assert_eq!(
        e.message(),
        "The request would have succeeded, but the DryRun option is set."
    );

    // Refusals are the real ones.
    assert_eq!(
        dry(
            "Encrypt",
            json!({"KeyId": key, "Plaintext": "", "DryRun": true})
        ),
        "ValidationException"
    );
    assert_eq!(
        dry(
            "GenerateDataKey",
            json!({"KeyId": key, "NumberOfBytes": 0, "DryRun": true})
        ),
        "ValidationException"
    );
    assert_eq!(
        dry(
            "Decrypt",
            json!({"CiphertextBlob": blob, "EncryptionContext": {"a": "b"}, "DryRun": true})
        ),
        "InvalidCiphertextException"
    );
    assert_eq!(
        api::handle(
            &env.kms,
            &stranger(),
            "Encrypt",
            &json!({"KeyId": key, "Plaintext": plain, "DryRun": true})
        )
        .map_err(|e| e.code())
        .err(),
        Some("AccessDeniedException")
    );
    env.ok("DisableKey", json!({"KeyId": key}));
    assert_eq!(
        dry(
            "Encrypt",
            json!({"KeyId": key, "Plaintext": plain, "DryRun": true})
        ),
        "DisabledException"
    );
    assert_eq!(
        dry("Decrypt", json!({"CiphertextBlob": blob, "DryRun": true})),
        "DisabledException"
    );
    env.ok("EnableKey", json!({"KeyId": key}));
    // DryRun false is an ordinary call.
    env.ok(
        "Encrypt",
        json!({"KeyId": key, "Plaintext": plain, "DryRun": false}),
    );
    // The flag does not outlive the call.
    env.ok("Encrypt", json!({"KeyId": key, "Plaintext": plain}));
    assert_eq!(last_audit_outcome(&env), "Encrypt Success");
}

#[test]
fn list_operations_page_with_markers() {
    let env = Env::new();
    let mut keys: Vec<String> = (0..7).map(|_| env.key()).collect();
    keys.sort();
    let mut seen = vec![];
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut body = json!({"Limit": 3});
        if let Some(m) = &marker {
            body["Marker"] = json!(m);
        }
        let page = env.ok("ListKeys", body);
        pages += 1;
        seen.extend(
            page["Keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["KeyId"].as_str().unwrap().to_string()),
        );
        if page["Truncated"] == true {
            marker = Some(page["NextMarker"].as_str().unwrap().to_string());
        } else {
            assert!(page.get("NextMarker").is_none());
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, keys);
    assert_eq!(
        env.code("ListKeys", json!({"Marker": "bogus"})),
        "InvalidMarkerException"
    );
    assert_eq!(
        env.code("ListKeys", json!({"Limit": 1001})),
        "ValidationException"
    );
    // A marker of one listing is not one of another.
    let m = env.ok("ListKeys", json!({"Limit": 1}))["NextMarker"].clone();
    assert_eq!(
        env.code("ListAliases", json!({"Marker": m})),
        "InvalidMarkerException"
    );

    for (i, k) in keys.iter().take(3).enumerate() {
        env.ok(
            "CreateAlias",
            json!({"AliasName": format!("alias/p{i}"), "TargetKeyId": k}),
        );
    }
    let first = env.ok("ListAliases", json!({"Limit": 2}));
    assert_eq!(first["Aliases"].as_array().unwrap().len(), 2);
    let rest = env.ok("ListAliases", json!({"Marker": first["NextMarker"]}));
    assert_eq!(rest["Aliases"][0]["AliasName"], "alias/p2");
    assert_eq!(rest["Truncated"], false);

    for _ in 0..3 {
        env.ok("RotateKeyOnDemand", json!({"KeyId": keys[0]}));
    }
    let r1 = env.ok("ListKeyRotations", json!({"KeyId": keys[0], "Limit": 2}));
    assert_eq!(r1["Rotations"].as_array().unwrap().len(), 2);
    let r2 = env.ok(
        "ListKeyRotations",
        json!({"KeyId": keys[0], "Marker": r1["NextMarker"]}),
    );
    assert_eq!(r2["Rotations"].as_array().unwrap().len(), 1);
    assert_eq!(
        env.code(
            "ListKeyRotations",
            json!({"KeyId": keys[0], "IncludeKeyMaterial": "SOME"})
        ),
        "ValidationException"
    );
}

#[test]
fn imported_material_deletion_only_for_external_keys() {
    let env = Env::new();
    let key = env.key();
    assert_eq!(
        env.code("DeleteImportedKeyMaterial", json!({"KeyId": key})),
        "UnsupportedOperationException"
    );
    let ext = env.ok("CreateKey", json!({"Origin": "EXTERNAL"}))["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let out = env.ok("DeleteImportedKeyMaterial", json!({"KeyId": ext}));
    assert!(out["KeyId"].as_str().unwrap().ends_with(&ext));
    let meta = env.ok("DescribeKey", json!({"KeyId": ext}));
    assert_eq!(meta["KeyMetadata"]["KeyState"], "PendingImport");
    assert_eq!(
        env.code(
            "DeleteImportedKeyMaterial",
            json!({"KeyId": ext, "KeyMaterialId": "nothex"})
        ),
        "ValidationException"
    );
    assert_eq!(
        env.code(
            "DeleteImportedKeyMaterial",
            json!({"KeyId": ext, "KeyMaterialId": "a".repeat(64)})
        ),
        "NotFoundException"
    );
}

#[test]
fn generate_random_and_custom_key_stores() {
    let env = Env::new();
    let out = env.ok("GenerateRandom", json!({"NumberOfBytes": 1024}));
    let bytes = B64.decode(out["Plaintext"].as_str().unwrap()).unwrap();
    assert_eq!(bytes.len(), 1024);
    assert!(bytes.iter().any(|b| *b != 0));
    let other = B64
        .decode(
            env.ok("GenerateRandom", json!({"NumberOfBytes": 1024}))["Plaintext"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    assert_ne!(bytes, other);
    // Operations that name no key are the account's: a caller who is
    // neither root nor the store's owner needs an identity policy, and a
    // uid with no IAM user has none.
    for (op, input) in [
        ("GenerateRandom", json!({"NumberOfBytes": 1})),
        ("CreateKey", json!({})),
        ("ListKeys", json!({})),
        ("ListAliases", json!({})),
        ("DescribeCustomKeyStores", json!({})),
        ("CreateCustomKeyStore", json!({"CustomKeyStoreName": "n"})),
    ] {
        let err = api::handle(&env.kms, &stranger(), op, &input).unwrap_err();
        assert_eq!(err.code(), "AccessDeniedException", "{op}");
        assert!(
            err.to_string()
                .contains("because no identity-based policy allows the kms:"),
            "{op}: {err}"
        );
    }
    assert!(env.ok("ListKeys", json!({}))["Keys"].as_array().is_some());
    for bad in [
        json!({}),
        json!({"NumberOfBytes": 0}),
        json!({"NumberOfBytes": 1025}),
    ] {
        assert_eq!(env.code("GenerateRandom", bad), "ValidationException");
    }
    assert_eq!(
        env.code(
            "GenerateRandom",
            json!({"NumberOfBytes": 8, "CustomKeyStoreId": "cks-1"})
        ),
        "CustomKeyStoreNotFoundException"
    );
    assert_eq!(
        env.code(
            "GenerateRandom",
            json!({"NumberOfBytes": 8, "Recipient": {"AttestationDocument": "aGk="}})
        ),
        "UnsupportedOperationException"
    );

    let described = env.ok("DescribeCustomKeyStores", json!({}));
    assert_eq!(
        described,
        json!({"CustomKeyStores": [], "Truncated": false})
    );
    assert_eq!(
        env.code(
            "DescribeCustomKeyStores",
            json!({"CustomKeyStoreId": "cks-1"})
        ),
        "CustomKeyStoreNotFoundException"
    );
    assert_eq!(
        env.code(
            "DescribeCustomKeyStores",
            json!({"CustomKeyStoreName": "n"})
        ),
        "CustomKeyStoreNotFoundException"
    );
    assert_eq!(
        env.code("DescribeCustomKeyStores", json!({"Marker": "x"})),
        "InvalidMarkerException"
    );
    for op in [
        "ConnectCustomKeyStore",
        "DisconnectCustomKeyStore",
        "UpdateCustomKeyStore",
        "DeleteCustomKeyStore",
    ] {
        assert_eq!(
            env.code(op, json!({"CustomKeyStoreId": "cks-1"})),
            "CustomKeyStoreNotFoundException",
            "{op}"
        );
        assert_eq!(env.code(op, json!({})), "ValidationException", "{op}");
    }
    assert_eq!(
        env.code(
            "CreateCustomKeyStore",
            json!({"CustomKeyStoreName": "hsm", "CloudHsmClusterId": "cluster-234567abcdefg"})
        ),
        "UnsupportedOperationException"
    );
    assert_eq!(
        last_audit_outcome(&env),
        "CreateCustomKeyStore UnsupportedOperationException"
    );
    assert_eq!(
        env.code("CreateKey", json!({"CustomKeyStoreId": "cks-1"})),
        "CustomKeyStoreNotFoundException"
    );
    for origin in ["AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"] {
        assert_eq!(
            env.code("CreateKey", json!({"Origin": origin})),
            "CustomKeyStoreNotFoundException"
        );
    }
}
