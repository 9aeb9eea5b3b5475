//! EBS volumes as block devices on this host (kmsfs_mount::disk), for real:
//! as root, with /dev/fuse, loop devices, mkfs.ext4 and mount(8). Each test
//! attaches its own volume (ids carry the test's name and our pid: the
//! by-id names are the host's) through the `kmsfs` binary's hidden
//! `ebs serve-device`, in a private runtime directory.
//!
//! Skipped, with the reason printed, when not root or a tool is missing.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kmsfs_ebs::devices::{AttachRequest, BlockDevices, HostDevice};
use kmsfs_ebs::image;
use kmsfs_format::cipher::DataKey;
use kmsfs_format::content::STORED_BLOCK_LEN;
use kmsfs_format::header::HEADER_LEN;
use kmsfs_mount::disk::HostDevices;
use sha2::{Digest, Sha256};

const SIZE: u64 = 64 << 20;

fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("no /dev/fuse".into());
    }
    for tool in ["losetup", "mkfs.ext4", "mount", "umount", "dd"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("{tool} is missing"));
        }
    }
    None
}

macro_rules! skip_unless_able {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

struct Fixture {
    dir: tempfile::TempDir,
    devices: HostDevices,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let devices = HostDevices::with(
        PathBuf::from(env!("CARGO_BIN_EXE_kmsfs")),
        dir.path().join("run"),
    );
    Fixture { dir, devices }
}

fn volume_id(name: &str) -> String {
    format!("vol-{name}-{}", std::process::id())
}

/// The sealed volume's key material, kept by the test as the engine would
/// keep it wrapped.
struct Sealed {
    key: [u8; 32],
    file_id: [u8; 16],
}

impl Sealed {
    fn pair(&self) -> (DataKey, [u8; 16]) {
        (DataKey::from_slice(&self.key).unwrap(), self.file_id)
    }
}

fn new_sealed_image(path: &Path) -> Sealed {
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .unwrap();
    let header =
        image::new_header("arn:aws:kms:local:000000000000:key/test", 1, vec![3; 40]).unwrap();
    image::init_sealed(&file, &header, SIZE).unwrap();
    let key = DataKey::random();
    Sealed {
        key: *key.as_bytes(),
        file_id: header.file_id,
    }
}

fn attach(fx: &Fixture, id: &str, image: &Path, sealed: Option<&Sealed>) -> HostDevice {
    let file = File::options().read(true).write(true).open(image).unwrap();
    fx.devices
        .attach(AttachRequest {
            volume_id: id.to_owned(),
            image: file,
            size_bytes: SIZE,
            sealed: sealed.map(Sealed::pair),
        })
        .unwrap()
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The child's exit status if it ends within `limit`.
fn wait_for(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sha256(path: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

/// Detaches at the end of a test even when it fails half-way.
struct Detach<'a>(&'a Fixture, String, Option<PathBuf>);

impl Drop for Detach<'_> {
    fn drop(&mut self) {
        if let Some(mnt) = &self.2 {
            let _ = Command::new("umount")
                .arg(mnt)
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.0.devices.detach(&self.1, true);
    }
}

const MARKER: &[u8] = b"kmsfs-ebs-disk-test-marker-7f3a9c";

#[test]
fn an_encrypted_volume_keeps_an_ext4_filesystem_across_attachments() {
    skip_unless_able!();
    let fx = fixture();
    let id = volume_id("ext4");
    let img = fx.dir.path().join("vol.img");
    let sealed = new_sealed_image(&img);
    let mnt = fx.dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let _cleanup = Detach(&fx, id.clone(), Some(mnt.clone()));

    let dev = attach(&fx, &id, &img, Some(&sealed));
    assert_eq!(dev.by_id, format!("/dev/disk/by-id/kmsfs-{id}"));
    assert_eq!(
        std::fs::canonicalize(&dev.by_id).unwrap(),
        PathBuf::from(&dev.block_device)
    );
    assert_eq!(fx.devices.attached(&id), Some(dev.clone()));
    // Anyone may look names up there, as under udev.
    let mode = std::fs::metadata("/dev/disk/by-id").unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o755
    );
    let status = fx.devices.status(&id).unwrap();
    eprintln!(
        "attached {} on {} (dio={})",
        id, status.block_device, status.dio
    );
    let loop_name = dev.block_device.trim_start_matches("/dev/");
    let sector =
        std::fs::read_to_string(format!("/sys/block/{loop_name}/queue/logical_block_size"))
            .unwrap();
    assert_eq!(sector.trim(), "4096");
    assert!(
        status.dio,
        "the kernel did not enable direct I/O on the loop device"
    );
    // The key reached the device process by its stdin alone.
    let hex: String = sealed.key.iter().map(|b| format!("{b:02x}")).collect();
    for what in ["cmdline", "environ"] {
        let bytes = std::fs::read(format!("/proc/{}/{what}", status.pid)).unwrap();
        assert!(
            !bytes.windows(16).any(|w| w == &sealed.key[..16]),
            "key in {what}"
        );
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&hex[..16]),
            "key in {what}"
        );
    }

    run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&dev.by_id));
    run(Command::new("mount").arg(&dev.by_id).arg(&mnt));
    let mut big = vec![0u8; 5 << 20];
    for (i, b) in big.iter_mut().enumerate() {
        *b = (i as u32).wrapping_mul(2654435761).to_le_bytes()[1];
    }
    std::fs::write(mnt.join("big"), &big).unwrap();
    let mut marker = MARKER.repeat(100);
    marker.extend_from_slice(b"\n");
    std::fs::write(mnt.join("marker.txt"), &marker).unwrap();
    std::fs::create_dir(mnt.join("sub")).unwrap();
    std::fs::write(mnt.join("sub/small"), b"hello").unwrap();
    let sums: Vec<_> = ["big", "marker.txt", "sub/small"]
        .iter()
        .map(|f| sha256(&mnt.join(f)))
        .collect();
    run(Command::new("umount").arg(&mnt));
    fx.devices.detach(&id, false).unwrap();
    assert_eq!(fx.devices.attached(&id), None);
    assert!(std::fs::symlink_metadata(&dev.by_id).is_err());

    // The image holds ciphertext only, and is still its size.
    let raw = std::fs::read(&img).unwrap();
    assert_eq!(raw.len() as u64, image::image_len(SIZE, true));
    assert!(!raw.windows(MARKER.len()).any(|w| w == MARKER));
    assert!(!raw.windows(64).any(|w| w == &big[1 << 20..(1 << 20) + 64]));

    let dev = attach(&fx, &id, &img, Some(&sealed));
    run(Command::new("mount").arg(&dev.by_id).arg(&mnt));
    for (f, sum) in ["big", "marker.txt", "sub/small"].iter().zip(&sums) {
        assert_eq!(&sha256(&mnt.join(f)), sum, "{f} changed");
    }
    run(Command::new("umount").arg(&mnt));
    fx.devices.detach(&id, false).unwrap();
}

#[test]
fn detach_without_force_refuses_while_mounted() {
    skip_unless_able!();
    let fx = fixture();
    let id = volume_id("busy");
    let img = fx.dir.path().join("vol.img");
    let sealed = new_sealed_image(&img);
    let mnt = fx.dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let _cleanup = Detach(&fx, id.clone(), Some(mnt.clone()));
    let dev = attach(&fx, &id, &img, Some(&sealed));

    // A second attachment of the same volume is refused.
    let again = fx.devices.attach(AttachRequest {
        volume_id: id.clone(),
        image: File::options().read(true).write(true).open(&img).unwrap(),
        size_bytes: SIZE,
        sealed: Some(sealed.pair()),
    });
    assert_eq!(again.unwrap_err().code(), "VolumeInUse");

    run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&dev.by_id));
    run(Command::new("mount").arg(&dev.by_id).arg(&mnt));
    let refused = fx.devices.detach(&id, false).unwrap_err();
    assert_eq!(refused.code(), "VolumeInUse", "{refused}");
    assert!(refused.to_string().contains("mounted"), "{refused}");
    assert_eq!(fx.devices.attached(&id), Some(dev.clone()));
    std::fs::write(mnt.join("still-works"), b"yes").unwrap();
    run(Command::new("umount").arg(&mnt));

    // Nor while a process holds the device open.
    let mut holder = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 3<{}; echo held; exec sleep 30",
            dev.block_device
        ))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut held = [0u8; 5];
    holder.stdout.take().unwrap().read_exact(&mut held).unwrap();
    let refused = fx.devices.detach(&id, false).unwrap_err();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(refused.code(), "VolumeInUse", "{refused}");
    assert!(refused.to_string().contains("open in process"), "{refused}");

    fx.devices.detach(&id, false).unwrap();
    assert_eq!(fx.devices.attached(&id), None);
}

#[test]
fn a_freeze_holds_writes_until_its_guard_drops() {
    skip_unless_able!();
    let fx = fixture();
    let id = volume_id("freeze");
    let img = fx.dir.path().join("vol.img");
    let sealed = new_sealed_image(&img);
    let _cleanup = Detach(&fx, id.clone(), None);
    let dev = attach(&fx, &id, &img, Some(&sealed));

    let guard = fx.devices.freeze(&id).unwrap();
    let mut writer = Command::new("dd")
        .args([
            "if=/dev/urandom",
            "bs=4096",
            "count=4",
            "seek=20",
            "oflag=direct",
            "status=none",
        ])
        .arg(format!("of={}", dev.block_device))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        writer.try_wait().unwrap().is_none(),
        "a write completed while the volume was frozen"
    );
    // Reads go on while frozen (at another offset than the held write).
    let mut reader = Command::new("dd")
        .args([
            "of=/dev/null",
            "bs=4096",
            "count=4",
            "iflag=direct",
            "status=none",
        ])
        .arg(format!("if={}", dev.block_device))
        .spawn()
        .unwrap();
    let read_while_frozen = wait_for(&mut reader, Duration::from_secs(5));
    if read_while_frozen.is_none() {
        let _ = reader.kill();
    }
    drop(guard);
    let _ = reader.wait();
    let status = wait_for(&mut writer, Duration::from_secs(20));
    if status.is_none() {
        let _ = writer.kill();
    }
    assert!(status.expect("the write never resumed").success());
    assert!(
        read_while_frozen.is_some_and(|s| s.success()),
        "a read did not complete while the volume was frozen"
    );
    fx.devices.detach(&id, false).unwrap();
}

#[test]
fn a_tampered_block_reads_as_eio() {
    skip_unless_able!();
    let fx = fixture();
    let id = volume_id("tamper");
    let img = fx.dir.path().join("vol.img");
    let sealed = new_sealed_image(&img);
    let _cleanup = Detach(&fx, id.clone(), None);
    let dev = attach(&fx, &id, &img, Some(&sealed));
    run(Command::new("dd")
        .args([
            "if=/dev/urandom",
            "bs=4096",
            "count=4",
            "seek=10",
            "oflag=direct,sync",
            "status=none",
        ])
        .arg(format!("of={}", dev.block_device)));
    fx.devices.detach(&id, false).unwrap();

    // One byte inside block 11's ciphertext.
    let mut f = File::options().read(true).write(true).open(&img).unwrap();
    let at = (HEADER_LEN + 11 * STORED_BLOCK_LEN + 100) as u64;
    let mut byte = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut byte).unwrap();
    byte[0] ^= 0x40;
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&byte).unwrap();
    f.sync_all().unwrap();
    drop(f);

    let dev = attach(&fx, &id, &img, Some(&sealed));
    let read_block = |n: u32| {
        Command::new("dd")
            .args([
                "of=/dev/null",
                "bs=4096",
                "count=1",
                "iflag=direct",
                "status=none",
            ])
            .arg(format!("skip={n}"))
            .arg(format!("if={}", dev.block_device))
            .output()
            .unwrap()
    };
    assert!(read_block(10).status.success());
    assert!(read_block(12).status.success());
    let bad = read_block(11);
    assert!(!bad.status.success(), "a tampered block was read");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("Input/output error"), "{stderr}");
    fx.devices.detach(&id, false).unwrap();
    // The device process logged the block number.
    let log = std::fs::read_to_string(fx.dir.path().join(format!("run/ebs/{id}.log"))).unwrap();
    assert!(log.contains("block=11"), "{log}");
}

#[test]
fn a_plain_image_is_served_as_it_is() {
    skip_unless_able!();
    let fx = fixture();
    let id = volume_id("plain");
    let img = fx.dir.path().join("vol.img");
    let file = File::create_new(&img).unwrap();
    image::init_plain(&file, SIZE).unwrap();
    drop(file);
    let _cleanup = Detach(&fx, id.clone(), None);
    let dev = attach(&fx, &id, &img, None);
    assert!(!fx.devices.status(&id).unwrap().sealed);

    let src = fx.dir.path().join("block");
    let mut block = MARKER.repeat(4096 / MARKER.len() + 1);
    block.truncate(4096);
    std::fs::write(&src, &block).unwrap();
    run(Command::new("dd")
        .args([
            "bs=4096",
            "count=1",
            "seek=3",
            "oflag=direct,sync",
            "status=none",
        ])
        .arg(format!("if={}", src.display()))
        .arg(format!("of={}", dev.block_device)));
    let out = run(Command::new("dd")
        .args([
            "bs=4096",
            "count=1",
            "skip=3",
            "iflag=direct",
            "status=none",
        ])
        .arg(format!("if={}", dev.block_device)));
    assert_eq!(out.stdout, block);
    fx.devices.detach(&id, false).unwrap();
    let raw = std::fs::read(&img).unwrap();
    assert_eq!(raw.len() as u64, SIZE);
    assert_eq!(&raw[3 * 4096..4 * 4096], &block[..]);
}

#[test]
fn a_forced_detach_takes_a_mounted_device_away() {
    skip_unless_able!();
    let fx = fixture();
    let id = volume_id("force");
    let img = fx.dir.path().join("vol.img");
    let sealed = new_sealed_image(&img);
    let mnt = fx.dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let _cleanup = Detach(&fx, id.clone(), Some(mnt.clone()));
    let dev = attach(&fx, &id, &img, Some(&sealed));
    run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&dev.by_id));
    run(Command::new("mount").arg(&dev.by_id).arg(&mnt));
    fx.devices.detach(&id, true).unwrap();
    assert_eq!(fx.devices.attached(&id), None);
    assert!(std::fs::symlink_metadata(&dev.by_id).is_err());
    let _ = Command::new("umount").arg("-l").arg(&mnt).status();
}

#[test]
fn a_failed_attach_says_why_and_leaves_nothing_behind() {
    skip_unless_able!();
    let fx = fixture();
    let id = volume_id("fail");
    let img = fx.dir.path().join("vol.img");
    let sealed = new_sealed_image(&img);
    // An image cut short is refused by the device process.
    File::options()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(image::image_len(SIZE, true) - 1)
        .unwrap();
    let file = File::options().read(true).write(true).open(&img).unwrap();
    let err = fx
        .devices
        .attach(AttachRequest {
            volume_id: id.clone(),
            image: file,
            size_bytes: SIZE,
            sealed: Some(sealed.pair()),
        })
        .unwrap_err();
    assert!(err.to_string().contains("refusing to use it"), "{err}");
    assert_eq!(fx.devices.attached(&id), None);
    assert!(std::fs::symlink_metadata(format!("/dev/disk/by-id/kmsfs-{id}")).is_err());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&id), "{mounts}");

    // A failure midway (the by-id name is taken by a regular file) undoes
    // the FUSE mount and the loop device.
    let img2 = fx.dir.path().join("vol2.img");
    let sealed2 = new_sealed_image(&img2);
    let taken = PathBuf::from(format!("/dev/disk/by-id/kmsfs-{id}"));
    std::fs::create_dir_all(taken.parent().unwrap()).unwrap();
    std::fs::write(&taken, b"not a link").unwrap();
    let err = fx.devices.attach(AttachRequest {
        volume_id: id.clone(),
        image: File::options().read(true).write(true).open(&img2).unwrap(),
        size_bytes: SIZE,
        sealed: Some(sealed2.pair()),
    });
    std::fs::remove_file(&taken).unwrap();
    let err = err.unwrap_err();
    eprintln!("midway failure: {err}");
    assert!(err.to_string().contains("not a symlink"), "{err}");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&id), "{mounts}");
    let loops = run(Command::new("losetup").arg("-a")).stdout;
    assert!(
        !String::from_utf8_lossy(&loops).contains(&id),
        "loop device left"
    );

    // A bad volume id never reaches a path.
    let file = File::options().read(true).write(true).open(&img).unwrap();
    let err = fx
        .devices
        .attach(AttachRequest {
            volume_id: "../../etc".into(),
            image: file,
            size_bytes: SIZE,
            sealed: None,
        })
        .unwrap_err();
    assert_eq!(err.code(), "InvalidParameterValue");
}

#[test]
fn a_killed_device_process_leaves_a_volume_that_attaches_again() {
    skip_unless_able!();
    let fx = fixture();
    let id = volume_id("killed");
    let img = fx.dir.path().join("vol.img");
    let sealed = new_sealed_image(&img);
    let _cleanup = Detach(&fx, id.clone(), None);
    let dev = attach(&fx, &id, &img, Some(&sealed));
    let src = fx.dir.path().join("block");
    let mut block = MARKER.repeat(4096 / MARKER.len() + 1);
    block.truncate(4096);
    std::fs::write(&src, &block).unwrap();
    run(Command::new("dd")
        .args([
            "bs=4096",
            "count=1",
            "seek=5",
            "oflag=direct,sync",
            "status=none",
        ])
        .arg(format!("if={}", src.display()))
        .arg(format!("of={}", dev.block_device)));
    // A crash of the device process: no teardown at all.
    let pid = fx.devices.status(&id).unwrap().pid;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while fx.devices.attached(&id).is_some() {
        assert!(Instant::now() < deadline, "the killed device still answers");
        std::thread::sleep(Duration::from_millis(50));
    }
    let old_loop = dev.block_device.trim_start_matches("/dev/").to_owned();

    // Attaching again works, and the old loop device is not left behind.
    let again = attach(&fx, &id, &img, Some(&sealed));
    let stale = std::fs::read_to_string(format!("/sys/block/{old_loop}/loop/backing_file"))
        .unwrap_or_default();
    assert!(
        again.block_device == dev.block_device || stale.is_empty(),
        "{old_loop} still serves {stale:?}"
    );
    let out = run(Command::new("dd")
        .args([
            "bs=4096",
            "count=1",
            "skip=5",
            "iflag=direct",
            "status=none",
        ])
        .arg(format!("if={}", again.block_device)));
    assert_eq!(out.stdout, block, "an acknowledged write was lost");
    fx.devices.detach(&id, false).unwrap();
}
