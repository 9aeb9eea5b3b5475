//! What kind of key a CMK is (its KeySpec) and what it may be used for (its
//! KeyUsage), with the algorithms AWS lists for each pair. The names are
//! AWS's, on the wire and in the store.
//!
//! Why one table here: CreateKey (which pairs are allowed), DescribeKey and
//! GetPublicKey (the algorithm lists) and every cryptographic operation
//! (is this algorithm valid for this key) must agree, and AWS's answers
//! are a pure function of (spec, usage).

use serde::{Deserialize, Serialize};

use crate::error::{KmsError, Result};

/// A key's type of material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum KeySpec {
    /// AES-256-GCM (kmsfs's ciphertext blob).
    #[default]
    #[serde(rename = "SYMMETRIC_DEFAULT")]
    SymmetricDefault,
    #[serde(rename = "RSA_2048")]
    Rsa2048,
    #[serde(rename = "RSA_3072")]
    Rsa3072,
    #[serde(rename = "RSA_4096")]
    Rsa4096,
    #[serde(rename = "ECC_NIST_P256")]
    EccNistP256,
    #[serde(rename = "ECC_NIST_P384")]
    EccNistP384,
    #[serde(rename = "ECC_NIST_P521")]
    EccNistP521,
    #[serde(rename = "ECC_SECG_P256K1")]
    EccSecgP256k1,
    #[serde(rename = "HMAC_224")]
    Hmac224,
    #[serde(rename = "HMAC_256")]
    Hmac256,
    #[serde(rename = "HMAC_384")]
    Hmac384,
    #[serde(rename = "HMAC_512")]
    Hmac512,
}

/// Specs in AWS's model that kmsfs does not implement: refused by name
/// (UnsupportedOperationException) rather than as unknown values.
pub const UNSUPPORTED_SPECS: &[&str] = &[
    "SM2",
    "ML_DSA_44",
    "ML_DSA_65",
    "ML_DSA_87",
    "ECC_NIST_EDWARDS25519",
];

impl KeySpec {
    pub const ALL: &'static [KeySpec] = &[
        KeySpec::SymmetricDefault,
        KeySpec::Rsa2048,
        KeySpec::Rsa3072,
        KeySpec::Rsa4096,
        KeySpec::EccNistP256,
        KeySpec::EccNistP384,
        KeySpec::EccNistP521,
        KeySpec::EccSecgP256k1,
        KeySpec::Hmac224,
        KeySpec::Hmac256,
        KeySpec::Hmac384,
        KeySpec::Hmac512,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeySpec::SymmetricDefault => "SYMMETRIC_DEFAULT",
            KeySpec::Rsa2048 => "RSA_2048",
            KeySpec::Rsa3072 => "RSA_3072",
            KeySpec::Rsa4096 => "RSA_4096",
            KeySpec::EccNistP256 => "ECC_NIST_P256",
            KeySpec::EccNistP384 => "ECC_NIST_P384",
            KeySpec::EccNistP521 => "ECC_NIST_P521",
            KeySpec::EccSecgP256k1 => "ECC_SECG_P256K1",
            KeySpec::Hmac224 => "HMAC_224",
            KeySpec::Hmac256 => "HMAC_256",
            KeySpec::Hmac384 => "HMAC_384",
            KeySpec::Hmac512 => "HMAC_512",
        }
    }

    /// The spec of a CreateKey `KeySpec`; AWS's model names that kmsfs
    /// lacks are UnsupportedOperation, anything else a ValidationException.
    pub fn parse(name: &str) -> Result<KeySpec> {
        if let Some(spec) = KeySpec::ALL.iter().copied().find(|s| s.as_str() == name) {
            return Ok(spec);
        }
        if UNSUPPORTED_SPECS.contains(&name) {
            return Err(KmsError::UnsupportedOperation(format!(
                "KeySpec {name} is not supported by kmsfs (SM2, ML-DSA and Ed25519 keys are not implemented)"
            )));
        }
        let all: Vec<&str> = KeySpec::ALL
            .iter()
            .map(|s| s.as_str())
            .chain(UNSUPPORTED_SPECS.iter().copied())
            .collect();
        Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{name}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            all.join(", ")
        )))
    }

    pub fn is_symmetric_default(self) -> bool {
        self == KeySpec::SymmetricDefault
    }

    pub fn is_rsa(self) -> bool {
        matches!(self, KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096)
    }

    pub fn is_ecc(self) -> bool {
        matches!(
            self,
            KeySpec::EccNistP256
                | KeySpec::EccNistP384
                | KeySpec::EccNistP521
                | KeySpec::EccSecgP256k1
        )
    }

    pub fn is_hmac(self) -> bool {
        matches!(
            self,
            KeySpec::Hmac224 | KeySpec::Hmac256 | KeySpec::Hmac384 | KeySpec::Hmac512
        )
    }

    /// Whether the key has a public half (GetPublicKey).
    pub fn is_asymmetric(self) -> bool {
        self.is_rsa() || self.is_ecc()
    }

    /// The RSA modulus size in bits.
    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            KeySpec::Rsa2048 => Some(2048),
            KeySpec::Rsa3072 => Some(3072),
            KeySpec::Rsa4096 => Some(4096),
            _ => None,
        }
    }

    /// The usages AWS allows for this spec; the first is not a default
    /// (only SYMMETRIC_DEFAULT has one: AWS requires KeyUsage otherwise).
    pub fn usages(self) -> &'static [KeyUsage] {
        use KeyUsage::*;
        match self {
            KeySpec::SymmetricDefault => &[EncryptDecrypt],
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => &[EncryptDecrypt, SignVerify],
            KeySpec::EccNistP256 | KeySpec::EccNistP384 | KeySpec::EccNistP521 => {
                &[SignVerify, KeyAgreement]
            }
            KeySpec::EccSecgP256k1 => &[SignVerify],
            KeySpec::Hmac224 | KeySpec::Hmac256 | KeySpec::Hmac384 | KeySpec::Hmac512 => {
                &[GenerateVerifyMac]
            }
        }
    }

    /// The encryption algorithms of an ENCRYPT_DECRYPT key of this spec.
    pub fn encryption_algorithms(self) -> &'static [&'static str] {
        if self.is_rsa() {
            &["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
        } else if self.is_symmetric_default() {
            &["SYMMETRIC_DEFAULT"]
        } else {
            &[]
        }
    }

    /// The signing algorithms of a SIGN_VERIFY key of this spec.
    pub fn signing_algorithms(self) -> &'static [SigningAlgorithm] {
        use SigningAlgorithm::*;
        match self {
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => &[
                RsassaPssSha256,
                RsassaPssSha384,
                RsassaPssSha512,
                RsassaPkcs1V15Sha256,
                RsassaPkcs1V15Sha384,
                RsassaPkcs1V15Sha512,
            ],
            KeySpec::EccNistP256 | KeySpec::EccSecgP256k1 => &[EcdsaSha256],
            KeySpec::EccNistP384 => &[EcdsaSha384],
            KeySpec::EccNistP521 => &[EcdsaSha512],
            _ => &[],
        }
    }

    /// The one MAC algorithm of an HMAC key.
    pub fn mac_algorithm(self) -> Option<MacAlgorithm> {
        match self {
            KeySpec::Hmac224 => Some(MacAlgorithm::HmacSha224),
            KeySpec::Hmac256 => Some(MacAlgorithm::HmacSha256),
            KeySpec::Hmac384 => Some(MacAlgorithm::HmacSha384),
            KeySpec::Hmac512 => Some(MacAlgorithm::HmacSha512),
            _ => None,
        }
    }
}

impl std::fmt::Display for KeySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum KeyUsage {
    #[default]
    #[serde(rename = "ENCRYPT_DECRYPT")]
    EncryptDecrypt,
    #[serde(rename = "SIGN_VERIFY")]
    SignVerify,
    #[serde(rename = "GENERATE_VERIFY_MAC")]
    GenerateVerifyMac,
    #[serde(rename = "KEY_AGREEMENT")]
    KeyAgreement,
}

impl KeyUsage {
    pub const ALL: &'static [KeyUsage] = &[
        KeyUsage::SignVerify,
        KeyUsage::EncryptDecrypt,
        KeyUsage::GenerateVerifyMac,
        KeyUsage::KeyAgreement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyUsage::EncryptDecrypt => "ENCRYPT_DECRYPT",
            KeyUsage::SignVerify => "SIGN_VERIFY",
            KeyUsage::GenerateVerifyMac => "GENERATE_VERIFY_MAC",
            KeyUsage::KeyAgreement => "KEY_AGREEMENT",
        }
    }

    pub fn parse(name: &str) -> Result<KeyUsage> {
        KeyUsage::ALL
            .iter()
            .copied()
            .find(|u| u.as_str() == name)
            .ok_or_else(|| {
                KmsError::Validation(format!(
                    "1 validation error detected: Value '{name}' at 'keyUsage' failed to satisfy constraint: Member must satisfy enum value set: [SIGN_VERIFY, ENCRYPT_DECRYPT, GENERATE_VERIFY_MAC, KEY_AGREEMENT]"
                ))
            })
    }
}

impl std::fmt::Display for KeyUsage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// CreateKey's (KeySpec, KeyUsage) pair, checked as AWS checks it. An
/// absent KeyUsage is ENCRYPT_DECRYPT for symmetric keys and refused for
/// every other spec, as AWS requires it there.
pub fn key_type(spec: &str, usage: Option<&str>) -> Result<(KeySpec, KeyUsage)> {
    let spec = KeySpec::parse(spec)?;
    let usage = match usage {
        Some(u) => KeyUsage::parse(u)?,
        None if spec.is_symmetric_default() => KeyUsage::EncryptDecrypt,
        None => {
            return Err(KmsError::Validation(format!(
                "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys: KeySpec {spec} takes {}.",
                usage_list(spec)
            )));
        }
    };
    if !spec.usages().contains(&usage) {
        return Err(KmsError::Validation(format!(
            "KeyUsage {usage} is not compatible with KeySpec {spec}: use {}.",
            usage_list(spec)
        )));
    }
    Ok((spec, usage))
}

fn usage_list(spec: KeySpec) -> String {
    let names: Vec<&str> = spec.usages().iter().map(|u| u.as_str()).collect();
    names.join(" or ")
}

/// The hash functions of the signing and MAC algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// The digest length in bytes (DIGEST messages must have exactly it).
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha224 => 28,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }
}

macro_rules! names {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $wire:literal, $hash:ident;)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }

            pub fn from_name(name: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|a| a.as_str() == name)
            }

            pub fn hash(self) -> Hash {
                match self {
                    $($name::$variant => Hash::$hash),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names!(
    /// Sign and Verify's `SigningAlgorithm`.
    SigningAlgorithm {
        RsassaPssSha256 = "RSASSA_PSS_SHA_256", Sha256;
        RsassaPssSha384 = "RSASSA_PSS_SHA_384", Sha384;
        RsassaPssSha512 = "RSASSA_PSS_SHA_512", Sha512;
        RsassaPkcs1V15Sha256 = "RSASSA_PKCS1_V1_5_SHA_256", Sha256;
        RsassaPkcs1V15Sha384 = "RSASSA_PKCS1_V1_5_SHA_384", Sha384;
        RsassaPkcs1V15Sha512 = "RSASSA_PKCS1_V1_5_SHA_512", Sha512;
        EcdsaSha256 = "ECDSA_SHA_256", Sha256;
        EcdsaSha384 = "ECDSA_SHA_384", Sha384;
        EcdsaSha512 = "ECDSA_SHA_512", Sha512;
    }
);

names!(
    /// GenerateMac and VerifyMac's `MacAlgorithm`.
    MacAlgorithm {
        HmacSha224 = "HMAC_SHA_224", Sha224;
        HmacSha256 = "HMAC_SHA_256", Sha256;
        HmacSha384 = "HMAC_SHA_384", Sha384;
        HmacSha512 = "HMAC_SHA_512", Sha512;
    }
);

/// The RSA encryption algorithms (Encrypt, Decrypt, ReEncrypt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaEncryption {
    OaepSha1,
    OaepSha256,
}

impl RsaEncryption {
    pub fn from_name(name: &str) -> Option<RsaEncryption> {
        match name {
            "RSAES_OAEP_SHA_1" => Some(RsaEncryption::OaepSha1),
            "RSAES_OAEP_SHA_256" => Some(RsaEncryption::OaepSha256),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RsaEncryption::OaepSha1 => "RSAES_OAEP_SHA_1",
            RsaEncryption::OaepSha256 => "RSAES_OAEP_SHA_256",
        }
    }

    /// The longest plaintext RSAES-OAEP takes with a modulus of `bits`:
    /// k − 2·hLen − 2 (RFC 8017 §7.1.1), as AWS's table lists it (RSA_2048:
    /// 214 bytes with SHA-1, 190 with SHA-256).
    pub fn max_plaintext(self, bits: usize) -> usize {
        let h_len = match self {
            RsaEncryption::OaepSha1 => 20,
            RsaEncryption::OaepSha256 => 32,
        };
        bits / 8 - 2 * h_len - 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &spec in KeySpec::ALL {
            assert_eq!(KeySpec::parse(spec.as_str()).unwrap(), spec);
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(json, format!("\"{}\"", spec.as_str()));
        }
        for &u in KeyUsage::ALL {
            assert_eq!(KeyUsage::parse(u.as_str()).unwrap(), u);
        }
        for &a in SigningAlgorithm::ALL {
            assert_eq!(SigningAlgorithm::from_name(a.as_str()), Some(a));
        }
        assert_eq!(KeySpec::default(), KeySpec::SymmetricDefault);
    }

    #[test]
    fn pairs_follow_aws() {
        let ok = |s: &str, u: Option<&str>| key_type(s, u).is_ok();
        assert!(ok("SYMMETRIC_DEFAULT", None));
        assert!(ok("RSA_2048", Some("ENCRYPT_DECRYPT")));
        assert!(ok("RSA_4096", Some("SIGN_VERIFY")));
        assert!(ok("ECC_NIST_P384", Some("KEY_AGREEMENT")));
        assert!(ok("ECC_SECG_P256K1", Some("SIGN_VERIFY")));
        assert!(ok("HMAC_512", Some("GENERATE_VERIFY_MAC")));
        for (s, u) in [
            ("SYMMETRIC_DEFAULT", Some("SIGN_VERIFY")),
            ("RSA_2048", Some("KEY_AGREEMENT")),
            ("RSA_2048", None),
            ("ECC_NIST_P256", Some("ENCRYPT_DECRYPT")),
            ("ECC_SECG_P256K1", Some("KEY_AGREEMENT")),
            ("HMAC_256", Some("ENCRYPT_DECRYPT")),
            ("HMAC_256", None),
            ("AES_256", None),
            ("RSA_2048", Some("SIGN")),
        ] {
            let e = key_type(s, u).unwrap_err();
            assert!(matches!(e, KmsError::Validation(_)), "{s} {u:?}: {e:?}");
        }
        let e = key_type("HMAC_256", Some("SIGN_VERIFY")).unwrap_err();
        assert_eq!(
            e.message(),
            "KeyUsage SIGN_VERIFY is not compatible with KeySpec HMAC_256: use GENERATE_VERIFY_MAC."
        );
        for s in UNSUPPORTED_SPECS {
            let e = key_type(s, Some("SIGN_VERIFY")).unwrap_err();
            assert!(matches!(e, KmsError::UnsupportedOperation(ref m) if m.contains(s)));
        }
    }

    #[test]
    fn oaep_limits_match_the_aws_table() {
        use RsaEncryption::*;
        assert_eq!(OaepSha1.max_plaintext(2048), 214);
        assert_eq!(OaepSha256.max_plaintext(2048), 190);
        assert_eq!(OaepSha1.max_plaintext(3072), 342);
        assert_eq!(OaepSha256.max_plaintext(3072), 318);
        assert_eq!(OaepSha1.max_plaintext(4096), 470);
        assert_eq!(OaepSha256.max_plaintext(4096), 446);
    }
}
