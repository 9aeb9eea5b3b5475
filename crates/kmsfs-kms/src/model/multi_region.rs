//! Multi-Region keys in the store (layout 3).
//!
//! A multi-Region key is one [`Key`] record per region that holds it (the
//! primary and each replica), all carrying the same [`MultiRegion::id`]: the
//! 128 bits shown as `mrk-` + 32 hex digits, which is also the key id a
//! ciphertext blob carries, so a ciphertext of any of them names all of them.
//! Each record has its own map key in `StoreData::keys` (a random UUID that
//! is never shown), its own policy, description, tags, aliases and state, and
//! a copy of the shared material: the versions of a symmetric key, the
//! private material of the others.
//!
//! Why copies and not one shared record: every operation already works on one
//! `Key` of one region (its policy, its state), and only rotation changes
//! shared material after replication. [`StoreData::sync_multi_region`],
//! run after every change of the store, copies new versions from the record
//! that has the most to the others, so rotating the primary (on demand, or
//! automatically in `maintain`) reaches every replica in the same write.
//!
//! Lookups by `mrk-` id scan the keys: a store holds few keys, and the
//! scan costs less than the AEAD and policy evaluation of the same call.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Key, KeyRef, KeyState, SECONDS_PER_DAY, StoreData, Timestamp};

/// The multi-Region part of one region's record of a multi-Region key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiRegion {
    /// The id shared by the primary and its replicas.
    pub id: Uuid,
    /// Whether this record is the primary key (exactly one record per id).
    pub primary: bool,
}

/// `mrk-` + 32 lowercase hex digits, as AWS writes multi-Region key ids.
pub(super) fn mrk_id(id: &Uuid) -> String {
    format!("mrk-{}", id.simple())
}

/// A key id as a request writes it: a UUID (single-Region key) or an `mrk-`
/// id (multi-Region key). None for anything else.
pub(super) fn parse_key_id(text: &str) -> Option<KeyRef<'static>> {
    if let Some(hex) = text.strip_prefix("mrk-") {
        // Exactly the 32 lowercase hex digits AWS prints: Uuid::parse_str
        // would also take hyphens, braces and upper case.
        if hex.len() != 32
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        return u128::from_str_radix(hex, 16)
            .ok()
            .map(|bits| KeyRef::MultiRegion(Uuid::from_u128(bits)));
    }
    Uuid::parse_str(text).ok().map(KeyRef::Id)
}

/// Whether `region` may name a region: 1 to 64 of `[a-z0-9-]`, the rule
/// the EC2 side holds credential-scope regions to. kmsfs knows no list of
/// regions (any such name is a region of the store), so `us-east-1` and
/// `lab-2` pass and `EU_WEST` does not.
pub fn valid_region_name(region: &str) -> bool {
    (1..=64).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Key {
    /// The key id as AWS shows it: the UUID, or `mrk-…`.
    pub fn public_id(&self) -> String {
        match &self.multi_region {
            Some(m) => mrk_id(&m.id),
            None => self.key_id.to_string(),
        }
    }

    /// The id its ciphertexts carry (shared by related multi-Region keys).
    pub fn blob_id(&self) -> Uuid {
        self.multi_region.map_or(self.key_id, |m| m.id)
    }

    /// Whether the key is a multi-Region replica (not the primary).
    pub fn is_replica(&self) -> bool {
        self.multi_region.is_some_and(|m| !m.primary)
    }
}

impl StoreData {
    /// The records (map key, key) of multi-Region key `mrk`, in every region.
    pub fn related_keys<'a>(&'a self, mrk: &'a Uuid) -> impl Iterator<Item = (Uuid, &'a Key)> + 'a {
        self.keys
            .iter()
            .filter(move |(_, k)| k.multi_region.is_some_and(|m| m.id == *mrk))
            .map(|(handle, k)| (*handle, k))
    }

    /// The record of multi-Region key `mrk` in `region`; with no region (the
    /// embedded store), the default region's, else the primary.
    pub fn multi_region_key_in(&self, region: Option<&str>, mrk: &Uuid) -> Option<Uuid> {
        let wanted = self.region_or_default(region);
        let mut primary = None;
        for (handle, k) in self.related_keys(mrk) {
            if k.region == wanted {
                return Some(handle);
            }
            if k.multi_region.is_some_and(|m| m.primary) {
                primary = Some(handle);
            }
        }
        if region.is_none() { primary } else { None }
    }

    /// The primary record of multi-Region key `mrk`.
    pub fn primary_key_of(&self, mrk: &Uuid) -> Option<Uuid> {
        self.related_keys(mrk)
            .find(|(_, k)| k.multi_region.is_some_and(|m| m.primary))
            .map(|(handle, _)| handle)
    }

    /// The key whose material opens a ciphertext carrying `blob_id`, sent to
    /// `region`: the single-Region key of that id, or the record of that
    /// multi-Region key in `region`. A multi-Region key with no record there
    /// answers some other record, so that the caller is told, as for a
    /// single-Region key, that the ciphertext belongs to another region.
    pub fn ciphertext_key(&self, region: Option<&str>, blob_id: &Uuid) -> Option<Uuid> {
        if self
            .keys
            .get(blob_id)
            .is_some_and(|k| k.multi_region.is_none())
        {
            return Some(*blob_id);
        }
        self.multi_region_key_in(region, blob_id)
            .or_else(|| self.related_keys(blob_id).next().map(|(handle, _)| handle))
    }

    /// Copies versions that one record of a multi-Region key has and another
    /// lacks (a rotation of the primary) to the other records. Versions are
    /// only ever appended, so the record with the most is the source.
    pub fn sync_multi_region(&mut self) {
        let mut groups: std::collections::BTreeMap<Uuid, Vec<Uuid>> = Default::default();
        for (handle, k) in &self.keys {
            if let Some(m) = k.multi_region {
                groups.entry(m.id).or_default().push(*handle);
            }
        }
        for handles in groups.values() {
            let lengths = || {
                handles
                    .iter()
                    .map(|h| self.keys.get(h).map_or(0, |k| k.versions.len()))
            };
            // The common case (nothing rotated): no copy of any material.
            if lengths().min() == lengths().max() {
                continue;
            }
            let Some(source) = handles
                .iter()
                .max_by_key(|h| self.keys.get(h).map_or(0, |k| k.versions.len()))
            else {
                continue;
            };
            let Some(versions) = self.keys.get(source).map(|k| k.versions.clone()) else {
                continue;
            };
            for handle in handles {
                if let Some(k) = self.keys.get_mut(handle) {
                    for v in &versions {
                        if k.version(v.version).is_none() {
                            k.versions.push(v.clone());
                        }
                    }
                }
            }
        }
    }

    /// Starts the waiting period of each primary key pending replica
    /// deletion whose last replica is gone (AWS: the state becomes
    /// PendingDeletion, the deletion date now + its window).
    pub(super) fn start_primary_deletions(&mut self, now: Timestamp) {
        let waiting: Vec<Uuid> = self
            .keys
            .iter()
            .filter(|(_, k)| k.state == KeyState::PendingReplicaDeletion)
            .filter_map(|(handle, k)| {
                let mrk = k.multi_region?.id;
                (self.related_keys(&mrk).count() == 1).then_some(*handle)
            })
            .collect();
        for handle in waiting {
            if let Some(k) = self.keys.get_mut(&handle) {
                let days = k.pending_window_days.unwrap_or(30);
                k.state = KeyState::PendingDeletion;
                k.deletion_date = Some(now + i64::from(days) * SECONDS_PER_DAY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrk_ids_parse_exactly() {
        let id = Uuid::from_u128(0x1234abcd_0000_0000_0000_00000000beef);
        let text = mrk_id(&id);
        assert_eq!(text, "mrk-1234abcd00000000000000000000beef");
        assert!(matches!(parse_key_id(&text), Some(KeyRef::MultiRegion(x)) if x == id));
        for bad in [
            "mrk-",
            "mrk-1234ABCD00000000000000000000beef",
            "mrk-1234abcd-0000-0000-0000-00000000beef",
            "mrk-1234abcd00000000000000000000beef0",
            "mrk-1234abcd00000000000000000000beeg",
        ] {
            assert!(parse_key_id(bad).is_none(), "{bad}");
        }
        assert!(matches!(
            parse_key_id("1234abcd-0000-0000-0000-00000000beef"),
            Some(KeyRef::Id(x)) if x == id
        ));
    }

    #[test]
    fn region_names() {
        for ok in ["us-east-1", "local", "lab-2", "a"] {
            assert!(valid_region_name(ok), "{ok}");
        }
        for bad in ["", "EU_WEST", "eu west", "eu/west", &"a".repeat(65)] {
            assert!(!valid_region_name(bad), "{bad}");
        }
    }
}
