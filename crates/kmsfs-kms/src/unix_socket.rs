//! HTTP/1.1 over a Unix socket: the transport of [`KmsClient`] endpoints
//! written `unix:/path/to/kms.sock` (`kmsfs kms serve --socket`).
//!
//! Why a hand-written client: ureq speaks TCP only, and what the socket
//! needs is tiny. The server knows a socket peer by SO_PEERCRED, so nothing
//! is signed; every request is one `POST /` with `Connection: close`, so an
//! answer ends where its Content-Length (or its last chunk) says, or at EOF.
//! A second HTTP stack for that would be more code than this module.
//!
//! [`KmsClient`]: crate::remote::KmsClient

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use super::error::KmsError;

/// The scheme prefix of a Unix socket endpoint: `unix:/run/kmsfs/kms.sock`.
pub(crate) const SCHEME: &str = "unix:";

/// Largest response head (status line and headers) accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Why an answer could not be read. Kept apart from [`KmsError`] so the
/// parser can be tested on its own; callers see it as KMSInternalException.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum ResponseError {
    #[error("the answer ended before its header did")]
    TruncatedHead,
    #[error("the answer's header is larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("the answer does not start with an HTTP/1.x status line: {0:?}")]
    BadStatusLine(String),
    #[error("the answer has a malformed header line: {0:?}")]
    BadHeader(String),
    #[error("the answer's body is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("the answer's body ended after {got} of {expected} bytes")]
    TruncatedBody { expected: usize, got: usize },
    #[error("the answer's chunked body is malformed")]
    BadChunk,
    #[error("the answer uses transfer coding {0:?}, which this client does not decode")]
    UnsupportedCoding(String),
}

/// One Unix socket endpoint. Every request opens its own connection, which
/// is what makes the server take the caller's identity afresh each time.
#[derive(Debug, Clone)]
pub(crate) struct UnixTransport {
    path: PathBuf,
    timeout: Duration,
}

impl UnixTransport {
    pub(crate) fn new(path: impl Into<PathBuf>, timeout: Duration) -> UnixTransport {
        UnixTransport {
            path: path.into(),
            timeout,
        }
    }

    /// The transport of a `unix:/path` endpoint; None for any other URL.
    pub(crate) fn from_url(
        url: &str,
        timeout: Duration,
    ) -> Option<Result<UnixTransport, KmsError>> {
        let path = url.strip_prefix(SCHEME)?;
        if path.is_empty() {
            return Some(Err(KmsError::Validation(format!(
                "endpoint URL {url:?} names no socket: write unix:/path/to/kms.sock"
            ))));
        }
        Some(Ok(UnixTransport::new(path, timeout)))
    }

    #[cfg(test)]
    fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Sends `POST /` with `headers` and `body`; the answer's status and
    /// body (at most `limit` bytes).
    pub(crate) fn post(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        limit: usize,
    ) -> Result<(u16, Vec<u8>), KmsError> {
        let request = encode_request(headers, body)?;
        let unreachable = |e: std::io::Error| {
            KmsError::Internal(format!(
                "cannot reach the key service at {SCHEME}{}: {e}",
                self.path.display()
            ))
        };
        let mut stream = UnixStream::connect(&self.path).map_err(unreachable)?;
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(unreachable)?;
        stream
            .set_write_timeout(Some(self.timeout))
            .map_err(unreachable)?;
        stream.write_all(&request).map_err(unreachable)?;
        let mut raw = Vec::new();
        // The head, the body and one byte more: enough to tell a body that
        // is too large from one that fits exactly.
        let cap = MAX_HEAD + limit + 1;
        (&mut stream)
            .take(cap as u64)
            .read_to_end(&mut raw)
            .map_err(|e| {
                KmsError::Internal(format!(
                    "cannot read the answer of {SCHEME}{}: {e}",
                    self.path.display()
                ))
            })?;
        parse_response(&raw, limit).map_err(|e| {
            KmsError::Internal(format!(
                "the key service at {SCHEME}{} answered badly: {e}",
                self.path.display()
            ))
        })
    }
}

/// The bytes of one request. Header names and values come from the client
/// itself, but a CR or LF in one would split the request: refuse it.
fn encode_request(headers: &[(String, String)], body: &[u8]) -> Result<Vec<u8>, KmsError> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(b"POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        if [name, value]
            .iter()
            .any(|s| s.bytes().any(|b| b == b'\r' || b == b'\n'))
            || name.is_empty()
            || name.contains(':')
        {
            return Err(KmsError::Validation(format!(
                "header {name:?} cannot be sent: names and values may hold no CR, LF (names no colon)"
            )));
        }
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Splits a complete answer (read to EOF) into its status and body.
pub(crate) fn parse_response(raw: &[u8], limit: usize) -> Result<(u16, Vec<u8>), ResponseError> {
    let Some(head_end) = find(raw, b"\r\n\r\n") else {
        return Err(if raw.len() >= MAX_HEAD {
            ResponseError::HeadTooLarge
        } else {
            ResponseError::TruncatedHead
        });
    };
    if head_end > MAX_HEAD {
        return Err(ResponseError::HeadTooLarge);
    }
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let rest = &raw[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|code| (100..600).contains(code))
        .ok_or_else(|| ResponseError::BadStatusLine(status_line.to_string()))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| ResponseError::BadHeader(line.to_string()))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| ResponseError::BadHeader(line.to_string()))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else {
                return Err(ResponseError::UnsupportedCoding(value.to_string()));
            }
        }
    }
    let body = if chunked {
        decode_chunked(rest, limit)?
    } else if let Some(expected) = length {
        if expected > limit {
            return Err(ResponseError::BodyTooLarge(limit));
        }
        if rest.len() < expected {
            return Err(ResponseError::TruncatedBody {
                expected,
                got: rest.len(),
            });
        }
        rest[..expected].to_vec()
    } else {
        // No length: the body runs to EOF (the connection is closed).
        if rest.len() > limit {
            return Err(ResponseError::BodyTooLarge(limit));
        }
        rest.to_vec()
    };
    Ok((status, body))
}

/// Decodes a chunked body (RFC 9112 §7.1); trailers are ignored.
fn decode_chunked(mut rest: &[u8], limit: usize) -> Result<Vec<u8>, ResponseError> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n").ok_or(ResponseError::BadChunk)?;
        let size_field =
            std::str::from_utf8(&rest[..line_end]).map_err(|_| ResponseError::BadChunk)?;
        let size_hex = size_field.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| ResponseError::BadChunk)?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if size > limit.saturating_sub(body.len()) {
            return Err(ResponseError::BodyTooLarge(limit));
        }
        if rest.len() < size + 2 || &rest[size..size + 2] != b"\r\n" {
            return Err(ResponseError::BadChunk);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_one_post_with_its_length() {
        let req = encode_request(
            &[("X-Amz-Target".into(), "TrentService.DescribeKey".into())],
            b"{}",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(req).unwrap(),
            "POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             X-Amz-Target: TrentService.DescribeKey\r\nContent-Length: 2\r\n\r\n{}"
        );
    }

    #[test]
    fn a_header_cannot_smuggle_a_line() {
        for (n, v) in [
            ("X-A", "b\r\nX-Evil: 1"),
            ("X-A\n", "b"),
            ("X:A", "b"),
            ("", "b"),
        ] {
            let e = encode_request(&[(n.into(), v.into())], b"").unwrap_err();
            assert_eq!(e.code(), "ValidationException", "{n:?}: {v:?}");
        }
    }

    #[test]
    fn answers_by_length_by_chunks_and_to_eof() {
        let by_length =
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: x\r\ncontent-length: 5\r\n\r\n{\"a\"}";
        assert_eq!(
            parse_response(by_length, 100).unwrap(),
            (400, b"{\"a\"}".to_vec())
        );
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\n{\"a\r\n2\r\n\"}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked, 100).unwrap(),
            (200, b"{\"a\"}".to_vec())
        );
        let to_eof = b"HTTP/1.0 200 OK\r\n\r\n{}";
        assert_eq!(parse_response(to_eof, 100).unwrap(), (200, b"{}".to_vec()));
        // Bytes past the declared length (there should be none) are not body.
        let extra = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}junk";
        assert_eq!(parse_response(extra, 100).unwrap(), (200, b"{}".to_vec()));
    }

    #[test]
    fn broken_answers_are_refused() {
        let cases: [(&[u8], ResponseError); 8] = [
            (
                b"HTTP/1.1 200 OK\r\nContent-Le",
                ResponseError::TruncatedHead,
            ),
            (
                b"SSH-2.0-OpenSSH\r\n\r\n",
                ResponseError::BadStatusLine("SSH-2.0-OpenSSH".into()),
            ),
            (
                b"HTTP/1.1 999 Odd\r\n\r\n",
                ResponseError::BadStatusLine("HTTP/1.1 999 Odd".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                ResponseError::BadHeader("no colon".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}",
                ResponseError::TruncatedBody {
                    expected: 9,
                    got: 2,
                },
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n01234567890",
                ResponseError::BodyTooLarge(10),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                ResponseError::BadChunk,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                ResponseError::UnsupportedCoding("gzip".into()),
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(
                parse_response(raw, 10).unwrap_err(),
                expected,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        // A chunk larger than the limit, and a chunk shorter than its size.
        let big =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n01234567890\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(big, 10).unwrap_err(),
            ResponseError::BodyTooLarge(10)
        );
        let short = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab\r\n";
        assert_eq!(
            parse_response(short, 10).unwrap_err(),
            ResponseError::BadChunk
        );
        let long_head = [b"HTTP/1.1 200 OK\r\nX: ".as_slice(), &[b'a'; MAX_HEAD]].concat();
        assert_eq!(
            parse_response(&long_head, 10).unwrap_err(),
            ResponseError::HeadTooLarge
        );
    }

    #[test]
    fn a_unix_url_names_its_socket() {
        let t = UnixTransport::from_url("unix:/run/kms.sock", Duration::from_secs(1))
            .unwrap()
            .unwrap();
        assert_eq!(t.path(), std::path::Path::new("/run/kms.sock"));
        assert!(UnixTransport::from_url("http://x", Duration::from_secs(1)).is_none());
        let e = UnixTransport::from_url("unix:", Duration::from_secs(1))
            .unwrap()
            .unwrap_err();
        assert_eq!(e.code(), "ValidationException");
    }

    #[test]
    fn a_missing_socket_is_an_unreachable_service() {
        let dir = tempfile::tempdir().unwrap();
        let t = UnixTransport::new(dir.path().join("absent.sock"), Duration::from_secs(1));
        let e = t.post(&[], b"{}", 100).unwrap_err();
        assert_eq!(e.code(), "KMSInternalException");
        assert!(e.message().contains("cannot reach"), "{e}");
    }

    /// One exchange with a stand-in server on a real socket: the request
    /// arrives whole, the answer comes back.
    #[test]
    fn one_exchange_over_a_real_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kms.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while find(&got, b"\r\n\r\n{\"q\":1}").is_none() {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "request ended early");
                got.extend_from_slice(&buf[..n]);
            }
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{\"a\":22}")
                .unwrap();
            got
        });
        let t = UnixTransport::new(&path, Duration::from_secs(5));
        let (status, body) = t
            .post(&[("X-Amz-Target".into(), "T.Op".into())], b"{\"q\":1}", 100)
            .unwrap();
        assert_eq!((status, body.as_slice()), (200, b"{\"a\":22}".as_slice()));
        let request = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(request.contains("\r\nX-Amz-Target: T.Op\r\n"), "{request}");
        assert!(request.contains("\r\nContent-Length: 7\r\n"), "{request}");
    }
}
