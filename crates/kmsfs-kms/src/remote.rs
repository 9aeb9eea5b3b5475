//! A key service over HTTP: the AWS KMS JSON protocol, signed with AWS
//! Signature Version 4, sent to `kmsfs kms serve` (or anything else that
//! speaks it). [`KmsClient`] sends one operation (typed with
//! [`KmsClient::send`], or as JSON); [`RemoteKms`] implements
//! [`KeyService`] on top of it for volumes whose config names an endpoint.
//!
//! Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and
//! AWS_SESSION_TOKEN), the region from AWS_REGION / AWS_DEFAULT_REGION
//! (default `local`, the embedded store's region).
//!
//! An endpoint `unix:/path/to/kms.sock` goes over the server's Unix socket
//! instead ([`unix_socket`](super::unix_socket)): unsigned, since the server
//! knows a socket peer by its uid.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::blob::{self, EncryptionContext};
use super::error::{KmsError, Result};
use super::policy::Caller;
use super::protocol::exception::{self, error_from_exception};
use super::protocol::wire;
use super::protocol::{
    Blob, CONTENT_TYPE, DecryptRequest, DescribeKeyRequest, GenerateDataKeyRequest,
    GenerateDataKeyWithoutPlaintextRequest, KmsRequest, ReEncryptRequest, TARGET_PREFIX,
};
use super::sigv4;
use super::unix_socket::UnixTransport;
use super::{DataKeyPair, Decrypted, KeyDescription, KeyService, KeyState, Wrapped};

#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// From AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, if both are set.
    pub fn from_env() -> Option<Credentials> {
        let id = std::env::var("AWS_ACCESS_KEY_ID")
            .ok()
            .filter(|s| !s.is_empty())?;
        let secret = Zeroizing::new(std::env::var("AWS_SECRET_ACCESS_KEY").ok()?);
        Some(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: std::env::var("AWS_SESSION_TOKEN")
                .ok()
                .filter(|s| !s.is_empty()),
        })
    }
}

/// The region of the environment: AWS_REGION, AWS_DEFAULT_REGION, or `local`.
pub fn env_region() -> String {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "local".into())
}

/// How long one request may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Largest answer body read.
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// One KMS endpoint: where, as whom, in which region.
pub struct KmsClient {
    url: String,
    host: String,
    path: String,
    region: String,
    credentials: Option<Credentials>,
    agent: ureq::Agent,
    /// Set for a `unix:` endpoint: requests go there, unsigned.
    unix: Option<UnixTransport>,
}

impl std::fmt::Debug for KmsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsClient")
            .field("url", &self.url)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl KmsClient {
    /// A client of `url` (https:// or http://HOST[:PORT][/PATH]); credentials
    /// and region from the environment.
    pub fn from_env(url: &str) -> Result<KmsClient> {
        KmsClient::new(url, Credentials::from_env(), &env_region())
    }

    pub fn new(url: &str, credentials: Option<Credentials>, region: &str) -> Result<KmsClient> {
        let unix = UnixTransport::from_url(url, TIMEOUT).transpose()?;
        let (scheme, rest) = match &unix {
            Some(_) => ("unix", "localhost/"),
            None => match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
                (Some(rest), _) => ("https", rest),
                (None, Some(rest)) => ("http", rest),
                (None, None) => {
                    return Err(KmsError::Validation(format!(
                        "endpoint URL {url:?} is not supported: kmsfs speaks https://, http:// (or unix:/socket) to KMS endpoints"
                    )));
                }
            },
        };
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host.is_empty() {
            return Err(KmsError::Validation(format!(
                "endpoint URL {url:?} has no host"
            )));
        }
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT));
        if scheme == "https" {
            config = config.tls_config(tls_config()?);
        }
        let agent: ureq::Agent = config.build().into();
        Ok(KmsClient {
            url: match unix {
                Some(_) => url.to_string(),
                None => format!("{scheme}://{host}{path}"),
            },
            host: host.to_string(),
            path: path.to_string(),
            region: region.to_string(),
            credentials,
            agent,
            unix,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one operation as JSON; the response JSON or the service's
    /// error. For requests the CLI passes through untyped.
    pub fn call(&self, operation: &str, request: &Value) -> Result<Value> {
        let body = serde_json::to_vec(request)
            .map_err(|e| KmsError::Internal(format!("cannot encode the request: {e}")))?;
        let answer = self.post(operation, &body)?;
        if answer.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(&answer).map_err(|e| {
            KmsError::Internal(format!(
                "the key service at {} answered {operation} with no JSON: {e}",
                self.url
            ))
        })
    }

    /// Sends one typed request; its typed response or the service's error.
    pub fn send<R: KmsRequest>(&self, request: &R) -> Result<R::Response> {
        let operation = R::OPERATION.name();
        let body = Zeroizing::new(serde_json::to_vec(request).map_err(|e| {
            KmsError::Internal(format!("cannot encode the {operation} request: {e}"))
        })?);
        let answer = Zeroizing::new(self.post(operation, &body)?);
        let unexpected = |e: &dyn std::fmt::Display| {
            KmsError::Internal(format!(
                "the key service at {} answered {operation} unexpectedly: {e}",
                self.url
            ))
        };
        let value: Value = if answer.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&answer).map_err(|e| unexpected(&e))?
        };
        wire::decode(&value).map_err(|e| unexpected(&e))
    }

    /// One POST (signed over HTTP, plain over the Unix socket); the body of
    /// a 2xx answer, or the error an AWS error answer names. A
    /// ThrottlingException is retried, as the AWS SDKs do (a throttled
    /// request was refused before it did anything, so any operation may be
    /// sent again): up to [`THROTTLE_ATTEMPTS`] attempts, with exponential
    /// backoff and full jitter so throttled clients do not return in step.
    fn post(&self, operation: &str, body: &[u8]) -> Result<Vec<u8>> {
        let mut attempt = 0;
        loop {
            let (status, bytes) = self.post_once(operation, body)?;
            attempt += 1;
            if attempt < THROTTLE_ATTEMPTS && is_throttling(status, &bytes) {
                let cap = THROTTLE_BASE_DELAY.saturating_mul(1 << attempt);
                let ms = u64::try_from(cap.min(THROTTLE_MAX_DELAY).as_millis()).unwrap_or(1000);
                std::thread::sleep(Duration::from_millis(rand::random_range(0..=ms)));
                continue;
            }
            return answer(&self.url, status, bytes);
        }
    }

    /// One POST; the answer's status and body, whatever they are.
    fn post_once(&self, operation: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
        let base = vec![
            ("Content-Type".to_string(), CONTENT_TYPE.to_string()),
            (
                "X-Amz-Target".to_string(),
                format!("{TARGET_PREFIX}{operation}"),
            ),
            // A fresh id per request, as the AWS SDKs send: it tells two
            // identical calls apart in the server's logs.
            (
                "amz-sdk-invocation-id".to_string(),
                uuid::Uuid::new_v4().to_string(),
            ),
        ];
        if let Some(unix) = &self.unix {
            return unix.post(&base, body, MAX_ANSWER);
        }
        let creds = self.credentials.as_ref().ok_or_else(|| {
            KmsError::AccessDenied(
                "MissingAuthenticationTokenException: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (kmsfs iam create-access-key)"
                    .into(),
            )
        })?;
        let signed = sigv4::sign_post(
            &creds.access_key_id,
            &creds.secret_access_key,
            creds.session_token.as_deref(),
            &self.region,
            "kms",
            &self.host,
            &self.path,
            &base,
            body,
            chrono::Utc::now().timestamp(),
        );
        let mut req = self.agent.post(&self.url);
        for (n, v) in base.iter().chain(signed.iter()) {
            req = req.header(n.as_str(), v.as_str());
        }
        let mut resp = req.send(body).map_err(|e| {
            KmsError::Internal(format!("cannot reach the key service at {}: {e}", self.url))
        })?;
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER as u64)
            .read_to_vec()
            .map_err(|e| {
                KmsError::Internal(format!("cannot read the answer of {}: {e}", self.url))
            })?;
        Ok((status, bytes))
    }
}

/// Attempts of a throttled request, the first included (the AWS SDKs'
/// standard retry mode makes 3; a key service shared by a fleet may refuse
/// a burst for a little longer, and a mount's open should not fail for it).
const THROTTLE_ATTEMPTS: u32 = 5;
const THROTTLE_BASE_DELAY: Duration = Duration::from_millis(25);
const THROTTLE_MAX_DELAY: Duration = Duration::from_secs(1);

/// Whether an answer is the service's ThrottlingException.
fn is_throttling(status: u16, bytes: &[u8]) -> bool {
    status == 400
        && serde_json::from_slice::<ErrorAnswer>(bytes)
            .ok()
            .and_then(|e| e.exception)
            .is_some_and(|name| name.rsplit('#').next() == Some("ThrottlingException"))
}

/// Where the certificates trusted for https endpoints come from when
/// AWS_CA_BUNDLE names none: Debian's bundle of the system's CAs.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The CA bundle at `path`, refused if someone other than root or this
/// process's user could have written it: whoever can change the trusted
/// CAs can impersonate the key service to a root daemon and read the data
/// keys it unwraps. Checked on the file as opened, then read from it.
fn read_ca_bundle(path: &std::path::Path) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let unreadable = |e: std::io::Error| {
        KmsError::Validation(format!(
            "cannot read the CA bundle {} (set AWS_CA_BUNDLE to the PEM file of the endpoint's CA): {e}",
            path.display()
        ))
    };
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    let m = file.metadata().map_err(unreadable)?;
    let owner_ok = m.uid() == 0 || m.uid() == nix::unistd::geteuid().as_raw();
    if !owner_ok || m.mode() & 0o022 != 0 {
        return Err(KmsError::Validation(format!(
            "the CA bundle {} may be changed by others (owner uid {}, mode {:04o}): it must belong to root or to this user and be writable by its owner only",
            path.display(),
            m.uid(),
            m.mode() & 0o7777
        )));
    }
    let mut pem = Vec::new();
    file.read_to_end(&mut pem).map_err(unreadable)?;
    Ok(pem)
}

/// TLS for https endpoints: rustls (ring), trusting the PEM certificates of
/// AWS_CA_BUNDLE, as the AWS CLI and SDKs do, else the system's CAs.
fn tls_config() -> Result<ureq::tls::TlsConfig> {
    use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};
    // One provider for the whole process, whatever else is compiled in
    // (the aws-kms feature brings aws-lc-rs): ureq uses the process default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = std::env::var_os("AWS_CA_BUNDLE")
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| SYSTEM_CA_BUNDLE.into());
    let pem = read_ca_bundle(&path)?;
    let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(KmsError::Validation(format!(
            "the CA bundle {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::new_with_certs(&certs))
        .build())
}

/// The body of a 2xx answer, or the service's error an error answer carries.
fn answer(url: &str, status: u16, bytes: Vec<u8>) -> Result<Vec<u8>> {
    if (200..300).contains(&status) {
        return Ok(bytes);
    }
    let error: ErrorAnswer = if bytes.is_empty() {
        ErrorAnswer::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            KmsError::Internal(format!(
                "the key service at {url} answered HTTP {status} with no JSON: {e}"
            ))
        })?
    };
    Err(error_from_exception(
        error.exception.as_deref().unwrap_or(exception::INTERNAL),
        error.message.unwrap_or_default(),
    ))
}

/// An AWS error answer: `{"__type": "...", "message": "..."}` (some
/// services write `Message`).
#[derive(Debug, Default, Deserialize)]
struct ErrorAnswer {
    #[serde(rename = "__type")]
    exception: Option<String>,
    #[serde(alias = "Message")]
    message: Option<String>,
}

/// The key version a kmsfs blob names; other services' blobs are opaque
/// (version 1: their rotation is invisible to clients).
fn blob_version(blob: &[u8]) -> u32 {
    blob::parse_header(blob).map(|h| h.key_version).unwrap_or(1)
}

/// [`KeyService`] over a KMS endpoint. The `caller` argument is not sent:
/// the endpoint knows the caller by the access key that signs the request.
#[derive(Debug)]
pub struct RemoteKms {
    client: KmsClient,
}

impl RemoteKms {
    pub fn new(client: KmsClient) -> RemoteKms {
        RemoteKms { client }
    }

    pub fn client(&self) -> &KmsClient {
        &self.client
    }
}

impl KeyService for RemoteKms {
    fn generate_data_key(
        &self,
        _caller: &Caller,
        key_id: &str,
        ctx: &EncryptionContext,
    ) -> Result<DataKeyPair> {
        let out = self.client.send(&GenerateDataKeyRequest {
            key_id: key_id.to_string(),
            key_spec: Some("AES_256".into()),
            number_of_bytes: None,
            encryption_context: ctx.clone(),
            dry_run: false,
        })?;
        Ok(DataKeyPair {
            key_arn: out.key_id,
            key_version: blob_version(&out.ciphertext_blob.0),
            plaintext: out.plaintext.0,
            ciphertext_blob: out.ciphertext_blob.0,
        })
    }

    fn decrypt(&self, _caller: &Caller, blob: &[u8], ctx: &EncryptionContext) -> Result<Decrypted> {
        let out = self.client.send(&DecryptRequest {
            ciphertext_blob: Blob(blob.to_vec()),
            encryption_context: ctx.clone(),
            key_id: None,
            encryption_algorithm: None,
            dry_run: false,
        })?;
        Ok(Decrypted {
            key_arn: out.key_id,
            key_version: blob_version(blob),
            plaintext: out.plaintext.0,
        })
    }

    fn re_encrypt(
        &self,
        _caller: &Caller,
        blob: &[u8],
        ctx: &EncryptionContext,
        destination_key_id: &str,
    ) -> Result<Wrapped> {
        let out = self.client.send(&ReEncryptRequest {
            ciphertext_blob: Blob(blob.to_vec()),
            source_encryption_context: ctx.clone(),
            source_key_id: None,
            destination_key_id: destination_key_id.to_string(),
            destination_encryption_context: ctx.clone(),
            source_encryption_algorithm: None,
            destination_encryption_algorithm: None,
            dry_run: false,
        })?;
        Ok(Wrapped {
            key_arn: out.key_id,
            key_version: blob_version(&out.ciphertext_blob.0),
            ciphertext_blob: out.ciphertext_blob.0,
        })
    }

    /// DescribeKey, and for an enabled key its current version: the version
    /// a fresh wrapped data key names (one GenerateDataKeyWithoutPlaintext,
    /// which key users may call; DescribeKey does not report versions).
    fn describe_key(&self, _caller: &Caller, key_id: &str) -> Result<KeyDescription> {
        let meta = self
            .client
            .send(&DescribeKeyRequest::new(key_id))?
            .key_metadata;
        let state = [
            KeyState::Enabled,
            KeyState::Disabled,
            KeyState::PendingDeletion,
            KeyState::PendingImport,
        ]
        .into_iter()
        .find(|s| s.as_str() == meta.key_state)
        // AWS has more states (Creating, Unavailable, …): none can be used.
        .unwrap_or(KeyState::Disabled);
        // Only symmetric keys have versions (and wrap data keys to probe
        // them with); other services may leave KeySpec out.
        let symmetric = matches!(meta.key_spec.as_str(), "" | "SYMMETRIC_DEFAULT");
        let current_version = if state == KeyState::Enabled && symmetric {
            let probe = self.client.send(&GenerateDataKeyWithoutPlaintextRequest {
                key_id: meta.arn.clone(),
                key_spec: Some("AES_256".into()),
                number_of_bytes: None,
                encryption_context: EncryptionContext::new(),
                dry_run: false,
            })?;
            Some(blob_version(&probe.ciphertext_blob.0))
        } else {
            None
        };
        Ok(KeyDescription {
            key_arn: meta.arn,
            state,
            current_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_throttling;

    #[test]
    fn throttling_answers_are_recognised_and_nothing_else() {
        assert!(is_throttling(
            400,
            br#"{"__type": "ThrottlingException", "message": "Rate exceeded"}"#
        ));
        assert!(is_throttling(
            400,
            br#"{"__type": "com.amazonaws.kms#ThrottlingException"}"#
        ));
        assert!(!is_throttling(
            400,
            br#"{"__type": "AccessDeniedException"}"#
        ));
        assert!(!is_throttling(400, b"not json"));
        assert!(!is_throttling(200, br#"{"__type": "ThrottlingException"}"#));
    }
}
