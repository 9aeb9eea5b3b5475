//! The control channel between commands and the daemon serving a volume:
//! how `kmsfs rotate`, `set-key`, `status` and `reencrypt` find the daemon
//! and ask it to re-wrap now.
//!
//! Today that is a pid file in the backing root plus SIGUSR1 (received in
//! `signals`). A later change replaces it with an authenticated socket, so
//! both sides are small types: the daemon holds a [`ControlEndpoint`] while
//! it serves, commands use [`RunningDaemon`]; nothing else knows the pid
//! file.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::Path;

use kmsfs_volume::backing::Dir;

use super::error::DaemonError;

/// The mount daemon's pid file in the backing root (a reserved name: the
/// filesystem hides it).
const PID_FILE_NAME: &str = ".kmsfs.daemon.pid";

/// The daemon's side: announced while it lives, withdrawn when dropped.
#[derive(Debug)]
pub(crate) struct ControlEndpoint {
    root: Dir,
}

impl ControlEndpoint {
    /// Announces this process as the daemon serving `backing`.
    /// Through the backing layer, as root: the stale file is unlinked and
    /// the new one created O_EXCL|O_NOFOLLOW, so a symlink planted at the
    /// name is removed, never written through.
    pub(crate) fn publish(backing: &Path) -> io::Result<ControlEndpoint> {
        use std::io::Write;
        let root = Dir::open_root(backing)?;
        let name = OsStr::new(PID_FILE_NAME);
        match root.unlink(name) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        root.create_file(name, 0o644)?
            .write_all(format!("{}\n", std::process::id()).as_bytes())?;
        Ok(ControlEndpoint { root })
    }
}

impl Drop for ControlEndpoint {
    fn drop(&mut self) {
        let _ = self.root.unlink(OsStr::new(PID_FILE_NAME));
    }
}

/// A command's handle on the daemon serving a backing directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningDaemon {
    pid: i32,
}

impl RunningDaemon {
    /// The daemon serving `backing`, if one is running: its pid file names a
    /// live process that is a kmsfs.
    pub fn find(backing: &Path) -> Option<RunningDaemon> {
        let pid = parse_pid_file(&fs::read_to_string(backing.join(PID_FILE_NAME)).ok()?)?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        is_kmsfs_cmdline(&cmdline).then_some(RunningDaemon { pid })
    }

    /// The daemon's process id (shown to the user).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Asks the daemon to look for work for its rotation task now.
    pub fn request_rotation(&self) -> Result<(), DaemonError> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::Signal::SIGUSR1,
        )
        .map_err(|source| DaemonError::Wake {
            pid: self.pid,
            source,
        })
    }
}

/// The pid in a pid file's text (one number, surrounding blanks allowed).
fn parse_pid_file(text: &str) -> Option<i32> {
    text.trim().parse().ok()
}

/// Whether /proc/PID/cmdline is that of a kmsfs (a pid file outliving its
/// daemon may name a reused pid).
fn is_kmsfs_cmdline(cmdline: &[u8]) -> bool {
    String::from_utf8_lossy(cmdline).contains("kmsfs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_text() {
        assert_eq!(parse_pid_file("4242\n"), Some(4242));
        assert_eq!(parse_pid_file("  17 "), Some(17));
        assert_eq!(parse_pid_file(""), None);
        assert_eq!(parse_pid_file("12 13"), None);
        assert_eq!(parse_pid_file("pid"), None);
    }

    #[test]
    fn only_a_kmsfs_process_counts() {
        assert!(is_kmsfs_cmdline(b"/usr/bin/kmsfs\0mount\0/b\0/m\0"));
        assert!(is_kmsfs_cmdline(b"/sbin/mount.fuse.kmsfs\0/b\0/m\0"));
        assert!(!is_kmsfs_cmdline(b"/usr/bin/sleep\0sixty\0"));
        assert!(!is_kmsfs_cmdline(b""));
    }

    #[test]
    fn endpoint_is_found_while_published_and_gone_after() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RunningDaemon::find(dir.path()), None);
        let endpoint = ControlEndpoint::publish(dir.path()).unwrap();
        let text = fs::read_to_string(dir.path().join(PID_FILE_NAME)).unwrap();
        assert_eq!(parse_pid_file(&text), Some(std::process::id() as i32));
        // The test binary's name (kmsfs_mount-…) contains "kmsfs".
        assert_eq!(
            RunningDaemon::find(dir.path()).map(|d| d.pid()),
            Some(std::process::id() as i32)
        );
        drop(endpoint);
        assert!(!dir.path().join(PID_FILE_NAME).exists());
        assert_eq!(RunningDaemon::find(dir.path()), None);
    }

    #[test]
    fn a_pid_file_naming_another_program_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        // pid 1 is init/systemd (or a container's first process), never kmsfs
        // in a test run.
        fs::write(dir.path().join(PID_FILE_NAME), "1\n").unwrap();
        let init = fs::read("/proc/1/cmdline").unwrap_or_default();
        if !is_kmsfs_cmdline(&init) {
            assert_eq!(RunningDaemon::find(dir.path()), None);
        }
    }
}
