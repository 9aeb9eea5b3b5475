//! The command line: argument parsing and output only. All behaviour lives in
//! the library layers (kms, envelope, fs) this module calls.

pub(crate) use crate::awscli;
pub mod endpoint;
pub mod iam;
pub mod kms;
pub mod ops;
pub mod rotate;
pub mod serve;
pub mod volume;

use std::path::PathBuf;
use std::sync::Arc;

use zeroize::Zeroizing;

use kmsfs_kms::KmsError;
use kmsfs_kms::clock::Clock;
use kmsfs_kms::local::LocalKms;
use kmsfs_kms::store::{RootSecret, default_store_path};

/// Exit codes of the AWS CLI: 252 for bad usage, 254 for a service error.
pub const EXIT_USAGE: i32 = 252;
pub const EXIT_SERVICE: i32 = 254;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("An error occurred ({code}) when calling the {0} operation: {msg}", code = .1.code(), msg = .1.message())]
    Service(&'static str, KmsError),
    #[error("{0}")]
    Kms(#[from] KmsError),
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Service(..) | CliError::Kms(_) => EXIT_SERVICE,
            CliError::Failed(_) => 1,
        }
    }

    /// The line printed on stderr: for KMS errors, always led by the AWS
    /// exception name so scripts can match on it.
    pub fn report(&self) -> String {
        match self {
            CliError::Kms(e) => format!("{}: {}", e.code(), e.message()),
            other => other.to_string(),
        }
    }
}

/// Reads the passphrase from KMSFS_PASSPHRASE_FILE, or asks on the terminal.
fn ask_passphrase() -> kmsfs_kms::error::Result<Zeroizing<String>> {
    if let Some(path) = std::env::var_os("KMSFS_PASSPHRASE_FILE") {
        let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
            KmsError::Store(format!(
                "cannot read KMSFS_PASSPHRASE_FILE {}: {e}",
                PathBuf::from(&path).display()
            ))
        })?);
        let trimmed = text.trim_end_matches(['\n', '\r']);
        if trimmed.is_empty() {
            return Err(KmsError::Store("the passphrase file is empty".into()));
        }
        return Ok(Zeroizing::new(trimmed.to_string()));
    }
    rpassword::prompt_password("kmsfs key store passphrase: ")
        .map(Zeroizing::new)
        .map_err(|e| KmsError::Store(format!("cannot read a passphrase from the terminal: {e}")))
}

/// Opens the embedded store named by --keystore / KMSFS_KEYSTORE or the
/// default path. A new store is protected by a passphrase when
/// KMSFS_PASSPHRASE_FILE is set, otherwise by a root key file beside it.
pub fn open_local_kms(
    keystore: Option<PathBuf>,
    clock: Arc<dyn Clock>,
) -> Result<LocalKms, CliError> {
    let path = keystore.unwrap_or_else(default_store_path);
    let use_passphrase = std::env::var_os("KMSFS_PASSPHRASE_FILE").is_some()
        || (path.exists() && std::io::IsTerminal::is_terminal(&std::io::stdin()));
    let secret = if use_passphrase {
        RootSecret::Passphrase(&ask_passphrase)
    } else {
        RootSecret::KeyFile
    };
    Ok(LocalKms::open(&path, &secret, clock)?)
}

/// Tells systemd (Type=notify) about our state, if it is listening.
pub fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = std::path::PathBuf::from(path);
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let outcome = if let Some(abstract_name) = path.to_str().and_then(|s| s.strip_prefix('@')) {
        <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            abstract_name.as_bytes(),
        )
        .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}
