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

/// (atime, mtime, ctime) of `path`, to the nanosecond, as stat(1) shows
/// them (generic/003 compares its output).
fn times(path: &Path) -> [(i64, i64); 3] {
    let out = Command::new("stat")
        .args(["-c", "%.9X %.9Y %.9Z"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let t: Vec<(i64, i64)> = text
        .split_whitespace()
        .map(|v| {
            let (s, ns) = v.split_once('.').unwrap();
            (s.parse().unwrap(), ns.parse().unwrap())
        })
        .collect();
    [t[0], t[1], t[2]]
}

/// `cat path > /dev/null`: open, read to the end, close.
fn read_through(path: &Path) {
    let out = Command::new("cat").arg(path).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
}

#[test]
fn atime_shows_up_at_once_under_relatime_and_never_under_noatime() {
    // generic/003: a read showed in atime only one access later (the
    // kernel served the read from its page cache and kept the atime it had
    // cached before the open moved it).
    for spec in [Spec::default(), Spec::default().plaintext_names()] {
        let m = Mount::with(spec.clone().option("relatime"));
        // As generic/003 does it: a new directory, a shell's write.
        fs::create_dir(m.path("dir1")).unwrap();
        let f = m.path("dir1/file1");
        let out = Command::new("sh")
            .args(["-c", "echo aaa > \"$0\""])
            .arg(&f)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        let before = times(&f);
        // Past the attribute timeout, as in generic/003: the open's lookup
        // then fetches attributes before the header read moves atime.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        read_through(&f);
        let first = times(&f);
        assert_ne!(
            first[0], before[0],
            "relatime: the first read after a write moves atime"
        );
        assert_eq!(
            first[1..],
            before[1..],
            "a read moves neither mtime nor ctime"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        read_through(&f);
        assert_eq!(times(&f), first, "relatime: a second read moves nothing");
        drop(m);

        let m = Mount::with(spec.option("noatime"));
        let f = m.path("f");
        fs::write(&f, b"ccc\n").unwrap();
        let before = times(&f);
        std::thread::sleep(std::time::Duration::from_millis(20));
        read_through(&f);
        // Past the attribute timeout, so what is stored is shown.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(times(&f), before, "noatime: a read moves nothing");
        fs::create_dir(m.path("d")).unwrap();
        fs::write(m.path("d/x"), b"x").unwrap();
        let dir_before = times(&m.path("d"));
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(fs::read_dir(m.path("d")).unwrap().count(), 1);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(
            times(&m.path("d")),
            dir_before,
            "noatime: a listing moves nothing"
        );
    }
}

#[test]
fn timestamps_survive_a_remount_with_the_writeback_cache() {
    // generic/003: with the writeback cache (the default) the kernel keeps
    // mtime itself; the data it writes back moved the stored mtime by a
    // fraction of a millisecond, and the daemon's own header reads at mount
    // start moved atime.
    for spec in [Spec::default(), Spec::default().plaintext_names()] {
        let mut m = Mount::with(spec);
        fs::write(m.path("small"), b"aaa\n").unwrap();
        fs::write(m.path("big"), common::pseudo_random(3, 300_000)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        {
            use std::io::Write;
            let mut f = fs::OpenOptions::new()
                .append(true)
                .open(m.path("small"))
                .unwrap();
            for _ in 0..3 {
                f.write_all(b"more\n").unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        let names = ["small", "big"];
        let before: Vec<_> = names.iter().map(|n| times(&m.path(n))).collect();
        m.remount();
        for (n, b) in names.iter().zip(&before) {
            let after = times(&m.path(n));
            assert_eq!(after[0], b[0], "{n}: atime across a remount");
            assert_eq!(after[1], b[1], "{n}: mtime across a remount");
            // ctime: the kernel's own while it has the inode cached, the
            // backing file's after a remount; they cannot be made equal
            // (ARCHITECTURE.md, "Timestamps"). The stored one is not older.
            assert!(after[2] >= b[2], "{n}: ctime went back across a remount");
        }
    }
}

#[test]
fn cd_dot_dot_works_from_a_directory_another_process_removed() {
    // generic/011 (dirstress): once the kernel's cached attributes of the
    // removed working directory expired, its permission check for `cd ..`
    // asked for them and got ESTALE: the directory has no name any more.
    for m in both_versions() {
        fs::create_dir_all(m.path("top/sub")).unwrap();
        let script = r#"cd "$0/top/sub" && rmdir "$0/top/sub" && sleep 1.2 &&
            stat -c %h . && cd .. && pwd"#;
        let out = Command::new("sh")
            .args(["-c", script])
            .arg(&m.mnt)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        // A removed directory has no links left.
        assert_eq!(lines.first(), Some(&"0"), "{stdout}");
        assert_eq!(
            lines.get(1),
            Some(&m.path("top").to_str().unwrap()),
            "{stdout}"
        );
        assert!(!m.path("top/sub").exists());
    }
}

#[test]
fn a_directory_replaces_an_empty_directory_by_rename() {
    // generic/023 and 078: with encrypted names an empty directory still
    // holds its id file, and rename(2) over it failed with ENOTEMPTY.
    for m in both_versions() {
        let long = "t".repeat(200); // a long name (v2: a side file) too
        for target in ["empty", long.as_str()] {
            fs::create_dir(m.path("src")).unwrap();
            fs::write(m.path("src/f"), b"kept").unwrap();
            fs::create_dir(m.path(target)).unwrap();
            fs::rename(m.path("src"), m.path(target))
                .unwrap_or_else(|e| panic!("rename onto {target}: {e}"));
            assert_eq!(fs::read(m.path(&format!("{target}/f"))).unwrap(), b"kept");
            assert!(!m.path("src").exists());
            // A non-empty target is refused and left as it was.
            fs::create_dir(m.path("src")).unwrap();
            let e = fs::rename(m.path("src"), m.path(target)).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ENOTEMPTY), "{target}: {e}");
            assert_eq!(fs::read(m.path(&format!("{target}/f"))).unwrap(), b"kept");
            fs::remove_dir(m.path("src")).unwrap();
            fs::remove_file(m.path(&format!("{target}/f"))).unwrap();
            fs::remove_dir(m.path(target)).unwrap();
        }
        let (clean, report) = m.fsck();
        assert!(clean, "{report}");
    }
}

#[test]
fn a_new_file_inherits_the_default_acl_of_its_directory() {
    // generic/099: under umask 0, the daemon "added back" the bits its own
    // umask took with a chmod, which overwrote the mode and ACL the file
    // inherited from its directory's default ACL.
    for m in both_versions() {
        let dir = m.path("acldir");
        fs::create_dir(&dir).unwrap();
        let out = Command::new("setfacl")
            .args(["-d", "-m", "u::r-x,g::r--,o::---"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        // Under a default ACL the umask does not apply (umask 722 would
        // leave ----r----- instead), elsewhere it does.
        let script = r#"umask 0 && touch "$0/file" && mkdir "$0/sub" && mkfifo "$0/fifo" &&
            umask 722 && touch "$0/file3" && mkdir "$0/sub3" && mkfifo "$0/fifo3" &&
            touch "$0/../plain""#;
        let out = Command::new("sh")
            .args(["-c", script])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        for (name, want) in [
            ("file", 0o440),
            ("sub", 0o540),
            ("fifo", 0o440),
            ("file3", 0o440),
            ("sub3", 0o540),
            ("fifo3", 0o440),
            ("../plain", 0o044),
        ] {
            let mode = fs::symlink_metadata(dir.join(name)).unwrap().mode() & 0o7777;
            assert_eq!(mode, want, "{name}: {mode:o}");
        }
    }
}

#[test]
fn a_directory_replaced_by_rename_can_still_be_fstatted() {
    // generic/035: fstat of an open directory that a rename replaced gave
    // ESTALE (the directory had no name left to be found by).
    for m in both_versions() {
        fs::create_dir(m.path("dir1")).unwrap();
        fs::create_dir(m.path("dir2")).unwrap();
        let held = fs::File::open(m.path("dir2")).unwrap();
        fs::rename(m.path("dir1"), m.path("dir2")).unwrap();
        let meta = held.metadata().expect("fstat of the replaced directory");
        assert!(meta.is_dir());
        assert_eq!(meta.nlink(), 0, "a replaced directory has no links");
        // And a replaced regular file, held open.
        fs::write(m.path("file1"), b"new").unwrap();
        fs::write(m.path("file2"), b"old").unwrap();
        let held = fs::File::open(m.path("file2")).unwrap();
        fs::rename(m.path("file1"), m.path("file2")).unwrap();
        assert_eq!(held.metadata().unwrap().nlink(), 0);
        assert_eq!(fs::read(m.path("file2")).unwrap(), b"new");
    }
}

#[test]
fn dot_dot_has_the_parents_inode_number_in_a_readdirplus_listing() {
    // generic/257: a listing read from the start comes by readdirplus,
    // whose `..` had the directory's own inode number (after a seek, a
    // plain readdir gave the right one).
    for m in both_versions() {
        let dir = m.path("ttt");
        fs::create_dir(&dir).unwrap();
        for n in 1..=168 {
            fs::write(dir.join(n.to_string()), b"").unwrap();
        }
        let want = fs::metadata(&m.mnt).unwrap().ino();
        // getdents from the start, as t_dir_offset2 reads (ls may stat
        // `..` instead of trusting the listing).
        let listed = nix::dir::Dir::open(
            &dir,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap()
        .into_iter()
        .map(|e| e.unwrap())
        .find(|e| e.file_name().to_bytes() == b"..")
        .map(|e| e.ino());
        assert_eq!(listed, Some(want), "ttt/.. in a listing from the start");
    }
}
