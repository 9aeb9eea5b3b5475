//! Operations glue: the mount(8) helper (`mount.fuse.kmsfs`), shell
//! completions and man pages generated from the clap definition, and the
//! check that tells logging whether stderr is the systemd journal.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::Args;

use super::CliError;

/// The name mount(8) runs for `-t fuse.kmsfs` (and fstab type `fuse.kmsfs`).
pub(crate) const MOUNT_HELPER_NAME: &str = "mount.fuse.kmsfs";

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to write a completion script for.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Write one page per command (kmsfs.1, kmsfs-mount.1, …) into this
    /// directory instead of printing the top-level page on stdout.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// Writes the completion script for `args.shell` on stdout.
pub(crate) fn completions(args: &CompletionsArgs, mut cmd: clap::Command) -> Result<(), CliError> {
    let name = cmd.get_name().to_string();
    clap_complete::generate(args.shell, &mut cmd, name, &mut std::io::stdout());
    Ok(())
}

/// Prints the man page (roff) on stdout, or writes one page per command.
pub(crate) fn man(args: &ManArgs, cmd: clap::Command) -> Result<(), CliError> {
    match &args.out_dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            use std::io::Write;
            Ok(std::io::stdout().write_all(&out)?)
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(CliError::at_path(dir))?;
            // Subcommands of `kms` (the whole AWS-style surface) stay on the
            // kmsfs-kms page: one level of pages per command.
            let mut cmd = cmd;
            cmd.build();
            write_page(dir, &cmd, cmd.get_name())?;
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                // After build(), a subcommand's display name is `kmsfs-mount`.
                let name = sub.get_display_name().unwrap_or(sub.get_name());
                write_page(dir, sub, name)?;
            }
            Ok(())
        }
    }
}

fn write_page(dir: &Path, cmd: &clap::Command, name: &str) -> Result<(), CliError> {
    let path = dir.join(format!("{name}.1"));
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    std::fs::write(&path, out).map_err(CliError::at_path(&path))
}

/// True when this process was started under the name of the mount helper.
pub(crate) fn invoked_as_mount_helper(argv0: &OsStr) -> bool {
    Path::new(argv0)
        .file_name()
        .is_some_and(|n| n == MOUNT_HELPER_NAME)
}

/// What the helper was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HelperAction {
    /// `-f`: pretend (mount(8) --fake); do nothing.
    Fake,
    /// Run `kmsfs` with these arguments (after the program name).
    Run(Vec<OsString>),
}

/// Translates the mount(8) helper convention,
/// `mount.fuse.kmsfs SOURCE TARGET [-sfnv] [-o OPTS] [-t TYPE]`, into the
/// arguments of `kmsfs mount SOURCE TARGET -o OPTS` (daemonised, as mount(8)
/// expects the helper to return once the filesystem is mounted).
///
/// The option `log_file=PATH` (fstab has no other way to name it) becomes
/// `--log-file PATH`; `-v` raises the daemon's log level to debug.
pub(crate) fn mount_helper_args(args: &[OsString]) -> Result<HelperAction, CliError> {
    let usage = || {
        CliError::Usage(format!(
            "usage: {MOUNT_HELPER_NAME} SOURCE TARGET [-sfnv] [-o OPTIONS] [-t TYPE]"
        ))
    };
    let mut positional = Vec::new();
    let mut options: Vec<String> = Vec::new();
    let mut fake = false;
    let mut verbose = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(s) = arg.to_str().filter(|s| s.starts_with('-') && s.len() > 1) else {
            positional.push(arg.clone());
            continue;
        };
        // Clustered short flags (`-nv`), or an option with its value attached
        // (`-oro`) or in the next argument (`-o ro`).
        for (i, c) in s[1..].char_indices() {
            match c {
                's' | 'n' => {} // sloppy; no mtab: nothing to do for us
                'f' => fake = true,
                'v' => verbose = true,
                'o' | 't' | 'N' => {
                    let rest = &s[1 + i + 1..];
                    let value = if rest.is_empty() {
                        it.next()
                            .and_then(|v| v.to_str())
                            .ok_or_else(usage)?
                            .to_string()
                    } else {
                        rest.to_string()
                    };
                    match c {
                        'o' => options.extend(value.split(',').map(str::to_string)),
                        't' => {
                            if value != "fuse.kmsfs" && value != "kmsfs" {
                                return Err(CliError::Usage(format!(
                                    "{MOUNT_HELPER_NAME} mounts type fuse.kmsfs, not {value}"
                                )));
                            }
                        }
                        _ => {
                            return Err(CliError::Usage(
                                "mounting in another namespace (-N) is not supported".into(),
                            ));
                        }
                    }
                    break;
                }
                other => return Err(CliError::Usage(format!("unknown flag -{other}"))),
            }
        }
    }
    let [source, target] = positional.as_slice() else {
        return Err(usage());
    };
    if fake {
        return Ok(HelperAction::Fake);
    }
    let mut out: Vec<OsString> = Vec::new();
    if verbose {
        out.extend(["--log-level".into(), "debug".into()]);
    }
    out.extend(["mount".into(), source.clone(), target.clone()]);
    let mut fs_options = Vec::new();
    for opt in options.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
        if let Some(path) = opt.strip_prefix("log_file=") {
            out.extend(["--log-file".into(), path.into()]);
        } else {
            fs_options.push(opt);
        }
    }
    if !fs_options.is_empty() {
        out.extend(["-o".into(), fs_options.join(",").into()]);
    }
    Ok(HelperAction::Run(out))
}

/// Runs as the mount(8) helper: re-executes this binary as
/// `kmsfs mount SOURCE TARGET -o OPTS`, which returns once the filesystem
/// answers (or fails, saying why). Returns only on error.
pub(crate) fn mount_helper(args: &[OsString]) -> Result<(), CliError> {
    use std::os::unix::process::CommandExt;
    match mount_helper_args(args)? {
        HelperAction::Fake => Ok(()),
        HelperAction::Run(kmsfs_args) => {
            let exe = std::env::current_exe()?;
            let err = std::process::Command::new(&exe).args(kmsfs_args).exec();
            Err(CliError::Exec {
                program: exe,
                source: err,
            })
        }
    }
}

/// True when stderr is the systemd journal's stream (JOURNAL_STREAM names
/// its device and inode), so log lines need neither timestamps nor colour.
pub(crate) fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // fstat(2) on fd 2, without taking ownership of it.
    let stderr = std::io::stderr();
    let Ok(fd) = std::os::fd::AsFd::as_fd(&stderr).try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn helper_translates_mount_convention() {
        let got = mount_helper_args(&os(&[
            "/b",
            "/m",
            "-n",
            "-o",
            "rw,allow_other,_netdev,log_file=/var/log/k.log",
            "-t",
            "fuse.kmsfs",
        ]))
        .unwrap();
        assert_eq!(
            got,
            HelperAction::Run(os(&[
                "mount",
                "/b",
                "/m",
                "--log-file",
                "/var/log/k.log",
                "-o",
                "rw,allow_other,_netdev"
            ]))
        );
        assert_eq!(
            mount_helper_args(&os(&["/b", "/m", "-vs", "-oro"])).unwrap(),
            HelperAction::Run(os(&[
                "--log-level",
                "debug",
                "mount",
                "/b",
                "/m",
                "-o",
                "ro"
            ]))
        );
        assert_eq!(
            mount_helper_args(&os(&["/b", "/m", "-f"])).unwrap(),
            HelperAction::Fake
        );
        assert!(mount_helper_args(&os(&["/b"])).is_err());
        assert!(mount_helper_args(&os(&["/b", "/m", "-t", "ext4"])).is_err());
        assert!(mount_helper_args(&os(&["/b", "/m", "-o"])).is_err());
    }

    #[test]
    fn helper_name() {
        assert!(invoked_as_mount_helper(OsStr::new(
            "/sbin/mount.fuse.kmsfs"
        )));
        assert!(invoked_as_mount_helper(OsStr::new("mount.fuse.kmsfs")));
        assert!(!invoked_as_mount_helper(OsStr::new("/usr/local/bin/kmsfs")));
    }
}
