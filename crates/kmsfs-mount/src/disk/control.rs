//! The control socket of a device process, `<runtime>/ebs/<volume-id>.sock`
//! (0600, in a 0700 directory; peers must be root or our euid, by
//! SO_PEERCRED, as for the mount daemon's socket in `daemon::control`).
//!
//! One request line, one JSON reply line:
//! - `status`: `{"ok":true,"volume_id","block_device","by_id","pid","dio","sealed"}`;
//! - `freeze`: holds every new write, waits for those in flight, syncs the
//!   image, answers `{"ok":true,"frozen":true}`, and keeps writes held until
//!   the peer closes the connection: a snapshotter that dies cannot leave
//!   the volume frozen;
//! - `detach` / `detach force`: removes the device and ends the process
//!   (answered once the device is gone); without `force`, refused while the
//!   device is mounted or held.
//!
//! Each connection has its own thread: a freeze holds its thread, not the
//! socket.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender, sync_channel};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::DiskError;
use super::store::Store;
use crate::daemon::control::{peer_of, read_line, trusted_uid};

/// What a device process says about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    pub volume_id: String,
    pub block_device: String,
    pub by_id: String,
    /// The device process (the kernel's word, SO_PEERCRED, on the client).
    pub pid: i32,
    /// Whether the kernel runs the loop device with direct I/O.
    pub dio: bool,
    pub sealed: bool,
}

/// A request to end: from `detach` (with a channel for the outcome, and one
/// on which the control thread says its answer went out, so the process
/// does not exit under it) or from a signal.
pub(crate) struct Stop {
    pub(crate) force: bool,
    pub(crate) outcome: Option<(SyncSender<Outcome>, Receiver<()>)>,
}

/// How a detach went: done, or the reason it was refused.
pub(crate) type Outcome = Result<(), String>;

/// A peer that neither asks nor reads within this is dropped.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// The serving side; the socket is removed when dropped.
pub(crate) struct Endpoint {
    path: PathBuf,
    listener: UnixListener,
}

struct Context {
    status: Status,
    store: Arc<Store>,
    stop: Sender<Stop>,
}

impl Endpoint {
    pub(crate) fn publish(
        path: &Path,
        status: Status,
        store: Arc<Store>,
        stop: Sender<Stop>,
    ) -> Result<Endpoint, DiskError> {
        let failed = |e| DiskError::io(format!("cannot listen on {}", path.display()), e);
        match std::fs::symlink_metadata(path) {
            Ok(meta) => {
                if meta.file_type().is_socket() && UnixStream::connect(path).is_ok() {
                    return Err(DiskError::AlreadyAttached(status.volume_id));
                }
                // Left by a device process that died (the directory is ours).
                std::fs::remove_file(path).map_err(failed)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e)),
        }
        let listener = UnixListener::bind(path).map_err(failed)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
        let serving = listener.try_clone().map_err(failed)?;
        let context = Arc::new(Context {
            status,
            store,
            stop,
        });
        std::thread::Builder::new()
            .name("kmsfs-ebs-control".into())
            .spawn(move || {
                for stream in serving.incoming() {
                    match stream {
                        Ok(stream) => {
                            let context = context.clone();
                            let _ = std::thread::Builder::new()
                                .name("kmsfs-ebs-peer".into())
                                .spawn(move || answer(stream, &context));
                        }
                        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return,
                        Err(e) => tracing::warn!(error = %e, "control socket accept failed"),
                    }
                }
            })
            .map_err(failed)?;
        Ok(Endpoint {
            path: path.to_path_buf(),
            listener,
        })
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ =
            nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
    }
}

fn error(message: impl Into<String>) -> serde_json::Value {
    serde_json::json!({ "ok": false, "error": message.into() })
}

fn reply(mut stream: &UnixStream, value: &serde_json::Value) {
    let _ = writeln!(stream, "{value}");
}

fn answer(stream: UnixStream, context: &Context) {
    let _ = stream.set_read_timeout(Some(PEER_TIMEOUT));
    let _ = stream.set_write_timeout(Some(PEER_TIMEOUT));
    match peer_of(&stream) {
        Ok((uid, _)) if trusted_uid(uid) => {}
        Ok((uid, pid)) => {
            tracing::warn!(uid, pid, "control request from another user refused");
            return reply(&stream, &error("permission denied"));
        }
        Err(e) => return reply(&stream, &error(e.to_string())),
    }
    let request = match read_line(&stream) {
        Ok(line) => line,
        Err(e) => return reply(&stream, &error(e.to_string())),
    };
    match request.as_str() {
        "status" => {
            let mut value = serde_json::to_value(&context.status).unwrap_or_default();
            value["ok"] = true.into();
            reply(&stream, &value);
        }
        "freeze" => freeze(stream, context),
        "detach" | "detach force" => {
            let (outcome_tx, outcome_rx) = sync_channel(1);
            let (sent_tx, sent_rx) = sync_channel(1);
            let stop = Stop {
                force: request == "detach force",
                outcome: Some((outcome_tx, sent_rx)),
            };
            if context.stop.send(stop).is_err() {
                return reply(&stream, &error("the device is going away already"));
            }
            match outcome_rx.recv() {
                Ok(Ok(())) => reply(
                    &stream,
                    &serde_json::json!({ "ok": true, "detached": true }),
                ),
                Ok(Err(why)) => reply(&stream, &error(why)),
                Err(_) => reply(&stream, &error("the device is going away already")),
            }
            // The process may end now: the answer is out.
            let _ = sent_tx.send(());
        }
        other => reply(
            &stream,
            &error(format!(
                "unknown request {:?}",
                other.chars().take(64).collect::<String>()
            )),
        ),
    }
}

fn freeze(mut stream: UnixStream, context: &Context) {
    tracing::info!("freezing writes");
    let guard = match context.store.freeze() {
        Ok(guard) => guard,
        Err(e) => return reply(&stream, &error(format!("cannot sync the image: {e}"))),
    };
    reply(&stream, &serde_json::json!({ "ok": true, "frozen": true }));
    // Held until the peer closes its end (or dies: the kernel closes it).
    let _ = stream.set_read_timeout(None);
    let mut buf = [0u8; 64];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    drop(guard);
    tracing::info!("writes resumed");
}

/// Connects to a device process that is root or us.
pub(crate) fn connect(socket: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let stream = UnixStream::connect(socket)?;
    let (uid, _) = peer_of(&stream)?;
    if !trusted_uid(uid) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("the control socket is served by uid {uid}"),
        ));
    }
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(PEER_TIMEOUT))?;
    Ok(stream)
}

/// Sends one request on `stream` and reads the reply.
pub(crate) fn send(mut stream: &UnixStream, request: &str) -> io::Result<serde_json::Value> {
    writeln!(stream, "{request}")?;
    let line = read_line(stream)?;
    serde_json::from_str(&line).map_err(io::Error::other)
}

/// One request, one reply; the peer's pid (the kernel's word) with it.
pub(crate) fn request(
    socket: &Path,
    request: &str,
    timeout: Duration,
) -> io::Result<(i32, serde_json::Value)> {
    let stream = connect(socket, timeout)?;
    let (_, pid) = peer_of(&stream)?;
    let mut reply = send(&stream, request)?;
    if reply.get("pid").is_some() {
        // The pid the client believes is the kernel's, not the peer's claim.
        reply["pid"] = pid.into();
    }
    Ok((pid, reply))
}

/// An `ok` reply, or the device process's reason as an error.
pub(crate) fn check_reply(reply: &serde_json::Value, volume_id: &str) -> Result<(), DiskError> {
    if reply.get("ok").and_then(|v| v.as_bool()) == Some(true) {
        return Ok(());
    }
    let why = reply
        .get("error")
        .and_then(|v| v.as_str())
        .unwrap_or("no answer")
        .to_owned();
    if why.contains("in use") {
        Err(DiskError::Busy(why))
    } else {
        Err(DiskError::Device(format!("volume {volume_id}: {why}")))
    }
}
