//! The control channel between commands and the daemon serving a volume:
//! how `kmsfs rotate`, `set-key`, `status` and `reencrypt` find the daemon
//! and ask it to re-wrap now.
//!
//! It is a Unix socket in a runtime directory only the daemon's user can
//! write (`/run/kmsfs` for root), named after the backing root's device and
//! inode. Nothing in it comes from a file another user could write: the
//! directory is checked to be ours and private before it is used, the daemon
//! answers only peers whose uid (SO_PEERCRED, vouched for by the kernel) is
//! its own or root, and a command believes only a peer of its own uid or
//! root that names the backing directory the command opened. The pid it
//! shows is the kernel's, from SO_PEERCRED — never one read from a file.
//!
//! The protocol is one request line (`status` or `rotate`) and one JSON
//! reply line per connection.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Duration;

use kmsfs_volume::backing::Dir;

use super::error::DaemonError;

/// Set to use another runtime directory (tests, systems without /run).
pub const RUNTIME_DIR_ENV: &str = "KMSFS_RUNTIME_DIR";
/// A request or reply longer than this is not one of ours.
pub(crate) const MAX_LINE: u64 = 4096;
/// A peer that neither asks nor reads within this is dropped.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// Where control sockets live: `$KMSFS_RUNTIME_DIR`, else `/run/kmsfs` for
/// root, else `$XDG_RUNTIME_DIR/kmsfs` (or `/run/user/UID/kmsfs`).
pub fn runtime_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(RUNTIME_DIR_ENV) {
        return PathBuf::from(dir);
    }
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return PathBuf::from("/run/kmsfs");
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/run/user/{uid}")))
        .join("kmsfs")
}

/// Refuses a runtime directory that is not a real directory (a symlink is
/// not followed), or that belongs to someone else, or that group or others
/// can reach: a socket in it could then be another user's.
pub(crate) fn check_private_dir(dir: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    let me = nix::unistd::geteuid().as_raw();
    let refuse = |why: String| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("refusing the runtime directory {}: {why}", dir.display()),
        ))
    };
    if !meta.file_type().is_dir() {
        return refuse("it is not a directory".into());
    }
    if meta.uid() != me {
        return refuse(format!("it belongs to uid {}, not {me}", meta.uid()));
    }
    if meta.mode() & 0o077 != 0 {
        return refuse(format!(
            "its mode {:04o} lets others in (it must be 0700)",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// The socket of the daemon serving the backing root `backing` (identified
/// by device and inode, so any path to it finds the same socket).
fn socket_in(dir: &Path, backing: &Dir) -> io::Result<(PathBuf, (u64, u64))> {
    let meta = backing.metadata()?;
    let id = (meta.dev(), meta.ino());
    Ok((dir.join(format!("{:x}-{}.sock", id.0, id.1)), id))
}

/// What the daemon says about itself.
#[derive(Debug, Clone)]
pub(crate) struct DaemonInfo {
    pub(crate) volume_id: String,
    pub(crate) backing: PathBuf,
    pub(crate) mountpoint: PathBuf,
}

/// The daemon's side: a listening socket while it serves, removed when
/// dropped.
#[derive(Debug)]
pub(crate) struct ControlEndpoint {
    path: PathBuf,
    listener: UnixListener,
}

impl ControlEndpoint {
    /// Listens for commands about `backing` in the runtime directory.
    pub(crate) fn publish(
        backing: &Path,
        info: DaemonInfo,
        wake: Sender<()>,
    ) -> io::Result<ControlEndpoint> {
        let dir = runtime_dir();
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        Self::publish_in(&dir, backing, info, wake)
    }

    fn publish_in(
        dir: &Path,
        backing: &Path,
        info: DaemonInfo,
        wake: Sender<()>,
    ) -> io::Result<ControlEndpoint> {
        check_private_dir(dir)?;
        let (path, id) = socket_in(dir, &Dir::open_root(backing)?)?;
        match std::fs::symlink_metadata(&path) {
            Ok(meta) => {
                if meta.file_type().is_socket() && UnixStream::connect(&path).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("another daemon serves {} already", backing.display()),
                    ));
                }
                // Left by a daemon that died (the directory is ours alone).
                std::fs::remove_file(&path)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let serving = listener.try_clone()?;
        std::thread::Builder::new()
            .name("kmsfs-control".into())
            .spawn(move || {
                for stream in serving.incoming() {
                    match stream {
                        Ok(stream) => answer(stream, &info, id, &wake),
                        // Shut down by Drop (or the descriptor is gone).
                        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return,
                        Err(e) => tracing::warn!(error = %e, "control socket accept failed"),
                    }
                }
            })?;
        Ok(ControlEndpoint { path, listener })
    }
}

impl Drop for ControlEndpoint {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        // Ends the accept loop (accept then fails with EINVAL).
        let _ =
            nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
    }
}

/// The uid and pid of a socket's peer, as the kernel recorded them.
pub(crate) fn peer_of(stream: &UnixStream) -> io::Result<(u32, i32)> {
    let cred = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(io::Error::from)?;
    Ok((cred.uid(), cred.pid()))
}

/// Whether a peer of `uid` may talk to us (and we to it): ourselves or root.
pub(crate) fn trusted_uid(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

pub(crate) fn read_line(stream: &UnixStream) -> io::Result<String> {
    let mut line = String::new();
    BufReader::new(stream.take(MAX_LINE)).read_line(&mut line)?;
    Ok(line.trim_end().to_string())
}

/// Serves one connection: one request, one reply.
fn answer(mut stream: UnixStream, info: &DaemonInfo, id: (u64, u64), wake: &Sender<()>) {
    let _ = stream.set_read_timeout(Some(PEER_TIMEOUT));
    let _ = stream.set_write_timeout(Some(PEER_TIMEOUT));
    let reply = match peer_of(&stream) {
        Ok((uid, _)) if trusted_uid(uid) => match read_line(&stream).as_deref() {
            Ok("status") => describe(info, id),
            Ok("rotate") => {
                tracing::info!("rotation requested");
                let _ = wake.send(());
                describe(info, id)
            }
            Ok(other) => serde_json::json!({
                "error": format!("unknown request {:?}", other.chars().take(64).collect::<String>())
            }),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        },
        Ok((uid, pid)) => {
            tracing::warn!(uid, pid, "control request from another user refused");
            serde_json::json!({ "error": "permission denied" })
        }
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    };
    let _ = writeln!(stream, "{reply}");
}

fn describe(info: &DaemonInfo, id: (u64, u64)) -> serde_json::Value {
    serde_json::json!({
        "ok": true,
        "volume_id": info.volume_id,
        "backing": info.backing,
        "mountpoint": info.mountpoint,
        "device": id.0,
        "inode": id.1,
    })
}

/// A command's handle on the daemon serving a backing directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningDaemon {
    pid: i32,
    socket: PathBuf,
    mountpoint: PathBuf,
}

impl RunningDaemon {
    /// The daemon serving `backing`, if one is running and answers as
    /// described in the module docs.
    pub fn find(backing: &Path) -> Option<RunningDaemon> {
        Self::find_in(&runtime_dir(), backing)
    }

    fn find_in(dir: &Path, backing: &Path) -> Option<RunningDaemon> {
        check_private_dir(dir).ok()?;
        let (socket, id) = socket_in(dir, &Dir::open_root(backing).ok()?).ok()?;
        let (pid, reply) = ask(&socket, "status").ok()?;
        let answers_for =
            |key: &str, want: u64| reply.get(key).and_then(|v| v.as_u64()) == Some(want);
        if !(answers_for("device", id.0) && answers_for("inode", id.1)) {
            return None;
        }
        let mountpoint = reply
            .get("mountpoint")
            .and_then(|v| v.as_str())
            .map(PathBuf::from)
            .unwrap_or_default();
        Some(RunningDaemon {
            pid,
            socket,
            mountpoint,
        })
    }

    /// The daemon's process id (the kernel's word for it; shown to the user).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Where the daemon has the volume mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Asks the daemon to re-read the volume's config and look for work for
    /// its rotation task now.
    pub fn request_rotation(&self) -> Result<(), DaemonError> {
        let control = |why: String| DaemonError::Control { pid: self.pid, why };
        let (pid, reply) = ask(&self.socket, "rotate").map_err(|e| control(e.to_string()))?;
        if pid != self.pid {
            return Err(control(format!("the socket is now served by pid {pid}")));
        }
        match reply.get("ok").and_then(|v| v.as_bool()) {
            Some(true) => Ok(()),
            _ => Err(control(
                reply
                    .get("error")
                    .and_then(|v| v.as_str())
                    .unwrap_or("no answer")
                    .to_string(),
            )),
        }
    }
}

/// Sends one request; returns the peer's pid and its reply. A peer that is
/// not of our uid or root is not talked to.
fn ask(socket: &Path, request: &str) -> io::Result<(i32, serde_json::Value)> {
    let mut stream = UnixStream::connect(socket)?;
    let (uid, pid) = peer_of(&stream)?;
    if !trusted_uid(uid) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("the control socket is served by uid {uid}"),
        ));
    }
    stream.set_read_timeout(Some(PEER_TIMEOUT))?;
    stream.set_write_timeout(Some(PEER_TIMEOUT))?;
    writeln!(stream, "{request}")?;
    let line = read_line(&stream)?;
    let reply = serde_json::from_str(&line).map_err(io::Error::other)?;
    Ok((pid, reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime directory as the daemon makes it: 0700.
    fn private_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    fn info(backing: &Path) -> DaemonInfo {
        DaemonInfo {
            volume_id: "vol-test".into(),
            backing: backing.to_path_buf(),
            mountpoint: PathBuf::from("/mnt/test"),
        }
    }

    #[test]
    fn endpoint_is_found_while_published_and_gone_after() {
        let run = private_dir();
        let backing = tempfile::tempdir().unwrap();
        assert_eq!(RunningDaemon::find_in(run.path(), backing.path()), None);
        let (wake, woken) = std::sync::mpsc::channel();
        let endpoint =
            ControlEndpoint::publish_in(run.path(), backing.path(), info(backing.path()), wake)
                .unwrap();
        let mode = std::fs::metadata(&endpoint.path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let daemon = RunningDaemon::find_in(run.path(), backing.path()).unwrap();
        // The pid is the kernel's: this process serves the socket.
        assert_eq!(daemon.pid(), std::process::id() as i32);
        assert_eq!(daemon.mountpoint(), Path::new("/mnt/test"));
        daemon.request_rotation().unwrap();
        assert!(woken.recv_timeout(Duration::from_secs(5)).is_ok());

        // A second daemon for the same backing directory is refused.
        let (wake2, _woken2) = std::sync::mpsc::channel();
        let again =
            ControlEndpoint::publish_in(run.path(), backing.path(), info(backing.path()), wake2);
        assert_eq!(again.unwrap_err().kind(), io::ErrorKind::AddrInUse);

        // Another backing directory has no daemon.
        let other = tempfile::tempdir().unwrap();
        assert_eq!(RunningDaemon::find_in(run.path(), other.path()), None);

        drop(endpoint);
        assert_eq!(RunningDaemon::find_in(run.path(), backing.path()), None);
        assert!(daemon.request_rotation().is_err());
    }

    #[test]
    fn a_stale_socket_is_replaced() {
        let run = private_dir();
        let backing = tempfile::tempdir().unwrap();
        let (path, _) = socket_in(run.path(), &Dir::open_root(backing.path()).unwrap()).unwrap();
        // A socket nobody listens on any more (its daemon was killed).
        drop(UnixListener::bind(&path).unwrap());
        assert_eq!(RunningDaemon::find_in(run.path(), backing.path()), None);
        let (wake, _woken) = std::sync::mpsc::channel();
        let _endpoint =
            ControlEndpoint::publish_in(run.path(), backing.path(), info(backing.path()), wake)
                .unwrap();
        assert!(RunningDaemon::find_in(run.path(), backing.path()).is_some());
    }

    #[test]
    fn a_runtime_dir_others_can_reach_is_refused() {
        let run = private_dir();
        let backing = tempfile::tempdir().unwrap();
        std::fs::set_permissions(run.path(), std::fs::Permissions::from_mode(0o733)).unwrap();
        let (wake, _woken) = std::sync::mpsc::channel();
        let refused =
            ControlEndpoint::publish_in(run.path(), backing.path(), info(backing.path()), wake);
        assert_eq!(refused.unwrap_err().kind(), io::ErrorKind::PermissionDenied);

        // Nor is a socket in such a directory believed by a command.
        std::fs::set_permissions(run.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let (wake, _woken) = std::sync::mpsc::channel();
        let _endpoint =
            ControlEndpoint::publish_in(run.path(), backing.path(), info(backing.path()), wake)
                .unwrap();
        std::fs::set_permissions(run.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(RunningDaemon::find_in(run.path(), backing.path()), None);

        // A symlink to a private directory is not one.
        std::fs::set_permissions(run.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let links = tempfile::tempdir().unwrap();
        let link = links.path().join("run");
        std::os::unix::fs::symlink(run.path(), &link).unwrap();
        assert_eq!(RunningDaemon::find_in(&link, backing.path()), None);
    }

    #[test]
    fn an_unknown_request_gets_an_error_and_changes_nothing() {
        let run = private_dir();
        let backing = tempfile::tempdir().unwrap();
        let (wake, woken) = std::sync::mpsc::channel();
        let endpoint =
            ControlEndpoint::publish_in(run.path(), backing.path(), info(backing.path()), wake)
                .unwrap();
        let (_, reply) = ask(&endpoint.path, "kill 1").unwrap();
        assert!(reply.get("error").is_some(), "{reply}");
        assert!(woken.try_recv().is_err());
    }
}
