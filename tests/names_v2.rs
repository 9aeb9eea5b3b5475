//! Format version 2 through a real FUSE mount: encrypted names, long names,
//! encrypted symlink targets and user xattrs (docs/FORMAT.md, "Names,
//! symlink targets and extended attributes (format version 2)").
//!
//! Every test asserts both what the mount shows and what the backing tree
//! holds: no plaintext name, target or attribute leaks into it, long names
//! come as `L.*` entries with their `.name` side files and leave none
//! behind, renaming a directory leaves its children's stored names alone,
//! and a tampered tree hides entries (or gives EIO) instead of crashing the
//! daemon. A version 1 (`--plaintext-names`) volume keeps the old layout.
//!
//! Needs root, /dev/fuse and fusermount3 (as CI has).

mod common;

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::*;
use nix::fcntl::{AT_FDCWD, OFlag, RenameFlags, openat, renameat2};
use nix::sys::stat::Mode;

const DIR_ID_FILE: &str = ".kmsfs.dirid";

/// The names of a directory's entries (`.` and `..` aside).
fn names_of(dir: &Path) -> BTreeSet<OsString> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").file_name())
        .collect()
}

fn set<const N: usize>(names: [&str; N]) -> BTreeSet<OsString> {
    names.iter().map(OsString::from).collect()
}

fn errno_at(what: &str, r: std::io::Result<impl std::fmt::Debug>) -> i32 {
    errno_of(what, r)
}

/// Checks that every `L.*` entry of the backing directory `dir` has its
/// `.name` side file and every side file its entry; returns how many long
/// entries there are.
fn long_pairs(dir: &Path) -> usize {
    let names: BTreeSet<String> = names_of(dir)
        .into_iter()
        .map(|n| n.into_string().expect("backing names are ASCII"))
        .collect();
    let mut entries = 0;
    for n in &names {
        if !n.starts_with("L.") {
            continue;
        }
        if let Some(entry) = n.strip_suffix(".name") {
            assert!(
                names.contains(entry),
                "orphan side file {n} in {}",
                dir.display()
            );
        } else {
            assert_eq!(n.len(), 45, "long entry name {n}");
            assert!(
                names.contains(&format!("{n}.name")),
                "long entry {n} without its side file in {}",
                dir.display()
            );
            entries += 1;
        }
    }
    entries
}

/// Every byte string the backing tree below `root` exposes: names of all
/// entries, symlink targets, contents of regular files, xattr names and
/// values (symlinks not followed, FIFOs not opened).
fn backing_blobs(root: &Path) -> Vec<(PathBuf, &'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let m = fs::symlink_metadata(&path).expect("lstat backing");
        out.push((
            path.clone(),
            "name",
            path.file_name()
                .map(|n| n.as_bytes().to_vec())
                .unwrap_or_default(),
        ));
        let ft = m.file_type();
        if ft.is_dir() {
            for e in fs::read_dir(&path).expect("list backing") {
                stack.push(e.expect("entry").path());
            }
        } else if ft.is_symlink() {
            let t = fs::read_link(&path).expect("readlink backing");
            out.push((path.clone(), "target", t.into_os_string().into_vec()));
        } else if ft.is_file() {
            out.push((
                path.clone(),
                "content",
                fs::read(&path).expect("read backing"),
            ));
        }
        if let Ok(list) = kmsfs_sys::llistxattr(&path) {
            for name in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
                out.push((path.clone(), "xattr name", name.to_vec()));
                let value =
                    kmsfs_sys::lgetxattr(&path, OsStr::from_bytes(name)).unwrap_or_default();
                out.push((path.clone(), "xattr value", value));
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn getxattr(path: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    kmsfs_sys::lgetxattr(path, OsStr::new(name))
}

fn setxattr(path: &Path, name: &str, value: &[u8]) {
    kmsfs_sys::lsetxattr(path, OsStr::new(name), value, 0)
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", path.display()));
}

fn listxattr(path: &Path) -> BTreeSet<String> {
    kmsfs_sys::llistxattr(path)
        .expect("listxattr")
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

fn assert_fsck_clean(m: &Mount) {
    let (ok, report) = m.fsck();
    assert!(ok, "fsck on an undamaged version 2 volume: {report}");
    assert!(report.contains(" 0 damaged"), "{report}");
}

// 1. Nothing the user named leaks into the backing tree.
#[test]
fn no_plaintext_leaks_into_the_backing_tree() {
    let mut m = Mount::new();
    assert!(m.encrypted_names());
    let long = format!("MARKERlongnameL2{}", "w".repeat(230));
    fs::create_dir_all(m.path("MARKERdirA1/MARKERsubdirB2")).expect("mkdir nested");
    fs::create_dir(m.path("MARKERotherdirO3")).expect("mkdir");
    let file = m.path("MARKERdirA1/MARKERsubdirB2/MARKERnameQ7");
    let content = b"MARKERcontentC5 ".repeat(500);
    fs::write(&file, &content).expect("write");
    fs::write(m.path(&format!("MARKERdirA1/{long}")), b"MARKERcontentC5").expect("write long");
    std::os::unix::fs::symlink(
        "../MARKERlinkZ3/MARKERnameQ7",
        m.path("MARKERdirA1/MARKERsymlinkS4"),
    )
    .expect("symlink");
    fs::hard_link(&file, m.path("MARKERotherdirO3/MARKERhardlinkH8")).expect("hard link");
    nix::unistd::mkfifo(
        &m.path("MARKERotherdirO3/MARKERfifoF6"),
        Mode::from_bits_truncate(0o644),
    )
    .expect("mkfifo");
    for target in [file.clone(), m.path("MARKERdirA1")] {
        setxattr(&target, "user.MARKERxattrnameK1", b"MARKERxattrvalueJ9");
        setxattr(&target, "user.second.MARKERxattrnameK1", b"");
    }
    // Everything reads back through the mount.
    assert_eq!(fs::read(&file).expect("read"), content);
    assert_eq!(
        fs::read_link(m.path("MARKERdirA1/MARKERsymlinkS4")).expect("readlink"),
        Path::new("../MARKERlinkZ3/MARKERnameQ7")
    );
    assert_eq!(
        getxattr(&file, "user.MARKERxattrnameK1").expect("getxattr"),
        b"MARKERxattrvalueJ9"
    );
    assert_eq!(
        listxattr(&m.path("MARKERdirA1")),
        ["user.MARKERxattrnameK1", "user.second.MARKERxattrnameK1"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    assert_eq!(
        names_of(&m.path("MARKERdirA1")),
        set(["MARKERsubdirB2", "MARKERsymlinkS4", long.as_str()])
    );
    assert_eq!(fs::metadata(&file).expect("stat").nlink(), 2);
    m.umount();

    // The sealed root: 0700, the config and the tree only.
    let root_mode = fs::metadata(&m.backing).expect("stat root").mode();
    assert_eq!(root_mode & 0o7777, 0o700, "backing root mode {root_mode:o}");
    let top = names_of(&m.backing);
    assert!(top.contains(OsStr::new("tree")), "{top:?}");
    assert!(top.contains(OsStr::new(CONFIG_NAME)), "{top:?}");
    assert!(m.backing.join("tree").join(DIR_ID_FILE).is_file());
    assert_eq!(m.config()["format_version"], 2);

    let blobs = backing_blobs(&m.backing);
    let kinds: BTreeSet<&str> = blobs.iter().map(|(_, k, _)| *k).collect();
    for k in ["name", "target", "content", "xattr name", "xattr value"] {
        assert!(kinds.contains(k), "the walk saw no {k} at all: {kinds:?}");
    }
    let mut leaks = Vec::new();
    for (path, kind, bytes) in &blobs {
        if contains(bytes, b"MARKER") {
            leaks.push(format!(
                "{} ({kind}): {:?}",
                path.display(),
                String::from_utf8_lossy(bytes)
            ));
        }
    }
    assert!(
        leaks.is_empty(),
        "plaintext in the backing tree:\n{}",
        leaks.join("\n")
    );
    // Specific markers too (a subset of "MARKER" above, but named).
    for marker in [
        "MARKERnameQ7",
        "MARKERlinkZ3",
        "MARKERxattrnameK1",
        "MARKERxattrvalueJ9",
        "MARKERcontentC5",
    ] {
        assert!(
            !blobs.iter().any(|(_, _, b)| contains(b, marker.as_bytes())),
            "{marker} in the backing tree"
        );
    }
    // No stored symlink target is a plaintext one.
    for (path, kind, bytes) in &blobs {
        if *kind == "target" {
            assert_eq!(bytes.first(), Some(&b'~'), "{}", path.display());
        }
    }
    assert_fsck_clean(&m);
}

// 2. Names of exactly 255 bytes, ASCII and multi-byte.
#[test]
fn names_of_255_bytes_work_and_leave_no_side_file_behind() {
    let mut m = Mount::new();
    let ascii = "a".repeat(255);
    let ascii2 = "b".repeat(255);
    let two_byte = format!("{}z", "é".repeat(127));
    let three_byte = "日".repeat(85);
    let four_byte = format!("{}xyz", "🦀".repeat(63));
    for n in [&ascii, &ascii2, &two_byte, &three_byte, &four_byte] {
        assert_eq!(n.len(), 255, "{n}");
    }
    fs::create_dir(m.path("d1")).expect("mkdir");
    fs::create_dir(m.path("d2")).expect("mkdir");
    for (i, n) in [&ascii, &two_byte, &four_byte].into_iter().enumerate() {
        fs::write(m.path(&format!("d1/{n}")), format!("content {i}")).expect("create long");
    }
    fs::create_dir(m.path(&format!("d1/{three_byte}"))).expect("mkdir long");
    fs::write(m.path(&format!("d1/{three_byte}/{ascii}")), b"nested").expect("create nested");
    for (i, n) in [&ascii, &two_byte, &four_byte].into_iter().enumerate() {
        let p = m.path(&format!("d1/{n}"));
        let meta = fs::metadata(&p).expect("stat long");
        assert!(meta.is_file());
        assert_eq!(meta.len(), format!("content {i}").len() as u64);
        assert_eq!(
            fs::read(&p).expect("read long"),
            format!("content {i}").as_bytes()
        );
    }
    assert_eq!(
        names_of(&m.path("d1")),
        set([&ascii, &two_byte, &four_byte, &three_byte].map(|s| s.as_str()))
    );
    let b1 = m.backing_path("d1");
    let b2 = m.backing_path("d2");
    assert_eq!(long_pairs(&b1), 4, "{:?}", names_of(&b1));
    assert_eq!(long_pairs(&m.backing_path(&format!("d1/{three_byte}"))), 1);

    // Rename to another long name in the same directory, and across.
    fs::rename(
        m.path(&format!("d1/{ascii}")),
        m.path(&format!("d1/{ascii2}")),
    )
    .expect("rename");
    fs::rename(
        m.path(&format!("d1/{two_byte}")),
        m.path(&format!("d2/{two_byte}")),
    )
    .expect("rename across");
    fs::rename(
        m.path(&format!("d1/{three_byte}")),
        m.path(&format!("d2/{ascii}")),
    )
    .expect("rename dir across");
    // A long name renamed to a short one and back.
    fs::rename(m.path(&format!("d1/{four_byte}")), m.path("d1/short")).expect("to short");
    assert_eq!(long_pairs(&b1), 1, "{:?}", names_of(&b1));
    fs::rename(m.path("d1/short"), m.path(&format!("d1/{four_byte}"))).expect("to long");
    assert_eq!(
        errno_at("old name", fs::metadata(m.path(&format!("d1/{ascii}")))),
        libc::ENOENT
    );
    let check = |m: &Mount| {
        assert_eq!(
            names_of(&m.path("d1")),
            set([ascii2.as_str(), four_byte.as_str()])
        );
        assert_eq!(
            names_of(&m.path("d2")),
            set([two_byte.as_str(), ascii.as_str()])
        );
        assert_eq!(
            fs::read(m.path(&format!("d1/{ascii2}"))).expect("read"),
            b"content 0"
        );
        assert_eq!(
            fs::read(m.path(&format!("d2/{two_byte}"))).expect("read"),
            b"content 1"
        );
        assert_eq!(
            fs::read(m.path(&format!("d1/{four_byte}"))).expect("read"),
            b"content 2"
        );
        assert_eq!(
            fs::read(m.path(&format!("d2/{ascii}/{ascii}"))).expect("read nested"),
            b"nested"
        );
    };
    check(&m);
    assert_eq!(long_pairs(&b1), 2, "{:?}", names_of(&b1));
    assert_eq!(long_pairs(&b2), 2, "{:?}", names_of(&b2));
    m.remount();
    check(&m);
    let (b1, b2) = (m.backing_path("d1"), m.backing_path("d2"));

    // Unlink and rmdir leave no side file behind.
    fs::remove_file(m.path(&format!("d1/{ascii2}"))).expect("unlink long");
    fs::remove_file(m.path(&format!("d2/{ascii}/{ascii}"))).expect("unlink nested");
    fs::remove_dir(m.path(&format!("d2/{ascii}"))).expect("rmdir long");
    assert_eq!(long_pairs(&b1), 1, "{:?}", names_of(&b1));
    assert_eq!(long_pairs(&b2), 1, "{:?}", names_of(&b2));
    fs::remove_file(m.path(&format!("d1/{four_byte}"))).expect("unlink long");
    fs::remove_file(m.path(&format!("d2/{two_byte}"))).expect("unlink long");
    assert_eq!(names_of(&b1), set([DIR_ID_FILE]));
    assert_eq!(names_of(&b2), set([DIR_ID_FILE]));

    // 256 bytes is too long, for every kind of entry.
    let too_long = "c".repeat(256);
    let p = m.path(&format!("d1/{too_long}"));
    assert_eq!(
        errno_at("create 256", fs::write(&p, b"x")),
        libc::ENAMETOOLONG
    );
    assert_eq!(
        errno_at("mkdir 256", fs::create_dir(&p)),
        libc::ENAMETOOLONG
    );
    assert_eq!(
        errno_at("symlink 256", std::os::unix::fs::symlink("t", &p)),
        libc::ENAMETOOLONG
    );
    fs::write(m.path("d1/f"), b"f").expect("write");
    assert_eq!(
        errno_at("rename to 256", fs::rename(m.path("d1/f"), &p)),
        libc::ENAMETOOLONG
    );
    let multi_too_long = format!("{}z", "é".repeat(128));
    assert_eq!(
        errno_at(
            "create 257 (multi-byte)",
            fs::write(m.path(&format!("d1/{multi_too_long}")), b"x")
        ),
        libc::ENAMETOOLONG
    );
    assert_eq!(names_of(&m.path("d1")), set(["f"]));
    assert_eq!(long_pairs(&b1), 0, "{:?}", names_of(&b1));
    m.umount();
    assert_fsck_clean(&m);
}

// 3. Symlink targets of 4000 bytes.
#[test]
fn symlink_targets_of_4000_bytes_round_trip() {
    let mut m = Mount::new();
    let mut target = String::from("/");
    while target.len() < 3990 {
        target.push_str("dir-é/");
    }
    while target.len() < 4000 {
        target.push('x');
    }
    assert_eq!(target.len(), 4000);
    let link = m.path("long-link");
    std::os::unix::fs::symlink(&target, &link).expect("symlink 4000");
    let check = |m: &Mount| {
        assert_eq!(
            fs::read_link(m.path("long-link")).expect("readlink"),
            Path::new(&target)
        );
        let meta = fs::symlink_metadata(m.path("long-link")).expect("lstat");
        assert!(meta.file_type().is_symlink());
        assert_eq!(meta.len(), 4000);
    };
    check(&m);
    let stored = fs::read_link(m.backing_path("long-link")).expect("backing readlink");
    let stored = stored.as_os_str().as_bytes();
    assert_eq!(stored[0], b'~');
    assert!(
        stored.len() <= 4095 && stored.len() > 4000,
        "{}",
        stored.len()
    );
    m.remount();
    check(&m);
    // A target of PATH_MAX - 1 bytes whose ciphertext can never fit is
    // refused, not truncated.
    let too_long = "y".repeat(4095);
    assert_eq!(
        errno_at(
            "symlink 4095",
            std::os::unix::fs::symlink(&too_long, m.path("too-long"))
        ),
        libc::ENAMETOOLONG
    );
    assert!(fs::symlink_metadata(m.path("too-long")).is_err());
    m.umount();
    assert_fsck_clean(&m);
}

fn open_dir_at(parent: &OwnedFd, name: &str) -> OwnedFd {
    openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .expect("descend")
}

// 4. A tree deeper than PATH_MAX.
#[test]
fn a_tree_deeper_than_path_max_works_with_encrypted_names() {
    let mut m = Mount::new();
    // Short names (150 bytes: 222 once encrypted) and long ones (200 bytes:
    // hashed entries) alternate; 26 levels make 4576 bytes below the mount.
    let names = ["s".repeat(150), "L".repeat(200)];
    let levels = 26;
    let walk = |m: &Mount, create: bool| -> Vec<OwnedFd> {
        let mut fds = vec![
            openat(
                AT_FDCWD,
                &m.path(""),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                Mode::empty(),
            )
            .expect("open the mount"),
        ];
        for i in 0..levels {
            let parent = fds.last().expect("a parent");
            let name = names[i % 2].as_str();
            if create {
                nix::sys::stat::mkdirat(parent, name, Mode::from_bits_truncate(0o755))
                    .expect("mkdir deep");
            }
            let child = open_dir_at(parent, name);
            fds.push(child);
        }
        fds
    };
    let depth: usize = (0..levels).map(|i| names[i % 2].len() + 1).sum();
    assert!(m.path("").as_os_str().len() + depth > 4096);
    let data = pseudo_random(11, 20_000);
    {
        let fds = walk(&m, true);
        let bottom = fds.last().expect("bottom");
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
    m.remount();
    let fds = walk(&m, false);
    let bottom = fds.last().expect("bottom");
    let fd = openat(bottom, "file", OFlag::O_RDONLY, Mode::empty()).expect("open deep");
    let file = fs::File::from(fd);
    let mut back = vec![0u8; data.len()];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut back, 0).expect("read deep");
    assert!(back == data, "the deep file reads back after remount");
    drop(file);
    drop(fds);
    m.umount();
    assert_fsck_clean(&m);
}

// 5. A directory of 10,000 entries, renamed in O(1).
#[test]
fn ten_thousand_entries_survive_a_directory_rename_untouched() {
    let mut m = Mount::new();
    const N: usize = 10_000;
    fs::create_dir(m.path("big")).expect("mkdir");
    fs::create_dir(m.path("elsewhere")).expect("mkdir");
    let name = |i: usize| format!("entry-{i:05}");
    for i in 0..N {
        fs::write(m.path(&format!("big/{}", name(i))), i.to_string()).expect("create");
    }
    let want: BTreeSet<OsString> = (0..N).map(|i| OsString::from(name(i))).collect();
    assert_eq!(names_of(&m.path("big")), want);
    let backing_before = names_of(&m.backing_path("big"));
    assert_eq!(backing_before.len(), N + 1, "the children and the dir id");
    assert!(backing_before.contains(OsStr::new(DIR_ID_FILE)));
    assert!(backing_before.is_disjoint(&want), "names are encrypted");

    fs::rename(m.path("big"), m.path("elsewhere/renamed-big")).expect("rename the directory");
    assert_eq!(
        errno_at("old path", fs::metadata(m.path("big"))),
        libc::ENOENT
    );
    let backing_after = names_of(&m.backing_path("elsewhere/renamed-big"));
    assert!(
        backing_before == backing_after,
        "the children's stored names changed with the directory's rename"
    );
    m.remount();
    assert_eq!(names_of(&m.path("elsewhere/renamed-big")), want);
    for i in 0..N {
        let got = fs::read_to_string(m.path(&format!("elsewhere/renamed-big/{}", name(i))))
            .unwrap_or_else(|e| panic!("read {}: {e}", name(i)));
        assert_eq!(got, i.to_string());
    }
    m.umount();
}

// 6. Hard links, RENAME_EXCHANGE and RENAME_NOREPLACE.
#[test]
fn hard_links_and_rename_flags_with_encrypted_names() {
    let mut m = Mount::new();
    let long_dir = "D".repeat(220);
    let long_file = "F".repeat(240);
    for d in ["a", "b", "x", "y"] {
        fs::create_dir(m.path(d)).expect("mkdir");
    }
    // Hard links across directories, one of them with a long name.
    fs::write(m.path("a/orig"), b"shared").expect("write");
    fs::hard_link(m.path("a/orig"), m.path(&format!("b/{long_file}"))).expect("link");
    let (m1, m2) = (
        fs::metadata(m.path("a/orig")).expect("stat"),
        fs::metadata(m.path(&format!("b/{long_file}"))).expect("stat"),
    );
    assert_eq!((m1.nlink(), m2.nlink()), (2, 2));
    assert_eq!(m1.ino(), m2.ino());
    fs::write(m.path(&format!("b/{long_file}")), b"changed through b").expect("write");
    assert_eq!(
        fs::read(m.path("a/orig")).expect("read"),
        b"changed through b"
    );
    assert_eq!(long_pairs(&m.backing_path("b")), 1);
    fs::remove_file(m.path("a/orig")).expect("unlink one");
    let left = fs::metadata(m.path(&format!("b/{long_file}"))).expect("stat the other");
    assert_eq!(left.nlink(), 1);
    assert_eq!(
        fs::read(m.path(&format!("b/{long_file}"))).expect("read"),
        b"changed through b"
    );

    // Exchange a short-named file and a long-named directory across
    // directories.
    fs::write(m.path("x/short"), b"i am a file").expect("write");
    fs::create_dir(m.path(&format!("y/{long_dir}"))).expect("mkdir long");
    fs::write(m.path(&format!("y/{long_dir}/child")), b"i am a child").expect("write");
    renameat2(
        AT_FDCWD,
        &m.path("x/short"),
        AT_FDCWD,
        &m.path(&format!("y/{long_dir}")),
        RenameFlags::RENAME_EXCHANGE,
    )
    .expect("RENAME_EXCHANGE");
    // And a long-named file with a short-named directory in one directory.
    fs::write(m.path(&format!("x/{long_file}")), b"long file").expect("write");
    fs::create_dir(m.path("x/sdir")).expect("mkdir");
    fs::write(m.path("x/sdir/inner"), b"inner").expect("write");
    renameat2(
        AT_FDCWD,
        &m.path(&format!("x/{long_file}")),
        AT_FDCWD,
        &m.path("x/sdir"),
        RenameFlags::RENAME_EXCHANGE,
    )
    .expect("RENAME_EXCHANGE in one directory");
    let check = |m: &Mount| {
        assert!(fs::metadata(m.path("x/short")).expect("stat").is_dir());
        assert_eq!(
            fs::read(m.path("x/short/child")).expect("read"),
            b"i am a child"
        );
        assert_eq!(names_of(&m.path("x/short")), set(["child"]));
        let y = m.path(&format!("y/{long_dir}"));
        assert!(fs::metadata(&y).expect("stat").is_file());
        assert_eq!(fs::read(&y).expect("read"), b"i am a file");
        assert_eq!(names_of(&m.path("y")), set([long_dir.as_str()]));
        assert!(
            fs::metadata(m.path(&format!("x/{long_file}")))
                .expect("stat")
                .is_dir()
        );
        assert_eq!(
            fs::read(m.path(&format!("x/{long_file}/inner"))).expect("read"),
            b"inner"
        );
        assert_eq!(fs::read(m.path("x/sdir")).expect("read"), b"long file");
        assert_eq!(
            names_of(&m.path("x")),
            set(["short", "sdir", long_file.as_str()])
        );
        assert_eq!(long_pairs(&m.backing_path("x")), 1);
        assert_eq!(long_pairs(&m.backing_path("y")), 1);
    };
    check(&m);
    m.remount();
    check(&m);

    // RENAME_NOREPLACE onto an existing entry: EEXIST, nothing moves.
    let r = renameat2(
        AT_FDCWD,
        &m.path("x/sdir"),
        AT_FDCWD,
        &m.path(&format!("y/{long_dir}")),
        RenameFlags::RENAME_NOREPLACE,
    );
    assert_eq!(r, Err(nix::errno::Errno::EEXIST));
    let r = renameat2(
        AT_FDCWD,
        &m.path(&format!("b/{long_file}")),
        AT_FDCWD,
        &m.path("x/sdir"),
        RenameFlags::RENAME_NOREPLACE,
    );
    assert_eq!(r, Err(nix::errno::Errno::EEXIST));
    check(&m);
    assert_eq!(long_pairs(&m.backing_path("b")), 1);
    // RENAME_NOREPLACE onto a free long name works.
    let free = "N".repeat(250);
    renameat2(
        AT_FDCWD,
        &m.path("x/sdir"),
        AT_FDCWD,
        &m.path(&format!("a/{free}")),
        RenameFlags::RENAME_NOREPLACE,
    )
    .expect("RENAME_NOREPLACE to a free name");
    assert_eq!(
        fs::read(m.path(&format!("a/{free}"))).expect("read"),
        b"long file"
    );
    assert_eq!(long_pairs(&m.backing_path("a")), 1);
    m.umount();
    assert_fsck_clean(&m);
}

// 7. rmdir and the directory id.
#[test]
fn rmdir_keeps_a_non_empty_directory_whole_and_removes_an_empty_one() {
    let mut m = Mount::new();
    let long = "R".repeat(200);
    fs::create_dir(m.path("parent")).expect("mkdir");
    fs::create_dir(m.path("parent/full")).expect("mkdir");
    fs::write(m.path("parent/full/child"), b"still here").expect("write");
    fs::create_dir(m.path("parent/full/subdir")).expect("mkdir");
    assert_eq!(
        errno_at("rmdir non-empty", fs::remove_dir(m.path("parent/full"))),
        libc::ENOTEMPTY
    );
    let full = m.backing_path("parent/full");
    assert!(
        full.join(DIR_ID_FILE).is_file(),
        "the dir id is still there"
    );
    assert_eq!(
        fs::read(m.path("parent/full/child")).expect("read"),
        b"still here"
    );
    fs::write(m.path("parent/full/new"), b"new").expect("create after ENOTEMPTY");
    m.remount();
    assert_eq!(
        names_of(&m.path("parent/full")),
        set(["child", "subdir", "new"])
    );
    assert_eq!(
        fs::read(m.path("parent/full/child")).expect("read"),
        b"still here"
    );
    // A directory holding only an empty subdirectory is not empty either.
    fs::remove_file(m.path("parent/full/child")).expect("unlink");
    fs::remove_file(m.path("parent/full/new")).expect("unlink");
    assert_eq!(
        errno_at("rmdir non-empty", fs::remove_dir(m.path("parent/full"))),
        libc::ENOTEMPTY
    );
    assert_eq!(names_of(&m.path("parent/full")), set(["subdir"]));
    fs::write(m.path("parent/full/subdir/f"), b"f").expect("create below");

    // Empty directories (short and long names) vanish from the backing tree.
    fs::create_dir(m.path("parent/empty")).expect("mkdir");
    fs::create_dir(m.path(&format!("parent/{long}"))).expect("mkdir long");
    let bparent = m.backing_path("parent");
    let bempty = m.backing_path("parent/empty");
    let blong = m.backing_path(&format!("parent/{long}"));
    let before = names_of(&bparent);
    assert_eq!(before.len(), 1 + 3 + 1, "dir id, 3 entries, 1 side file");
    fs::remove_dir(m.path("parent/empty")).expect("rmdir empty");
    fs::remove_dir(m.path(&format!("parent/{long}"))).expect("rmdir long");
    assert!(
        fs::symlink_metadata(&bempty).is_err(),
        "{}",
        bempty.display()
    );
    assert!(fs::symlink_metadata(&blong).is_err(), "{}", blong.display());
    let after = names_of(&bparent);
    assert_eq!(after.len(), 2, "dir id and full/: {after:?}");
    assert_eq!(long_pairs(&bparent), 0);
    assert_eq!(names_of(&m.path("parent")), set(["full"]));
    // A new directory of the same name starts empty.
    fs::create_dir(m.path("parent/empty")).expect("mkdir again");
    assert!(names_of(&m.path("parent/empty")).is_empty());

    // An rmdir that fails after the dir id went (the backing directory is
    // a mount point: EBUSY) puts the same id back.
    fs::create_dir(m.path("parent/busy")).expect("mkdir");
    let bbusy = m.backing_path("parent/busy");
    let id = fs::read(bbusy.join(DIR_ID_FILE)).expect("read the dir id");
    assert_eq!(id.len(), 16);
    {
        let _bind = BindMount::new(&bbusy);
        assert_eq!(
            errno_at(
                "rmdir of a mount point",
                fs::remove_dir(m.path("parent/busy"))
            ),
            libc::EBUSY
        );
    }
    assert_eq!(
        fs::read(bbusy.join(DIR_ID_FILE)).expect("the dir id is back"),
        id
    );
    fs::write(m.path("parent/busy/inside"), b"inside").expect("create after EBUSY");
    m.remount();
    assert_eq!(names_of(&m.path("parent/busy")), set(["inside"]));
    assert_eq!(
        fs::read(m.path("parent/busy/inside")).expect("read after remount"),
        b"inside"
    );
    m.umount();
    assert_fsck_clean(&m);
}

/// `dir` bind-mounted onto itself (so that rmdir of it fails with EBUSY)
/// until dropped.
struct BindMount(PathBuf);

impl BindMount {
    fn new(dir: &Path) -> BindMount {
        nix::mount::mount(
            Some(dir),
            dir,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap_or_else(|e| panic!("bind mount {}: {e}", dir.display()));
        BindMount(dir.to_path_buf())
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        if let Err(e) = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH) {
            eprintln!("warning: umount {}: {e}", self.0.display());
        }
    }
}

// 8. A version 1 volume keeps plaintext names.
#[test]
fn a_plaintext_names_volume_keeps_the_old_layout() {
    let mut m = Mount::with(Spec::default().plaintext_names());
    assert_eq!(m.config()["format_version"], 1);
    assert!(!m.encrypted_names());
    fs::create_dir_all(m.path("plain-dir/sub")).expect("mkdir");
    fs::write(m.path("plain-dir/sub/plain-file"), b"content").expect("write");
    std::os::unix::fs::symlink("plain-target", m.path("plain-link")).expect("symlink");
    setxattr(&m.path("plain-dir/sub/plain-file"), "user.plain", b"value");
    m.umount();
    assert_eq!(m.backing_tree(), m.backing);
    assert!(m.backing.join("plain-dir/sub/plain-file").is_file());
    assert!(!m.backing.join("tree").exists());
    assert!(!m.backing.join("plain-dir").join(DIR_ID_FILE).exists());
    assert_eq!(
        fs::read_link(m.backing.join("plain-link")).expect("readlink"),
        Path::new("plain-target")
    );
    assert_eq!(
        getxattr(&m.backing.join("plain-dir/sub/plain-file"), "user.plain").expect("xattr"),
        b"value"
    );
    m.mount();
    assert_eq!(
        fs::read(m.path("plain-dir/sub/plain-file")).expect("read"),
        b"content"
    );
    assert_eq!(
        names_of(&m.path("")),
        set(["plain-dir", "plain-link"]),
        "the config is not shown at the mount"
    );
}

/// A different valid-looking short entry name: one character in the middle
/// changed (the encoding stays canonical; only the last character carries
/// unused bits).
fn tampered_name(name: &OsStr) -> OsString {
    let mut b = name.as_bytes().to_vec();
    let i = b.len() / 2;
    b[i] = if b[i] == b'A' { b'B' } else { b'A' };
    OsString::from_vec(b)
}

// 9. A tampered backing tree: entries hidden, EIO, no crash.
#[test]
fn a_tampered_backing_tree_hides_entries_and_gives_eio() {
    let mut m = Mount::new();
    fs::create_dir(m.path("t")).expect("mkdir");
    for n in ["a", "b", "c"] {
        fs::write(m.path(&format!("t/{n}")), n).expect("write");
    }
    std::os::unix::fs::symlink("some/target", m.path("t/ln")).expect("symlink");
    std::os::unix::fs::symlink("other/target", m.path("t/ln2")).expect("symlink");
    for d in ["p", "q"] {
        fs::create_dir(m.path(d)).expect("mkdir");
        fs::write(m.path(&format!("{d}/child-of-{d}")), d).expect("write");
    }
    let ba = m.backing_path("t/a");
    let bln = m.backing_path("t/ln");
    let (bp, bq) = (m.backing_path("p"), m.backing_path("q"));
    m.umount();

    // a: renamed to another valid-looking name.
    let renamed = ba.with_file_name(tampered_name(ba.file_name().expect("name")));
    assert!(!renamed.exists());
    fs::rename(&ba, &renamed).expect("rename the backing entry");
    // ln: its stored target damaged (one character flipped, still `~…`).
    let mut stored = fs::read_link(&bln)
        .expect("readlink")
        .into_os_string()
        .into_vec();
    assert_eq!(stored[0], b'~');
    let i = stored.len() / 2;
    stored[i] = if stored[i] == b'a' { b'b' } else { b'a' };
    fs::remove_file(&bln).expect("remove link");
    std::os::unix::fs::symlink(OsStr::from_bytes(&stored), &bln).expect("plant damaged link");
    // p and q: their dir ids swapped.
    let tmp = bp.join("swap");
    fs::rename(bp.join(DIR_ID_FILE), &tmp).expect("swap");
    fs::rename(bq.join(DIR_ID_FILE), bp.join(DIR_ID_FILE)).expect("swap");
    fs::rename(&tmp, bq.join(DIR_ID_FILE)).expect("swap");

    m.mount();
    assert_eq!(names_of(&m.path("t")), set(["b", "c", "ln", "ln2"]));
    assert_eq!(
        errno_at("lookup of the renamed entry", fs::metadata(m.path("t/a"))),
        libc::ENOENT
    );
    assert_eq!(fs::read(m.path("t/b")).expect("read b"), b"b");
    assert_eq!(
        errno_at("readlink damaged", fs::read_link(m.path("t/ln"))),
        libc::EIO
    );
    assert_eq!(
        fs::read_link(m.path("t/ln2")).expect("readlink intact"),
        Path::new("other/target")
    );
    for (d, other) in [("p", "q"), ("q", "p")] {
        assert!(
            names_of(&m.path(d)).is_empty(),
            "{d}: children named under another dir id must be hidden"
        );
        assert_eq!(
            errno_at(
                "lookup under a swapped dir id",
                fs::metadata(m.path(&format!("{d}/child-of-{d}")))
            ),
            libc::ENOENT
        );
        assert_eq!(
            errno_at(
                "lookup under a swapped dir id",
                fs::metadata(m.path(&format!("{d}/child-of-{other}")))
            ),
            libc::ENOENT
        );
    }
    // The daemon still serves.
    fs::write(m.path("t/new"), b"new").expect("write after tampering");
    assert_eq!(fs::read(m.path("t/new")).expect("read"), b"new");
    assert_eq!(names_of(&m.path("")), set(["t", "p", "q"]));
    m.umount();

    // fsck names each tampered entry (the damaged link target is not a
    // name: readlink reports it), and nothing else.
    let (ok, report) = m.fsck();
    assert!(!ok, "fsck must fail on a tampered tree:\n{report}");
    let bad: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("BAD NAME "))
        .collect();
    let renamed = renamed.display().to_string();
    assert!(
        bad.iter().any(|l| l.contains(&format!("{renamed}:"))),
        "fsck does not report the renamed entry:\n{report}"
    );
    for d in [&bp, &bq] {
        let d = d.display().to_string();
        assert!(
            bad.iter().any(|l| l.contains(&format!("{d}/"))),
            "fsck does not report the children of {d}:\n{report}"
        );
    }
    assert_eq!(bad.len(), 3, "{report}");
}

// 10. fsck after a bit of everything, on one volume.
#[test]
fn fsck_reports_a_busy_version_2_volume_clean() {
    let mut m = Mount::new();
    let long = "é".repeat(120);
    fs::create_dir_all(m.path(&format!("{long}/d/{long}"))).expect("mkdir");
    fs::write(m.path(&format!("{long}/d/{long}/f")), b"x".repeat(10_000)).expect("write");
    fs::write(m.path(&format!("{long}/{long}")), b"y").expect("write");
    fs::hard_link(
        m.path(&format!("{long}/{long}")),
        m.path(&format!("{long}/d/hard")),
    )
    .expect("link");
    std::os::unix::fs::symlink("x".repeat(3000), m.path("link")).expect("symlink");
    nix::unistd::mkfifo(&m.path("fifo"), Mode::from_bits_truncate(0o600)).expect("mkfifo");
    setxattr(&m.path(&format!("{long}/{long}")), "user.k", b"v");
    fs::rename(m.path(&format!("{long}/d")), m.path("moved")).expect("rename");
    fs::create_dir(m.path("gone")).expect("mkdir");
    fs::remove_dir(m.path("gone")).expect("rmdir");
    fs::set_permissions(m.path("moved"), fs::Permissions::from_mode(0o750)).expect("chmod");
    m.umount();
    let (ok, report) = m.fsck();
    assert!(ok, "fsck: {report}");
    // Three paths to regular files (two of them one inode, hard-linked);
    // the dir ids and side files are not files of the volume.
    assert!(report.contains("checked 3 files: 0 damaged"), "{report}");
}

// 10b. fsck on a damaged version 2 volume names the damaged backing file.
#[test]
fn fsck_names_the_damaged_backing_file_of_a_version_2_volume() {
    let mut m = Mount::new();
    fs::create_dir(m.path("dir")).expect("mkdir");
    fs::write(m.path("dir/victim"), b"v".repeat(10_000)).expect("write");
    fs::write(m.path("dir/fine"), b"fine").expect("write");
    let victim = m.backing_path("dir/victim");
    m.umount();
    // One ciphertext byte of the first block flipped.
    let mut bytes = fs::read(&victim).expect("read backing");
    let at = HEADER_LEN as usize + 100;
    bytes[at] ^= 0x01;
    fs::write(&victim, &bytes).expect("write backing");
    let (ok, report) = m.fsck();
    assert!(!ok, "fsck must fail on a damaged volume: {report}");
    assert!(report.contains("checked 2 files: 1 damaged"), "{report}");
    let damaged: Vec<&str> = report
        .lines()
        .filter_map(|l| l.strip_prefix("DAMAGED "))
        .collect();
    assert_eq!(damaged.len(), 1, "{report}");
    let named = damaged[0]
        .split(": ")
        .next()
        .expect("a path before the reason");
    assert_eq!(
        Path::new(named),
        victim,
        "fsck names the damaged file by its backing path: {report}"
    );
}

// Names that mean something in a backing directory are ordinary names at a
// version 2 mount (their stored form is their encryption), and so are the
// kmsfs attribute names; the real header attribute stays out of sight.
#[test]
fn names_reserved_in_the_backing_tree_are_ordinary_at_the_mount() {
    let mut m = Mount::with(Spec::default().header("xattr"));
    let side_like = format!("L.{}", "A".repeat(43));
    let names = [
        DIR_ID_FILE,
        CONFIG_NAME,
        "tree",
        side_like.as_str(),
        &format!("{side_like}.name"),
        "~tilde",
    ];
    fs::create_dir(m.path("sub")).expect("mkdir");
    for dir in ["", "sub"] {
        for (i, n) in names.iter().enumerate() {
            let rel = if dir.is_empty() {
                n.to_string()
            } else {
                format!("{dir}/{n}")
            };
            fs::write(m.path(&rel), format!("{i}")).unwrap_or_else(|e| panic!("create {rel}: {e}"));
        }
    }
    std::os::unix::fs::symlink("~not-a-stored-target", m.path("sub/tl")).expect("symlink");
    let f = m.path("sub/~tilde");
    assert_eq!(
        errno_at("no user header attr", getxattr(&f, HEADER_XATTR)),
        libc::ENODATA
    );
    assert!(listxattr(&f).is_empty(), "{:?}", listxattr(&f));
    setxattr(&f, HEADER_XATTR, b"the user's own");
    setxattr(&f, "user.plain", b"p");
    let check = |m: &Mount| {
        let mut want: BTreeSet<OsString> = names.iter().map(OsString::from).collect();
        want.insert("sub".into());
        assert_eq!(names_of(&m.path("")), want);
        want.remove(OsStr::new("sub"));
        want.insert("tl".into());
        assert_eq!(names_of(&m.path("sub")), want);
        for dir in ["", "sub"] {
            for (i, n) in names.iter().enumerate() {
                let rel = if dir.is_empty() {
                    n.to_string()
                } else {
                    format!("{dir}/{n}")
                };
                assert_eq!(
                    fs::read_to_string(m.path(&rel)).unwrap_or_else(|e| panic!("{rel}: {e}")),
                    i.to_string()
                );
            }
        }
        assert_eq!(
            fs::read_link(m.path("sub/tl")).expect("readlink"),
            Path::new("~not-a-stored-target")
        );
        let f = m.path("sub/~tilde");
        assert_eq!(
            getxattr(&f, HEADER_XATTR).expect("getxattr"),
            b"the user's own"
        );
        assert_eq!(
            listxattr(&f),
            [HEADER_XATTR, "user.plain"]
                .map(String::from)
                .into_iter()
                .collect()
        );
    };
    check(&m);
    // The real header is still there, under its plaintext name, and intact.
    let backing = m.backing_path("sub/~tilde");
    let header = kmsfs_sys::lgetxattr(&backing, OsStr::new(HEADER_XATTR)).expect("header");
    assert_eq!(&header[..4], b"KMSF");
    m.remount();
    check(&m);
    m.umount();
    assert_fsck_clean(&m);
}

// A create the key service refuses leaves nothing behind, not even the
// side file of a long name.
#[test]
fn a_refused_create_of_a_long_name_leaves_no_side_file() {
    let m = Mount::new();
    fs::create_dir(m.path("d")).expect("mkdir");
    let bd = m.backing_path("d");
    let arn = m.key_arn();
    m.kmsfs_ok(&["kms", "disable-key", "--key-id", &arn]);
    let long = "k".repeat(230);
    assert_eq!(
        errno_at("create", fs::File::create(m.path(&format!("d/{long}")))),
        libc::EACCES
    );
    assert_eq!(
        errno_at("create short", fs::File::create(m.path("d/short"))),
        libc::EACCES
    );
    assert!(names_of(&m.path("d")).is_empty());
    assert_eq!(
        names_of(&bd),
        set([DIR_ID_FILE]),
        "a refused create left debris in the backing directory"
    );
}
