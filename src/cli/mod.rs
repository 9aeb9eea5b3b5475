//! The command line: argument parsing and output only. All behaviour lives in
//! the library crates this module calls (kmsfs-kms, kmsfs-volume,
//! kmsfs-mount); their typed errors become a `CliError` here, which decides
//! the line printed and the exit code.

pub(crate) mod ebs;
pub(crate) mod endpoint;
pub(crate) mod iam;
pub(crate) mod kms;
pub(crate) mod ops;
pub(crate) mod rotate;
pub(crate) mod serve;
pub(crate) mod volume;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

use kmsfs_kms::KmsError;
use kmsfs_kms::clock::Clock;
use kmsfs_kms::local::LocalKms;
use kmsfs_kms::store::{RootSecret, default_store_path};
use kmsfs_mount::daemon::DaemonError;
use kmsfs_volume::{RootSecretSource, VolumeError};

/// Exit codes of the AWS CLI: 252 for bad usage, 254 for a service error.
pub(crate) const EXIT_USAGE: i32 = 252;
pub(crate) const EXIT_SERVICE: i32 = 254;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("An error occurred ({code}) when calling the {0} operation: {msg}", code = .1.code(), msg = .1.message())]
    Service(&'static str, KmsError),
    #[error("{0}")]
    Kms(#[from] KmsError),
    /// An EC2 operation of `kmsfs ebs` failed: the AWS CLI's wording, with
    /// the EC2 error code.
    #[error("An error occurred ({code}) when calling the {0} operation: {1}", code = .1.code())]
    Ec2(&'static str, kmsfs_ebs::EbsError),
    /// A volume operation failed (key service errors become `Kms`).
    #[error("{0}")]
    Volume(VolumeError),
    /// Mounting, unmounting or reaching the mount daemon failed (option
    /// errors become `Usage`, key service errors `Kms`).
    #[error("{0}")]
    Daemon(DaemonError),
    /// A file the command itself reads or writes.
    #[error("{}: {source}", path.display())]
    Path {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("cannot run {}: {source}", program.display())]
    Exec {
        program: PathBuf,
        source: std::io::Error,
    },
    /// What the command found (damaged files, files left as they were).
    #[error("{0}")]
    Failed(String),
}

/// Key service errors keep their AWS exception name and exit code.
impl From<VolumeError> for CliError {
    fn from(e: VolumeError) -> CliError {
        match e {
            VolumeError::Kms(e) => CliError::Kms(e),
            other => CliError::Volume(other),
        }
    }
}

impl From<DaemonError> for CliError {
    fn from(e: DaemonError) -> CliError {
        match e {
            DaemonError::BadOption(message) => CliError::Usage(message),
            DaemonError::Kms(e) => CliError::Kms(e),
            other => CliError::Daemon(other),
        }
    }
}

impl CliError {
    /// The error for an I/O failure on `path`.
    pub(crate) fn at_path(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
        move |source| CliError::Path {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Service(..) | CliError::Kms(_) | CliError::Ec2(..) => EXIT_SERVICE,
            CliError::Volume(_)
            | CliError::Daemon(_)
            | CliError::Path { .. }
            | CliError::Io(_)
            | CliError::Exec { .. }
            | CliError::Failed(_) => 1,
        }
    }

    /// The line printed on stderr: for KMS errors, always led by the AWS
    /// exception name so scripts can match on it.
    pub(crate) fn report(&self) -> String {
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
            KmsError::store(format!(
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
        .map_err(|e| KmsError::store(format!("cannot read a passphrase from the terminal: {e}")))
}

/// The command line's way to the embedded store's root secret: a new store
/// is protected by a passphrase when KMSFS_PASSPHRASE_FILE is set, otherwise
/// by a root key file beside it; an existing one asks on a terminal.
pub(crate) struct PassphrasePrompt;

impl RootSecretSource for PassphrasePrompt {
    fn root_secret(&self, store: &Path) -> RootSecret<'_> {
        let use_passphrase = std::env::var_os("KMSFS_PASSPHRASE_FILE").is_some()
            || (store.exists() && std::io::IsTerminal::is_terminal(&std::io::stdin()));
        if use_passphrase {
            RootSecret::Passphrase(&ask_passphrase)
        } else {
            RootSecret::KeyFile
        }
    }
}

/// Opens the embedded store named by --keystore / KMSFS_KEYSTORE or the
/// default path (see [`PassphrasePrompt`]).
pub(crate) fn open_local_kms(
    keystore: Option<PathBuf>,
    clock: Arc<dyn Clock>,
) -> Result<LocalKms, CliError> {
    let path = keystore.unwrap_or_else(default_store_path);
    Ok(LocalKms::open(
        &path,
        &PassphrasePrompt.root_secret(&path),
        clock,
    )?)
}
