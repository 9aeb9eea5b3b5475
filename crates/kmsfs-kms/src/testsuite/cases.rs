//! The cases of the conformance suite. Each takes a [`Harness`], makes its
//! own keys (cases never share one, so they may run in parallel against one
//! store) and panics on the first difference from the contract. Refusals are
//! checked by AWS exception name ([`KmsError::code`]), which names exactly
//! one variant for every refusal checked here.
//!
//! They are public so a backend may also call one directly, but they are
//! meant to be instantiated by [`key_service_conformance!`](crate::key_service_conformance).

use std::fmt::Debug;

use uuid::Uuid;

use super::{Harness, StateChanges, Support, supports};
use crate::blob::{self, EncryptionContext};
use crate::{DataKeyPair, KeyState, KmsError};

const NOT_FOUND: &str = "NotFoundException";
const DISABLED: &str = "DisabledException";
const INVALID_STATE: &str = "KMSInvalidStateException";
const INVALID_CIPHERTEXT: &str = "InvalidCiphertextException";
const ACCESS_DENIED: &str = "AccessDeniedException";
const INVALID_KEY_USAGE: &str = "InvalidKeyUsageException";

fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn no_ctx() -> EncryptionContext {
    EncryptionContext::new()
}

fn ok<T>(h: &dyn Harness, what: &str, r: Result<T, KmsError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!(
            "{}: {what} failed: {} ({})",
            h.backend(),
            e.code(),
            e.message()
        ),
    }
}

fn refused<T: Debug>(h: &dyn Harness, what: &str, r: Result<T, KmsError>, code: &str) {
    match r {
        Ok(v) => panic!("{}: {what} succeeded ({v:?}); expected {code}", h.backend()),
        Err(e) => assert_eq!(
            e.code(),
            code,
            "{}: {what} refused with the wrong exception: {}",
            h.backend(),
            e.message()
        ),
    }
}

fn new_key(h: &dyn Harness) -> String {
    ok(h, "create_key (harness)", h.admin().create_key())
}

fn data_key(h: &dyn Harness, arn: &str, c: &EncryptionContext) -> DataKeyPair {
    ok(
        h,
        "generate_data_key",
        h.service().generate_data_key(&h.caller(), arn, c),
    )
}

/// The key id (UUID) at the end of a key ARN.
fn key_uuid(h: &dyn Harness, arn: &str) -> Uuid {
    arn.rsplit_once("key/")
        .and_then(|(_, id)| Uuid::parse_str(id).ok())
        .unwrap_or_else(|| panic!("{}: {arn:?} is not a key ARN", h.backend()))
}

/// The ARN of a key that does not exist, beside `arn`.
fn unknown_arn(h: &dyn Harness, arn: &str) -> String {
    let id = key_uuid(h, arn);
    arn.replace(&id.to_string(), &Uuid::new_v4().to_string())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The header of a kmsfs blob; only for backends with `kmsfs_blobs`.
fn header(h: &dyn Harness, blob_bytes: &[u8]) -> blob::BlobHeader {
    ok(h, "parse_header", blob::parse_header(blob_bytes))
}

/// The version `arn` encrypts with now, by describe_key.
fn current_version(h: &dyn Harness, arn: &str) -> Option<u32> {
    ok(
        h,
        "describe_key",
        h.service().describe_key(&h.caller(), arn),
    )
    .current_version
}

pub fn data_key_is_32_fresh_bytes(h: &dyn Harness) {
    let arn = new_key(h);
    let a = data_key(h, &arn, &no_ctx());
    let b = data_key(h, &arn, &no_ctx());
    assert_eq!(a.plaintext.len(), 32, "{}: AES-256 data key", h.backend());
    assert_ne!(
        a.ciphertext_blob,
        a.plaintext.as_slice(),
        "{}: blob is the plaintext",
        h.backend()
    );
    assert!(
        !contains(&a.ciphertext_blob, &a.plaintext),
        "{}: the blob carries the data key in the clear",
        h.backend()
    );
    assert_ne!(
        a.plaintext,
        b.plaintext,
        "{}: two data keys are equal",
        h.backend()
    );
    assert_ne!(
        a.ciphertext_blob,
        b.ciphertext_blob,
        "{}: two blobs are equal",
        h.backend()
    );
    assert_eq!(a.key_arn, arn, "{}: data key names its CMK", h.backend());
}

pub fn data_key_decrypts_to_its_plaintext(h: &dyn Harness) {
    let arn = new_key(h);
    let pair = data_key(h, &arn, &no_ctx());
    let d = ok(
        h,
        "decrypt",
        h.service()
            .decrypt(&h.caller(), &pair.ciphertext_blob, &no_ctx()),
    );
    assert_eq!(d.plaintext, pair.plaintext, "{}: plaintext", h.backend());
    assert_eq!(d.key_arn, arn, "{}: decrypt names the CMK", h.backend());
    assert_eq!(d.key_version, pair.key_version, "{}: version", h.backend());
}

pub fn blob_names_its_key(h: &dyn Harness) {
    // Two keys: decrypt needs no key id, so the blob itself must say which.
    let (a, b) = (new_key(h), new_key(h));
    let headers = supports(
        h,
        "blob_names_its_key (header)",
        h.capabilities().kmsfs_blobs,
    );
    for arn in [&a, &b] {
        let pair = data_key(h, arn, &no_ctx());
        let d = ok(
            h,
            "decrypt",
            h.service()
                .decrypt(&h.caller(), &pair.ciphertext_blob, &no_ctx()),
        );
        assert_eq!(&d.key_arn, arn, "{}: the blob's key", h.backend());
        if headers {
            let head = header(h, &pair.ciphertext_blob);
            assert_eq!(head.key_id, key_uuid(h, arn), "{}: header key", h.backend());
            assert_eq!(head.key_version, pair.key_version, "{}", h.backend());
            assert_eq!(
                Some(head.key_version),
                current_version(h, arn),
                "{}: a new blob names the current version",
                h.backend()
            );
        }
    }
}

pub fn context_round_trip(h: &dyn Harness) {
    let arn = new_key(h);
    let c = ctx(&[("volume", "v-1"), ("file", "42")]);
    let pair = data_key(h, &arn, &c);
    // Built anew, in another order: the context is a set of pairs.
    let same = ctx(&[("file", "42"), ("volume", "v-1")]);
    let d = ok(
        h,
        "decrypt with its context",
        h.service()
            .decrypt(&h.caller(), &pair.ciphertext_blob, &same),
    );
    assert_eq!(d.plaintext, pair.plaintext, "{}", h.backend());
    assert_eq!(d.key_arn, arn, "{}", h.backend());
}

pub fn wrong_context_refused(h: &dyn Harness) {
    let arn = new_key(h);
    let pair = data_key(h, &arn, &ctx(&[("file", "42")]));
    for wrong in [
        ctx(&[("file", "43")]),
        ctx(&[("fil", "42")]),
        ctx(&[("file", "42 ")]),
    ] {
        refused(
            h,
            &format!("decrypt with context {wrong:?}"),
            h.service()
                .decrypt(&h.caller(), &pair.ciphertext_blob, &wrong),
            INVALID_CIPHERTEXT,
        );
    }
    // The blob itself is fine.
    ok(
        h,
        "decrypt with the right context",
        h.service()
            .decrypt(&h.caller(), &pair.ciphertext_blob, &ctx(&[("file", "42")])),
    );
}

pub fn missing_context_refused(h: &dyn Harness) {
    let arn = new_key(h);
    let pair = data_key(h, &arn, &ctx(&[("file", "42")]));
    refused(
        h,
        "decrypt without its context",
        h.service()
            .decrypt(&h.caller(), &pair.ciphertext_blob, &no_ctx()),
        INVALID_CIPHERTEXT,
    );
}

pub fn extra_context_refused(h: &dyn Harness) {
    let arn = new_key(h);
    let bare = data_key(h, &arn, &no_ctx());
    refused(
        h,
        "decrypt of a context-free blob with a context",
        h.service()
            .decrypt(&h.caller(), &bare.ciphertext_blob, &ctx(&[("file", "42")])),
        INVALID_CIPHERTEXT,
    );
    let one = data_key(h, &arn, &ctx(&[("file", "42")]));
    refused(
        h,
        "decrypt with an extra context pair",
        h.service().decrypt(
            &h.caller(),
            &one.ciphertext_blob,
            &ctx(&[("file", "42"), ("volume", "v-1")]),
        ),
        INVALID_CIPHERTEXT,
    );
}

pub fn re_encrypt_across_keys(h: &dyn Harness) {
    let (a, b) = (new_key(h), new_key(h));
    let c = ctx(&[("file", "7")]);
    let pair = data_key(h, &a, &c);
    let w = ok(
        h,
        "re_encrypt to another key",
        h.service()
            .re_encrypt(&h.caller(), &pair.ciphertext_blob, &c, &b),
    );
    assert_eq!(w.key_arn, b, "{}: names the destination", h.backend());
    assert_ne!(w.ciphertext_blob, pair.ciphertext_blob, "{}", h.backend());
    let d = ok(
        h,
        "decrypt of the re-encrypted blob",
        h.service().decrypt(&h.caller(), &w.ciphertext_blob, &c),
    );
    assert_eq!(
        d.plaintext,
        pair.plaintext,
        "{}: same data key",
        h.backend()
    );
    assert_eq!(
        d.key_arn,
        b,
        "{}: decrypted by the destination",
        h.backend()
    );
    assert_eq!(d.key_version, w.key_version, "{}", h.backend());
    // The context stays bound to the new blob.
    refused(
        h,
        "decrypt of the re-encrypted blob without its context",
        h.service()
            .decrypt(&h.caller(), &w.ciphertext_blob, &no_ctx()),
        INVALID_CIPHERTEXT,
    );
    // The source blob is untouched.
    let old = ok(
        h,
        "decrypt of the source blob",
        h.service().decrypt(&h.caller(), &pair.ciphertext_blob, &c),
    );
    assert_eq!(old.key_arn, a, "{}", h.backend());
    refused(
        h,
        "re_encrypt with the wrong source context",
        h.service().re_encrypt(
            &h.caller(),
            &pair.ciphertext_blob,
            &ctx(&[("file", "8")]),
            &b,
        ),
        INVALID_CIPHERTEXT,
    );
    if supports(
        h,
        "re_encrypt_across_keys (header)",
        h.capabilities().kmsfs_blobs,
    ) {
        assert_eq!(
            header(h, &w.ciphertext_blob).key_id,
            key_uuid(h, &b),
            "{}",
            h.backend()
        );
    }
}

pub fn re_encrypt_across_versions(h: &dyn Harness) {
    let arn = new_key(h);
    let c = ctx(&[("file", "9")]);
    let pair = data_key(h, &arn, &c);
    ok(h, "rotate_key (harness)", h.admin().rotate_key(&arn));
    h.settle();
    let versions = supports(
        h,
        "re_encrypt_across_versions (versions)",
        h.capabilities().key_versions,
    );
    let current = current_version(h, &arn);
    if versions {
        assert_eq!(
            current,
            Some(pair.key_version + 1),
            "{}: rotation makes a new current version",
            h.backend()
        );
    }
    // The old blob still opens, under its own version.
    let d = ok(
        h,
        "decrypt of a blob of the previous version",
        h.service().decrypt(&h.caller(), &pair.ciphertext_blob, &c),
    );
    assert_eq!(d.plaintext, pair.plaintext, "{}", h.backend());
    assert_eq!(d.key_version, pair.key_version, "{}", h.backend());
    // Re-encrypting to the same key moves it to the current version.
    let w = ok(
        h,
        "re_encrypt to the rotated key",
        h.service()
            .re_encrypt(&h.caller(), &pair.ciphertext_blob, &c, &arn),
    );
    assert_eq!(w.key_arn, arn, "{}", h.backend());
    assert_eq!(Some(w.key_version), current, "{}", h.backend());
    let d2 = ok(
        h,
        "decrypt of the re-encrypted blob",
        h.service().decrypt(&h.caller(), &w.ciphertext_blob, &c),
    );
    assert_eq!(d2.plaintext, pair.plaintext, "{}", h.backend());
    assert_eq!(d2.key_version, w.key_version, "{}", h.backend());
    // New data keys use the current version too.
    let fresh = data_key(h, &arn, &c);
    assert_eq!(Some(fresh.key_version), current, "{}", h.backend());
    if versions
        && supports(
            h,
            "re_encrypt_across_versions (header)",
            h.capabilities().kmsfs_blobs,
        )
    {
        assert_eq!(
            Some(header(h, &w.ciphertext_blob).key_version),
            current,
            "{}",
            h.backend()
        );
        assert_eq!(
            header(h, &pair.ciphertext_blob).key_version,
            pair.key_version,
            "{}",
            h.backend()
        );
    }
}

pub fn describe_key_reports_enabled(h: &dyn Harness) {
    let arn = new_key(h);
    let d = ok(
        h,
        "describe_key",
        h.service().describe_key(&h.caller(), &arn),
    );
    assert_eq!(d.key_arn, arn, "{}", h.backend());
    assert_eq!(d.state, KeyState::Enabled, "{}", h.backend());
    let pair = data_key(h, &arn, &no_ctx());
    assert_eq!(d.current_version, Some(pair.key_version), "{}", h.backend());
    if supports(
        h,
        "describe_key_reports_enabled (versions)",
        h.capabilities().key_versions,
    ) {
        assert_eq!(d.current_version, Some(1), "{}: a new key", h.backend());
    }
    // By its bare key id, the same key.
    let by_id = ok(
        h,
        "describe_key by key id",
        h.service()
            .describe_key(&h.caller(), &key_uuid(h, &arn).to_string()),
    );
    assert_eq!(by_id.key_arn, arn, "{}", h.backend());
}

pub fn disabled_key_is_described_disabled(h: &dyn Harness) {
    let arn = new_key(h);
    ok(h, "disable_key (harness)", h.admin().disable_key(&arn));
    h.settle();
    let d = ok(
        h,
        "describe_key",
        h.service().describe_key(&h.caller(), &arn),
    );
    assert_eq!(d.state, KeyState::Disabled, "{}", h.backend());
    assert_eq!(d.key_arn, arn, "{}", h.backend());
    // Documented difference: a remote client learns versions only by using
    // the key, which a disabled key refuses.
    let expected = match h.capabilities().versions_of_unusable_keys {
        super::Support::Yes => Some(1),
        super::Support::No(_) => None,
    };
    assert_eq!(d.current_version, expected, "{}", h.backend());
    ok(h, "enable_key (harness)", h.admin().enable_key(&arn));
    h.settle();
    let d = ok(
        h,
        "describe_key",
        h.service().describe_key(&h.caller(), &arn),
    );
    assert_eq!(d.state, KeyState::Enabled, "{}", h.backend());
}

pub fn disabled_key_refuses_data_keys(h: &dyn Harness) {
    if !supports(
        h,
        "disabled_key_refuses_data_keys",
        h.capabilities().key_states,
    ) {
        return;
    }
    let arn = new_key(h);
    ok(h, "disable_key (harness)", h.admin().disable_key(&arn));
    h.settle();
    refused(
        h,
        "generate_data_key of a disabled key",
        h.service().generate_data_key(&h.caller(), &arn, &no_ctx()),
        DISABLED,
    );
}

pub fn disabled_key_refuses_decrypt(h: &dyn Harness) {
    if !supports(
        h,
        "disabled_key_refuses_decrypt",
        h.capabilities().key_states,
    ) {
        return;
    }
    let arn = new_key(h);
    let c = ctx(&[("file", "1")]);
    let pair = data_key(h, &arn, &c);
    ok(h, "disable_key (harness)", h.admin().disable_key(&arn));
    let early = h.service().decrypt(&h.caller(), &pair.ciphertext_blob, &c);
    match h.capabilities().state_changes {
        StateChanges::Immediate => refused(h, "decrypt under a disabled key", early, DISABLED),
        // The documented difference: what was unwrapped is still served…
        StateChanges::AfterSettle(_) => {
            let d = ok(h, "decrypt of an unwrapped key before settle", early);
            assert_eq!(d.plaintext, pair.plaintext, "{}", h.backend());
        }
    }
    // …but never past the promised bound.
    h.settle();
    refused(
        h,
        "decrypt under a disabled key",
        h.service().decrypt(&h.caller(), &pair.ciphertext_blob, &c),
        DISABLED,
    );
}

pub fn disabled_key_refuses_re_encrypt(h: &dyn Harness) {
    if !supports(
        h,
        "disabled_key_refuses_re_encrypt",
        h.capabilities().key_states,
    ) {
        return;
    }
    let (a, b) = (new_key(h), new_key(h));
    let pair = data_key(h, &a, &no_ctx());
    ok(h, "disable_key (harness)", h.admin().disable_key(&a));
    h.settle();
    refused(
        h,
        "re_encrypt from a disabled key",
        h.service()
            .re_encrypt(&h.caller(), &pair.ciphertext_blob, &no_ctx(), &b),
        DISABLED,
    );
    ok(h, "enable_key (harness)", h.admin().enable_key(&a));
    ok(h, "disable_key (harness)", h.admin().disable_key(&b));
    h.settle();
    refused(
        h,
        "re_encrypt to a disabled key",
        h.service()
            .re_encrypt(&h.caller(), &pair.ciphertext_blob, &no_ctx(), &b),
        DISABLED,
    );
}

pub fn re_enabled_key_works_again(h: &dyn Harness) {
    let arn = new_key(h);
    let pair = data_key(h, &arn, &no_ctx());
    ok(h, "disable_key (harness)", h.admin().disable_key(&arn));
    h.settle();
    ok(h, "enable_key (harness)", h.admin().enable_key(&arn));
    h.settle();
    let d = ok(
        h,
        "decrypt after re-enabling",
        h.service()
            .decrypt(&h.caller(), &pair.ciphertext_blob, &no_ctx()),
    );
    assert_eq!(d.plaintext, pair.plaintext, "{}", h.backend());
    let again = data_key(h, &arn, &no_ctx());
    assert_eq!(again.key_arn, arn, "{}", h.backend());
}

pub fn pending_deletion_is_described(h: &dyn Harness) {
    let arn = new_key(h);
    ok(
        h,
        "schedule_key_deletion (harness)",
        h.admin().schedule_key_deletion(&arn),
    );
    h.settle();
    let d = ok(
        h,
        "describe_key",
        h.service().describe_key(&h.caller(), &arn),
    );
    assert_eq!(d.state, KeyState::PendingDeletion, "{}", h.backend());
    assert_eq!(d.key_arn, arn, "{}", h.backend());
}

pub fn pending_deletion_refuses_use(h: &dyn Harness) {
    if !supports(
        h,
        "pending_deletion_refuses_use",
        h.capabilities().key_states,
    ) {
        return;
    }
    let (a, b) = (new_key(h), new_key(h));
    let pair = data_key(h, &a, &no_ctx());
    let pair_b = data_key(h, &b, &no_ctx());
    ok(
        h,
        "schedule_key_deletion (harness)",
        h.admin().schedule_key_deletion(&a),
    );
    h.settle();
    refused(
        h,
        "generate_data_key of a key pending deletion",
        h.service().generate_data_key(&h.caller(), &a, &no_ctx()),
        INVALID_STATE,
    );
    refused(
        h,
        "decrypt under a key pending deletion",
        h.service()
            .decrypt(&h.caller(), &pair.ciphertext_blob, &no_ctx()),
        INVALID_STATE,
    );
    refused(
        h,
        "re_encrypt from a key pending deletion",
        h.service()
            .re_encrypt(&h.caller(), &pair.ciphertext_blob, &no_ctx(), &b),
        INVALID_STATE,
    );
    refused(
        h,
        "re_encrypt to a key pending deletion",
        h.service()
            .re_encrypt(&h.caller(), &pair_b.ciphertext_blob, &no_ctx(), &a),
        INVALID_STATE,
    );
}

pub fn pending_import_refuses_use(h: &dyn Harness) {
    if !supports(
        h,
        "pending_import_refuses_use",
        h.capabilities().pending_import,
    ) {
        return;
    }
    let arn = ok(
        h,
        "create_pending_import_key (harness)",
        h.admin().create_pending_import_key(),
    );
    let d = ok(
        h,
        "describe_key",
        h.service().describe_key(&h.caller(), &arn),
    );
    assert_eq!(d.state, KeyState::PendingImport, "{}", h.backend());
    assert_eq!(d.current_version, None, "{}: no material yet", h.backend());
    refused(
        h,
        "generate_data_key of a key pending import",
        h.service().generate_data_key(&h.caller(), &arn, &no_ctx()),
        INVALID_STATE,
    );
    let other = new_key(h);
    let pair = data_key(h, &other, &no_ctx());
    refused(
        h,
        "re_encrypt to a key pending import",
        h.service()
            .re_encrypt(&h.caller(), &pair.ciphertext_blob, &no_ctx(), &arn),
        INVALID_STATE,
    );
}

pub fn unknown_key_not_found(h: &dyn Harness) {
    let arn = new_key(h);
    let unknown = unknown_arn(h, &arn);
    refused(
        h,
        "generate_data_key of an unknown key",
        h.service()
            .generate_data_key(&h.caller(), &unknown, &no_ctx()),
        NOT_FOUND,
    );
    refused(
        h,
        "describe_key of an unknown key",
        h.service().describe_key(&h.caller(), &unknown),
        NOT_FOUND,
    );
    refused(
        h,
        "describe_key of an unknown key id",
        h.service()
            .describe_key(&h.caller(), &Uuid::new_v4().to_string()),
        NOT_FOUND,
    );
    let pair = data_key(h, &arn, &no_ctx());
    refused(
        h,
        "re_encrypt to an unknown key",
        h.service()
            .re_encrypt(&h.caller(), &pair.ciphertext_blob, &no_ctx(), &unknown),
        NOT_FOUND,
    );
}

pub fn blob_of_unknown_key_not_found(h: &dyn Harness) {
    if !supports(
        h,
        "blob_of_unknown_key_not_found",
        h.capabilities().kmsfs_blobs,
    ) {
        return;
    }
    let (a, b) = (new_key(h), new_key(h));
    let pair = data_key(h, &a, &no_ctx());
    // A blob that names a key id no store has (bytes 3..19, FORMAT.md).
    let mut forged = pair.ciphertext_blob.clone();
    forged[3..19].copy_from_slice(Uuid::new_v4().as_bytes());
    assert_ne!(header(h, &forged).key_id, key_uuid(h, &a));
    refused(
        h,
        "decrypt of a blob of an unknown key",
        h.service().decrypt(&h.caller(), &forged, &no_ctx()),
        NOT_FOUND,
    );
    refused(
        h,
        "re_encrypt of a blob of an unknown key",
        h.service().re_encrypt(&h.caller(), &forged, &no_ctx(), &b),
        NOT_FOUND,
    );
}

pub fn tampered_blob_refused(h: &dyn Harness) {
    let (arn, other) = (new_key(h), new_key(h));
    let c = ctx(&[("file", "5")]);
    let pair = data_key(h, &arn, &c);
    let blob = &pair.ciphertext_blob;
    let flip = |i: usize| {
        let mut b = blob.clone();
        b[i] ^= 0x01;
        b
    };
    let mut variants = vec![
        ("last byte flipped", flip(blob.len() - 1)),
        ("middle byte flipped", flip(blob.len() / 2)),
        ("last byte cut", blob[..blob.len() - 1].to_vec()),
        (
            "bytes of no key service",
            b"certainly not a ciphertext blob".to_vec(),
        ),
    ];
    if supports(
        h,
        "tampered_blob_refused (header)",
        h.capabilities().kmsfs_blobs,
    ) {
        // The key version field (bytes 19..23) names a version the key lacks.
        let mut b = blob.clone();
        b[19..23].copy_from_slice(&99u32.to_be_bytes());
        variants.push(("version changed", b));
    }
    for (what, bad) in &variants {
        refused(
            h,
            &format!("decrypt of a blob with its {what}"),
            h.service().decrypt(&h.caller(), bad, &c),
            INVALID_CIPHERTEXT,
        );
        refused(
            h,
            &format!("re_encrypt of a blob with its {what}"),
            h.service().re_encrypt(&h.caller(), bad, &c, &other),
            INVALID_CIPHERTEXT,
        );
    }
    let d = ok(
        h,
        "decrypt of the untampered blob",
        h.service().decrypt(&h.caller(), blob, &c),
    );
    assert_eq!(d.plaintext, pair.plaintext, "{}", h.backend());
}

pub fn outsider_refused_by_policy(h: &dyn Harness) {
    if !supports(h, "outsider_refused_by_policy", h.capabilities().key_policy) {
        return;
    }
    let (a, b) = (new_key(h), new_key(h));
    let c = ctx(&[("file", "3")]);
    let pair = data_key(h, &a, &c);
    let o = ok(h, "outsider (harness)", h.outsider(&a));
    refused(
        h,
        "generate_data_key by an outsider",
        o.service.generate_data_key(&o.caller, &a, &c),
        ACCESS_DENIED,
    );
    refused(
        h,
        "decrypt by an outsider",
        o.service.decrypt(&o.caller, &pair.ciphertext_blob, &c),
        ACCESS_DENIED,
    );
    refused(
        h,
        "re_encrypt by an outsider",
        o.service
            .re_encrypt(&o.caller, &pair.ciphertext_blob, &c, &b),
        ACCESS_DENIED,
    );
    refused(
        h,
        "describe_key by an outsider",
        o.service.describe_key(&o.caller, &a),
        ACCESS_DENIED,
    );
}

/// An asymmetric (signing) key is described like any other, but wraps no
/// data keys and takes no re-encrypted blobs: InvalidKeyUsageException, as
/// AWS answers. Envelope encryption needs a symmetric key.
pub fn signing_key_refuses_data_keys(h: &dyn Harness) {
    let signer = match h.admin().create_signing_key() {
        Ok(arn) => arn,
        Err(KmsError::UnsupportedOperation(_)) => {
            supports(
                h,
                "signing_key_refuses_data_keys",
                Support::No("the harness has no create_signing_key step"),
            );
            return;
        }
        Err(e) => panic!("{}: create_signing_key: {e}", h.backend()),
    };
    h.settle();
    let d = ok(
        h,
        "describe_key of a signing key",
        h.service().describe_key(&h.caller(), &signer),
    );
    assert_eq!(d.key_arn, signer, "{}", h.backend());
    assert_eq!(d.state, KeyState::Enabled, "{}", h.backend());
    refused(
        h,
        "generate_data_key of a signing key",
        h.service()
            .generate_data_key(&h.caller(), &signer, &no_ctx()),
        INVALID_KEY_USAGE,
    );
    let symmetric = new_key(h);
    let pair = data_key(h, &symmetric, &no_ctx());
    refused(
        h,
        "re_encrypt to a signing key",
        h.service()
            .re_encrypt(&h.caller(), &pair.ciphertext_blob, &no_ctx(), &signer),
        INVALID_KEY_USAGE,
    );
}
