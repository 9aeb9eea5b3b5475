//! The EC2 endpoint against the real clients: boto3's `ec2` client and the
//! AWS CLI (`pip install boto3 awscli`), signing with an IAM access key of
//! a fresh key store, and raw HTTP for what those clients never send.
//!
//! The backend is [`Recorder`], a test double: canned answers shaped like
//! the engine's, and a log of every call so that the tests assert what the
//! server passed through (caller, region, typed inputs). botocore parses
//! the XML strictly by the EC2 model, so the fields boto3 returns prove the
//! response shapes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use kmsfs_ebs::EbsError;
use kmsfs_ebs::ec2::Ec2Backend;
use kmsfs_ebs::model::{
    AttachVolumeInput, Attachment, AttachmentState, CopySnapshotInput, CreateSnapshotInput,
    CreateVolumeInput, DetachVolumeInput, Filter, Instance, Sealing, Snapshot, SnapshotState, Tag,
    Volume, VolumeState,
};
use kmsfs_ebs_server::{ServeOptions, serve};
use kmsfs_kms::Caller;
use kmsfs_kms::local::LocalKms;
use kmsfs_kms::sigv4;

type Result<T> = std::result::Result<T, EbsError>;

const REGION: &str = "eu-west-3";
const VOLUME: &str = "vol-0123456789abcdef0";
const INSTANCE: &str = "i-0123456789abcdef0";
const COPY: &str = "snap-0fedcba987654321f";
const TIME: &str = "2026-01-02T03:04:05.000Z";

/// One backend call as the server made it.
#[derive(Debug, Clone)]
struct Call {
    op: &'static str,
    uid: u32,
    region: String,
    /// The inputs, `{:?}`-formatted.
    detail: String,
}

/// The test double behind the server: remembers its calls and the volumes
/// created, answers everything else with fixed records.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<Call>>,
    volumes: Mutex<Vec<Volume>>,
}

impl Recorder {
    fn record(&self, op: &'static str, caller: &Caller, region: &str, detail: String) {
        self.calls.lock().unwrap().push(Call {
            op,
            uid: caller.uid,
            region: region.into(),
            detail,
        });
    }

    fn calls(&self, op: &str) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.op == op)
            .cloned()
            .collect()
    }

    fn attachment(state: AttachmentState, instance: &str, device: &str) -> Attachment {
        Attachment {
            instance_id: instance.into(),
            device: device.into(),
            state,
            attach_time: TIME.into(),
            delete_on_termination: false,
            host_device: Some("/dev/loop0".into()),
        }
    }

    fn snapshot(id: &str, region: &str) -> Snapshot {
        Snapshot {
            snapshot_id: id.into(),
            region: region.into(),
            volume_id: VOLUME.into(),
            volume_size: 8,
            state: SnapshotState::Pending,
            start_time: TIME.into(),
            progress: "0%".into(),
            owner_id: "111122223333".into(),
            description: "nightly".into(),
            sealing: Some(Sealing {
                kms_key_arn: format!("arn:aws:kms:{region}:111122223333:key/k1"),
                context_id: VOLUME.into(),
                data_key_id: "00112233".into(),
            }),
            tags: vec![],
            state_message: None,
        }
    }
}

fn dry(dry_run: bool) -> Result<()> {
    if dry_run {
        Err(EbsError::DryRunOperation)
    } else {
        Ok(())
    }
}

impl Ec2Backend for Recorder {
    fn create_volume(&self, c: &Caller, region: &str, input: CreateVolumeInput) -> Result<Volume> {
        self.record("create_volume", c, region, format!("{input:?}"));
        dry(input.dry_run)?;
        let v = Volume {
            volume_id: VOLUME.into(),
            region: region.into(),
            availability_zone: input
                .availability_zone
                .unwrap_or_else(|| format!("{region}a")),
            size: input.size.unwrap_or(1),
            snapshot_id: input.snapshot_id,
            state: VolumeState::Creating,
            create_time: TIME.into(),
            volume_type: input.volume_type.unwrap_or_else(|| "gp3".into()),
            iops: input.iops,
            throughput: input.throughput,
            sealing: (input.encrypted == Some(true)).then(|| Sealing {
                kms_key_arn: format!("arn:aws:kms:{region}:111122223333:key/k1"),
                context_id: VOLUME.into(),
                data_key_id: "00112233".into(),
            }),
            tags: input
                .tag_specifications
                .into_iter()
                .filter(|s| s.resource_type == "volume")
                .flat_map(|s| s.tags)
                .collect(),
            attachment: None,
        };
        self.volumes.lock().unwrap().push(v.clone());
        Ok(v)
    }

    fn delete_volume(&self, c: &Caller, region: &str, id: &str, dry_run: bool) -> Result<()> {
        self.record("delete_volume", c, region, format!("{id} {dry_run}"));
        dry(dry_run)?;
        Err(EbsError::VolumeNotFound(id.into()))
    }

    fn describe_volumes(
        &self,
        c: &Caller,
        region: &str,
        ids: &[String],
        filters: &[Filter],
    ) -> Result<Vec<Volume>> {
        self.record(
            "describe_volumes",
            c,
            region,
            format!("{ids:?} {filters:?}"),
        );
        let mut vs = self.volumes.lock().unwrap().clone();
        for v in &mut vs {
            v.state = VolumeState::InUse;
            v.attachment = Some(Self::attachment(
                AttachmentState::Attached,
                INSTANCE,
                "/dev/sdf",
            ));
        }
        Ok(vs)
    }

    fn attach_volume(
        &self,
        c: &Caller,
        region: &str,
        input: AttachVolumeInput,
    ) -> Result<(String, Attachment)> {
        self.record("attach_volume", c, region, format!("{input:?}"));
        dry(input.dry_run)?;
        Ok((
            input.volume_id,
            Self::attachment(
                AttachmentState::Attaching,
                &input.instance_id,
                &input.device,
            ),
        ))
    }

    fn detach_volume(
        &self,
        c: &Caller,
        region: &str,
        input: DetachVolumeInput,
    ) -> Result<(String, Attachment)> {
        self.record("detach_volume", c, region, format!("{input:?}"));
        dry(input.dry_run)?;
        Ok((
            input.volume_id,
            Self::attachment(AttachmentState::Detaching, INSTANCE, "/dev/sdf"),
        ))
    }

    fn create_snapshot(
        &self,
        c: &Caller,
        region: &str,
        input: CreateSnapshotInput,
    ) -> Result<Snapshot> {
        self.record("create_snapshot", c, region, format!("{input:?}"));
        dry(input.dry_run)?;
        Ok(Self::snapshot("snap-0123456789abcdef0", region))
    }

    fn copy_snapshot(&self, c: &Caller, region: &str, input: CopySnapshotInput) -> Result<String> {
        self.record("copy_snapshot", c, region, format!("{input:?}"));
        dry(input.dry_run)?;
        Ok(COPY.into())
    }

    fn delete_snapshot(&self, c: &Caller, region: &str, id: &str, dry_run: bool) -> Result<()> {
        self.record("delete_snapshot", c, region, format!("{id} {dry_run}"));
        dry(dry_run)
    }

    fn describe_snapshots(
        &self,
        c: &Caller,
        region: &str,
        ids: &[String],
        owners: &[String],
        filters: &[Filter],
    ) -> Result<Vec<Snapshot>> {
        self.record(
            "describe_snapshots",
            c,
            region,
            format!("{ids:?} {owners:?} {filters:?}"),
        );
        Ok(vec![Self::snapshot(COPY, region)])
    }

    fn enable_ebs_encryption_by_default(&self, c: &Caller, r: &str, dry_run: bool) -> Result<bool> {
        self.record(
            "enable_ebs_encryption_by_default",
            c,
            r,
            format!("{dry_run}"),
        );
        dry(dry_run).map(|_| true)
    }

    fn disable_ebs_encryption_by_default(
        &self,
        c: &Caller,
        r: &str,
        dry_run: bool,
    ) -> Result<bool> {
        self.record(
            "disable_ebs_encryption_by_default",
            c,
            r,
            format!("{dry_run}"),
        );
        dry(dry_run).map(|_| false)
    }

    fn get_ebs_encryption_by_default(&self, c: &Caller, r: &str) -> Result<bool> {
        self.record("get_ebs_encryption_by_default", c, r, String::new());
        Ok(true)
    }

    fn get_ebs_default_kms_key_id(&self, c: &Caller, r: &str) -> Result<String> {
        self.record("get_ebs_default_kms_key_id", c, r, String::new());
        Ok("alias/aws/ebs".into())
    }

    fn modify_ebs_default_kms_key_id(
        &self,
        c: &Caller,
        r: &str,
        key: &str,
        dry_run: bool,
    ) -> Result<String> {
        self.record(
            "modify_ebs_default_kms_key_id",
            c,
            r,
            format!("{key} {dry_run}"),
        );
        dry(dry_run)?;
        Ok(format!("arn:aws:kms:{r}:111122223333:key/k2"))
    }

    fn reset_ebs_default_kms_key_id(&self, c: &Caller, r: &str, dry_run: bool) -> Result<String> {
        self.record("reset_ebs_default_kms_key_id", c, r, format!("{dry_run}"));
        dry(dry_run)?;
        Ok("alias/aws/ebs".into())
    }

    fn describe_instances(&self, c: &Caller, region: &str) -> Result<Vec<Instance>> {
        self.record("describe_instances", c, region, String::new());
        Ok(vec![Instance {
            instance_id: INSTANCE.into(),
            region: region.into(),
            availability_zone: format!("{region}a"),
            launch_time: TIME.into(),
            hostname: "host.internal".into(),
            attached: vec![(
                VOLUME.into(),
                Self::attachment(AttachmentState::Attached, INSTANCE, "/dev/sdf"),
            )],
        }])
    }

    fn create_tags(
        &self,
        c: &Caller,
        r: &str,
        resources: &[String],
        tags: &[Tag],
        dry_run: bool,
    ) -> Result<()> {
        self.record(
            "create_tags",
            c,
            r,
            format!("{resources:?} {tags:?} {dry_run}"),
        );
        dry(dry_run)
    }

    fn delete_tags(
        &self,
        c: &Caller,
        r: &str,
        resources: &[String],
        tags: &[(String, Option<String>)],
        dry_run: bool,
    ) -> Result<()> {
        self.record(
            "delete_tags",
            c,
            r,
            format!("{resources:?} {tags:?} {dry_run}"),
        );
        dry(dry_run)
    }

    fn describe_availability_zones(&self, c: &Caller, region: &str) -> Result<Vec<String>> {
        self.record("describe_availability_zones", c, region, String::new());
        Ok(vec![format!("{region}a"), format!("{region}b")])
    }
}

struct Served {
    _dir: tempfile::TempDir,
    addr: SocketAddr,
    backend: Arc<Recorder>,
    key_id: String,
    secret: String,
}

impl Served {
    /// A fresh store with an access key of the current Unix user, and the
    /// server on 127.0.0.1:0 in a thread (it lives until the process ends).
    fn start(opts: ServeOptions) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let kms = Arc::new(
            LocalKms::open(
                &dir.path().join("keystore"),
                &kmsfs_kms::store::RootSecret::KeyFile,
                Arc::new(kmsfs_kms::clock::SystemClock),
            )
            .unwrap(),
        );
        let me = nix::unistd::User::from_uid(nix::unistd::getuid())
            .unwrap()
            .expect("the current uid has a user name (IAM users are Unix users)")
            .name;
        let (key_id, secret) = kms
            .iam_update(|iam, now| {
                iam.create_user(&me, now, kmsfs_kms::iam::UnixLink::IfExists)?;
                iam.create_access_key(&me, now)
            })
            .unwrap();
        let backend = Arc::new(Recorder::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let b: Arc<dyn Ec2Backend> = backend.clone();
        std::thread::spawn(move || {
            serve("127.0.0.1:0".parse().unwrap(), b, kms, opts, |addr| {
                let _ = tx.send(addr);
            })
            .expect("serve");
        });
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the server did not start");
        Served {
            _dir: dir,
            addr,
            backend,
            key_id,
            secret: secret.to_string(),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A command with this server's credentials and nothing of the user's
    /// AWS configuration.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("ENDPOINT", self.url())
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_REGION")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a Python script (boto3) that prints one JSON document.
    fn python(&self, script: &str) -> Value {
        let out = self
            .command("python3")
            .arg("-c")
            .arg(script)
            .output()
            .expect("python3 with boto3 (pip install boto3) must be on PATH");
        assert!(
            out.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
        })
    }

    /// One raw HTTP/1.1 exchange: the status and the body.
    fn raw(&self, request: &str) -> (u16, String) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status = resp
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = resp
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// A SigV4-signed `GET /?query` for service `service`.
    fn signed_get(&self, query: &str, service: &str, secret: &str) -> (u16, String) {
        let amz_date = sigv4::format_amz_date(chrono_now());
        let host = self.addr.to_string();
        let headers = vec![
            ("host".to_string(), host.clone()),
            ("x-amz-date".to_string(), amz_date.clone()),
        ];
        let auth = sigv4::Authorization {
            access_key_id: self.key_id.clone(),
            date: amz_date[..8].into(),
            region: REGION.into(),
            service: service.into(),
            signed_headers: vec!["host".into(), "x-amz-date".into()],
            signature: String::new(),
        };
        let signature =
            sigv4::expected_signature(&auth, secret, &amz_date, "GET", "/", query, &headers, b"");
        let auth = sigv4::Authorization { signature, ..auth };
        self.raw(&format!(
            "GET /?{query} HTTP/1.1\r\nHost: {host}\r\nX-Amz-Date: {amz_date}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
            auth.header_value()
        ))
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Every boto3 call of the test, its result (ResponseMetadata dropped) or
/// its ClientError's code, message and HTTP status.
const BOTO3_SCRIPT: &str = r#"
import json, os, boto3
from botocore.config import Config
from botocore.exceptions import ClientError

def client(secret=None):
    return boto3.client("ec2", endpoint_url=os.environ["ENDPOINT"], region_name="eu-west-3",
                        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=secret or os.environ["AWS_SECRET_ACCESS_KEY"],
                        config=Config(retries={"max_attempts": 1}))

ec2 = client()
out = {}
def call(name, f, **kw):
    try:
        r = f(**kw)
        r.pop("ResponseMetadata", None)
        out[name] = r
    except ClientError as e:
        out[name] = {"error": e.response["Error"]["Code"], "message": e.response["Error"]["Message"],
                     "status": e.response["ResponseMetadata"]["HTTPStatusCode"]}

call("create", ec2.create_volume, AvailabilityZone="eu-west-3a", Size=8, Encrypted=True,
     KmsKeyId="alias/mine", VolumeType="gp3", Iops=3000,
     TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "a<b>&'c\""}]}])
call("describe", ec2.describe_volumes, VolumeIds=["vol-0123456789abcdef0"],
     Filters=[{"Name": "status", "Values": ["available", "in-use"]}, {"Name": "tag:Name", "Values": ["a*"]}])
call("attach", ec2.attach_volume, Device="/dev/sdf", InstanceId="i-0123456789abcdef0",
     VolumeId="vol-0123456789abcdef0")
call("detach", ec2.detach_volume, VolumeId="vol-0123456789abcdef0", Force=True)
call("snapshot", ec2.create_snapshot, VolumeId="vol-0123456789abcdef0", Description="nightly")
call("copy", ec2.copy_snapshot, SourceRegion="eu-west-3", SourceSnapshotId="snap-0123456789abcdef0",
     Encrypted=True, KmsKeyId="alias/other", Description="copy",
     TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "k", "Value": "v"}]}])
call("snapshots", ec2.describe_snapshots, OwnerIds=["self"], SnapshotIds=["snap-0fedcba987654321f"])
call("ebd", ec2.get_ebs_encryption_by_default)
call("enable", ec2.enable_ebs_encryption_by_default)
call("default_key", ec2.get_ebs_default_kms_key_id)
call("modify_key", ec2.modify_ebs_default_kms_key_id, KmsKeyId="alias/k2")
call("instances", ec2.describe_instances)
call("instance_missing", ec2.describe_instances, InstanceIds=["i-00000000000000001"])
call("tag", ec2.create_tags, Resources=["vol-0123456789abcdef0"], Tags=[{"Key": "a", "Value": "b"}])
call("untag", ec2.delete_tags, Resources=["vol-0123456789abcdef0"], Tags=[{"Key": "a"}, {"Key": "b", "Value": ""}])
call("zones", ec2.describe_availability_zones)
call("not_found", ec2.delete_volume, VolumeId="vol-00000000000000000")
call("dry_run", ec2.create_volume, AvailabilityZone="eu-west-3a", Size=1, DryRun=True)
call("dry_read", ec2.describe_volumes, DryRun=True)
call("bad_signature", client("not-the-secret").describe_volumes)
print(json.dumps(out, default=str))
"#;

#[test]
fn boto3_reads_our_xml_and_the_server_passes_requests_through() {
    let served = Served::start(ServeOptions::default());
    let out = served.python(BOTO3_SCRIPT);
    let me = nix::unistd::getuid().as_raw();

    let v = &out["create"];
    assert_eq!(v["VolumeId"], VOLUME, "{out:#}");
    assert_eq!(v["Size"], 8);
    assert_eq!(v["AvailabilityZone"], "eu-west-3a");
    assert_eq!(v["State"], "creating");
    assert_eq!(v["Encrypted"], true);
    assert_eq!(v["KmsKeyId"], "arn:aws:kms:eu-west-3:111122223333:key/k1");
    assert_eq!(v["VolumeType"], "gp3");
    assert_eq!(v["Iops"], 3000);
    assert_eq!(v["MultiAttachEnabled"], false);
    assert_eq!(v["SnapshotId"], "");
    assert!(
        v["CreateTime"]
            .as_str()
            .unwrap()
            .starts_with("2026-01-02 03:04:05")
    );
    assert_eq!(v["Tags"][0]["Key"], "Name");
    assert_eq!(v["Tags"][0]["Value"], "a<b>&'c\"", "escaping round-trips");
    assert_eq!(v["Attachments"], serde_json::json!([]));
    let calls = served.backend.calls("create_volume");
    assert_eq!(calls.len(), 2, "the real call and the dry run");
    assert_eq!((calls[0].uid, calls[0].region.as_str()), (me, REGION));
    let d = &calls[0].detail;
    for part in [
        "availability_zone: Some(\"eu-west-3a\")",
        "size: Some(8)",
        "encrypted: Some(true)",
        "kms_key_id: Some(\"alias/mine\")",
        "volume_type: Some(\"gp3\")",
        "iops: Some(3000)",
        "resource_type: \"volume\"",
        "value: \"a<b>&'c\\\"\"",
        "dry_run: false",
    ] {
        assert!(d.contains(part), "{part} not in {d}");
    }
    assert!(
        calls[1].detail.contains("dry_run: true"),
        "{}",
        calls[1].detail
    );

    let vs = &out["describe"]["Volumes"];
    assert_eq!(vs.as_array().unwrap().len(), 1, "{out:#}");
    assert_eq!(vs[0]["State"], "in-use");
    let a = &vs[0]["Attachments"][0];
    assert_eq!(a["VolumeId"], VOLUME);
    assert_eq!(a["InstanceId"], INSTANCE);
    assert_eq!(a["Device"], "/dev/sdf");
    assert_eq!(a["State"], "attached");
    assert_eq!(a["DeleteOnTermination"], false);
    let d = &served.backend.calls("describe_volumes")[0].detail;
    assert!(d.contains("[\"vol-0123456789abcdef0\"]"), "{d}");
    assert!(
        d.contains("Filter { name: \"status\", values: [\"available\", \"in-use\"] }")
            && d.contains("Filter { name: \"tag:Name\", values: [\"a*\"] }"),
        "{d}"
    );

    let a = &out["attach"];
    assert_eq!(a["VolumeId"], VOLUME, "{out:#}");
    assert_eq!(a["InstanceId"], INSTANCE);
    assert_eq!(a["Device"], "/dev/sdf");
    assert_eq!(a["State"], "attaching");
    assert!(a["AttachTime"].as_str().unwrap().starts_with("2026-01-02"));
    let d = &served.backend.calls("attach_volume")[0].detail;
    assert!(
        d.contains("volume_id: \"vol-0123456789abcdef0\", instance_id: \"i-0123456789abcdef0\", device: \"/dev/sdf\""),
        "{d}"
    );
    assert_eq!(out["detach"]["State"], "detaching");
    assert!(
        served.backend.calls("detach_volume")[0]
            .detail
            .contains("force: true")
    );

    let s = &out["snapshot"];
    assert_eq!(s["SnapshotId"], "snap-0123456789abcdef0", "{out:#}");
    assert_eq!(s["State"], "pending");
    assert_eq!(s["Progress"], "0%");
    assert_eq!(s["OwnerId"], "111122223333");
    assert_eq!(s["VolumeSize"], 8);
    assert_eq!(s["Encrypted"], true);
    assert_eq!(s["DataEncryptionKeyId"], "00112233");
    assert_eq!(s["Description"], "nightly");

    assert_eq!(out["copy"]["SnapshotId"], COPY, "{out:#}");
    assert_eq!(out["copy"]["Tags"][0]["Key"], "k");
    assert_eq!(out["copy"]["Tags"][0]["Value"], "v");
    let d = &served.backend.calls("copy_snapshot")[0].detail;
    for part in [
        "source_snapshot_id: \"snap-0123456789abcdef0\"",
        "source_region: Some(\"eu-west-3\")",
        "encrypted: Some(true)",
        "kms_key_id: Some(\"alias/other\")",
        "description: Some(\"copy\")",
    ] {
        assert!(d.contains(part), "{part} not in {d}");
    }
    assert_eq!(out["snapshots"]["Snapshots"][0]["SnapshotId"], COPY);
    let d = &served.backend.calls("describe_snapshots")[0].detail;
    assert_eq!(d, "[\"snap-0fedcba987654321f\"] [\"self\"] []");

    assert_eq!(out["ebd"]["EbsEncryptionByDefault"], true, "{out:#}");
    assert_eq!(out["enable"]["EbsEncryptionByDefault"], true);
    assert_eq!(out["default_key"]["KmsKeyId"], "alias/aws/ebs");
    assert_eq!(
        out["modify_key"]["KmsKeyId"],
        "arn:aws:kms:eu-west-3:111122223333:key/k2"
    );
    assert_eq!(
        served.backend.calls("modify_ebs_default_kms_key_id")[0].detail,
        "alias/k2 false"
    );

    let r = &out["instances"]["Reservations"][0];
    assert_eq!(r["ReservationId"], "r-0123456789abcdef0", "{out:#}");
    assert!(r["OwnerId"].as_str().is_some_and(|o| !o.is_empty()));
    let i = &r["Instances"][0];
    assert_eq!(i["InstanceId"], INSTANCE);
    assert_eq!(i["State"]["Code"], 16);
    assert_eq!(i["State"]["Name"], "running");
    assert_eq!(i["Placement"]["AvailabilityZone"], "eu-west-3a");
    assert_eq!(i["PrivateDnsName"], "host.internal");
    assert!(i["LaunchTime"].as_str().unwrap().starts_with("2026-01-02"));
    let m = &i["BlockDeviceMappings"][0];
    assert_eq!(m["DeviceName"], "/dev/sdf");
    assert_eq!(m["Ebs"]["VolumeId"], VOLUME);
    assert_eq!(m["Ebs"]["Status"], "attached");
    assert_eq!(m["Ebs"]["DeleteOnTermination"], false);
    assert_eq!(
        out["instance_missing"]["error"],
        "InvalidInstanceID.NotFound"
    );

    assert_eq!(out["tag"], serde_json::json!({}), "{out:#}");
    assert_eq!(
        served.backend.calls("create_tags")[0].detail,
        "[\"vol-0123456789abcdef0\"] [Tag { key: \"a\", value: \"b\" }] false"
    );
    assert_eq!(
        served.backend.calls("delete_tags")[0].detail,
        "[\"vol-0123456789abcdef0\"] [(\"a\", None), (\"b\", Some(\"\"))] false"
    );
    let zones = &out["zones"]["AvailabilityZones"];
    assert_eq!(zones[0]["ZoneName"], "eu-west-3a", "{out:#}");
    assert_eq!(zones[0]["State"], "available");
    assert_eq!(zones[1]["RegionName"], "eu-west-3");

    let e = &out["not_found"];
    assert_eq!(e["error"], "InvalidVolume.NotFound", "{out:#}");
    assert_eq!(
        e["message"],
        "The volume 'vol-00000000000000000' does not exist."
    );
    assert_eq!(e["status"], 400);
    for dry in ["dry_run", "dry_read"] {
        let e = &out[dry];
        assert_eq!(e["error"], "DryRunOperation", "{dry}: {out:#}");
        assert_eq!(e["status"], 412);
    }
    let e = &out["bad_signature"];
    assert_eq!(e["error"], "AuthFailure", "{out:#}");
    assert_eq!(e["status"], 401);

    // Every call the server made was for this caller in the scope's region.
    for c in served.backend.calls.lock().unwrap().iter() {
        assert_eq!((c.uid, c.region.as_str()), (me, REGION), "{c:?}");
    }
}

#[test]
fn the_aws_cli_describes_volumes_and_reports_errors() {
    let served = Served::start(ServeOptions::default());
    let aws = |args: &[&str]| {
        served
            .command("aws")
            .arg("--endpoint-url")
            .arg(served.url())
            .arg("--output")
            .arg("json")
            .arg("ec2")
            .args(args)
            .output()
            .expect("the AWS CLI (pip install awscli) must be on PATH")
    };
    let out = aws(&[
        "create-volume",
        "--availability-zone",
        "eu-west-3a",
        "--size",
        "4",
        "--encrypted",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = aws(&["describe-volumes", "--volume-ids", VOLUME]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Volumes"][0]["VolumeId"], VOLUME, "{v:#}");
    assert_eq!(v["Volumes"][0]["Size"], 4);
    assert_eq!(v["Volumes"][0]["Encrypted"], true);
    assert_eq!(v["Volumes"][0]["Attachments"][0]["State"], "attached");
    assert_eq!(
        served.backend.calls("describe_volumes")[0].detail,
        "[\"vol-0123456789abcdef0\"] []"
    );
    let d = &served.backend.calls("create_volume")[0].detail;
    assert!(
        d.contains("size: Some(4)") && d.contains("encrypted: Some(true)"),
        "{d}"
    );

    let out = aws(&["delete-volume", "--volume-id", "vol-00000000000000000"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("(InvalidVolume.NotFound)")
            && stderr.contains("The volume 'vol-00000000000000000' does not exist."),
        "{stderr}"
    );
    let out = aws(&["get-ebs-encryption-by-default", "--dry-run"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(DryRunOperation)"), "{stderr}");
}

#[test]
fn raw_requests_unsigned_get_and_limits() {
    let served = Served::start(ServeOptions {
        max_body: 1024,
        ..ServeOptions::default()
    });
    let host = served.addr;

    // Unsigned: refused before anything is parsed.
    let body = "Action=DescribeVolumes&Version=2016-11-15";
    let (status, xml) = served.raw(&format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(status, 401, "{xml}");
    assert!(
        xml.contains("<Code>MissingAuthenticationToken</Code>"),
        "{xml}"
    );
    assert!(xml.contains("<RequestID>"), "{xml}");
    assert!(served.backend.calls.lock().unwrap().is_empty());

    // The Query protocol's GET form, signed.
    let query = "Action=DescribeVolumes&Version=2016-11-15&VolumeId.1=vol-0123456789abcdef0";
    let (status, xml) = served.signed_get(query, "ec2", &served.secret);
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.contains("<DescribeVolumesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>"),
        "{xml}"
    );
    assert_eq!(
        served.backend.calls("describe_volumes")[0].detail,
        "[\"vol-0123456789abcdef0\"] []"
    );

    // A signature for another service, or with another secret.
    let (status, xml) = served.signed_get(query, "kms", &served.secret);
    assert_eq!(status, 401, "{xml}");
    assert!(
        xml.contains("<Code>AuthFailure</Code>") && xml.contains("scoped to correct service"),
        "{xml}"
    );
    let (status, xml) = served.signed_get(query, "ec2", "wrong");
    assert_eq!(status, 401);
    assert!(xml.contains("<Code>AuthFailure</Code>"), "{xml}");

    // Signed but unknown action, and a bad parameter.
    let (status, xml) = served.signed_get("Action=RunInstances", "ec2", &served.secret);
    assert_eq!(status, 400);
    assert!(xml.contains("<Code>InvalidAction</Code>"), "{xml}");
    let (status, xml) = served.signed_get("Action=CreateVolume&Size=big", "ec2", &served.secret);
    assert_eq!(status, 400);
    assert!(xml.contains("<Code>InvalidParameterValue</Code>"), "{xml}");
    let (status, xml) = served.signed_get("Action=DeleteVolume", "ec2", &served.secret);
    assert_eq!(status, 400);
    assert!(
        xml.contains("<Code>MissingParameter</Code><Message>The request must contain the parameter VolumeId</Message>"),
        "{xml}"
    );

    // Bodies past the limit are refused unread.
    let (status, xml) = served.raw(&format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 4096\r\nConnection: close\r\n\r\n{}",
        "a".repeat(4096)
    ));
    assert_eq!(status, 413, "{xml}");
    assert!(xml.contains("<Code>RequestEntityTooLarge</Code>"), "{xml}");
}
