//! POSIX details a standard filesystem test suite (xfstests) finds: each
//! test is one behaviour kmsfs got wrong, checked at a real mount on both
//! format versions.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use common::{Mount, Spec, describe};

fn both_versions() -> [Mount; 2] {
    [Mount::new(), Mount::with(Spec::default().plaintext_names())]
}

/// (inode, name) of every entry `ls -ai` lists in `dir`, `.` and `..` among
/// them, in the order readdir gives them.
fn listing(dir: &Path) -> Vec<(u64, String)> {
    let out = Command::new("ls")
        .args(["-a", "-i", "-1", "-f"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (ino, name) = l.trim_start().split_once(' ').unwrap();
            (ino.parse().unwrap(), name.to_string())
        })
        .collect()
}

#[test]
fn dot_dot_has_the_parents_inode_number() {
    // generic/257: `..` had the root's (or the directory's own) number.
    for m in both_versions() {
        fs::create_dir_all(m.path("a/b/c")).unwrap();
        for (dir, parent) in [("a/b/c", "a/b"), ("a/b", "a"), ("a", "")] {
            let entries = listing(&m.path(dir));
            let of = |name: &str| entries.iter().find(|(_, n)| n == name).unwrap().0;
            assert_eq!(of("."), fs::metadata(m.path(dir)).unwrap().ino(), "{dir}");
            let want = fs::metadata(m.path(parent)).unwrap().ino();
            assert_eq!(of(".."), want, "{dir}/.. in {entries:?}");
        }
        // After a move the listing follows the new parent.
        fs::create_dir(m.path("z")).unwrap();
        fs::rename(m.path("a/b/c"), m.path("z/c")).unwrap();
        let entries = listing(&m.path("z/c"));
        let dotdot = entries.iter().find(|(_, n)| n == "..").unwrap().0;
        assert_eq!(dotdot, fs::metadata(m.path("z")).unwrap().ino());
    }
}

#[test]
fn rename_whiteout_leaves_a_whiteout_at_the_old_name() {
    // overlayfs's upper layer asks for this; it was EINVAL.
    for m in both_versions() {
        let long = "w".repeat(200); // a long name (v2: a side file) too
        for name in ["old", long.as_str()] {
            fs::write(m.path(name), b"moved").unwrap();
            let new = format!("{}-new", &name[..3]);
            nix::fcntl::renameat2(
                nix::fcntl::AT_FDCWD,
                &m.path(name),
                nix::fcntl::AT_FDCWD,
                &m.path(&new),
                nix::fcntl::RenameFlags::RENAME_WHITEOUT,
            )
            .unwrap_or_else(|e| panic!("renameat2(RENAME_WHITEOUT) {name}: {e}"));
            assert_eq!(fs::read(m.path(&new)).unwrap(), b"moved");
            let w = fs::symlink_metadata(m.path(name)).unwrap();
            assert!(w.file_type().is_char_device(), "{name}: {w:?}");
            assert_eq!(w.rdev(), 0);
            assert!(
                fs::read_dir(m.mnt.as_path())
                    .unwrap()
                    .any(|e| e.unwrap().file_name() == name),
                "{name} not listed"
            );
            fs::remove_file(m.path(name)).unwrap();
            assert!(fs::symlink_metadata(m.path(name)).is_err());
        }
        let (clean, report) = m.fsck();
        assert!(clean, "{report}");
    }
}

/// The options field of `mnt` in /proc/self/mounts.
fn mount_options(mnt: &Path) -> Vec<String> {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(mnt.to_str().unwrap()))
        .unwrap_or_else(|| panic!("{} is not in the mount table", mnt.display()));
    let options = line.split(' ').nth(3).unwrap();
    options.split(',').map(str::to_string).collect()
}

#[test]
fn atime_options_are_accepted_with_their_meaning() {
    // generic/003: `strictatime` was refused.
    for (option, shown, absent) in [
        ("strictatime", None, &["relatime", "noatime"][..]),
        ("noatime", Some("noatime"), &["relatime"][..]),
        ("relatime", Some("relatime"), &["noatime"][..]),
    ] {
        let m = Mount::with(Spec::default().option(option));
        let options = mount_options(&m.mnt);
        if let Some(shown) = shown {
            assert!(options.iter().any(|o| o == shown), "{option}: {options:?}");
        }
        for a in absent {
            assert!(!options.iter().any(|o| o == a), "{option}: {options:?}");
        }
        fs::write(m.path("f"), b"x").unwrap();
        assert_eq!(fs::read(m.path("f")).unwrap(), b"x");
    }
}

/// Whether uid nobody can execute `path` (a copy of `true`), from a shell
/// already running as nobody (see `common::as_nobody`).
fn nobody_can_exec(path: &Path) -> bool {
    common::as_nobody("sh", &["-c", "exec \"$0\"", path.to_str().unwrap()])
        .status
        .success()
}

#[test]
fn an_acl_change_takes_effect_on_the_mode_at_once() {
    // generic/099: after setfacl, the kernel kept the old mode for up to the
    // attribute timeout, and executions the new mode denies succeeded.
    for spec in [Spec::default(), Spec::default().plaintext_names()] {
        let m = Mount::with(spec.option("allow_other").option("attr_timeout=30"));
        m.open_to_others();
        let exe = m.path("exe");
        fs::copy("/bin/true", &exe).unwrap();
        fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let_everyone_use_the_key(&m);
        assert!(nobody_can_exec(&exe));
        for (acl, allowed) in [("o::r--", false), ("o::r-x", true), ("o::---", false)] {
            let out = Command::new("setfacl")
                .args(["-m", acl])
                .arg(&exe)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", describe(&out));
            let mode = fs::metadata(&exe).unwrap().mode() & 0o777;
            assert_eq!(mode & 0o001 != 0, allowed, "{acl}: mode {mode:o}");
            assert_eq!(nobody_can_exec(&exe), allowed, "{acl}");
        }
        // Removing the ACL entries keeps the mode the last change left.
        let out = Command::new("setfacl")
            .arg("-b")
            .arg(&exe)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        assert!(!nobody_can_exec(&exe));
    }
}

/// A key policy that lets every uid use the volume's key (the mode bits
/// alone then decide, as on a plain filesystem).
fn let_everyone_use_the_key(m: &Mount) {
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "root", "Effect": "Allow", "Principal": {"User": ["0"]},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "all", "Effect": "Allow", "Principal": {"User": ["*"]},
             "Action": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"],
             "Resource": "*"}
        ]
    });
    m.put_key_policy(&policy);
}
