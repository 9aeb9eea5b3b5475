//! The smaller key operations: UpdateKeyDescription, ListKeyPolicies,
//! GetKeyLastUsage, DeleteImportedKeyMaterial; and GenerateRandom, which
//! names no key.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{LocalKms, info};
use crate::error::{KmsError, Result};
use crate::material::KeyMaterial;
use crate::model::{Key, KeyState, LastUse, Origin, StoreData, Timestamp};
use crate::policy::Caller;
use crate::protocol::Operation;

/// What GetKeyLastUsage reports.
#[derive(Debug, Clone)]
pub struct LastUsageInfo {
    pub arn: String,
    pub creation_date: Timestamp,
    /// The later of the key's creation and the start of usage tracking.
    pub tracking_start: Timestamp,
    pub last: Option<LastUse>,
}

/// A digest of imported key material (SHA-256, domain-separated): the
/// material is 256 random bits, so the digest reveals nothing of it, and it
/// lives in the sealed store besides.
pub(super) fn material_digest(material: &KeyMaterial) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"kmsfs deleted imported key material v1\0");
    h.update(material.as_bytes());
    h.finalize().to_vec()
}

impl LocalKms {
    /// A read-only operation on a key named by id or ARN (not an alias), as
    /// AWS requires for ListResourceTags, ListKeyPolicies, GetKeyLastUsage.
    pub(super) fn read_key_only<T>(
        &self,
        caller: &Caller,
        op: Operation,
        key_id: &str,
        f: impl FnOnce(&StoreData, &Key) -> Result<T>,
    ) -> Result<T> {
        self.read_key_named(caller, op, key_id, false, f)
    }

    /// Replaces a key's description (at most 8192 characters; empty is fine).
    pub fn update_key_description(
        &self,
        caller: &Caller,
        key_id: &str,
        description: &str,
    ) -> Result<()> {
        let op = Operation::UpdateKeyDescription;
        if description.chars().count() > 8192 {
            let e = KmsError::Validation(
                "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 8192".into(),
            );
            return self.precheck(caller, op, Some(key_id), Err(e));
        }
        self.change_key(caller, op, key_id, true, |key, _, arn| {
            if key.state == KeyState::PendingDeletion {
                return Err(key.invalid_state(arn, op.name()));
            }
            key.description = description.to_string();
            Ok(())
        })
    }

    /// The names of a key's policies: always `default`, the only one AWS
    /// has.
    pub fn list_key_policies(&self, caller: &Caller, key_id: &str) -> Result<Vec<String>> {
        self.read_key_only(caller, Operation::ListKeyPolicies, key_id, |_, _| {
            Ok(vec!["default".to_string()])
        })
    }

    pub fn get_key_last_usage(&self, caller: &Caller, key_id: &str) -> Result<LastUsageInfo> {
        self.read_key_only(caller, Operation::GetKeyLastUsage, key_id, |data, key| {
            let i = info(data, key);
            Ok(LastUsageInfo {
                arn: i.arn,
                creation_date: key.creation_date,
                tracking_start: self.usage.tracking_since(data).max(key.creation_date),
                last: self.usage.last_use(data, &key.key_id),
            })
        })
    }

    /// Destroys the imported material of an EXTERNAL key: it is unusable
    /// (PendingImport, or still PendingDeletion) until the same material is
    /// imported again. Returns the key's ARN.
    pub fn delete_imported_key_material(
        &self,
        caller: &Caller,
        key_id: &str,
        key_material_id: Option<&str>,
    ) -> Result<String> {
        let op = Operation::DeleteImportedKeyMaterial;
        if let Some(id) = key_material_id {
            let well_formed = id.len() == 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            let e = if well_formed {
                // kmsfs keys hold one material and do not name it.
                KmsError::NotFound(format!(
                    "Key material {id} does not exist: kmsfs does not identify key material by id; omit KeyMaterialId"
                ))
            } else {
                KmsError::Validation(format!(
                    "1 validation error detected: Value '{id}' at 'keyMaterialId' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-f0-9]{{64}}$"
                ))
            };
            return self.precheck(caller, op, Some(key_id), Err(e));
        }
        self.change_key(caller, op, key_id, true, |key, _, arn| {
            if key.origin != Origin::External {
                return Err(KmsError::UnsupportedOperation(format!(
                    "{arn} was not created with origin EXTERNAL; it has no imported key material to delete."
                )));
            }
            // Dropping the versions zeroizes the material in memory; the
            // store is rewritten without it, keeping only its digest.
            if let Some(v) = key.versions.first() {
                key.deleted_material_digest = Some(material_digest(&v.material));
            }
            key.versions.clear();
            key.pending_import = None;
            if key.state != KeyState::PendingDeletion {
                key.state = KeyState::PendingImport;
            }
            Ok(arn.to_string())
        })
    }

    /// `number_of_bytes` (1..=1024) random bytes from the operating
    /// system's generator. Any caller may ask: there is no key whose policy
    /// could say otherwise, and AWS leaves it to IAM (docs/KMS.md).
    pub fn generate_random(
        &self,
        caller: &Caller,
        number_of_bytes: Option<u32>,
        custom_key_store_id: Option<&str>,
        with_recipient: bool,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let op = Operation::GenerateRandom;
        let checked = match (number_of_bytes, custom_key_store_id) {
            (_, Some(store)) => Err(super::custom_key_stores::not_found(store)),
            (None, _) => Err(KmsError::Validation(
                "1 validation error detected: Value null at 'numberOfBytes' failed to satisfy constraint: Member must not be null".into(),
            )),
            (Some(n), _) if !(1..=1024).contains(&n) => Err(KmsError::Validation(format!(
                "1 validation error detected: Value '{n}' at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and 1024"
            ))),
            (Some(_), _) if with_recipient => Err(KmsError::UnsupportedOperation(
                "Recipient (a Nitro Enclaves attestation document) is not supported by kmsfs: it has no attested environments".into(),
            )),
            (Some(n), _) => Ok(n as usize),
        };
        let n = self.precheck(caller, op, None, checked)?;
        self.run(caller, op, None, None, |_| {
            self.account_level(caller, op)?;
            let mut bytes = Zeroizing::new(vec![0u8; n]);
            rand::fill(&mut bytes[..]);
            Ok(bytes)
        })
    }
}
