//! The [`KeyService`] conformance suite: one set of cases, written once and
//! run against every backend (the embedded store, the caching wrapper, the
//! kmsfs server over HTTP and over its Unix socket, AWS KMS on moto).
//!
//! Why it exists: the backends are interchangeable behind `KeyService`, so
//! a volume must not be able to tell which one it has — the same data keys,
//! the same context binding, the same refusals with the same AWS exception
//! names. Tests written per backend drift apart; these cannot.
//!
//! Why a cargo feature (`testsuite`) in this crate: every backend's tests
//! can reach it without a dependency cycle — this crate's own tests through
//! a dev-dependency on itself, the server crate's tests through a
//! dev-dependency with the feature on. Nothing of it is in a normal build.
//!
//! Shape (as rustls and rage run their tests once per provider):
//! - a backend's test file implements [`Harness`]: the service under test,
//!   plus the administrative steps `KeyService` does not have (create a key,
//!   disable, schedule deletion, rotate, find a caller the policy refuses);
//! - [`key_service_conformance!`](crate::key_service_conformance) turns every
//!   case of [`cases`] into its own `#[test]` for that harness;
//! - what a backend cannot do is a [`Support::No`] with its reason in
//!   [`Capabilities`]; a case that needs it is skipped with that reason
//!   printed to the test's stderr (past libtest's capture), never silently.

pub mod cases;
mod local;

use std::io::Write;
use std::sync::Arc;

pub use local::{LocalStore, other_uid};

use crate::{Caller, KeyService, KmsError};

/// Whether a backend can do something a case needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Yes,
    /// It cannot; the reason is printed with every case it skips.
    No(&'static str),
}

/// How soon a state change made by an administrative step reaches a decrypt
/// of a data key the service has already unwrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateChanges {
    /// At once: every decrypt asks the key store.
    Immediate,
    /// Not before [`Harness::settle`]: the backend may keep answering from
    /// what it unwrapped earlier, for a bounded time that `settle` lets pass
    /// (a data key cache's max age). The reason says where that is promised.
    AfterSettle(&'static str),
}

/// What a backend can do, and its documented differences from the embedded
/// store. Start from [`Capabilities::FULL`] and switch off what is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Ciphertext blobs are kmsfs blobs (docs/FORMAT.md): their clear
    /// header names the key and key version, so the suite can read it and
    /// forge a blob of a key that does not exist.
    pub kmsfs_blobs: Support,
    /// The key version a call reports follows rotation (1, then 2, …).
    pub key_versions: Support,
    /// `describe_key` reports the current version of a key that is not
    /// Enabled (and not pending import).
    pub versions_of_unusable_keys: Support,
    /// Disabled and PendingDeletion keys refuse cryptographic use.
    pub key_states: Support,
    /// A key can be created waiting for imported material (PendingImport).
    pub pending_import: Support,
    /// Key policies are enforced: [`Harness::outsider`] works.
    pub key_policy: Support,
    /// When a key's state change reaches decrypts of unwrapped data keys.
    pub state_changes: StateChanges,
}

impl Capabilities {
    pub const FULL: Capabilities = Capabilities {
        kmsfs_blobs: Support::Yes,
        key_versions: Support::Yes,
        versions_of_unusable_keys: Support::Yes,
        key_states: Support::Yes,
        pending_import: Support::Yes,
        key_policy: Support::Yes,
        state_changes: StateChanges::Immediate,
    };
}

/// A caller the key policy does not name as a key user, and the service
/// through which it calls.
pub struct Outsider {
    pub service: Arc<dyn KeyService>,
    pub caller: Caller,
}

/// What the `KeyService` trait cannot do but the cases need done to a
/// backend's keys. One implementation serves every harness over a local
/// store ([`local::LocalStore`]); a foreign service (AWS KMS on moto)
/// brings its own.
pub trait KeyAdmin {
    /// A new symmetric key, Enabled, with fresh material (version 1).
    fn create_key(&self) -> Result<String, KmsError>;

    /// A new key waiting for imported material (Capabilities::pending_import).
    fn create_pending_import_key(&self) -> Result<String, KmsError> {
        Err(KmsError::UnsupportedOperation(
            "this harness has no create_pending_import_key step".into(),
        ))
    }

    /// A new asymmetric signing key (ECC_NIST_P256, SIGN_VERIFY), Enabled.
    fn create_signing_key(&self) -> Result<String, KmsError> {
        Err(KmsError::UnsupportedOperation(
            "this harness has no create_signing_key step".into(),
        ))
    }

    fn disable_key(&self, arn: &str) -> Result<(), KmsError>;

    fn enable_key(&self, arn: &str) -> Result<(), KmsError>;

    /// Schedules deletion with the shortest window (7 days).
    fn schedule_key_deletion(&self, arn: &str) -> Result<(), KmsError>;

    /// Rotates on demand: new material becomes current, old stays for
    /// decryption.
    fn rotate_key(&self, arn: &str) -> Result<(), KmsError>;
}

/// A backend under test. Keys are named by ARN throughout. Administrative
/// steps act on the backend's own store (not through `service`), so their
/// effect may need [`settle`](Harness::settle) to show through a cache.
pub trait Harness {
    /// The backend's name in skip messages.
    fn backend(&self) -> &str;

    fn capabilities(&self) -> Capabilities;

    /// The service under test.
    fn service(&self) -> &dyn KeyService;

    /// The caller every call of the suite names: a user and administrator
    /// of every key the harness creates.
    fn caller(&self) -> Caller;

    /// The administrative steps the cases need on the backend's keys.
    fn admin(&self) -> &dyn KeyAdmin;

    /// A caller who is not a user of `arn` (Capabilities::key_policy). Call
    /// it after the blobs the case needs are made: a harness may narrow the
    /// key's policy to get one, so `caller()` may lose the key's use too.
    fn outsider(&self, arn: &str) -> Result<Outsider, KmsError> {
        let _ = arn;
        Err(unsupported(self.backend(), "outsider"))
    }

    /// Returns once administrative changes made so far are seen by every
    /// call through `service` (StateChanges::AfterSettle). The default, for
    /// backends that see them at once, does nothing.
    fn settle(&self) {}
}

fn unsupported(backend: &str, step: &str) -> KmsError {
    KmsError::UnsupportedOperation(format!("the {backend} harness has no {step} step"))
}

/// True if `support` lets `case` run on `h`; otherwise prints the skip and
/// its reason and returns false.
pub fn supports(h: &dyn Harness, case: &str, support: Support) -> bool {
    match support {
        Support::Yes => true,
        Support::No(reason) => {
            // Straight to the process's stderr: libtest captures `eprintln!`
            // of passing tests, and a skip must never be silent.
            let _ = writeln!(
                std::io::stderr(),
                "conformance: SKIP {}::{case}: {reason}",
                h.backend()
            );
            false
        }
    }
}

/// Instantiates every case of [`cases`] as a `#[test]` for one harness:
///
/// ```ignore
/// mod local {
///     kmsfs_kms::key_service_conformance!(super::local_harness());
/// }
/// ```
///
/// The expression is evaluated afresh for every test.
#[macro_export]
macro_rules! key_service_conformance {
    ($make:expr) => {
        $crate::key_service_conformance!(@cases $make;
            data_key_is_32_fresh_bytes,
            data_key_decrypts_to_its_plaintext,
            blob_names_its_key,
            context_round_trip,
            wrong_context_refused,
            missing_context_refused,
            extra_context_refused,
            re_encrypt_across_keys,
            re_encrypt_across_versions,
            describe_key_reports_enabled,
            disabled_key_is_described_disabled,
            disabled_key_refuses_data_keys,
            disabled_key_refuses_decrypt,
            disabled_key_refuses_re_encrypt,
            re_enabled_key_works_again,
            pending_deletion_is_described,
            pending_deletion_refuses_use,
            pending_import_refuses_use,
            unknown_key_not_found,
            blob_of_unknown_key_not_found,
            tampered_blob_refused,
            outsider_refused_by_policy,
            signing_key_refuses_data_keys,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let harness = $make;
                $crate::testsuite::cases::$case(&harness);
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    /// Every public case of cases.rs is instantiated by the macro, and the
    /// macro names no case that does not exist: a case left out of the list
    /// would never run, for any backend.
    #[test]
    fn the_macro_instantiates_every_case() {
        let cases: std::collections::BTreeSet<&str> = include_str!("cases.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("pub fn "))
            .filter_map(|l| l.strip_suffix("(h: &dyn Harness) {"))
            .collect();
        let this = include_str!("mod.rs");
        let start = this.find("(@cases $make;").expect("the case list");
        let list = &this[start..];
        let list = &list[..list.find(");").expect("its end")];
        let listed: std::collections::BTreeSet<&str> = list
            .lines()
            .skip(1)
            .map(|l| l.trim().trim_end_matches(','))
            .filter(|l| !l.is_empty())
            .collect();
        assert!(cases.len() >= 20, "{cases:?}");
        assert_eq!(cases, listed);
    }
}
