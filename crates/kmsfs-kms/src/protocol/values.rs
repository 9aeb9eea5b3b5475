//! How AWS KMS members are written on the wire, as types: binary members are
//! base64 strings ([`Blob`], and [`Plaintext`] for secrets, which is zeroized
//! and never printed), timestamps are epoch seconds ([`EpochSeconds`]), and
//! the field helpers below give malformed members the messages AWS (and
//! kmsfs's tests) use: "must be a non-negative integer", "must be a map of
//! strings to strings", …

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::blob::EncryptionContext;
use crate::model::Timestamp;

/// Decodes a base64 member; the message names what went wrong, the member
/// name is added by the caller.
fn decode_base64<E: de::Error>(s: &str) -> Result<Vec<u8>, E> {
    B64.decode(s).map_err(|_| E::custom("is not valid base64"))
}

struct Base64Visitor;

impl Visitor<'_> for Base64Visitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<u8>, E> {
        decode_base64(s)
    }
}

/// A binary member that is not secret: ciphertext blobs, import tokens,
/// public keys.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Blob(pub Vec<u8>);

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Blob, D::Error> {
        d.deserialize_str(Base64Visitor).map(Blob)
    }
}

impl From<Vec<u8>> for Blob {
    fn from(bytes: Vec<u8>) -> Blob {
        Blob(bytes)
    }
}

/// A secret binary member (a plaintext or a data key): zeroized on drop,
/// its base64 form too, and redacted in Debug output.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Plaintext(pub Zeroizing<Vec<u8>>);

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Plaintext(<redacted>)")
    }
}

impl Serialize for Plaintext {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let encoded = Zeroizing::new(B64.encode(self.0.as_slice()));
        s.serialize_str(&encoded)
    }
}

impl<'de> Deserialize<'de> for Plaintext {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Plaintext, D::Error> {
        d.deserialize_str(Base64Visitor)
            .map(|bytes| Plaintext(Zeroizing::new(bytes)))
    }
}

impl From<Zeroizing<Vec<u8>>> for Plaintext {
    fn from(bytes: Zeroizing<Vec<u8>>) -> Plaintext {
        Plaintext(bytes)
    }
}

/// A point in time as AWS's JSON protocol writes it: seconds since the
/// epoch. kmsfs sends whole seconds; AWS sends fractions, which are read
/// (and truncated) too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EpochSeconds(pub Timestamp);

impl<'de> Deserialize<'de> for EpochSeconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<EpochSeconds, D::Error> {
        struct SecondsVisitor;
        impl Visitor<'_> for SecondsVisitor {
            type Value = EpochSeconds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a timestamp in seconds since the epoch")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EpochSeconds, E> {
                Ok(EpochSeconds(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EpochSeconds, E> {
                i64::try_from(v)
                    .map(EpochSeconds)
                    .map_err(|_| E::custom("is out of range as a timestamp"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<EpochSeconds, E> {
                if v.is_finite() && v.abs() < i64::MAX as f64 {
                    Ok(EpochSeconds(v.trunc() as i64))
                } else {
                    Err(E::custom("is out of range as a timestamp"))
                }
            }
        }
        d.deserialize_any(SecondsVisitor)
    }
}

impl From<Timestamp> for EpochSeconds {
    fn from(t: Timestamp) -> EpochSeconds {
        EpochSeconds(t)
    }
}

/// One tag of CreateKey's `Tags`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub tag_key: String,
    pub tag_value: String,
}

/// Field helper: an optional non-negative integer member (u32).
pub(crate) fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Option::<u32>::deserialize(d).map_err(|_| de::Error::custom("must be a non-negative integer"))
}

/// Field helper: an encryption context (absent means empty).
pub(crate) fn context<'de, D: Deserializer<'de>>(d: D) -> Result<EncryptionContext, D::Error> {
    Option::<EncryptionContext>::deserialize(d)
        .map(Option::unwrap_or_default)
        .map_err(|_| de::Error::custom("must be a map of strings to strings"))
}

/// Field helper: CreateKey's tag list (absent means none).
pub(crate) fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Tag>, D::Error> {
    Option::<Vec<Tag>>::deserialize(d)
        .map(Option::unwrap_or_default)
        .map_err(|_| de::Error::custom("must be a list of {TagKey, TagValue}"))
}

/// Field helper: a required tag list (TagResource's `Tags`).
pub(crate) fn required_tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Tag>, D::Error> {
    Vec::<Tag>::deserialize(d)
        .map_err(|_| de::Error::custom("must be a list of {TagKey, TagValue}"))
}
