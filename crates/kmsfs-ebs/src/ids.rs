//! Resource ids in EC2's form: a prefix and 17 lowercase hex digits
//! (`vol-0123456789abcdef0`, `snap-…`), and the one instance, this host.

use kmsfs_format::cipher::fill_random;

use super::error::{EbsError, Result};

const HEX_DIGITS: usize = 17;

/// A new random id with `prefix` (`vol`, `snap`).
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 9];
    fill_random(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{}", &hex[..HEX_DIGITS])
}

/// Whether `id` is `prefix-` and 8 or 17 lowercase hex digits (EC2 issued
/// 8-digit ids before 2018 and still accepts them).
pub fn is_id(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| {
            matches!(hex.len(), 8 | HEX_DIGITS)
                && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

/// Refuses an id that is not of the `prefix` kind, as EC2 does
/// (`InvalidParameterValue: Invalid id: "x" (expecting "vol-...")`).
pub fn check_id(prefix: &str, id: &str) -> Result<()> {
    if is_id(prefix, id) {
        Ok(())
    } else {
        Err(EbsError::InvalidParameterValue(format!(
            "Invalid id: \"{id}\" (expecting \"{prefix}-...\")"
        )))
    }
}

/// The id of the one simulated instance: this host, `i-` and 17 hex digits
/// taken from `/etc/machine-id` so that it stays the same across restarts
/// (a fixed placeholder where the machine has no id).
pub fn this_instance_id() -> String {
    let machine = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    let hex: String = machine
        .trim()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .take(HEX_DIGITS)
        .collect();
    if hex.len() == HEX_DIGITS {
        format!("i-{hex}")
    } else {
        "i-0000000000000000a".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_have_the_ec2_form_and_differ() {
        let a = new_id("vol");
        let b = new_id("vol");
        assert!(is_id("vol", &a), "{a}");
        assert_eq!(a.len(), "vol-".len() + 17);
        assert_ne!(a, b);
        assert!(is_id("snap", &new_id("snap")));
    }

    #[test]
    fn ids_of_another_kind_or_shape_are_refused() {
        assert!(is_id("vol", "vol-1234abcd"));
        assert!(!is_id("vol", "snap-0123456789abcdef0"));
        assert!(!is_id("vol", "vol-0123456789ABCDEF0"));
        assert!(!is_id("vol", "vol-../../etc"));
        assert!(!is_id("vol", "vol-"));
        let e = check_id("vol", "volume1").unwrap_err();
        assert_eq!(e.code(), "InvalidParameterValue");
        assert!(is_id("i", &this_instance_id()));
    }
}
