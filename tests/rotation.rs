//! Key rotation re-wraps headers, never data: on a mounted volume while a
//! writer writes, under SIGKILL at random moments, after a re-key to a
//! second CMK, and refusing a disabled target.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{BIN, HEADER_LEN, Mount, Spec};

/// Every backing file (relative path) → its bytes after the header: the
/// ciphertext blocks, which rotation must leave byte-identical.
fn blocks_of(backing: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(backing).expect("read backing dir").flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(".kmsfs.") || !entry.file_type().unwrap().is_file() {
            continue;
        }
        let bytes = fs::read(entry.path()).expect("read backing file");
        out.insert(PathBuf::from(name), bytes[HEADER_LEN as usize..].to_vec());
    }
    out
}

fn content(i: usize) -> Vec<u8> {
    format!("file {i}: ").repeat(1 + i % 700).into_bytes()
}

#[test]
fn rotation_on_a_mounted_volume_moves_every_header_while_a_writer_writes() {
    let m = Mount::with(Spec::default().option("rotate_interval=1"));
    const N: usize = 2000;
    for i in 0..N {
        fs::write(m.path(&format!("f{i:04}")), content(i)).unwrap();
    }
    let before = blocks_of(&m.backing_tree());
    assert_eq!(before.len(), N);
    let (current, other) = m.census();
    assert_eq!((current, other), (N as u64, 0));

    // A writer keeps appending and creating while the headers move.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, mnt) = (stop.clone(), m.mnt.clone());
        std::thread::spawn(move || {
            let mut log = fs::File::create(mnt.join("writer.log")).unwrap();
            let mut lines = 0u64;
            while !stop.load(Ordering::Relaxed) {
                writeln!(log, "line {lines}").unwrap();
                if lines.is_multiple_of(50) {
                    fs::write(mnt.join(format!("new{lines}")), format!("new {lines}")).unwrap();
                }
                lines += 1;
            }
            lines
        })
    };

    let arn = m.key_arn();
    m.kmsfs_ok(&["kms", "rotate-key-on-demand", "--key-id", &arn]);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (_, other) = m.census();
        if other == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rotation did not finish: {other} files left"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::Relaxed);
    let lines = writer.join().unwrap();
    assert!(lines > 0);

    // Every file now wrapped by version 2; the blocks did not change.
    let s = m.status();
    assert_eq!(s["Target"]["version"], 2, "{s}");
    let after = blocks_of(&m.backing_tree());
    for (name, blocks) in &before {
        assert_eq!(after.get(name), Some(blocks), "blocks of {name:?} changed");
    }
    // Nothing lost: the old files, the writer's log and its new files.
    for i in 0..N {
        assert_eq!(
            fs::read(m.path(&format!("f{i:04}"))).unwrap(),
            content(i),
            "f{i:04}"
        );
    }
    let log = fs::read_to_string(m.path("writer.log")).unwrap();
    let expected: String = (0..lines).map(|i| format!("line {i}\n")).collect();
    assert!(
        log == expected,
        "the writer's file lost data during rotation"
    );
    for i in (0..lines).step_by(50) {
        assert_eq!(
            fs::read_to_string(m.path(&format!("new{i}"))).unwrap(),
            format!("new {i}")
        );
    }
    let (clean, report) = m.fsck();
    assert!(clean, "{report}");
}

#[test]
fn sigkill_at_random_moments_never_loses_a_file() {
    let mut m = Mount::new();
    const N: usize = 300;
    for i in 0..N {
        fs::write(m.path(&format!("f{i:03}")), content(i)).unwrap();
    }
    m.umount();
    let before = blocks_of(&m.backing_tree());
    let arn = m.key_arn();
    let backing = m.backing.to_str().unwrap().to_string();
    let mut killed_mid_walk = 0;
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for trial in 0..20 {
        m.kmsfs_ok(&["kms", "rotate-key-on-demand", "--key-id", &arn]);
        // 3000 files/s: a walk of 300 files takes ~100 ms; kill within 0..150 ms.
        let mut child = Command::new(BIN)
            .args(["rotate", &backing, "--rate", "3000"])
            .env("KMSFS_KEYSTORE", &m.keystore)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 150));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            killed_mid_walk += 1;
        }
        // Every file verifies after every kill.
        let (clean, report) = m.fsck();
        assert!(clean, "trial {trial}: fsck after SIGKILL:\n{report}");
    }
    assert!(
        killed_mid_walk >= 10,
        "only {killed_mid_walk} of 20 kills landed mid-walk"
    );
    // A re-run completes the rotation.
    let out = m.kmsfs_ok(&["rotate", &backing]);
    assert!(out.contains("0 could not be re-wrapped"), "{out}");
    assert_eq!(m.census(), (N as u64, 0));
    // The name key is under the newest version too (1 + 20 rotations).
    assert_eq!(m.config()["name_key"]["key_version"], 21);
    assert_eq!(
        blocks_of(&m.backing_tree()),
        before,
        "rotation changed content blocks"
    );
    m.mount();
    for i in 0..N {
        assert_eq!(fs::read(m.path(&format!("f{i:03}"))).unwrap(), content(i));
    }
}

#[test]
fn rekey_to_a_second_cmk_and_refuse_a_disabled_one() {
    let mut m = Mount::new();
    for i in 0..50 {
        fs::write(m.path(&format!("f{i}")), content(i)).unwrap();
    }
    let created = m.kmsfs_ok(&[
        "kms",
        "create-key",
        "--description",
        "second",
        "--query",
        "KeyMetadata.Arn",
        "--output",
        "text",
    ]);
    let second = created.trim().to_string();
    let backing = m.backing.to_str().unwrap().to_string();
    m.umount();
    let before = blocks_of(&m.backing_tree());

    m.kmsfs_ok(&["set-key", &backing, "--key-id", &second]);
    assert_eq!(m.config()["key_id"], second.as_str());
    let out = m.kmsfs_ok(&["rotate", &backing]);
    assert!(out.contains("re-wrapped 50 of 50"), "{out}");
    // The name key moved with the files.
    assert_eq!(m.config()["name_key"]["key_id"], second.as_str());
    let s = m.status();
    let rows = s["FilesByKeyVersion"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{s}");
    assert_eq!(rows[0]["KeyId"], second.as_str());
    assert_eq!(
        blocks_of(&m.backing_tree()),
        before,
        "re-key changed content blocks"
    );

    // New files use the second CMK; everything reads back.
    m.mount();
    fs::write(m.path("after"), b"after re-key").unwrap();
    for i in 0..50 {
        assert_eq!(fs::read(m.path(&format!("f{i}"))).unwrap(), content(i));
    }
    m.umount();
    let s = m.status();
    assert_eq!(s["FilesByKeyVersion"][0]["Files"], 51, "{s}");

    // A disabled target is refused clearly, and the volume is left alone.
    let first = {
        let out = m.kmsfs_ok(&[
            "kms",
            "list-aliases",
            "--query",
            "Aliases[0].TargetKeyId",
            "--output",
            "text",
        ]);
        out.trim().to_string()
    };
    m.kmsfs_ok(&["kms", "disable-key", "--key-id", &first]);
    for args in [
        vec!["set-key", backing.as_str(), "--key-id", first.as_str()],
        vec!["rotate", backing.as_str(), "--to-key-id", first.as_str()],
    ] {
        let out = m.kmsfs(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("DisabledException"), "{args:?}: {err}");
    }
    assert_eq!(m.config()["key_id"], second.as_str());
}

#[test]
fn a_damaged_header_is_skipped_counted_and_left_alone() {
    let mut m = Mount::new();
    for i in 0..10 {
        fs::write(m.path(&format!("f{i}")), content(i)).unwrap();
    }
    let victim = m.backing_path("f3");
    m.umount();
    // Destroy both slots of one file.
    let mut bytes = fs::read(&victim).unwrap();
    for b in &mut bytes[40..1000] {
        *b ^= 0x5a;
    }
    fs::write(&victim, &bytes).unwrap();
    let arn = m.key_arn();
    m.kmsfs_ok(&["kms", "rotate-key-on-demand", "--key-id", &arn]);
    let out = m.kmsfs(&["rotate", m.backing.to_str().unwrap()]);
    assert!(!out.status.success(), "rotate hid a damaged file");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("re-wrapped 9 of 10"), "{stdout}");
    let stored = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert!(stdout.contains(&format!("SKIPPED {stored}")), "{stdout}");
    assert_eq!(
        fs::read(&victim).unwrap(),
        bytes,
        "the damaged file was altered"
    );
    let s = m.status();
    assert_eq!(
        s["Rotation"]["failures"].as_array().unwrap().len(),
        1,
        "{s}"
    );
}

#[test]
fn reencrypt_replaces_data_keys_and_keeps_contents() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut m = Mount::new();
    fs::write(m.path("a"), content(5)).unwrap();
    fs::create_dir(m.path("d")).unwrap();
    fs::write(m.path("d/b"), content(900)).unwrap();
    let sparse = fs::File::create(m.path("sparse")).unwrap();
    sparse.set_len(3 * 4096 + 10).unwrap();
    std::os::unix::fs::FileExt::write_at(&sparse, b"tail", 3 * 4096).unwrap();
    drop(sparse);
    fs::set_permissions(m.path("a"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::write(m.path("linked"), b"two names").unwrap();
    fs::hard_link(m.path("linked"), m.path("linked2")).unwrap();
    let backing = m.backing.to_str().unwrap().to_string();

    // Refused while mounted: the daemon holds the old keys.
    let out = m.kmsfs(&["reencrypt", &backing]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mounted"));

    for p in ["a", "d/b", "sparse", "linked"] {
        m.backing_path(p);
    }
    m.umount();
    let file_id = |p: &str| fs::read(m.backing_path(p)).unwrap()[8..24].to_vec();
    let ids: Vec<Vec<u8>> = ["a", "d/b", "sparse"].iter().map(|p| file_id(p)).collect();
    let linked_before = fs::read(m.backing_path("linked")).unwrap();
    let out = m.kmsfs(&["reencrypt", &backing]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a hard-linked file must be reported: {stdout}"
    );
    assert!(stdout.contains("hard links"), "{stdout}");
    for (p, old) in ["a", "d/b", "sparse"].iter().zip(&ids) {
        assert_ne!(&file_id(p), old, "{p} kept its file id (and data key)");
    }
    assert_eq!(fs::read(m.backing_path("linked")).unwrap(), linked_before);
    let meta = fs::metadata(m.backing_path("a")).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o640);
    let (clean, report) = m.fsck();
    assert!(clean, "{report}");

    m.mount();
    assert_eq!(fs::read(m.path("a")).unwrap(), content(5));
    assert_eq!(fs::read(m.path("d/b")).unwrap(), content(900));
    let s = fs::read(m.path("sparse")).unwrap();
    assert_eq!(s.len(), 3 * 4096 + 10);
    assert!(s[..3 * 4096].iter().all(|b| *b == 0));
    assert_eq!(&s[3 * 4096..3 * 4096 + 4], b"tail");
    assert_eq!(fs::read(m.path("linked2")).unwrap(), b"two names");
}

#[test]
fn reencrypt_takes_paths_as_the_mount_shows_them() {
    let mut m = Mount::new();
    fs::create_dir(m.path("d")).unwrap();
    fs::write(m.path("d/chosen"), content(3)).unwrap();
    fs::write(m.path("other"), content(4)).unwrap();
    let (chosen, other) = (m.backing_path("d/chosen"), m.backing_path("other"));
    m.umount();
    let file_id = |p: &Path| fs::read(p).unwrap()[8..24].to_vec();
    let (chosen_id, other_id) = (file_id(&chosen), file_id(&other));
    let backing = m.backing.to_str().unwrap().to_string();
    // With encrypted names the stored path differs from "d/chosen": the
    // command translates it.
    assert!(!m.backing_tree().join("d").exists());
    let out = m.kmsfs_ok(&["reencrypt", &backing, "d/chosen"]);
    assert!(out.contains("re-encrypted 1 of 1 files"), "{out}");
    assert_ne!(file_id(&chosen), chosen_id, "d/chosen kept its data key");
    assert_eq!(
        file_id(&other),
        other_id,
        "a file not named was re-encrypted"
    );
    let out = m.kmsfs(&["reencrypt", &backing, "d/missing"]);
    assert!(!out.status.success(), "a missing path was accepted");
    m.mount();
    assert_eq!(fs::read(m.path("d/chosen")).unwrap(), content(3));
    assert_eq!(fs::read(m.path("other")).unwrap(), content(4));
}
