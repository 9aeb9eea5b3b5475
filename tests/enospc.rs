//! Running out of space in the backing filesystem (a 64 MiB tmpfs mounted
//! under the backing directory): writes fail with ENOSPC and damage
//! nothing, the size the mount shows is what is stored, and fallocate
//! reserves backing space (or fails with ENOSPC).
//!
//! Needs root (mount -t tmpfs), /dev/fuse and fusermount3.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const MIB: u64 = 1 << 20;

/// A tmpfs of `size` mounted at a directory; unmounted and removed on drop
/// (after the kmsfs mount on top of it: see `Mount::with_prepared_backing`).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).expect("create the tmpfs mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mount tmpfs: {}", describe(&out));
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // The kmsfs daemon may take a moment to close its descriptors.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new("umount").arg(&self.0).output();
            if out.is_ok_and(|o| o.status.success()) || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(root) = self.0.parent() {
            let _ = fs::remove_dir_all(root);
        }
    }
}

fn small_volume(spec: Spec) -> (Tmpfs, Mount) {
    Mount::with_prepared_backing(spec, |backing| Tmpfs::mount(backing, "64m"))
}

/// Deterministic incompressible-looking bytes.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn write_synced(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Reads `path` whole (an EIO fails the test) and checks that stat's size
/// is the number of bytes there are. No waiting: the writer's close has
/// returned, and by then the kernel has dropped the size and pages it held
/// beyond what was stored (the daemon's flush waits for that).
fn read_checking_size(path: &Path, what: &str) -> Vec<u8> {
    let data = fs::read(path).unwrap_or_else(|e| panic!("{what}: reading big: {e}"));
    let size = fs::metadata(path).expect("stat big").len();
    assert_eq!(
        size,
        data.len() as u64,
        "{what}: stat says {size} bytes, {} are readable",
        data.len()
    );
    data
}

#[test]
fn a_full_disk_gives_enospc_and_damages_nothing() {
    let (_tmpfs, mut m) = small_volume(Spec::default());
    let old = pattern((8 * MIB) as usize, 1);
    write_synced(&m.path("old"), &old).expect("write old");

    let big = m.path("big");
    let out = Command::new("dd")
        .arg("if=/dev/urandom")
        .arg(format!("of={}", big.display()))
        .args(["bs=1M", "count=200", "conv=fsync"])
        .output()
        .expect("run dd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "dd of 200 MiB onto 64 MiB succeeded");
    assert!(
        stderr.contains("No space left on device"),
        "dd: {}",
        describe(&out)
    );

    assert!(
        fs::read(m.path("old")).expect("read old") == old,
        "old changed"
    );
    // What the mount shows right after the writer's close is what is
    // stored: the same bytes after a remount, when no cache is left. (The
    // size need not be below 64 MiB: writeback may store a later range
    // after an earlier one was refused, leaving a hole that reads as
    // zeros; the writer was told by fsync that its data is not all there.)
    let shown = read_checking_size(&big, "mounted");
    let backing_used = fs::metadata(m.backing_path("big"))
        .expect("stat backing big")
        .blocks()
        * 512;
    assert!(backing_used < 64 * MIB, "big occupies {backing_used} bytes");

    m.remount();
    assert!(
        fs::read(m.path("old")).expect("read old") == old,
        "old changed after remount"
    );
    let stored = read_checking_size(&big, "remounted");
    assert_eq!(shown.len(), stored.len(), "size before and after remount");
    assert!(
        shown == stored,
        "the mount showed bytes that were not stored"
    );
    // Deleting it gives the space back.
    fs::remove_file(&big).expect("rm big");
    let again = pattern((16 * MIB) as usize, 2);
    write_synced(&m.path("again"), &again).expect("write 16 MiB after rm");
    assert!(fs::read(m.path("again")).expect("read again") == again);
    let (ok, report) = m.fsck();
    assert!(ok, "fsck: {report}");
}

#[test]
fn fallocate_reserves_backing_space_or_fails_with_enospc() {
    for spec in [Spec::default(), Spec::default().plaintext_names()] {
        let (_tmpfs, m) = small_volume(spec);
        let fallocate = |len: &str, name: &str| {
            Command::new("fallocate")
                .args(["-l", len])
                .arg(m.path(name))
                .output()
                .expect("run fallocate")
        };
        let out = fallocate("100M", "f");
        assert!(!out.status.success(), "fallocate of 100M on 64M succeeded");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("No space left on device"),
            "fallocate: {}",
            describe(&out)
        );
        assert_eq!(fs::metadata(m.path("f")).expect("stat f").len(), 0);

        let out = fallocate("4M", "g");
        assert!(out.status.success(), "fallocate -l 4M: {}", describe(&out));
        assert_eq!(fs::metadata(m.path("g")).expect("stat g").len(), 4 * MIB);
        let backing = fs::metadata(m.backing_path("g")).expect("stat backing g");
        assert!(
            backing.blocks() * 512 >= 4 * MIB,
            "backing g has {} bytes allocated",
            backing.blocks() * 512
        );
        assert_eq!(
            fs::read(m.path("g")).expect("read g"),
            vec![0u8; (4 * MIB) as usize]
        );

        // The failed 100M left nothing allocated: most of the disk is free.
        let out = fallocate("40M", "h");
        assert!(out.status.success(), "fallocate -l 40M: {}", describe(&out));
    }
}
