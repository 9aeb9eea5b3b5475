//! The audit trail: one JSON line per management or cryptographic call, like
//! a CloudTrail event. It records who (uid), what (operation), on which key
//! and key version, with which encryption context, and the outcome — never
//! key material or plaintext.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent<'a> {
    pub event_time: String,
    pub caller_uid: u32,
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
    /// (Rotate the log with copytruncate.)
    file: std::sync::Mutex<Option<std::fs::File>>,
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
        if file.is_none() {
            match OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(path)
            {
                Ok(f) => *file = Some(f),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot open audit log");
                    return;
                }
            }
        }
        let outcome = match file.as_mut() {
            Some(f) => f.write_all(&line),
            None => Ok(()),
        };
        if let Err(e) = outcome {
            *file = None;
            tracing::error!(path = %path.display(), error = %e, "cannot write audit log");
        }
    }
}
