//! `kmsfs ebs serve-device`: the hidden command that serves one attached
//! EBS volume as a block device (kmsfs_mount::disk). Only
//! `kmsfs_mount::disk::HostDevices` runs it, with the image as an inherited
//! descriptor and the data key on stdin; it is not for people.

use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub(crate) struct EbsArgs {
    #[command(subcommand)]
    command: EbsCommand,
}

#[derive(Debug, Subcommand)]
enum EbsCommand {
    /// Serves an attached volume's block device (started by attach).
    #[command(hide = true)]
    ServeDevice(ServeDeviceArgs),
}

#[derive(Debug, Args)]
struct ServeDeviceArgs {
    /// The volume's id (names the device, its mount and its socket).
    #[arg(long)]
    volume_id: String,
    /// The image, an inherited descriptor.
    #[arg(long)]
    image_fd: i32,
    /// The volume's size in bytes.
    #[arg(long)]
    size_bytes: u64,
}

pub(crate) fn run(args: &EbsArgs) -> ExitCode {
    match &args.command {
        EbsCommand::ServeDevice(a) => kmsfs_mount::disk::serve_main(kmsfs_mount::disk::ServeArgs {
            volume_id: a.volume_id.clone(),
            image_fd: a.image_fd,
            size_bytes: a.size_bytes,
        }),
    }
}
