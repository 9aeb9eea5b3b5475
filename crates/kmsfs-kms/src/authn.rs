//! Authenticating a SigV4-signed request against the store's IAM access
//! keys: the part that `kmsfs kms serve` and the EC2 endpoint of the EBS
//! simulation share. What differs between them stays with each server: the
//! service name the credential must be scoped to, whether the region is
//! fixed (the KMS store has one) or taken from the scope (EC2), the error
//! codes the failures are reported under, and any replay protection.

use zeroize::Zeroizing;

use super::error::KmsError;
use super::iam;
use super::local::LocalKms;
use super::policy::Caller;
use super::sigv4;

/// One received request, as the signature covers it.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The raw query string (without `?`), as received.
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl SignedRequest<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Which region a credential may be scoped to.
#[derive(Debug, Clone, Copy)]
pub enum RegionCheck<'a> {
    /// Only this one (the KMS store's region).
    Exactly(&'a str),
    /// Any region the scope names (EC2: the region is part of the request).
    FromScope,
}

/// Why a request was not authenticated. Each server names these with its
/// own service's error codes; the message is AWS's wording.
#[derive(Debug)]
pub enum AuthFailure {
    /// No `Authorization` header at all.
    Missing,
    /// The header or `X-Amz-Date` is malformed or incomplete.
    Incomplete(String),
    /// `X-Amz-Date` is too far from the server's clock.
    Expired(String),
    /// Wrong service or region in the scope, or the signature does not match.
    Invalid(String),
    /// The access key id is unknown or not active.
    UnknownKey,
    /// The key's IAM user names no Unix user.
    Unmapped(String),
    /// The store could not be read.
    Store(KmsError),
}

/// A request whose signature checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    pub access_key_id: String,
    /// The IAM user owning the access key.
    pub user: String,
    /// Whether that user stands for the Unix user of its name.
    pub unix_user: bool,
    /// The credential scope's region (checked per [`RegionCheck`]).
    pub region: String,
    /// The request's signature (lower-case hex), e.g. for a replay cache.
    pub signature: String,
    /// The request's X-Amz-Date, in Unix seconds.
    pub when: i64,
}

impl Verified {
    /// The identity the request acts as: the IAM user, and the Unix user
    /// of its name if it stands for one.
    pub fn caller(&self) -> Result<Caller, AuthFailure> {
        iam::caller_for_user(&self.user, self.unix_user).map_err(|e| {
            AuthFailure::Unmapped(format!(
                "The access key's user cannot be mapped to a Unix user: {e}"
            ))
        })
    }
}

/// Checks `req`'s SigV4 signature: the `Authorization` header's form, that
/// `host` and `x-amz-date` are signed, the date against `now` (within
/// [`sigv4::MAX_SKEW_SECONDS`]), the scope's service and region, and the
/// signature itself, made with an active access key of the store's IAM.
pub fn verify(
    kms: &LocalKms,
    req: &SignedRequest<'_>,
    service: &str,
    region: RegionCheck<'_>,
    now: i64,
) -> Result<Verified, AuthFailure> {
    let Some(auth_header) = req.header("authorization") else {
        return Err(AuthFailure::Missing);
    };
    // `parse` also insists that `host` is among the signed headers.
    let auth = sigv4::Authorization::parse(auth_header).map_err(AuthFailure::Incomplete)?;
    let amz_date = req
        .header("x-amz-date")
        .ok_or_else(|| {
            AuthFailure::Incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                    .into(),
            )
        })?
        .trim();
    if !auth.signed_headers.iter().any(|h| h == "x-amz-date") {
        return Err(AuthFailure::Incomplete(
            "Signed headers must include x-amz-date".into(),
        ));
    }
    // What decides the operation and how the body is read must be under the
    // signature: else a captured request could be re-aimed (another
    // X-Amz-Target with the same body). Every SDK signs all of these.
    if let Some((name, _)) = req.headers.iter().find(|(name, _)| {
        let name = name.to_ascii_lowercase();
        (name.starts_with("x-amz-") || name == "content-type")
            && !auth.signed_headers.contains(&name)
    }) {
        return Err(AuthFailure::Incomplete(format!(
            "Signed headers must include {}: every X-Amz-* header and Content-Type of the request is signed",
            name.to_ascii_lowercase()
        )));
    }
    let when = sigv4::parse_amz_date(amz_date).ok_or_else(|| {
        AuthFailure::Incomplete(format!("X-Amz-Date {amz_date} is not a valid date"))
    })?;
    if !amz_date.starts_with(&auth.date) {
        return Err(AuthFailure::Invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            auth.date,
            amz_date.get(..8).unwrap_or(amz_date)
        )));
    }
    if (now - when).abs() > sigv4::MAX_SKEW_SECONDS {
        return Err(AuthFailure::Expired(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 5 min.)",
            sigv4::format_amz_date(now - sigv4::MAX_SKEW_SECONDS),
            sigv4::format_amz_date(now)
        )));
    }
    if auth.service != service {
        return Err(AuthFailure::Invalid(format!(
            "Credential should be scoped to correct service: '{service}', not '{}'",
            auth.service
        )));
    }
    if let RegionCheck::Exactly(region) = region
        && auth.region != region
    {
        return Err(AuthFailure::Invalid(format!(
            "Credential should be scoped to a valid region: this key service is region '{region}', not '{}'",
            auth.region
        )));
    }
    let key = kms
        .iam_read(|d| {
            d.active_key(&auth.access_key_id).map(|(user, secret)| {
                (
                    user.to_string(),
                    d.is_unix_user(user),
                    Zeroizing::new(secret.to_string()),
                )
            })
        })
        .map_err(AuthFailure::Store)?;
    let Some((user, unix_user, secret)) = key else {
        return Err(AuthFailure::UnknownKey);
    };
    let expected = sigv4::expected_signature(
        &auth,
        &secret,
        amz_date,
        req.method,
        req.path,
        req.query,
        req.headers,
        req.body,
    );
    if !sigv4::ct_eq(&expected, &auth.signature) {
        return Err(AuthFailure::Invalid(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
                .into(),
        ));
    }
    Ok(Verified {
        access_key_id: auth.access_key_id,
        user,
        unix_user,
        region: auth.region,
        signature: auth.signature,
        when,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::SystemClock;
    use crate::store::RootSecret;

    const NOW: i64 = 1_700_000_000;

    /// A store with an access key of the current Unix user.
    fn store(dir: &std::path::Path) -> (LocalKms, String, String) {
        let kms =
            LocalKms::open(&dir.join("ks"), &RootSecret::KeyFile, Arc::new(SystemClock)).unwrap();
        let me = nix::unistd::User::from_uid(nix::unistd::getuid())
            .unwrap()
            .unwrap()
            .name;
        let (id, secret) = kms
            .iam_update(|iam, now| {
                iam.create_user(&me, now, crate::iam::UnixLink::IfExists)?;
                iam.create_access_key(&me, now)
            })
            .unwrap();
        (kms, id, secret.to_string())
    }

    /// A signed POST: its headers (host, content-type and the signature's).
    fn signed(id: &str, secret: &str, region: &str, service: &str) -> Vec<(String, String)> {
        let base = vec![(
            "content-type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        )];
        let mut headers = base.clone();
        headers.push(("host".into(), "localhost".into()));
        headers.extend(sigv4::sign_post(
            id,
            secret,
            None,
            region,
            service,
            "localhost",
            "/",
            &base,
            b"x=1",
            NOW,
        ));
        headers
    }

    fn check(
        kms: &LocalKms,
        headers: &[(String, String)],
        service: &str,
        region: RegionCheck<'_>,
        now: i64,
    ) -> Result<Verified, AuthFailure> {
        let req = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body: b"x=1",
        };
        verify(kms, &req, service, region, now)
    }

    #[test]
    fn the_scope_decides_service_and_region() {
        let dir = tempfile::tempdir().unwrap();
        let (kms, id, secret) = store(dir.path());
        let h = signed(&id, &secret, "eu-west-3", "ec2");
        let v = check(&kms, &h, "ec2", RegionCheck::FromScope, NOW).unwrap();
        assert_eq!((v.region.as_str(), v.when), ("eu-west-3", NOW));
        assert_eq!(v.access_key_id, id);
        assert_eq!(v.caller().unwrap().uid, nix::unistd::getuid().as_raw());
        assert!(check(&kms, &h, "ec2", RegionCheck::Exactly("eu-west-3"), NOW).is_ok());
        let e = check(&kms, &h, "ec2", RegionCheck::Exactly("local"), NOW).unwrap_err();
        assert!(
            matches!(&e, AuthFailure::Invalid(m) if m.contains("valid region")),
            "{e:?}"
        );
        let e = check(&kms, &h, "kms", RegionCheck::FromScope, NOW).unwrap_err();
        assert!(
            matches!(&e, AuthFailure::Invalid(m) if m.contains("'kms', not 'ec2'")),
            "{e:?}"
        );
    }

    #[test]
    fn bad_signatures_keys_dates_and_headers_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (kms, id, secret) = store(dir.path());
        let any = RegionCheck::FromScope;
        let e = check(&kms, &signed(&id, "wrong", "r", "ec2"), "ec2", any, NOW).unwrap_err();
        assert!(
            matches!(&e, AuthFailure::Invalid(m) if m.contains("does not match")),
            "{e:?}"
        );
        let e = check(
            &kms,
            &signed("AKIAUNKNOWN", &secret, "r", "ec2"),
            "ec2",
            any,
            NOW,
        );
        assert!(matches!(e, Err(AuthFailure::UnknownKey)));
        let h = signed(&id, &secret, "r", "ec2");
        let late = NOW + sigv4::MAX_SKEW_SECONDS + 1;
        assert!(matches!(
            check(&kms, &h, "ec2", any, late),
            Err(AuthFailure::Expired(_))
        ));
        assert!(matches!(
            check(&kms, &[], "ec2", any, NOW),
            Err(AuthFailure::Missing)
        ));
        // x-amz-date present but left out of SignedHeaders.
        let unsigned_date: Vec<(String, String)> = h
            .iter()
            .map(|(n, v)| {
                let v = if n == "Authorization" {
                    v.replace(";x-amz-date", "")
                } else {
                    v.clone()
                };
                (n.clone(), v)
            })
            .collect();
        let e = check(&kms, &unsigned_date, "ec2", any, NOW).unwrap_err();
        assert!(
            matches!(&e, AuthFailure::Incomplete(m) if m.contains("x-amz-date")),
            "{e:?}"
        );
        // A header that steers the request, added after signing, is refused
        // although the signature over the other headers still matches.
        let mut re_aimed = h.clone();
        re_aimed.push(("X-Amz-Target".into(), "TrentService.DisableKey".into()));
        let e = check(&kms, &re_aimed, "ec2", any, NOW).unwrap_err();
        assert!(
            matches!(&e, AuthFailure::Incomplete(m) if m.contains("x-amz-target")),
            "{e:?}"
        );
        let unsigned_type: Vec<(String, String)> = h
            .iter()
            .map(|(n, v)| {
                let v = if n == "Authorization" {
                    v.replace("content-type;", "")
                } else {
                    v.clone()
                };
                (n.clone(), v)
            })
            .collect();
        let e = check(&kms, &unsigned_type, "ec2", any, NOW).unwrap_err();
        assert!(
            matches!(&e, AuthFailure::Incomplete(m) if m.contains("content-type")),
            "{e:?}"
        );
    }
}
