//! `kmsfs init | mount | umount | fsck`: volumes on the command line.

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use clap::Args;

use super::{CliError, open_local_kms};
use kmsfs_format::cipher::CipherSuite;
use kmsfs_format::content::BLOCK_SIZE;
use kmsfs_kms::clock::SystemClock;
use kmsfs_kms::local::{CreateKeyInput, LocalKms};
use kmsfs_kms::{Caller, KeyService, KmsError};
use kmsfs_mount::fs::KmsFs;
use kmsfs_volume::config::{
    CONFIG_NAME, DEFAULT_KEY_ALIAS, HeaderPlacement, KeyServiceConfig, VolumeConfig,
};
use kmsfs_volume::{FileError, Volume};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The backing directory (created if absent; must be empty).
    pub backing_dir: PathBuf,
    /// The CMK that wraps the volume's data keys [default: alias/kmsfs/default,
    /// created if absent].
    #[arg(long)]
    pub key_id: Option<String>,
    #[arg(long, default_value = "aes-256-gcm")]
    pub cipher: CipherSuite,
    /// Where each file's header lives: the first 1 KiB of the file, or an xattr.
    #[arg(long, default_value = "file")]
    pub header: HeaderPlacement,
    /// Use this KMS endpoint (e.g. `kmsfs kms serve`) instead of the embedded store.
    #[command(flatten)]
    pub endpoint: super::endpoint::EndpointArgs,
}

#[derive(Debug, Args)]
pub struct MountArgs {
    pub backing_dir: PathBuf,
    pub mountpoint: PathBuf,
    /// Stay in the foreground (for systemd); SIGINT/SIGTERM unmount cleanly.
    #[arg(long, short = 'f')]
    pub foreground: bool,
    /// Mount options: allow_other, ro, noexec, nosuid, nodev, noatime, …
    #[arg(short = 'o', value_delimiter = ',')]
    pub options: Vec<String>,
    /// Where a daemonised mount writes its log [default: discarded].
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// FUSE worker threads.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
}

#[derive(Debug, Args)]
pub struct UmountArgs {
    pub mountpoint: PathBuf,
}

#[derive(Debug, Args)]
pub struct FsckArgs {
    pub backing_dir: PathBuf,
}

fn failed(what: impl std::fmt::Display) -> CliError {
    CliError::Failed(what.to_string())
}

fn absolute(p: &Path) -> Result<PathBuf, CliError> {
    std::path::absolute(p).map_err(|e| failed(format!("{}: {e}", p.display())))
}

/// The ARN of the CMK a new volume uses, creating the default one if needed.
fn resolve_volume_key(kms: &LocalKms, key_id: Option<&str>) -> Result<String, CliError> {
    let caller = Caller::current();
    if let Some(k) = key_id {
        return Ok(kms.describe_key(&caller, k)?.arn);
    }
    match kms.describe_key(&caller, DEFAULT_KEY_ALIAS) {
        Ok(info) => Ok(info.arn),
        Err(KmsError::NotFound(_)) => {
            let info = kms.create_key(
                &caller,
                CreateKeyInput {
                    description: "kmsfs default volume key".into(),
                    ..CreateKeyInput::default()
                },
            )?;
            kms.create_alias(&caller, DEFAULT_KEY_ALIAS, &info.key_id.to_string())?;
            eprintln!("kmsfs: created CMK {} ({DEFAULT_KEY_ALIAS})", info.arn);
            Ok(info.arn)
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates the backing directory if needed and checks that it can become a
/// new volume: not one already, and empty.
pub(crate) fn prepare_empty_backing(backing: &Path) -> Result<(), CliError> {
    fs::create_dir_all(backing).map_err(|e| failed(format!("{}: {e}", backing.display())))?;
    if VolumeConfig::exists_in(backing) {
        return Err(failed(format!(
            "{} is already a kmsfs volume",
            backing.display()
        )));
    }
    let not_empty = fs::read_dir(backing)
        .map_err(|e| failed(format!("{}: {e}", backing.display())))?
        .next()
        .is_some();
    if not_empty {
        return Err(failed(format!(
            "{} is not empty: a new volume needs an empty backing directory",
            backing.display()
        )));
    }
    Ok(())
}

fn init_volume(
    backing: &Path,
    keystore: &Path,
    key_id: Option<&str>,
    cipher: CipherSuite,
    header: HeaderPlacement,
) -> Result<VolumeConfig, CliError> {
    prepare_empty_backing(backing)?;
    let kms = open_local_kms(Some(keystore.to_path_buf()), Arc::new(SystemClock))?;
    let arn = resolve_volume_key(&kms, key_id)?;
    let config = VolumeConfig::new(
        cipher,
        header,
        KeyServiceConfig::Embedded {
            keystore: keystore.to_path_buf(),
        },
        arn,
    );
    config.save(backing).map_err(failed)?;
    Ok(config)
}

fn keystore_path(keystore: Option<PathBuf>) -> Result<PathBuf, CliError> {
    absolute(&keystore.unwrap_or_else(kmsfs_kms::store::default_store_path))
}

pub fn init(args: &InitArgs, keystore: Option<PathBuf>) -> Result<(), CliError> {
    let backing = absolute(&args.backing_dir)?;
    let config = if args.endpoint.endpoint_url.is_some() || args.endpoint.aws_kms {
        super::endpoint::init_volume(
            &backing,
            &args.endpoint,
            args.key_id.as_deref(),
            args.cipher,
            args.header,
        )?
    } else {
        init_volume(
            &backing,
            &keystore_path(keystore)?,
            args.key_id.as_deref(),
            args.cipher,
            args.header,
        )?
    };
    eprintln!(
        "kmsfs: initialised volume {} in {} ({}, headers in {:?}, CMK {})",
        config.volume_id,
        backing.display(),
        config.cipher,
        config.header,
        config.key_id
    );
    Ok(())
}

/// Opens the key service a volume's config names.
fn volume_kms(config: &VolumeConfig) -> Result<Arc<dyn KeyService>, CliError> {
    match &config.key_service {
        KeyServiceConfig::Embedded { keystore } => Ok(Arc::new(open_local_kms(
            Some(keystore.clone()),
            Arc::new(SystemClock),
        )?)),
        remote => super::endpoint::volume_kms(remote),
    }
}

pub fn open_volume(backing: &Path) -> Result<Volume, CliError> {
    let config = VolumeConfig::load(backing).map_err(failed)?;
    let kms = volume_kms(&config)?;
    Volume::new(config, kms).map_err(failed)
}

/// How to call mount(2): flags, and what goes in the FUSE option string.
struct MountPlan {
    flags: nix::mount::MsFlags,
    allow_other: bool,
    read_only: bool,
    /// Background re-wrapping: files per second (None: unthrottled), and how
    /// often to check the CMK for a new version.
    rotate_rate: Option<f64>,
    rotate_interval: std::time::Duration,
    tuning: kmsfs_mount::fs::Tuning,
}

fn mount_plan(opts: &[String]) -> Result<MountPlan, CliError> {
    use nix::mount::MsFlags as F;
    // nosuid and nodev unless asked otherwise, as fusermount does.
    let mut plan = MountPlan {
        flags: F::MS_NOSUID | F::MS_NODEV,
        allow_other: false,
        read_only: false,
        rotate_rate: None,
        rotate_interval: std::time::Duration::from_secs(60),
        tuning: kmsfs_mount::fs::Tuning::default(),
    };
    for opt in opts.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        match opt {
            "allow_other" => plan.allow_other = true,
            "ro" => {
                plan.read_only = true;
                plan.flags |= F::MS_RDONLY;
            }
            "rw" => {
                plan.read_only = false;
                plan.flags.remove(F::MS_RDONLY);
            }
            "noexec" => plan.flags |= F::MS_NOEXEC,
            "exec" => plan.flags.remove(F::MS_NOEXEC),
            "nosuid" => plan.flags |= F::MS_NOSUID,
            "suid" => plan.flags.remove(F::MS_NOSUID),
            "nodev" => plan.flags |= F::MS_NODEV,
            "dev" => plan.flags.remove(F::MS_NODEV),
            "noatime" => plan.flags |= F::MS_NOATIME,
            "nodiratime" => plan.flags |= F::MS_NODIRATIME,
            "relatime" => plan.flags |= F::MS_RELATIME,
            "atime" => plan.flags.remove(F::MS_NOATIME),
            "sync" => plan.flags |= F::MS_SYNCHRONOUS,
            "async" => plan.flags.remove(F::MS_SYNCHRONOUS),
            "dirsync" => plan.flags |= F::MS_DIRSYNC,
            // Options for mount(8) and fstab, not for the filesystem.
            "defaults"
            | "_netdev"
            | "nofail"
            | "auto"
            | "noauto"
            | "user"
            | "nouser"
            | "users"
            | "default_permissions" => {}
            other if other.starts_with("x-") || other.starts_with("comment=") => {}
            "writeback_cache" => plan.tuning.writeback_cache = true,
            "no_writeback_cache" => plan.tuning.writeback_cache = false,
            "keep_cache" => plan.tuning.keep_cache = true,
            "no_keep_cache" => plan.tuning.keep_cache = false,
            other if other.starts_with("attr_timeout=") => {
                let v = &other["attr_timeout=".len()..];
                let secs: f64 = v
                    .parse()
                    .map_err(|_| CliError::Usage(format!("attr_timeout={v}: expected seconds")))?;
                plan.tuning.attr_ttl = std::time::Duration::from_secs_f64(secs.clamp(0.0, 3600.0));
            }
            other if other.starts_with("rotate_rate=") => {
                let v = &other["rotate_rate=".len()..];
                plan.rotate_rate = Some(v.parse().map_err(|_| {
                    CliError::Usage(format!("rotate_rate={v}: expected files per second"))
                })?);
            }
            other if other.starts_with("rotate_interval=") => {
                let v = &other["rotate_interval=".len()..];
                let secs: u64 = v.parse().map_err(|_| {
                    CliError::Usage(format!("rotate_interval={v}: expected seconds"))
                })?;
                plan.rotate_interval = std::time::Duration::from_secs(secs.max(1));
            }
            other => return Err(CliError::Usage(format!("unknown mount option: {other}"))),
        }
    }
    Ok(plan)
}

pub fn mount(args: &MountArgs, keystore: Option<PathBuf>) -> Result<(), CliError> {
    let backing = absolute(&args.backing_dir)?;
    let mountpoint = absolute(&args.mountpoint)?;
    if !mountpoint.is_dir() {
        return Err(failed(format!(
            "mount point {} is not a directory",
            mountpoint.display()
        )));
    }
    let plan = mount_plan(&args.options)?;
    if !VolumeConfig::exists_in(&backing) {
        let empty = fs::read_dir(&backing)
            .map(|mut d| d.next().is_none())
            .unwrap_or(true);
        if !empty {
            return Err(failed(format!(
                "{} is not a kmsfs volume (no {CONFIG_NAME}) and not empty",
                backing.display()
            )));
        }
        let config = init_volume(
            &backing,
            &keystore_path(keystore)?,
            None,
            CipherSuite::Aes256Gcm,
            HeaderPlacement::File,
        )?;
        eprintln!(
            "kmsfs: {} was empty: initialised a new volume {} with CMK {} ({DEFAULT_KEY_ALIAS})",
            backing.display(),
            config.volume_id,
            config.key_id
        );
    }
    let volume = open_volume(&backing)?;
    // Refuse early when the volume's CMK does not exist at all; a disabled key
    // still mounts (files then fail to open with EACCES until it is enabled).
    if let Err(e @ KmsError::NotFound(_)) = volume
        .kms
        .describe_key(&Caller::current(), &volume.config.key_id)
    {
        return Err(e.into());
    }
    if !args.foreground && std::env::var_os("KMSFS_READY_FD").is_none() {
        return daemonize(args);
    }
    serve(backing, mountpoint, Arc::new(volume), plan, args.threads)
}

/// Re-runs this command in the foreground as a detached child and returns
/// once the child reports that the filesystem is mounted (or has failed).
fn daemonize(args: &MountArgs) -> Result<(), CliError> {
    let (read_end, write_end) = nix::unistd::pipe().map_err(failed)?;
    let exe = std::env::current_exe().map_err(failed)?;
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1).collect::<Vec<OsString>>())
        .env("KMSFS_READY_FD", write_end.as_raw_fd().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0);
    match &args.log_file {
        Some(path) => {
            let log = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| failed(format!("{}: {e}", path.display())))?;
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
    .map_err(failed)?;
    let mut child = cmd.spawn().map_err(failed)?;
    drop(write_end);
    let mut status = Vec::new();
    let mut reader = fs::File::from(read_end);
    let _ = reader.read_to_end(&mut status);
    if status.first() == Some(&b'1') {
        return Ok(());
    }
    let exit = child.wait().map_err(failed)?;
    Err(failed(format!(
        "the mount daemon failed ({exit}){}",
        match &args.log_file {
            Some(p) => format!("; see {}", p.display()),
            None => "; run with --foreground to see why".into(),
        }
    )))
}

fn notify_ready() {
    if let Some(fd) = std::env::var("KMSFS_READY_FD")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    {
        // The fd number was created by our parent for us (see `daemonize`)
        // and is used only here, once.
        if let Some(fd) = kmsfs_sys::adopt_inherited_fd(fd) {
            let _ = nix::unistd::write(&fd, b"1");
        }
    }
    crate::cli::sd_notify("READY=1");
}

/// Every open file at the mount holds one backing descriptor: lift the soft
/// limit on open files to the hard limit (often 1,024 → 524,288), or the
/// 1,025th open file would fail with EMFILE.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, soft, "cannot raise the open-file limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the open-file limit"),
    }
}

/// Mounts /dev/fuse at `mountpoint` with file system type `fuse.kmsfs` (so
/// `mount` and /proc/mounts name us) and returns the device descriptor.
fn mount_fuse(backing: &Path, mountpoint: &Path, plan: &MountPlan) -> Result<OwnedFd, CliError> {
    use nix::fcntl::{OFlag, open};
    let fd = open(
        "/dev/fuse",
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| failed(format!("cannot open /dev/fuse: {e}")))?;
    let mut data = format!(
        "fd={},rootmode=40000,user_id={},group_id={},default_permissions",
        fd.as_raw_fd(),
        nix::unistd::getuid(),
        nix::unistd::getgid()
    );
    if plan.allow_other {
        data.push_str(",allow_other");
    }
    nix::mount::mount(
        Some(backing),
        mountpoint,
        Some("fuse.kmsfs"),
        plan.flags,
        Some(data.as_str()),
    )
    .map_err(|e| match e {
        nix::Error::EPERM => failed(format!(
            "cannot mount {}: permission denied (mounting needs root)",
            mountpoint.display()
        )),
        e => failed(format!("cannot mount {}: {e}", mountpoint.display())),
    })?;
    Ok(fd)
}

fn serve(
    backing: PathBuf,
    mountpoint: PathBuf,
    volume: Arc<Volume>,
    plan: MountPlan,
    threads: usize,
) -> Result<(), CliError> {
    // Modes of new backing files are exactly what the caller asked for (the
    // request carries the caller's umask).
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    raise_open_file_limit();
    let fs =
        KmsFs::new(backing.clone(), volume.clone(), plan.read_only, plan.tuning).map_err(failed)?;
    let acl = if plan.allow_other {
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::Owner
    };
    let mut config = fuser::Config::default();
    config.acl = acl;
    config.n_threads = Some(threads.max(1));
    config.clone_fd = true;
    let fd = mount_fuse(&backing, &mountpoint, &plan)?;
    let session = match fuser::Session::from_fd(fs, fd, acl, config) {
        Ok(s) => s,
        Err(e) => {
            let _ = unmount(&mountpoint);
            return Err(failed(format!("FUSE handshake failed: {e}")));
        }
    };
    tracing::info!(backing = %backing.display(), mountpoint = %mountpoint.display(), "mounted");
    let (wake, woken) = std::sync::mpsc::channel();
    let signal_target = mountpoint.clone();
    std::thread::spawn(move || handle_signals(&signal_target, wake));
    let pid_file = backing.join(crate::cli::rotate::PID_NAME);
    if !plan.read_only {
        if let Err(e) = fs::write(&pid_file, format!("{}\n", std::process::id())) {
            tracing::warn!(error = %e, "cannot write the pid file; `kmsfs rotate` will not find this daemon");
        }
        let (b, v, rate, interval) = (
            backing.clone(),
            volume,
            plan.rotate_rate,
            plan.rotate_interval,
        );
        std::thread::Builder::new()
            .name("kmsfs-rotation".into())
            .spawn(move || crate::cli::rotate::rotation_task(b, v, rate, interval, woken))
            .map_err(failed)?;
    }
    notify_ready();
    let outcome = session.run();
    let _ = fs::remove_file(&pid_file);
    crate::cli::sd_notify("STOPPING=1");
    tracing::info!(mountpoint = %mountpoint.display(), "unmounted");
    outcome.map_err(|e| failed(format!("FUSE session failed: {e}")))
}

/// SIGINT/SIGTERM unmount (the session then ends); SIGUSR1 wakes the
/// rotation task (`kmsfs rotate` and `kmsfs set-key` on a mounted volume).
fn handle_signals(mountpoint: &Path, wake: std::sync::mpsc::Sender<()>) {
    use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGUSR1]) else {
        return;
    };
    for sig in signals.forever() {
        if sig == SIGUSR1 {
            tracing::info!("rotation requested");
            let _ = wake.send(());
            continue;
        }
        tracing::info!(signal = sig, "unmounting on signal");
        if let Err(e) = unmount(mountpoint) {
            tracing::error!(error = %e, "cannot unmount");
        }
        return;
    }
}

/// Unmounts: a plain unmount first; if busy, a lazy one (the filesystem goes
/// away once the last user lets go).
pub fn unmount(mountpoint: &Path) -> Result<(), CliError> {
    use nix::mount::{MntFlags, umount2};
    match umount2(mountpoint, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::Error::EBUSY) => umount2(mountpoint, MntFlags::MNT_DETACH)
            .map_err(|e| failed(format!("cannot unmount {}: {e}", mountpoint.display()))),
        Err(nix::Error::EPERM) => {
            // Not root: let the setuid helper do it.
            let status = Command::new("fusermount3")
                .arg("-u")
                .arg(mountpoint)
                .status()
                .map_err(|e| failed(format!("cannot run fusermount3: {e}")))?;
            if status.success() {
                Ok(())
            } else {
                Err(failed(format!(
                    "fusermount3 -u {} failed",
                    mountpoint.display()
                )))
            }
        }
        Err(e) => Err(failed(format!(
            "cannot unmount {}: {e}",
            mountpoint.display()
        ))),
    }
}

pub fn umount(args: &UmountArgs) -> Result<(), CliError> {
    unmount(&absolute(&args.mountpoint)?)
}

/// One problem fsck found.
pub struct Damage {
    pub path: PathBuf,
    pub what: String,
}

/// Checks every header and every block of every regular file.
pub fn check_volume(backing: &Path, volume: &Volume) -> (usize, Vec<Damage>) {
    let caller = Caller::current();
    let files = kmsfs_volume::rotate::list_files(backing);
    let mut damage: Vec<Damage> = files
        .iter()
        .filter_map(|path| {
            check_file(volume, &caller, path).err().map(|what| Damage {
                path: path.clone(),
                what,
            })
        })
        .collect();
    damage.sort_by(|a, b| a.path.cmp(&b.path));
    (files.len(), damage)
}

fn check_file(volume: &Volume, caller: &Caller, path: &Path) -> Result<(), String> {
    let file = fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let key = match volume.open_key(caller, &file, false) {
        Ok(Some(k)) => k,
        Ok(None) => return Ok(()),
        Err(e @ FileError::Denied(_)) => return Err(format!("key not usable: {e}")),
        Err(e) => return Err(e.to_string()),
    };
    let content = volume.content(&key);
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let size = volume
        .layout
        .plain_size(len)
        .map_err(|e| format!("torn end of file: {e}"))?;
    let chunk = 256 * BLOCK_SIZE as u64;
    let mut offset = 0;
    while offset < size {
        content
            .read(&file, offset, chunk as usize)
            .map_err(|e| e.to_string())?;
        offset += chunk;
    }
    Ok(())
}

pub fn fsck(args: &FsckArgs) -> Result<(), CliError> {
    let backing = absolute(&args.backing_dir)?;
    let volume = open_volume(&backing)?;
    let (checked, damage) = check_volume(&backing, &volume);
    for d in &damage {
        println!("DAMAGED {}: {}", d.path.display(), d.what);
    }
    println!("checked {checked} files: {} damaged", damage.len());
    if damage.is_empty() {
        Ok(())
    } else {
        Err(failed(format!("{} damaged files", damage.len())))
    }
}
