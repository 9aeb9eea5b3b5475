//! The responses as EC2 writes them: XML under
//! `<{Action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">`,
//! members under their `locationName`s in botocore's `ec2` model, lists as
//! `<fooSet><item>…</item></fooSet>`, and EC2's error document.
//!
//! botocore parses these strictly by the model (an unknown element is
//! skipped, a misnamed one is lost), so the names here are the contract.

use crate::model::{Attachment, Instance, Snapshot, Tag, Volume};

pub const XMLNS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// A typed response: what [`super::execute`] produced for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ec2Response {
    CreateVolume(Volume),
    DeleteVolume,
    DescribeVolumes(Vec<Volume>),
    AttachVolume {
        volume_id: String,
        attachment: Attachment,
    },
    DetachVolume {
        volume_id: String,
        attachment: Attachment,
    },
    CreateSnapshot(Snapshot),
    /// The new snapshot's id and the tags its TagSpecification gave it.
    CopySnapshot {
        snapshot_id: String,
        tags: Vec<Tag>,
    },
    DeleteSnapshot,
    DescribeSnapshots(Vec<Snapshot>),
    EnableEbsEncryptionByDefault(bool),
    DisableEbsEncryptionByDefault(bool),
    GetEbsEncryptionByDefault(bool),
    GetEbsDefaultKmsKeyId(String),
    ModifyEbsDefaultKmsKeyId(String),
    ResetEbsDefaultKmsKeyId(String),
    DescribeInstances {
        /// The account the (one) reservation belongs to.
        owner_id: String,
        instances: Vec<Instance>,
    },
    CreateTags,
    DeleteTags,
    DescribeAvailabilityZones {
        region: String,
        zones: Vec<String>,
    },
}

impl Ec2Response {
    pub fn action(&self) -> &'static str {
        match self {
            Ec2Response::CreateVolume(_) => "CreateVolume",
            Ec2Response::DeleteVolume => "DeleteVolume",
            Ec2Response::DescribeVolumes(_) => "DescribeVolumes",
            Ec2Response::AttachVolume { .. } => "AttachVolume",
            Ec2Response::DetachVolume { .. } => "DetachVolume",
            Ec2Response::CreateSnapshot(_) => "CreateSnapshot",
            Ec2Response::CopySnapshot { .. } => "CopySnapshot",
            Ec2Response::DeleteSnapshot => "DeleteSnapshot",
            Ec2Response::DescribeSnapshots(_) => "DescribeSnapshots",
            Ec2Response::EnableEbsEncryptionByDefault(_) => "EnableEbsEncryptionByDefault",
            Ec2Response::DisableEbsEncryptionByDefault(_) => "DisableEbsEncryptionByDefault",
            Ec2Response::GetEbsEncryptionByDefault(_) => "GetEbsEncryptionByDefault",
            Ec2Response::GetEbsDefaultKmsKeyId(_) => "GetEbsDefaultKmsKeyId",
            Ec2Response::ModifyEbsDefaultKmsKeyId(_) => "ModifyEbsDefaultKmsKeyId",
            Ec2Response::ResetEbsDefaultKmsKeyId(_) => "ResetEbsDefaultKmsKeyId",
            Ec2Response::DescribeInstances { .. } => "DescribeInstances",
            Ec2Response::CreateTags => "CreateTags",
            Ec2Response::DeleteTags => "DeleteTags",
            Ec2Response::DescribeAvailabilityZones { .. } => "DescribeAvailabilityZones",
        }
    }

    /// The response document, with `request_id` as its `<requestId>`.
    pub fn to_xml(&self, request_id: &str) -> String {
        let mut x = Xml::default();
        x.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let root = format!("{}Response", self.action());
        x.raw(&format!("<{root} xmlns=\"{XMLNS}\">"));
        x.text("requestId", request_id);
        match self {
            Ec2Response::CreateVolume(v) => volume_members(&mut x, v),
            Ec2Response::DescribeVolumes(vs) => x.set("volumeSet", vs, volume_members),
            Ec2Response::AttachVolume {
                volume_id,
                attachment,
            }
            | Ec2Response::DetachVolume {
                volume_id,
                attachment,
            } => attachment_members(&mut x, volume_id, attachment),
            Ec2Response::CreateSnapshot(s) => snapshot_members(&mut x, s),
            Ec2Response::CopySnapshot { snapshot_id, tags } => {
                x.text("snapshotId", snapshot_id);
                tag_set(&mut x, tags);
            }
            Ec2Response::DescribeSnapshots(ss) => x.set("snapshotSet", ss, snapshot_members),
            Ec2Response::EnableEbsEncryptionByDefault(b)
            | Ec2Response::DisableEbsEncryptionByDefault(b)
            | Ec2Response::GetEbsEncryptionByDefault(b) => x.bool("ebsEncryptionByDefault", *b),
            Ec2Response::GetEbsDefaultKmsKeyId(k)
            | Ec2Response::ModifyEbsDefaultKmsKeyId(k)
            | Ec2Response::ResetEbsDefaultKmsKeyId(k) => x.text("kmsKeyId", k),
            Ec2Response::DescribeInstances {
                owner_id,
                instances,
            } => {
                x.open("reservationSet");
                // One reservation per instance, as EC2 gives instances
                // launched one by one.
                for i in instances {
                    x.open("item");
                    x.text("reservationId", &reservation_id(&i.instance_id));
                    x.text("ownerId", owner_id);
                    x.empty("groupSet");
                    x.open("instancesSet");
                    x.open("item");
                    instance_members(&mut x, i);
                    x.close("item");
                    x.close("instancesSet");
                    x.close("item");
                }
                x.close("reservationSet");
            }
            Ec2Response::DescribeAvailabilityZones { region, zones } => {
                x.set("availabilityZoneInfo", zones, |x, z| {
                    x.text("zoneName", z);
                    x.text("zoneState", "available");
                    x.text("regionName", region);
                    x.text("zoneType", "availability-zone");
                    x.text("optInStatus", "opt-in-not-required");
                    x.text("groupName", region);
                    x.text("networkBorderGroup", region);
                    x.empty("messageSet");
                })
            }
            Ec2Response::DeleteVolume
            | Ec2Response::DeleteSnapshot
            | Ec2Response::CreateTags
            | Ec2Response::DeleteTags => x.bool("return", true),
        }
        x.raw(&format!("</{root}>"));
        x.0
    }
}

/// EC2's error document.
pub fn error_xml(code: &str, message: &str, request_id: &str) -> String {
    let mut x = Xml::default();
    x.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>");
    x.text("Code", code);
    x.text("Message", message);
    x.raw("</Error></Errors>");
    x.text("RequestID", request_id);
    x.raw("</Response>");
    x.0
}

/// `r-` and the instance id's digits: stable per instance, in EC2's form.
fn reservation_id(instance_id: &str) -> String {
    format!(
        "r-{}",
        instance_id.strip_prefix("i-").unwrap_or(instance_id)
    )
}

/// Escapes text for an element's content. Characters XML 1.0 cannot carry
/// at all (most C0 controls) become U+FFFD rather than making the whole
/// document unparseable; `\r` is written as a reference so that parsers'
/// line-end normalisation keeps it.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || matches!(c, '\u{FFFE}' | '\u{FFFF}') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[derive(Default)]
struct Xml(String);

impl Xml {
    fn raw(&mut self, s: &str) {
        self.0.push_str(s);
    }
    fn open(&mut self, tag: &str) {
        self.0.push('<');
        self.0.push_str(tag);
        self.0.push('>');
    }
    fn close(&mut self, tag: &str) {
        self.0.push_str("</");
        self.0.push_str(tag);
        self.0.push('>');
    }
    fn empty(&mut self, tag: &str) {
        self.0.push('<');
        self.0.push_str(tag);
        self.0.push_str("/>");
    }
    fn text(&mut self, tag: &str, value: &str) {
        self.open(tag);
        self.0.push_str(&escape(value));
        self.close(tag);
    }
    fn opt(&mut self, tag: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.text(tag, v);
        }
    }
    fn bool(&mut self, tag: &str, value: bool) {
        self.text(tag, if value { "true" } else { "false" });
    }
    fn num(&mut self, tag: &str, value: impl std::fmt::Display) {
        self.text(tag, &value.to_string());
    }
    /// `<tag><item>…</item>…</tag>` (an empty `<tag/>` for no items).
    fn set<T>(&mut self, tag: &str, items: &[T], mut each: impl FnMut(&mut Xml, &T)) {
        if items.is_empty() {
            self.empty(tag);
            return;
        }
        self.open(tag);
        for item in items {
            self.open("item");
            each(self, item);
            self.close("item");
        }
        self.close(tag);
    }
}

/// `tagSet`, left out when there are no tags (as EC2 does, so that boto3
/// shows no `Tags` key rather than an empty list).
fn tag_set(x: &mut Xml, tags: &[Tag]) {
    if !tags.is_empty() {
        x.set("tagSet", tags, |x, t| {
            x.text("key", &t.key);
            x.text("value", &t.value);
        });
    }
}

/// The members of `VolumeAttachment`.
fn attachment_members(x: &mut Xml, volume_id: &str, a: &Attachment) {
    x.text("volumeId", volume_id);
    x.text("instanceId", &a.instance_id);
    x.text("device", &a.device);
    x.text("status", a.state.as_str());
    x.text("attachTime", &a.attach_time);
    x.bool("deleteOnTermination", a.delete_on_termination);
}

/// The members of `Volume`.
fn volume_members(x: &mut Xml, v: &Volume) {
    x.text("volumeId", &v.volume_id);
    x.num("size", v.size);
    x.text("snapshotId", v.snapshot_id.as_deref().unwrap_or(""));
    x.text("availabilityZone", &v.availability_zone);
    x.text("status", v.state.as_str());
    x.text("createTime", &v.create_time);
    let attachments: Vec<&Attachment> = v.attachment.iter().collect();
    x.set("attachmentSet", &attachments, |x, a| {
        attachment_members(x, &v.volume_id, a)
    });
    x.bool("encrypted", v.encrypted());
    x.opt(
        "kmsKeyId",
        v.sealing.as_ref().map(|s| s.kms_key_arn.as_str()),
    );
    x.text("volumeType", &v.volume_type);
    if let Some(iops) = v.iops {
        x.num("iops", iops);
    }
    if let Some(t) = v.throughput {
        x.num("throughput", t);
    }
    tag_set(x, &v.tags);
    x.bool("multiAttachEnabled", false);
}

/// The members of `Snapshot`.
fn snapshot_members(x: &mut Xml, s: &Snapshot) {
    x.text("snapshotId", &s.snapshot_id);
    x.text("volumeId", &s.volume_id);
    x.text("status", s.state.as_str());
    x.opt("statusMessage", s.state_message.as_deref());
    x.text("startTime", &s.start_time);
    x.text("progress", &s.progress);
    x.text("ownerId", &s.owner_id);
    x.text("description", &s.description);
    x.num("volumeSize", s.volume_size);
    x.bool("encrypted", s.encrypted());
    if let Some(seal) = &s.sealing {
        x.text("kmsKeyId", &seal.kms_key_arn);
        x.text("dataEncryptionKeyId", &seal.data_key_id);
    }
    tag_set(x, &s.tags);
}

/// The members of `Instance` this simulation knows.
fn instance_members(x: &mut Xml, i: &Instance) {
    x.text("instanceId", &i.instance_id);
    x.open("instanceState");
    x.num("code", 16);
    x.text("name", "running");
    x.close("instanceState");
    x.text("privateDnsName", &i.hostname);
    x.text("launchTime", &i.launch_time);
    x.open("placement");
    x.text("availabilityZone", &i.availability_zone);
    x.close("placement");
    x.set("blockDeviceMapping", &i.attached, |x, (volume_id, a)| {
        x.text("deviceName", &a.device);
        x.open("ebs");
        x.text("volumeId", volume_id);
        x.text("status", a.state.as_str());
        x.text("attachTime", &a.attach_time);
        x.bool("deleteOnTermination", a.delete_on_termination);
        x.close("ebs");
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AttachmentState, Sealing, SnapshotState, VolumeState};

    fn attachment() -> Attachment {
        Attachment {
            instance_id: "i-0123456789abcdef0".into(),
            device: "/dev/sdf".into(),
            state: AttachmentState::Attached,
            attach_time: "2026-01-02T03:04:05.000Z".into(),
            delete_on_termination: false,
            host_device: Some("/dev/loop7".into()),
        }
    }

    fn volume() -> Volume {
        Volume {
            volume_id: "vol-0123456789abcdef0".into(),
            region: "local".into(),
            availability_zone: "locala".into(),
            size: 8,
            snapshot_id: None,
            state: VolumeState::InUse,
            create_time: "2026-01-02T03:04:05.000Z".into(),
            volume_type: "gp3".into(),
            iops: Some(3000),
            throughput: None,
            sealing: Some(Sealing {
                kms_key_arn: "arn:aws:kms:local:111122223333:key/k".into(),
                context_id: "vol-0123456789abcdef0".into(),
                data_key_id: "abcd".into(),
            }),
            tags: vec![Tag {
                key: "Name".into(),
                value: "a<b>&\"c'".into(),
            }],
            attachment: Some(attachment()),
        }
    }

    #[test]
    fn a_volume_has_the_model_members() {
        let xml = Ec2Response::CreateVolume(volume()).to_xml("req-1");
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CreateVolumeResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>req-1</requestId><volumeId>vol-0123456789abcdef0</volumeId><size>8</size><snapshotId></snapshotId><availabilityZone>locala</availabilityZone><status>in-use</status>"), "{xml}");
        for part in [
            "<attachmentSet><item><volumeId>vol-0123456789abcdef0</volumeId><instanceId>i-0123456789abcdef0</instanceId><device>/dev/sdf</device><status>attached</status><attachTime>2026-01-02T03:04:05.000Z</attachTime><deleteOnTermination>false</deleteOnTermination></item></attachmentSet>",
            "<encrypted>true</encrypted><kmsKeyId>arn:aws:kms:local:111122223333:key/k</kmsKeyId><volumeType>gp3</volumeType><iops>3000</iops>",
            "<tagSet><item><key>Name</key><value>a&lt;b&gt;&amp;&quot;c&apos;</value></item></tagSet>",
            "<multiAttachEnabled>false</multiAttachEnabled></CreateVolumeResponse>",
        ] {
            assert!(xml.contains(part), "{part} not in {xml}");
        }
        assert!(!xml.contains("throughput"));
        assert!(
            !xml.contains("loop7"),
            "the host device is not an EC2 member"
        );
        let mut plain = volume();
        plain.sealing = None;
        plain.tags.clear();
        plain.attachment = None;
        let xml = Ec2Response::DescribeVolumes(vec![plain]).to_xml("r");
        assert!(xml.contains("<volumeSet><item><volumeId>"), "{xml}");
        assert!(
            xml.contains("<attachmentSet/><encrypted>false</encrypted><volumeType>"),
            "{xml}"
        );
        assert!(
            !xml.contains("kmsKeyId") && !xml.contains("tagSet"),
            "{xml}"
        );
        let xml = Ec2Response::DescribeVolumes(vec![]).to_xml("r");
        assert!(
            xml.contains("<volumeSet/></DescribeVolumesResponse>"),
            "{xml}"
        );
    }

    #[test]
    fn snapshots_attachments_and_simple_answers() {
        let s = Snapshot {
            snapshot_id: "snap-1".into(),
            region: "local".into(),
            volume_id: "vol-1".into(),
            volume_size: 8,
            state: SnapshotState::Error,
            start_time: "t".into(),
            progress: "40%".into(),
            owner_id: "111122223333".into(),
            description: "d".into(),
            sealing: Some(Sealing {
                kms_key_arn: "arn:k".into(),
                context_id: "vol-1".into(),
                data_key_id: "dk".into(),
            }),
            tags: vec![],
            state_message: Some("failed".into()),
        };
        let xml = Ec2Response::DescribeSnapshots(vec![s]).to_xml("r");
        assert!(xml.contains("<snapshotSet><item><snapshotId>snap-1</snapshotId><volumeId>vol-1</volumeId><status>error</status><statusMessage>failed</statusMessage><startTime>t</startTime><progress>40%</progress><ownerId>111122223333</ownerId><description>d</description><volumeSize>8</volumeSize><encrypted>true</encrypted><kmsKeyId>arn:k</kmsKeyId><dataEncryptionKeyId>dk</dataEncryptionKeyId></item></snapshotSet>"), "{xml}");
        let xml = Ec2Response::AttachVolume {
            volume_id: "vol-1".into(),
            attachment: attachment(),
        }
        .to_xml("r");
        assert!(xml.contains("<requestId>r</requestId><volumeId>vol-1</volumeId><instanceId>i-0123456789abcdef0</instanceId><device>/dev/sdf</device><status>attached</status>"), "{xml}");
        let xml = Ec2Response::CopySnapshot {
            snapshot_id: "snap-2".into(),
            tags: vec![Tag {
                key: "k".into(),
                value: "v".into(),
            }],
        }
        .to_xml("r");
        assert!(xml.contains("<snapshotId>snap-2</snapshotId><tagSet><item><key>k</key><value>v</value></item></tagSet></CopySnapshotResponse>"), "{xml}");
        assert!(
            Ec2Response::DeleteVolume
                .to_xml("r")
                .contains("<DeleteVolumeResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r</requestId><return>true</return></DeleteVolumeResponse>")
        );
        assert!(
            Ec2Response::GetEbsEncryptionByDefault(true)
                .to_xml("r")
                .contains("<ebsEncryptionByDefault>true</ebsEncryptionByDefault>")
        );
        assert!(
            Ec2Response::ResetEbsDefaultKmsKeyId("alias/aws/ebs".into())
                .to_xml("r")
                .contains("<ResetEbsDefaultKmsKeyIdResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r</requestId><kmsKeyId>alias/aws/ebs</kmsKeyId>")
        );
    }

    #[test]
    fn instances_are_one_reservation_each() {
        let xml = Ec2Response::DescribeInstances {
            owner_id: "111122223333".into(),
            instances: vec![Instance {
                instance_id: "i-0123456789abcdef0".into(),
                region: "local".into(),
                availability_zone: "locala".into(),
                launch_time: "lt".into(),
                hostname: "host".into(),
                attached: vec![("vol-1".into(), attachment())],
            }],
        }
        .to_xml("r");
        assert!(xml.contains("<reservationSet><item><reservationId>r-0123456789abcdef0</reservationId><ownerId>111122223333</ownerId><groupSet/><instancesSet><item><instanceId>i-0123456789abcdef0</instanceId><instanceState><code>16</code><name>running</name></instanceState><privateDnsName>host</privateDnsName><launchTime>lt</launchTime><placement><availabilityZone>locala</availabilityZone></placement><blockDeviceMapping><item><deviceName>/dev/sdf</deviceName><ebs><volumeId>vol-1</volumeId><status>attached</status><attachTime>2026-01-02T03:04:05.000Z</attachTime><deleteOnTermination>false</deleteOnTermination></ebs></item></blockDeviceMapping></item></instancesSet></item></reservationSet>"), "{xml}");
        let xml = Ec2Response::DescribeAvailabilityZones {
            region: "local".into(),
            zones: vec!["locala".into()],
        }
        .to_xml("r");
        assert!(xml.contains("<availabilityZoneInfo><item><zoneName>locala</zoneName><zoneState>available</zoneState><regionName>local</regionName>"), "{xml}");
    }

    #[test]
    fn escaping_and_the_error_document() {
        assert_eq!(escape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
        assert_eq!(
            escape("x\r\n\ty\u{1}\u{0}é"),
            "x&#13;\n\ty\u{FFFD}\u{FFFD}é"
        );
        assert_eq!(
            error_xml(
                "InvalidVolume.NotFound",
                "The volume 'vol-<x>' does not exist.",
                "id-1"
            ),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>InvalidVolume.NotFound</Code><Message>The volume &apos;vol-&lt;x&gt;&apos; does not exist.</Message></Error></Errors><RequestID>id-1</RequestID></Response>"
        );
    }
}
