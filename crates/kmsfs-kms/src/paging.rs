//! Pagination of the List operations, as AWS KMS pages them: a request's
//! `Limit` (1..=1000 in the model, each operation's default when absent) and
//! `Marker`, a response's `Truncated` and, when more remain, `NextMarker`.
//!
//! Every listing is sorted by a key of its entries (key id, alias name, tag
//! key, rotation version), and a marker names the last key of the page it
//! ends: the next page starts after it. So paging is consistent while the
//! list changes between pages (nothing is skipped or repeated that was
//! there throughout), and no state is kept between requests.
//!
//! Markers are opaque to clients: base64url of `kmsfs:1:<operation>:<key>`.
//! One that does not decode to that shape for this operation is not ours
//! (InvalidMarkerException), as AWS refuses markers it did not issue.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::error::{KmsError, Result};
use crate::protocol::Operation;

/// What AWS documents for one List operation's `Limit`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Used when the request has no Limit.
    pub default: u32,
    /// Larger limits are accepted (the model allows up to 1000) but no more
    /// than this many entries are returned ("it might return fewer").
    pub max: u32,
}

impl Limits {
    /// ListKeys, ListKeyPolicies, ListKeyRotations, DescribeCustomKeyStores.
    pub const STANDARD: Limits = Limits {
        default: 100,
        max: 1000,
    };
    /// ListAliases: "between 1 and 100 … defaults to 50".
    pub const ALIASES: Limits = Limits {
        default: 50,
        max: 100,
    };
    /// ListGrants, ListRetirableGrants: "between 1 and 100 … defaults to 50".
    pub const GRANTS: Limits = Limits {
        default: 50,
        max: 100,
    };
    /// ListResourceTags: "between 1 and 50 … defaults to 50".
    pub const TAGS: Limits = Limits {
        default: 50,
        max: 50,
    };
}

/// The model's bound on every `Limit`.
const MODEL_MAX: u32 = 1000;

/// A validated page request: how many entries, after which key.
#[derive(Debug, Clone)]
pub struct PageRequest {
    operation: Operation,
    size: usize,
    after: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Set when entries remain after this page.
    pub next_marker: Option<String>,
}

impl<T> Page<T> {
    pub fn truncated(&self) -> bool {
        self.next_marker.is_some()
    }
}

const PREFIX: &str = "kmsfs:1:";

impl PageRequest {
    /// Checks `Limit` and `Marker` as AWS does before looking anything up.
    pub fn new(
        operation: Operation,
        limit: Option<u32>,
        marker: Option<&str>,
        limits: Limits,
    ) -> Result<PageRequest> {
        let limit = limit.unwrap_or(limits.default);
        if !(1..=MODEL_MAX).contains(&limit) {
            return Err(KmsError::Validation(format!(
                "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value between 1 and {MODEL_MAX}"
            )));
        }
        let after = marker.map(|m| decode(operation, m)).transpose()?;
        Ok(PageRequest {
            operation,
            size: limit.min(limits.max) as usize,
            after,
        })
    }

    /// The page of `items` this request asks for; `key` gives each entry's
    /// sort key (unique within the listing).
    pub fn page<T>(
        &self,
        items: impl IntoIterator<Item = T>,
        key: impl Fn(&T) -> String,
    ) -> Page<T> {
        let mut keyed: Vec<(String, T)> = items.into_iter().map(|t| (key(&t), t)).collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut rest = keyed
            .into_iter()
            .filter(|(k, _)| self.after.as_ref().is_none_or(|after| k > after))
            .peekable();
        let mut items = Vec::with_capacity(self.size.min(1024));
        let mut last = None;
        while items.len() < self.size {
            let Some((k, t)) = rest.next() else { break };
            items.push(t);
            last = Some(k);
        }
        let next_marker = match (rest.peek(), last) {
            (Some(_), Some(last)) => Some(encode(self.operation, &last)),
            _ => None,
        };
        Page { items, next_marker }
    }
}

fn encode(operation: Operation, key: &str) -> String {
    B64.encode(format!("{PREFIX}{}:{key}", operation.name()))
}

fn decode(operation: Operation, marker: &str) -> Result<String> {
    let invalid = || {
        KmsError::InvalidMarker(format!(
            "Invalid marker {marker:?}: it was not issued by {} (pass the NextMarker of the previous page)",
            operation.name()
        ))
    };
    let bytes = B64.decode(marker).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix(operation.name()))
        .and_then(|rest| rest.strip_prefix(':'))
        .map(str::to_string)
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(limit: Option<u32>, marker: Option<&str>) -> Result<PageRequest> {
        PageRequest::new(Operation::ListKeys, limit, marker, Limits::STANDARD)
    }

    #[test]
    fn pages_walk_every_entry_once_in_order() {
        let items: Vec<u32> = (0..7).rev().collect();
        let mut seen = vec![];
        let mut marker: Option<String> = None;
        let mut pages = 0;
        loop {
            let r = req(Some(3), marker.as_deref()).unwrap();
            let page = r.page(items.clone(), |i| format!("{i:03}"));
            pages += 1;
            assert!(page.items.len() <= 3);
            seen.extend(page.items.iter().copied());
            match page.next_marker {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn exact_fit_is_not_truncated() {
        let page = req(Some(3), None)
            .unwrap()
            .page(vec![1, 2, 3], |i| i.to_string());
        assert_eq!(page.items, vec![1, 2, 3]);
        assert!(!page.truncated());
        let page = req(Some(2), None)
            .unwrap()
            .page(vec![1, 2, 3], |i| i.to_string());
        assert!(page.truncated());
    }

    #[test]
    fn limits_are_checked_and_clamped() {
        for bad in [0, 1001] {
            assert!(matches!(req(Some(bad), None), Err(KmsError::Validation(_))));
        }
        let tags =
            PageRequest::new(Operation::ListResourceTags, Some(1000), None, Limits::TAGS).unwrap();
        let page = tags.page(0..80, |i| format!("{i:03}"));
        assert_eq!(page.items.len(), 50);
        let default = req(None, None).unwrap().page(0..150, |i| format!("{i:03}"));
        assert_eq!(default.items.len(), 100);
    }

    #[test]
    fn foreign_markers_are_refused() {
        for bad in [
            "",
            "!!",
            "bm90IG91cnM",
            &encode(Operation::ListAliases, "x"),
        ] {
            assert!(
                matches!(req(None, Some(bad)), Err(KmsError::InvalidMarker(_))),
                "{bad:?}"
            );
        }
        assert!(req(None, Some(&encode(Operation::ListKeys, "x"))).is_ok());
    }
}
