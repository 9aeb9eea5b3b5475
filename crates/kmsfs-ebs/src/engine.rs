//! The EBS operations, with the KMS calls AWS documents for each:
//!
//! | operation | KMS calls (as the caller, audited, under the key policy) |
//! |---|---|
//! | CreateVolume (encrypted, empty) | DescribeKey, GenerateDataKeyWithoutPlaintext, context `aws:ebs:id` = the volume id |
//! | CreateVolume from a snapshot, same key | none: the volume's image is a copy of the snapshot's and shares its data key |
//! | CreateVolume from a snapshot, another key (or plain → encrypted) | Decrypt (the snapshot's key), GenerateDataKey (the new one), every block sealed again |
//! | AttachVolume | Decrypt; the plaintext key then lives only in the process serving the device |
//! | CreateSnapshot | none: the snapshot is a copy of the volume's image |
//! | CopySnapshot, same key | none |
//! | CopySnapshot, another key | Decrypt, GenerateDataKey with `aws:ebs:id` = the new snapshot id, every block sealed again |
//!
//! A disabled key, or one pending deletion, leaves an attached volume
//! working (its device already holds the key) and makes the next attach
//! or create fail with `KMS.DisabledException` /
//! `KMS.KMSInvalidStateException`. Key rotation re-encrypts nothing: the
//! wrapped key names the CMK version that wrapped it.

use std::path::Path;
use std::sync::Arc;

use kmsfs_format::cipher::DataKey;
use kmsfs_kms::local::LocalKms;
use kmsfs_kms::{Caller, EncryptionContext, KeyState};

use super::devices::{AttachRequest, BlockDevices};
use super::error::{EbsError, Result};
use super::ids::{check_id, new_id, this_instance_id};
use super::image::{self, Codec};
use super::model::*;
use super::pool::{Pool, PoolState};

/// The alias of the AWS managed key EBS uses when no other is named.
pub const MANAGED_KEY_ALIAS: &str = "alias/aws/ebs";
const CONTEXT_KEY: &str = "aws:ebs:id";
/// EC2's limits on a volume's size (GiB), for gp2/gp3.
const MAX_SIZE_GIB: u64 = 16_384;
const VOLUME_TYPES: &[&str] = &["standard", "gp2", "gp3", "io1", "io2", "st1", "sc1"];

/// The time now, as EC2 writes it (`2026-12-02T07:40:00.000Z`).
pub fn now_iso() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn context(id: &str) -> EncryptionContext {
    EncryptionContext::from([(CONTEXT_KEY.to_owned(), id.to_owned())])
}

/// The operations, over one pool, one key store and this host's devices.
/// Cheap to clone (the copies share everything), so that a copy can go on
/// in the background.
#[derive(Clone)]
pub struct Ebs {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    kms: Arc<LocalKms>,
    devices: Arc<dyn BlockDevices>,
    instance_id: String,
    launch_time: String,
}

/// How one image becomes another.
struct CopyPlan {
    source_id: String,
    /// `None`: copy the image as it is (shared data key, or both
    /// unencrypted).
    reseal: Option<Reseal>,
    source_sealing: Option<Sealing>,
    size_bytes: u64,
}

/// Every block opened with the source's key and sealed with a new one.
struct Reseal {
    from: Codec,
    to: Codec,
    header: kmsfs_format::header::FileHeader,
    sealing: Sealing,
}

fn require(name: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(EbsError::MissingParameter(format!(
            "The request must contain the parameter {name}"
        )));
    }
    Ok(())
}

fn tags_for(specs: &[TagSpecification], resource_type: &str) -> Result<Vec<Tag>> {
    let mut out = Vec::new();
    for spec in specs {
        if spec.resource_type != resource_type {
            return Err(EbsError::InvalidParameterValue(format!(
                "'{}' is not a valid taggable resource type for this operation.",
                spec.resource_type
            )));
        }
        for tag in &spec.tags {
            check_tag(tag)?;
            out.retain(|t: &Tag| t.key != tag.key);
            out.push(tag.clone());
        }
    }
    Ok(out)
}

fn check_tag(tag: &Tag) -> Result<()> {
    if tag.key.is_empty() || tag.key.chars().count() > 127 || tag.value.chars().count() > 255 {
        return Err(EbsError::InvalidParameterValue(format!(
            "Tag key must be 1 to 127 characters and its value at most 255: {:?}",
            tag.key
        )));
    }
    if tag.key.starts_with("aws:") {
        return Err(EbsError::InvalidParameterValue(
            "Tag keys starting with 'aws:' are reserved for internal use".into(),
        ));
    }
    Ok(())
}

/// `*` and `?` wildcards, as EC2 filters take them.
fn wildcard(pattern: &str, value: &str) -> bool {
    fn go(p: &[char], v: &[char]) -> bool {
        match (p.first(), v.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], v) || (!v.is_empty() && go(p, &v[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &v[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &v[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    go(&p, &v)
}

/// Whether one filter admits a resource whose values for the filter's
/// name are `values` (`None`: the filter name is not one this resource
/// has, which EC2 refuses).
fn admits(filter: &Filter, values: Option<Vec<String>>) -> Result<bool> {
    let Some(values) = values else {
        return Err(EbsError::InvalidParameterValue(format!(
            "The filter '{}' is invalid",
            filter.name
        )));
    };
    Ok(filter
        .values
        .iter()
        .any(|p| values.iter().any(|v| wildcard(p, v))))
}

fn tag_filter_values(tags: &[Tag], name: &str) -> Option<Option<Vec<String>>> {
    if let Some(key) = name.strip_prefix("tag:") {
        return Some(Some(
            tags.iter()
                .filter(|t| t.key == key)
                .map(|t| t.value.clone())
                .collect(),
        ));
    }
    if name == "tag-key" {
        return Some(Some(tags.iter().map(|t| t.key.clone()).collect()));
    }
    if name == "tag-value" {
        return Some(Some(tags.iter().map(|t| t.value.clone()).collect()));
    }
    None
}

fn volume_filter_values(v: &Volume, name: &str) -> Option<Vec<String>> {
    if let Some(tags) = tag_filter_values(&v.tags, name) {
        return tags;
    }
    let one = |s: &str| Some(vec![s.to_owned()]);
    let attachment =
        |f: &dyn Fn(&Attachment) -> String| Some(v.attachment.iter().map(f).collect::<Vec<_>>());
    match name {
        "volume-id" => one(&v.volume_id),
        "status" => one(v.state.as_str()),
        "size" => one(&v.size.to_string()),
        "availability-zone" => one(&v.availability_zone),
        "create-time" => one(&v.create_time),
        "encrypted" => one(&v.encrypted().to_string()),
        "snapshot-id" => one(v.snapshot_id.as_deref().unwrap_or("")),
        "volume-type" => one(&v.volume_type),
        "multi-attach-enabled" | "fast-restored" => one("false"),
        "attachment.instance-id" => attachment(&|a| a.instance_id.clone()),
        "attachment.device" => attachment(&|a| a.device.clone()),
        "attachment.status" => attachment(&|a| a.state.as_str().to_owned()),
        "attachment.attach-time" => attachment(&|a| a.attach_time.clone()),
        "attachment.delete-on-termination" => attachment(&|a| a.delete_on_termination.to_string()),
        _ => None,
    }
}

fn snapshot_filter_values(s: &Snapshot, name: &str) -> Option<Vec<String>> {
    if let Some(tags) = tag_filter_values(&s.tags, name) {
        return tags;
    }
    let one = |x: &str| Some(vec![x.to_owned()]);
    match name {
        "snapshot-id" => one(&s.snapshot_id),
        "volume-id" => one(&s.volume_id),
        "status" => one(s.state.as_str()),
        "progress" => one(&s.progress),
        "owner-id" => one(&s.owner_id),
        "description" => one(&s.description),
        "start-time" => one(&s.start_time),
        "volume-size" => one(&s.volume_size.to_string()),
        "encrypted" => one(&s.encrypted().to_string()),
        "kms-key-id" => one(s.sealing.as_ref().map_or("", |x| x.kms_key_arn.as_str())),
        _ => None,
    }
}

/// AWS's device names for EBS volumes on Linux (`/dev/sd[b-z]`, `/dev/xvd…`).
fn check_device_name(device: &str) -> Result<()> {
    let rest = device
        .strip_prefix("/dev/sd")
        .or_else(|| device.strip_prefix("/dev/xvd"))
        .or_else(|| device.strip_prefix("xvd"));
    let ok = rest.is_some_and(|r| {
        let letters: String = r.chars().take_while(char::is_ascii_lowercase).collect();
        let digits = &r[letters.len()..];
        (1..=2).contains(&letters.len()) && digits.chars().all(|c| c.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(EbsError::InvalidParameterValue(format!(
            "Value ({device}) for parameter device is invalid. {device} is not a valid EBS device name."
        )))
    }
}

impl Ebs {
    /// The operations over the pool at `pool_dir`. Repairs what a crash
    /// left: a copy whose process is gone is marked failed, an attachment
    /// whose device is no longer served is dropped (the volume can be
    /// attached again: what a reboot does to an instance's volumes).
    pub fn open(
        pool_dir: &Path,
        kms: Arc<LocalKms>,
        devices: Arc<dyn BlockDevices>,
    ) -> Result<Ebs> {
        let pool = Pool::open(pool_dir)?;
        let ebs = Ebs {
            inner: Arc::new(Inner {
                pool,
                kms,
                devices,
                instance_id: this_instance_id(),
                launch_time: now_iso(),
            }),
        };
        ebs.repair()?;
        Ok(ebs)
    }

    pub fn kms(&self) -> &LocalKms {
        &self.inner.kms
    }

    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    fn repair(&self) -> Result<()> {
        let devices = &self.inner.devices;
        self.inner.pool.update(|state| {
            let dead: Vec<String> = state
                .copies
                .iter()
                .filter(|(_, pid)| !process_alive(**pid))
                .map(|(id, _)| id.clone())
                .collect();
            for id in dead {
                state.copies.remove(&id);
                if let Some(s) = state.snapshots.get_mut(&id) {
                    s.state = SnapshotState::Error;
                    s.state_message = Some("the copy was interrupted".into());
                }
            }
            for v in state.volumes.values_mut() {
                let stale = v.attachment.is_some() && devices.attached(&v.volume_id).is_none();
                if stale {
                    tracing::warn!(volume = %v.volume_id, "its device is no longer served: detached");
                    v.attachment = None;
                    v.state = VolumeState::Available;
                }
            }
            Ok(())
        })
    }

    fn account(&self) -> Result<String> {
        Ok(self.inner.kms.region_and_account()?.1)
    }

    /// The ARN of the key a new encrypted image in `region` is sealed
    /// under: `explicit`, else the region's default, else the AWS managed
    /// key (made on first use). The key must be enabled.
    fn resolve_key(&self, caller: &Caller, region: &str, explicit: Option<&str>) -> Result<String> {
        let default = self.inner.pool.read(|s| {
            Ok(s.defaults
                .get(region)
                .and_then(|d| d.default_kms_key_id.clone()))
        })?;
        let id = explicit
            .map(str::to_owned)
            .or(default)
            .unwrap_or_else(|| MANAGED_KEY_ALIAS.to_owned());
        let info = if id == MANAGED_KEY_ALIAS {
            self.inner.kms.aws_managed_key(caller, "ebs")?
        } else {
            self.inner.kms.describe_key(caller, &id)?
        };
        match info.state {
            KeyState::Enabled => Ok(info.arn),
            KeyState::Disabled => Err(EbsError::Kms {
                exception: "DisabledException",
                message: format!("The KMS key {} is disabled.", info.arn),
            }),
            other => Err(EbsError::Kms {
                exception: "KMSInvalidStateException",
                message: format!("The KMS key {} is {other:?}.", info.arn),
            }),
        }
    }

    fn encryption_by_default(&self, region: &str) -> Result<bool> {
        self.inner.pool.read(|s| {
            Ok(s.defaults
                .get(region)
                .is_some_and(|d| d.encryption_by_default))
        })
    }

    /// A new data key under `key_arn` for the image of `id`, without its
    /// plaintext (EBS's GenerateDataKeyWithoutPlaintext), and the header
    /// that stores it.
    fn new_wrapped_key(
        &self,
        caller: &Caller,
        key_arn: &str,
        id: &str,
    ) -> Result<(Sealing, kmsfs_format::header::FileHeader)> {
        let pair = self
            .inner
            .kms
            .generate_data_key(caller, key_arn, 32, &context(id), false)?;
        drop(pair.plaintext);
        let header = image::new_header(&pair.key_arn, pair.key_version, pair.ciphertext_blob)?;
        Ok((
            Sealing {
                kms_key_arn: pair.key_arn,
                context_id: id.to_owned(),
                data_key_id: image::data_key_id(&header.file_id),
            },
            header,
        ))
    }

    /// Unwraps the data key of the image `id` (EBS's Decrypt).
    fn unwrap_key(
        &self,
        caller: &Caller,
        id: &str,
        sealing: &Sealing,
    ) -> Result<(DataKey, [u8; 16])> {
        let file = self.inner.pool.open_image(id)?;
        let header = image::read_header(&file)?;
        let wrapped = image::wrapped_key(&header)?;
        let opened = self.inner.kms.decrypt(
            caller,
            &wrapped.blob,
            &context(&sealing.context_id),
            Some(&sealing.kms_key_arn),
        )?;
        let key = DataKey::from_slice(&opened.plaintext)
            .map_err(|e| EbsError::Internal(format!("the data key has the wrong length: {e}")))?;
        Ok((key, header.file_id))
    }

    // ---- volumes ----

    pub fn create_volume(
        &self,
        caller: &Caller,
        region: &str,
        input: CreateVolumeInput,
    ) -> Result<Volume> {
        let zone = input
            .availability_zone
            .clone()
            .unwrap_or_else(|| format!("{region}a"));
        if !zone.starts_with(region) || zone.len() != region.len() + 1 {
            return Err(EbsError::InvalidParameterValue(format!(
                "Invalid availability zone: [{zone}]"
            )));
        }
        let volume_type = input.volume_type.clone().unwrap_or_else(|| "gp2".into());
        if !VOLUME_TYPES.contains(&volume_type.as_str()) {
            return Err(EbsError::InvalidParameterValue(format!(
                "Value ({volume_type}) for parameter volumeType is invalid. Valid types: {}",
                VOLUME_TYPES.join(", ")
            )));
        }
        let snapshot = match &input.snapshot_id {
            Some(id) => Some(self.snapshot(region, id)?),
            None => None,
        };
        if let Some(s) = &snapshot
            && s.state != SnapshotState::Completed
        {
            return Err(EbsError::IncorrectState(format!(
                "Snapshot '{}' is not 'completed'.",
                s.snapshot_id
            )));
        }
        let size = match (input.size, &snapshot) {
            (Some(size), Some(s)) if size < s.volume_size => {
                return Err(EbsError::InvalidParameterValue(format!(
                    "Volume of {size}GiB is too small; minimum is {}GiB.",
                    s.volume_size
                )));
            }
            (Some(size), _) => size,
            (None, Some(s)) => s.volume_size,
            (None, None) => {
                return Err(EbsError::MissingParameter(
                    "The request must contain the parameter size or snapshotId".into(),
                ));
            }
        };
        if !(1..=MAX_SIZE_GIB).contains(&size) {
            return Err(EbsError::InvalidParameterValue(format!(
                "Volume of {size}GiB is out of range: sizes are 1 to {MAX_SIZE_GIB}GiB."
            )));
        }
        let tags = tags_for(&input.tag_specifications, "volume")?;
        // AWS: "If KmsKeyId is specified, the encrypted state must be true."
        if input.kms_key_id.is_some() && input.encrypted != Some(true) {
            return Err(EbsError::InvalidParameterDependency(
                "The parameter KmsKeyId requires the parameter Encrypted to be set.".into(),
            ));
        }
        let source_encrypted = snapshot.as_ref().is_some_and(Snapshot::encrypted);
        let encrypted = input.encrypted == Some(true)
            || input.kms_key_id.is_some()
            || source_encrypted
            || self.encryption_by_default(region)?;
        if input.dry_run {
            return Err(EbsError::DryRunOperation);
        }
        let volume_id = new_id("vol");
        let size_bytes = size << 30;
        let target_key = if encrypted {
            match (
                &input.kms_key_id,
                snapshot.as_ref().and_then(|s| s.sealing.as_ref()),
            ) {
                // From an encrypted snapshot, with no key named: its key.
                (None, Some(sealing)) => {
                    Some(self.resolve_key(caller, region, Some(&sealing.kms_key_arn))?)
                }
                (explicit, _) => Some(self.resolve_key(caller, region, explicit.as_deref())?),
            }
        } else {
            None
        };
        let file = self.inner.pool.create_image(&volume_id)?;
        let made = (|| -> Result<Option<Sealing>> {
            match snapshot {
                None => match &target_key {
                    None => image::init_plain(&file, size_bytes).map(|()| None),
                    Some(key_arn) => {
                        let (sealing, header) =
                            self.new_wrapped_key(caller, key_arn, &volume_id)?;
                        image::init_sealed(&file, &header, size_bytes)?;
                        Ok(Some(sealing))
                    }
                },
                Some(snap) => {
                    let plan = self.plan_copy(
                        caller,
                        &snap.snapshot_id,
                        snap.sealing.clone(),
                        &volume_id,
                        target_key.as_deref(),
                        snap.volume_size << 30,
                    )?;
                    let sealing = self.copy_blocks(&plan, &file, &mut |_, _| {})?;
                    // A larger volume than its snapshot: the rest is holes.
                    if size_bytes > plan.size_bytes {
                        file.set_len(image::image_len(size_bytes, sealing.is_some()))
                            .and_then(|()| file.sync_all())
                            .map_err(|e| EbsError::storage("cannot grow the image", e))?;
                    }
                    Ok(sealing)
                }
            }
        })();
        let sealing = match made {
            Ok(s) => s,
            Err(e) => {
                drop(file);
                let _ = self.inner.pool.remove_image(&volume_id);
                return Err(e);
            }
        };
        let volume = Volume {
            volume_id: volume_id.clone(),
            region: region.to_owned(),
            availability_zone: zone,
            size,
            snapshot_id: input.snapshot_id.clone(),
            state: VolumeState::Available,
            create_time: now_iso(),
            volume_type,
            iops: input.iops.or(Some(3000)),
            throughput: input.throughput,
            sealing,
            tags,
            attachment: None,
        };
        self.inner.pool.update(|state| {
            state.volumes.insert(volume_id.clone(), volume.clone());
            Ok(())
        })?;
        tracing::info!(volume = %volume_id, encrypted = volume.encrypted(), "volume created");
        Ok(volume)
    }

    fn volume_in(state: &PoolState, region: &str, id: &str) -> Result<Volume> {
        check_id("vol", id)?;
        state
            .volumes
            .get(id)
            .filter(|v| v.region == region)
            .cloned()
            .ok_or_else(|| EbsError::VolumeNotFound(id.to_owned()))
    }

    pub fn volume(&self, region: &str, id: &str) -> Result<Volume> {
        self.inner.pool.read(|s| Self::volume_in(s, region, id))
    }

    pub fn delete_volume(
        &self,
        _caller: &Caller,
        region: &str,
        volume_id: &str,
        dry_run: bool,
    ) -> Result<()> {
        let volume = self.volume(region, volume_id)?;
        if let Some(a) = &volume.attachment {
            return Err(EbsError::VolumeInUse(format!(
                "Volume {volume_id} is currently attached to {}",
                a.instance_id
            )));
        }
        if dry_run {
            return Err(EbsError::DryRunOperation);
        }
        // Erase the key first: once the record is gone nothing would.
        self.inner.pool.update(|state| {
            let v = Self::volume_in(state, region, volume_id)?;
            if v.attachment.is_some() {
                return Err(EbsError::VolumeInUse(format!(
                    "Volume {volume_id} is currently attached"
                )));
            }
            if v.encrypted() {
                image::crypto_erase(&self.inner.pool.open_image(volume_id)?)?;
            }
            state.volumes.remove(volume_id);
            Ok(())
        })?;
        self.inner.pool.remove_image(volume_id)?;
        tracing::info!(volume = %volume_id, "volume deleted");
        Ok(())
    }

    pub fn describe_volumes(
        &self,
        _caller: &Caller,
        region: &str,
        volume_ids: &[String],
        filters: &[Filter],
    ) -> Result<Vec<Volume>> {
        self.inner.pool.read(|state| {
            let mut out = Vec::new();
            if volume_ids.is_empty() {
                out.extend(
                    state
                        .volumes
                        .values()
                        .filter(|v| v.region == region)
                        .cloned(),
                );
            } else {
                for id in volume_ids {
                    out.push(Self::volume_in(state, region, id)?);
                }
            }
            let mut kept = Vec::new();
            'next: for v in out {
                for f in filters {
                    if !admits(f, volume_filter_values(&v, &f.name))? {
                        continue 'next;
                    }
                }
                kept.push(v);
            }
            Ok(kept)
        })
    }

    pub fn attach_volume(
        &self,
        caller: &Caller,
        region: &str,
        input: AttachVolumeInput,
    ) -> Result<(String, Attachment)> {
        require("VolumeId", &input.volume_id)?;
        require("InstanceId", &input.instance_id)?;
        require("Device", &input.device)?;
        check_id("i", &input.instance_id)?;
        if input.instance_id != self.inner.instance_id {
            return Err(EbsError::InstanceNotFound(input.instance_id));
        }
        check_device_name(&input.device)?;
        let volume = self.volume(region, &input.volume_id)?;
        if volume.availability_zone != format!("{region}a") {
            return Err(EbsError::InvalidVolumeZoneMismatch(format!(
                "The volume '{}' is not in the same availability zone as instance '{}'",
                volume.volume_id, input.instance_id
            )));
        }
        if input.dry_run {
            return Err(EbsError::DryRunOperation);
        }
        // Reserve the volume (and the device name) first, so that two
        // attaches cannot both go ahead.
        let attach_time = now_iso();
        self.inner.pool.update(|state| {
            let v = Self::volume_in(state, region, &input.volume_id)?;
            if v.state != VolumeState::Available || v.attachment.is_some() {
                return Err(EbsError::VolumeInUse(format!(
                    "vol '{}' is already attached to an instance",
                    v.volume_id
                )));
            }
            let taken = state.volumes.values().any(|o| {
                o.region == region
                    && o.attachment
                        .as_ref()
                        .is_some_and(|a| a.device == input.device)
            });
            if taken {
                return Err(EbsError::InvalidParameterValue(format!(
                    "Attachment point {} is already in use",
                    input.device
                )));
            }
            if let Some(v) = state.volumes.get_mut(&input.volume_id) {
                v.attachment = Some(Attachment {
                    instance_id: input.instance_id.clone(),
                    device: input.device.clone(),
                    state: AttachmentState::Attaching,
                    attach_time: attach_time.clone(),
                    delete_on_termination: false,
                    host_device: None,
                });
            }
            Ok(())
        })?;
        let attached = (|| {
            let sealed = match &volume.sealing {
                Some(sealing) => Some(self.unwrap_key(caller, &volume.volume_id, sealing)?),
                None => None,
            };
            let image = self.inner.pool.open_image(&volume.volume_id)?;
            image::check_len(&image, volume.size_bytes(), volume.encrypted())?;
            self.inner.devices.attach(AttachRequest {
                volume_id: volume.volume_id.clone(),
                image,
                size_bytes: volume.size_bytes(),
                sealed,
            })
        })();
        let result = self.inner.pool.update(|state| {
            let Some(v) = state.volumes.get_mut(&input.volume_id) else {
                return Err(EbsError::VolumeNotFound(input.volume_id.clone()));
            };
            match &attached {
                Ok(host) => {
                    v.state = VolumeState::InUse;
                    if let Some(a) = v.attachment.as_mut() {
                        a.state = AttachmentState::Attached;
                        a.host_device = Some(host.by_id.clone());
                    }
                    Ok(v.attachment.clone())
                }
                Err(_) => {
                    v.attachment = None;
                    Ok(None)
                }
            }
        });
        let host = attached?;
        match result? {
            Some(a) => {
                tracing::info!(volume = %input.volume_id, device = %host.block_device, "volume attached");
                // EC2 answers while the attachment is still in progress.
                let mut shown = a;
                shown.state = AttachmentState::Attaching;
                Ok((input.volume_id, shown))
            }
            None => Err(EbsError::Internal("the attachment vanished".into())),
        }
    }

    pub fn detach_volume(
        &self,
        _caller: &Caller,
        region: &str,
        input: DetachVolumeInput,
    ) -> Result<(String, Attachment)> {
        require("VolumeId", &input.volume_id)?;
        let volume = self.volume(region, &input.volume_id)?;
        let Some(attachment) = volume.attachment.clone() else {
            return Err(EbsError::IncorrectState(format!(
                "Volume '{}' is in the 'available' state.",
                volume.volume_id
            )));
        };
        if input
            .instance_id
            .as_ref()
            .is_some_and(|i| *i != attachment.instance_id)
            || input
                .device
                .as_ref()
                .is_some_and(|d| *d != attachment.device)
        {
            return Err(EbsError::AttachmentNotFound(format!(
                "The volume {} is not attached as given",
                volume.volume_id
            )));
        }
        if input.dry_run {
            return Err(EbsError::DryRunOperation);
        }
        self.inner.devices.detach(&volume.volume_id, input.force)?;
        self.inner.pool.update(|state| {
            if let Some(v) = state.volumes.get_mut(&input.volume_id) {
                v.attachment = None;
                v.state = VolumeState::Available;
            }
            Ok(())
        })?;
        tracing::info!(volume = %input.volume_id, "volume detached");
        let mut shown = attachment;
        shown.state = AttachmentState::Detaching;
        shown.host_device = None;
        Ok((input.volume_id, shown))
    }

    // ---- snapshots ----

    fn snapshot_in(state: &PoolState, region: &str, id: &str) -> Result<Snapshot> {
        check_id("snap", id)?;
        state
            .snapshots
            .get(id)
            .filter(|s| s.region == region)
            .cloned()
            .ok_or_else(|| EbsError::SnapshotNotFound(id.to_owned()))
    }

    pub fn snapshot(&self, region: &str, id: &str) -> Result<Snapshot> {
        self.inner.pool.read(|s| Self::snapshot_in(s, region, id))
    }

    /// A point-in-time copy of the volume. While it is attached, writes to
    /// it are held for the copy (a reflink where the pool's filesystem
    /// shares extents, which takes milliseconds), so the snapshot is
    /// crash-consistent: exactly the writes acknowledged before it.
    pub fn create_snapshot(
        &self,
        _caller: &Caller,
        region: &str,
        input: CreateSnapshotInput,
    ) -> Result<Snapshot> {
        require("VolumeId", &input.volume_id)?;
        let volume = self.volume(region, &input.volume_id)?;
        let tags = tags_for(&input.tag_specifications, "snapshot")?;
        if input.dry_run {
            return Err(EbsError::DryRunOperation);
        }
        let snapshot_id = new_id("snap");
        let snapshot = Snapshot {
            snapshot_id: snapshot_id.clone(),
            region: region.to_owned(),
            volume_id: volume.volume_id.clone(),
            volume_size: volume.size,
            state: SnapshotState::Completed,
            start_time: now_iso(),
            progress: "100%".into(),
            owner_id: self.account()?,
            description: input.description.clone().unwrap_or_default(),
            sealing: volume.sealing.clone(),
            tags,
            state_message: None,
        };
        let dst = self.inner.pool.create_image(&snapshot_id)?;
        let copied = (|| {
            let src = self.inner.pool.open_image(&volume.volume_id)?;
            image::check_len(&src, volume.size_bytes(), volume.encrypted())?;
            let _frozen = match self.inner.devices.attached(&volume.volume_id) {
                Some(_) => Some(self.inner.devices.freeze(&volume.volume_id)?),
                None => None,
            };
            image::copy_image(&src, &dst, &mut |_, _| {})
        })();
        if let Err(e) = copied {
            drop(dst);
            let _ = self.inner.pool.remove_image(&snapshot_id);
            return Err(e);
        }
        self.inner.pool.update(|state| {
            state
                .snapshots
                .insert(snapshot_id.clone(), snapshot.clone());
            Ok(())
        })?;
        tracing::info!(snapshot = %snapshot_id, volume = %volume.volume_id, "snapshot created");
        Ok(snapshot)
    }

    /// Decides how the image `source_id` becomes `target_id`: shared as it
    /// is (same key, or both unencrypted), or opened (Decrypt of the
    /// source's key, as the caller) and sealed again under a new data key
    /// of `target_key` (GenerateDataKey with the target's context).
    fn plan_copy(
        &self,
        caller: &Caller,
        source_id: &str,
        source_sealing: Option<Sealing>,
        target_id: &str,
        target_key: Option<&str>,
        size_bytes: u64,
    ) -> Result<CopyPlan> {
        let target_key = match (&source_sealing, target_key) {
            (_, None) => None,
            (Some(s), Some(key)) if s.kms_key_arn == key => None,
            (_, Some(key)) => Some(key),
        };
        let reseal = match target_key {
            None => None,
            Some(key_arn) => {
                let from = match &source_sealing {
                    None => Codec::Plain,
                    Some(s) => {
                        let (k, file_id) = self.unwrap_key(caller, source_id, s)?;
                        Codec::sealed(&k, file_id)
                    }
                };
                let pair = self.inner.kms.generate_data_key(
                    caller,
                    key_arn,
                    32,
                    &context(target_id),
                    true,
                )?;
                let key = DataKey::from_slice(&pair.plaintext)
                    .map_err(|e| EbsError::Internal(format!("bad data key length: {e}")))?;
                let header =
                    image::new_header(&pair.key_arn, pair.key_version, pair.ciphertext_blob)?;
                let sealing = Sealing {
                    kms_key_arn: pair.key_arn,
                    context_id: target_id.to_owned(),
                    data_key_id: image::data_key_id(&header.file_id),
                };
                let to = Codec::sealed(&key, header.file_id);
                Some(Reseal {
                    from,
                    to,
                    header,
                    sealing,
                })
            }
        };
        Ok(CopyPlan {
            source_id: source_id.to_owned(),
            reseal,
            source_sealing,
            size_bytes,
        })
    }

    /// Carries out a plan into the empty `dst`; the sealing of the result.
    fn copy_blocks(
        &self,
        plan: &CopyPlan,
        dst: &std::fs::File,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Option<Sealing>> {
        let src = self.inner.pool.open_image(&plan.source_id)?;
        image::check_len(&src, plan.size_bytes, plan.source_sealing.is_some())?;
        match &plan.reseal {
            None => {
                image::copy_image(&src, dst, progress)?;
                Ok(plan.source_sealing.clone())
            }
            Some(r) => {
                image::init_sealed(dst, &r.header, plan.size_bytes)?;
                image::transcode(&src, &r.from, dst, &r.to, plan.size_bytes, progress)?;
                Ok(Some(r.sealing.clone()))
            }
        }
    }
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

impl Ebs {
    /// Checks a CopySnapshot request and records the new snapshot as
    /// `pending`; [`Ebs::run_copy`] then fills it.
    fn start_copy(
        &self,
        caller: &Caller,
        region: &str,
        input: &CopySnapshotInput,
    ) -> Result<(Snapshot, CopyPlan)> {
        require("SourceSnapshotId", &input.source_snapshot_id)?;
        let source_region = input.source_region.as_deref().unwrap_or(region);
        let source = self.snapshot(source_region, &input.source_snapshot_id)?;
        if source.state != SnapshotState::Completed {
            return Err(EbsError::IncorrectState(format!(
                "Snapshot '{}' is not 'completed'.",
                source.snapshot_id
            )));
        }
        if input.kms_key_id.is_some() && input.encrypted != Some(true) {
            return Err(EbsError::InvalidParameterDependency(
                "The parameter KmsKeyId requires the parameter Encrypted to be set.".into(),
            ));
        }
        let tags = tags_for(&input.tag_specifications, "snapshot")?;
        // An encrypted snapshot's copy is always encrypted; a plain one's
        // when asked or when encryption by default is on in the target region.
        let encrypted = source.encrypted()
            || input.encrypted == Some(true)
            || self.encryption_by_default(region)?;
        if input.dry_run {
            return Err(EbsError::DryRunOperation);
        }
        let target_key = match (&input.kms_key_id, &source.sealing) {
            (None, Some(s)) if source_region == region => Some(s.kms_key_arn.clone()),
            _ if encrypted => {
                Some(self.resolve_key(caller, region, input.kms_key_id.as_deref())?)
            }
            _ => None,
        };
        let snapshot_id = new_id("snap");
        let plan = self.plan_copy(
            caller,
            &source.snapshot_id,
            source.sealing.clone(),
            &snapshot_id,
            target_key.as_deref(),
            source.volume_size << 30,
        )?;
        let sealing = match &plan.reseal {
            Some(r) => Some(r.sealing.clone()),
            None => source.sealing.clone(),
        };
        let snapshot = Snapshot {
            snapshot_id: snapshot_id.clone(),
            region: region.to_owned(),
            volume_id: source.volume_id.clone(),
            volume_size: source.volume_size,
            state: SnapshotState::Pending,
            start_time: now_iso(),
            progress: "0%".into(),
            owner_id: self.account()?,
            description: input
                .description
                .clone()
                .unwrap_or_else(|| format!("[Copied {} from {source_region}]", source.snapshot_id)),
            sealing,
            tags,
            state_message: None,
        };
        self.inner.pool.update(|state| {
            state
                .snapshots
                .insert(snapshot_id.clone(), snapshot.clone());
            state.copies.insert(snapshot_id.clone(), std::process::id());
            Ok(())
        })?;
        Ok((snapshot, plan))
    }

    /// Copies the blocks of a started copy, recording its progress, and
    /// marks it completed (or failed, with the reason).
    fn run_copy(
        &self,
        snapshot_id: &str,
        plan: &CopyPlan,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        let pool = &self.inner.pool;
        // A state write per 10 %, not per megabyte.
        let mut last_recorded = 0;
        let mut track = |done: u64, total: u64| {
            progress(done, total);
            let pct = done
                .saturating_mul(100)
                .checked_div(total)
                .unwrap_or(100)
                .min(100);
            if pct >= last_recorded + 10 || (done == total && pct != last_recorded) {
                last_recorded = pct;
                let _ = pool.update(|s| {
                    if let Some(snap) = s.snapshots.get_mut(snapshot_id) {
                        snap.progress = format!("{pct}%");
                    }
                    Ok(())
                });
            }
        };
        let copied = pool
            .create_image(snapshot_id)
            .and_then(|dst| self.copy_blocks(plan, &dst, &mut track).map(drop));
        pool.update(|state| {
            state.copies.remove(snapshot_id);
            if let Some(s) = state.snapshots.get_mut(snapshot_id) {
                match &copied {
                    Ok(()) => {
                        s.state = SnapshotState::Completed;
                        s.progress = "100%".into();
                    }
                    Err(e) => {
                        s.state = SnapshotState::Error;
                        s.state_message = Some(e.to_string());
                    }
                }
            }
            Ok(())
        })?;
        if copied.is_err() {
            let _ = pool.remove_image(snapshot_id);
        }
        copied
    }

    /// CopySnapshot as the EC2 API does it: answers with the new id at
    /// once; the copy goes on in the background (`pending`, `Progress`),
    /// and ends `completed` or `error`.
    pub fn copy_snapshot(
        &self,
        caller: &Caller,
        region: &str,
        input: CopySnapshotInput,
    ) -> Result<String> {
        let (snapshot, plan) = self.start_copy(caller, region, &input)?;
        let this = self.clone();
        let id = snapshot.snapshot_id.clone();
        std::thread::Builder::new()
            .name(format!("copy {id}"))
            .spawn(move || {
                if let Err(e) = this.run_copy(&id, &plan, &mut |_, _| {}) {
                    tracing::error!(snapshot = %id, error = %e, "snapshot copy failed");
                }
            })
            .map_err(|e| EbsError::Internal(format!("cannot start the copy: {e}")))?;
        Ok(snapshot.snapshot_id)
    }

    /// CopySnapshot run to its end in this thread (the CLI, with a
    /// progress bar): the finished snapshot.
    pub fn copy_snapshot_and_wait(
        &self,
        caller: &Caller,
        region: &str,
        input: CopySnapshotInput,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Snapshot> {
        let (snapshot, plan) = self.start_copy(caller, region, &input)?;
        self.run_copy(&snapshot.snapshot_id, &plan, progress)?;
        self.snapshot(region, &snapshot.snapshot_id)
    }

    pub fn delete_snapshot(
        &self,
        _caller: &Caller,
        region: &str,
        snapshot_id: &str,
        dry_run: bool,
    ) -> Result<()> {
        let snapshot = self.snapshot(region, snapshot_id)?;
        if snapshot.state == SnapshotState::Pending {
            return Err(EbsError::IncorrectState(format!(
                "Snapshot '{snapshot_id}' is still being copied."
            )));
        }
        if dry_run {
            return Err(EbsError::DryRunOperation);
        }
        self.inner.pool.update(|state| {
            let s = Self::snapshot_in(state, region, snapshot_id)?;
            if s.encrypted() && s.state == SnapshotState::Completed {
                image::crypto_erase(&self.inner.pool.open_image(snapshot_id)?)?;
            }
            state.snapshots.remove(snapshot_id);
            Ok(())
        })?;
        self.inner.pool.remove_image(snapshot_id)?;
        tracing::info!(snapshot = %snapshot_id, "snapshot deleted");
        Ok(())
    }

    pub fn describe_snapshots(
        &self,
        _caller: &Caller,
        region: &str,
        snapshot_ids: &[String],
        owner_ids: &[String],
        filters: &[Filter],
    ) -> Result<Vec<Snapshot>> {
        let account = self.account()?;
        self.inner.pool.read(|state| {
            let mut out = Vec::new();
            if snapshot_ids.is_empty() {
                out.extend(
                    state
                        .snapshots
                        .values()
                        .filter(|s| s.region == region)
                        .cloned(),
                );
            } else {
                for id in snapshot_ids {
                    out.push(Self::snapshot_in(state, region, id)?);
                }
            }
            let mut kept = Vec::new();
            'next: for s in out {
                if !owner_ids.is_empty()
                    && !owner_ids
                        .iter()
                        .any(|o| *o == s.owner_id || (o == "self" && s.owner_id == account))
                {
                    continue;
                }
                for f in filters {
                    if !admits(f, snapshot_filter_values(&s, &f.name))? {
                        continue 'next;
                    }
                }
                kept.push(s);
            }
            Ok(kept)
        })
    }

    // ---- encryption by default ----

    fn set_default<T>(
        &self,
        region: &str,
        dry_run: bool,
        f: impl FnOnce(&mut RegionDefaults) -> T,
    ) -> Result<T> {
        if dry_run {
            return Err(EbsError::DryRunOperation);
        }
        self.inner
            .pool
            .update(|s| Ok(f(s.defaults.entry(region.to_owned()).or_default())))
    }

    pub fn enable_ebs_encryption_by_default(
        &self,
        _caller: &Caller,
        region: &str,
        dry_run: bool,
    ) -> Result<bool> {
        self.set_default(region, dry_run, |d| {
            d.encryption_by_default = true;
            true
        })
    }

    pub fn disable_ebs_encryption_by_default(
        &self,
        _caller: &Caller,
        region: &str,
        dry_run: bool,
    ) -> Result<bool> {
        self.set_default(region, dry_run, |d| {
            d.encryption_by_default = false;
            false
        })
    }

    pub fn get_ebs_encryption_by_default(&self, _caller: &Caller, region: &str) -> Result<bool> {
        self.encryption_by_default(region)
    }

    /// The region's default key: the ARN of the key set with
    /// ModifyEbsDefaultKmsKeyId, else the managed key's alias (as AWS
    /// answers before that key exists).
    pub fn get_ebs_default_kms_key_id(&self, _caller: &Caller, region: &str) -> Result<String> {
        let chosen = self.inner.pool.read(|s| {
            Ok(s.defaults
                .get(region)
                .and_then(|d| d.default_kms_key_id.clone()))
        })?;
        match chosen {
            Some(arn) => Ok(arn),
            None => {
                let account = self.account()?;
                Ok(format!(
                    "arn:aws:kms:{region}:{account}:{MANAGED_KEY_ALIAS}"
                ))
            }
        }
    }

    pub fn modify_ebs_default_kms_key_id(
        &self,
        caller: &Caller,
        region: &str,
        kms_key_id: &str,
        dry_run: bool,
    ) -> Result<String> {
        require("KmsKeyId", kms_key_id)?;
        // AWS takes any key id form and stores the ARN; it does not check
        // the key's state until it is used.
        let arn = self.inner.kms.describe_key(caller, kms_key_id)?.arn;
        self.set_default(region, dry_run, |d| {
            d.default_kms_key_id = Some(arn.clone());
            arn
        })
    }

    pub fn reset_ebs_default_kms_key_id(
        &self,
        caller: &Caller,
        region: &str,
        dry_run: bool,
    ) -> Result<String> {
        self.set_default(region, dry_run, |d| d.default_kms_key_id = None)?;
        self.get_ebs_default_kms_key_id(caller, region)
    }

    // ---- the instance, zones, tags ----

    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    pub fn describe_instances(&self, _caller: &Caller, region: &str) -> Result<Vec<Instance>> {
        let attached = self.inner.pool.read(|s| {
            Ok(s.volumes
                .values()
                .filter(|v| v.region == region)
                .filter_map(|v| v.attachment.clone().map(|a| (v.volume_id.clone(), a)))
                .collect())
        })?;
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        Ok(vec![Instance {
            instance_id: self.inner.instance_id.clone(),
            region: region.to_owned(),
            availability_zone: format!("{region}a"),
            launch_time: self.inner.launch_time.clone(),
            hostname,
            attached,
        }])
    }

    /// The zones of a region: `a`, `b`, `c` (labels; the instance is in `a`).
    pub fn describe_availability_zones(
        &self,
        _caller: &Caller,
        region: &str,
    ) -> Result<Vec<String>> {
        Ok(["a", "b", "c"]
            .iter()
            .map(|z| format!("{region}{z}"))
            .collect())
    }

    fn tags_of<'s>(state: &'s mut PoolState, region: &str, id: &str) -> Result<&'s mut Vec<Tag>> {
        if id.starts_with("vol-") {
            Self::volume_in(state, region, id)?;
            if let Some(v) = state.volumes.get_mut(id) {
                return Ok(&mut v.tags);
            }
        } else if id.starts_with("snap-") {
            Self::snapshot_in(state, region, id)?;
            if let Some(s) = state.snapshots.get_mut(id) {
                return Ok(&mut s.tags);
            }
        }
        Err(EbsError::InvalidParameterValue(format!(
            "Invalid id: \"{id}\" (expecting a volume or snapshot id)"
        )))
    }

    pub fn create_tags(
        &self,
        _caller: &Caller,
        region: &str,
        resources: &[String],
        tags: &[Tag],
        dry_run: bool,
    ) -> Result<()> {
        if resources.is_empty() {
            return Err(EbsError::MissingParameter(
                "The request must contain the parameter resourceIdSet".into(),
            ));
        }
        for t in tags {
            check_tag(t)?;
        }
        if dry_run {
            return Err(EbsError::DryRunOperation);
        }
        self.inner.pool.update(|state| {
            for id in resources {
                let have = Self::tags_of(state, region, id)?;
                for t in tags {
                    have.retain(|x| x.key != t.key);
                    have.push(t.clone());
                }
                if have.len() > 50 {
                    return Err(EbsError::InvalidParameterValue(format!(
                        "The resource {id} would have more than 50 tags"
                    )));
                }
            }
            Ok(())
        })
    }

    /// Removes tags: a key with no value removes it whatever its value; a
    /// key with a value only where the value matches.
    pub fn delete_tags(
        &self,
        _caller: &Caller,
        region: &str,
        resources: &[String],
        tags: &[(String, Option<String>)],
        dry_run: bool,
    ) -> Result<()> {
        if dry_run {
            return Err(EbsError::DryRunOperation);
        }
        self.inner.pool.update(|state| {
            for id in resources {
                let have = Self::tags_of(state, region, id)?;
                if tags.is_empty() {
                    have.clear();
                }
                for (key, value) in tags {
                    have.retain(|x| {
                        !(x.key == *key && value.as_ref().is_none_or(|v| *v == x.value))
                    });
                }
            }
            Ok(())
        })
    }
}

impl crate::ec2::Ec2Backend for Ebs {
    fn create_volume(
        &self,
        caller: &Caller,
        region: &str,
        input: CreateVolumeInput,
    ) -> Result<Volume> {
        Ebs::create_volume(self, caller, region, input)
    }
    fn delete_volume(
        &self,
        caller: &Caller,
        region: &str,
        volume_id: &str,
        dry_run: bool,
    ) -> Result<()> {
        Ebs::delete_volume(self, caller, region, volume_id, dry_run)
    }
    fn describe_volumes(
        &self,
        caller: &Caller,
        region: &str,
        volume_ids: &[String],
        filters: &[Filter],
    ) -> Result<Vec<Volume>> {
        Ebs::describe_volumes(self, caller, region, volume_ids, filters)
    }
    fn attach_volume(
        &self,
        caller: &Caller,
        region: &str,
        input: AttachVolumeInput,
    ) -> Result<(String, Attachment)> {
        Ebs::attach_volume(self, caller, region, input)
    }
    fn detach_volume(
        &self,
        caller: &Caller,
        region: &str,
        input: DetachVolumeInput,
    ) -> Result<(String, Attachment)> {
        Ebs::detach_volume(self, caller, region, input)
    }
    fn create_snapshot(
        &self,
        caller: &Caller,
        region: &str,
        input: CreateSnapshotInput,
    ) -> Result<Snapshot> {
        Ebs::create_snapshot(self, caller, region, input)
    }
    fn copy_snapshot(
        &self,
        caller: &Caller,
        region: &str,
        input: CopySnapshotInput,
    ) -> Result<String> {
        Ebs::copy_snapshot(self, caller, region, input)
    }
    fn delete_snapshot(
        &self,
        caller: &Caller,
        region: &str,
        snapshot_id: &str,
        dry_run: bool,
    ) -> Result<()> {
        Ebs::delete_snapshot(self, caller, region, snapshot_id, dry_run)
    }
    fn describe_snapshots(
        &self,
        caller: &Caller,
        region: &str,
        snapshot_ids: &[String],
        owner_ids: &[String],
        filters: &[Filter],
    ) -> Result<Vec<Snapshot>> {
        Ebs::describe_snapshots(self, caller, region, snapshot_ids, owner_ids, filters)
    }
    fn enable_ebs_encryption_by_default(
        &self,
        caller: &Caller,
        region: &str,
        dry_run: bool,
    ) -> Result<bool> {
        Ebs::enable_ebs_encryption_by_default(self, caller, region, dry_run)
    }
    fn disable_ebs_encryption_by_default(
        &self,
        caller: &Caller,
        region: &str,
        dry_run: bool,
    ) -> Result<bool> {
        Ebs::disable_ebs_encryption_by_default(self, caller, region, dry_run)
    }
    fn get_ebs_encryption_by_default(&self, caller: &Caller, region: &str) -> Result<bool> {
        Ebs::get_ebs_encryption_by_default(self, caller, region)
    }
    fn get_ebs_default_kms_key_id(&self, caller: &Caller, region: &str) -> Result<String> {
        Ebs::get_ebs_default_kms_key_id(self, caller, region)
    }
    fn modify_ebs_default_kms_key_id(
        &self,
        caller: &Caller,
        region: &str,
        kms_key_id: &str,
        dry_run: bool,
    ) -> Result<String> {
        Ebs::modify_ebs_default_kms_key_id(self, caller, region, kms_key_id, dry_run)
    }
    fn reset_ebs_default_kms_key_id(
        &self,
        caller: &Caller,
        region: &str,
        dry_run: bool,
    ) -> Result<String> {
        Ebs::reset_ebs_default_kms_key_id(self, caller, region, dry_run)
    }
    fn describe_instances(&self, caller: &Caller, region: &str) -> Result<Vec<Instance>> {
        Ebs::describe_instances(self, caller, region)
    }
    fn create_tags(
        &self,
        caller: &Caller,
        region: &str,
        resources: &[String],
        tags: &[Tag],
        dry_run: bool,
    ) -> Result<()> {
        Ebs::create_tags(self, caller, region, resources, tags, dry_run)
    }
    fn delete_tags(
        &self,
        caller: &Caller,
        region: &str,
        resources: &[String],
        tags: &[(String, Option<String>)],
        dry_run: bool,
    ) -> Result<()> {
        Ebs::delete_tags(self, caller, region, resources, tags, dry_run)
    }
    fn describe_availability_zones(&self, caller: &Caller, region: &str) -> Result<Vec<String>> {
        Ebs::describe_availability_zones(self, caller, region)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use kmsfs_kms::clock::SystemClock;
    use kmsfs_kms::local::CreateKeyInput;
    use kmsfs_kms::store::RootSecret;

    use super::super::devices::{Frozen, HostDevice};
    use super::*;

    /// Serves "devices" in memory: keeps each attached image and its codec
    /// so a test can write to an attached volume as its user would.
    #[derive(Default)]
    struct MemDevices {
        attached: Mutex<BTreeMap<String, (std::fs::File, Codec)>>,
        freezes: Mutex<u32>,
    }

    struct Thaw;
    impl Frozen for Thaw {}

    impl BlockDevices for MemDevices {
        fn attach(&self, r: AttachRequest) -> Result<HostDevice> {
            let codec = match r.sealed {
                Some((key, id)) => Codec::sealed(&key, id),
                None => Codec::Plain,
            };
            self.attached
                .lock()
                .unwrap()
                .insert(r.volume_id.clone(), (r.image, codec));
            Ok(self.attached(&r.volume_id).unwrap())
        }
        fn detach(&self, volume_id: &str, _force: bool) -> Result<()> {
            self.attached.lock().unwrap().remove(volume_id);
            Ok(())
        }
        fn attached(&self, volume_id: &str) -> Option<HostDevice> {
            self.attached
                .lock()
                .unwrap()
                .contains_key(volume_id)
                .then(|| HostDevice {
                    block_device: "/dev/mem0".into(),
                    by_id: format!("/dev/disk/by-id/kmsfs-{volume_id}"),
                })
        }
        fn freeze(&self, _volume_id: &str) -> Result<Box<dyn Frozen>> {
            *self.freezes.lock().unwrap() += 1;
            Ok(Box::new(Thaw))
        }
    }

    impl MemDevices {
        fn write(&self, volume_id: &str, offset: u64, data: &[u8]) {
            let map = self.attached.lock().unwrap();
            let (file, codec) = &map[volume_id];
            codec.write(file, offset, data).unwrap();
        }
        fn read(&self, volume_id: &str, offset: u64, len: usize) -> Vec<u8> {
            let map = self.attached.lock().unwrap();
            let (file, codec) = &map[volume_id];
            codec.read(file, offset, len).unwrap()
        }
    }

    struct World {
        _tmp: tempfile::TempDir,
        ebs: Ebs,
        devices: Arc<MemDevices>,
        me: Caller,
        key_a: String,
        key_b: String,
    }

    const R: &str = "us-east-1";

    fn world() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let kms = Arc::new(
            LocalKms::open(
                &tmp.path().join("keys"),
                &RootSecret::KeyFile,
                Arc::new(SystemClock),
            )
            .unwrap(),
        );
        let me = Caller::current();
        let key_a = kms.create_key(&me, CreateKeyInput::default()).unwrap().arn;
        let key_b = kms.create_key(&me, CreateKeyInput::default()).unwrap().arn;
        let devices = Arc::new(MemDevices::default());
        let ebs = Ebs::open(&tmp.path().join("pool"), kms, devices.clone()).unwrap();
        World {
            _tmp: tmp,
            ebs,
            devices,
            me,
            key_a,
            key_b,
        }
    }

    fn encrypted(key: &str, size: u64) -> CreateVolumeInput {
        CreateVolumeInput {
            size: Some(size),
            encrypted: Some(true),
            kms_key_id: Some(key.to_owned()),
            ..Default::default()
        }
    }

    fn attach(w: &World, volume_id: &str) -> Result<(String, Attachment)> {
        w.ebs.attach_volume(
            &w.me,
            R,
            AttachVolumeInput {
                volume_id: volume_id.into(),
                instance_id: w.ebs.instance_id().into(),
                device: "/dev/sdf".into(),
                dry_run: false,
            },
        )
    }

    fn detach(w: &World, volume_id: &str) {
        w.ebs
            .detach_volume(
                &w.me,
                R,
                DetachVolumeInput {
                    volume_id: volume_id.into(),
                    ..Default::default()
                },
            )
            .unwrap();
    }

    #[test]
    fn an_encrypted_volume_snapshot_and_copies_keep_or_change_the_data_key() {
        let w = world();
        let vol = w
            .ebs
            .create_volume(&w.me, R, encrypted(&w.key_a, 1))
            .unwrap();
        assert!(vol.encrypted());
        assert_eq!(vol.sealing.as_ref().unwrap().kms_key_arn, w.key_a);
        attach(&w, &vol.volume_id).unwrap();
        w.devices.write(&vol.volume_id, 1 << 20, b"hello, volume");
        let snap = w
            .ebs
            .create_snapshot(
                &w.me,
                R,
                CreateSnapshotInput {
                    volume_id: vol.volume_id.clone(),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(*w.devices.freezes.lock().unwrap(), 1);
        let dek = |s: &Snapshot| s.sealing.as_ref().unwrap().data_key_id.clone();
        assert_eq!(dek(&snap), vol.sealing.as_ref().unwrap().data_key_id);

        // Same key: the copy shares the data key; another key: a new one.
        let same = w
            .ebs
            .copy_snapshot_and_wait(
                &w.me,
                R,
                CopySnapshotInput {
                    source_snapshot_id: snap.snapshot_id.clone(),
                    ..Default::default()
                },
                &mut |_, _| {},
            )
            .unwrap();
        assert_eq!(dek(&same), dek(&snap));
        let other = w
            .ebs
            .copy_snapshot_and_wait(
                &w.me,
                R,
                CopySnapshotInput {
                    source_snapshot_id: snap.snapshot_id.clone(),
                    encrypted: Some(true),
                    kms_key_id: Some(w.key_b.clone()),
                    ..Default::default()
                },
                &mut |_, _| {},
            )
            .unwrap();
        assert_eq!(other.state, SnapshotState::Completed);
        assert_eq!(other.progress, "100%");
        assert_ne!(dek(&other), dek(&snap));
        assert_eq!(other.sealing.as_ref().unwrap().kms_key_arn, w.key_b);
        assert_eq!(
            other.sealing.as_ref().unwrap().context_id,
            other.snapshot_id
        );

        // A volume from the re-keyed copy reads what was written.
        let restored = w
            .ebs
            .create_volume(
                &w.me,
                R,
                CreateVolumeInput {
                    snapshot_id: Some(other.snapshot_id.clone()),
                    availability_zone: Some(format!("{R}a")),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(restored.size, 1);
        assert_eq!(restored.sealing.as_ref().unwrap().data_key_id, dek(&other));
        attach(&w, &restored.volume_id).unwrap_err(); // /dev/sdf is taken
        detach(&w, &vol.volume_id);
        attach(&w, &restored.volume_id).unwrap();
        assert_eq!(
            w.devices.read(&restored.volume_id, 1 << 20, 13),
            b"hello, volume"
        );
    }

    #[test]
    fn a_disabled_key_keeps_an_attached_volume_and_refuses_the_next_attach() {
        let w = world();
        let vol = w
            .ebs
            .create_volume(&w.me, R, encrypted(&w.key_a, 1))
            .unwrap();
        attach(&w, &vol.volume_id).unwrap();
        w.ebs.kms().disable_key(&w.me, &w.key_a).unwrap();
        w.devices.write(&vol.volume_id, 0, b"still writing");
        assert_eq!(w.devices.read(&vol.volume_id, 0, 13), b"still writing");
        detach(&w, &vol.volume_id);
        let e = attach(&w, &vol.volume_id).unwrap_err();
        assert_eq!(e.code(), "KMS.DisabledException");
        let e = w
            .ebs
            .create_volume(&w.me, R, encrypted(&w.key_a, 1))
            .unwrap_err();
        assert_eq!(e.code(), "KMS.DisabledException");
        assert_eq!(
            w.ebs.volume(R, &vol.volume_id).unwrap().state,
            VolumeState::Available
        );
        w.ebs.kms().enable_key(&w.me, &w.key_a).unwrap();
        attach(&w, &vol.volume_id).unwrap();
        assert_eq!(w.devices.read(&vol.volume_id, 0, 13), b"still writing");
    }

    #[test]
    fn a_key_pending_deletion_refuses_attach_until_the_deletion_is_cancelled() {
        let w = world();
        let vol = w
            .ebs
            .create_volume(&w.me, R, encrypted(&w.key_a, 1))
            .unwrap();
        attach(&w, &vol.volume_id).unwrap();
        w.ebs
            .kms()
            .schedule_key_deletion(&w.me, &w.key_a, Some(7))
            .unwrap();
        w.devices.write(&vol.volume_id, 0, b"pending");
        detach(&w, &vol.volume_id);
        let e = attach(&w, &vol.volume_id).unwrap_err();
        assert_eq!(e.code(), "KMS.KMSInvalidStateException");
        // Cancelling leaves the key disabled, as at AWS; enabling it again
        // makes the volume usable.
        w.ebs.kms().cancel_key_deletion(&w.me, &w.key_a).unwrap();
        w.ebs.kms().enable_key(&w.me, &w.key_a).unwrap();
        attach(&w, &vol.volume_id).unwrap();
        assert_eq!(w.devices.read(&vol.volume_id, 0, 7), b"pending");
    }

    #[test]
    fn encryption_by_default_uses_the_managed_key_or_the_chosen_one() {
        let w = world();
        let plain = w
            .ebs
            .create_volume(
                &w.me,
                R,
                CreateVolumeInput {
                    size: Some(1),
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(!plain.encrypted());
        assert!(
            w.ebs
                .enable_ebs_encryption_by_default(&w.me, R, false)
                .unwrap()
        );
        assert!(w.ebs.get_ebs_encryption_by_default(&w.me, R).unwrap());
        assert!(
            !w.ebs
                .get_ebs_encryption_by_default(&w.me, "eu-west-1")
                .unwrap()
        );
        assert!(
            w.ebs
                .get_ebs_default_kms_key_id(&w.me, R)
                .unwrap()
                .ends_with(":alias/aws/ebs")
        );
        let v = w
            .ebs
            .create_volume(
                &w.me,
                R,
                CreateVolumeInput {
                    size: Some(1),
                    ..Default::default()
                },
            )
            .unwrap();
        let managed = w
            .ebs
            .kms()
            .describe_key(&w.me, MANAGED_KEY_ALIAS)
            .unwrap()
            .arn;
        assert_eq!(v.sealing.as_ref().unwrap().kms_key_arn, managed);
        w.ebs
            .modify_ebs_default_kms_key_id(&w.me, R, &w.key_b, false)
            .unwrap();
        let v = w
            .ebs
            .create_volume(
                &w.me,
                R,
                CreateVolumeInput {
                    size: Some(1),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(v.sealing.as_ref().unwrap().kms_key_arn, w.key_b);
        let reset = w.ebs.reset_ebs_default_kms_key_id(&w.me, R, false).unwrap();
        assert!(reset.ends_with(":alias/aws/ebs"), "{reset}");
        // Nobody administers the managed key.
        assert!(w.ebs.kms().disable_key(&w.me, &managed).is_err());
    }

    #[test]
    fn regions_filters_dry_runs_and_deletion() {
        let w = world();
        let v = w
            .ebs
            .create_volume(&w.me, R, encrypted(&w.key_a, 2))
            .unwrap();
        let e = w
            .ebs
            .describe_volumes(&w.me, "eu-west-1", std::slice::from_ref(&v.volume_id), &[])
            .unwrap_err();
        assert_eq!(e.code(), "InvalidVolume.NotFound");
        assert!(
            w.ebs
                .describe_volumes(&w.me, "eu-west-1", &[], &[])
                .unwrap()
                .is_empty()
        );
        let f = |name: &str, value: &str| Filter {
            name: name.into(),
            values: vec![value.into()],
        };
        let found = |filters: &[Filter]| {
            w.ebs
                .describe_volumes(&w.me, R, &[], filters)
                .unwrap()
                .len()
        };
        assert_eq!(found(&[f("encrypted", "true"), f("size", "2")]), 1);
        assert_eq!(found(&[f("status", "in-use")]), 0);
        assert_eq!(found(&[f("volume-id", "vol-*")]), 1);
        assert!(
            w.ebs
                .describe_volumes(&w.me, R, &[], &[f("nonsense", "x")])
                .is_err()
        );
        let e = w
            .ebs
            .create_volume(
                &w.me,
                R,
                CreateVolumeInput {
                    size: Some(1),
                    dry_run: true,
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert_eq!(e.code(), "DryRunOperation");
        assert_eq!(found(&[]), 1);
        attach(&w, &v.volume_id).unwrap();
        assert_eq!(
            w.ebs
                .delete_volume(&w.me, R, &v.volume_id, false)
                .unwrap_err()
                .code(),
            "VolumeInUse"
        );
        detach(&w, &v.volume_id);
        let image = w
            .ebs
            .pool()
            .dir()
            .join("images")
            .join(format!("{}.img", v.volume_id));
        assert!(image.exists());
        w.ebs.delete_volume(&w.me, R, &v.volume_id, false).unwrap();
        assert!(!image.exists());
        assert_eq!(found(&[]), 0);
        let e = w
            .ebs
            .create_volume(&w.me, R, CreateVolumeInput::default())
            .unwrap_err();
        assert_eq!(e.code(), "MissingParameter");
        let key_without_encrypted = CreateVolumeInput {
            size: Some(1),
            kms_key_id: Some(w.key_a.clone()),
            ..Default::default()
        };
        let e = w
            .ebs
            .create_volume(&w.me, R, key_without_encrypted)
            .unwrap_err();
        assert_eq!(e.code(), "InvalidParameterDependency");
    }

    #[test]
    fn a_restart_drops_attachments_nobody_serves() {
        let w = world();
        let v = w
            .ebs
            .create_volume(&w.me, R, encrypted(&w.key_a, 1))
            .unwrap();
        attach(&w, &v.volume_id).unwrap();
        assert_eq!(
            w.ebs.volume(R, &v.volume_id).unwrap().state,
            VolumeState::InUse
        );
        // The devices are gone (a reboot); the pool still says in-use.
        let fresh: Arc<dyn BlockDevices> = Arc::new(MemDevices::default());
        let again = Ebs::open(
            w.ebs.pool().dir(),
            Arc::new(
                LocalKms::open(
                    &w._tmp.path().join("keys"),
                    &RootSecret::KeyFile,
                    Arc::new(SystemClock),
                )
                .unwrap(),
            ),
            fresh,
        )
        .unwrap();
        let v2 = again.volume(R, &v.volume_id).unwrap();
        assert_eq!(v2.state, VolumeState::Available);
        assert!(v2.attachment.is_none());
    }
}
