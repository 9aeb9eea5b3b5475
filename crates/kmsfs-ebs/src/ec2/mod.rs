//! The EC2 Query protocol of the EBS simulation, as pure code (no I/O): what
//! `aws ec2 --endpoint-url …` and boto3's `ec2` client send and expect.
//!
//! - [`query`]: the form-encoded parameters ([`Params`]) and their typed
//!   accessors (lists `Name.N`, filters, tags, tag specifications);
//! - [`request`]: [`Ec2Request`], one variant per supported `Action`;
//! - [`xml`]: [`Ec2Response`] rendered as EC2's XML, and EC2's error XML;
//! - here: [`Ec2Backend`], the operations the endpoint needs (implemented by
//!   the engine), and [`execute`], which runs one request on a backend.

pub mod query;
pub mod request;
pub mod xml;

use kmsfs_kms::Caller;

use crate::error::{EbsError, Result};
use crate::model::{
    AttachVolumeInput, Attachment, CopySnapshotInput, CreateSnapshotInput, CreateVolumeInput,
    DetachVolumeInput, Filter, Instance, Snapshot, Tag, Volume,
};

pub use query::Params;
pub use request::{Ec2Request, RequestError};
pub use xml::{Ec2Response, error_xml};

/// The operations behind the EC2 endpoint, each for one caller (the Unix
/// identity the request's access key maps to) in one region (the request's
/// credential scope). The engine (`engine::Ebs`) implements it;
/// the endpoint holds it as `Arc<dyn Ec2Backend>`, so tests can stand in a
/// double. The methods block (pool and key-service I/O).
pub trait Ec2Backend: Send + Sync {
    fn create_volume(
        &self,
        caller: &Caller,
        region: &str,
        input: CreateVolumeInput,
    ) -> Result<Volume>;
    fn delete_volume(
        &self,
        caller: &Caller,
        region: &str,
        volume_id: &str,
        dry_run: bool,
    ) -> Result<()>;
    fn describe_volumes(
        &self,
        caller: &Caller,
        region: &str,
        volume_ids: &[String],
        filters: &[Filter],
    ) -> Result<Vec<Volume>>;
    /// The volume's id and its new attachment.
    fn attach_volume(
        &self,
        caller: &Caller,
        region: &str,
        input: AttachVolumeInput,
    ) -> Result<(String, Attachment)>;
    fn detach_volume(
        &self,
        caller: &Caller,
        region: &str,
        input: DetachVolumeInput,
    ) -> Result<(String, Attachment)>;
    fn create_snapshot(
        &self,
        caller: &Caller,
        region: &str,
        input: CreateSnapshotInput,
    ) -> Result<Snapshot>;
    /// The new snapshot's id; the copy may still be running (state pending).
    fn copy_snapshot(
        &self,
        caller: &Caller,
        region: &str,
        input: CopySnapshotInput,
    ) -> Result<String>;
    fn delete_snapshot(
        &self,
        caller: &Caller,
        region: &str,
        snapshot_id: &str,
        dry_run: bool,
    ) -> Result<()>;
    fn describe_snapshots(
        &self,
        caller: &Caller,
        region: &str,
        snapshot_ids: &[String],
        owner_ids: &[String],
        filters: &[Filter],
    ) -> Result<Vec<Snapshot>>;
    fn enable_ebs_encryption_by_default(
        &self,
        caller: &Caller,
        region: &str,
        dry_run: bool,
    ) -> Result<bool>;
    fn disable_ebs_encryption_by_default(
        &self,
        caller: &Caller,
        region: &str,
        dry_run: bool,
    ) -> Result<bool>;
    fn get_ebs_encryption_by_default(&self, caller: &Caller, region: &str) -> Result<bool>;
    /// The default key's ARN, or `alias/aws/ebs`.
    fn get_ebs_default_kms_key_id(&self, caller: &Caller, region: &str) -> Result<String>;
    fn modify_ebs_default_kms_key_id(
        &self,
        caller: &Caller,
        region: &str,
        kms_key_id: &str,
        dry_run: bool,
    ) -> Result<String>;
    fn reset_ebs_default_kms_key_id(
        &self,
        caller: &Caller,
        region: &str,
        dry_run: bool,
    ) -> Result<String>;
    fn describe_instances(&self, caller: &Caller, region: &str) -> Result<Vec<Instance>>;
    fn create_tags(
        &self,
        caller: &Caller,
        region: &str,
        resources: &[String],
        tags: &[Tag],
        dry_run: bool,
    ) -> Result<()>;
    /// `tags`: (key, value); `None` deletes the key whatever its value.
    fn delete_tags(
        &self,
        caller: &Caller,
        region: &str,
        resources: &[String],
        tags: &[(String, Option<String>)],
        dry_run: bool,
    ) -> Result<()>;
    fn describe_availability_zones(&self, caller: &Caller, region: &str) -> Result<Vec<String>>;
}

/// A read-only request with `DryRun`: the backend's reads take no dry-run
/// flag, and any authenticated caller may read (what it sees is the
/// backend's business), so the answer is the dry run's success.
fn read_dry_run(dry_run: bool) -> Result<()> {
    if dry_run {
        Err(EbsError::DryRunOperation)
    } else {
        Ok(())
    }
}

/// Runs one request on `backend` for `caller` in `region`; `account_id` is
/// the owner EC2 reports for instances. Blocking, as the backend is.
pub fn execute(
    backend: &dyn Ec2Backend,
    caller: &Caller,
    region: &str,
    account_id: &str,
    request: Ec2Request,
) -> Result<Ec2Response> {
    let b = backend;
    Ok(match request {
        Ec2Request::CreateVolume(input) => {
            Ec2Response::CreateVolume(b.create_volume(caller, region, input)?)
        }
        Ec2Request::DeleteVolume { volume_id, dry_run } => {
            b.delete_volume(caller, region, &volume_id, dry_run)?;
            Ec2Response::DeleteVolume
        }
        Ec2Request::DescribeVolumes {
            volume_ids,
            filters,
            dry_run,
        } => {
            read_dry_run(dry_run)?;
            Ec2Response::DescribeVolumes(b.describe_volumes(
                caller,
                region,
                &volume_ids,
                &filters,
            )?)
        }
        Ec2Request::AttachVolume(input) => {
            let (volume_id, attachment) = b.attach_volume(caller, region, input)?;
            Ec2Response::AttachVolume {
                volume_id,
                attachment,
            }
        }
        Ec2Request::DetachVolume(input) => {
            let (volume_id, attachment) = b.detach_volume(caller, region, input)?;
            Ec2Response::DetachVolume {
                volume_id,
                attachment,
            }
        }
        Ec2Request::CreateSnapshot(input) => {
            Ec2Response::CreateSnapshot(b.create_snapshot(caller, region, input)?)
        }
        Ec2Request::CopySnapshot(input) => {
            // CopySnapshotResult's tagSet: the tags asked for the snapshot.
            let tags = input
                .tag_specifications
                .iter()
                .filter(|s| s.resource_type == "snapshot")
                .flat_map(|s| s.tags.iter().cloned())
                .collect();
            let snapshot_id = b.copy_snapshot(caller, region, input)?;
            Ec2Response::CopySnapshot { snapshot_id, tags }
        }
        Ec2Request::DeleteSnapshot {
            snapshot_id,
            dry_run,
        } => {
            b.delete_snapshot(caller, region, &snapshot_id, dry_run)?;
            Ec2Response::DeleteSnapshot
        }
        Ec2Request::DescribeSnapshots {
            snapshot_ids,
            owner_ids,
            filters,
            dry_run,
        } => {
            read_dry_run(dry_run)?;
            Ec2Response::DescribeSnapshots(b.describe_snapshots(
                caller,
                region,
                &snapshot_ids,
                &owner_ids,
                &filters,
            )?)
        }
        Ec2Request::EnableEbsEncryptionByDefault { dry_run } => {
            Ec2Response::EnableEbsEncryptionByDefault(
                b.enable_ebs_encryption_by_default(caller, region, dry_run)?,
            )
        }
        Ec2Request::DisableEbsEncryptionByDefault { dry_run } => {
            Ec2Response::DisableEbsEncryptionByDefault(
                b.disable_ebs_encryption_by_default(caller, region, dry_run)?,
            )
        }
        Ec2Request::GetEbsEncryptionByDefault { dry_run } => {
            read_dry_run(dry_run)?;
            Ec2Response::GetEbsEncryptionByDefault(b.get_ebs_encryption_by_default(caller, region)?)
        }
        Ec2Request::GetEbsDefaultKmsKeyId { dry_run } => {
            read_dry_run(dry_run)?;
            Ec2Response::GetEbsDefaultKmsKeyId(b.get_ebs_default_kms_key_id(caller, region)?)
        }
        Ec2Request::ModifyEbsDefaultKmsKeyId {
            kms_key_id,
            dry_run,
        } => Ec2Response::ModifyEbsDefaultKmsKeyId(b.modify_ebs_default_kms_key_id(
            caller,
            region,
            &kms_key_id,
            dry_run,
        )?),
        Ec2Request::ResetEbsDefaultKmsKeyId { dry_run } => Ec2Response::ResetEbsDefaultKmsKeyId(
            b.reset_ebs_default_kms_key_id(caller, region, dry_run)?,
        ),
        Ec2Request::DescribeInstances {
            instance_ids,
            filters,
            dry_run,
        } => {
            read_dry_run(dry_run)?;
            let instances = select_instances(
                b.describe_instances(caller, region)?,
                &instance_ids,
                &filters,
            )?;
            Ec2Response::DescribeInstances {
                owner_id: account_id.to_owned(),
                instances,
            }
        }
        Ec2Request::CreateTags {
            resources,
            tags,
            dry_run,
        } => {
            b.create_tags(caller, region, &resources, &tags, dry_run)?;
            Ec2Response::CreateTags
        }
        Ec2Request::DeleteTags {
            resources,
            tags,
            dry_run,
        } => {
            b.delete_tags(caller, region, &resources, &tags, dry_run)?;
            Ec2Response::DeleteTags
        }
        Ec2Request::DescribeAvailabilityZones {
            zone_names,
            dry_run,
        } => {
            read_dry_run(dry_run)?;
            let zones = b.describe_availability_zones(caller, region)?;
            if let Some(bad) = zone_names.iter().find(|z| !zones.contains(z)) {
                return Err(EbsError::InvalidParameterValue(format!(
                    "Invalid availability zone: [{bad}]"
                )));
            }
            let zones = if zone_names.is_empty() {
                zones
            } else {
                zones
                    .into_iter()
                    .filter(|z| zone_names.contains(z))
                    .collect()
            };
            Ec2Response::DescribeAvailabilityZones {
                region: region.to_owned(),
                zones,
            }
        }
    })
}

/// DescribeInstances' `InstanceId.N` and the filters that make sense for
/// the one simulated instance; the backend knows no instance filters.
fn select_instances(
    instances: Vec<Instance>,
    ids: &[String],
    filters: &[Filter],
) -> Result<Vec<Instance>> {
    if let Some(missing) = ids
        .iter()
        .find(|id| !instances.iter().any(|i| &i.instance_id == *id))
    {
        return Err(EbsError::InstanceNotFound(missing.clone()));
    }
    let mut out = Vec::new();
    for i in instances {
        if !ids.is_empty() && !ids.contains(&i.instance_id) {
            continue;
        }
        let mut keep = true;
        for f in filters {
            let value = match f.name.as_str() {
                "instance-id" => i.instance_id.as_str(),
                "availability-zone" => i.availability_zone.as_str(),
                "instance-state-name" => "running",
                "instance-state-code" => "16",
                other => {
                    return Err(EbsError::InvalidParameterValue(format!(
                        "The filter '{other}' is invalid"
                    )));
                }
            };
            keep &= f
                .values
                .iter()
                .any(|pattern| wildcard_match(pattern, value));
        }
        if keep {
            out.push(i);
        }
    }
    Ok(out)
}

/// EC2's filter wildcards: `*` any run, `?` any one character (`\\`
/// escapes the next one). The classic single-backtrack matcher: O(pattern ×
/// value) whatever the pattern, since patterns come from the caller.
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    enum Tok {
        Lit(char),
        One,
        Star,
    }
    let mut toks = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        toks.push(match c {
            '*' => Tok::Star,
            '?' => Tok::One,
            '\\' => Tok::Lit(chars.next().unwrap_or('\\')),
            c => Tok::Lit(c),
        });
    }
    let v: Vec<char> = value.chars().collect();
    let (mut p, mut s) = (0, 0);
    // The last `*` seen and the value position it is matched up to.
    let mut star: Option<(usize, usize)> = None;
    while s < v.len() {
        match toks.get(p) {
            Some(Tok::Lit(c)) if *c == v[s] => {
                p += 1;
                s += 1;
            }
            Some(Tok::One) => {
                p += 1;
                s += 1;
            }
            Some(Tok::Star) => {
                star = Some((p, s));
                p += 1;
            }
            _ => match star {
                // Let the last `*` take one more character, and retry.
                Some((sp, ss)) => {
                    p = sp + 1;
                    s = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    toks[p..].iter().all(|t| matches!(t, Tok::Star))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("vol-*", "vol-123"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("a\\*", "a*"));
        assert!(!wildcard_match("a\\*", "ab"));
        assert!(!wildcard_match("running", "stopped"));
        assert!(wildcard_match("*b*", "abc"));
        assert!(wildcard_match("a*b*c", "aXbYbZc"));
        assert!(!wildcard_match("a*b*c", "aXbYbZ"));
        assert!(wildcard_match("\\?", "?"));
        assert!(!wildcard_match("\\?", "x"));
        // Pathological for a backtracking matcher; instant here.
        let t = std::time::Instant::now();
        assert!(!wildcard_match(
            &format!("{}b", "*a".repeat(5000)),
            &"a".repeat(5000)
        ));
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }

    fn instance(id: &str) -> Instance {
        Instance {
            instance_id: id.into(),
            region: "local".into(),
            availability_zone: "locala".into(),
            launch_time: "t".into(),
            hostname: "h".into(),
            attached: vec![],
        }
    }

    #[test]
    fn instances_are_selected_by_id_and_filter() {
        let all = vec![instance("i-1")];
        assert_eq!(select_instances(all.clone(), &[], &[]).unwrap().len(), 1);
        let e = select_instances(all.clone(), &["i-2".into()], &[]).unwrap_err();
        assert_eq!(e.code(), "InvalidInstanceID.NotFound");
        let f = |n: &str, v: &str| Filter {
            name: n.into(),
            values: vec![v.into()],
        };
        assert_eq!(
            select_instances(all.clone(), &[], &[f("instance-state-name", "running")])
                .unwrap()
                .len(),
            1
        );
        assert!(
            select_instances(all.clone(), &[], &[f("availability-zone", "other*")])
                .unwrap()
                .is_empty()
        );
        let e = select_instances(all, &[], &[f("vpc-id", "x")]).unwrap_err();
        assert_eq!(e.code(), "InvalidParameterValue");
    }
}
