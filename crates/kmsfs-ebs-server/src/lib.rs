//! The EC2 Query endpoint of the EBS simulation: what
//! `aws ec2 --endpoint-url http://127.0.0.1:PORT …` and boto3's `ec2`
//! client talk to, unchanged (hyper on a small tokio runtime).
//!
//! - `POST /` with a form-encoded body (`Action=CreateVolume&Size=1&…`), or
//!   `GET /?Action=…`, which the EC2 protocol also allows; the answer is
//!   EC2's XML ([`kmsfs_ebs::ec2`]), or EC2's error XML with the status of
//!   [`kmsfs_ebs::EbsError::http_status`].
//! - Every request must carry a valid AWS Signature Version 4 for service
//!   `ec2`, made with an active access key of the key store's IAM
//!   ([`kmsfs_kms::authn`], shared with `kmsfs kms serve`); the caller is
//!   the Unix user mapped to the key's IAM user, and the region is whatever
//!   the credential scope names (EC2 regions are the caller's choice).
//!   Like the KMS server, it keeps no replay cache: botocore signs no nonce,
//!   so identical legitimate requests repeat; captured requests are the
//!   transport's to prevent (TLS).
//! - Robustness as in the KMS server: bodies are capped, headers and bodies
//!   must arrive within a timeout, connections are capped in number and
//!   lifetime, and the backend (blocking pool and KMS I/O) runs on blocking
//!   threads so slow clients never stall it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;

use kmsfs_ebs::EbsError;
use kmsfs_ebs::ec2::{self, Ec2Request, Params, RequestError};
use kmsfs_kms::Caller;
use kmsfs_kms::authn::{self, AuthFailure, RegionCheck, SignedRequest};
use kmsfs_kms::local::LocalKms;

pub use kmsfs_ebs::ec2::Ec2Backend;

/// The Content-Type of every answer, as EC2 sends it.
pub const CONTENT_TYPE: &str = "text/xml;charset=UTF-8";

/// The service name a credential must be scoped to.
pub const SERVICE: &str = "ec2";

#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Largest request body accepted. EC2 requests are small forms; the
    /// largest real ones (many tags or filters) stay well under this.
    pub max_body: usize,
    /// Time a client has to send a request's headers, then its body.
    pub read_timeout: Duration,
    /// Longest a connection may stay open (keep-alive included).
    pub max_connection_age: Duration,
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_body: 256 * 1024,
            read_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(300),
            max_connections: 512,
        }
    }
}

/// An answer that is not a success: EC2's code, message and HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl Failure {
    fn new(status: u16, code: &str, message: impl Into<String>) -> Failure {
        Failure {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
}

impl From<EbsError> for Failure {
    fn from(e: EbsError) -> Failure {
        Failure::new(e.http_status(), &e.code(), e.to_string())
    }
}

impl From<RequestError> for Failure {
    fn from(e: RequestError) -> Failure {
        Failure::new(e.http_status(), &e.code(), e.to_string())
    }
}

/// A refused signature under the names EC2 gives it.
fn ec2_auth_failure(e: AuthFailure) -> Failure {
    match e {
        AuthFailure::Missing => Failure::new(
            401,
            "MissingAuthenticationToken",
            "The request must contain either a valid (registered) AWS access key ID or X.509 certificate.",
        ),
        AuthFailure::Incomplete(m) => Failure::new(400, "IncompleteSignature", m),
        AuthFailure::Expired(m) => Failure::new(400, "RequestExpired", m),
        AuthFailure::Invalid(m) | AuthFailure::Unmapped(m) => Failure::new(401, "AuthFailure", m),
        AuthFailure::UnknownKey => Failure::new(
            401,
            "AuthFailure",
            "AWS was not able to validate the provided access credentials",
        ),
        AuthFailure::Store(e) => Failure::new(500, "InternalError", e.to_string()),
    }
}

/// Whether `region` is a plausible region name. The region comes from the
/// caller's credential scope and reaches the backend (which may key files
/// by it), so it is held to EC2's alphabet.
fn valid_region(region: &str) -> bool {
    (1..=64).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Everything a request needs, shared by all connections.
pub struct Service {
    backend: Arc<dyn Ec2Backend>,
    kms: Arc<LocalKms>,
    now: Box<dyn Fn() -> i64 + Send + Sync>,
}

impl Service {
    pub fn new(backend: Arc<dyn Ec2Backend>, kms: Arc<LocalKms>) -> Service {
        Service::with_clock(backend, kms, Box::new(|| chrono::Utc::now().timestamp()))
    }

    /// With another notion of "now" for signature expiry (tests).
    pub fn with_clock(
        backend: Arc<dyn Ec2Backend>,
        kms: Arc<LocalKms>,
        now: Box<dyn Fn() -> i64 + Send + Sync>,
    ) -> Service {
        Service { backend, kms, now }
    }

    /// Checks the request's SigV4 signature; the caller it stands for and
    /// the region of its credential scope.
    pub fn authenticate(&self, req: &SignedRequest<'_>) -> Result<(Caller, String), Failure> {
        let verified = authn::verify(
            &self.kms,
            req,
            SERVICE,
            RegionCheck::FromScope,
            (self.now)(),
        )
        .map_err(ec2_auth_failure)?;
        if !valid_region(&verified.region) {
            return Err(Failure::new(
                401,
                "AuthFailure",
                format!(
                    "Credential should be scoped to a valid region, not '{}'",
                    verified.region
                ),
            ));
        }
        let caller = verified.caller().map_err(ec2_auth_failure)?;
        Ok((caller, verified.region))
    }

    /// One request, start to finish: the HTTP status and XML body to send,
    /// with `request_id` in it. Blocking (store and backend I/O): call it
    /// off the async runtime.
    pub fn handle(&self, req: &SignedRequest<'_>, request_id: &str) -> (u16, String) {
        match self.dispatch(req, request_id) {
            Ok(xml) => (200, xml),
            Err(e) => {
                if e.status >= 500 {
                    tracing::error!(code = %e.code, message = %e.message, "request failed");
                } else {
                    tracing::debug!(code = %e.code, message = %e.message, "request refused");
                }
                (e.status, ec2::error_xml(&e.code, &e.message, request_id))
            }
        }
    }

    fn dispatch(&self, req: &SignedRequest<'_>, request_id: &str) -> Result<String, Failure> {
        if !matches!(req.method, "POST" | "GET") {
            return Err(Failure::new(
                405,
                "UnsupportedOperation",
                "The EC2 Query protocol is POST / with a form body, or GET /?Action=…",
            ));
        }
        if req.path != "/" && !req.path.is_empty() {
            return Err(Failure::new(
                404,
                "InvalidAction",
                format!("There is no EC2 endpoint at {:?}: use /", req.path),
            ));
        }
        // Authentication comes first, so that nothing about the request is
        // told to an unauthenticated client.
        let (caller, region) = self.authenticate(req).inspect_err(|e| {
            tracing::warn!(code = %e.code, "authentication refused");
        })?;
        let mut params = Params::parse(req.query)?;
        if req.method == "POST" {
            let body = std::str::from_utf8(req.body).map_err(|_| {
                EbsError::InvalidParameterValue("The request body is not valid UTF-8".into())
            })?;
            params.extend(body)?;
        }
        let request = Ec2Request::parse(&params)?;
        let action = request.action();
        let (_, account) = self
            .kms
            .region_and_account()
            .map_err(|e| Failure::new(500, "InternalError", e.to_string()))?;
        tracing::debug!(action, uid = caller.uid, %region, "request");
        let response = ec2::execute(&*self.backend, &caller, &region, &account, request)?;
        Ok(response.to_xml(request_id))
    }
}

fn respond(status: u16, body: String, request_id: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let h = resp.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

fn failure_response(e: Failure, request_id: &str) -> Response<Full<Bytes>> {
    respond(
        e.status,
        ec2::error_xml(&e.code, &e.message, request_id),
        request_id,
    )
}

async fn serve_request(
    service: Arc<Service>,
    opts: Arc<ServeOptions>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let too_large = || {
        Failure::new(
            413,
            "RequestEntityTooLarge",
            format!("Request bodies are limited to {} bytes", opts.max_body),
        )
    };
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > opts.max_body as u64) {
        return Ok(failure_response(too_large(), &request_id));
    }
    let (parts, body) = req.into_parts();
    let collected = tokio::time::timeout(
        opts.read_timeout,
        Limited::new(body, opts.max_body).collect(),
    )
    .await;
    let body = match collected {
        Err(_) => {
            return Ok(failure_response(
                Failure::new(
                    408,
                    "RequestTimeout",
                    "The request body did not arrive in time",
                ),
                &request_id,
            ));
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Ok(failure_response(too_large(), &request_id));
        }
        Ok(Err(e)) => {
            return Ok(failure_response(
                Failure::new(
                    400,
                    "InvalidParameterValue",
                    format!("cannot read the request body: {e}"),
                ),
                &request_id,
            ));
        }
        Ok(Ok(b)) => b.to_bytes(),
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let id = request_id.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        service.handle(
            &SignedRequest {
                method: &method,
                path: &path,
                query: &query,
                headers: &headers,
                body: &body,
            },
            &id,
        )
    })
    .await;
    Ok(match outcome {
        Ok((status, body)) => respond(status, body, &request_id),
        Err(e) => failure_response(
            Failure::new(500, "InternalError", format!("request handler failed: {e}")),
            &request_id,
        ),
    })
}

fn serve_connection(
    stream: tokio::net::TcpStream,
    service: Arc<Service>,
    opts: Arc<ServeOptions>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    tokio::spawn(async move {
        let svc_opts = opts.clone();
        let svc = hyper::service::service_fn(move |req| {
            serve_request(service.clone(), svc_opts.clone(), req)
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(opts.read_timeout)
            .max_buf_size(64 * 1024)
            .serve_connection(TokioIo::new(stream), svc);
        let _ = tokio::time::timeout(opts.max_connection_age, conn).await;
        drop(permit);
    });
}

/// Binds `listen`, calls `ready` with the bound address (e.g. to print the
/// port of `127.0.0.1:0`), then serves `backend` until the process ends.
/// `kms` is the key store whose IAM access keys sign the requests.
///
/// The process is made non-dumpable first unless `KMSFS_ALLOW_CORE_DUMPS=1`:
/// attached volumes' data keys may be in its memory.
pub fn serve(
    listen: SocketAddr,
    backend: Arc<dyn Ec2Backend>,
    kms: Arc<LocalKms>,
    opts: ServeOptions,
    ready: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    if std::env::var_os("KMSFS_ALLOW_CORE_DUMPS").is_none_or(|v| v != "1")
        && let Err(e) = kmsfs_sys::forbid_core_dumps()
    {
        // Serving matters more than this hardening: say so and go on.
        tracing::warn!(error = %e, "cannot disable core dumps");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let service = Arc::new(Service::new(backend, kms));
    let opts = Arc::new(opts);
    runtime.block_on(async move {
        let limit = Arc::new(Semaphore::new(opts.max_connections));
        let listener = tokio::net::TcpListener::bind(listen).await?;
        ready(listener.local_addr()?);
        loop {
            let permit = limit
                .clone()
                .acquire_owned()
                .await
                .map_err(std::io::Error::other)?;
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    serve_connection(stream, service.clone(), opts.clone(), permit);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_held_to_ec2s_alphabet() {
        assert!(valid_region("eu-west-3"));
        assert!(valid_region("local"));
        assert!(!valid_region(""));
        assert!(!valid_region(".."));
        assert!(!valid_region("EU-WEST-3"));
        assert!(!valid_region(&"a".repeat(65)));
    }

    #[test]
    fn auth_failures_have_ec2s_names() {
        let f = ec2_auth_failure(AuthFailure::Missing);
        assert_eq!(
            (f.status, f.code.as_str()),
            (401, "MissingAuthenticationToken")
        );
        let f = ec2_auth_failure(AuthFailure::Invalid("x".into()));
        assert_eq!((f.status, f.code.as_str()), (401, "AuthFailure"));
        let f = ec2_auth_failure(AuthFailure::UnknownKey);
        assert_eq!(f.code, "AuthFailure");
        let f = ec2_auth_failure(AuthFailure::Expired("x".into()));
        assert_eq!((f.status, f.code.as_str()), (400, "RequestExpired"));
        let f = ec2_auth_failure(AuthFailure::Incomplete("x".into()));
        assert_eq!(f.code, "IncompleteSignature");
    }
}
