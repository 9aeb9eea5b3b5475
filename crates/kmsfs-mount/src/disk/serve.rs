//! The device process, `kmsfs ebs serve-device --volume-id ID --image-fd
//! FD --size-bytes N`: started by [`super::HostDevices`], it sets the
//! device up, says `ready <device>` (or `error <why>`) on its stdout, and
//! serves until asked to detach (or SIGTERM/SIGINT: a forced detach).
//!
//! Its stdin carries the secret, once, then is closed: `P` for a plain
//! image, or `S`, the 32-byte data key and the 16-byte file id. It is read
//! into a buffer that is wiped, and the key lives on only inside the AEAD
//! (which wipes itself when dropped). The process is made non-dumpable
//! before it reads anything.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use kmsfs_ebs::image::{self, Codec};
use kmsfs_format::cipher::DataKey;
use nix::mount::MsFlags;
use zeroize::Zeroizing;

use super::control::{Endpoint, Status, Stop};
use super::fuse::{DISK_NAME, DiskFs};
use super::host::{self, LoopDevice};
use super::store::Store;
use super::{DiskError, Paths, check_volume_id, private_dir};
use crate::daemon::fuse_mount::mount_fuse_as;
use crate::daemon::{DaemonError, runtime_dir, unmount};

/// The arguments of `kmsfs ebs serve-device`.
#[derive(Debug, Clone)]
pub struct ServeArgs {
    pub volume_id: String,
    /// The image, inherited from the parent under this number.
    pub image_fd: i32,
    pub size_bytes: u64,
}

const TAG_PLAIN: u8 = b'P';
const TAG_SEALED: u8 = b'S';
const KEY_LEN: usize = 32;
const SECRET_LEN: usize = 1 + KEY_LEN + 16;
/// FUSE worker threads: a freeze may hold some of them in writes while
/// reads go on in the others.
const FUSE_THREADS: usize = 8;

/// What goes down the pipe (the caller wipes it).
pub(crate) fn encode_secret(sealed: Option<&(DataKey, [u8; 16])>) -> Vec<u8> {
    match sealed {
        None => vec![TAG_PLAIN],
        Some((key, file_id)) => {
            let mut out = Vec::with_capacity(SECRET_LEN);
            out.push(TAG_SEALED);
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(file_id);
            out
        }
    }
}

fn read_secret(input: &mut impl Read) -> Result<Codec, DiskError> {
    let failed = |e| DiskError::io("cannot read the key from stdin", e);
    let mut buf = Zeroizing::new([0u8; SECRET_LEN]);
    input.read_exact(&mut buf[..1]).map_err(failed)?;
    match buf[0] {
        TAG_PLAIN => Ok(Codec::Plain),
        TAG_SEALED => {
            input.read_exact(&mut buf[1..]).map_err(failed)?;
            let key = DataKey::from_slice(&buf[1..1 + KEY_LEN])
                .map_err(|e| DiskError::Device(e.to_string()))?;
            let mut file_id = [0u8; 16];
            file_id.copy_from_slice(&buf[1 + KEY_LEN..]);
            Ok(Codec::sealed(&key, file_id))
        }
        other => Err(DiskError::Device(format!(
            "unknown secret tag {other:#04x} on stdin"
        ))),
    }
}

/// Points a standard descriptor at /dev/null (the parent's pipes are done).
fn to_dev_null(stdout: bool) {
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        let _ = if stdout {
            nix::unistd::dup2_stdout(&null)
        } else {
            nix::unistd::dup2_stdin(&null)
        };
    }
}

/// The entry point of `kmsfs ebs serve-device`.
pub fn serve_main(args: ServeArgs) -> ExitCode {
    let device = match Device::start(&args) {
        Ok(device) => device,
        Err(e) => {
            tracing::error!(volume = %args.volume_id, error = %e, "cannot attach");
            let message = e.to_string().replace('\n', " ");
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "error {message}");
            let _ = out.flush();
            return ExitCode::FAILURE;
        }
    };
    {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "ready {}", device.status.block_device);
        let _ = out.flush();
    }
    // The parent may be gone soon: nothing more goes to its pipe.
    to_dev_null(true);
    device.serve()
}

/// An attached volume and what was done to attach it (undone in reverse).
struct Device {
    paths: Paths,
    store: Arc<Store>,
    status: Status,
    mounted: bool,
    loop_device: Option<LoopDevice>,
    linked: bool,
    endpoint: Option<Endpoint>,
    stops: Option<Receiver<Stop>>,
}

impl Device {
    fn start(args: &ServeArgs) -> Result<Device, DiskError> {
        // Before the key is read: no core file, no ptrace by others.
        kmsfs_sys::forbid_core_dumps()
            .map_err(|e| DiskError::io("cannot make the process non-dumpable", e))?;
        // Out of the caller's session and terminal: it outlives them.
        let _ = nix::unistd::setsid();
        let _ = std::env::set_current_dir("/");
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        check_volume_id(&args.volume_id)?;
        // Read with read(2) on a duplicate of fd 0, not through std's
        // buffered stdin, whose buffer would keep a copy of the key.
        let codec = {
            use std::os::fd::AsFd;
            let mut input = io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .map(File::from)
                .map_err(|e| DiskError::io("cannot read the key from stdin", e))?;
            read_secret(&mut input)?
        };
        to_dev_null(false);
        let image = kmsfs_sys::adopt_inherited_fd(args.image_fd)
            .map(File::from)
            .ok_or_else(|| DiskError::Device(format!("fd {} is not open", args.image_fd)))?;
        let sealed = matches!(codec, Codec::Sealed { .. });
        image::check_len(&image, args.size_bytes, sealed)
            .map_err(|e| DiskError::Device(e.to_string()))?;

        let runtime = runtime_dir();
        let paths = Paths::new(&runtime, &args.volume_id);
        private_dir(&runtime)?;
        private_dir(&paths.ebs_dir)?;
        if super::control::connect(&paths.socket, Duration::from_secs(1)).is_ok() {
            return Err(DiskError::AlreadyAttached(args.volume_id.clone()));
        }
        prepare_mount_dir(&paths.mount_dir)?;
        let store = Arc::new(Store::new(image, codec, args.size_bytes));
        let mut device = Device {
            status: Status {
                volume_id: args.volume_id.clone(),
                block_device: String::new(),
                by_id: paths.by_id.display().to_string(),
                pid: std::process::id() as i32,
                dio: false,
                sealed,
            },
            paths,
            store,
            mounted: false,
            loop_device: None,
            linked: false,
            endpoint: None,
            stops: None,
        };
        match device.bring_up() {
            Ok(()) => Ok(device),
            Err(e) => {
                device.tear_down(true);
                Err(e)
            }
        }
    }

    fn bring_up(&mut self) -> Result<(), DiskError> {
        let volume_id = self.status.volume_id.clone();
        let fd = mount_fuse_as(
            Path::new("kmsfs-ebs"),
            &self.paths.mount_dir,
            "fuse.kmsfs-ebs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME,
            false,
        )?;
        self.mounted = true;
        let acl = fuser::SessionACL::RootAndOwner;
        let mut config = fuser::Config::default();
        config.acl = acl;
        config.n_threads = Some(FUSE_THREADS);
        config.clone_fd = true;
        let fs = DiskFs::new(self.store.clone(), volume_id.clone());
        let session =
            fuser::Session::from_fd(fs, fd, acl, config).map_err(DaemonError::Handshake)?;
        std::thread::Builder::new()
            .name("kmsfs-ebs-fuse".into())
            .spawn(move || {
                if let Err(e) = session.run() {
                    tracing::error!(error = %e, "FUSE session failed");
                }
            })
            .map_err(|e| DiskError::io("cannot start the FUSE session", e))?;

        let device = LoopDevice::attach(&self.paths.mount_dir.join(DISK_NAME))?;
        self.status.block_device = device.path.clone();
        self.status.dio = device.direct_io();
        self.loop_device = Some(device);
        if self.status.dio {
            tracing::info!(volume = %volume_id, device = %self.status.block_device, "loop device with direct I/O");
        } else {
            tracing::warn!(
                volume = %volume_id,
                device = %self.status.block_device,
                "the kernel did not enable direct I/O on the loop device: it caches the volume's plaintext"
            );
        }
        host::make_link(&self.paths.by_id, &self.status.block_device)?;
        self.linked = true;

        let (stop_tx, stop_rx) = channel();
        self.endpoint = Some(Endpoint::publish(
            &self.paths.socket,
            self.status.clone(),
            self.store.clone(),
            stop_tx.clone(),
        )?);
        self.stops = Some(stop_rx);
        spawn_signal_handler(stop_tx)?;
        tracing::info!(volume = %volume_id, device = %self.status.block_device, "attached");
        Ok(())
    }

    /// Serves until a detach takes the device away.
    fn serve(mut self) -> ExitCode {
        let Some(stops) = self.stops.take() else {
            return ExitCode::FAILURE;
        };
        loop {
            let stop = stops.recv().unwrap_or(Stop {
                force: true,
                outcome: None,
            });
            if !stop.force
                && let Some(why) = self
                    .loop_device
                    .as_ref()
                    .and_then(|d| d.in_use(&self.paths.by_id))
            {
                tracing::info!(volume = %self.status.volume_id, %why, "detach refused");
                if let Some((outcome, _)) = stop.outcome {
                    let _ =
                        outcome.send(Err(format!("{why}; unmount it first, or force the detach")));
                }
                continue;
            }
            if !stop.force
                && let Some(device) = &self.loop_device
                && let Err(e) = device.detach()
            {
                if let Some((outcome, _)) = stop.outcome {
                    let _ = outcome.send(Err(e.to_string()));
                }
                continue;
            }
            self.tear_down(stop.force);
            tracing::info!(volume = %self.status.volume_id, force = stop.force, "detached");
            if let Some((outcome, sent)) = stop.outcome {
                let _ = outcome.send(Ok(()));
                let _ = sent.recv_timeout(Duration::from_secs(5));
            }
            return ExitCode::SUCCESS;
        }
    }

    /// Undoes what was done, newest first; best effort (each step is
    /// logged). `force` also covers a device still open above us: the loop
    /// device goes when its last opener lets go, the FUSE mount lazily.
    fn tear_down(&mut self, force: bool) {
        let device = self.status.block_device.clone();
        // No new control requests; a freeze in progress ends with us.
        self.endpoint = None;
        if self.linked {
            host::remove_link(&self.paths.by_id, &device);
            self.linked = false;
        }
        if let Some(loop_device) = self.loop_device.take() {
            // A gentle detach did this already (and checked it worked).
            if force && let Err(e) = loop_device.detach() {
                tracing::warn!(error = %e, "cannot detach the loop device");
            }
        }
        if let Err(e) = self.store.sync() {
            tracing::error!(error = %e, "cannot sync the image");
        }
        if self.mounted {
            if let Err(e) = unmount(&self.paths.mount_dir) {
                tracing::warn!(error = %e, "cannot unmount the device's FUSE filesystem");
            }
            self.mounted = false;
            let _ = std::fs::remove_dir(&self.paths.mount_dir);
        }
    }
}

/// SIGTERM and SIGINT detach by force (the device goes even if mounted:
/// whoever is killing us wants us gone).
fn spawn_signal_handler(stop: std::sync::mpsc::Sender<Stop>) -> Result<(), DiskError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| DiskError::io("cannot handle signals", e))?;
    std::thread::Builder::new()
        .name("kmsfs-ebs-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                tracing::info!(signal = sig, "detaching on signal");
                let _ = stop.send(Stop {
                    force: true,
                    outcome: None,
                });
            }
        })
        .map(drop)
        .map_err(|e| DiskError::io("cannot handle signals", e))
}

/// The mount directory, 0700, ours, not a symlink; a FUSE mount left there
/// by a device process that died is lazily unmounted first.
fn prepare_mount_dir(dir: &Path) -> Result<(), DiskError> {
    use std::os::unix::fs::MetadataExt;
    // A loop device left over the dead mount's file keeps that mount alive.
    super::host::release_stale_loops(&dir.join(super::fuse::DISK_NAME));
    for _ in 0..2 {
        match std::fs::symlink_metadata(dir) {
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return private_dir(dir),
            Err(e) => return Err(DiskError::io(format!("cannot use {}", dir.display()), e)),
            Ok(meta) if meta.file_type().is_dir() => {
                let parent = std::fs::metadata(dir.parent().unwrap_or(Path::new("/")))
                    .map_err(|e| DiskError::io("cannot stat the runtime directory", e))?;
                if parent.dev() == meta.dev() {
                    return private_dir(dir);
                }
                // Still mounted: by a process that is gone (the socket
                // check found none answering).
                let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
            }
            Ok(_) => {
                return Err(DiskError::Device(format!(
                    "refusing {}: not a directory",
                    dir.display()
                )));
            }
        }
    }
    Err(DiskError::Device(format!(
        "{} stays mounted; unmount it by hand",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_round_trips_over_a_pipe() {
        let key = DataKey::random();
        let id = [9u8; 16];
        let bytes = encode_secret(Some(&(key, id)));
        assert_eq!(bytes.len(), SECRET_LEN);
        assert!(matches!(
            read_secret(&mut &bytes[..]).unwrap(),
            Codec::Sealed { file_id, .. } if file_id == id
        ));
        assert!(matches!(
            read_secret(&mut &encode_secret(None)[..]).unwrap(),
            Codec::Plain
        ));
        assert!(read_secret(&mut &bytes[..10]).is_err());
        assert!(read_secret(&mut &b"X"[..]).is_err());
    }
}
