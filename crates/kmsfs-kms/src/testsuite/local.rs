//! A throwaway embedded key store with the administrative steps of the
//! suite, shared by every harness whose keys live in a `LocalKms`: the
//! embedded backend itself, the cache in front of it, and the kmsfs server
//! (which serves the same `Arc<LocalKms>` in process).

use super::KeyAdmin;
use std::sync::Arc;

use tempfile::TempDir;

use crate::clock::SystemClock;
use crate::error::StoreError;
use crate::local::{CreateKeyInput, LocalKms};
use crate::model::Origin;
use crate::policy::{ADMIN_ACTIONS, USER_ACTIONS};
use crate::store::RootSecret;
use crate::{Caller, KmsError};

/// A fresh store in a temporary directory (removed on drop). Its keys are
/// created by `admin`, whom their default policy grants everything.
pub struct LocalStore {
    dir: TempDir,
    kms: Arc<LocalKms>,
    admin: Caller,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("dir", &self.dir.path())
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

impl LocalStore {
    /// A store whose keys `admin` creates and administers.
    pub fn new(admin: Caller) -> Result<LocalStore, KmsError> {
        let dir = tempfile::tempdir()
            .map_err(|e| KmsError::Store(StoreError::io("cannot make a temporary directory", e)))?;
        let kms = LocalKms::open(
            &dir.path().join("keystore"),
            &RootSecret::KeyFile,
            Arc::new(SystemClock),
        )?;
        Ok(LocalStore {
            dir,
            kms: Arc::new(kms),
            admin,
        })
    }

    pub fn kms(&self) -> &Arc<LocalKms> {
        &self.kms
    }

    pub fn admin(&self) -> &Caller {
        &self.admin
    }

    /// The temporary directory (for sockets beside the store).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Replaces the key's policy: `admin` keeps administering it (but may
    /// no longer describe it: `kms:Describe*` is a key user's action too),
    /// and only the uids in `users` may use it (an empty list: nobody).
    pub fn restrict_use(&self, arn: &str, users: &[u32]) -> Result<(), KmsError> {
        let admin_actions: Vec<&str> = ADMIN_ACTIONS
            .iter()
            .copied()
            .filter(|a| *a != "kms:Describe*")
            .collect();
        let mut statements = vec![serde_json::json!({
            "Sid": "Administration", "Effect": "Allow",
            "Principal": {"User": [self.admin.uid.to_string()]},
            "Action": admin_actions, "Resource": "*"
        })];
        if !users.is_empty() {
            let users: Vec<String> = users.iter().map(u32::to_string).collect();
            statements.push(serde_json::json!({
                "Sid": "Use", "Effect": "Allow",
                "Principal": {"User": users},
                "Action": USER_ACTIONS, "Resource": "*"
            }));
        }
        let policy = serde_json::json!({"Version": "2012-10-17", "Statement": statements});
        self.kms
            .put_key_policy(&self.admin, arn, None, &policy.to_string(), false)
    }
}

impl KeyAdmin for LocalStore {
    fn create_key(&self) -> Result<String, KmsError> {
        Ok(self
            .kms
            .create_key(&self.admin, CreateKeyInput::default())?
            .arn)
    }

    fn create_pending_import_key(&self) -> Result<String, KmsError> {
        let input = CreateKeyInput {
            origin: Origin::External,
            ..CreateKeyInput::default()
        };
        Ok(self.kms.create_key(&self.admin, input)?.arn)
    }

    fn create_signing_key(&self) -> Result<String, KmsError> {
        let input = CreateKeyInput {
            key_spec: "ECC_NIST_P256".into(),
            key_usage: "SIGN_VERIFY".into(),
            ..CreateKeyInput::default()
        };
        Ok(self.kms.create_key(&self.admin, input)?.arn)
    }

    fn disable_key(&self, arn: &str) -> Result<(), KmsError> {
        self.kms.disable_key(&self.admin, arn)
    }

    fn enable_key(&self, arn: &str) -> Result<(), KmsError> {
        self.kms.enable_key(&self.admin, arn)
    }

    fn schedule_key_deletion(&self, arn: &str) -> Result<(), KmsError> {
        self.kms
            .schedule_key_deletion(&self.admin, arn, Some(7))
            .map(drop)
    }

    fn rotate_key(&self, arn: &str) -> Result<(), KmsError> {
        self.kms.rotate_key_on_demand(&self.admin, arn).map(drop)
    }
}

/// A uid that is neither `of` nor root: the "nobody" account's 65534, or
/// its neighbour when the suite itself runs as nobody.
pub fn other_uid(of: &Caller) -> u32 {
    if of.uid == 65534 { 65533 } else { 65534 }
}
