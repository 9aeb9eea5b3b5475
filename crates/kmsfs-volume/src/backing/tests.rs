//! The layer never follows a symlink, whatever the operation: each test
//! plants one where a directory or file is expected, pointing at a
//! directory outside with a marker file, and checks the outside is intact.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;

struct Setup {
    _tmp: tempfile::TempDir,
    root: Dir,
    backing: std::path::PathBuf,
    outside: std::path::PathBuf,
}

/// backing/{link -> outside, d/}, outside/{marker (0644), sub/}
fn setup() -> Setup {
    let tmp = tempfile::tempdir().expect("tempdir");
    let backing = tmp.path().join("backing");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(backing.join("d")).expect("mkdir");
    fs::create_dir_all(outside.join("sub")).expect("mkdir");
    fs::write(outside.join("marker"), b"m").expect("write");
    fs::set_permissions(outside.join("marker"), fs::Permissions::from_mode(0o644)).expect("chmod");
    std::os::unix::fs::symlink(&outside, backing.join("link")).expect("symlink");
    std::os::unix::fs::symlink(outside.join("marker"), backing.join("flink")).expect("symlink");
    let root = Dir::open_root(&backing).expect("root");
    Setup {
        _tmp: tmp,
        root,
        backing,
        outside,
    }
}

fn snapshot(dir: &Path) -> Vec<(String, u32, i64)> {
    let mut all: Vec<_> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            let e = e.expect("entry");
            let m = fs::symlink_metadata(e.path()).expect("stat");
            (
                e.file_name().to_string_lossy().into_owned(),
                m.mode(),
                m.mtime(),
            )
        })
        .collect();
    all.sort();
    all
}

fn errno(r: io::Result<impl std::fmt::Debug>) -> i32 {
    r.expect_err("must fail").raw_os_error().unwrap_or(0)
}

#[test]
fn names_must_be_one_component() {
    for bad in ["", ".", "..", "a/b", "/etc", "a\0b"] {
        assert_eq!(errno(check_name(OsStr::new(bad))), libc::EINVAL, "{bad:?}");
    }
    assert!(check_name(OsStr::new("...")).is_ok());
    let s = setup();
    assert_eq!(errno(s.root.open_dir(OsStr::new("link/sub"))), libc::EINVAL);
    assert_eq!(
        errno(s.root.mkdir(OsStr::new("link/new"), 0o755)),
        libc::EINVAL
    );
}

#[test]
fn a_symlink_is_never_descended() {
    let s = setup();
    let e = errno(s.root.open_dir(OsStr::new("link")));
    assert!(e == libc::ENOTDIR || e == libc::ELOOP, "errno {e}");
    assert!(s.root.open_dir(OsStr::new("d")).is_ok());
}

#[test]
fn a_symlink_is_never_opened_as_its_target() {
    let s = setup();
    assert_eq!(
        errno(s.root.open_file(OsStr::new("flink"), true)),
        libc::EINVAL
    );
    let node = s.root.open_node(OsStr::new("flink")).expect("node");
    assert!(node.opened_metadata().file_type().is_symlink());
    assert_eq!(
        node.read_link().expect("readlink"),
        s.outside.join("marker").into_os_string()
    );
}

#[test]
fn attribute_changes_act_on_the_symlink_not_its_target() {
    let s = setup();
    let before = snapshot(&s.outside);
    let node = s.root.open_node(OsStr::new("flink")).expect("node");
    // A symlink has no mode: refused, never applied to the target.
    assert!(node.chmod(0o4755).is_err());
    node.set_times(TimeSpec::new(1, 0), TimeSpec::new(1, 0))
        .expect("times of the link");
    let me = nix::unistd::geteuid().as_raw();
    node.chown(Some(me), None).expect("chown of the link");
    let dir_node = s.root.open_node(OsStr::new("link")).expect("node");
    assert!(dir_node.chmod(0o777).is_err());
    assert_eq!(snapshot(&s.outside), before);
    assert_eq!(
        fs::symlink_metadata(s.backing.join("flink"))
            .expect("stat")
            .mtime(),
        1
    );
}

#[test]
fn entry_operations_stay_in_the_directory() {
    let s = setup();
    let before = snapshot(&s.outside);
    // Removing the symlinks removes the links, not the targets.
    s.root.unlink(OsStr::new("flink")).expect("unlink");
    assert_eq!(errno(s.root.rmdir(OsStr::new("link"))), libc::ENOTDIR);
    // Creating over a symlink fails instead of creating at its target.
    assert_eq!(
        errno(s.root.create_file(OsStr::new("link"), 0o600)),
        libc::EEXIST
    );
    assert_eq!(errno(s.root.mkdir(OsStr::new("link"), 0o700)), libc::EEXIST);
    // A hard link of a symlink is a link of the symlink.
    s.root
        .link(OsStr::new("link"), &s.root, OsStr::new("link2"))
        .expect("link");
    assert!(
        fs::symlink_metadata(s.backing.join("link2"))
            .expect("stat")
            .file_type()
            .is_symlink()
    );
    s.root
        .rename(
            OsStr::new("link2"),
            &s.root,
            OsStr::new("moved"),
            RenameFlags::RENAME_NOREPLACE,
        )
        .expect("rename");
    let names: Vec<_> = s
        .root
        .entries()
        .expect("entries")
        .into_iter()
        .map(|e| e.name.to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"moved".to_string()) && names.contains(&"link".to_string()));
    assert_eq!(snapshot(&s.outside), before);
}

#[test]
fn a_held_directory_stays_itself_when_its_name_is_swapped() {
    let s = setup();
    let d = s.root.open_dir(OsStr::new("d")).expect("d");
    let ino = d.metadata().expect("stat").ino();
    fs::rename(s.backing.join("d"), s.backing.join("d.old")).expect("rename");
    std::os::unix::fs::symlink(&s.outside, s.backing.join("d")).expect("symlink");
    let before = snapshot(&s.outside);
    d.mkdir(OsStr::new("new"), 0o755)
        .expect("mkdir in the held directory");
    d.as_node().expect("node").chmod(0o700).expect("chmod");
    assert_eq!(snapshot(&s.outside), before);
    assert!(s.backing.join("d.old/new").is_dir());
    assert_eq!(d.metadata().expect("stat").ino(), ino);
}

#[test]
fn deep_trees_need_no_long_paths() {
    let s = setup();
    let name = OsStr::new(&"n".repeat(200)).to_os_string();
    let mut dir = s.root.open_dir(OsStr::new("d")).expect("d");
    // 30 levels of 201 bytes: far beyond PATH_MAX (4096).
    for _ in 0..30 {
        dir.mkdir(&name, 0o755).expect("mkdir");
        dir = dir.open_dir(&name).expect("descend");
    }
    let f = dir.create_file(OsStr::new("f"), 0o600).expect("create");
    drop(f);
    let file = dir.open_file(OsStr::new("f"), true).expect("open");
    file.set_len(10).expect("truncate");
    assert_eq!(
        dir.open_node(OsStr::new("f"))
            .expect("node")
            .metadata()
            .expect("stat")
            .len(),
        10
    );
}

#[test]
fn xattrs_of_special_entries_do_not_follow() {
    let s = setup();
    // user.* attributes are not allowed on symlinks: the call must fail and
    // the target must not get one.
    assert!(
        s.root
            .set_xattr_of(OsStr::new("flink"), OsStr::new("user.x"), b"v", 0)
            .is_err()
    );
    assert!(kmsfs_sys::lgetxattr(&s.outside.join("marker"), OsStr::new("user.x")).is_err());
    assert!(s.root.list_xattr_of(OsStr::new("flink")).is_ok());
}

#[test]
fn walks_below_a_directory_take_plain_names_only() {
    let s = setup();
    fs::write(s.backing.join("d/f"), b"x").expect("write");
    assert!(s.root.open_file_below(Path::new("d/f"), false).is_ok());
    for bad in ["../backing/d/f", "/etc/passwd", "d/../d/f", "./d/f"] {
        let e = errno(s.root.open_file_below(Path::new(bad), false));
        assert_eq!(e, libc::EINVAL, "{bad}");
    }
    // A symlink on the way is not descended.
    let e = errno(s.root.open_file_below(Path::new("link/marker"), false));
    assert!(e == libc::ENOTDIR || e == libc::ELOOP, "errno {e}");
}
