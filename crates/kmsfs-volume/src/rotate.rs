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
//!
//! The walk and every open go through `backing` (directory descriptors and
//! single names): a symlink planted in the tree is never followed, and the
//! state file is never written through one.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::backing::{Dir, EntryKind};
use super::config::CONFIG_NAME;
use super::file::{FileError, Volume};
pub use super::throttle::Throttle;
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
    /// Failures beyond the first [`MAX_LISTED_FAILURES`], counted only.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures_not_listed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A rotation state is a few hundred bytes per failure listed; a file larger
/// than this was not written by kmsfs and is not read.
const MAX_STATE_LEN: u64 = 4 << 20;
/// At most this many failures are listed in the state file (the count of
/// the others is kept): a volume of damaged files must not make it huge.
pub const MAX_LISTED_FAILURES: usize = 1000;

impl RotationState {
    /// The last recorded state, or the default (never run) if there is none
    /// or it cannot be believed. The state is a record for `kmsfs status`,
    /// never an instruction: what is done is decided by reading headers.
    pub fn load(backing: &Path) -> RotationState {
        Dir::open_root(backing)
            .map_err(crate::trusted::UntrustedFile::from)
            .and_then(|root| Self::load_from(&root))
            .unwrap_or_else(|e| {
                if !e.is_not_found() {
                    tracing::warn!(error = %e, "ignoring the rotation state file");
                }
                RotationState::default()
            })
    }

    fn load_from(root: &Dir) -> Result<RotationState, crate::trusted::UntrustedFile> {
        let bytes = crate::trusted::read_trusted(root, OsStr::new(STATE_NAME), MAX_STATE_LEN)?;
        let text = String::from_utf8(bytes).map_err(|e| {
            crate::trusted::UntrustedFile::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                e,
            ))
        })?;
        Self::parse(&text).map_err(|e| crate::trusted::UntrustedFile::Io(std::io::Error::other(e)))
    }

    /// Parses the text of a state file (what `load` does after reading it).
    pub fn parse(text: &str) -> Result<RotationState, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Records a failure; past [`MAX_LISTED_FAILURES`] only the count grows.
    pub fn record_failure(&mut self, failure: Failure) {
        if self.failures.len() < MAX_LISTED_FAILURES {
            self.failures.push(failure);
        } else {
            self.failures_not_listed += 1;
        }
    }

    /// How many files failed, listed or not.
    pub fn failed(&self) -> u64 {
        self.failures.len() as u64 + self.failures_not_listed
    }

    /// Written atomically (temporary file + rename); losing an update costs
    /// only a re-scan, so no fsync.
    pub fn save(&self, backing: &Path) -> std::io::Result<()> {
        self.save_to(&Dir::open_root(backing)?)
    }

    fn save_to(&self, root: &Dir) -> std::io::Result<()> {
        let tmp = format!("{STATE_NAME}.tmp.{}", std::process::id());
        let tmp = OsStr::new(&tmp);
        let text = serde_json::to_string_pretty(self).unwrap_or_default() + "\n";
        // A stale temporary file of an earlier process with our pid.
        let _ = root.unlink(tmp);
        let written = root.create_file(tmp, 0o644).and_then(|mut f| {
            // Not a file others may change: explicit mode, whatever the
            // umask (`trusted` refuses group/other-writable state).
            f.set_permissions(
                <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644),
            )?;
            f.write_all(text.as_bytes())
        });
        if let Err(e) = written {
            let _ = root.unlink(tmp);
            return Err(e);
        }
        root.rename(
            tmp,
            root,
            OsStr::new(STATE_NAME),
            nix::fcntl::RenameFlags::empty(),
        )
    }
}

pub fn is_reserved_name(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with(RESERVED_PREFIX) || name == CONFIG_NAME
}

/// Every regular file below `root` (the volume's tree), as relative stored
/// paths (sorted). The walk descends one directory descriptor at a time and
/// never follows a symlink; unreadable directories are skipped. With
/// `encrypted_names`, kmsfs's own files in each directory (the directory id,
/// long-name side files) are not counted: they hold no encrypted content.
pub fn list_relative(root: &Dir, encrypted_names: bool) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(top) = root.duplicate() else {
        return files;
    };
    let mut stack = vec![(top, PathBuf::new())];
    while let Some((dir, rel)) = stack.pop() {
        let Ok(entries) = dir.entries() else {
            continue;
        };
        for entry in entries {
            if !encrypted_names && rel.as_os_str().is_empty() && is_reserved_name(&entry.name) {
                continue;
            }
            if encrypted_names && !holds_content(&entry.name) {
                continue;
            }
            let kind = match entry.kind {
                EntryKind::Unknown => match dir.open_node(&entry.name) {
                    Ok(node) if node.opened_metadata().is_dir() => EntryKind::Dir,
                    Ok(node) if node.opened_metadata().is_file() => EntryKind::File,
                    _ => continue,
                },
                known => known,
            };
            match kind {
                EntryKind::Dir => {
                    if let Ok(sub) = dir.open_dir(&entry.name) {
                        stack.push((sub, rel.join(&entry.name)));
                    }
                }
                EntryKind::File => files.push(rel.join(&entry.name)),
                _ => {}
            }
        }
    }
    files.sort();
    files
}

/// Whether an entry of a version 2 tree can be a user's file.
fn holds_content(name: &OsStr) -> bool {
    use kmsfs_format::names::{EntryClass, classify};
    use std::os::unix::ffi::OsStrExt;
    !matches!(
        classify(name.as_bytes()),
        EntryClass::DirId | EntryClass::LongSide
    )
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

/// Re-wraps the data key of the file `rel` below `root` to `target`, if it
/// is not there yet.
pub fn rewrap_file(
    volume: &Volume,
    caller: &Caller,
    root: &Dir,
    rel: &Path,
    target: &Target,
) -> Result<Outcome, FileError> {
    let file = match root.open_file_below(rel, true) {
        Ok((_, f)) => f,
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

/// The volume's name key follows its files: re-wrapped under `target`
/// (ReEncrypt, same context; the key itself, and so every stored name, stays
/// the same), and the config saved atomically. True if it changed.
pub fn rewrap_name_key(
    backing: &Path,
    volume: &Volume,
    caller: &Caller,
    target: &Target,
) -> Result<bool, crate::VolumeError> {
    use base64::Engine;
    let mut config = crate::VolumeConfig::load(backing)?;
    let Some(wrapped) = &config.name_key else {
        return Ok(false);
    };
    if wrapped.key_id == target.key_id && wrapped.key_version == target.version {
        return Ok(false);
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let blob = engine.decode(&wrapped.blob).map_err(|_| {
        FileError::Unwrap(KmsError::InvalidCiphertext(
            "the volume config's name_key.blob is not base64".into(),
        ))
    })?;
    let ctx = crate::file::name_key_context(&config.volume_id);
    let rewrapped = volume
        .kms
        .re_encrypt(caller, &blob, &ctx, &target.key_id)
        .map_err(FileError::from_kms)?;
    config.name_key = Some(super::config::WrappedNameKey {
        key_id: rewrapped.key_arn,
        key_version: rewrapped.key_version,
        blob: engine.encode(&rewrapped.ciphertext_blob),
    });
    config.save(backing)?;
    Ok(true)
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
    let opened = Dir::open_root(backing)
        .and_then(|control| Ok((volume.config.open_tree(backing)?, control)));
    let (root, control) = match opened {
        Ok(dirs) => dirs,
        Err(e) => {
            return RotationState {
                target: Some(target.clone()),
                status: "complete".into(),
                failures: vec![Failure {
                    path: PathBuf::new(),
                    reason: format!("cannot open the backing directory: {e}"),
                }],
                ..RotationState::default()
            };
        }
    };
    let mut failures = Vec::new();
    if let Err(e) = rewrap_name_key(backing, volume, caller, target) {
        tracing::warn!(error = %e, "cannot re-wrap the volume's name key; it stays as it was");
        failures.push(Failure {
            path: PathBuf::from(super::config::CONFIG_NAME),
            reason: e.to_string(),
        });
    }
    let files = list_relative(&root, volume.config.encrypted_names());
    let mut state = RotationState {
        failures,
        target: Some(target.clone()),
        status: "running".into(),
        started_at: Some(now_iso()),
        total: files.len() as u64,
        ..RotationState::default()
    };
    let _ = state.save_to(&control);
    observer.start(state.total);
    let mut throttle = Throttle::new(rate);
    let mut last_save = Instant::now();
    for rel in &files {
        let outcome = rewrap_file(volume, caller, &root, rel, target);
        let path = volume.config.tree_path(backing).join(rel);
        match &outcome {
            Ok(Outcome::Rewrapped) => {
                state.rewrapped += 1;
                throttle.tick();
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot re-wrap; file left as it was");
                state.record_failure(Failure {
                    path: rel.clone(),
                    reason: e.to_string(),
                });
            }
        }
        state.done += 1;
        observer.file_done(&path, &outcome);
        if last_save.elapsed() > Duration::from_secs(1) {
            let _ = state.save_to(&control);
            last_save = Instant::now();
        }
    }
    state.status = "complete".into();
    state.completed_at = Some(now_iso());
    let _ = state.save_to(&control);
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
    let root = match volume.config.open_tree(backing) {
        Ok(root) => root,
        Err(e) => {
            unreadable.push(Failure {
                path: PathBuf::new(),
                reason: e.to_string(),
            });
            return (counts, unreadable);
        }
    };
    for rel in list_relative(&root, volume.config.encrypted_names()) {
        let header = root
            .open_file_below(&rel, false)
            .map_err(FileError::from)
            .and_then(|(_, f)| volume.read_header(&f));
        match header {
            Ok(Some(h)) => {
                if let Some(k) = h.active() {
                    *counts.entry((k.key_id.clone(), k.key_version)).or_insert(0) += 1;
                }
            }
            Ok(None) => {}
            Err(e) => unreadable.push(Failure {
                path: rel,
                reason: e.to_string(),
            }),
        }
    }
    (counts, unreadable)
}
