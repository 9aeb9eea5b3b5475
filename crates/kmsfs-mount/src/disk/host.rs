//! The host side of a device: the loop device (losetup(8), which knows
//! every kernel's loop ioctls), its stable name under /dev/disk/by-id, and
//! whether it is in use.

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::DiskError;

/// A loop device we set up.
#[derive(Debug, Clone)]
pub(crate) struct LoopDevice {
    /// `/dev/loopN`.
    pub(crate) path: String,
    /// `loopN`, its name under /sys/block.
    pub(crate) name: String,
}

fn run(cmd: &mut Command, what: &str) -> Result<String, DiskError> {
    let out = cmd
        .output()
        .map_err(|e| DiskError::io(format!("cannot run {what}"), e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(DiskError::Device(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl LoopDevice {
    /// A loop device over `file`, with direct I/O (the loop device keeps no
    /// page cache of its own over the file's) and 4096-byte logical blocks
    /// (every device request is whole sealed blocks, never a
    /// read-modify-write of a 512-byte sector).
    pub(crate) fn attach(file: &Path) -> Result<LoopDevice, DiskError> {
        let path = run(
            Command::new("losetup")
                .args([
                    "--find",
                    "--show",
                    "--direct-io=on",
                    "--sector-size",
                    "4096",
                ])
                .arg(file),
            "losetup",
        )?;
        let name = path
            .strip_prefix("/dev/")
            .filter(|n| n.starts_with("loop") && !n.contains('/'))
            .ok_or_else(|| DiskError::Device(format!("losetup named no loop device: {path:?}")))?
            .to_owned();
        Ok(LoopDevice { path, name })
    }

    /// Whether the kernel really runs it with direct I/O (it falls back to
    /// buffered I/O silently when the file does not allow it).
    pub(crate) fn direct_io(&self) -> bool {
        std::fs::read_to_string(format!("/sys/block/{}/loop/dio", self.name))
            .is_ok_and(|s| s.trim() == "1")
    }

    /// Why the device cannot be detached gently, if it cannot: a
    /// filesystem mounted on it, a holder (dm, md), or anyone holding it
    /// exclusively (an O_EXCL open fails with EBUSY then).
    pub(crate) fn in_use(&self, by_id: &Path) -> Option<String> {
        let holders = std::fs::read_dir(format!("/sys/block/{}/holders", self.name))
            .map(|d| d.count())
            .unwrap_or(0);
        if holders > 0 {
            return Some(format!("{} is in use by {holders} holder(s)", self.path));
        }
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let by_id = by_id.to_string_lossy();
        for line in mounts.lines() {
            let mut fields = line.split_whitespace();
            let (Some(source), Some(target)) = (fields.next(), fields.next()) else {
                continue;
            };
            if source == self.path || source == by_id {
                return Some(format!("{} is in use: mounted at {target}", self.path));
            }
        }
        if let Some(pid) = self.opener() {
            return Some(format!("{} is in use: open in process {pid}", self.path));
        }
        match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EXCL | libc::O_CLOEXEC)
            .open(&self.path)
        {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                Some(format!("{} is in use (held open exclusively)", self.path))
            }
            _ => None,
        }
    }

    /// A process other than this one that has the device open (the kernel
    /// shows no open count: every process's descriptors are looked at).
    fn opener(&self) -> Option<u32> {
        let me = std::process::id();
        let target = Path::new(&self.path);
        for proc in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = proc
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(fds) = std::fs::read_dir(proc.path().join("fd")) else {
                continue;
            };
            if fds
                .flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == target))
            {
                return Some(pid);
            }
        }
        None
    }

    /// `losetup -d`: the kernel detaches at once, or when the last opener
    /// lets go.
    pub(crate) fn detach(&self) -> Result<(), DiskError> {
        run(
            Command::new("losetup").arg("-d").arg(&self.path),
            "losetup -d",
        )
        .map(drop)
    }
}

/// Detaches every loop device still over `file`: what a device process
/// killed without its teardown (SIGKILL, a crash) leaves behind, holding
/// its dead FUSE mount. Best effort: one that cannot be detached is logged.
pub(crate) fn release_stale_loops(file: &Path) {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return;
    };
    let wanted = file.to_string_lossy();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let Ok(backing) = std::fs::read_to_string(entry.path().join("loop/backing_file")) else {
            continue;
        };
        let backing = backing.trim_end();
        if backing.strip_suffix(" (deleted)").unwrap_or(backing) == wanted {
            let dev = LoopDevice {
                path: format!("/dev/{name}"),
                name,
            };
            match dev.detach() {
                Ok(()) => tracing::warn!(device = %dev.path, "detached a stale loop device"),
                Err(e) => {
                    tracing::warn!(device = %dev.path, error = %e, "cannot detach a stale loop device")
                }
            }
        }
    }
}

/// The stable name `link` → `target`, made atomically (a temporary name,
/// then rename). A name that is not a symlink is never replaced.
pub(crate) fn make_link(link: &Path, target: &str) -> Result<(), DiskError> {
    let failed = |e| DiskError::io(format!("cannot create {}", link.display()), e);
    let dir = link.parent().unwrap_or(Path::new("/"));
    make_public_dirs(dir).map_err(failed)?;
    match std::fs::symlink_metadata(link) {
        Ok(meta) if !meta.file_type().is_symlink() => {
            return Err(failed(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "it exists and is not a symlink",
            )));
        }
        _ => {}
    }
    let name = link.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp: PathBuf = dir.join(format!(
        ".{}.{}.tmp",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(failed)?;
    std::fs::rename(&tmp, link).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        failed(e)
    })
}

/// Creates the missing directories of `dir` as udev would, 0755 (not under
/// the device process's umask of 077: everyone may look up /dev/disk/by-id).
fn make_public_dirs(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        make_public_dirs(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes `link` if it still points at `target` (another attachment may
/// have taken the name since).
pub(crate) fn remove_link(link: &Path, target: &str) {
    if std::fs::read_link(link).is_ok_and(|t| t == Path::new(target)) {
        let _ = std::fs::remove_file(link);
    }
}
