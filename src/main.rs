use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod awscli;
mod cli;

use crate::cli::{CliError, EXIT_USAGE};

/// kmsfs: transparent file encryption with envelope encryption, and the
/// key management service that holds its master keys.
#[derive(Debug, Parser)]
#[command(name = "kmsfs", version, propagate_version = true)]
struct Cli {
    /// The embedded key store file [default: /var/lib/kmsfs/keystore for root,
    /// $XDG_DATA_HOME/kmsfs/keystore otherwise].
    #[arg(long, global = true, env = "KMSFS_KEYSTORE")]
    keystore: Option<PathBuf>,
    /// Log level (error, warn, info, debug, trace); RUST_LOG takes precedence.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The key management service, with the commands and flags of `aws kms`.
    Kms(cli::kms::KmsArgs),
    /// Users, groups and access keys for `kmsfs kms serve`, with the commands of `aws iam`.
    Iam(cli::iam::IamArgs),
    /// Initialises an empty backing directory as an encrypted volume.
    Init(cli::volume::InitArgs),
    /// Mounts a volume (initialising an empty backing directory first).
    Mount(cli::volume::MountArgs),
    /// Unmounts a mounted volume.
    Umount(cli::volume::UmountArgs),
    /// Checks every header and block of a volume; lists damaged files.
    Fsck(cli::volume::FsckArgs),
    /// Prints a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cli::ops::CompletionsArgs),
    /// Prints the man page (roff), or writes one page per command.
    Man(cli::ops::ManArgs),
    /// Re-wraps every file's data key to the current version of the volume's CMK
    /// (only headers change); on a mounted volume, asks its daemon to do it.
    Rotate(cli::rotate::RotateArgs),
    /// Re-keys a volume to another CMK: new files use it at once, rotation moves the rest.
    SetKey(cli::rotate::SetKeyArgs),
    /// Files per CMK and key version, rotation progress and failures.
    Status(cli::rotate::StatusArgs),
    /// Replaces files' data keys (re-encrypts every block); unmounted volumes only.
    Reencrypt(cli::rotate::ReencryptArgs),
    /// EBS volumes, snapshots and encryption by default on this host, with
    /// the subcommands, flags and output of `aws ec2` (docs/EBS.md).
    Ebs(cli::ebs::EbsArgs),
}

fn init_logging(level: Option<&str>, default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(level.unwrap_or(default)));
    // Under systemd, stderr is the journal: it stamps each line itself and
    // shows no colour, so leave both out.
    let journal = cli::ops::stderr_is_journal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(!journal && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if journal {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
}

/// Before anything else, and for every command (the CLI reads root key
/// files and passphrases too, the daemons hold data keys): no core dumps,
/// no ptrace or /proc/PID/mem by other processes of the user. Set
/// KMSFS_ALLOW_CORE_DUMPS=1 to debug a crash.
fn forbid_core_dumps() {
    if std::env::var_os("KMSFS_ALLOW_CORE_DUMPS").is_some_and(|v| v == "1") {
        return;
    }
    if let Err(e) = kmsfs_sys::forbid_core_dumps() {
        // Logging is not set up yet; the command itself can still run.
        eprintln!("kmsfs: warning: cannot disable core dumps (prctl PR_SET_DUMPABLE): {e}");
    }
}

fn main() -> ExitCode {
    forbid_core_dumps();
    let mut argv = std::env::args_os();
    if argv
        .next()
        .is_some_and(|a| cli::ops::invoked_as_mount_helper(&a))
    {
        let Err(e) = cli::ops::mount_helper(&argv.collect::<Vec<_>>()) else {
            return ExitCode::SUCCESS;
        };
        eprintln!("{}: {}", cli::ops::MOUNT_HELPER_NAME, e.report());
        return ExitCode::from(e.exit_code() as u8);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    // A one-shot `kmsfs ebs` command prints what `aws ec2` prints and no
    // progress log; the servers log what they do.
    let default_level = match &cli.command {
        Command::Ebs(args) if !args.is_server() => "warn",
        _ => "info",
    };
    init_logging(cli.log_level.as_deref(), default_level);
    // The device server of an attached volume runs on its own, without
    // the pool or the key store (it is handed the image and its key).
    if let Command::Ebs(args) = &cli.command
        && let Some(code) = cli::ebs::serve_device(args)
    {
        return code;
    }
    let outcome: Result<(), CliError> = match &cli.command {
        Command::Kms(args) => cli::kms::run(args, cli.keystore.clone()),
        Command::Iam(args) => cli::iam::run(args, cli.keystore.clone()),
        Command::Init(args) => cli::volume::init(args, cli.keystore.clone()),
        Command::Mount(args) => cli::volume::mount(args, cli.keystore.clone()),
        Command::Umount(args) => cli::volume::umount(args),
        Command::Fsck(args) => cli::volume::fsck(args),
        Command::Completions(args) => cli::ops::completions(args, Cli::command()),
        Command::Man(args) => cli::ops::man(args, Cli::command()),
        Command::Rotate(args) => cli::rotate::rotate(args),
        Command::SetKey(args) => cli::rotate::set_key(args),
        Command::Status(args) => cli::rotate::status(args),
        Command::Reencrypt(args) => cli::rotate::reencrypt(args),
        Command::Ebs(args) => cli::ebs::run(args, cli.keystore.clone()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\n{}", e.report());
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
