//! The symlink-swap attack on the backing tree (issue 11), as a regression
//! test: a user pins a FUSE inode by opening a directory through the mount,
//! replaces that directory's backing twin (or its parent's) by a symlink to
//! a directory outside the backing tree, and then calls an operation
//! relative to the pinned descriptor. The daemon runs as root; it must
//! either fail or act inside the backing tree, and nothing outside may
//! change: modes, owners, times, entries, contents and xattrs of the
//! outside tree are compared before and after every operation. It runs on
//! a version 2 volume (encrypted names: the twin is found by inode while
//! mounted, and the outside tree also holds the stored names, dir ids and
//! valid kmsfs files the daemon would look for; in the sealed backing root
//! only root can play the attacker, as the test does) and on a version 1
//! one (`--plaintext-names`). A control moves the outside trees in for
//! real and checks that the mount would then serve them.
//!
//! Also: a tree deeper than PATH_MAX works through the mount (the daemon
//! never hands the kernel a path longer than one name).
//!
//! Needs root, /dev/fuse and fusermount3 (as CI has).

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::*;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags};

/// Everything about one outside entry that an escaped operation could change
/// (atime aside: our own reads move it).
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    nlink: u64,
    content: Vec<u8>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Seen> {
    let mut all = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let m = fs::symlink_metadata(&path).expect("stat outside");
        if m.is_dir() {
            for e in fs::read_dir(&path).expect("list outside") {
                stack.push(e.expect("entry").path());
            }
        }
        let content = if m.is_file() {
            fs::read(&path).expect("read outside")
        } else {
            Vec::new()
        };
        let mut xattrs = BTreeMap::new();
        if let Ok(list) = kmsfs_sys::llistxattr(&path) {
            for name in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
                let name = String::from_utf8_lossy(name).into_owned();
                let value = kmsfs_sys::lgetxattr(&path, OsStr::new(&name)).unwrap_or_default();
                xattrs.insert(name, value);
            }
        }
        all.insert(
            path.strip_prefix(root).expect("below root").to_path_buf(),
            Seen {
                mode: m.mode(),
                uid: m.uid(),
                gid: m.gid(),
                size: m.size(),
                mtime: (m.mtime(), m.mtime_nsec()),
                ctime: (m.ctime(), m.ctime_nsec()),
                nlink: m.nlink(),
                content,
                xattrs,
            },
        );
    }
    all
}

/// The names the operations use, planted outside so that a daemon that
/// followed the symlink would find them: `f` (a root-owned 0755 "binary"
/// with an xattr), `sub/` (an empty directory, for rmdir), `keep/secret`,
/// and `only-outside`, which a listing must never show.
fn plant_outside(dir: &Path) {
    fs::create_dir_all(dir.join("sub")).expect("mkdir");
    fs::write(dir.join("only-outside"), b"").expect("write");
    fs::create_dir_all(dir.join("keep")).expect("mkdir");
    fs::write(dir.join("f"), b"outside binary").expect("write");
    fs::set_permissions(dir.join("f"), fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::write(dir.join("keep/secret"), b"root only").expect("write");
    fs::set_permissions(dir.join("keep"), fs::Permissions::from_mode(0o700)).expect("chmod");
    kmsfs_sys::lsetxattr(&dir.join("f"), OsStr::new("user.outside"), b"marker", 0).expect("xattr");
}

/// The stored (backing) name of a path at the mount: the name itself with
/// plaintext names, its encryption with encrypted ones.
fn stored_name(m: &Mount, rel: &str) -> std::ffi::OsString {
    m.backing_path(rel)
        .file_name()
        .expect("a backing name")
        .to_os_string()
}

const DIR_ID_FILE: &str = ".kmsfs.dirid";

/// With encrypted names a daemon that followed the symlink would not look
/// for `f` but for its stored name, in a directory whose `.kmsfs.dirid` it
/// may read again. So the outside directory `outside_d` also gets what the
/// pinned directory `{case}/d` stores: its dir id, and the stored names of
/// `f`, `sub/`, `keep/secret` and `only-outside`, holding valid kmsfs files
/// whose contents are the outside markers (copies of the backing files of
/// decoys created at the mount for this), so that an escaped read would
/// decrypt and reveal them. Must run while mounted, before pinning (it
/// creates and removes `{case}/d/only-outside`).
fn plant_outside_stored(m: &Mount, case: &str, outside_d: &Path) {
    let decoys = format!("{case}-decoy");
    fs::create_dir_all(m.path(&decoys)).expect("mkdir at the mount");
    let contents: [(&str, &[u8]); 3] = [
        ("f", b"outside binary"),
        ("secret", b"root only"),
        ("only-outside", b"only-outside"),
    ];
    for (name, content) in contents {
        fs::write(m.path(&format!("{decoys}/{name}")), content).expect("write decoy");
    }
    kmsfs_sys::lsetxattr(
        &m.path(&format!("{decoys}/f")),
        OsStr::new("user.outside"),
        b"marker",
        0,
    )
    .expect("xattr at the mount");
    let decoy = |name: &str| m.backing_path(&format!("{decoys}/{name}"));
    let d = format!("{case}/d");
    fs::write(m.path(&format!("{d}/only-outside")), b"").expect("write at the mount");
    let only = stored_name(m, &format!("{d}/only-outside"));
    fs::remove_file(m.path(&format!("{d}/only-outside"))).expect("unlink at the mount");
    let twin = m.backing_path(&d);
    let (f, sub, keep) = (
        outside_d.join(stored_name(m, &format!("{d}/f"))),
        outside_d.join(stored_name(m, &format!("{d}/sub"))),
        outside_d.join(stored_name(m, &format!("{d}/keep"))),
    );
    let secret = keep.join(stored_name(m, &format!("{d}/keep/secret")));
    fs::create_dir_all(&sub).expect("mkdir");
    fs::create_dir_all(&keep).expect("mkdir");
    for (from, to) in [
        (twin.join(DIR_ID_FILE), outside_d.join(DIR_ID_FILE)),
        (
            m.backing_path(&format!("{d}/sub")).join(DIR_ID_FILE),
            sub.join(DIR_ID_FILE),
        ),
        (
            m.backing_path(&format!("{d}/keep")).join(DIR_ID_FILE),
            keep.join(DIR_ID_FILE),
        ),
        (decoy("f"), f.clone()),
        (decoy("secret"), secret),
        (decoy("only-outside"), outside_d.join(only)),
    ] {
        fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
    fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::set_permissions(&keep, fs::Permissions::from_mode(0o700)).expect("chmod");
    // The decoy's attributes as stored (the encrypted `user.outside`).
    let list = kmsfs_sys::llistxattr(&decoy("f")).expect("list the decoy's xattrs");
    for name in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        let value = kmsfs_sys::lgetxattr(&decoy("f"), name).expect("the decoy's xattr");
        kmsfs_sys::lsetxattr(&f, name, &value, 0).expect("xattr outside");
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Chmod,
    Chown,
    Utimens,
    Truncate,
    Unlink,
    Rmdir,
    Mkdir,
    Mknod,
    Symlink,
    Link,
    Rename,
    Setxattr,
    Listxattr,
    Readdir,
    Open,
}

const OPS: [Op; 15] = [
    Op::Chmod,
    Op::Chown,
    Op::Utimens,
    Op::Truncate,
    Op::Unlink,
    Op::Rmdir,
    Op::Mkdir,
    Op::Mknod,
    Op::Symlink,
    Op::Link,
    Op::Rename,
    Op::Setxattr,
    Op::Listxattr,
    Op::Readdir,
    Op::Open,
];

/// `/proc/self/fd/N/name`: the test's way to give path-only calls (xattrs,
/// truncate) a name relative to the pinned descriptor.
fn via(pinned: &OwnedFd, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{name}", pinned.as_raw_fd()))
}

/// Runs `op` relative to the pinned directory; what it returns (success or
/// failure) does not matter, only what it changed. Returns names it saw,
/// for the checks that nothing outside was listed.
fn run(op: Op, pinned: &OwnedFd) -> Vec<String> {
    let d = pinned.as_fd();
    let mut seen = Vec::new();
    match op {
        Op::Chmod => {
            let _ = nix::sys::stat::fchmodat(
                d,
                "f",
                Mode::from_bits_truncate(0o4777),
                FchmodatFlags::FollowSymlink,
            );
        }
        Op::Chown => {
            let _ = nix::unistd::fchownat(
                d,
                "f",
                Some(Uid::from_raw(4242)),
                Some(Gid::from_raw(4242)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            );
        }
        Op::Utimens => {
            let t = TimeSpec::new(1_000_000, 0);
            let _ = nix::sys::stat::utimensat(d, "f", &t, &t, UtimensatFlags::NoFollowSymlink);
        }
        Op::Truncate => {
            let _ = nix::unistd::truncate(&via(pinned, "f"), 0);
            if let Ok(fd) = openat(d, "f", OFlag::O_WRONLY, Mode::empty()) {
                let _ = nix::unistd::ftruncate(&fd, 1);
            }
        }
        Op::Unlink => {
            let _ = nix::unistd::unlinkat(d, "f", UnlinkatFlags::NoRemoveDir);
        }
        Op::Rmdir => {
            let _ = nix::unistd::unlinkat(d, "sub", UnlinkatFlags::RemoveDir);
        }
        Op::Mkdir => {
            let _ = nix::sys::stat::mkdirat(d, "newdir", Mode::from_bits_truncate(0o777));
        }
        Op::Mknod => {
            let _ = nix::sys::stat::mknodat(
                d,
                "newfifo",
                SFlag::S_IFIFO,
                Mode::from_bits_truncate(0o666),
                0,
            );
        }
        Op::Symlink => {
            let _ = nix::unistd::symlinkat("/etc/shadow", d, "newlink");
        }
        Op::Link => {
            let _ = nix::unistd::linkat(d, "f", d, "f2", AtFlags::empty());
        }
        Op::Rename => {
            let _ = nix::fcntl::renameat(d, "f", d, "renamed");
        }
        Op::Setxattr => {
            let _ = kmsfs_sys::lsetxattr(&via(pinned, "f"), OsStr::new("user.evil"), b"x", 0);
            let _ = kmsfs_sys::lsetxattr(&via(pinned, "."), OsStr::new("user.evil"), b"x", 0);
        }
        Op::Listxattr => {
            for target in ["f", "."] {
                if let Ok(list) = kmsfs_sys::llistxattr(&via(pinned, target)) {
                    seen.push(String::from_utf8_lossy(&list).into_owned());
                }
            }
        }
        Op::Readdir => {
            for target in [".", "keep"] {
                if let Ok(entries) = fs::read_dir(via(pinned, target)) {
                    seen.extend(
                        entries
                            .flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned()),
                    );
                }
            }
        }
        Op::Open => {
            if let Ok(fd) = openat(d, "f", OFlag::O_RDWR, Mode::empty()) {
                let file = fs::File::from(fd);
                let mut buf = [0u8; 64];
                if let Ok(n) = std::os::unix::fs::FileExt::read_at(&file, &mut buf, 0) {
                    seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
                let _ = std::os::unix::fs::FileExt::write_at(&file, b"PWNED", 0);
            }
            if let Ok(fd) = openat(d, "keep/secret", OFlag::O_RDONLY, Mode::empty()) {
                let mut s = String::new();
                let _ = std::io::Read::read_to_string(&mut fs::File::from(fd), &mut s);
                seen.push(s);
            }
        }
    }
    seen
}

/// What is swapped for the symlink: the pinned directory's own backing
/// twin, or its parent's; and whether the daemon still holds the pinned
/// directory's descriptor in its cache or must find it again by walking
/// down from the root (the cache is flooded with other directories first).
#[derive(Debug, Clone, Copy)]
enum Swap {
    PinnedDir,
    Parent,
    PinnedDirUncached,
    ParentUncached,
}

/// More directories than the daemon caches descriptors of (256).
const FLOOD: usize = 300;

/// Makes the daemon resolve `FLOOD` other directories, pushing every
/// earlier one out of its descriptor cache.
fn flood_dir_cache(m: &Mount) {
    for i in 0..FLOOD {
        let _ = fs::read_dir(m.path(&format!("flood/{i}"))).map(|d| d.count());
    }
}

/// One attack; returns what went wrong (None: nothing outside changed).
fn attack(m: &Mount, op: Op, swap: Swap) -> Option<String> {
    let case = format!("{op:?}-{swap:?}").to_lowercase();
    // At the mount: case/d/{f, sub/, keep/secret}; d is pinned.
    let d = m.path(&format!("{case}/d"));
    fs::create_dir_all(d.join("sub")).expect("mkdir at the mount");
    fs::create_dir_all(d.join("keep")).expect("mkdir at the mount");
    fs::write(d.join("f"), b"inside").expect("write at the mount");
    fs::write(d.join("keep/secret"), b"inside secret").expect("write at the mount");

    // Outside the backing tree: the same names, root-owned (and with
    // encrypted names the same stored names too). The twin is where the
    // backing tree stores the directory, found while mounted.
    let outside = m.root().join(format!("outside-{case}"));
    let (twin, target) = match swap {
        Swap::PinnedDir | Swap::PinnedDirUncached => {
            plant_outside(&outside);
            (m.backing_path(&format!("{case}/d")), outside.clone())
        }
        Swap::Parent | Swap::ParentUncached => {
            plant_outside(&outside.join("d"));
            if m.encrypted_names() {
                let stored_d = outside.join(stored_name(m, &format!("{case}/d")));
                fs::create_dir_all(&stored_d).expect("mkdir outside");
                fs::copy(
                    m.backing_path(&case).join(DIR_ID_FILE),
                    outside.join(DIR_ID_FILE),
                )
                .expect("copy the parent's dir id");
            }
            (m.backing_path(&case), outside.clone())
        }
    };
    if m.encrypted_names() {
        let outside_d = match swap {
            Swap::PinnedDir | Swap::PinnedDirUncached => outside.clone(),
            Swap::Parent | Swap::ParentUncached => {
                outside.join(stored_name(m, &format!("{case}/d")))
            }
        };
        plant_outside_stored(m, &case, &outside_d);
    }
    let pinned: OwnedFd = openat(
        nix::fcntl::AT_FDCWD,
        &d,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .expect("pin the directory");
    // The kernel knows every name the operation will use.
    for name in ["f", "sub", "keep", "keep/secret"] {
        let _ = nix::sys::stat::fstatat(&pinned, name, AtFlags::AT_SYMLINK_NOFOLLOW);
    }
    if matches!(swap, Swap::PinnedDirUncached | Swap::ParentUncached) {
        flood_dir_cache(m);
    }
    let before = snapshot(&outside);
    let mut moved_name = twin.file_name().expect("twin name").to_os_string();
    moved_name.push(".moved");
    let moved = twin.with_file_name(moved_name);
    fs::rename(&twin, &moved).expect("move the backing twin away");
    std::os::unix::fs::symlink(&target, &twin).expect("plant the symlink");

    let seen = run(op, &pinned);

    let after = snapshot(&outside);
    let revealed = seen.iter().find(|s| {
        s.contains("user.outside")
            || s.contains("outside binary")
            || s.contains("root only")
            || s.contains("only-outside")
    });
    // Put the backing tree back for the next case (and the daemon's sake).
    fs::remove_file(&twin).expect("remove the symlink");
    fs::rename(&moved, &twin).expect("restore the twin");
    drop(pinned);
    if before != after {
        let changed: Vec<_> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(v))
            .map(|(k, _)| k.display().to_string())
            .chain(
                before
                    .keys()
                    .filter(|k| !after.contains_key(*k))
                    .map(|k| format!("{} (removed)", k.display())),
            )
            .collect();
        return Some(format!(
            "{op:?} with the {swap:?} swapped changed outside: {changed:?}"
        ));
    }
    revealed.map(|s| format!("{op:?} with the {swap:?} swapped revealed outside: {s:?}"))
}

#[test]
fn a_swapped_backing_directory_is_never_followed_with_encrypted_names() {
    let mut m = Mount::new();
    assert!(m.encrypted_names(), "the default volume is version 2");
    swapped_backing_directories(&m);
    outside_trees_are_what_the_daemon_would_serve(&mut m);
}

#[test]
fn a_swapped_backing_directory_is_never_followed_with_plaintext_names() {
    let mut m = Mount::with(Spec::default().plaintext_names());
    assert!(!m.encrypted_names());
    swapped_backing_directories(&m);
    outside_trees_are_what_the_daemon_would_serve(&mut m);
}

/// The control for the attacks: the outside trees are bait the daemon
/// would take. Moved into the backing tree for real (directories, not
/// symlinks) while unmounted, they are served at the mount: the listing
/// shows `only-outside`, and with encrypted names (where the bait holds
/// valid stored names and kmsfs files) `f`, `keep/secret` and the
/// `user.outside` attribute read back as the outside markers. So an
/// attack that had been followed would have been seen.
fn outside_trees_are_what_the_daemon_would_serve(m: &mut Mount) {
    let cases = [
        ("readdir-pinneddir", "readdir-pinneddir/d"),
        ("open-parent", "open-parent"),
    ];
    let twins: Vec<PathBuf> = cases.iter().map(|(_, twin)| m.backing_path(twin)).collect();
    m.umount();
    for ((case, _), twin) in cases.iter().zip(&twins) {
        let mut moved_name = twin.file_name().expect("twin name").to_os_string();
        moved_name.push(".moved");
        fs::rename(twin, twin.with_file_name(moved_name)).expect("move the twin away");
        fs::rename(m.root().join(format!("outside-{case}")), twin).expect("move the bait in");
    }
    m.mount();
    for (case, _) in cases {
        let d = m.path(&format!("{case}/d"));
        let listing: Vec<String> = fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("{case}: list the bait: {e}"))
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            listing.iter().any(|n| n == "only-outside"),
            "{case}: the bait's listing {listing:?}"
        );
        if m.encrypted_names() {
            assert_eq!(
                fs::read(d.join("f")).expect("read the bait"),
                b"outside binary",
                "{case}"
            );
            assert_eq!(
                fs::read(d.join("keep/secret")).expect("read the bait"),
                b"root only",
                "{case}"
            );
            assert_eq!(
                kmsfs_sys::lgetxattr(&d.join("f"), OsStr::new("user.outside"))
                    .expect("the bait's xattr"),
                b"marker",
                "{case}"
            );
        }
    }
}

/// Every operation against every swap, on one volume.
fn swapped_backing_directories(m: &Mount) {
    for i in 0..FLOOD {
        fs::create_dir_all(m.path(&format!("flood/{i}"))).expect("mkdir at the mount");
    }
    let swaps = [
        Swap::PinnedDir,
        Swap::Parent,
        Swap::PinnedDirUncached,
        Swap::ParentUncached,
    ];
    let mut escapes = Vec::new();
    for swap in swaps {
        for op in OPS {
            escapes.extend(attack(m, op, swap));
        }
    }
    assert!(
        escapes.is_empty(),
        "{} of {} attacks escaped the backing tree:\n{}",
        escapes.len(),
        swaps.len() * OPS.len(),
        escapes.join("\n")
    );
    // The daemon is still serving.
    fs::write(m.path("alive"), b"yes").expect("write after the attacks");
    assert_eq!(fs::read(m.path("alive")).expect("read"), b"yes");
}

#[test]
fn a_tree_deeper_than_path_max_works() {
    let m = Mount::new();
    let name = "n".repeat(200);
    // 25 levels of 201 bytes: 5025 bytes below the mount, past PATH_MAX.
    let mut fds: Vec<OwnedFd> = vec![
        openat(
            nix::fcntl::AT_FDCWD,
            &m.path(""),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .expect("open the mount"),
    ];
    for _ in 0..25 {
        let parent = fds.last().expect("a parent");
        nix::sys::stat::mkdirat(parent, name.as_str(), Mode::from_bits_truncate(0o755))
            .expect("mkdir deep");
        let child = openat(
            parent,
            name.as_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .expect("descend");
        fds.push(child);
    }
    let bottom = fds.last().expect("the bottom");
    let data = pseudo_random(7, 10_000);
    {
        let fd = openat(
            bottom,
            "file",
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL,
            Mode::from_bits_truncate(0o644),
        )
        .expect("create deep");
        let file = fs::File::from(fd);
        std::os::unix::fs::FileExt::write_all_at(&file, &data, 0).expect("write deep");
    }
    nix::fcntl::renameat(bottom, "file", bottom, "renamed").expect("rename deep");
    nix::unistd::symlinkat("file", bottom, "link").expect("symlink deep");
    nix::sys::stat::fchmodat(
        bottom,
        "renamed",
        Mode::from_bits_truncate(0o600),
        FchmodatFlags::FollowSymlink,
    )
    .expect("chmod deep");
    let fd = openat(bottom, "renamed", OFlag::O_RDONLY, Mode::empty()).expect("open deep");
    let file = fs::File::from(fd);
    let mut back = vec![0u8; data.len()];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut back, 0).expect("read deep");
    assert!(back == data, "deep file reads back");
    assert_eq!(file.metadata().expect("fstat").mode() & 0o7777, 0o600);
    let listing = fs::read_dir(format!("/proc/self/fd/{}", bottom.as_raw_fd()))
        .expect("list deep")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(
        listing,
        ["link", "renamed"].map(String::from).into_iter().collect()
    );
    drop(file);
    // And it can all be removed again, bottom up.
    nix::unistd::unlinkat(bottom, "renamed", UnlinkatFlags::NoRemoveDir).expect("unlink deep");
    nix::unistd::unlinkat(bottom, "link", UnlinkatFlags::NoRemoveDir).expect("unlink deep");
    while fds.len() > 1 {
        fds.pop();
        let parent = fds.last().expect("a parent");
        nix::unistd::unlinkat(parent, name.as_str(), UnlinkatFlags::RemoveDir).expect("rmdir deep");
    }
    assert!(fs::read_dir(m.path("")).expect("list").next().is_none());
}
