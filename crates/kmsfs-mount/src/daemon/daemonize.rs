//! Going to the background: the mount command re-runs itself as a detached
//! child (same arguments) and returns only once the child reports over a
//! pipe that the filesystem answers, or has failed. Re-exec rather than
//! fork, because the parent may already run threads (an async runtime
//! behind the AWS KMS client, for one) that fork(2) would not carry over.

use std::fs;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::error::DaemonError;

/// Names the write end of the ready pipe in the child's environment.
const READY_FD_ENV: &str = "KMSFS_READY_FD";

/// True in the child that `run_in_background` started.
pub(crate) fn is_background_child() -> bool {
    std::env::var_os(READY_FD_ENV).is_some()
}

/// Re-runs this command as a detached child (stdin and stdout to /dev/null,
/// stderr to `log_file` or /dev/null, its own process group) and waits
/// until it reports ready; an error if it exits first.
pub(crate) fn run_in_background(log_file: Option<&Path>) -> Result<(), DaemonError> {
    let (read_end, write_end) = nix::unistd::pipe().map_err(DaemonError::ReadyPipe)?;
    let exe = std::env::current_exe().map_err(DaemonError::CurrentExe)?;
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env(READY_FD_ENV, write_end.as_raw_fd().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0);
    match log_file {
        Some(path) => {
            // The daemon (root, usually) appends to it for as long as it
            // runs: never through a symlink planted at the name (in /tmp,
            // say), and new logs are readable by their owner only.
            let log = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)
                .map_err(|source| DaemonError::LogFile {
                    path: path.to_path_buf(),
                    source,
                })?;
            cmd.stderr(log);
        }
        None => {
            cmd.stderr(Stdio::null());
        }
    }
    // The write end must survive exec in the child: clear FD_CLOEXEC on it.
    nix::fcntl::fcntl(
        &write_end,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .map_err(DaemonError::ReadyPipe)?;
    let mut child = cmd.spawn().map_err(DaemonError::Spawn)?;
    drop(write_end);
    let mut status = Vec::new();
    let mut reader = fs::File::from(read_end);
    // A read error counts as "not ready": the child's exit status says why.
    let _ = reader.read_to_end(&mut status);
    if status.first() == Some(&b'1') {
        return Ok(());
    }
    let status = child.wait().map_err(DaemonError::Wait)?;
    Err(DaemonError::DaemonFailed {
        status,
        log_file: log_file.map(Path::to_path_buf),
    })
}

/// In the background child: tells the waiting parent that the filesystem
/// is mounted. Does nothing in a foreground mount.
pub(crate) fn report_ready_to_parent() {
    if let Some(fd) = std::env::var(READY_FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    {
        // The fd number was created by our parent for us (see
        // `run_in_background`) and is used only here, once.
        if let Some(fd) = kmsfs_sys::adopt_inherited_fd(fd) {
            let _ = nix::unistd::write(&fd, b"1");
        }
    }
}
