//! Reading a JSON body into its typed request or response, with AWS's
//! messages for malformed input.
//!
//! serde_json's own errors name neither the member nor the constraint the
//! way AWS does ("invalid type: integer `5`, expected a string"), and kmsfs's
//! clients and tests see these messages. So request bodies are read through
//! this small deserializer over a parsed JSON value, which knows which member
//! it is in and turns every failure into one of two AWS shapes:
//!
//! - a missing required member: `1 validation error detected: Value null at
//!   'keyId' failed to satisfy constraint: Member must not be null`;
//! - a member of the wrong type: `Parameter KeyId must be a string` (or
//!   "is not valid base64", … as the member's type words it).
//!
//! A member whose value is JSON `null` counts as absent, as before, both in
//! requests and in the answers of other services (moto sends
//! `"Description": null`).

use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, SeqDeserializer};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Expected, IntoDeserializer, MapAccess, Unexpected,
    Visitor,
};
use serde_json::{Map, Value};

use crate::error::KmsError;

/// Why a body does not fit its operation's shape.
#[derive(Debug)]
pub(crate) enum MalformedBody {
    /// A required member is absent (or null).
    Missing(String),
    /// A member is present with the wrong type or an unreadable value;
    /// `problem` is the predicate ("must be a string").
    Invalid {
        member: Option<String>,
        problem: String,
    },
}

impl fmt::Display for MalformedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MalformedBody::Missing(member) => write!(
                f,
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                lower_first(member)
            ),
            MalformedBody::Invalid {
                member: Some(member),
                problem,
            } => write!(f, "Parameter {member} {problem}"),
            MalformedBody::Invalid {
                member: None,
                problem,
            } => write!(f, "The request {problem}"),
        }
    }
}

impl std::error::Error for MalformedBody {}

impl de::Error for MalformedBody {
    fn custom<T: fmt::Display>(problem: T) -> Self {
        MalformedBody::Invalid {
            member: None,
            problem: problem.to_string(),
        }
    }

    fn invalid_type(_: Unexpected, expected: &dyn Expected) -> Self {
        MalformedBody::Invalid {
            member: None,
            problem: format!("must be {expected}"),
        }
    }

    fn invalid_value(_: Unexpected, expected: &dyn Expected) -> Self {
        MalformedBody::Invalid {
            member: None,
            problem: format!("must be {expected}"),
        }
    }

    fn missing_field(member: &'static str) -> Self {
        MalformedBody::Missing(member.to_string())
    }
}

impl MalformedBody {
    /// The error as seen from the enclosing member (the outermost member
    /// names the error, as AWS names the request parameter).
    fn in_member(self, name: &str) -> MalformedBody {
        match self {
            MalformedBody::Invalid { problem, .. } => MalformedBody::Invalid {
                member: Some(name.to_string()),
                problem,
            },
            missing => missing,
        }
    }
}

/// `keyId` for `KeyId`: AWS's validation messages name members in camelCase.
fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// Reads a request body (a JSON object, or null for "no members").
pub(crate) fn from_body<R: DeserializeOwned>(body: &Value) -> Result<R, KmsError> {
    if !matches!(body, Value::Object(_) | Value::Null) {
        return Err(KmsError::Validation(
            "The request body must be a JSON object".into(),
        ));
    }
    decode(body).map_err(|e| KmsError::Validation(e.to_string()))
}

/// Reads a JSON object (or null for "no members") into `T`.
pub(crate) fn decode<T: DeserializeOwned>(body: &Value) -> Result<T, MalformedBody> {
    let empty = Map::new();
    let members = match body {
        Value::Object(m) => m,
        Value::Null => &empty,
        _ => return Err(de::Error::custom("must be a JSON object")),
    };
    T::deserialize(Members::of(members))
}

/// The members of one JSON object, visited by a derived `Deserialize`.
struct Members<'a> {
    iter: serde_json::map::Iter<'a>,
    current: Option<(&'a str, &'a Value)>,
}

impl<'a> Members<'a> {
    fn of(map: &'a Map<String, Value>) -> Members<'a> {
        Members {
            iter: map.iter(),
            current: None,
        }
    }
}

impl<'de> de::Deserializer<'de> for Members<'de> {
    type Error = MalformedBody;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de> MapAccess<'de> for Members<'de> {
    type Error = MalformedBody;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        // A null member is an absent member.
        let Some((name, value)) = self.iter.by_ref().find(|(_, v)| !v.is_null()) else {
            return Ok(None);
        };
        self.current = Some((name.as_str(), value));
        seed.deserialize(BorrowedStrDeserializer::new(name))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let Some((name, value)) = self.current.take() else {
            return Err(de::Error::custom("has a member without a value"));
        };
        seed.deserialize(Member(value))
            .map_err(|e| e.in_member(name))
    }
}

/// One member's value.
struct Member<'a>(&'a Value);

impl<'de> IntoDeserializer<'de, MalformedBody> for Member<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for Member<'de> {
    type Error = MalformedBody;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.iter().map(Member));
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Value::Object(m) => visitor.visit_map(Members::of(m)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::protocol::values::{self, Blob};

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Probe {
        key_id: String,
        #[serde(default, deserialize_with = "values::count")]
        number_of_bytes: Option<u32>,
        #[serde(default)]
        flag: bool,
        blob: Option<Blob>,
        #[serde(default, deserialize_with = "values::context")]
        encryption_context: crate::EncryptionContext,
    }

    fn message(body: Value) -> String {
        match from_body::<Probe>(&body) {
            Ok(p) => format!("ok {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn messages_name_the_member_as_aws_does() {
        assert_eq!(
            message(json!({})),
            "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null"
        );
        assert_eq!(
            message(json!({"KeyId": null})),
            "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null"
        );
        assert_eq!(
            message(json!({"KeyId": 5})),
            "Parameter KeyId must be a string"
        );
        assert_eq!(
            message(json!({"KeyId": "k", "NumberOfBytes": -1})),
            "Parameter NumberOfBytes must be a non-negative integer"
        );
        assert_eq!(
            message(json!({"KeyId": "k", "NumberOfBytes": 1.5})),
            "Parameter NumberOfBytes must be a non-negative integer"
        );
        assert_eq!(
            message(json!({"KeyId": "k", "Flag": "yes"})),
            "Parameter Flag must be a boolean"
        );
        assert_eq!(
            message(json!({"KeyId": "k", "Blob": "!!"})),
            "Parameter Blob is not valid base64"
        );
        assert_eq!(
            message(json!({"KeyId": "k", "Blob": 1})),
            "Parameter Blob must be a string"
        );
        assert_eq!(
            message(json!({"KeyId": "k", "EncryptionContext": {"a": 1}})),
            "Parameter EncryptionContext must be a map of strings to strings"
        );
        assert_eq!(
            from_body::<Probe>(&json!([]))
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err("The request body must be a JSON object".to_string())
        );
        let probe = from_body::<Probe>(&json!({
            "KeyId": "k", "NumberOfBytes": 7, "Unknown": 1, "Flag": null,
            "Blob": "aGk=", "EncryptionContext": {"a": "b"}
        }))
        .map_err(|e| e.to_string());
        let Ok(probe) = probe else {
            panic!("{probe:?}");
        };
        assert_eq!(probe.key_id, "k");
        assert_eq!(probe.number_of_bytes, Some(7));
        assert!(!probe.flag);
        assert_eq!(probe.blob, Some(Blob(b"hi".to_vec())));
        assert_eq!(
            probe.encryption_context.get("a").map(String::as_str),
            Some("b")
        );
    }

    /// Answers as moto sends them: null members, informational members
    /// left out, fractional timestamps.
    #[test]
    fn answers_of_other_services_are_read() {
        use crate::protocol::{DecryptResponse, DescribeKeyResponse};
        let described: DescribeKeyResponse = decode(&json!({"KeyMetadata": {
            "AWSAccountId": "123456789012", "Arn": "arn:aws:kms:us-east-1:123456789012:key/k",
            "CreationDate": 1796157892.382247, "Description": null, "KeyId": "k",
            "KeyUsage": null, "KeyState": "Enabled", "MultiRegion": null, "SigningAlgorithms": []
        }}))
        .unwrap();
        let meta = described.key_metadata;
        assert_eq!(meta.creation_date.0, 1796157892);
        assert_eq!(
            (meta.key_state.as_str(), meta.description.as_str()),
            ("Enabled", "")
        );
        assert!(!meta.multi_region);
        let decrypted: DecryptResponse =
            decode(&json!({"KeyId": "k", "Plaintext": "aGk="})).unwrap();
        assert_eq!(decrypted.plaintext.0.as_slice(), b"hi");
        assert!(!format!("{decrypted:?}").contains("aGk"));
        assert!(decode::<DecryptResponse>(&json!({"KeyId": "k"})).is_err());
    }
}
