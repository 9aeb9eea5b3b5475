//! Re-wrapping: moving every file's wrapped data key to the current version
//! of the volume's CMK (after a rotation) or to another CMK (after a re-key),
//! by rewriting one 496-byte header slot per file. The data key and every
//! content block stay byte-identical — the point of envelope encryption.
//!
//! Crash safety comes from the header format: the new wrapped key goes into
//! the slot that is *not* active, with generation + 1, and is fsynced; until
//! that write is complete and valid (CRC), readers keep using the old slot.
//! A killed rotation therefore leaves every file readable, and the next run
//! simply finds the files not yet at the target and does them.
//!
//! Shared by the mount daemon's background task and `kmsfs rotate`.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::config::CONFIG_NAME;
use super::file::{FileError, Volume};
use kmsfs_format::header::FileHeader;
use kmsfs_kms::{Caller, KmsError};

/// Names in the backing root that belong to kmsfs, not to the user.
pub const RESERVED_PREFIX: &str = ".kmsfs.";
/// Progress and outcome of the last rotation (JSON, not secret).
pub const STATE_NAME: &str = ".kmsfs.rotation.json";

/// Where every header should end up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub key_id: String,
    pub version: u32,
}

/// What happened to one file.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Already wrapped by the target (or no header yet: nothing to wrap).
    Current,
    Rewrapped,
    /// Gone before we got to it (renamed or unlinked meanwhile).
    Vanished,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub path: PathBuf,
    pub reason: String,
}

/// The persisted state of a rotation: where it is going, how far it got.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RotationState {
    pub target: Option<Target>,
    /// "running" or "complete".
    pub status: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub total: u64,
    pub done: u64,
    pub rewrapped: u64,
    pub failures: Vec<Failure>,
}

impl RotationState {
    pub fn load(backing: &Path) -> RotationState {
        fs::read_to_string(backing.join(STATE_NAME))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Written atomically (temporary file + rename); losing an update costs
    /// only a re-scan, so no fsync.
    pub fn save(&self, backing: &Path) -> std::io::Result<()> {
        let tmp = backing.join(format!("{STATE_NAME}.tmp.{}", std::process::id()));
        let text = serde_json::to_string_pretty(self).unwrap_or_default() + "\n";
        fs::write(&tmp, text)?;
        fs::rename(&tmp, backing.join(STATE_NAME))
    }
}

pub fn is_reserved_name(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with(RESERVED_PREFIX) || name == CONFIG_NAME
}

/// Every regular file of the volume, relative order stable (sorted).
pub fn list_files(backing: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![backing.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if dir == backing && is_reserved_name(&entry.file_name()) {
                continue;
            }
            match entry.file_type() {
                Ok(ft) if ft.is_dir() => stack.push(entry.path()),
                Ok(ft) if ft.is_file() => files.push(entry.path()),
                _ => {}
            }
        }
    }
    files.sort();
    files
}

/// The target of a rotation: the current version of the volume's CMK.
pub fn current_target(volume: &Volume, caller: &Caller) -> Result<Target, KmsError> {
    let d = volume.kms.describe_key(caller, &volume.key_id())?;
    if d.state != kmsfs_kms::KeyState::Enabled {
        return Err(KmsError::Disabled(format!(
            "{} is {}: files cannot be re-wrapped under it",
            d.key_arn,
            d.state.as_str()
        )));
    }
    let version = d
        .current_version
        .ok_or_else(|| KmsError::InvalidState(format!("{} has no key material yet", d.key_arn)))?;
    Ok(Target {
        key_id: d.key_arn,
        version,
    })
}

fn at_target(header: &FileHeader, target: &Target) -> bool {
    header
        .active()
        .is_some_and(|k| k.key_id == target.key_id && k.key_version == target.version)
}

/// Re-wraps one file's data key to `target`, if it is not there yet.
pub fn rewrap_file(
    volume: &Volume,
    caller: &Caller,
    path: &Path,
    target: &Target,
) -> Result<Outcome, FileError> {
    let file: File = match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Outcome::Vanished),
        Err(e) => return Err(e.into()),
    };
    let Some(header) = volume.read_header(&file)? else {
        return Ok(Outcome::Current);
    };
    if at_target(&header, target) {
        return Ok(Outcome::Current);
    }
    let active = header.active().ok_or(FileError::Header(
        kmsfs_format::header::HeaderError::NoValidSlot,
    ))?;
    let ctx = volume.context(&header.file_id, header.suite);
    // The key service unwraps with the old CMK version and wraps with the
    // target in one call; the data key never leaves it.
    let wrapped = volume
        .kms
        .re_encrypt(caller, &active.blob, &ctx, &target.key_id)
        .map_err(|e| match e {
            KmsError::InvalidCiphertext(_) => FileError::Unwrap(e),
            other => FileError::Denied(other),
        })?;
    let (next, slot) = header.with_rewrapped(
        &wrapped.key_arn,
        wrapped.key_version,
        &wrapped.ciphertext_blob,
    )?;
    volume.write_header_slot(&file, &next, slot)?;
    file.sync_data()?;
    Ok(Outcome::Rewrapped)
}

/// Paces a loop to at most `rate` iterations per second (None: unpaced).
pub struct Throttle {
    rate: Option<f64>,
    start: Instant,
    count: u64,
}

impl Throttle {
    pub fn new(rate: Option<f64>) -> Throttle {
        Throttle {
            rate: rate.filter(|r| *r > 0.0),
            start: Instant::now(),
            count: 0,
        }
    }

    pub fn tick(&mut self) {
        self.count += 1;
        if let Some(rate) = self.rate {
            let due = Duration::from_secs_f64(self.count as f64 / rate);
            let elapsed = self.start.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
    }
}

/// Observes a rotation as it runs (progress bar, log lines, state file).
pub trait Observer {
    fn start(&mut self, _total: u64) {}
    fn file_done(&mut self, _path: &Path, _outcome: &Result<Outcome, FileError>) {}
}

impl Observer for () {}

/// Re-wraps every file of the volume to `target`. Files that cannot be
/// re-wrapped (damaged header, key refused) are skipped, counted and
/// reported in the returned state — never altered.
pub fn rotate_volume(
    backing: &Path,
    volume: &Volume,
    caller: &Caller,
    target: &Target,
    rate: Option<f64>,
    observer: &mut dyn Observer,
) -> RotationState {
    let files = list_files(backing);
    let mut state = RotationState {
        target: Some(target.clone()),
        status: "running".into(),
        started_at: Some(now_iso()),
        total: files.len() as u64,
        ..RotationState::default()
    };
    let _ = state.save(backing);
    observer.start(state.total);
    let mut throttle = Throttle::new(rate);
    let mut last_save = Instant::now();
    for path in &files {
        let outcome = rewrap_file(volume, caller, path, target);
        match &outcome {
            Ok(Outcome::Rewrapped) => {
                state.rewrapped += 1;
                throttle.tick();
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot re-wrap; file left as it was");
                state.failures.push(Failure {
                    path: path.strip_prefix(backing).unwrap_or(path).to_path_buf(),
                    reason: e.to_string(),
                });
            }
        }
        state.done += 1;
        observer.file_done(path, &outcome);
        if last_save.elapsed() > Duration::from_secs(1) {
            let _ = state.save(backing);
            last_save = Instant::now();
        }
    }
    state.status = "complete".into();
    state.completed_at = Some(now_iso());
    let _ = state.save(backing);
    state
}

pub fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// How many files each CMK version wraps, for `kmsfs status`.
pub fn census(
    volume: &Volume,
    backing: &Path,
) -> (std::collections::BTreeMap<(String, u32), u64>, Vec<Failure>) {
    let mut counts = std::collections::BTreeMap::new();
    let mut unreadable = Vec::new();
    for path in list_files(backing) {
        let header = File::open(&path)
            .map_err(FileError::from)
            .and_then(|f| volume.read_header(&f));
        match header {
            Ok(Some(h)) => {
                if let Some(k) = h.active() {
                    *counts.entry((k.key_id.clone(), k.key_version)).or_insert(0) += 1;
                }
            }
            Ok(None) => {}
            Err(e) => unreadable.push(Failure {
                path: path.strip_prefix(backing).unwrap_or(&path).to_path_buf(),
                reason: e.to_string(),
            }),
        }
    }
    (counts, unreadable)
}
