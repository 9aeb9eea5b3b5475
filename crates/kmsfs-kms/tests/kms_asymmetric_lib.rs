//! Asymmetric and HMAC keys through the library: their material survives
//! the store being closed and reopened (sealed, never in the clear), the
//! key policy and key states govern them as they do symmetric keys, DryRun
//! is audited and changes nothing, and each refusal has AWS's name.

use std::sync::Arc;

use serde_json::json;

use kmsfs_kms::api;
use kmsfs_kms::clock::ManualClock;
use kmsfs_kms::local::{CreateKeyInput, DRY_RUN_MESSAGE, LocalKms};
use kmsfs_kms::store::RootSecret;
use kmsfs_kms::{Caller, KmsError};

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

fn open(path: &std::path::Path) -> LocalKms {
    LocalKms::open(
        path,
        &RootSecret::KeyFile,
        Arc::new(ManualClock::new(1_700_000_000)),
    )
    .unwrap()
    .with_owner(owner().uid)
}

fn key(kms: &LocalKms, spec: &str, usage: &str) -> String {
    kms.create_key(
        &owner(),
        CreateKeyInput {
            key_spec: spec.into(),
            key_usage: usage.into(),
            ..CreateKeyInput::default()
        },
    )
    .unwrap()
    .arn
}

fn code<T>(r: Result<T, KmsError>) -> &'static str {
    match r {
        Ok(_) => "Ok",
        Err(e) => e.code(),
    }
}

#[test]
fn material_survives_reopening_and_is_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keystore");
    let (signer, mac_key, public, signature, mac) = {
        let kms = open(&path);
        let signer = key(&kms, "ECC_NIST_P256", "SIGN_VERIFY");
        let mac_key = key(&kms, "HMAC_384", "GENERATE_VERIFY_MAC");
        let public = kms.get_public_key(&owner(), &signer).unwrap().public_key;
        let (_, signature) = kms
            .sign(&owner(), &signer, b"m", None, "ECDSA_SHA_256", false)
            .unwrap();
        let (_, mac) = kms
            .generate_mac(&owner(), &mac_key, b"m", "HMAC_SHA_384", false)
            .unwrap();
        (signer, mac_key, public, signature, mac)
    };
    let kms = open(&path);
    assert_eq!(
        kms.get_public_key(&owner(), &signer).unwrap().public_key,
        public
    );
    kms.verify(
        &owner(),
        &signer,
        b"m",
        None,
        &signature,
        "ECDSA_SHA_256",
        false,
    )
    .unwrap();
    kms.verify_mac(&owner(), &mac_key, b"m", &mac, "HMAC_SHA_384", false)
        .unwrap();
    let info = kms.describe_key(&owner(), &signer).unwrap();
    assert_eq!(info.key_spec.as_str(), "ECC_NIST_P256");
    assert_eq!(info.key_usage.as_str(), "SIGN_VERIFY");
    // The public key's bytes (and so the private key's DER, which embeds
    // it) are nowhere in the store file: it is sealed as a whole.
    let stored = std::fs::read(&path).unwrap();
    let point = &public[public.len() - 32..];
    assert!(!stored.windows(point.len()).any(|w| w == point));
}

#[test]
fn policy_and_states_govern_asymmetric_keys() {
    let dir = tempfile::tempdir().unwrap();
    let kms = open(&dir.path().join("keystore"));
    let signer = key(&kms, "RSA_2048", "SIGN_VERIFY");
    // Only the creator is in the default policy.
    assert_eq!(
        code(kms.sign(
            &stranger(),
            &signer,
            b"m",
            None,
            "RSASSA_PSS_SHA_256",
            false
        )),
        "AccessDeniedException"
    );
    assert_eq!(
        code(kms.get_public_key(&stranger(), &signer)),
        "AccessDeniedException"
    );
    // A policy that grants the stranger Verify but not Sign.
    kms.put_key_policy(
        &owner(),
        &signer,
        None,
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"User": ["1000"]}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"User": ["4242"]}, "Action": ["kms:Verify"], "Resource": "*"}
        ]})
        .to_string(),
        false,
    )
    .unwrap();
    let (_, sig) = kms
        .sign(&owner(), &signer, b"m", None, "RSASSA_PSS_SHA_256", false)
        .unwrap();
    kms.verify(
        &stranger(),
        &signer,
        b"m",
        None,
        &sig,
        "RSASSA_PSS_SHA_256",
        false,
    )
    .unwrap();
    let e = kms
        .sign(
            &stranger(),
            &signer,
            b"m",
            None,
            "RSASSA_PSS_SHA_256",
            false,
        )
        .unwrap_err();
    assert_eq!(e.code(), "AccessDeniedException");
    assert!(e.message().contains("kms:Sign"), "{e}");

    // Pending deletion: no use; cancelled, the key is Disabled (it has
    // material), not PendingImport.
    kms.schedule_key_deletion(&owner(), &signer, Some(7))
        .unwrap();
    assert_eq!(
        code(kms.sign(&owner(), &signer, b"m", None, "RSASSA_PSS_SHA_256", false)),
        "KMSInvalidStateException"
    );
    kms.cancel_key_deletion(&owner(), &signer).unwrap();
    assert_eq!(
        kms.describe_key(&owner(), &signer).unwrap().state.as_str(),
        "Disabled"
    );
    assert_eq!(
        code(kms.sign(&owner(), &signer, b"m", None, "RSASSA_PSS_SHA_256", false)),
        "DisabledException"
    );
    kms.enable_key(&owner(), &signer).unwrap();
    kms.sign(&owner(), &signer, b"m", None, "RSASSA_PSS_SHA_256", false)
        .unwrap();
}

#[test]
fn dry_run_checks_everything_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keystore");
    let kms = open(&path);
    let signer = key(&kms, "ECC_SECG_P256K1", "SIGN_VERIFY");
    let e = kms
        .sign(&owner(), &signer, b"m", None, "ECDSA_SHA_256", true)
        .unwrap_err();
    assert!(matches!(e, KmsError::DryRunOperation(ref m) if m == DRY_RUN_MESSAGE));
    // A DryRun that would fail fails as the real call would.
    assert_eq!(
        code(kms.sign(&owner(), &signer, b"m", None, "ECDSA_SHA_384", true)),
        "InvalidKeyUsageException"
    );
    assert_eq!(
        code(kms.sign(&stranger(), &signer, b"m", None, "ECDSA_SHA_256", true)),
        "AccessDeniedException"
    );
    assert_eq!(
        code(kms.sign(
            &owner(),
            &signer,
            &[0; 31],
            Some("DIGEST"),
            "ECDSA_SHA_256",
            true
        )),
        "ValidationException"
    );
    let audit = std::fs::read_to_string(dir.path().join("keystore.audit.log")).unwrap();
    assert!(
        audit.contains("\"DryRunOperationException\""),
        "the audit log records the DryRun outcome: {audit}"
    );
    // Neither a dry run nor GetPublicKey is a use; a Sign is.
    assert!(
        kms.get_key_last_usage(&owner(), &signer)
            .unwrap()
            .last
            .is_none()
    );
    kms.get_public_key(&owner(), &signer).unwrap();
    assert!(
        kms.get_key_last_usage(&owner(), &signer)
            .unwrap()
            .last
            .is_none()
    );
    kms.sign(&owner(), &signer, b"m", None, "ECDSA_SHA_256", false)
        .unwrap();
    let last = kms.get_key_last_usage(&owner(), &signer).unwrap().last;
    assert_eq!(last.map(|l| l.operation).as_deref(), Some("Sign"));
}

#[test]
fn requests_are_validated_before_the_key_is_looked_up() {
    let dir = tempfile::tempdir().unwrap();
    let kms = open(&dir.path().join("keystore"));
    let signer = key(&kms, "ECC_NIST_P256", "SIGN_VERIFY");
    let call = |op: &str, body: serde_json::Value| code(api::handle(&kms, &owner(), op, &body));
    let m = "bQ=="; // "m"
    assert_eq!(
        call(
            "Sign",
            json!({"KeyId": signer, "Message": m, "SigningAlgorithm": "ECDSA_SHA_999"})
        ),
        "ValidationException"
    );
    assert_eq!(
        call(
            "Sign",
            json!({"KeyId": signer, "Message": m, "MessageType": "HASHED", "SigningAlgorithm": "ECDSA_SHA_256"})
        ),
        "ValidationException"
    );
    assert_eq!(
        call(
            "Sign",
            json!({"KeyId": signer, "Message": "", "SigningAlgorithm": "ECDSA_SHA_256"})
        ),
        "ValidationException"
    );
    let big = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [0u8; 4097]);
    assert_eq!(
        call(
            "Sign",
            json!({"KeyId": signer, "Message": big, "SigningAlgorithm": "ECDSA_SHA_256"})
        ),
        "ValidationException"
    );
    // A valid request on a key that does not exist.
    assert_eq!(
        call(
            "Sign",
            json!({"KeyId": "alias/none", "Message": m, "SigningAlgorithm": "ECDSA_SHA_256"})
        ),
        "NotFoundException"
    );
    assert_eq!(
        call(
            "GenerateMac",
            json!({"KeyId": signer, "Message": m, "MacAlgorithm": "HMAC_MD5"})
        ),
        "ValidationException"
    );
    assert_eq!(
        call(
            "DeriveSharedSecret",
            json!({"KeyId": signer, "KeyAgreementAlgorithm": "DH", "PublicKey": m})
        ),
        "ValidationException"
    );
    assert_eq!(
        call(
            "GenerateDataKeyPair",
            json!({"KeyId": signer, "KeyPairSpec": "RSA_1024"})
        ),
        "ValidationException"
    );
    assert_eq!(
        call(
            "GenerateDataKeyPair",
            json!({"KeyId": signer, "KeyPairSpec": "RSA_2048", "Recipient": {"AttestationDocument": m}})
        ),
        "UnsupportedOperationException"
    );
    // Members as AWS names them come back in the response.
    let r = api::handle(
        &kms,
        &owner(),
        "Sign",
        &json!({"KeyId": signer, "Message": m, "SigningAlgorithm": "ECDSA_SHA_256"}),
    )
    .unwrap();
    assert!(r["Signature"].is_string() && r["KeyId"].is_string(), "{r}");
    let d = api::handle(&kms, &owner(), "DescribeKey", &json!({"KeyId": signer})).unwrap();
    assert_eq!(
        d["KeyMetadata"]["SigningAlgorithms"],
        json!(["ECDSA_SHA_256"])
    );
    assert!(
        d["KeyMetadata"].get("EncryptionAlgorithms").is_none(),
        "{d}"
    );
}
