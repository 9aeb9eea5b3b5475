//! The EBS simulation end to end, as an AWS user drives it: `kmsfs ebs
//! serve` on a loopback port, the real AWS CLI and boto3 (configured the
//! ordinary way: region us-east-1, an access key from `kmsfs iam`), real
//! block devices with ext4 on them.
//!
//! Needs root (FUSE, loop devices, mount), `mkfs.ext4`/`fsck.ext4`, the AWS
//! CLI and boto3; skips with a note where they are missing.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_kmsfs");
const REGION: &str = "us-east-1";
const MARKER: &str = "kmsfs-ebs-plaintext-marker-7f3a9c";

fn missing_tools() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".into());
    }
    for tool in ["aws", "mkfs.ext4", "fsck.ext4", "losetup", "python3"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map_or(true, |o| !o.status.success())
        {
            return Some(format!("{tool} not found"));
        }
    }
    let boto = Command::new("python3")
        .args(["-c", "import boto3"])
        .output();
    if boto.map_or(true, |o| !o.status.success()) {
        return Some("boto3 not installed".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("no /dev/fuse".into());
    }
    None
}

struct Ec2 {
    dir: TempDir,
    store: PathBuf,
    pool: PathBuf,
    runtime: PathBuf,
    server: Child,
    port: u16,
    key_id: String,
    secret: String,
}

impl Drop for Ec2 {
    fn drop(&mut self) {
        // Leave no device, mount or serving process behind.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "for m in $(findmnt -rn -o TARGET | grep '^{0}'); do umount -l \"$m\"; done",
                self.dir.path().display()
            ))
            .status();
        let state: Value = std::fs::read(self.pool.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        if let Some(vols) = state["volumes"].as_object() {
            for id in vols.keys() {
                let _ = self.kmsfs(&["ebs", "detach-volume", "--volume-id", id, "--force"]);
            }
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn sh(script: &str) -> Output {
    Command::new("sh").arg("-c").arg(script).output().unwrap()
}

fn sh_ok(script: &str) -> String {
    let out = sh(script);
    assert!(out.status.success(), "{script}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Ec2 {
    fn start() -> Ec2 {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("keystore");
        let pool = dir.path().join("pool");
        let runtime = dir.path().join("run");
        std::fs::create_dir(&runtime).unwrap();
        std::fs::set_permissions(
            &runtime,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let mut e = Ec2 {
            dir,
            store,
            pool,
            runtime,
            server: Command::new("true").spawn().unwrap(),
            port: 0,
            key_id: String::new(),
            secret: String::new(),
        };
        let _ = e.server.wait();
        e.kmsfs_json(&["iam", "create-user", "--user-name", "root"]);
        let k = e.kmsfs_json(&["iam", "create-access-key", "--user-name", "root"]);
        e.key_id = k["AccessKey"]["AccessKeyId"].as_str().unwrap().into();
        e.secret = k["AccessKey"]["SecretAccessKey"].as_str().unwrap().into();
        let mut child = e
            .command()
            .args(["ebs", "serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("the server printed nothing").unwrap();
        e.port = first
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        std::thread::spawn(move || for _ in lines {});
        e.server = child;
        e
    }

    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--keystore")
            .arg(&self.store)
            .env("KMSFS_EBS_POOL", &self.pool)
            .env("KMSFS_RUNTIME_DIR", &self.runtime)
            .env("AWS_REGION", REGION)
            .env_remove("KMSFS_PASSPHRASE_FILE")
            .stdin(Stdio::null());
        c
    }

    fn kmsfs(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    fn kmsfs_json(&self, args: &[&str]) -> Value {
        let out = self.kmsfs(args);
        assert!(out.status.success(), "kmsfs {args:?}: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn aws(&self, args: &[&str]) -> Output {
        Command::new("aws")
            .args(["--endpoint-url", &self.url(), "--output", "json"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_DEFAULT_REGION", REGION)
            .env_remove("AWS_REGION")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_MAX_ATTEMPTS", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ec2(&self, args: &[&str]) -> Value {
        let mut full = vec!["ec2"];
        full.extend_from_slice(args);
        let out = self.aws(&full);
        assert!(out.status.success(), "aws {full:?}: {}", text(&out));
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn ec2_err(&self, args: &[&str]) -> String {
        let mut full = vec!["ec2"];
        full.extend_from_slice(args);
        let out = self.aws(&full);
        assert!(
            !out.status.success(),
            "aws {full:?} succeeded: {}",
            text(&out)
        );
        text(&out)
    }

    /// Runs a boto3 script with `ec2` (a client for the endpoint) defined.
    fn boto3(&self, body: &str) -> String {
        let script = format!(
            "import boto3, json, sys\nec2 = boto3.client('ec2', endpoint_url='{}', region_name='{REGION}', aws_access_key_id='{}', aws_secret_access_key='{}')\n{body}\n",
            self.url(),
            self.key_id,
            self.secret
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .unwrap();
        assert!(out.status.success(), "boto3: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn create_key(&self) -> String {
        self.kmsfs_json(&["kms", "create-key"])["KeyMetadata"]["Arn"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn instance_id(&self) -> String {
        self.ec2(&["describe-instances"])["Reservations"][0]["Instances"][0]["InstanceId"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn attach(&self, volume_id: &str, device: &str) -> PathBuf {
        let a = self.ec2(&[
            "attach-volume",
            "--volume-id",
            volume_id,
            "--instance-id",
            &self.instance_id(),
            "--device",
            device,
        ]);
        assert_eq!(a["Device"], device);
        assert_eq!(a["VolumeId"], volume_id);
        let link = PathBuf::from(format!("/dev/disk/by-id/kmsfs-{volume_id}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !link.exists() {
            assert!(
                Instant::now() < deadline,
                "{} never appeared",
                link.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        link
    }

    fn detach(&self, volume_id: &str) {
        self.ec2(&["detach-volume", "--volume-id", volume_id]);
    }

    fn mount(&self, device: &Path, name: &str) -> PathBuf {
        let at = self.dir.path().join(name);
        std::fs::create_dir_all(&at).unwrap();
        sh_ok(&format!("mount {} {}", device.display(), at.display()));
        at
    }

    fn umount(&self, at: &Path) {
        sh_ok(&format!("umount {}", at.display()));
    }

    fn volume(&self, volume_id: &str) -> Value {
        self.ec2(&["describe-volumes", "--volume-ids", volume_id])["Volumes"][0].clone()
    }

    fn image(&self, id: &str) -> PathBuf {
        self.pool.join("images").join(format!("{id}.img"))
    }
}

fn sha(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The stored 4124-byte blocks of an image that hold data.
fn stored_blocks(image: &Path) -> HashSet<Vec<u8>> {
    let bytes = std::fs::read(image).unwrap();
    bytes[1024..]
        .chunks(4124)
        .filter(|b| b.iter().any(|&x| x != 0))
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn snapshot_copy_under_another_key_restore_and_a_disabled_key() {
    if let Some(why) = missing_tools() {
        eprintln!("note: skipping the EBS end-to-end test: {why}");
        return;
    }
    let e = Ec2::start();
    let key_a = e.create_key();
    let key_b = e.create_key();

    // An encrypted volume under A, ext4 on it, files written and synced.
    let vol = e.ec2(&[
        "create-volume",
        "--size",
        "1",
        "--availability-zone",
        "us-east-1a",
        "--encrypted",
        "--kms-key-id",
        &key_a,
        "--tag-specifications",
        "ResourceType=volume,Tags=[{Key=Name,Value=e2e}]",
    ]);
    let vol_id = vol["VolumeId"].as_str().unwrap().to_owned();
    assert_eq!(vol["Encrypted"], true);
    assert_eq!(vol["KmsKeyId"], key_a.as_str());
    assert_eq!(vol["Tags"][0]["Value"], "e2e");
    let dev = e.attach(&vol_id, "/dev/sdf");
    assert_eq!(e.volume(&vol_id)["State"], "in-use");
    assert_eq!(e.volume(&vol_id)["Attachments"][0]["Device"], "/dev/sdf");
    sh_ok(&format!("mkfs.ext4 -q -F {}", dev.display()));
    let mnt = e.mount(&dev, "mnt-a");
    let mut sums = Vec::new();
    for i in 0..20 {
        let path = mnt.join(format!("file{i}"));
        sh_ok(&format!(
            "head -c {} /dev/urandom > {p}; echo {MARKER} >> {p}",
            50_000 + i * 7919,
            p = path.display()
        ));
        sums.push((format!("file{i}"), sha(&path)));
    }
    sh_ok("sync");

    // A snapshot while a writer runs.
    let writer = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "i=0; while :; do head -c 65536 /dev/urandom > {m}/busy$i; i=$(( (i+1) % 50 )); done",
            m = mnt.display()
        ))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let snap = e.ec2(&[
        "create-snapshot",
        "--volume-id",
        &vol_id,
        "--description",
        "while writing",
    ]);
    let snap_id = snap["SnapshotId"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(300));
    let mut writer = writer;
    let _ = writer.kill();
    let _ = writer.wait();
    assert_eq!(snap["Encrypted"], true);

    // A copy under the same key shares the data key; under B it does not.
    let copied = e.boto3(&format!(
        r#"
same = ec2.copy_snapshot(SourceSnapshotId='{snap_id}', SourceRegion='{REGION}')['SnapshotId']
other = ec2.copy_snapshot(SourceSnapshotId='{snap_id}', SourceRegion='{REGION}', Encrypted=True, KmsKeyId='{key_b}')['SnapshotId']
ec2.get_waiter('snapshot_completed').wait(SnapshotIds=[same, other], WaiterConfig={{'Delay': 1, 'MaxAttempts': 120}})
snaps = {{s['SnapshotId']: s for s in ec2.describe_snapshots(SnapshotIds=['{snap_id}', same, other])['Snapshots']}}
print(json.dumps({{'same': same, 'other': other,
  'dek': {{k: v.get('DataEncryptionKeyId') for k, v in snaps.items()}},
  'kms': {{k: v.get('KmsKeyId') for k, v in snaps.items()}},
  'progress': {{k: v.get('Progress') for k, v in snaps.items()}}}}))
"#
    ));
    let copied: Value = serde_json::from_str(copied.trim()).unwrap();
    let same = copied["same"].as_str().unwrap();
    let other = copied["other"].as_str().unwrap();
    let dek = &copied["dek"];
    assert!(
        dek[&snap_id]
            .as_str()
            .is_some_and(|d| d.starts_with("dek-"))
    );
    assert_eq!(
        dek[same], dek[&snap_id],
        "a same-key copy shares the data key"
    );
    assert_ne!(
        dek[other], dek[&snap_id],
        "a copy under B has a new data key"
    );
    assert_eq!(copied["kms"][other], key_b.as_str());
    assert_eq!(copied["progress"][other], "100%");
    // Every block of the copy under B was sealed again.
    let source_blocks = stored_blocks(&e.image(&snap_id));
    let copy_blocks = stored_blocks(&e.image(other));
    assert!(!copy_blocks.is_empty());
    assert!(
        source_blocks.is_disjoint(&copy_blocks),
        "a 4 KiB ciphertext block of the copy equals one of the source"
    );

    // A volume from the copy, attached: the journal replays, the files
    // match, and a forced check finds nothing.
    let restored = e.ec2(&[
        "create-volume",
        "--snapshot-id",
        other,
        "--availability-zone",
        "us-east-1a",
    ]);
    let restored_id = restored["VolumeId"].as_str().unwrap().to_owned();
    assert_eq!(restored["KmsKeyId"], key_b.as_str());
    assert_eq!(restored["SnapshotId"], other);
    let dev2 = e.attach(&restored_id, "/dev/sdg");
    let mnt2 = e.mount(&dev2, "mnt-restored");
    for (name, sum) in &sums {
        assert_eq!(&sha(&mnt2.join(name)), sum, "{name} differs after restore");
    }
    e.umount(&mnt2);
    let fsck = sh(&format!("fsck.ext4 -f -n {}", dev2.display()));
    assert!(fsck.status.success(), "fsck: {}", text(&fsck));

    // The audit log tells the story in KMS's terms.
    let audit = std::fs::read_to_string(e.store.with_extension("audit.log"))
        .or_else(|_| std::fs::read_to_string(e.dir.path().join("keystore.audit.log")))
        .unwrap();
    let events: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let with_context = |name: &str, id: &str| {
        events.iter().any(|ev| {
            ev["eventName"] == name
                && ev.to_string().contains(id)
                && ev.to_string().contains("aws:ebs:id")
        })
    };
    assert!(with_context("GenerateDataKeyWithoutPlaintext", &vol_id));
    assert!(with_context("Decrypt", &vol_id));
    assert!(with_context("GenerateDataKey", other));

    // Disable A while its volume is attached: I/O goes on.
    e.kmsfs_json(&["kms", "disable-key", "--key-id", &key_a]);
    sh_ok(&format!(
        "echo after-disable > {m}/late && sync {m}/late && cat {m}/late",
        m = mnt.display()
    ));
    e.umount(&mnt);
    e.detach(&vol_id);
    assert_eq!(e.volume(&vol_id)["State"], "available");
    let refused = e.ec2_err(&[
        "attach-volume",
        "--volume-id",
        &vol_id,
        "--instance-id",
        &e.instance_id(),
        "--device",
        "/dev/sdf",
    ]);
    assert!(refused.contains("KMS.DisabledException"), "{refused}");
    assert_eq!(e.volume(&vol_id)["State"], "available");
    e.kmsfs_json(&["kms", "enable-key", "--key-id", &key_a]);
    let dev = e.attach(&vol_id, "/dev/sdf");
    let mnt = e.mount(&dev, "mnt-a-again");
    assert_eq!(
        std::fs::read_to_string(mnt.join("late")).unwrap(),
        "after-disable\n"
    );
    e.umount(&mnt);
    e.detach(&vol_id);
    e.detach(&restored_id);

    // No plaintext of the marker anywhere in the pool.
    let found = sh(&format!("grep -rl {MARKER} {}", e.pool.display()));
    assert!(
        found.stdout.is_empty(),
        "the marker is in the pool: {}",
        text(&found)
    );

    // Deleting a volume destroys its wrapped key first.
    e.ec2(&["delete-volume", "--volume-id", &restored_id]);
    assert!(!e.image(&restored_id).exists());
    let gone = e.ec2_err(&["describe-volumes", "--volume-ids", &restored_id]);
    assert!(gone.contains("InvalidVolume.NotFound"), "{gone}");
}

#[test]
fn encryption_by_default_and_refusals_through_the_aws_cli() {
    if let Some(why) = missing_tools() {
        eprintln!("note: skipping the EBS endpoint test: {why}");
        return;
    }
    let e = Ec2::start();
    let get = e.ec2(&["get-ebs-encryption-by-default"]);
    assert_eq!(get["EbsEncryptionByDefault"], false);
    e.ec2(&["enable-ebs-encryption-by-default"]);
    let v = e.ec2(&[
        "create-volume",
        "--size",
        "1",
        "--availability-zone",
        "us-east-1a",
    ]);
    assert_eq!(v["Encrypted"], true, "{v}");
    let default_key = e.ec2(&["get-ebs-default-kms-key-id"]);
    assert!(
        default_key["KmsKeyId"]
            .as_str()
            .unwrap()
            .ends_with("alias/aws/ebs"),
        "{default_key}"
    );
    let managed = e.kmsfs_json(&["kms", "describe-key", "--key-id", "alias/aws/ebs"]);
    assert_eq!(v["KmsKeyId"], managed["KeyMetadata"]["Arn"]);
    // Another region has its own setting.
    let out = e.aws(&[
        "ec2",
        "get-ebs-encryption-by-default",
        "--region",
        "eu-west-1",
    ]);
    assert!(text(&out).contains("false"), "{}", text(&out));
    let dry = e.ec2_err(&["create-volume", "--size", "1", "--dry-run"]);
    assert!(dry.contains("DryRunOperation"), "{dry}");
    let missing = e.ec2_err(&["describe-volumes", "--volume-ids", "vol-0123456789abcdef0"]);
    assert!(missing.contains("InvalidVolume.NotFound"), "{missing}");
    let zone = e.ec2_err(&[
        "create-volume",
        "--size",
        "1",
        "--availability-zone",
        "eu-west-1a",
    ]);
    assert!(zone.contains("InvalidParameterValue"), "{zone}");
    // The same volume is not visible from another region.
    let id = v["VolumeId"].as_str().unwrap();
    let other = e.aws(&[
        "ec2",
        "describe-volumes",
        "--volume-ids",
        id,
        "--region",
        "eu-west-1",
    ]);
    assert!(
        text(&other).contains("InvalidVolume.NotFound"),
        "{}",
        text(&other)
    );
    // kmsfs ebs sees what the endpoint made, with the AWS CLI's output.
    let listed = e.kmsfs_json(&[
        "ebs",
        "describe-volumes",
        "--filters",
        "Name=encrypted,Values=true",
    ]);
    assert_eq!(listed["Volumes"][0]["VolumeId"], id);
    let bad = e.kmsfs(&[
        "ebs",
        "delete-volume",
        "--volume-id",
        "vol-0123456789abcdef0",
    ]);
    assert_eq!(bad.status.code(), Some(254));
    assert!(
        text(&bad).contains(
            "An error occurred (InvalidVolume.NotFound) when calling the DeleteVolume operation"
        ),
        "{}",
        text(&bad)
    );
}
