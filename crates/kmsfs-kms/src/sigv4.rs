//! AWS Signature Version 4, both sides: signing the requests kmsfs sends to
//! a KMS endpoint, and verifying the requests `kmsfs kms serve` receives.
//!
//! The hash and MAC primitives are RustCrypto's (`sha2`, `hmac`); this module
//! only assembles the canonical request, the string to sign and the signing
//! key as the SigV4 specification lays them out. The server must rebuild the
//! canonical request from exactly the headers the client chose to sign
//! (`SignedHeaders`), which the signing crates do not offer, so verification
//! and signing share this one implementation (checked against AWS's published
//! test vectors below and, in tests/kms_server.rs, against the real AWS CLI).

use std::fmt::Write as _;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a request's X-Amz-Date may be from the server's clock.
pub const MAX_SKEW_SECONDS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Zeroizing<Vec<u8>> {
    // HMAC accepts keys of any length.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    Zeroizing::new(mac.finalize().into_bytes().to_vec())
}

/// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Zeroizing<Vec<u8>> {
    let k_secret = Zeroizing::new(format!("AWS4{secret}"));
    let k_date = hmac(k_secret.as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// Collapses runs of spaces and trims, as SigV4 canonical header values need.
fn canonical_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// RFC 3986 unreserved characters stay, everything else is %XX (upper case).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical request. `headers` are (name, value) pairs as received;
/// only those named in `signed_headers` (lower case, sorted) take part.
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    signed_headers: &[String],
    payload_hash: &str,
) -> String {
    let mut out = format!(
        "{method}\n{}\n{}\n",
        if path.is_empty() { "/" } else { path },
        canonical_query(query)
    );
    for name in signed_headers {
        let values: Vec<String> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| canonical_value(v))
            .collect();
        let _ = writeln!(out, "{name}:{}", values.join(","));
    }
    let _ = write!(out, "\n{}\n{payload_hash}", signed_headers.join(";"));
    out
}

pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

pub fn signature(signing_key: &[u8], string_to_sign: &str) -> String {
    hex(&hmac(signing_key, string_to_sign.as_bytes()))
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=…,
/// SignedHeaders=…, Signature=…` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

impl Authorization {
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }

    /// Parses the header; the error is the message AWS gives with
    /// IncompleteSignatureException.
    pub fn parse(header: &str) -> Result<Authorization, String> {
        let rest = header
            .trim()
            .strip_prefix(ALGORITHM)
            .ok_or_else(|| format!("Authorization header requires the {ALGORITHM} algorithm"))?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Credential=") {
                credential = Some(v);
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed = Some(v);
            } else if let Some(v) = part.strip_prefix("Signature=") {
                signature = Some(v);
            }
        }
        let missing = |what: &str| {
            format!("Authorization header requires '{what}' parameter. Authorization={header}")
        };
        let credential = credential.ok_or_else(|| missing("Credential"))?;
        let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
        let signature = signature.ok_or_else(|| missing("Signature"))?;
        let fields: Vec<&str> = credential.split('/').collect();
        if fields.len() != 5 || fields[4] != "aws4_request" {
            return Err(format!(
                "Credential should be scoped to a valid region and service, and end in aws4_request: {credential}"
            ));
        }
        if !signature.bytes().all(|b| b.is_ascii_hexdigit()) || signature.len() != 64 {
            return Err("Signature must be 64 hexadecimal characters".into());
        }
        let signed_headers: Vec<String> = signed
            .split(';')
            .filter(|h| !h.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        if !signed_headers.iter().any(|h| h == "host") {
            return Err("Signed headers must include the host header".into());
        }
        Ok(Authorization {
            access_key_id: fields[0].to_string(),
            date: fields[1].to_string(),
            region: fields[2].to_string(),
            service: fields[3].to_string(),
            signed_headers,
            signature: signature.to_ascii_lowercase(),
        })
    }

    pub fn header_value(&self) -> String {
        format!(
            "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={}",
            self.access_key_id,
            self.scope(),
            self.signed_headers.join(";"),
            self.signature
        )
    }
}

/// Parses an X-Amz-Date value (`20150830T123600Z`) to Unix seconds.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

pub fn format_amz_date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// Constant-time comparison of two signatures.
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The expected signature of a received request, given the secret.
#[allow(clippy::too_many_arguments)]
pub fn expected_signature(
    auth: &Authorization,
    secret: &str,
    amz_date: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> String {
    let creq = canonical_request(
        method,
        path,
        query,
        headers,
        &auth.signed_headers,
        &sha256_hex(body),
    );
    let sts = string_to_sign(amz_date, &auth.scope(), &creq);
    signature(
        &signing_key(secret, &auth.date, &auth.region, &auth.service),
        &sts,
    )
}

/// Signs a POST of `body` to `host` + `path`: returns the headers to send
/// (besides those given, which are all signed): X-Amz-Date, Authorization.
#[allow(clippy::too_many_arguments)]
pub fn sign_post(
    access_key_id: &str,
    secret: &str,
    session_token: Option<&str>,
    region: &str,
    service: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
    now: i64,
) -> Vec<(String, String)> {
    let amz_date = format_amz_date(now);
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect();
    all.push(("host".into(), host.into()));
    all.push(("x-amz-date".into(), amz_date.clone()));
    if let Some(t) = session_token {
        all.push(("x-amz-security-token".into(), t.into()));
    }
    let mut signed: Vec<String> = all.iter().map(|(n, _)| n.clone()).collect();
    signed.sort();
    signed.dedup();
    let auth = Authorization {
        access_key_id: access_key_id.into(),
        date: amz_date[..8].into(),
        region: region.into(),
        service: service.into(),
        signed_headers: signed,
        signature: String::new(),
    };
    let signature = expected_signature(&auth, secret, &amz_date, "POST", path, "", &all, body);
    let auth = Authorization { signature, ..auth };
    let mut out = vec![("X-Amz-Date".to_string(), amz_date)];
    if let Some(t) = session_token {
        out.push(("X-Amz-Security-Token".into(), t.into()));
    }
    out.push(("Authorization".into(), auth.header_value()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// AWS SigV4 test suite, "get-vanilla".
    #[test]
    fn aws_test_suite_get_vanilla() {
        let auth = Authorization::parse(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        )
        .unwrap();
        let headers = h(&[
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
        ]);
        let creq = canonical_request(
            "GET",
            "/",
            "",
            &headers,
            &auth.signed_headers,
            &sha256_hex(b""),
        );
        assert_eq!(
            creq,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let got = signature(
            &signing_key(SECRET, "20150830", "us-east-1", "service"),
            &string_to_sign("20150830T123600Z", &auth.scope(), &creq),
        );
        assert_eq!(got, auth.signature);
    }

    /// AWS SigV4 documentation: the derived signing key for IAM, 20120215.
    #[test]
    fn aws_documented_signing_key() {
        let k = signing_key(SECRET, "20120215", "us-east-1", "iam");
        assert_eq!(
            hex(&k),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn sign_then_verify_round_trip() {
        let base = h(&[
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", "TrentService.Encrypt"),
        ]);
        let body = br#"{"KeyId":"alias/x"}"#;
        let added = sign_post(
            "AKIAEXAMPLE",
            SECRET,
            None,
            "local",
            "kms",
            "127.0.0.1:9",
            "/",
            &base,
            body,
            1_700_000_000,
        );
        let mut all = base.clone();
        all.push(("Host".into(), "127.0.0.1:9".into()));
        all.extend(added.iter().cloned());
        let auth_header = &added.iter().find(|(n, _)| n == "Authorization").unwrap().1;
        let auth = Authorization::parse(auth_header).unwrap();
        assert_eq!(auth.access_key_id, "AKIAEXAMPLE");
        assert_eq!(
            auth.signed_headers,
            ["content-type", "host", "x-amz-date", "x-amz-target"]
        );
        let amz_date = format_amz_date(1_700_000_000);
        let expected = expected_signature(&auth, SECRET, &amz_date, "POST", "/", "", &all, body);
        assert!(ct_eq(&expected, &auth.signature));
        let tampered = expected_signature(&auth, SECRET, &amz_date, "POST", "/", "", &all, b"{}");
        assert!(!ct_eq(&tampered, &auth.signature));
        assert_eq!(parse_amz_date(&amz_date), Some(1_700_000_000));
    }

    #[test]
    fn malformed_authorization_headers() {
        for bad in [
            "",
            "AWS4-HMAC-SHA1 Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=a/b/c, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=zz",
        ] {
            assert!(Authorization::parse(bad).is_err(), "{bad}");
        }
    }
}
