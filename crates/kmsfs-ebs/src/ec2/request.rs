//! The typed requests: one [`Ec2Request`] variant per supported `Action`,
//! parsed from [`Params`] with the member names of botocore's `ec2` model
//! (`service-2.json`, API version 2016-11-15).

use crate::error::EbsError;
use crate::model::{
    AttachVolumeInput, CopySnapshotInput, CreateSnapshotInput, CreateVolumeInput,
    DetachVolumeInput, Filter, Tag,
};

use super::query::Params;

/// Largest volume size EC2 knows (io2 Block Express: 64 TiB), in GiB; a
/// bound so that later arithmetic on the size cannot overflow.
pub const MAX_SIZE_GIB: u64 = 65_536;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ec2Request {
    CreateVolume(CreateVolumeInput),
    DeleteVolume {
        volume_id: String,
        dry_run: bool,
    },
    DescribeVolumes {
        volume_ids: Vec<String>,
        filters: Vec<Filter>,
        dry_run: bool,
    },
    AttachVolume(AttachVolumeInput),
    DetachVolume(DetachVolumeInput),
    CreateSnapshot(CreateSnapshotInput),
    CopySnapshot(CopySnapshotInput),
    DeleteSnapshot {
        snapshot_id: String,
        dry_run: bool,
    },
    DescribeSnapshots {
        snapshot_ids: Vec<String>,
        owner_ids: Vec<String>,
        filters: Vec<Filter>,
        dry_run: bool,
    },
    EnableEbsEncryptionByDefault {
        dry_run: bool,
    },
    DisableEbsEncryptionByDefault {
        dry_run: bool,
    },
    GetEbsEncryptionByDefault {
        dry_run: bool,
    },
    GetEbsDefaultKmsKeyId {
        dry_run: bool,
    },
    ModifyEbsDefaultKmsKeyId {
        kms_key_id: String,
        dry_run: bool,
    },
    ResetEbsDefaultKmsKeyId {
        dry_run: bool,
    },
    DescribeInstances {
        instance_ids: Vec<String>,
        filters: Vec<Filter>,
        dry_run: bool,
    },
    CreateTags {
        resources: Vec<String>,
        tags: Vec<Tag>,
        dry_run: bool,
    },
    /// A tag without a value deletes the key whatever its value; with a
    /// value (even empty) only if the value matches, as EC2 does.
    DeleteTags {
        resources: Vec<String>,
        tags: Vec<(String, Option<String>)>,
        dry_run: bool,
    },
    DescribeAvailabilityZones {
        zone_names: Vec<String>,
        dry_run: bool,
    },
}

/// Why a request could not be parsed: the `Action` itself, or one of its
/// parameters (an [`EbsError`]: MissingParameter, InvalidParameterValue).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("The request must contain the parameter Action")]
    MissingAction,
    #[error("The action {0} is not valid for this web service.")]
    InvalidAction(String),
    #[error(transparent)]
    Param(#[from] EbsError),
}

impl RequestError {
    /// The EC2 error code.
    pub fn code(&self) -> String {
        match self {
            RequestError::MissingAction => "MissingAction".into(),
            RequestError::InvalidAction(_) => "InvalidAction".into(),
            RequestError::Param(e) => e.code(),
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            RequestError::Param(e) => e.http_status(),
            _ => 400,
        }
    }
}

/// Every `Action` this endpoint serves.
pub const ACTIONS: &[&str] = &[
    "CreateVolume",
    "DeleteVolume",
    "DescribeVolumes",
    "AttachVolume",
    "DetachVolume",
    "CreateSnapshot",
    "CopySnapshot",
    "DeleteSnapshot",
    "DescribeSnapshots",
    "EnableEbsEncryptionByDefault",
    "DisableEbsEncryptionByDefault",
    "GetEbsEncryptionByDefault",
    "GetEbsDefaultKmsKeyId",
    "ModifyEbsDefaultKmsKeyId",
    "ResetEbsDefaultKmsKeyId",
    "DescribeInstances",
    "CreateTags",
    "DeleteTags",
    "DescribeAvailabilityZones",
];

impl Ec2Request {
    /// The request of `params`' `Action`. `Version` is not checked: every
    /// client of the 2016-11-15 API sends it, and the members used here
    /// have not changed across versions.
    pub fn parse(p: &Params) -> Result<Ec2Request, RequestError> {
        let action = p.get("Action").ok_or(RequestError::MissingAction)?;
        let dry_run = p.dry_run()?;
        let req = match action {
            "CreateVolume" => Ec2Request::CreateVolume(CreateVolumeInput {
                availability_zone: p.string("AvailabilityZone"),
                size: p.uint("Size", MAX_SIZE_GIB)?,
                snapshot_id: p.string("SnapshotId"),
                encrypted: p.bool("Encrypted")?,
                kms_key_id: p.string("KmsKeyId"),
                volume_type: p.string("VolumeType"),
                iops: p.u32("Iops")?,
                throughput: p.u32("Throughput")?,
                tag_specifications: p.tag_specifications()?,
                dry_run,
            }),
            "DeleteVolume" => Ec2Request::DeleteVolume {
                volume_id: p.required("VolumeId")?,
                dry_run,
            },
            "DescribeVolumes" => Ec2Request::DescribeVolumes {
                volume_ids: p.list("VolumeId"),
                filters: p.filters()?,
                dry_run,
            },
            "AttachVolume" => Ec2Request::AttachVolume(AttachVolumeInput {
                // Checked in the model's order of `required`.
                device: p.required("Device")?,
                instance_id: p.required("InstanceId")?,
                volume_id: p.required("VolumeId")?,
                dry_run,
            }),
            "DetachVolume" => Ec2Request::DetachVolume(DetachVolumeInput {
                volume_id: p.required("VolumeId")?,
                instance_id: p.string("InstanceId"),
                device: p.string("Device"),
                force: p.bool("Force")?.unwrap_or(false),
                dry_run,
            }),
            "CreateSnapshot" => Ec2Request::CreateSnapshot(CreateSnapshotInput {
                volume_id: p.required("VolumeId")?,
                description: p.string("Description"),
                tag_specifications: p.tag_specifications()?,
                dry_run,
            }),
            "CopySnapshot" => Ec2Request::CopySnapshot(CopySnapshotInput {
                // SourceRegion is required by the model (botocore always
                // sends it); DestinationRegion and PresignedUrl, which
                // botocore adds for cross-region copies, are not needed:
                // the destination is the region the request is signed for.
                source_region: Some(p.required("SourceRegion")?),
                source_snapshot_id: p.required("SourceSnapshotId")?,
                description: p.string("Description"),
                encrypted: p.bool("Encrypted")?,
                kms_key_id: p.string("KmsKeyId"),
                tag_specifications: p.tag_specifications()?,
                dry_run,
            }),
            "DeleteSnapshot" => Ec2Request::DeleteSnapshot {
                snapshot_id: p.required("SnapshotId")?,
                dry_run,
            },
            "DescribeSnapshots" => Ec2Request::DescribeSnapshots {
                snapshot_ids: p.list("SnapshotId"),
                owner_ids: p.list("Owner"),
                filters: p.filters()?,
                dry_run,
            },
            "EnableEbsEncryptionByDefault" => Ec2Request::EnableEbsEncryptionByDefault { dry_run },
            "DisableEbsEncryptionByDefault" => {
                Ec2Request::DisableEbsEncryptionByDefault { dry_run }
            }
            "GetEbsEncryptionByDefault" => Ec2Request::GetEbsEncryptionByDefault { dry_run },
            "GetEbsDefaultKmsKeyId" => Ec2Request::GetEbsDefaultKmsKeyId { dry_run },
            "ModifyEbsDefaultKmsKeyId" => Ec2Request::ModifyEbsDefaultKmsKeyId {
                kms_key_id: p.required("KmsKeyId")?,
                dry_run,
            },
            "ResetEbsDefaultKmsKeyId" => Ec2Request::ResetEbsDefaultKmsKeyId { dry_run },
            "DescribeInstances" => Ec2Request::DescribeInstances {
                instance_ids: p.list("InstanceId"),
                filters: p.filters()?,
                dry_run,
            },
            "CreateTags" => {
                let resources = p.list("ResourceId");
                if resources.is_empty() {
                    return Err(super::query::missing("ResourceId").into());
                }
                let tags = p.tags("Tag")?;
                if tags.is_empty() {
                    return Err(super::query::missing("Tag").into());
                }
                Ec2Request::CreateTags {
                    resources,
                    tags,
                    dry_run,
                }
            }
            "DeleteTags" => {
                let resources = p.list("ResourceId");
                if resources.is_empty() {
                    return Err(super::query::missing("ResourceId").into());
                }
                Ec2Request::DeleteTags {
                    resources,
                    tags: p.tag_pairs("Tag")?,
                    dry_run,
                }
            }
            "DescribeAvailabilityZones" => Ec2Request::DescribeAvailabilityZones {
                zone_names: p.list("ZoneName"),
                dry_run,
            },
            other => return Err(RequestError::InvalidAction(other.to_owned())),
        };
        Ok(req)
    }

    /// The request's `Action`.
    pub fn action(&self) -> &'static str {
        match self {
            Ec2Request::CreateVolume(_) => "CreateVolume",
            Ec2Request::DeleteVolume { .. } => "DeleteVolume",
            Ec2Request::DescribeVolumes { .. } => "DescribeVolumes",
            Ec2Request::AttachVolume(_) => "AttachVolume",
            Ec2Request::DetachVolume(_) => "DetachVolume",
            Ec2Request::CreateSnapshot(_) => "CreateSnapshot",
            Ec2Request::CopySnapshot(_) => "CopySnapshot",
            Ec2Request::DeleteSnapshot { .. } => "DeleteSnapshot",
            Ec2Request::DescribeSnapshots { .. } => "DescribeSnapshots",
            Ec2Request::EnableEbsEncryptionByDefault { .. } => "EnableEbsEncryptionByDefault",
            Ec2Request::DisableEbsEncryptionByDefault { .. } => "DisableEbsEncryptionByDefault",
            Ec2Request::GetEbsEncryptionByDefault { .. } => "GetEbsEncryptionByDefault",
            Ec2Request::GetEbsDefaultKmsKeyId { .. } => "GetEbsDefaultKmsKeyId",
            Ec2Request::ModifyEbsDefaultKmsKeyId { .. } => "ModifyEbsDefaultKmsKeyId",
            Ec2Request::ResetEbsDefaultKmsKeyId { .. } => "ResetEbsDefaultKmsKeyId",
            Ec2Request::DescribeInstances { .. } => "DescribeInstances",
            Ec2Request::CreateTags { .. } => "CreateTags",
            Ec2Request::DeleteTags { .. } => "DeleteTags",
            Ec2Request::DescribeAvailabilityZones { .. } => "DescribeAvailabilityZones",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TagSpecification;

    fn parse(form: &str) -> Result<Ec2Request, RequestError> {
        Ec2Request::parse(&Params::parse(form).unwrap())
    }

    fn tag(k: &str, v: &str) -> Tag {
        Tag {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn create_volume_takes_every_member() {
        let r = parse(concat!(
            "Action=CreateVolume&Version=2016-11-15&AvailabilityZone=local-1a&Size=8",
            "&SnapshotId=snap-1234abcd&Encrypted=true&KmsKeyId=alias%2Fmine&VolumeType=gp3",
            "&Iops=3000&Throughput=125&DryRun=true&ClientToken=ignored",
            "&TagSpecification.1.ResourceType=volume&TagSpecification.1.Tag.1.Key=Name",
            "&TagSpecification.1.Tag.1.Value=data"
        ))
        .unwrap();
        assert_eq!(r.action(), "CreateVolume");
        assert_eq!(
            r,
            Ec2Request::CreateVolume(CreateVolumeInput {
                availability_zone: Some("local-1a".into()),
                size: Some(8),
                snapshot_id: Some("snap-1234abcd".into()),
                encrypted: Some(true),
                kms_key_id: Some("alias/mine".into()),
                volume_type: Some("gp3".into()),
                iops: Some(3000),
                throughput: Some(125),
                tag_specifications: vec![TagSpecification {
                    resource_type: "volume".into(),
                    tags: vec![tag("Name", "data")],
                }],
                dry_run: true,
            })
        );
        // Nothing is required: a snapshot alone may give the size.
        assert_eq!(
            parse("Action=CreateVolume").unwrap(),
            Ec2Request::CreateVolume(CreateVolumeInput::default())
        );
        for bad in [
            "Size=x",
            "Size=-1",
            "Size=65537",
            "Encrypted=1",
            "DryRun=yes",
        ] {
            let e = parse(&format!("Action=CreateVolume&{bad}")).unwrap_err();
            assert_eq!(e.code(), "InvalidParameterValue", "{bad}");
            assert_eq!(e.http_status(), 400);
        }
    }

    #[test]
    fn required_parameters_are_named_when_missing() {
        for (form, name) in [
            ("Action=DeleteVolume", "VolumeId"),
            (
                "Action=AttachVolume&InstanceId=i-1&VolumeId=vol-1",
                "Device",
            ),
            (
                "Action=AttachVolume&Device=/dev/sdf&VolumeId=vol-1",
                "InstanceId",
            ),
            (
                "Action=AttachVolume&Device=/dev/sdf&InstanceId=i-1",
                "VolumeId",
            ),
            ("Action=DetachVolume", "VolumeId"),
            ("Action=CreateSnapshot", "VolumeId"),
            (
                "Action=CopySnapshot&SourceSnapshotId=snap-1",
                "SourceRegion",
            ),
            ("Action=CopySnapshot&SourceRegion=r", "SourceSnapshotId"),
            ("Action=DeleteSnapshot", "SnapshotId"),
            ("Action=ModifyEbsDefaultKmsKeyId", "KmsKeyId"),
            ("Action=CreateTags&Tag.1.Key=a", "ResourceId"),
            ("Action=CreateTags&ResourceId.1=vol-1", "Tag"),
            ("Action=DeleteTags", "ResourceId"),
        ] {
            let e = parse(form).unwrap_err();
            assert_eq!(e.code(), "MissingParameter", "{form}");
            assert_eq!(
                e.to_string(),
                format!("The request must contain the parameter {name}"),
                "{form}"
            );
        }
    }

    #[test]
    fn unknown_or_missing_actions_are_refused() {
        let e = parse("Action=RunInstances").unwrap_err();
        assert_eq!(e.code(), "InvalidAction");
        assert_eq!(
            e.to_string(),
            "The action RunInstances is not valid for this web service."
        );
        assert_eq!(
            parse("Version=2016-11-15").unwrap_err().code(),
            "MissingAction"
        );
        for action in ACTIONS {
            // Every action named parses (or names a missing parameter).
            match parse(&format!("Action={action}")) {
                Ok(r) => assert_eq!(r.action(), *action),
                Err(e) => assert_eq!(e.code(), "MissingParameter", "{action}"),
            }
        }
    }

    #[test]
    fn attach_detach_and_snapshots() {
        assert_eq!(
            parse("Action=AttachVolume&Device=%2Fdev%2Fsdf&InstanceId=i-1&VolumeId=vol-1").unwrap(),
            Ec2Request::AttachVolume(AttachVolumeInput {
                volume_id: "vol-1".into(),
                instance_id: "i-1".into(),
                device: "/dev/sdf".into(),
                dry_run: false,
            })
        );
        assert_eq!(
            parse("Action=DetachVolume&VolumeId=vol-1&Force=true&InstanceId=i-1").unwrap(),
            Ec2Request::DetachVolume(DetachVolumeInput {
                volume_id: "vol-1".into(),
                instance_id: Some("i-1".into()),
                device: None,
                force: true,
                dry_run: false,
            })
        );
        assert_eq!(
            parse(concat!(
                "Action=CopySnapshot&SourceRegion=local&SourceSnapshotId=snap-1",
                "&Description=copy+of&Encrypted=true&KmsKeyId=arn%3Aaws%3Akms%3Ax",
                "&DestinationRegion=local&PresignedUrl=http%3A%2F%2Fx",
                "&TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.1.Key=k"
            ))
            .unwrap(),
            Ec2Request::CopySnapshot(CopySnapshotInput {
                source_snapshot_id: "snap-1".into(),
                source_region: Some("local".into()),
                description: Some("copy of".into()),
                encrypted: Some(true),
                kms_key_id: Some("arn:aws:kms:x".into()),
                tag_specifications: vec![TagSpecification {
                    resource_type: "snapshot".into(),
                    tags: vec![tag("k", "")],
                }],
                dry_run: false,
            })
        );
        assert_eq!(
            parse(concat!(
                "Action=DescribeSnapshots&SnapshotId.1=snap-1&SnapshotId.2=snap-2",
                "&Owner.1=self&Filter.1.Name=status&Filter.1.Value.1=completed&DryRun=false"
            ))
            .unwrap(),
            Ec2Request::DescribeSnapshots {
                snapshot_ids: vec!["snap-1".into(), "snap-2".into()],
                owner_ids: vec!["self".into()],
                filters: vec![Filter {
                    name: "status".into(),
                    values: vec!["completed".into()]
                }],
                dry_run: false,
            }
        );
        assert_eq!(
            parse("Action=CreateSnapshot&VolumeId=vol-1&Description=d&DryRun=true").unwrap(),
            Ec2Request::CreateSnapshot(CreateSnapshotInput {
                volume_id: "vol-1".into(),
                description: Some("d".into()),
                tag_specifications: vec![],
                dry_run: true,
            })
        );
    }

    #[test]
    fn describes_defaults_and_tags() {
        assert_eq!(
            parse("Action=DescribeVolumes&VolumeId.1=vol-1&Filter.1.Name=status&Filter.1.Value.1=available").unwrap(),
            Ec2Request::DescribeVolumes {
                volume_ids: vec!["vol-1".into()],
                filters: vec![Filter {
                    name: "status".into(),
                    values: vec!["available".into()]
                }],
                dry_run: false,
            }
        );
        assert_eq!(
            parse("Action=ModifyEbsDefaultKmsKeyId&KmsKeyId=alias%2Fk&DryRun=true").unwrap(),
            Ec2Request::ModifyEbsDefaultKmsKeyId {
                kms_key_id: "alias/k".into(),
                dry_run: true
            }
        );
        assert_eq!(
            parse("Action=EnableEbsEncryptionByDefault&DryRun=true").unwrap(),
            Ec2Request::EnableEbsEncryptionByDefault { dry_run: true }
        );
        assert_eq!(
            parse("Action=DescribeInstances&InstanceId.1=i-1").unwrap(),
            Ec2Request::DescribeInstances {
                instance_ids: vec!["i-1".into()],
                filters: vec![],
                dry_run: false
            }
        );
        assert_eq!(
            parse(
                "Action=CreateTags&ResourceId.1=vol-1&ResourceId.2=snap-1&Tag.1.Key=a&Tag.1.Value=b"
            )
            .unwrap(),
            Ec2Request::CreateTags {
                resources: vec!["vol-1".into(), "snap-1".into()],
                tags: vec![tag("a", "b")],
                dry_run: false
            }
        );
        assert_eq!(
            parse("Action=DeleteTags&ResourceId.1=vol-1&Tag.1.Key=a&Tag.2.Key=b&Tag.2.Value=")
                .unwrap(),
            Ec2Request::DeleteTags {
                resources: vec!["vol-1".into()],
                tags: vec![("a".into(), None), ("b".into(), Some(String::new()))],
                dry_run: false
            }
        );
        assert_eq!(
            parse("Action=DescribeAvailabilityZones&ZoneName.1=local-1a").unwrap(),
            Ec2Request::DescribeAvailabilityZones {
                zone_names: vec!["local-1a".into()],
                dry_run: false
            }
        );
    }
}
