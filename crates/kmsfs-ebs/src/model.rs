//! Volumes, snapshots, attachments and the per-region defaults, with the
//! members EC2's API gives them (botocore's `ec2` model: `Volume`,
//! `Snapshot`, `VolumeAttachment`), and the inputs of the operations.
//!
//! The records are also what the pool's state file stores (see
//! docs/FORMAT.md, "EBS pool"), so every field here is part of that format:
//! add fields with `#[serde(default)]`, never rename one.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// A volume's state, as EC2 spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeState {
    Creating,
    Available,
    InUse,
    Deleting,
    Deleted,
    Error,
}

impl VolumeState {
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeState::Creating => "creating",
            VolumeState::Available => "available",
            VolumeState::InUse => "in-use",
            VolumeState::Deleting => "deleting",
            VolumeState::Deleted => "deleted",
            VolumeState::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachmentState {
    Attaching,
    Attached,
    Detaching,
    Detached,
}

impl AttachmentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentState::Attaching => "attaching",
            AttachmentState::Attached => "attached",
            AttachmentState::Detaching => "detaching",
            AttachmentState::Detached => "detached",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotState {
    Pending,
    Completed,
    Error,
}

impl SnapshotState {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotState::Pending => "pending",
            SnapshotState::Completed => "completed",
            SnapshotState::Error => "error",
        }
    }
}

/// How an encrypted image's data key is sealed: what a later `Decrypt`
/// must present. Absent for an unencrypted volume or snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealing {
    /// ARN of the CMK that wraps the data key.
    pub kms_key_arn: String,
    /// The value of `aws:ebs:id` in the encryption context the data key was
    /// wrapped with: the id of the volume (or, after CopySnapshot, the
    /// snapshot) it was made for, which the images that share the key keep.
    pub context_id: String,
    /// The lineage id of the data key (EC2's `DataEncryptionKeyId`): the
    /// same for every image that shares the key, new for every new key. It
    /// is the image's file id in hex, never derived from the key itself.
    pub data_key_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub instance_id: String,
    /// The device name given to AttachVolume (`/dev/sdf`), as AWS keeps it.
    pub device: String,
    pub state: AttachmentState,
    pub attach_time: String,
    #[serde(default)]
    pub delete_on_termination: bool,
    /// Where the volume really is on this host: the loop device and the
    /// `/dev/disk/by-id/kmsfs-<volume-id>` link (not EC2 members).
    #[serde(default)]
    pub host_device: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub volume_id: String,
    pub region: String,
    pub availability_zone: String,
    /// GiB, as EC2 counts it.
    pub size: u64,
    pub snapshot_id: Option<String>,
    pub state: VolumeState,
    pub create_time: String,
    pub volume_type: String,
    pub iops: Option<u32>,
    pub throughput: Option<u32>,
    pub sealing: Option<Sealing>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub attachment: Option<Attachment>,
}

impl Volume {
    pub fn encrypted(&self) -> bool {
        self.sealing.is_some()
    }

    pub fn size_bytes(&self) -> u64 {
        self.size << 30
    }

    /// The volume as the AWS CLI prints it (`describe-volumes`' `Volumes[]`).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "AvailabilityZone": self.availability_zone,
            "Attachments": self.attachment.iter().map(|a| a.to_json(&self.volume_id)).collect::<Vec<_>>(),
            "CreateTime": self.create_time,
            "Encrypted": self.encrypted(),
            "Size": self.size,
            "SnapshotId": self.snapshot_id.clone().unwrap_or_default(),
            "State": self.state.as_str(),
            "VolumeId": self.volume_id,
            "VolumeType": self.volume_type,
            "MultiAttachEnabled": false,
        });
        if let Some(s) = &self.sealing {
            v["KmsKeyId"] = json!(s.kms_key_arn);
        }
        if let Some(iops) = self.iops {
            v["Iops"] = json!(iops);
        }
        if let Some(t) = self.throughput {
            v["Throughput"] = json!(t);
        }
        if !self.tags.is_empty() {
            v["Tags"] = tags_json(&self.tags);
        }
        v
    }
}

impl Attachment {
    pub fn to_json(&self, volume_id: &str) -> Value {
        json!({
            "AttachTime": self.attach_time,
            "Device": self.device,
            "InstanceId": self.instance_id,
            "State": self.state.as_str(),
            "VolumeId": volume_id,
            "DeleteOnTermination": self.delete_on_termination,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub snapshot_id: String,
    pub region: String,
    /// The volume it was taken of; for a copy, the source's volume id.
    pub volume_id: String,
    pub volume_size: u64,
    pub state: SnapshotState,
    pub start_time: String,
    /// "0%" … "100%" while a copy runs.
    pub progress: String,
    pub owner_id: String,
    pub description: String,
    pub sealing: Option<Sealing>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub state_message: Option<String>,
}

impl Snapshot {
    pub fn encrypted(&self) -> bool {
        self.sealing.is_some()
    }

    /// The snapshot as the AWS CLI prints it (`describe-snapshots`).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "Description": self.description,
            "Encrypted": self.encrypted(),
            "OwnerId": self.owner_id,
            "Progress": self.progress,
            "SnapshotId": self.snapshot_id,
            "StartTime": self.start_time,
            "State": self.state.as_str(),
            "VolumeId": self.volume_id,
            "VolumeSize": self.volume_size,
        });
        if let Some(s) = &self.sealing {
            v["KmsKeyId"] = json!(s.kms_key_arn);
            v["DataEncryptionKeyId"] = json!(s.data_key_id);
        }
        if let Some(m) = &self.state_message {
            v["StateMessage"] = json!(m);
        }
        if !self.tags.is_empty() {
            v["Tags"] = tags_json(&self.tags);
        }
        v
    }
}

pub fn tags_json(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({"Key": t.key, "Value": t.value}))
            .collect(),
    )
}

/// Encryption by default and the default key of one region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionDefaults {
    pub encryption_by_default: bool,
    /// `None`: the AWS managed key `alias/aws/ebs` (created on first use).
    pub default_kms_key_id: Option<String>,
}

/// `Filter.N.Name` and its values (`Filter.N.Value.M`), as EC2 takes them;
/// values may use `*` and `?` wildcards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

/// `TagSpecification.N`: the tags for one resource type of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagSpecification {
    pub resource_type: String,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateVolumeInput {
    pub availability_zone: Option<String>,
    /// GiB; may be absent with a snapshot (its size then).
    pub size: Option<u64>,
    pub snapshot_id: Option<String>,
    pub encrypted: Option<bool>,
    pub kms_key_id: Option<String>,
    pub volume_type: Option<String>,
    pub iops: Option<u32>,
    pub throughput: Option<u32>,
    pub tag_specifications: Vec<TagSpecification>,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopySnapshotInput {
    pub source_snapshot_id: String,
    pub source_region: Option<String>,
    pub description: Option<String>,
    pub encrypted: Option<bool>,
    pub kms_key_id: Option<String>,
    pub tag_specifications: Vec<TagSpecification>,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateSnapshotInput {
    pub volume_id: String,
    pub description: Option<String>,
    pub tag_specifications: Vec<TagSpecification>,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachVolumeInput {
    pub volume_id: String,
    pub instance_id: String,
    pub device: String,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetachVolumeInput {
    pub volume_id: String,
    pub instance_id: Option<String>,
    pub device: Option<String>,
    pub force: bool,
    pub dry_run: bool,
}

/// The one simulated instance (this host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub instance_id: String,
    pub region: String,
    pub availability_zone: String,
    pub launch_time: String,
    pub hostname: String,
    /// The volumes attached to it, for `BlockDeviceMappings`.
    pub attached: Vec<(String, Attachment)>,
}

impl Instance {
    /// The instance as the AWS CLI prints it (`describe-instances`'
    /// `Reservations[].Instances[]`).
    pub fn to_json(&self) -> Value {
        json!({
            "InstanceId": self.instance_id,
            "InstanceType": "host",
            "LaunchTime": self.launch_time,
            "Placement": {"AvailabilityZone": self.availability_zone, "Tenancy": "default"},
            "PrivateDnsName": self.hostname,
            "State": {"Code": 16, "Name": "running"},
            "RootDeviceType": "ebs",
            "BlockDeviceMappings": self.attached.iter().map(|(volume_id, a)| json!({
                "DeviceName": a.device,
                "Ebs": {
                    "AttachTime": a.attach_time,
                    "DeleteOnTermination": a.delete_on_termination,
                    "Status": a.state.as_str(),
                    "VolumeId": volume_id,
                },
            })).collect::<Vec<_>>(),
        })
    }
}
