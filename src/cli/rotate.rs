//! `kmsfs rotate | set-key | status | reencrypt`: moving a volume's headers
//! to a new CMK version or another CMK, and seeing where it stands.

use std::fs;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;

use super::CliError;
use super::volume::open_volume;
use kmsfs_kms::{Caller, KeyState, KmsError};
use kmsfs_volume::FileError;
use kmsfs_volume::config::VolumeConfig;
use kmsfs_volume::rotate::{
    Observer, Outcome, RotationState, census, current_target, rotate_volume,
};

/// The mount daemon's pid file in the backing root.
pub const PID_NAME: &str = ".kmsfs.daemon.pid";

#[derive(Debug, Args)]
pub struct RotateArgs {
    pub backing_dir: PathBuf,
    /// Re-key the volume to this CMK first (as `set-key`), then move every file.
    #[arg(long)]
    pub to_key_id: Option<String>,
    /// At most this many files re-wrapped per second (default: unthrottled).
    #[arg(long)]
    pub rate: Option<f64>,
}

#[derive(Debug, Args)]
pub struct SetKeyArgs {
    pub backing_dir: PathBuf,
    /// The CMK new files use from now on; existing files move on the next rotation.
    #[arg(long)]
    pub key_id: String,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The backing directory, or the mount point of a mounted volume.
    pub path: PathBuf,
    #[arg(long)]
    pub json: bool,
}

fn failed(what: impl std::fmt::Display) -> CliError {
    CliError::Failed(what.to_string())
}

/// The backing directory of `path`: itself if it holds a volume config,
/// else the source of the kmsfs mount at `path`.
pub fn backing_of(path: &Path) -> Result<PathBuf, CliError> {
    let path = std::path::absolute(path).map_err(failed)?;
    if VolumeConfig::exists_in(&path) {
        return Ok(path);
    }
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() > 2 && fields[2] == "fuse.kmsfs" && Path::new(&unescape(fields[1])) == path
        {
            return Ok(PathBuf::from(unescape(fields[0])));
        }
    }
    Err(failed(format!(
        "{} is neither a kmsfs backing directory nor a kmsfs mount point",
        path.display()
    )))
}

/// /proc/mounts escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The pid of the daemon serving this backing directory, if one is running.
pub fn running_daemon(backing: &Path) -> Option<i32> {
    let pid: i32 = fs::read_to_string(backing.join(PID_NAME))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmdline)
        .contains("kmsfs")
        .then_some(pid)
}

fn wake_daemon(pid: i32) -> Result<(), CliError> {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .map_err(|e| failed(format!("cannot signal the mount daemon (pid {pid}): {e}")))
}

pub fn set_key(args: &SetKeyArgs) -> Result<(), CliError> {
    let backing = backing_of(&args.backing_dir)?;
    let arn = set_volume_key(&backing, &args.key_id)?;
    eprintln!(
        "kmsfs: new files in {} are wrapped by {arn}",
        backing.display()
    );
    if let Some(pid) = running_daemon(&backing) {
        wake_daemon(pid)?;
        eprintln!(
            "kmsfs: the mount daemon (pid {pid}) is re-wrapping existing files; see `kmsfs status`"
        );
    } else {
        eprintln!(
            "kmsfs: run `kmsfs rotate {}` (or mount it) to move existing files",
            backing.display()
        );
    }
    Ok(())
}

/// Points the volume at another CMK, refusing one that is not usable now.
fn set_volume_key(backing: &Path, key_id: &str) -> Result<String, CliError> {
    let volume = open_volume(backing)?;
    let d = volume.kms.describe_key(&Caller::current(), key_id)?;
    match d.state {
        KeyState::Enabled => {}
        KeyState::Disabled => {
            return Err(KmsError::Disabled(format!(
                "{} is disabled: refusing to re-key the volume to it",
                d.key_arn
            ))
            .into());
        }
        other => {
            return Err(KmsError::InvalidState(format!(
                "{} is {}: refusing to re-key the volume to it",
                d.key_arn,
                other.as_str()
            ))
            .into());
        }
    }
    let mut config = VolumeConfig::load(backing).map_err(failed)?;
    config.key_id = d.key_arn.clone();
    config.save(backing).map_err(failed)?;
    Ok(d.key_arn)
}

/// Progress on a terminal (a bar) or in a log (a line every few seconds).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    done: u64,
    rewrapped: u64,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            bar: None,
            total: 0,
            done: 0,
            rewrapped: 0,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }
}

impl Observer for Progress {
    fn start(&mut self, total: u64) {
        self.total = total;
        self.started = Instant::now();
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} files  {per_sec}  ETA {eta}  {msg}",
            ) {
                bar.set_style(style);
            }
            self.bar = Some(bar);
        } else {
            eprintln!("kmsfs: re-wrapping up to {total} files");
        }
    }

    fn file_done(&mut self, _path: &Path, outcome: &Result<Outcome, FileError>) {
        self.done += 1;
        if matches!(outcome, Ok(Outcome::Rewrapped)) {
            self.rewrapped += 1;
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
        } else if self.last_line.elapsed() > Duration::from_secs(2) {
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            eprintln!(
                "kmsfs: {}/{} files, {} re-wrapped, {:.0} files/s",
                self.done,
                self.total,
                self.rewrapped,
                self.done as f64 / secs
            );
            self.last_line = Instant::now();
        }
    }
}

pub fn rotate(args: &RotateArgs) -> Result<(), CliError> {
    let backing = backing_of(&args.backing_dir)?;
    if let Some(key) = &args.to_key_id {
        let arn = set_volume_key(&backing, key)?;
        eprintln!("kmsfs: volume re-keyed to {arn}");
    }
    if let Some(pid) = running_daemon(&backing) {
        wake_daemon(pid)?;
        eprintln!(
            "kmsfs: {} is mounted: asked its daemon (pid {pid}) to re-wrap now; follow with `kmsfs status {}`",
            backing.display(),
            backing.display()
        );
        return Ok(());
    }
    let volume = open_volume(&backing)?;
    let caller = Caller::current();
    let target = current_target(&volume, &caller)?;
    let mut progress = Progress::new();
    let state = rotate_volume(
        &backing,
        &volume,
        &caller,
        &target,
        args.rate,
        &mut progress,
    );
    if let Some(bar) = &progress.bar {
        bar.finish_and_clear();
    }
    let secs = progress.started.elapsed().as_secs_f64();
    println!(
        "re-wrapped {} of {} files to {} version {} in {:.1} s; {} could not be re-wrapped",
        state.rewrapped,
        state.total,
        target.key_id,
        target.version,
        secs,
        state.failures.len()
    );
    println!("{:.0} files/s", state.total as f64 / secs.max(1e-9));
    for f in &state.failures {
        println!("SKIPPED {}: {}", f.path.display(), f.reason);
    }
    if state.failures.is_empty() {
        Ok(())
    } else {
        Err(failed(format!(
            "{} files could not be re-wrapped (left as they were)",
            state.failures.len()
        )))
    }
}

pub fn status(args: &StatusArgs) -> Result<(), CliError> {
    let backing = backing_of(&args.path)?;
    let volume = open_volume(&backing)?;
    let (counts, unreadable) = census(&volume, &backing);
    let state = RotationState::load(&backing);
    let target = current_target(&volume, &Caller::current()).ok();
    let files: Vec<serde_json::Value> = counts
        .iter()
        .map(|((key, version), n)| {
            serde_json::json!({
                "KeyId": key,
                "KeyVersion": version,
                "Files": n,
                "Current": target.as_ref().is_some_and(|t| &t.key_id == key && t.version == *version),
            })
        })
        .collect();
    let report = serde_json::json!({
        "BackingDir": backing,
        "VolumeKeyId": volume.key_id(),
        "Target": target,
        "FilesByKeyVersion": files,
        "Unreadable": unreadable,
        "Daemon": running_daemon(&backing),
        "Rotation": state,
    });
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(());
    }
    println!("volume {} (CMK {})", backing.display(), volume.key_id());
    if let Some(t) = &target {
        println!("target: {} version {}", t.key_id, t.version);
    }
    for ((key, version), n) in &counts {
        let current = target
            .as_ref()
            .is_some_and(|t| &t.key_id == key && t.version == *version);
        println!(
            "  {n:>8} files  {key} version {version}{}",
            if current { "  (current)" } else { "" }
        );
    }
    for f in &unreadable {
        println!("  UNREADABLE {}: {}", f.path.display(), f.reason);
    }
    match state.status.as_str() {
        "" => println!("rotation: never run"),
        s => println!(
            "rotation: {s}, {}/{} files, {} re-wrapped, last completed {}, {} failed",
            state.done,
            state.total,
            state.rewrapped,
            state.completed_at.as_deref().unwrap_or("never"),
            state.failures.len()
        ),
    }
    for f in &state.failures {
        println!("  FAILED {}: {}", f.path.display(), f.reason);
    }
    Ok(())
}

/// The mount daemon's background task: re-wraps whenever the volume's CMK
/// has a new version or the volume was re-keyed; woken early by SIGUSR1.
pub fn rotation_task(
    backing: PathBuf,
    volume: std::sync::Arc<kmsfs_volume::Volume>,
    rate: Option<f64>,
    interval: Duration,
    wake: std::sync::mpsc::Receiver<()>,
) {
    let caller = Caller::current();
    loop {
        if let Ok(config) = VolumeConfig::load(&backing)
            && config.key_id != volume.key_id()
        {
            tracing::info!(key_id = %config.key_id, "volume re-keyed: new files use the new CMK");
            volume.set_key_id(&config.key_id);
        }
        match current_target(&volume, &caller) {
            Ok(target) => {
                let state = RotationState::load(&backing);
                if state.target.as_ref() != Some(&target) || state.status != "complete" {
                    tracing::info!(key_id = %target.key_id, version = target.version, "re-wrapping headers");
                    let done = rotate_volume(&backing, &volume, &caller, &target, rate, &mut ());
                    tracing::info!(
                        files = done.total,
                        rewrapped = done.rewrapped,
                        failed = done.failures.len(),
                        "re-wrap complete"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot check the volume's CMK for rotation"),
        }
        match wake.recv_timeout(interval) {
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[derive(Debug, Args)]
pub struct ReencryptArgs {
    pub backing_dir: PathBuf,
    /// Files to re-encrypt, relative to the backing directory (default: all).
    pub paths: Vec<PathBuf>,
}

/// `kmsfs reencrypt`: new data keys for files (every block rewritten). Only
/// on an unmounted volume: a daemon would keep using the old key.
pub fn reencrypt(args: &ReencryptArgs) -> Result<(), CliError> {
    let backing = backing_of(&args.backing_dir)?;
    if let Some(pid) = running_daemon(&backing) {
        return Err(failed(format!(
            "{} is mounted (daemon pid {pid}): unmount it before re-encrypting, the daemon holds the old data keys",
            backing.display()
        )));
    }
    let volume = open_volume(&backing)?;
    let caller = Caller::current();
    let files: Vec<PathBuf> = if args.paths.is_empty() {
        kmsfs_volume::rotate::list_files(&backing)
    } else {
        args.paths.iter().map(|p| backing.join(p)).collect()
    };
    let mut progress = Progress::new();
    progress.start(files.len() as u64);
    let mut failures = Vec::new();
    let mut bytes = 0u64;
    for path in &files {
        let outcome = kmsfs_volume::reencrypt::reencrypt_file(&volume, &caller, path);
        match &outcome {
            Ok(n) => bytes += n,
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
        progress.file_done(
            path,
            &outcome.map(|_| Outcome::Rewrapped).map_err(|e| match e {
                kmsfs_volume::reencrypt::ReencryptError::File(f) => f,
                other => FileError::Io(std::io::Error::other(other.to_string())),
            }),
        );
    }
    if let Some(bar) = &progress.bar {
        bar.finish_and_clear();
    }
    println!(
        "re-encrypted {} of {} files ({bytes} bytes) under new data keys",
        files.len() - failures.len(),
        files.len()
    );
    for f in &failures {
        println!("SKIPPED {f}");
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failed(format!(
            "{} files were not re-encrypted",
            failures.len()
        )))
    }
}
