//! Tags of customer managed keys: TagResource, UntagResource,
//! ListResourceTags, and the tag rules CreateKey shares.

use super::LocalKms;
use crate::error::{KmsError, Result};
use crate::model::{KeyState, Tag};
use crate::policy::Caller;
use crate::protocol::Operation;

/// Tags one key may carry.
pub const MAX_TAGS_PER_KEY: usize = 50;
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;

/// AWS reserves this prefix (any case) for its own tags.
fn reserved(key: &str) -> bool {
    key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
}

/// A tag key as the model constrains it (ValidationException) and as AWS
/// reserves some (TagException). `member` names it in AWS's words
/// (`tags.1.member.tagKey`).
fn check_tag_key(key: &str, member: &str) -> Result<()> {
    let len = key.chars().count();
    if len == 0 || len > MAX_TAG_KEY {
        return Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{key}' at '{member}' failed to satisfy constraint: Member must have length between 1 and {MAX_TAG_KEY}"
        )));
    }
    if reserved(key) {
        return Err(KmsError::Tag(format!(
            "Tag key {key:?} is not valid: tag keys beginning with aws: are reserved for AWS"
        )));
    }
    Ok(())
}

/// The tags of a CreateKey or TagResource request.
pub fn validate_tags(tags: &[(String, String)]) -> Result<()> {
    for (i, (key, value)) in tags.iter().enumerate() {
        check_tag_key(key, &format!("tags.{}.member.tagKey", i + 1))?;
        if value.chars().count() > MAX_TAG_VALUE {
            return Err(KmsError::Validation(format!(
                "1 validation error detected: Value at 'tags.{}.member.tagValue' failed to satisfy constraint: Member must have length less than or equal to {MAX_TAG_VALUE}",
                i + 1
            )));
        }
    }
    let distinct: std::collections::BTreeSet<&str> = tags.iter().map(|(k, _)| k.as_str()).collect();
    if distinct.len() > MAX_TAGS_PER_KEY {
        return Err(too_many(distinct.len()));
    }
    Ok(())
}

fn too_many(n: usize) -> KmsError {
    KmsError::Tag(format!(
        "A key may have at most {MAX_TAGS_PER_KEY} tags; this request would give it {n}"
    ))
}

impl LocalKms {
    /// Adds tags, replacing the value of a tag key the key already has.
    pub fn tag_resource(
        &self,
        caller: &Caller,
        key_id: &str,
        tags: &[(String, String)],
    ) -> Result<()> {
        let op = Operation::TagResource;
        self.precheck(caller, op, Some(key_id), validate_tags(tags))?;
        self.change_key(caller, op, key_id, true, |key, _, arn| {
            if key.state == KeyState::PendingDeletion {
                return Err(key.invalid_state(arn, op.name()));
            }
            for (k, v) in tags {
                match key.tags.iter_mut().find(|t| &t.key == k) {
                    Some(t) => t.value.clone_from(v),
                    None => key.tags.push(Tag {
                        key: k.clone(),
                        value: v.clone(),
                    }),
                }
            }
            if key.tags.len() > MAX_TAGS_PER_KEY {
                return Err(too_many(key.tags.len()));
            }
            Ok(())
        })
    }

    /// Removes tags by key; a key the tags do not have is no error.
    pub fn untag_resource(&self, caller: &Caller, key_id: &str, tag_keys: &[String]) -> Result<()> {
        let op = Operation::UntagResource;
        let valid = tag_keys
            .iter()
            .enumerate()
            .try_for_each(|(i, k)| check_tag_key(k, &format!("tagKeys.{}.member", i + 1)));
        self.precheck(caller, op, Some(key_id), valid)?;
        self.change_key(caller, op, key_id, true, |key, _, arn| {
            if key.state == KeyState::PendingDeletion {
                return Err(key.invalid_state(arn, op.name()));
            }
            key.tags.retain(|t| !tag_keys.contains(&t.key));
            Ok(())
        })
    }

    /// A key's tags (key id or ARN), sorted by tag key.
    pub fn list_resource_tags(&self, caller: &Caller, key_id: &str) -> Result<Vec<Tag>> {
        self.read_key_only(caller, Operation::ListResourceTags, key_id, |_, key| {
            let mut tags = key.tags.clone();
            tags.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(tags)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tag_rules() {
        assert!(validate_tags(&tags(&[("Project", ""), ("a", "b")])).is_ok());
        for bad in ["aws:created", "AWS:x", "Aws:"] {
            assert!(
                matches!(validate_tags(&tags(&[(bad, "v")])), Err(KmsError::Tag(_))),
                "{bad}"
            );
        }
        let long_key = "k".repeat(129);
        let long_value = "v".repeat(257);
        assert!(matches!(
            validate_tags(&tags(&[(&long_key, "v")])),
            Err(KmsError::Validation(_))
        ));
        assert!(matches!(
            validate_tags(&tags(&[("", "v")])),
            Err(KmsError::Validation(_))
        ));
        assert!(matches!(
            validate_tags(&tags(&[("k", &long_value)])),
            Err(KmsError::Validation(_))
        ));
        assert!(validate_tags(&tags(&[(&"k".repeat(128), &"v".repeat(256))])).is_ok());
        let many: Vec<(String, String)> =
            (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(matches!(validate_tags(&many), Err(KmsError::Tag(_))));
        assert!(validate_tags(&many[..50]).is_ok());
    }
}
