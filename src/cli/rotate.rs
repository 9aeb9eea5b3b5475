//! `kmsfs rotate | set-key | status | reencrypt`: moving a volume's headers
//! to a new CMK version or another CMK, and seeing where it stands.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;

use super::{CliError, PassphrasePrompt};
use kmsfs_kms::Caller;
use kmsfs_mount::daemon::{RunningDaemon, backing_of, mountpoint_of};
use kmsfs_volume::reencrypt::reencrypt_volume;
use kmsfs_volume::rekey::set_volume_key;
use kmsfs_volume::rotate::{
    Observer, Outcome, RotationState, census, current_target, rotate_volume,
};
use kmsfs_volume::{FileError, open_volume};

#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    pub backing_dir: PathBuf,
    /// Re-key the volume to this CMK first (as `set-key`), then move every file.
    #[arg(long)]
    pub to_key_id: Option<String>,
    /// At most this many files re-wrapped per second (default: unthrottled).
    #[arg(long)]
    pub rate: Option<f64>,
}

#[derive(Debug, Args)]
pub(crate) struct SetKeyArgs {
    pub backing_dir: PathBuf,
    /// The CMK new files use from now on; existing files move on the next rotation.
    #[arg(long)]
    pub key_id: String,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The backing directory, or the mount point of a mounted volume.
    pub path: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn set_key(args: &SetKeyArgs) -> Result<(), CliError> {
    let backing = backing_of(&args.backing_dir)?;
    let arn = set_volume_key(&backing, &args.key_id, &PassphrasePrompt)?;
    eprintln!(
        "kmsfs: new files in {} are wrapped by {arn}",
        backing.display()
    );
    if let Some(daemon) = RunningDaemon::find(&backing) {
        daemon.request_rotation()?;
        eprintln!(
            "kmsfs: the mount daemon (pid {}) is re-wrapping existing files; see `kmsfs status`",
            daemon.pid()
        );
    } else {
        eprintln!(
            "kmsfs: run `kmsfs rotate {}` (or mount it) to move existing files",
            backing.display()
        );
    }
    Ok(())
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

pub(crate) fn rotate(args: &RotateArgs) -> Result<(), CliError> {
    let backing = backing_of(&args.backing_dir)?;
    if let Some(key) = &args.to_key_id {
        let arn = set_volume_key(&backing, key, &PassphrasePrompt)?;
        eprintln!("kmsfs: volume re-keyed to {arn}");
    }
    if let Some(daemon) = RunningDaemon::find(&backing) {
        daemon.request_rotation()?;
        eprintln!(
            "kmsfs: {} is mounted: asked its daemon (pid {}) to re-wrap now; follow with `kmsfs status {}`",
            backing.display(),
            daemon.pid(),
            backing.display()
        );
        return Ok(());
    }
    let volume = open_volume(&backing, &PassphrasePrompt)?;
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
        state.failed()
    );
    println!("{:.0} files/s", state.total as f64 / secs.max(1e-9));
    for f in &state.failures {
        println!(
            "SKIPPED {}: {}",
            printable(&f.path.to_string_lossy()),
            printable(&f.reason)
        );
    }
    if state.failed() == 0 {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{} files could not be re-wrapped (left as they were)",
            state.failed()
        )))
    }
}

pub(crate) fn status(args: &StatusArgs) -> Result<(), CliError> {
    let backing = backing_of(&args.path)?;
    let volume = open_volume(&backing, &PassphrasePrompt)?;
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
        "Daemon": RunningDaemon::find(&backing).map(|d| d.pid()),
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
        println!(
            "  UNREADABLE {}: {}",
            printable(&f.path.to_string_lossy()),
            printable(&f.reason)
        );
    }
    // The state file is the record of the last run, shown as it says (with
    // anything that is not text escaped); the counts above come from the
    // headers themselves.
    match state.status.as_str() {
        "" => println!("rotation: never run"),
        s => println!(
            "rotation (last recorded): {}, {}/{} files, {} re-wrapped, last completed {}, {} failed",
            printable(s),
            state.done,
            state.total,
            state.rewrapped,
            printable(state.completed_at.as_deref().unwrap_or("never")),
            state.failed()
        ),
    }
    for f in &state.failures {
        println!(
            "  FAILED {}: {}",
            printable(&f.path.to_string_lossy()),
            printable(&f.reason)
        );
    }
    Ok(())
}

#[derive(Debug, Args)]
pub(crate) struct ReencryptArgs {
    pub backing_dir: PathBuf,
    /// Files to re-encrypt, relative to the backing directory (default: all).
    pub paths: Vec<PathBuf>,
}

/// `kmsfs reencrypt`: new data keys for files (every block rewritten). Only
/// on an unmounted volume: a daemon would keep using the old key.
pub(crate) fn reencrypt(args: &ReencryptArgs) -> Result<(), CliError> {
    let backing = backing_of(&args.backing_dir)?;
    if let Some(pid) = RunningDaemon::find(&backing).map(|d| d.pid()) {
        return Err(CliError::Failed(format!(
            "{} is mounted (daemon pid {pid}): unmount it before re-encrypting, the daemon holds the old data keys",
            backing.display()
        )));
    }
    // Also by the kernel's mount table, in case the daemon cannot be reached.
    if let Some(at) = mountpoint_of(&backing) {
        return Err(CliError::Failed(format!(
            "{} is mounted at {}: unmount it before re-encrypting, the daemon holds the old data keys",
            backing.display(),
            at.display()
        )));
    }
    let volume = open_volume(&backing, &PassphrasePrompt)?;
    let caller = Caller::current();
    let mut progress = Progress::new();
    let report = reencrypt_volume(&backing, &volume, &caller, &args.paths, &mut progress)
        .map_err(CliError::at_path(&backing))?;
    if let Some(bar) = &progress.bar {
        bar.finish_and_clear();
    }
    println!(
        "re-encrypted {} of {} files ({} bytes) under new data keys",
        report.files - report.failures.len(),
        report.files,
        report.bytes
    );
    for (rel, why) in &report.failures {
        println!(
            "SKIPPED {}: {why}",
            volume.config.tree_path(&backing).join(rel).display()
        );
    }
    if report.failures.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{} files were not re-encrypted",
            report.failures.len()
        )))
    }
}

/// `text` with control characters (terminal escapes among them) shown as
/// escapes: what is printed comes from files a volume's users can influence.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain näme"), "plain näme");
        assert_eq!(printable("a\u{1b}[2Jb\nc\u{7}"), "a\\u{1b}[2Jb\\nc\\u{7}");
    }
}
