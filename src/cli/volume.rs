//! `kmsfs init | mount | umount | fsck`: volumes on the command line.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{CliError, PassphrasePrompt};
use kmsfs_format::cipher::CipherSuite;
use kmsfs_mount::daemon::{self, Launch, Mount, MountOptions};
use kmsfs_volume::config::{DEFAULT_KEY_ALIAS, HeaderPlacement, KeyServiceConfig};
use kmsfs_volume::create::{NewVolume, VolumeSpec, create_volume, create_volume_if_empty};
use kmsfs_volume::fsck::check_volume;
use kmsfs_volume::{Sealing, VolumeConfig, VolumeError, check_sealed, open_volume};

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
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
    /// Store names, symlink targets and xattrs as they are (format version
    /// 1, the backing directory is the mount's root) instead of encrypting
    /// them (format version 2, the default).
    #[arg(long)]
    pub plaintext_names: bool,
    /// Use this KMS endpoint (e.g. `kmsfs kms serve`) instead of the embedded store.
    #[command(flatten)]
    pub endpoint: super::endpoint::EndpointArgs,
}

#[derive(Debug, Args)]
pub(crate) struct MountArgs {
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
pub(crate) struct UmountArgs {
    pub mountpoint: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct FsckArgs {
    pub backing_dir: PathBuf,
}

fn absolute(p: &Path) -> Result<PathBuf, CliError> {
    std::path::absolute(p).map_err(CliError::at_path(p))
}

fn keystore_path(keystore: Option<PathBuf>) -> Result<PathBuf, CliError> {
    absolute(&keystore.unwrap_or_else(kmsfs_kms::store::default_store_path))
}

/// Says that the default CMK was created, and where.
fn report_created_key(new: &NewVolume) {
    if !new.created_default_key {
        return;
    }
    let at = match new.config.key_service {
        KeyServiceConfig::Embedded { .. } => "",
        KeyServiceConfig::Endpoint { .. } | KeyServiceConfig::Aws { .. } => " at the endpoint",
    };
    eprintln!(
        "kmsfs: created CMK {} ({DEFAULT_KEY_ALIAS}){at}",
        new.config.key_id
    );
}

pub(crate) fn init(args: &InitArgs, keystore: Option<PathBuf>) -> Result<(), CliError> {
    let backing = absolute(&args.backing_dir)?;
    let key_service = match args.endpoint.key_service()? {
        Some(remote) => remote,
        None => KeyServiceConfig::Embedded {
            keystore: keystore_path(keystore)?,
        },
    };
    let spec = VolumeSpec {
        key_service,
        key_id: args.key_id.clone(),
        cipher: args.cipher,
        header: args.header,
        encrypted_names: !args.plaintext_names,
    };
    let new = create_volume(&backing, &spec, &PassphrasePrompt)?;
    report_created_key(&new);
    let config = &new.config;
    eprintln!(
        "kmsfs: initialised volume {} in {} (format version {}, {} names, {}, headers in {:?}, CMK {})",
        config.volume_id,
        backing.display(),
        config.format_version,
        if config.encrypted_names() {
            "encrypted"
        } else {
            "plaintext"
        },
        config.cipher,
        config.header,
        config.key_id
    );
    Ok(())
}

pub(crate) fn mount(args: &MountArgs, keystore: Option<PathBuf>) -> Result<(), CliError> {
    let backing = absolute(&args.backing_dir)?;
    let mountpoint = absolute(&args.mountpoint)?;
    daemon::check_mountpoint(&mountpoint)?;
    let options = MountOptions::parse(&args.options)?;
    if !VolumeConfig::exists_in(&backing) {
        let keystore = keystore_path(keystore)?;
        if let Some(new) = create_volume_if_empty(&backing, &keystore, &PassphrasePrompt)? {
            report_created_key(&new);
            eprintln!(
                "kmsfs: {} was empty: initialised a new volume {} with CMK {} ({DEFAULT_KEY_ALIAS})",
                backing.display(),
                new.config.volume_id,
                new.config.key_id
            );
        }
    }
    let volume = open_volume(&backing, &PassphrasePrompt)?;
    if let Sealing::Readable(mode) = check_sealed(&backing, &volume.config)? {
        eprintln!(
            "kmsfs: warning: {} has mode {mode:04o}: other users can list the encrypted tree \
             (its shape, sizes and times); chmod 700 it to seal it",
            backing.display()
        );
    }
    // Version 2: the name key unwraps now, so that a refusal (a disabled
    // CMK, a policy) is reported here rather than by the daemon's log.
    volume.names().map_err(VolumeError::from)?;
    let launch = if args.foreground {
        Launch::Foreground
    } else {
        Launch::Background {
            log_file: args.log_file.clone(),
        }
    };
    let mount = Mount {
        backing,
        mountpoint,
        options,
        threads: args.threads,
    };
    Ok(daemon::run(mount, volume, launch)?)
}

pub(crate) fn umount(args: &UmountArgs) -> Result<(), CliError> {
    Ok(daemon::unmount(&absolute(&args.mountpoint)?)?)
}

pub(crate) fn fsck(args: &FsckArgs) -> Result<(), CliError> {
    let backing = absolute(&args.backing_dir)?;
    let volume = open_volume(&backing, &PassphrasePrompt)?;
    let report = check_volume(&backing, &volume).map_err(CliError::at_path(&backing))?;
    for d in &report.damaged {
        println!("DAMAGED {}: {}", d.path.display(), d.what);
    }
    for d in &report.bad_names {
        println!("BAD NAME {}: {}", d.path.display(), d.what);
    }
    println!(
        "checked {} files: {} damaged",
        report.checked,
        report.damaged.len()
    );
    if volume.config.encrypted_names() {
        println!(
            "checked the names of {} directories: {} bad entries",
            report.directories,
            report.bad_names.len()
        );
    }
    if report.is_clean() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{} damaged files, {} bad entries",
            report.damaged.len(),
            report.bad_names.len()
        )))
    }
}
