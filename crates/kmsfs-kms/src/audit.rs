//! The audit trail: one JSON line per management or cryptographic call, like
//! a CloudTrail event. It records who (uid), what (operation), on which key
//! and key version, with which encryption context, and the outcome — never
//! key material or plaintext.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent<'a> {
    pub event_time: String,
    /// Absent for an IAM principal that is no local user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_uid: Option<u32>,
    /// The IAM user's ARN, for a request signed with an access key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_arn: Option<String>,
    pub event_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_context: Option<&'a BTreeMap<String, String>>,
    /// "Success" or the AWS exception name.
    pub outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

#[derive(Debug)]
pub struct AuditLog {
    path: Option<PathBuf>,
    /// Kept open: a long-running daemon records an event per file open and
    /// create, and reopening the log each time would triple the syscalls.
    /// Before each event one `lstat` of the path checks that it still names
    /// this file, so a log rotated by renaming is followed (see `record`).
    file: std::sync::Mutex<Option<OpenLog>>,
}

/// The open log and the identity it had when opened.
#[derive(Debug)]
struct OpenLog {
    file: std::fs::File,
    dev: u64,
    ino: u64,
}

impl OpenLog {
    /// O_APPEND so that each event is one atomic append; O_NOFOLLOW so that a
    /// symlink planted at the path does not redirect the log; mode 0600
    /// because events name keys and encryption contexts.
    fn open(path: &Path) -> std::io::Result<OpenLog> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(open_flags())
            .open(path)?;
        let meta = file.metadata()?;
        Ok(OpenLog {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Whether `path` still names this file: false once logrotate (or
    /// anyone) has renamed or removed it, or put another file there.
    fn is_at(&self, path: &Path) -> bool {
        std::fs::symlink_metadata(path).is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino)
    }
}

fn open_flags() -> i32 {
    (nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC).bits()
}

impl AuditLog {
    pub fn at(path: &Path) -> AuditLog {
        AuditLog {
            path: Some(path.to_path_buf()),
            file: std::sync::Mutex::new(None),
        }
    }

    pub fn disabled() -> AuditLog {
        AuditLog {
            path: None,
            file: std::sync::Mutex::new(None),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Appends one event. One `write` of a whole line on an O_APPEND file, so
    /// concurrent processes never interleave within a line. A failure to
    /// audit is reported on the log, but does not fail the call it records.
    pub fn record(&self, event: &AuditEvent) {
        let Some(path) = &self.path else { return };
        let mut line = match serde_json::to_vec(event) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize audit event");
                return;
            }
        };
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // Renamed away (logrotate without copytruncate) or removed: the next
        // event goes to a new file at the path, not into the old one.
        if file.as_ref().is_some_and(|open| !open.is_at(path)) {
            *file = None;
        }
        if file.is_none() {
            match OpenLog::open(path) {
                Ok(f) => *file = Some(f),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot open audit log");
                    return;
                }
            }
        }
        let outcome = match file.as_mut() {
            Some(f) => f.file.write_all(&line),
            None => Ok(()),
        };
        if let Err(e) = outcome {
            *file = None;
            tracing::error!(path = %path.display(), error = %e, "cannot write audit log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str) -> AuditEvent<'_> {
        AuditEvent {
            event_time: "2026-12-02T00:00:00Z".into(),
            caller_uid: Some(0),
            caller_arn: None,
            event_name: name,
            key_id: None,
            key_version: None,
            encryption_context: None,
            outcome: "Success",
            error_message: None,
        }
    }

    #[test]
    fn a_log_renamed_away_is_followed_by_a_new_file_at_the_path() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let rotated = dir.path().join("audit.log.1");
        let log = AuditLog::at(&path);
        log.record(&event("First"));
        std::fs::rename(&path, &rotated).unwrap();
        log.record(&event("Second"));
        let old = std::fs::read_to_string(&rotated).unwrap();
        let new = std::fs::read_to_string(&path).expect("a new log at the path");
        assert!(
            old.contains("\"First\"") && !old.contains("Second"),
            "{old}"
        );
        assert!(
            new.contains("\"Second\"") && !new.contains("First"),
            "{new}"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        // Removed (and not recreated by anyone else): recreated at the path.
        std::fs::remove_file(&path).unwrap();
        log.record(&event("Third"));
        let third = std::fs::read_to_string(&path).unwrap();
        assert!(third.contains("\"Third\""), "{third}");
    }

    #[test]
    fn a_symlink_at_the_path_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        AuditLog::at(&path).record(&event("Redirected"));
        assert_eq!(std::fs::read(&target).unwrap(), b"");
    }
}
