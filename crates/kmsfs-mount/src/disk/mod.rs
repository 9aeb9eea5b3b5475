//! EBS volumes as block devices on this host: the real
//! [`BlockDevices`] of the EBS simulation (`kmsfs_ebs::devices`).
//!
//! An attached volume is served by its own process, `kmsfs ebs
//! serve-device` ([`serve_main`]), which outlives the command that attached
//! it. That process holds the image's descriptor and the volume's plaintext
//! data key (and nothing else does), and stacks:
//!
//! 1. a one-file FUSE filesystem ([`fuse`]) at
//!    `<runtime>/ebs/<volume-id>/`, whose file `disk` is the volume's
//!    plaintext, sealed block by block into the image ([`store`]);
//! 2. a loop device over that file, with direct I/O (no second page cache)
//!    and 4096-byte logical blocks (one sealed block per device block);
//! 3. the stable name `/dev/disk/by-id/kmsfs-<volume-id>` → the loop device;
//! 4. a control socket, `<runtime>/ebs/<volume-id>.sock` (`status`,
//!    `freeze`, `detach [force]`; see [`control`]).
//!
//! [`HostDevices`] starts that process (image handed over as an inherited
//! descriptor, key and file id over a pipe on its stdin: never argv, the
//! environment or a file) and talks to it over the socket.

mod control;
mod fuse;
mod host;
mod serve;
mod store;

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kmsfs_ebs::EbsError;
use kmsfs_ebs::devices::{AttachRequest, BlockDevices, Frozen, HostDevice};
use zeroize::Zeroizing;

pub use control::Status;
pub use serve::{ServeArgs, serve_main};

/// Where the stable names of attached volumes are.
pub const BY_ID_DIR: &str = "/dev/disk/by-id";

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("invalid volume id {0:?}")]
    BadVolumeId(String),
    #[error("volume {0} is already attached on this host")]
    AlreadyAttached(String),
    #[error("volume {0} is not attached on this host")]
    NotAttached(String),
    /// The device is in use (mounted, held) and the detach was not forced.
    #[error("{0}")]
    Busy(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Mount(#[from] crate::daemon::DaemonError),
    /// The device process failed to set up or refused a request.
    #[error("{0}")]
    Device(String),
}

impl DiskError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> DiskError {
        DiskError::Io {
            what: what.into(),
            source,
        }
    }
}

impl From<DiskError> for EbsError {
    fn from(e: DiskError) -> EbsError {
        match e {
            DiskError::BadVolumeId(_) => EbsError::InvalidParameterValue(e.to_string()),
            DiskError::AlreadyAttached(_) | DiskError::Busy(_) => {
                EbsError::VolumeInUse(e.to_string())
            }
            DiskError::NotAttached(_) => EbsError::IncorrectState(e.to_string()),
            other => EbsError::Internal(other.to_string()),
        }
    }
}

/// Volume ids name files and directories: EC2's form (`vol-…`) and
/// anything like it, never a path.
pub(crate) fn check_volume_id(id: &str) -> Result<(), DiskError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(DiskError::BadVolumeId(id.to_owned()))
    }
}

/// The files of one attached volume in the runtime directory.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub(crate) ebs_dir: PathBuf,
    pub(crate) mount_dir: PathBuf,
    pub(crate) socket: PathBuf,
    pub(crate) log: PathBuf,
    pub(crate) by_id: PathBuf,
}

impl Paths {
    pub(crate) fn new(runtime_dir: &Path, volume_id: &str) -> Paths {
        let ebs_dir = runtime_dir.join("ebs");
        Paths {
            mount_dir: ebs_dir.join(volume_id),
            socket: ebs_dir.join(format!("{volume_id}.sock")),
            log: ebs_dir.join(format!("{volume_id}.log")),
            by_id: Path::new(BY_ID_DIR).join(format!("kmsfs-{volume_id}")),
            ebs_dir,
        }
    }
}

/// Creates `dir` (0700) if it is missing and refuses it unless it is a real
/// directory of ours that nobody else can reach.
pub(crate) fn private_dir(dir: &Path) -> Result<(), DiskError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(DiskError::io(format!("cannot create {}", dir.display()), e));
        }
        _ => {}
    }
    crate::daemon::control::check_private_dir(dir).map_err(|e| DiskError::io("", e).flatten())
}

impl DiskError {
    /// An `Io` without a context of its own reads as its source.
    fn flatten(self) -> DiskError {
        match self {
            DiskError::Io { what, source } if what.is_empty() => {
                DiskError::Device(source.to_string())
            }
            other => other,
        }
    }
}

/// The block devices of this host, served by `kmsfs ebs serve-device`
/// processes.
#[derive(Debug, Clone)]
pub struct HostDevices {
    executable: PathBuf,
    runtime_dir: PathBuf,
}

/// How long a request to a device process may take (a detach syncs the
/// image and unmounts; a freeze waits for writes in flight).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long setting a device up may take (mount, losetup, the link).
const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);

impl HostDevices {
    /// Devices served by this executable, in the runtime directory
    /// (`$KMSFS_RUNTIME_DIR`, else `/run/kmsfs`).
    pub fn new() -> Result<HostDevices, DiskError> {
        let executable =
            std::env::current_exe().map_err(|e| DiskError::io("cannot find this executable", e))?;
        Ok(HostDevices::with(executable, crate::daemon::runtime_dir()))
    }

    /// Devices served by `executable` (the `kmsfs` binary: tests, whose own
    /// executable is the test harness), in `runtime_dir`.
    pub fn with(executable: PathBuf, runtime_dir: PathBuf) -> HostDevices {
        HostDevices {
            executable,
            runtime_dir,
        }
    }

    fn paths(&self, volume_id: &str) -> Result<Paths, DiskError> {
        check_volume_id(volume_id)?;
        Ok(Paths::new(&self.runtime_dir, volume_id))
    }

    /// Starts the device process for `request` and waits for its word.
    pub fn attach_volume(&self, request: AttachRequest) -> Result<HostDevice, DiskError> {
        let paths = self.paths(&request.volume_id)?;
        if self.status(&request.volume_id).is_some() {
            return Err(DiskError::AlreadyAttached(request.volume_id));
        }
        private_dir(&self.runtime_dir)?;
        private_dir(&paths.ebs_dir)?;
        // The device process logs here for as long as it runs (never
        // through a symlink planted at the name; the directory is private).
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&paths.log)
            .map_err(|e| DiskError::io(format!("cannot open {}", paths.log.display()), e))?;
        let image_fd = std::os::fd::AsRawFd::as_raw_fd(&request.image);
        let mut cmd = Command::new(&self.executable);
        cmd.args(["ebs", "serve-device", "--volume-id"])
            .arg(&request.volume_id)
            .arg("--image-fd")
            .arg(image_fd.to_string())
            .arg("--size-bytes")
            .arg(request.size_bytes.to_string())
            .env(crate::daemon::RUNTIME_DIR_ENV, &self.runtime_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log);
        kmsfs_sys::inherit_fd_on_spawn(&mut cmd, request.image.as_fd());
        let mut child = cmd
            .spawn()
            .map_err(|e| DiskError::io("cannot start the device process", e))?;
        drop(request.image);

        // The secret goes over the pipe in one write, from a buffer that is
        // wiped when dropped.
        let secret = Zeroizing::new(serve::encode_secret(request.sealed.as_ref()));
        let sent = child
            .stdin
            .take()
            .map(|mut stdin| stdin.write_all(&secret))
            .unwrap_or_else(|| Err(io::Error::other("no stdin pipe")));
        drop(secret);

        // Its word, or nothing within the limit: then it is told to undo
        // what it did and go (SIGTERM is a forced detach).
        let (word_tx, word_rx) = std::sync::mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                let _ = word_tx.send(line);
            });
        }
        let line = match word_rx.recv_timeout(ATTACH_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGTERM,
                    );
                }
                format!(
                    "error the device process did not get ready within {}s",
                    ATTACH_TIMEOUT.as_secs()
                )
            }
        };
        let line = line.trim_end();
        if let Some(device) = line.strip_prefix("ready ") {
            // Reaps the process when it ends (this one may live long).
            std::thread::spawn(move || child.wait());
            return Ok(HostDevice {
                block_device: device.to_owned(),
                by_id: paths.by_id.display().to_string(),
            });
        }
        let status = child.wait();
        let why = match line.strip_prefix("error ") {
            Some(message) => message.to_owned(),
            None => match (sent, status) {
                (Err(e), _) => format!("cannot hand the key to the device process: {e}"),
                (_, Ok(s)) => format!(
                    "the device process ended ({s}) without a word; see {}",
                    paths.log.display()
                ),
                (_, Err(e)) => e.to_string(),
            },
        };
        Err(DiskError::Device(format!(
            "cannot attach {}: {why}",
            request.volume_id
        )))
    }

    /// What the device process of `volume_id` says about itself.
    pub fn status(&self, volume_id: &str) -> Option<control::Status> {
        let paths = self.paths(volume_id).ok()?;
        crate::daemon::control::check_private_dir(&paths.ebs_dir).ok()?;
        let (_, reply) = control::request(&paths.socket, "status", Duration::from_secs(5)).ok()?;
        let status: control::Status = serde_json::from_value(reply).ok()?;
        (status.volume_id == volume_id).then_some(status)
    }

    /// Asks the device process to remove the device and end; returns once
    /// it has ended (so the image is closed).
    pub fn detach_volume(&self, volume_id: &str, force: bool) -> Result<(), DiskError> {
        let paths = self.paths(volume_id)?;
        let ask = if force { "detach force" } else { "detach" };
        let (pid, reply) = control::request(&paths.socket, ask, REQUEST_TIMEOUT)
            .map_err(|_| DiskError::NotAttached(volume_id.to_owned()))?;
        control::check_reply(&reply, volume_id)?;
        // The process exits right after its answer; wait for it, so that
        // the image is closed when this returns.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // A zombie has let go of everything.
            if stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Freezes writes to the volume for as long as the guard lives.
    pub fn freeze_volume(&self, volume_id: &str) -> Result<FrozenDevice, DiskError> {
        let paths = self.paths(volume_id)?;
        let stream = control::connect(&paths.socket, REQUEST_TIMEOUT)
            .map_err(|_| DiskError::NotAttached(volume_id.to_owned()))?;
        let reply = control::send(&stream, "freeze")
            .map_err(|e| DiskError::io("the device process did not answer", e))?;
        control::check_reply(&reply, volume_id)?;
        Ok(FrozenDevice { _stream: stream })
    }
}

/// A frozen volume: the device process holds writes for as long as this
/// connection is open, and lets them go when it closes (when the guard is
/// dropped, or the process holding it dies).
#[derive(Debug)]
pub struct FrozenDevice {
    _stream: std::os::unix::net::UnixStream,
}

impl Frozen for FrozenDevice {}

impl BlockDevices for HostDevices {
    fn attach(&self, request: AttachRequest) -> kmsfs_ebs::error::Result<HostDevice> {
        Ok(self.attach_volume(request)?)
    }

    fn detach(&self, volume_id: &str, force: bool) -> kmsfs_ebs::error::Result<()> {
        Ok(self.detach_volume(volume_id, force)?)
    }

    fn attached(&self, volume_id: &str) -> Option<HostDevice> {
        self.status(volume_id).map(|s| HostDevice {
            block_device: s.block_device,
            by_id: s.by_id,
        })
    }

    fn freeze(&self, volume_id: &str) -> kmsfs_ebs::error::Result<Box<dyn Frozen>> {
        Ok(Box::new(self.freeze_volume(volume_id)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_ids_are_names_not_paths() {
        for good in ["vol-0123456789abcdef0", "vol-1", "a.b_c"] {
            check_volume_id(good).unwrap();
        }
        for bad in ["", "../x", "a/b", ".hidden", "-x", "vol 1"] {
            assert!(check_volume_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_map_to_ec2_codes() {
        let e: EbsError = DiskError::Busy("in use".into()).into();
        assert_eq!(e.code(), "VolumeInUse");
        let e: EbsError = DiskError::NotAttached("vol-1".into()).into();
        assert_eq!(e.code(), "IncorrectState");
    }
}
