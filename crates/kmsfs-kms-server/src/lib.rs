//! `kmsfs kms serve`: the key store behind the AWS KMS JSON protocol over
//! HTTP/1.1 (hyper on a small tokio runtime).
//!
//! - `POST /` with `X-Amz-Target: TrentService.<Operation>` and a JSON body;
//!   the answer is [`api::handle`]'s JSON, or `{"__type", "message"}` with
//!   HTTP 400 (500 for KMSInternalException), as AWS KMS answers.
//! - Over TCP every request must carry a valid AWS Signature Version 4 made
//!   with an access key of the store's IAM (see iam.rs); the caller is the
//!   Unix user mapped to the key's IAM user. Over the Unix socket the caller
//!   is the peer's uid (SO_PEERCRED) and no signature is needed.
//! - Robustness: bodies are capped, headers and bodies must arrive within a
//!   timeout, connections are capped in number, idle time and lifetime, and
//!   the store work runs on blocking threads so slow clients never stall it.
//!   Connections are accepted first and then admitted (admission.rs): idle
//!   peers that never signed a request make way for new ones, so a flood of
//!   silent sockets cannot lock signed clients out.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};

pub mod admission;
pub mod rate;
mod tls;

pub use tls::TlsFiles;

use admission::{Admission, Limits, PeerKey, Ticket};

use kmsfs_kms::api;
use kmsfs_kms::authn;
use kmsfs_kms::local::LocalKms;
use kmsfs_kms::policy::Caller;
use kmsfs_kms::protocol::Operation;
use kmsfs_kms::protocol::exception;
use kmsfs_kms::sigv4;

pub use kmsfs_kms::protocol::{CONTENT_TYPE, TARGET_PREFIX};

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: Option<SocketAddr>,
    pub socket: Option<PathBuf>,
    /// Largest request body accepted (AWS's own limits keep KMS bodies small).
    pub max_body: usize,
    /// Time a client has to send a request's headers, then its body.
    pub read_timeout: Duration,
    /// Longest a connection may stay open (keep-alive included).
    pub max_connection_age: Duration,
    /// Connections kept at once; a newcomer beyond it sheds an idle one.
    pub max_connections: usize,
    /// Connections one peer (IP address, or uid on the socket) may hold
    /// before any of them carried an authenticated request.
    pub max_connections_per_peer: usize,
    /// How long a keep-alive connection may sit between requests once it
    /// has carried an authenticated one (before that: `read_timeout`).
    pub idle_timeout: Duration,
    /// TLS on the TCP listener (https); plain HTTP without.
    pub tls: Option<TlsFiles>,
    /// Requests per second each principal (IAM user, or uid on the socket)
    /// may make, in bursts of as many; beyond: ThrottlingException. 0: no
    /// limit.
    pub requests_per_second: u32,
}

/// AWS KMS's default quota for cryptographic operations on symmetric keys in
/// its smaller regions, per account: what AWS users already design for.
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 5_500;

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: None,
            socket: None,
            max_body: 256 * 1024,
            read_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(300),
            max_connections: 512,
            max_connections_per_peer: 128,
            idle_timeout: Duration::from_secs(60),
            tls: None,
            requests_per_second: DEFAULT_REQUESTS_PER_SECOND,
        }
    }
}

/// An AWS-shaped error answer.
#[derive(Debug)]
pub struct HttpError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl HttpError {
    fn new(status: u16, code: &str, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
    fn bad(code: &str, message: impl Into<String>) -> HttpError {
        HttpError::new(400, code, message)
    }
}

impl From<kmsfs_kms::KmsError> for HttpError {
    fn from(e: kmsfs_kms::KmsError) -> HttpError {
        let code = exception::exception_name(&e);
        HttpError::new(exception::http_status(code), code, e.message())
    }
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub enum Peer {
    /// A TCP client: must sign its requests.
    Tcp(SocketAddr),
    /// A Unix socket client, with its kernel-vouched identity.
    Unix(Caller),
}

/// Everything a request needs, shared by all connections.
pub struct Service {
    kms: Arc<LocalKms>,
    now: Box<dyn Fn() -> i64 + Send + Sync>,
    /// Per-principal request rates; None: unlimited.
    rate: Option<rate::RateLimiter>,
}

/// One received request, transport-independent.
pub struct RawRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl RawRequest<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Service {
    pub fn new(kms: Arc<LocalKms>) -> Service {
        Service::with_clock(kms, Box::new(|| chrono::Utc::now().timestamp()))
    }

    /// With another notion of "now" for signature expiry (tests).
    pub fn with_clock(kms: Arc<LocalKms>, now: Box<dyn Fn() -> i64 + Send + Sync>) -> Service {
        Service {
            kms,
            now,
            rate: None,
        }
    }

    /// Limits each principal to `per_second` requests a second (0: no limit).
    #[must_use]
    pub fn with_rate_limit(mut self, per_second: u32) -> Service {
        self.rate = rate::RateLimiter::new(per_second);
        self
    }

    pub fn kms(&self) -> &LocalKms {
        &self.kms
    }

    /// Checks the request's SigV4 signature (kmsfs_kms::authn, scoped to
    /// service `kms`, any region); the caller it stands for, addressing the
    /// region of its credential scope, as AWS routes a request by region.
    ///
    /// Identical requests inside the signature window are all served, as at
    /// AWS: the AWS CLI signs no nonce, so a script disabling, enabling and
    /// disabling a key within a second sends the same signature twice.
    /// Protection from captured requests is the transport's (TLS).
    pub fn authenticate(&self, req: &RawRequest) -> Result<Caller, HttpError> {
        let signed = authn::SignedRequest {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: req.headers,
            body: req.body,
        };
        let verified = authn::verify(
            &self.kms,
            &signed,
            "kms",
            authn::RegionCheck::FromScope,
            (self.now)(),
        )
        .map_err(kms_auth_error)?;
        let region = verified.region.clone();
        Ok(verified
            .caller()
            .map_err(kms_auth_error)?
            .in_region(Some(region)))
    }

    /// One request, start to finish: the HTTP status and JSON body to send.
    /// Blocking (store I/O): call it off the async runtime.
    pub fn handle(&self, peer: &Peer, req: &RawRequest) -> (u16, Vec<u8>) {
        let (status, body, _) = self.handle_noting_caller(peer, req);
        (status, body)
    }

    /// [`Service::handle`], and whether the request's caller was
    /// established (signature valid, or a Unix socket peer): connection
    /// admission favours connections that carried such a request.
    pub fn handle_noting_caller(&self, peer: &Peer, req: &RawRequest) -> (u16, Vec<u8>, bool) {
        let mut authenticated = false;
        let (status, body) = match self.dispatch(peer, req, &mut authenticated) {
            Ok(v) => (200, serde_json::to_vec(&v).unwrap_or_default()),
            Err(e) => {
                if e.status >= 500 {
                    tracing::error!(code = %e.code, message = %e.message, "request failed");
                } else {
                    tracing::debug!(code = %e.code, message = %e.message, "request refused");
                }
                (
                    e.status,
                    serde_json::to_vec(&json!({"__type": e.code, "message": e.message}))
                        .unwrap_or_default(),
                )
            }
        };
        (status, body, authenticated)
    }

    fn dispatch(
        &self,
        peer: &Peer,
        req: &RawRequest,
        authenticated: &mut bool,
    ) -> Result<Value, HttpError> {
        if req.method != "POST" || (req.path != "/" && !req.path.is_empty()) {
            return Err(HttpError::new(
                404,
                "UnknownOperationException",
                "kmsfs serves the AWS KMS JSON protocol: POST / with X-Amz-Target",
            ));
        }
        let target = req.header("x-amz-target").unwrap_or("");
        let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or("");
        let caller = match peer {
            // The kernel vouches for who; a signature's scope, if the client
            // sent one, only says where (it is not checked: nothing secret
            // rides on it over the socket).
            Peer::Unix(c) => c.clone().in_region(unsigned_scope_region(req)),
            Peer::Tcp(addr) => self.authenticate(req).inspect_err(|e| {
                tracing::warn!(peer = %addr, code = %e.code, "authentication refused");
            })?,
        };
        *authenticated = true;
        if let Some(rate) = &self.rate
            && !rate.admit(&rate::Principal::of(&caller), std::time::Instant::now())
        {
            return Err(HttpError::bad(
                "ThrottlingException",
                "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.",
            ));
        }
        if Operation::from_name(operation).is_none() {
            return Err(HttpError::bad(
                "UnknownOperationException",
                format!("Unknown operation {target:?}"),
            ));
        }
        let request: Value = if req.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(req.body).map_err(|e| {
                HttpError::bad(
                    "SerializationException",
                    format!("The request body is not valid JSON: {e}"),
                )
            })?
        };
        if !matches!(request, Value::Object(_) | Value::Null) {
            return Err(HttpError::bad(
                "SerializationException",
                "The request body must be a JSON object",
            ));
        }
        Ok(api::handle(&self.kms, &caller, operation, &request)?)
    }
}

/// The region of an `Authorization` header's credential scope, if any.
fn unsigned_scope_region(req: &RawRequest) -> Option<String> {
    sigv4::Authorization::parse(req.header("authorization")?)
        .ok()
        .map(|a| a.region)
        .filter(|r| !r.is_empty())
}

/// A refused signature under the names AWS KMS gives it.
fn kms_auth_error(e: authn::AuthFailure) -> HttpError {
    use authn::AuthFailure as F;
    match e {
        F::Missing => HttpError::bad(
            "MissingAuthenticationTokenException",
            "Request is missing Authentication Token",
        ),
        F::Incomplete(m) => HttpError::bad("IncompleteSignatureException", m),
        F::Expired(m) | F::Invalid(m) => HttpError::bad("InvalidSignatureException", m),
        F::UnknownKey => HttpError::bad(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
        F::Unmapped(m) => HttpError::bad("UnrecognizedClientException", m),
        F::Store(e) => HttpError::from(e),
    }
}

fn respond(status: u16, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let h = resp.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

fn error_response(e: HttpError) -> Response<Full<Bytes>> {
    respond(
        e.status,
        serde_json::to_vec(&json!({"__type": e.code, "message": e.message})).unwrap_or_default(),
    )
}

async fn serve_request(
    service: Arc<Service>,
    opts: Arc<ServeOptions>,
    peer: Peer,
    ticket: Arc<Ticket>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    ticket.begin();
    let (response, authenticated) = answer_request(service, opts, peer, req).await;
    ticket.end(authenticated);
    Ok(response)
}

/// The response to one request, and whether its caller was established.
async fn answer_request(
    service: Arc<Service>,
    opts: Arc<ServeOptions>,
    peer: Peer,
    req: Request<Incoming>,
) -> (Response<Full<Bytes>>, bool) {
    let too_large = || {
        HttpError::new(
            413,
            "RequestEntityTooLargeException",
            format!("Request bodies are limited to {} bytes", opts.max_body),
        )
    };
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > opts.max_body as u64) {
        return (error_response(too_large()), false);
    }
    let (parts, body) = req.into_parts();
    let collected = tokio::time::timeout(
        opts.read_timeout,
        Limited::new(body, opts.max_body).collect(),
    )
    .await;
    let body = match collected {
        Err(_) => {
            let e = HttpError::new(
                408,
                "RequestTimeoutException",
                "The request body did not arrive in time",
            );
            return (error_response(e), false);
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return (error_response(too_large()), false);
        }
        Ok(Err(e)) => {
            let e = HttpError::bad(
                "SerializationException",
                format!("cannot read the request body: {e}"),
            );
            return (error_response(e), false);
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
    let outcome = tokio::task::spawn_blocking(move || {
        service.handle_noting_caller(
            &peer,
            &RawRequest {
                method: &method,
                path: &path,
                query: &query,
                headers: &headers,
                body: &body,
            },
        )
    })
    .await;
    match outcome {
        Ok((status, body, authenticated)) => (respond(status, body), authenticated),
        Err(e) => {
            let e = HttpError::new(
                500,
                "KMSInternalException",
                format!("request handler failed: {e}"),
            );
            (error_response(e), false)
        }
    }
}

fn serve_connection<S>(
    stream: S,
    peer: Peer,
    service: Arc<Service>,
    opts: Arc<ServeOptions>,
    ticket: Ticket,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let ticket = Arc::new(ticket);
        let svc_opts = opts.clone();
        let svc_ticket = ticket.clone();
        let svc = hyper::service::service_fn(move |req| {
            serve_request(
                service.clone(),
                svc_opts.clone(),
                peer.clone(),
                svc_ticket.clone(),
                req,
            )
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(opts.read_timeout)
            .max_buf_size(64 * 1024)
            .serve_connection(TokioIo::new(stream), svc);
        let lifetime = async {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = ticket.closing() => {
                    // Shed or idle too long: an idle connection closes
                    // now, a request in flight is answered first.
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        };
        let _ = tokio::time::timeout(opts.max_connection_age, lifetime).await;
    });
}

/// The Caller of a Unix socket peer: its uid and gid from SO_PEERCRED, its
/// supplementary groups from the group database.
fn unix_peer_caller(stream: &tokio::net::UnixStream) -> std::io::Result<Caller> {
    let cred = stream.peer_cred()?;
    let uid = cred.uid();
    let gid = cred.gid();
    let groups = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .and_then(|u| {
            let name = std::ffi::CString::new(u.name).ok()?;
            nix::unistd::getgrouplist(&name, nix::unistd::Gid::from_raw(gid)).ok()
        })
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_default();
    Ok(Caller {
        uid,
        gid,
        groups,
        iam_user: None,
        region: None,
    })
}

/// Makes way for binding a Unix socket at `path`: removes a socket left by a
/// server that is gone, and nothing else. A path that is not a socket (a
/// mistyped `--socket` naming a file) is refused untouched, and so is one
/// where a server still answers: removing it would orphan that server.
fn clear_stale_socket(path: &std::path::Path) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::new(
                e.kind(),
                format!("cannot inspect {}: {e}", path.display()),
            ));
        }
    };
    if !meta.file_type().is_socket() {
        return Err(Error::new(
            ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket: refusing to replace it (remove it, or choose another --socket path)",
                path.display()
            ),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(Error::new(
            ErrorKind::AddrInUse,
            format!("another server is listening on {}", path.display()),
        )),
        // Nobody accepts on it: the socket of a server that is gone.
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => match std::fs::remove_file(path) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(Error::new(
                e.kind(),
                format!("cannot remove the stale socket {}: {e}", path.display()),
            )),
            _ => Ok(()),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::new(
            e.kind(),
            format!(
                "cannot tell whether a server is listening on {}: {e}",
                path.display()
            ),
        )),
    }
}

/// Binds the listeners, calls `ready` with what was bound (e.g. to print the
/// port of `127.0.0.1:0`), then serves until the process ends.
///
/// The process is made non-dumpable first (the `kmsfs` binary does it at
/// startup; this covers other programs that embed the server), unless
/// `KMSFS_ALLOW_CORE_DUMPS=1`: the store's keys are in its memory.
pub fn serve(
    kms: Arc<LocalKms>,
    opts: ServeOptions,
    ready: impl FnOnce(Option<SocketAddr>, Option<&std::path::Path>),
) -> std::io::Result<()> {
    if std::env::var_os("KMSFS_ALLOW_CORE_DUMPS").is_none_or(|v| v != "1")
        && let Err(e) = kmsfs_sys::forbid_core_dumps()
    {
        // Serving matters more than this hardening: say so and go on.
        tracing::warn!(error = %e, "cannot disable core dumps");
    }
    if opts.listen.is_none() && opts.socket.is_none() {
        return Err(std::io::Error::other(
            "nothing to serve on: give --listen and/or --socket",
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let service = Arc::new(Service::new(kms).with_rate_limit(opts.requests_per_second));
    // Read before anything is bound: a bad certificate or key is a clear
    // error at startup, not a failure of every handshake.
    let tls = opts.tls.as_ref().map(tls::acceptor).transpose()?;
    let opts = Arc::new(opts);
    runtime.block_on(async move {
        let admission = Admission::new(Limits {
            total: opts.max_connections,
            per_peer: opts.max_connections_per_peer,
            idle_unauthenticated: opts.read_timeout,
            idle_authenticated: opts.idle_timeout,
        });
        {
            let admission = admission.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(500));
                loop {
                    tick.tick().await;
                    admission.close_idle(std::time::Instant::now());
                }
            });
        }
        let tcp = match opts.listen {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
            None => None,
        };
        let unix = match &opts.socket {
            Some(path) => {
                clear_stale_socket(path)?;
                let l = tokio::net::UnixListener::bind(path)?;
                // Anybody may connect; the key policy decides what they may do.
                std::fs::set_permissions(
                    path,
                    std::os::unix::fs::PermissionsExt::from_mode(0o666),
                )?;
                Some(l)
            }
            None => None,
        };
        ready(
            tcp.as_ref().and_then(|l| l.local_addr().ok()),
            opts.socket.as_deref(),
        );
        let tcp_loop = {
            let (service, opts, admission) = (service.clone(), opts.clone(), admission.clone());
            async move {
                let Some(l) = tcp else {
                    return std::future::pending::<std::io::Result<()>>().await;
                };
                loop {
                    match l.accept().await {
                        Ok((stream, addr)) => {
                            let Some(ticket) = admission.admit(PeerKey::Ip(addr.ip())) else {
                                tracing::debug!(peer = %addr, "every connection is busy: closed");
                                continue;
                            };
                            let _ = stream.set_nodelay(true);
                            let Some(tls) = tls.clone() else {
                                serve_connection(
                                    stream,
                                    Peer::Tcp(addr),
                                    service.clone(),
                                    opts.clone(),
                                    ticket,
                                );
                                continue;
                            };
                            // The handshake runs in its own task, bounded
                            // like a request's headers, so that a slow peer
                            // holds up nobody else; a connection shed
                            // meanwhile ends it.
                            let (service, opts) = (service.clone(), opts.clone());
                            tokio::spawn(async move {
                                let handshake =
                                    tokio::time::timeout(opts.read_timeout, tls.accept(stream));
                                let handshake = tokio::select! {
                                    h = handshake => h,
                                    _ = ticket.closing() => return,
                                };
                                match handshake {
                                    Ok(Ok(stream)) => serve_connection(
                                        stream,
                                        Peer::Tcp(addr),
                                        service,
                                        opts,
                                        ticket,
                                    ),
                                    Ok(Err(e)) => {
                                        tracing::debug!(peer = %addr, error = %e, "TLS handshake failed")
                                    }
                                    Err(_) => tracing::debug!(peer = %addr, "TLS handshake timed out"),
                                }
                            });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        };
        let unix_loop = {
            let (service, opts, admission) = (service.clone(), opts.clone(), admission.clone());
            async move {
                let Some(l) = unix else {
                    return std::future::pending::<std::io::Result<()>>().await;
                };
                loop {
                    match l.accept().await {
                        Ok((stream, _)) => match unix_peer_caller(&stream) {
                            Ok(caller) => {
                                let Some(ticket) = admission.admit(PeerKey::Uid(caller.uid))
                                else {
                                    tracing::debug!(uid = caller.uid, "every connection is busy: closed");
                                    continue;
                                };
                                serve_connection(
                                    stream,
                                    Peer::Unix(caller),
                                    service.clone(),
                                    opts.clone(),
                                    ticket,
                                )
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot read the peer's credentials")
                            }
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        };
        tokio::try_join!(tcp_loop, unix_loop).map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local_kms(dir: &std::path::Path) -> Arc<LocalKms> {
        Arc::new(
            LocalKms::open(
                &dir.join("keystore"),
                &kmsfs_kms::store::RootSecret::KeyFile,
                Arc::new(kmsfs_kms::clock::SystemClock),
            )
            .unwrap(),
        )
    }

    /// Serves on `socket` in a thread; the error if it fails to start
    /// within a few seconds, `None` if it started (the thread is left
    /// serving: it ends with the test process).
    fn serve_error(dir: &std::path::Path, socket: &std::path::Path) -> Option<std::io::Error> {
        let (tx, rx) = std::sync::mpsc::channel();
        let kms = local_kms(dir);
        let opts = ServeOptions {
            socket: Some(socket.to_path_buf()),
            ..ServeOptions::default()
        };
        let ready_tx = tx.clone();
        std::thread::spawn(move || {
            let r = serve(kms, opts, move |_, _| {
                let _ = ready_tx.send(None);
            });
            let _ = tx.send(r.err());
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("serve neither started nor failed")
    }

    #[test]
    fn serve_refuses_a_socket_path_that_is_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, b"precious").unwrap();
        let err = serve_error(dir.path(), &path).expect("served over a regular file");
        assert!(err.to_string().contains("is not a socket"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    }

    #[test]
    fn serve_replaces_a_stale_socket_and_refuses_a_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kms.sock");
        // Bound, then closed: the file stays, nobody accepts.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(serve_error(dir.path(), &path).is_none(), "stale socket");

        let other = tempfile::tempdir().unwrap();
        let err = serve_error(other.path(), &path).expect("a second server started");
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        assert_eq!(
            err.to_string(),
            format!("another server is listening on {}", path.display())
        );
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
    }
}
