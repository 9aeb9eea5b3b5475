//! `kmsfs ebs …`: the EBS simulation's command line, with `aws ec2`'s
//! subcommands, flags and JSON output, run on this host's pool (as root).
//! The same operations over the EC2 API: `kmsfs ebs serve`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{CliError, open_local_kms};
use crate::awscli::{self, OutputFormat};
use kmsfs_ebs::engine::Ebs;
use kmsfs_ebs::model::*;
use kmsfs_kms::Caller;
use kmsfs_kms::local::LocalKms;

/// The pool when neither --pool nor KMSFS_EBS_POOL names one.
pub(crate) const DEFAULT_POOL: &str = "/var/lib/kmsfs/ebs";

#[derive(Debug, Args)]
pub(crate) struct EbsArgs {
    /// The pool directory holding the images and their state.
    #[arg(long, global = true, env = "KMSFS_EBS_POOL", default_value = DEFAULT_POOL)]
    pub pool: PathBuf,
    /// The region (else AWS_REGION, AWS_DEFAULT_REGION, the AWS config
    /// file's region, us-east-1).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Output format, as the AWS CLI's --output.
    #[arg(long, global = true, default_value = "json")]
    pub output: OutputFormat,
    /// A JMESPath-style query applied to the response (AWS CLI --query).
    #[arg(long, global = true)]
    pub query: Option<String>,
    #[command(subcommand)]
    pub command: EbsCommand,
}

/// `--dry-run` / `--no-dry-run`, as the AWS CLI spells booleans.
#[derive(Debug, Clone, Args)]
pub(crate) struct DryRun {
    /// Checks the request (and the caller's rights) without acting.
    #[arg(long, overrides_with = "no_dry_run")]
    dry_run: bool,
    #[arg(long, hide = true)]
    no_dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EbsCommand {
    /// Serves an attached volume's block device (started by attach-volume
    /// with the image as an inherited descriptor and its key on stdin).
    #[command(hide = true)]
    ServeDevice {
        #[arg(long)]
        volume_id: String,
        #[arg(long)]
        image_fd: i32,
        #[arg(long)]
        size_bytes: u64,
    },
    /// Serves the pool over the EC2 Query API (HTTP, SigV4 with access keys
    /// from `kmsfs iam`), for `aws ec2 --endpoint-url` and the SDKs.
    Serve {
        /// TCP address to serve on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:8788")]
        listen: std::net::SocketAddr,
        /// Most connections served at once.
        #[arg(long, default_value_t = 512)]
        max_connections: usize,
    },
    /// Creates a volume (sparse image; encrypted with a data key of its own).
    CreateVolume {
        #[arg(long)]
        availability_zone: Option<String>,
        /// GiB.
        #[arg(long)]
        size: Option<u64>,
        #[arg(long)]
        snapshot_id: Option<String>,
        #[arg(long)]
        volume_type: Option<String>,
        #[arg(long)]
        iops: Option<u32>,
        #[arg(long)]
        throughput: Option<u32>,
        #[arg(long, overrides_with = "no_encrypted")]
        encrypted: bool,
        #[arg(long)]
        no_encrypted: bool,
        #[arg(long)]
        kms_key_id: Option<String>,
        /// ResourceType=volume,Tags=[{Key=k,Value=v}] … or JSON.
        #[arg(long, num_args = 1..)]
        tag_specifications: Vec<String>,
        #[command(flatten)]
        dry_run: DryRun,
    },
    /// Deletes a volume: its wrapped data key is destroyed first.
    DeleteVolume {
        #[arg(long)]
        volume_id: String,
        #[command(flatten)]
        dry_run: DryRun,
    },
    /// Lists volumes (all of the region, or those named), with filters.
    DescribeVolumes {
        #[arg(long, num_args = 1..)]
        volume_ids: Vec<String>,
        /// Name=status,Values=available … or JSON.
        #[arg(long, num_args = 1..)]
        filters: Vec<String>,
    },
    /// Attaches a volume to this host: a block device at
    /// /dev/disk/by-id/kmsfs-VOLUME-ID.
    AttachVolume {
        #[arg(long)]
        volume_id: String,
        /// This host's instance id (`describe-instances`); defaults to it.
        #[arg(long)]
        instance_id: Option<String>,
        /// The device name AWS would show (/dev/sdf).
        #[arg(long)]
        device: String,
        #[command(flatten)]
        dry_run: DryRun,
    },
    /// Detaches a volume: its device goes away and its key with it.
    DetachVolume {
        #[arg(long)]
        volume_id: String,
        #[arg(long)]
        instance_id: Option<String>,
        #[arg(long)]
        device: Option<String>,
        /// Detach even while the device is in use (data not yet written by
        /// its user is lost, as on AWS).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        dry_run: DryRun,
    },
    /// A crash-consistent snapshot (writes are held for the copy).
    CreateSnapshot {
        #[arg(long)]
        volume_id: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, num_args = 1..)]
        tag_specifications: Vec<String>,
        #[command(flatten)]
        dry_run: DryRun,
    },
    /// Copies a snapshot; under another key every block is sealed again.
    /// Waits for the copy (a progress bar on a terminal).
    CopySnapshot {
        #[arg(long)]
        source_snapshot_id: String,
        #[arg(long)]
        source_region: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, overrides_with = "no_encrypted")]
        encrypted: bool,
        #[arg(long)]
        no_encrypted: bool,
        #[arg(long)]
        kms_key_id: Option<String>,
        #[arg(long, num_args = 1..)]
        tag_specifications: Vec<String>,
        #[command(flatten)]
        dry_run: DryRun,
    },
    /// Deletes a snapshot: its wrapped data key is destroyed first.
    DeleteSnapshot {
        #[arg(long)]
        snapshot_id: String,
        #[command(flatten)]
        dry_run: DryRun,
    },
    /// Lists snapshots, with filters (`--owner-ids self`).
    DescribeSnapshots {
        #[arg(long, num_args = 1..)]
        snapshot_ids: Vec<String>,
        #[arg(long, num_args = 1..)]
        owner_ids: Vec<String>,
        #[arg(long, num_args = 1..)]
        filters: Vec<String>,
    },
    /// New volumes and snapshot copies of this region are encrypted.
    EnableEbsEncryptionByDefault {
        #[command(flatten)]
        dry_run: DryRun,
    },
    /// New volumes of this region are encrypted only when asked.
    DisableEbsEncryptionByDefault {
        #[command(flatten)]
        dry_run: DryRun,
    },
    /// Whether encryption by default is on in this region.
    GetEbsEncryptionByDefault,
    /// The key new encrypted volumes of this region use when none is named.
    GetEbsDefaultKmsKeyId,
    /// Sets the region's default key.
    ModifyEbsDefaultKmsKeyId {
        #[arg(long)]
        kms_key_id: String,
        #[command(flatten)]
        dry_run: DryRun,
    },
    /// Goes back to the AWS managed key, alias/aws/ebs.
    ResetEbsDefaultKmsKeyId {
        #[command(flatten)]
        dry_run: DryRun,
    },
    /// This host, the one instance.
    DescribeInstances,
    /// The region's zones (labels: a, b, c; this host is in a).
    DescribeAvailabilityZones,
    /// Adds or overwrites tags of volumes and snapshots.
    CreateTags {
        #[arg(long, num_args = 1.., required = true)]
        resources: Vec<String>,
        /// Key=k,Value=v … or JSON.
        #[arg(long, num_args = 1.., required = true)]
        tags: Vec<String>,
        #[command(flatten)]
        dry_run: DryRun,
    },
    /// Removes tags (a key without a value: whatever its value).
    DeleteTags {
        #[arg(long, num_args = 1.., required = true)]
        resources: Vec<String>,
        #[arg(long, num_args = 1..)]
        tags: Vec<String>,
        #[command(flatten)]
        dry_run: DryRun,
    },
}

fn structures(param: &str, args: &[String]) -> Result<Vec<Value>, CliError> {
    awscli::parse_structure_list(param, args).map_err(CliError::Usage)
}

fn string_field(v: &Value, name: &str, param: &str) -> Result<String, CliError> {
    match v.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        None => Ok(String::new()),
        Some(other) => Err(CliError::Usage(format!(
            "Parameter validation failed:\nInvalid type for parameter {param}.{name}, value: {other}, type: {}, valid types: <class 'str'>",
            json_type(other)
        ))),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "<class 'list'>",
        Value::Object(_) => "<class 'dict'>",
        Value::Bool(_) => "<class 'bool'>",
        Value::Number(_) => "<class 'int'>",
        _ => "<class 'str'>",
    }
}

fn tags_from(items: &[Value], param: &str) -> Result<Vec<Tag>, CliError> {
    items
        .iter()
        .map(|t| {
            Ok(Tag {
                key: string_field(t, "Key", param)?,
                value: string_field(t, "Value", param)?,
            })
        })
        .collect()
}

fn tag_specifications(args: &[String]) -> Result<Vec<TagSpecification>, CliError> {
    structures("--tag-specifications", args)?
        .iter()
        .map(|spec| {
            let tags = match spec.get("Tags") {
                Some(Value::Array(items)) => tags_from(items, "TagSpecifications.Tags")?,
                Some(one @ Value::Object(_)) => {
                    tags_from(std::slice::from_ref(one), "TagSpecifications.Tags")?
                }
                _ => Vec::new(),
            };
            Ok(TagSpecification {
                resource_type: string_field(spec, "ResourceType", "TagSpecifications")?,
                tags,
            })
        })
        .collect()
}

fn filters(args: &[String]) -> Result<Vec<Filter>, CliError> {
    structures("--filters", args)?
        .iter()
        .map(|f| {
            let values = match f.get("Values") {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect(),
                Some(Value::String(s)) => vec![s.clone()],
                _ => Vec::new(),
            };
            Ok(Filter {
                name: string_field(f, "Name", "Filters")?,
                values,
            })
        })
        .collect()
}

fn tristate(yes: bool, no: bool) -> Option<bool> {
    match (yes, no) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}

/// A bar on a terminal, nothing otherwise.
fn copy_progress() -> impl FnMut(u64, u64) {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes}  {bytes_per_sec}  ETA {eta}",
        ) {
            bar.set_style(style);
        }
        bar
    });
    move |done, total| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
            if done >= total {
                bar.finish_and_clear();
            }
        }
    }
}

/// The operation's AWS name, for the error line.
fn operation_name(cmd: &EbsCommand) -> &'static str {
    match cmd {
        EbsCommand::Serve { .. } => "Serve",
        EbsCommand::ServeDevice { .. } => "ServeDevice",
        EbsCommand::CreateVolume { .. } => "CreateVolume",
        EbsCommand::DeleteVolume { .. } => "DeleteVolume",
        EbsCommand::DescribeVolumes { .. } => "DescribeVolumes",
        EbsCommand::AttachVolume { .. } => "AttachVolume",
        EbsCommand::DetachVolume { .. } => "DetachVolume",
        EbsCommand::CreateSnapshot { .. } => "CreateSnapshot",
        EbsCommand::CopySnapshot { .. } => "CopySnapshot",
        EbsCommand::DeleteSnapshot { .. } => "DeleteSnapshot",
        EbsCommand::DescribeSnapshots { .. } => "DescribeSnapshots",
        EbsCommand::EnableEbsEncryptionByDefault { .. } => "EnableEbsEncryptionByDefault",
        EbsCommand::DisableEbsEncryptionByDefault { .. } => "DisableEbsEncryptionByDefault",
        EbsCommand::GetEbsEncryptionByDefault => "GetEbsEncryptionByDefault",
        EbsCommand::GetEbsDefaultKmsKeyId => "GetEbsDefaultKmsKeyId",
        EbsCommand::ModifyEbsDefaultKmsKeyId { .. } => "ModifyEbsDefaultKmsKeyId",
        EbsCommand::ResetEbsDefaultKmsKeyId { .. } => "ResetEbsDefaultKmsKeyId",
        EbsCommand::DescribeInstances => "DescribeInstances",
        EbsCommand::DescribeAvailabilityZones => "DescribeAvailabilityZones",
        EbsCommand::CreateTags { .. } => "CreateTags",
        EbsCommand::DeleteTags { .. } => "DeleteTags",
    }
}

impl EbsArgs {
    /// Whether the command is one of the long-running servers.
    pub(crate) fn is_server(&self) -> bool {
        matches!(
            self.command,
            EbsCommand::Serve { .. } | EbsCommand::ServeDevice { .. }
        )
    }
}

/// `kmsfs ebs serve-device`: its exit code, or `None` for every other
/// subcommand.
pub(crate) fn serve_device(args: &EbsArgs) -> Option<std::process::ExitCode> {
    let EbsCommand::ServeDevice {
        volume_id,
        image_fd,
        size_bytes,
    } = &args.command
    else {
        return None;
    };
    Some(kmsfs_mount::disk::serve_main(
        kmsfs_mount::disk::ServeArgs {
            volume_id: volume_id.clone(),
            image_fd: *image_fd,
            size_bytes: *size_bytes,
        },
    ))
}

/// Opens the pool with this host's devices and the embedded key store.
fn open_ebs(
    pool: &std::path::Path,
    keystore: Option<PathBuf>,
) -> Result<(Ebs, Arc<LocalKms>), CliError> {
    let kms = Arc::new(open_local_kms(
        keystore,
        Arc::new(kmsfs_kms::clock::SystemClock),
    )?);
    let devices = Arc::new(
        kmsfs_mount::disk::HostDevices::new().map_err(|e| CliError::Failed(e.to_string()))?,
    );
    let ebs = Ebs::open(pool, kms.clone(), devices).map_err(|e| CliError::Ec2("OpenPool", e))?;
    Ok((ebs, kms))
}

pub(crate) fn run(args: &EbsArgs, keystore: Option<PathBuf>) -> Result<(), CliError> {
    // EC2 has no "no region": like the AWS CLI with a config, us-east-1.
    let region =
        awscli::resolve_region(args.region.as_deref(), None).unwrap_or_else(|| "us-east-1".into());
    let (ebs, kms) = open_ebs(&args.pool, keystore)?;
    if let EbsCommand::Serve {
        listen,
        max_connections,
    } = &args.command
    {
        let opts = kmsfs_ebs_server::ServeOptions {
            max_connections: *max_connections,
            ..Default::default()
        };
        return kmsfs_ebs_server::serve(*listen, Arc::new(ebs), kms, opts, |addr| {
            println!("kmsfs ebs: serving the EC2 API on http://{addr}");
            let _ = std::io::Write::flush(&mut std::io::stdout());
        })
        .map_err(CliError::Io);
    }
    let op = operation_name(&args.command);
    let response = call(&ebs, &Caller::current(), &region, &args.command).map_err(|e| match e {
        Failure::Ec2(e) => CliError::Ec2(op, e),
        Failure::Cli(e) => e,
    })?;
    let Some(mut response) = response else {
        return Ok(());
    };
    if let Some(q) = &args.query {
        response = awscli::apply_query(&response, q).map_err(|e| CliError::Usage(e.to_string()))?;
    }
    print!("{}", awscli::render(&response, args.output));
    Ok(())
}

enum Failure {
    Ec2(kmsfs_ebs::EbsError),
    Cli(CliError),
}

impl From<kmsfs_ebs::EbsError> for Failure {
    fn from(e: kmsfs_ebs::EbsError) -> Failure {
        Failure::Ec2(e)
    }
}

impl From<CliError> for Failure {
    fn from(e: CliError) -> Failure {
        Failure::Cli(e)
    }
}

/// Runs one subcommand; the JSON to print (`None`: the AWS CLI prints
/// nothing for this operation).
fn call(ebs: &Ebs, me: &Caller, region: &str, cmd: &EbsCommand) -> Result<Option<Value>, Failure> {
    use EbsCommand as C;
    let out = match cmd {
        C::Serve { .. } | C::ServeDevice { .. } => None,
        C::CreateVolume {
            availability_zone,
            size,
            snapshot_id,
            volume_type,
            iops,
            throughput,
            encrypted,
            no_encrypted,
            kms_key_id,
            tag_specifications: specs,
            dry_run,
        } => {
            let v = ebs.create_volume(
                me,
                region,
                CreateVolumeInput {
                    availability_zone: availability_zone.clone(),
                    size: *size,
                    snapshot_id: snapshot_id.clone(),
                    encrypted: tristate(*encrypted, *no_encrypted),
                    kms_key_id: kms_key_id.clone(),
                    volume_type: volume_type.clone(),
                    iops: *iops,
                    throughput: *throughput,
                    tag_specifications: tag_specifications(specs)?,
                    dry_run: dry_run.dry_run,
                },
            )?;
            Some(v.to_json())
        }
        C::DeleteVolume { volume_id, dry_run } => {
            ebs.delete_volume(me, region, volume_id, dry_run.dry_run)?;
            None
        }
        C::DescribeVolumes {
            volume_ids,
            filters: f,
        } => {
            let vs = ebs.describe_volumes(me, region, volume_ids, &filters(f)?)?;
            Some(json!({"Volumes": vs.iter().map(Volume::to_json).collect::<Vec<_>>()}))
        }
        C::AttachVolume {
            volume_id,
            instance_id,
            device,
            dry_run,
        } => {
            let (id, a) = ebs.attach_volume(
                me,
                region,
                AttachVolumeInput {
                    volume_id: volume_id.clone(),
                    instance_id: instance_id
                        .clone()
                        .unwrap_or_else(|| ebs.instance_id().to_owned()),
                    device: device.clone(),
                    dry_run: dry_run.dry_run,
                },
            )?;
            if let Some(host) = ebs
                .volume(region, &id)?
                .attachment
                .and_then(|a| a.host_device)
            {
                eprintln!("kmsfs: {id} is attached at {host}");
            }
            Some(a.to_json(&id))
        }
        C::DetachVolume {
            volume_id,
            instance_id,
            device,
            force,
            dry_run,
        } => {
            let (id, a) = ebs.detach_volume(
                me,
                region,
                DetachVolumeInput {
                    volume_id: volume_id.clone(),
                    instance_id: instance_id.clone(),
                    device: device.clone(),
                    force: *force,
                    dry_run: dry_run.dry_run,
                },
            )?;
            Some(a.to_json(&id))
        }
        C::CreateSnapshot {
            volume_id,
            description,
            tag_specifications: specs,
            dry_run,
        } => {
            let s = ebs.create_snapshot(
                me,
                region,
                CreateSnapshotInput {
                    volume_id: volume_id.clone(),
                    description: description.clone(),
                    tag_specifications: tag_specifications(specs)?,
                    dry_run: dry_run.dry_run,
                },
            )?;
            Some(s.to_json())
        }
        C::CopySnapshot {
            source_snapshot_id,
            source_region,
            description,
            encrypted,
            no_encrypted,
            kms_key_id,
            tag_specifications: specs,
            dry_run,
        } => {
            let s = ebs.copy_snapshot_and_wait(
                me,
                region,
                CopySnapshotInput {
                    source_snapshot_id: source_snapshot_id.clone(),
                    source_region: source_region.clone(),
                    description: description.clone(),
                    encrypted: tristate(*encrypted, *no_encrypted),
                    kms_key_id: kms_key_id.clone(),
                    tag_specifications: tag_specifications(specs)?,
                    dry_run: dry_run.dry_run,
                },
                &mut copy_progress(),
            )?;
            Some(json!({"SnapshotId": s.snapshot_id}))
        }
        C::DeleteSnapshot {
            snapshot_id,
            dry_run,
        } => {
            ebs.delete_snapshot(me, region, snapshot_id, dry_run.dry_run)?;
            None
        }
        C::DescribeSnapshots {
            snapshot_ids,
            owner_ids,
            filters: f,
        } => {
            let ss = ebs.describe_snapshots(me, region, snapshot_ids, owner_ids, &filters(f)?)?;
            Some(json!({"Snapshots": ss.iter().map(Snapshot::to_json).collect::<Vec<_>>()}))
        }
        C::EnableEbsEncryptionByDefault { dry_run } => {
            let on = ebs.enable_ebs_encryption_by_default(me, region, dry_run.dry_run)?;
            Some(json!({"EbsEncryptionByDefault": on}))
        }
        C::DisableEbsEncryptionByDefault { dry_run } => {
            let on = ebs.disable_ebs_encryption_by_default(me, region, dry_run.dry_run)?;
            Some(json!({"EbsEncryptionByDefault": on}))
        }
        C::GetEbsEncryptionByDefault => {
            let on = ebs.get_ebs_encryption_by_default(me, region)?;
            Some(json!({"EbsEncryptionByDefault": on, "SseType": "sse-ebs"}))
        }
        C::GetEbsDefaultKmsKeyId => {
            Some(json!({"KmsKeyId": ebs.get_ebs_default_kms_key_id(me, region)?}))
        }
        C::ModifyEbsDefaultKmsKeyId {
            kms_key_id,
            dry_run,
        } => Some(
            json!({"KmsKeyId": ebs.modify_ebs_default_kms_key_id(me, region, kms_key_id, dry_run.dry_run)?}),
        ),
        C::ResetEbsDefaultKmsKeyId { dry_run } => Some(
            json!({"KmsKeyId": ebs.reset_ebs_default_kms_key_id(me, region, dry_run.dry_run)?}),
        ),
        C::DescribeInstances => {
            let owner = ebs
                .kms()
                .region_and_account()
                .map_err(kmsfs_ebs::EbsError::from)?
                .1;
            let instances = ebs.describe_instances(me, region)?;
            Some(json!({"Reservations": instances.iter().map(|i| json!({
                "ReservationId": format!("r-{}", &i.instance_id[2..]),
                "OwnerId": owner,
                "Groups": [],
                "Instances": [i.to_json()],
            })).collect::<Vec<_>>()}))
        }
        C::DescribeAvailabilityZones => {
            let zones = ebs.describe_availability_zones(me, region)?;
            Some(json!({"AvailabilityZones": zones.iter().map(|z| json!({
                "State": "available",
                "OptInStatus": "opt-in-not-required",
                "Messages": [],
                "RegionName": region,
                "ZoneName": z,
                "ZoneType": "availability-zone",
            })).collect::<Vec<_>>()}))
        }
        C::CreateTags {
            resources,
            tags,
            dry_run,
        } => {
            let tags = tags_from(&structures("--tags", tags)?, "Tags")?;
            ebs.create_tags(me, region, resources, &tags, dry_run.dry_run)?;
            None
        }
        C::DeleteTags {
            resources,
            tags,
            dry_run,
        } => {
            let tags = structures("--tags", tags)?
                .iter()
                .map(|t| {
                    Ok((
                        string_field(t, "Key", "Tags")?,
                        t.get("Value").and_then(Value::as_str).map(str::to_owned),
                    ))
                })
                .collect::<Result<Vec<_>, CliError>>()?;
            ebs.delete_tags(me, region, resources, &tags, dry_run.dry_run)?;
            None
        }
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_specifications_and_filters_read_shorthand_and_json() {
        let specs = tag_specifications(&[
            "ResourceType=volume,Tags=[{Key=Name,Value=data},{Key=team,Value=ops}]".into(),
        ])
        .unwrap();
        assert_eq!(specs[0].resource_type, "volume");
        assert_eq!(specs[0].tags.len(), 2);
        let f = filters(&[
            "Name=status,Values=available,in-use".into(),
            r#"[{"Name":"size","Values":["1"]}]"#.into(),
        ])
        .unwrap();
        assert_eq!(f[0].values, vec!["available", "in-use"]);
        assert_eq!(f[1].name, "size");
    }
}
