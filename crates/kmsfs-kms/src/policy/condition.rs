//! The `Condition` element of AWS policies: operators, the `IfExists`
//! suffix, the `ForAnyValue:` / `ForAllValues:` set prefixes, and the
//! condition keys kmsfs knows for a request ([`RequestFacts::value`]).
//!
//! A block is `{"OPERATOR": {"KEY": VALUE or [VALUES]}}`. Every operator of
//! a block and every key under an operator must hold (AND); the values of
//! one key are alternatives (OR), and for a negated operator
//! (`StringNotEquals`, …) the request's value must match none of them. A key
//! the request does not have makes a positive operator false and a negated
//! one true, unless `IfExists` (then true) — AWS's rules.

use std::collections::BTreeMap;

use serde_json::Value;

use super::wildcard_match;
use crate::error::{KmsError, Result};

/// A policy's `Condition`: operator → key → the values as strings.
pub type ConditionBlock = BTreeMap<String, BTreeMap<String, Value>>;

/// What a request tells the condition keys.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts<'a> {
    /// `kms:Encrypt`, …
    pub action: &'a str,
    /// The key's ARN.
    pub resource: &'a str,
    /// The store's account.
    pub account: &'a str,
    /// The caller's IAM ARN (`arn:aws:iam::ACCOUNT:user/NAME`), if it has one.
    pub principal_arn: Option<&'a str>,
    pub encryption_context: Option<&'a BTreeMap<String, String>>,
    /// The region the request addresses (or the key's).
    pub region: Option<&'a str>,
    pub key_spec: Option<&'a str>,
    pub key_usage: Option<&'a str>,
    pub key_origin: Option<&'a str>,
}

impl RequestFacts<'_> {
    /// The values of condition key `key` for this request (several for a
    /// multivalued key), or None when the request has no such key.
    pub fn value(&self, key: &str) -> Option<Vec<String>> {
        const CONTEXT_PREFIX: &str = "kms:EncryptionContext:";
        // The part after the prefix is an encryption context key, whose
        // case matters; the prefix's does not, as for every condition key.
        if let Some(name) = key
            .get(..CONTEXT_PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(CONTEXT_PREFIX))
            .and_then(|_| key.get(CONTEXT_PREFIX.len()..))
        {
            return self.encryption_context?.get(name).map(|v| vec![v.clone()]);
        }
        let lower = key.to_ascii_lowercase();
        let one = |v: Option<&str>| v.map(|v| vec![v.to_string()]);
        match lower.as_str() {
            "kms:encryptioncontextkeys" => {
                self.encryption_context.map(|c| c.keys().cloned().collect())
            }
            "kms:calleraccount" | "aws:principalaccount" => one(Some(self.account)),
            "aws:principalarn" => one(self.principal_arn),
            "aws:username" => one(self
                .principal_arn
                .and_then(|a| a.rsplit_once(":user/").map(|(_, n)| n))),
            "aws:principaltype" => one(self.principal_arn.map(|_| "User")),
            "aws:requestedregion" => one(self.region),
            // Absent: the key service does not yet tell a policy whether
            // the request came over TLS, a Unix socket or plain HTTP, and
            // a guess either way would make a condition lie.
            "aws:securetransport" => None,
            "kms:keyspec" | "kms:customermasterkeyspec" => one(self.key_spec),
            "kms:keyusage" | "kms:customermasterkeyusage" => one(self.key_usage),
            "kms:keyorigin" => one(self.key_origin),
            "kms:callerservice" | "kms:viaservice" => None,
            "kms:grantisforawsresource" => one(Some("false")),
            _ => None,
        }
    }
}

/// How one operator compares a request value with a policy value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    Bool,
}

/// A parsed operator name.
#[derive(Debug, Clone, Copy)]
struct Operator {
    compare: Compare,
    negated: bool,
    if_exists: bool,
    set: Option<SetQualifier>,
    /// `Null`: the value says whether the key must be absent.
    null: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetQualifier {
    AnyValue,
    AllValues,
}

fn parse_operator(name: &str) -> Result<Operator> {
    let unsupported = || {
        KmsError::MalformedPolicyDocument(format!(
            "Condition operator {name} is not supported by kmsfs (docs/KMS.md lists the operators it evaluates)"
        ))
    };
    let (set, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
        (Some(SetQualifier::AnyValue), r)
    } else if let Some(r) = name.strip_prefix("ForAllValues:") {
        (Some(SetQualifier::AllValues), r)
    } else {
        (None, name)
    };
    let (if_exists, base) = match rest.strip_suffix("IfExists") {
        Some(b) => (true, b),
        None => (false, rest),
    };
    if base == "Null" {
        if if_exists || set.is_some() {
            return Err(unsupported());
        }
        return Ok(Operator {
            compare: Compare::StringEquals,
            negated: false,
            if_exists: false,
            set: None,
            null: true,
        });
    }
    let (compare, negated) = match base {
        "StringEquals" | "ArnEquals" => (Compare::StringEquals, false),
        "StringNotEquals" | "ArnNotEquals" => (Compare::StringEquals, true),
        "StringEqualsIgnoreCase" => (Compare::StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (Compare::StringEqualsIgnoreCase, true),
        "StringLike" | "ArnLike" => (Compare::StringLike, false),
        "StringNotLike" | "ArnNotLike" => (Compare::StringLike, true),
        "NumericEquals" => (Compare::NumericEquals, false),
        "NumericNotEquals" => (Compare::NumericEquals, true),
        "NumericLessThan" => (Compare::NumericLessThan, false),
        "NumericLessThanEquals" => (Compare::NumericLessThanEquals, false),
        "NumericGreaterThan" => (Compare::NumericGreaterThan, false),
        "NumericGreaterThanEquals" => (Compare::NumericGreaterThanEquals, false),
        "Bool" => (Compare::Bool, false),
        _ => return Err(unsupported()),
    };
    Ok(Operator {
        compare,
        negated,
        if_exists,
        set,
        null: false,
    })
}

/// A condition value as strings: a string, number or boolean, or a list.
fn values(v: &Value) -> Option<Vec<String>> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match v {
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|s| vec![s]),
    }
}

/// Refuses a block kmsfs could not evaluate, at the time the policy is set.
pub(super) fn validate(block: &ConditionBlock) -> Result<()> {
    for (op, keys) in block {
        parse_operator(op)?;
        for (key, v) in keys {
            if values(v).is_none() {
                return Err(KmsError::MalformedPolicyDocument(format!(
                    "Condition {op} {key}: values must be strings, numbers, booleans or a list of them"
                )));
            }
        }
    }
    Ok(())
}

fn matches_one(compare: Compare, request: &str, policy: &str) -> bool {
    let num = |s: &str| s.parse::<f64>().ok();
    match compare {
        Compare::StringEquals => request == policy,
        Compare::StringEqualsIgnoreCase => request.eq_ignore_ascii_case(policy),
        // `?` is one character in IAM patterns as `*` is any run.
        Compare::StringLike => wildcard_match(policy.as_bytes(), request.as_bytes()),
        Compare::Bool => request.eq_ignore_ascii_case(policy),
        Compare::NumericEquals
        | Compare::NumericLessThan
        | Compare::NumericLessThanEquals
        | Compare::NumericGreaterThan
        | Compare::NumericGreaterThanEquals => match (num(request), num(policy)) {
            (Some(r), Some(p)) => match compare {
                Compare::NumericEquals => r == p,
                Compare::NumericLessThan => r < p,
                Compare::NumericLessThanEquals => r <= p,
                Compare::NumericGreaterThan => r > p,
                _ => r >= p,
            },
            _ => false,
        },
    }
}

/// Whether the whole block holds for the request.
pub(super) fn holds(block: &ConditionBlock, facts: &RequestFacts) -> bool {
    block.iter().all(|(op, keys)| {
        let Ok(op) = parse_operator(op) else {
            // Refused when the policy was set; never true if it slips by.
            return false;
        };
        keys.iter().all(|(key, v)| {
            let Some(wanted) = values(v) else {
                return false;
            };
            let actual = facts.value(key);
            if op.null {
                let want_absent = wanted.iter().any(|w| w.eq_ignore_ascii_case("true"));
                return actual.is_none() == want_absent;
            }
            let Some(actual) = actual else {
                return op.if_exists || op.negated;
            };
            let any_wanted = |a: &String| wanted.iter().any(|w| matches_one(op.compare, a, w));
            let positive = match op.set {
                Some(SetQualifier::AllValues) => actual.iter().all(any_wanted),
                // ForAnyValue, and a plain operator on a key (single-valued
                // keys have one value).
                _ => actual.iter().any(any_wanted),
            };
            if op.negated {
                match op.set {
                    // Every value must match none of the policy's.
                    Some(SetQualifier::AllValues) => !actual.iter().any(any_wanted),
                    _ => !positive,
                }
            } else {
                positive
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn block(v: Value) -> ConditionBlock {
        serde_json::from_value(v).unwrap()
    }

    fn facts(ctx: &BTreeMap<String, String>) -> RequestFacts<'_> {
        RequestFacts {
            action: "kms:Decrypt",
            resource: "arn:aws:kms:local:111122223333:key/k",
            account: "111122223333",
            principal_arn: Some("arn:aws:iam::111122223333:user/alice"),
            encryption_context: Some(ctx),
            ..Default::default()
        }
    }

    #[test]
    fn operators_keys_and_missing_values() {
        let ctx: BTreeMap<String, String> = [("Dept".to_string(), "IT".to_string())]
            .into_iter()
            .collect();
        let f = facts(&ctx);
        let cases = [
            (
                json!({"StringEquals": {"kms:EncryptionContext:Dept": "IT"}}),
                true,
            ),
            (
                json!({"StringEquals": {"kms:EncryptionContext:dept": "IT"}}),
                false,
            ),
            (
                json!({"StringEquals": {"kms:EncryptionContext:Dept": ["HR", "IT"]}}),
                true,
            ),
            (
                json!({"StringEqualsIgnoreCase": {"kms:EncryptionContext:Dept": "it"}}),
                true,
            ),
            (
                json!({"StringNotEquals": {"kms:EncryptionContext:Dept": "HR"}}),
                true,
            ),
            (
                json!({"StringNotEquals": {"kms:EncryptionContext:Team": "x"}}),
                true,
            ),
            (
                json!({"StringEquals": {"kms:EncryptionContext:Team": "x"}}),
                false,
            ),
            (
                json!({"StringEqualsIfExists": {"kms:EncryptionContext:Team": "x"}}),
                true,
            ),
            (
                json!({"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/al*"}}),
                true,
            ),
            (
                json!({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/bob"}}),
                false,
            ),
            (
                json!({"StringEquals": {"kms:CallerAccount": "111122223333", "aws:username": "alice"}}),
                true,
            ),
            (
                json!({"Null": {"kms:EncryptionContext:Team": "true"}}),
                true,
            ),
            (
                json!({"Null": {"kms:EncryptionContext:Dept": "true"}}),
                false,
            ),
            (json!({"Bool": {"aws:SecureTransport": true}}), false),
            (
                json!({"Bool": {"kms:GrantIsForAWSResource": "false"}}),
                true,
            ),
            (
                json!({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["Dept", "Team"]}}),
                true,
            ),
            (
                json!({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["Team"]}}),
                false,
            ),
            (
                json!({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": ["Team", "Dept"]}}),
                true,
            ),
            (
                json!({"StringEquals": {"kms:EncryptionContext:Dept": "IT"}, "StringLike": {"aws:username": "b*"}}),
                false,
            ),
        ];
        for (b, want) in cases {
            let b = block(b);
            validate(&b).unwrap();
            assert_eq!(holds(&b, &f), want, "{b:?}");
        }
    }

    #[test]
    fn unknown_operators_are_refused_when_set() {
        for op in [
            "DateLessThan",
            "StringSortOf",
            "NullIfExists",
            "ForAnyValue:Null",
        ] {
            let b = block(json!({op: {"aws:username": "x"}}));
            assert!(validate(&b).is_err(), "{op}");
            assert!(!holds(&b, &RequestFacts::default()));
        }
        let b = block(json!({"StringEquals": {"aws:username": {"nested": 1}}}));
        assert!(validate(&b).is_err());
    }
}
