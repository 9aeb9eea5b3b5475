//! kmsfs end to end through a real FUSE mount: the built binary initialises
//! a volume in a temporary folder (with its own key store), mounts it, and
//! the tests use it with ordinary system calls. They check round trips in
//! every cipher and header placement (and the backing format's sizes),
//! random I/O against an in-memory model, that no plaintext reaches the
//! backing files, that every kind of tampering gives EIO (and fsck and the
//! daemon's log name the file), remounts, CMK separation, a disabled key, the
//! key policy for other users, and the POSIX basics.
//!
//! Needs root, /dev/fuse and fusermount3 (as CI has).

mod common;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Asserts two byte strings are equal without printing megabytes.
#[track_caller]
fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes, want {}; first difference at {first:?}",
            got.len(),
            want.len()
        );
    }
}

fn xor_byte(path: &Path, offset: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x5a;
    f.write_all_at(&b, offset).unwrap();
}

fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let f = fs::File::open(path).unwrap();
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset).unwrap();
    buf
}

fn write_at(path: &Path, offset: u64, data: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(data, offset).unwrap();
}

fn getxattr(path: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    kmsfs_sys::lgetxattr(path, name.as_ref())
}

fn setxattr(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    kmsfs_sys::lsetxattr(path, name.as_ref(), value, 0)
}

fn listxattr(path: &Path) -> Vec<String> {
    let list = kmsfs_sys::llistxattr(path).unwrap();
    list.split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// 1. Round trips, and the backing format's sizes.

fn round_trip(spec: Spec, cipher: &str, header: &str) {
    let seed = run_seed();
    eprintln!("round_trip seed {seed}");
    let mut m = Mount::with(spec);
    let config = m.config();
    assert_eq!(config["cipher"], cipher, "{config}");
    assert_eq!(config["header"], header, "{config}");
    let mut sizes = vec![0u64, 1, 4095, 4096, 4097, (1 << 20) + 1];
    let r = pseudo_random(seed, 24);
    for chunk in r.chunks(8) {
        sizes.push(u64::from_le_bytes(chunk.try_into().unwrap()) % 300_000);
    }
    let files: Vec<(String, Vec<u8>)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            (
                format!("f{i}-{n}"),
                pseudo_random(seed ^ i as u64, n as usize),
            )
        })
        .collect();
    for (name, data) in &files {
        fs::write(m.path(name), data).unwrap();
    }
    let check = |m: &Mount| {
        for (name, data) in &files {
            let size = data.len() as u64;
            assert_eq!(
                fs::metadata(m.path(name)).unwrap().len(),
                size,
                "{name}: stat size"
            );
            assert_eq!(
                fs::metadata(m.backing_path(name)).unwrap().len(),
                m.expected_backing_len(size),
                "{name}: backing size"
            );
            assert_same(name, &fs::read(m.path(name)).unwrap(), data);
        }
    };
    check(&m);

    // The header is where the volume says it is.
    for (name, _) in &files {
        let backing = m.backing_path(name);
        let xattr = getxattr(&backing, HEADER_XATTR);
        if header == "file" {
            assert_eq!(read_at(&backing, 0, 4), b"KMSF", "{name}");
            assert!(xattr.is_err(), "{name}: unexpected header xattr");
        } else {
            let h = xattr.unwrap_or_else(|e| panic!("{name}: no header xattr: {e}"));
            assert_eq!(h.len(), 1024, "{name}");
            assert_eq!(&h[..4], b"KMSF", "{name}");
        }
    }

    m.remount();
    check(&m);
    let (ok, report) = m.fsck();
    assert!(ok, "fsck on an undamaged volume: {report}");
    assert!(
        report.contains(&format!("checked {} files: 0 damaged", files.len())),
        "{report}"
    );
}

#[test]
fn round_trip_aes_gcm_file_header() {
    round_trip(Spec::default(), "aes-256-gcm", "file");
}

#[test]
fn round_trip_aes_gcm_xattr_header() {
    round_trip(Spec::default().header("xattr"), "aes-256-gcm", "xattr");
}

#[test]
fn round_trip_chacha_file_header() {
    round_trip(
        Spec::default().cipher("chacha20-poly1305"),
        "chacha20-poly1305",
        "file",
    );
}

#[test]
fn round_trip_chacha_xattr_header() {
    round_trip(
        Spec::default().cipher("chacha20-poly1305").header("xattr"),
        "chacha20-poly1305",
        "xattr",
    );
}

// ---------------------------------------------------------------------------
// 2. Random-offset reads, writes and truncations against a model.

#[derive(Debug, Clone)]
enum Op {
    Write { offset: u64, len: usize, seed: u64 },
    Read { offset: u64, len: usize },
    SetLen(u64),
}

fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..20_000, 1 => 0u64..300_000]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (offset(), 0usize..12_000, any::<u64>())
            .prop_map(|(offset, len, seed)| Op::Write { offset, len, seed }),
        2 => (offset(), 0usize..12_000).prop_map(|(offset, len)| Op::Read { offset, len }),
        1 => offset().prop_map(Op::SetLen),
    ]
}

fn same(what: String, got: &[u8], want: &[u8]) -> Result<(), TestCaseError> {
    if got == want {
        return Ok(());
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    Err(TestCaseError::fail(format!(
        "{what}: got {} bytes, want {}; first difference at {first:?}",
        got.len(),
        want.len()
    )))
}

#[test]
fn random_io_matches_model() {
    let mut m = Mount::new();
    let counter = AtomicUsize::new(0);
    let done: RefCell<Vec<(String, Vec<u8>)>> = RefCell::new(Vec::new());
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    });
    let outcome = runner.run(&proptest::collection::vec(op(), 1..14), |ops| {
        let name = format!("case-{}", counter.fetch_add(1, Ordering::Relaxed));
        let path = m.path(&name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| TestCaseError::fail(format!("create {name}: {e}")))?;
        let mut model: Vec<u8> = Vec::new();
        for (step, op) in ops.iter().enumerate() {
            let at = format!("{name} step {step} {op:?}");
            let io = |e: std::io::Error| TestCaseError::fail(format!("{at}: {e}"));
            match *op {
                Op::Write { offset, len, seed } => {
                    let data = pseudo_random(seed, len);
                    file.write_all_at(&data, offset).map_err(io)?;
                    if len > 0 {
                        let end = offset as usize + len;
                        if model.len() < end {
                            model.resize(end, 0);
                        }
                        model[offset as usize..end].copy_from_slice(&data);
                    }
                }
                Op::Read { offset, len } => {
                    let got = pread(&file, offset, len).map_err(io)?;
                    let start = (offset as usize).min(model.len());
                    let end = (offset as usize + len).min(model.len());
                    same(format!("{at}: pread"), &got, &model[start..end])?;
                }
                Op::SetLen(len) => {
                    file.set_len(len).map_err(io)?;
                    model.resize(len as usize, 0);
                }
            }
            let size = file.metadata().map_err(io)?.len();
            prop_assert_eq!(size, model.len() as u64, "{}: size", at);
            // A fresh open drops the kernel's page cache for the file, so
            // this read is decrypted from the backing file.
            let fresh = fs::read(&path).map_err(io)?;
            same(format!("{at}: whole file"), &fresh, &model)?;
        }
        done.borrow_mut().push((name, model));
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    m.remount();
    let done = done.into_inner();
    assert_eq!(done.len(), 24);
    for (name, model) in &done {
        assert_same(
            &format!("{name} after remount"),
            &fs::read(m.path(name)).unwrap(),
            model,
        );
    }
    let (ok, report) = m.fsck();
    assert!(ok, "{report}");
}

// ---------------------------------------------------------------------------
// 3. No plaintext in the backing files.

#[test]
fn backing_files_hold_no_plaintext() {
    const MARK: &[u8] = b"PLAINTEXT-MARKER-kmsfs-0123456789";
    for spec in [
        Spec::default(),
        Spec::default().cipher("chacha20-poly1305").header("xattr"),
    ] {
        let m = Mount::with(spec);
        let sizes = [1usize, 40, 4095, 4096, 4097, 70_000, 300_001];
        for (i, &n) in sizes.iter().enumerate() {
            let data: Vec<u8> = MARK.iter().copied().cycle().take(n).collect();
            fs::write(m.path(&format!("marked-{i}")), &data).unwrap();
        }
        // Also written piecewise at odd offsets, and in a subdirectory.
        fs::create_dir(m.path("sub")).unwrap();
        let f = fs::File::create(m.path("sub/pieces")).unwrap();
        for k in 0..40u64 {
            f.write_all_at(MARK, k * 997).unwrap();
        }
        drop(f);

        // Every 8-byte window of the repeated marker: none may appear in
        // any backing file at any byte offset.
        let windows: BTreeSet<&[u8]> = (0..MARK.len())
            .map(|i| &MARK[i..(i + 8).min(MARK.len())])
            .filter(|w| w.len() == 8)
            .collect();
        let mut scanned = 0;
        for path in regular_files(&m.backing) {
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(CONFIG_NAME))
            {
                continue;
            }
            let bytes = fs::read(&path).unwrap();
            scanned += bytes.len();
            for (off, w) in bytes.windows(8).enumerate() {
                assert!(
                    !windows.contains(w),
                    "plaintext {:?} at offset {off} of {}",
                    String::from_utf8_lossy(w),
                    path.display()
                );
            }
            if let Ok(h) = getxattr(&path, HEADER_XATTR) {
                assert!(
                    !h.windows(8).any(|w| windows.contains(w)),
                    "{}",
                    path.display()
                );
            }
        }
        assert!(scanned > 400_000, "scanned only {scanned} bytes");
        // And the files read back through the mount (so the scan looked at
        // real data, not at something empty).
        assert_eq!(&fs::read(m.path("marked-5")).unwrap()[..MARK.len()], MARK);
    }
}

// ---------------------------------------------------------------------------
// 4. Tampering: EIO at the mount, reported by fsck and logged.

const TAMPER_SIZE: usize = 3 * 4096 + 1000; // 4 blocks, the last partial

fn damage_both_slots(m: &Mount, rel: &str) {
    let path = m.backing_path(rel);
    if m.header_len() == 0 {
        let mut h = getxattr(&path, HEADER_XATTR).unwrap();
        for slot in SLOT_OFFSETS {
            h[slot as usize + 20] ^= 0x5a;
        }
        setxattr(&path, HEADER_XATTR, &h).unwrap();
    } else {
        for slot in SLOT_OFFSETS {
            xor_byte(&path, slot + 20);
        }
    }
}

fn tamper(spec: Spec) {
    let mut m = Mount::with(spec);
    let hl = m.header_len();
    let block = |n: u64| hl + n * STORED_BLOCK;
    let names = [
        "clean",
        "donor",
        "flipped",
        "swapped",
        "transplanted",
        "torn-cut",
        "stub-tail",
        "header",
        "late-flip",
    ];
    let data: Vec<Vec<u8>> = (0..names.len())
        .map(|i| pseudo_random(1000 + i as u64, TAMPER_SIZE))
        .collect();
    for (name, d) in names.iter().zip(&data) {
        fs::write(m.path(name), d).unwrap();
    }
    let (ok, report) = m.fsck();
    assert!(ok, "fsck before tampering: {report}");
    // Where each file is in the backing tree (version 2: found through
    // the mount, so asked for before unmounting).
    for name in names {
        m.backing_path(name);
    }
    m.umount();

    // A flipped byte inside block 1's ciphertext.
    xor_byte(&m.backing_path("flipped"), block(1) + 100);
    // Blocks 0 and 1 swapped.
    let p = m.backing_path("swapped");
    let b0 = read_at(&p, block(0), STORED_BLOCK as usize);
    let b1 = read_at(&p, block(1), STORED_BLOCK as usize);
    write_at(&p, block(0), &b1);
    write_at(&p, block(1), &b0);
    // Block 1 of another file, at the same position.
    let foreign = read_at(&m.backing_path("donor"), block(1), STORED_BLOCK as usize);
    write_at(&m.backing_path("transplanted"), block(1), &foreign);
    // A torn last block: 100 bytes cut off.
    let p = m.backing_path("torn-cut");
    let len = fs::metadata(&p).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    // A torn last block: only 10 bytes of it left (shorter than nonce+tag).
    let p = m.backing_path("stub-tail");
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(block(3) + 10)
        .unwrap();
    // Both header slots damaged.
    damage_both_slots(&m, "header");

    m.mount();
    // Tampered while mounted, before anything opens it.
    xor_byte(&m.backing_path("late-flip"), block(2) + 7);

    // The undamaged files read back.
    for i in [0, 1] {
        assert_same(names[i], &fs::read(m.path(names[i])).unwrap(), &data[i]);
    }
    // Reading any damaged file fails with EIO, never with wrong data.
    for (i, name) in names.iter().enumerate().skip(2) {
        let path = m.path(name);
        if *name == "header" {
            let e = errno_of("open with a damaged header", fs::File::open(&path));
            assert_eq!(e, libc::EIO, "{name}: open");
            continue;
        }
        let mut f = fs::File::open(&path).unwrap_or_else(|e| panic!("{name}: open: {e}"));
        let mut got = Vec::new();
        let r = f.read_to_end(&mut got);
        assert_eq!(
            errno_of(&format!("{name}: read"), r),
            libc::EIO,
            "{name}: read"
        );
        assert!(
            got.len() < data[i].len(),
            "{name}: read more than the undamaged prefix"
        );
        assert_same(&format!("{name}: prefix"), &got, &data[i][..got.len()]);
    }
    // Damage stays local: block 0 of "flipped" still reads, block 1 does not.
    let f = fs::File::open(m.path("flipped")).unwrap();
    assert_same(
        "flipped block 0",
        &pread(&f, 0, 4096).unwrap(),
        &data[2][..4096],
    );
    assert_eq!(errno_of("flipped block 1", pread(&f, 4096, 10)), libc::EIO);
    drop(f);

    // fsck names each damaged file, and only those.
    let (ok, report) = m.fsck();
    assert!(!ok, "fsck must fail on a damaged volume: {report}");
    for name in &names[2..] {
        let line = format!("DAMAGED {}: ", m.backing_path(name).display());
        assert!(
            report.contains(&line),
            "fsck does not report {name}:\n{report}"
        );
    }
    for name in &names[..2] {
        let p = m.backing_path(name).display().to_string();
        assert!(
            !report.contains(&format!("{p}:")),
            "fsck reports undamaged {name}:\n{report}"
        );
    }
    assert!(
        report.contains(&format!(
            "checked {} files: {} damaged",
            names.len(),
            names.len() - 2
        )),
        "{report}"
    );
    // The daemon's log names every damaged file.
    let log = m.log_text();
    for name in &names[2..] {
        let p = m.backing_path(name).display().to_string();
        assert!(
            log.lines()
                .any(|l| l.contains(&p) && l.to_lowercase().contains("damaged")),
            "log does not name {name}:\n{log}"
        );
    }
}

#[test]
fn tamper_gives_eio_file_header() {
    tamper(Spec::default());
}

#[test]
fn tamper_gives_eio_xattr_header() {
    tamper(Spec::default().cipher("chacha20-poly1305").header("xattr"));
}

// ---------------------------------------------------------------------------
// 5. A remount reads everything back.

#[test]
fn remount_reads_everything_back() {
    let mut m = Mount::new();
    fs::create_dir_all(m.path("a/b/c")).unwrap();
    let files = [
        ("top", 10_000usize),
        ("a/one", 1),
        ("a/b/two", 8192),
        ("a/b/c/three", 123_457),
        ("empty", 0),
    ];
    for (i, (name, n)) in files.iter().enumerate() {
        fs::write(m.path(name), pseudo_random(77 + i as u64, *n)).unwrap();
    }
    // Partially overwritten and extended in place.
    let f = OpenOptions::new().write(true).open(m.path("top")).unwrap();
    f.write_all_at(b"patched", 4090).unwrap();
    f.write_all_at(b"tail", 20_000).unwrap();
    drop(f);
    let mut top = pseudo_random(77, 10_000);
    top[4090..4097].copy_from_slice(b"patched");
    top.resize(20_000, 0);
    top.extend_from_slice(b"tail");
    fs::hard_link(m.path("a/one"), m.path("a/one-link")).unwrap();
    std::os::unix::fs::symlink("b/two", m.path("a/two-link")).unwrap();
    setxattr(&m.path("a/b/two"), "user.note", b"kept").unwrap();
    fs::set_permissions(m.path("a/b/two"), fs::Permissions::from_mode(0o640)).unwrap();

    m.remount();

    assert_same("top", &fs::read(m.path("top")).unwrap(), &top);
    for (i, (name, n)) in files.iter().enumerate().skip(1) {
        assert_same(
            name,
            &fs::read(m.path(name)).unwrap(),
            &pseudo_random(77 + i as u64, *n),
        );
    }
    assert_eq!(fs::metadata(m.path("a/one-link")).unwrap().nlink(), 2);
    assert_same(
        "hard link",
        &fs::read(m.path("a/one-link")).unwrap(),
        &pseudo_random(78, 1),
    );
    assert_eq!(
        fs::read_link(m.path("a/two-link")).unwrap(),
        Path::new("b/two")
    );
    assert_same(
        "via symlink",
        &fs::read(m.path("a/two-link")).unwrap(),
        &pseudo_random(79, 8192),
    );
    assert_eq!(getxattr(&m.path("a/b/two"), "user.note").unwrap(), b"kept");
    assert_eq!(
        fs::metadata(m.path("a/b/two")).unwrap().mode() & 0o7777,
        0o640
    );
    let (ok, report) = m.fsck();
    assert!(ok, "{report}");
}

// ---------------------------------------------------------------------------
// 6. One CMK cannot read a volume under another.

#[test]
fn other_cmk_cannot_read() {
    let mut a = Mount::new();
    let secret = pseudo_random(6, 9000);
    fs::write(a.path("secret"), &secret).unwrap();
    a.backing_path("secret");
    a.umount();

    let out = a.kmsfs_ok(&["kms", "create-key", "--description", "second CMK"]);
    let meta: serde_json::Value = serde_json::from_str(&out).unwrap();
    let second = meta["KeyMetadata"]["Arn"].as_str().unwrap().to_string();
    assert_ne!(second, a.key_arn());
    let mut b = a.sibling("other", Spec::default().key_id(&second));
    assert_eq!(b.key_arn(), second);
    assert_ne!(b.config()["volume_id"], a.config()["volume_id"]);
    fs::write(b.path("own"), b"volume B's own file").unwrap();
    // B's "secret" is a file of its own that the copy replaces (with
    // encrypted names, where B stores "secret" is known only through B).
    fs::write(b.path("secret"), b"to be replaced").unwrap();
    b.backing_path("secret");
    b.umount();

    fs::copy(a.backing_path("secret"), b.backing_path("secret")).unwrap();
    b.mount();
    assert_eq!(fs::read(b.path("own")).unwrap(), b"volume B's own file");
    match fs::read(b.path("secret")) {
        Ok(got) => panic!(
            "read a file of another volume ({} bytes; plaintext: {})",
            got.len(),
            got == secret
        ),
        Err(e) => {
            let code = e.raw_os_error();
            assert!(code == Some(libc::EIO) || code == Some(libc::EACCES), "{e}");
        }
    }
    let (ok, report) = b.fsck();
    assert!(!ok, "{report}");
    assert!(
        report.contains(&format!("DAMAGED {}: ", b.backing_path("secret").display())),
        "{report}"
    );
    assert!(
        !report.contains(&format!("{}:", b.backing_path("own").display())),
        "{report}"
    );

    // Volume A, under its own CMK, still reads it.
    a.mount();
    assert_same("secret in A", &fs::read(a.path("secret")).unwrap(), &secret);
}

// ---------------------------------------------------------------------------
// 7. A disabled CMK: EACCES on open and create; nothing written.

#[test]
fn disabled_key_gives_eacces() {
    let m = Mount::new();
    let arn = m.key_arn();
    fs::write(m.path("file"), b"before").unwrap();
    let backing_file = m.backing_path("file");
    let listing = || -> BTreeSet<std::ffi::OsString> {
        fs::read_dir(m.backing_tree())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    };
    let before = listing();
    m.kmsfs_ok(&["kms", "disable-key", "--key-id", &arn]);

    assert_eq!(
        errno_of("open", fs::File::open(m.path("file"))),
        libc::EACCES
    );
    assert_eq!(
        errno_of(
            "open for writing",
            OpenOptions::new().write(true).open(m.path("file"))
        ),
        libc::EACCES
    );
    assert_eq!(
        errno_of("create", fs::File::create(m.path("new"))),
        libc::EACCES
    );
    assert!(
        fs::symlink_metadata(m.path("new")).is_err(),
        "create left a file at the mount"
    );
    assert_eq!(listing(), before, "create left a backing file");
    // Nor may it be emptied: not by O_TRUNC, not by truncate(2).
    let r = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.path("file"));
    assert_eq!(errno_of("O_TRUNC", r), libc::EACCES);
    let r = nix::unistd::truncate(&m.path("file"), 0);
    assert_eq!(r, Err(nix::errno::Errno::EACCES), "truncate(2)");
    // The refusals did not touch the existing file.
    let backing_len = fs::metadata(&backing_file).unwrap().len();
    assert_eq!(backing_len, m.expected_backing_len(6));
    let log = m.log_text();
    let file = backing_file.display().to_string();
    assert!(
        log.lines()
            .any(|l| l.contains(&file) && l.contains("denied")),
        "no log line for file:\n{log}"
    );
    // The refused create names the backing entry it would have made (an
    // encrypted name in the tree, with version 2).
    let tree = m.backing_tree().display().to_string();
    assert!(
        log.lines()
            .any(|l| l.contains("create") && l.contains(&tree) && l.contains("denied")),
        "no log line for new:\n{log}"
    );

    m.kmsfs_ok(&["kms", "enable-key", "--key-id", &arn]);
    assert_eq!(fs::read(m.path("file")).unwrap(), b"before");
    fs::write(m.path("new"), b"after").unwrap();
    assert_eq!(fs::read(m.path("new")).unwrap(), b"after");
}

// ---------------------------------------------------------------------------
// 8. The key policy holds at the mount for other users.

const NOBODY: &str = "65534";

fn cat_as_nobody(path: &Path) -> std::process::Output {
    common::as_nobody("cat", &[path.to_str().expect("utf-8 path")])
}

fn put_policy(m: &Mount, nobody_actions: &[&str]) {
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "root", "Effect": "Allow", "Principal": {"User": ["0"]},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "nobody", "Effect": "Allow", "Principal": {"User": [NOBODY]},
             "Action": nobody_actions, "Resource": "*"}
        ]
    });
    let file = m.root().join("policy.json");
    fs::write(&file, policy.to_string()).unwrap();
    let arn = m.key_arn();
    m.kmsfs_ok(&[
        "kms",
        "put-key-policy",
        "--key-id",
        &arn,
        "--policy",
        &format!("file://{}", file.display()),
    ]);
}

#[test]
fn non_key_user_gets_eacces() {
    let m = Mount::with(Spec::default().option("allow_other"));
    m.open_to_others();
    let path = m.path("shared");
    fs::write(&path, b"for key users only\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    // Root (the key's creator) reads it.
    assert_eq!(fs::read(&path).unwrap(), b"for key users only\n");

    // The mode bits allow it, the key policy does not.
    let out = cat_as_nobody(&path);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        describe(&out)
    );
    assert!(out.stdout.is_empty());

    // A key user may.
    put_policy(
        &m,
        &[
            "kms:Decrypt",
            "kms:GenerateDataKey*",
            "kms:Encrypt",
            "kms:DescribeKey",
            "kms:ReEncrypt*",
        ],
    );
    let out = cat_as_nobody(&path);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(out.stdout, b"for key users only\n");

    // A key administrator without usage rights may not.
    put_policy(&m, kmsfs_kms::policy::ADMIN_ACTIONS);
    let out = cat_as_nobody(&path);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        describe(&out)
    );
    assert!(out.stdout.is_empty());
}

// ---------------------------------------------------------------------------
// 9. POSIX basics.

#[test]
fn rename_over_existing_file() {
    let m = Mount::new();
    let a = pseudo_random(9, 5000);
    fs::write(m.path("a"), &a).unwrap();
    fs::write(m.path("b"), b"bbb").unwrap();
    let backing_a = m.backing_path("a");
    fs::rename(m.path("a"), m.path("b")).unwrap();
    assert_same("b", &fs::read(m.path("b")).unwrap(), &a);
    assert_eq!(
        errno_of("old name", fs::metadata(m.path("a"))),
        libc::ENOENT
    );
    assert!(!backing_a.exists());

    // RENAME_NOREPLACE refuses, RENAME_EXCHANGE swaps.
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    fs::write(m.path("c"), b"ccc").unwrap();
    let r = renameat2(
        AT_FDCWD,
        &m.path("c"),
        AT_FDCWD,
        &m.path("b"),
        RenameFlags::RENAME_NOREPLACE,
    );
    assert_eq!(r, Err(nix::errno::Errno::EEXIST));
    renameat2(
        AT_FDCWD,
        &m.path("c"),
        AT_FDCWD,
        &m.path("b"),
        RenameFlags::RENAME_EXCHANGE,
    )
    .unwrap();
    assert_eq!(fs::read(m.path("b")).unwrap(), b"ccc");
    assert_same("c", &fs::read(m.path("c")).unwrap(), &a);
}

#[test]
fn hard_link_shares_content() {
    let mut m = Mount::new();
    fs::write(m.path("one"), b"first version").unwrap();
    fs::hard_link(m.path("one"), m.path("two")).unwrap();
    assert_eq!(fs::metadata(m.path("two")).unwrap().nlink(), 2);
    assert_eq!(
        fs::metadata(m.path("one")).unwrap().ino(),
        fs::metadata(m.path("two")).unwrap().ino()
    );
    // Written via one name, read via the other.
    let f = OpenOptions::new().write(true).open(m.path("one")).unwrap();
    f.write_all_at(b"FIRST", 0).unwrap();
    f.write_all_at(b" and more", 13).unwrap();
    drop(f);
    assert_eq!(fs::read(m.path("two")).unwrap(), b"FIRST version and more");
    m.remount();
    assert_eq!(fs::read(m.path("two")).unwrap(), b"FIRST version and more");
    fs::remove_file(m.path("one")).unwrap();
    assert_eq!(fs::metadata(m.path("two")).unwrap().nlink(), 1);
    assert_eq!(fs::read(m.path("two")).unwrap(), b"FIRST version and more");
}

#[test]
fn symlinks() {
    let m = Mount::new();
    fs::create_dir(m.path("dir")).unwrap();
    fs::write(m.path("dir/target"), b"through a link").unwrap();
    std::os::unix::fs::symlink("dir/target", m.path("link")).unwrap();
    std::os::unix::fs::symlink("nowhere", m.path("dangling")).unwrap();
    assert!(
        fs::symlink_metadata(m.path("link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::read_link(m.path("link")).unwrap(),
        Path::new("dir/target")
    );
    assert_eq!(fs::read(m.path("link")).unwrap(), b"through a link");
    assert_eq!(
        errno_of("dangling", fs::read(m.path("dangling"))),
        libc::ENOENT
    );
    fs::remove_file(m.path("link")).unwrap();
    assert!(fs::symlink_metadata(m.path("link")).is_err());
    assert_eq!(fs::read(m.path("dir/target")).unwrap(), b"through a link");
}

#[test]
fn mkdir_and_rmdir() {
    let m = Mount::new();
    fs::create_dir(m.path("d")).unwrap();
    fs::create_dir_all(m.path("d/e/f")).unwrap();
    assert!(fs::metadata(m.path("d/e/f")).unwrap().is_dir());
    assert_eq!(
        errno_of("mkdir existing", fs::create_dir(m.path("d"))),
        libc::EEXIST
    );
    fs::write(m.path("d/e/file"), b"x").unwrap();
    assert_eq!(
        errno_of("rmdir non-empty", fs::remove_dir(m.path("d/e"))),
        libc::ENOTEMPTY
    );
    fs::remove_file(m.path("d/e/file")).unwrap();
    fs::remove_dir(m.path("d/e/f")).unwrap();
    fs::remove_dir(m.path("d/e")).unwrap();
    let backing_d = m.backing_path("d");
    fs::remove_dir(m.path("d")).unwrap();
    assert_eq!(
        errno_of("removed dir", fs::metadata(m.path("d"))),
        libc::ENOENT
    );
    assert!(!backing_d.exists());
}

#[test]
fn truncate_up_and_down() {
    let mut m = Mount::new();
    let path = m.path("t");
    fs::write(&path, b"0123456789").unwrap();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();

    // Up: the new range reads as zeros.
    f.set_len(10_000).unwrap();
    let mut want = b"0123456789".to_vec();
    want.resize(10_000, 0);
    assert_eq!(f.metadata().unwrap().len(), 10_000);
    assert_same("after truncate up", &fs::read(&path).unwrap(), &want);
    assert_eq!(
        fs::metadata(m.backing_path("t")).unwrap().len(),
        m.expected_backing_len(10_000)
    );
    // A far hole, then data after it.
    f.write_all_at(b"end", 1 << 20).unwrap();
    want.resize(1 << 20, 0);
    want.extend_from_slice(b"end");
    assert_same("hole", &fs::read(&path).unwrap(), &want);

    // Down, into the middle of a block, then to a few bytes.
    f.set_len(5000).unwrap();
    want.truncate(5000);
    assert_same("after truncate to 5000", &fs::read(&path).unwrap(), &want);
    assert_eq!(
        fs::metadata(m.backing_path("t")).unwrap().len(),
        m.expected_backing_len(5000)
    );
    f.set_len(3).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"012");
    f.set_len(0).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"");
    assert_eq!(
        fs::metadata(m.backing_path("t")).unwrap().len(),
        m.expected_backing_len(0)
    );
    f.write_all_at(b"again", 2).unwrap();
    drop(f);
    assert_eq!(fs::read(&path).unwrap(), b"\0\0again");

    // O_TRUNC.
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    fs::write(&path, b"x").unwrap();
    m.remount();
    assert_eq!(fs::read(m.path("t")).unwrap(), b"x");
}

#[test]
fn append_appends() {
    let m = Mount::new();
    let path = m.path("log");
    fs::write(&path, b"abc").unwrap();
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"def").unwrap();
    let big = pseudo_random(5, 6000);
    f.write_all(&big).unwrap();
    // Another writer extends the file; appends still go to the end.
    let g = OpenOptions::new().write(true).open(&path).unwrap();
    g.write_all_at(b"XY", 6006).unwrap();
    f.write_all(b"tail").unwrap();
    drop((f, g));
    let mut want = b"abcdef".to_vec();
    want.extend_from_slice(&big);
    want.extend_from_slice(b"XY");
    want.extend_from_slice(b"tail");
    assert_same("appended", &fs::read(&path).unwrap(), &want);
}

#[test]
fn o_excl_on_existing_fails() {
    let m = Mount::new();
    let path = m.path("x");
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap()
        .write_all(b"1")
        .unwrap();
    let r = OpenOptions::new().write(true).create_new(true).open(&path);
    assert_eq!(errno_of("O_EXCL", r), libc::EEXIST);
    assert_eq!(fs::read(&path).unwrap(), b"1");
}

#[test]
fn readdir_lists_ten_thousand_entries() {
    const N: usize = 10_000;
    // Files put straight into the backing tree under their own names: a
    // version 1 volume (tests/names_v2.rs lists 10,000 encrypted names).
    let mut m = Mount::with(Spec::default().plaintext_names());
    // Most entries go straight into the backing directory (as a restored
    // backup would); a few are made through the mount.
    m.umount();
    fs::create_dir(m.backing_path("big")).unwrap();
    for i in 0..N - 10 {
        fs::File::create(m.backing_path(&format!("big/entry-{i:05}"))).unwrap();
    }
    m.mount();
    for i in N - 10..N {
        fs::write(m.path(&format!("big/entry-{i:05}")), b"via the mount").unwrap();
    }
    let names: BTreeSet<String> = fs::read_dir(m.path("big"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let want: BTreeSet<String> = (0..N).map(|i| format!("entry-{i:05}")).collect();
    assert_eq!(names.len(), N);
    assert!(
        names == want,
        "listing differs: {:?}",
        names
            .symmetric_difference(&want)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert_eq!(fs::read(m.path("big/entry-00000")).unwrap(), b"");
    assert_eq!(
        fs::read(m.path(&format!("big/entry-{:05}", N - 1))).unwrap(),
        b"via the mount"
    );

    // The volume config is in the backing root but invisible at the mount.
    assert!(m.backing_path(CONFIG_NAME).exists());
    let root: Vec<String> = fs::read_dir(&m.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(root, vec!["big".to_string()]);
    assert_eq!(
        errno_of("stat config", fs::metadata(m.path(CONFIG_NAME))),
        libc::ENOENT
    );
    let config = fs::read(m.backing_path(CONFIG_NAME)).unwrap();
    assert!(
        fs::write(m.path(CONFIG_NAME), b"{}").is_err(),
        "the config can be overwritten"
    );
    assert_eq!(fs::read(m.backing_path(CONFIG_NAME)).unwrap(), config);
}

#[test]
fn user_xattrs() {
    user_xattrs_on(Spec::default().header("xattr"));
}

#[test]
fn user_xattrs_plaintext_names() {
    user_xattrs_on(Spec::default().header("xattr").plaintext_names());
}

fn user_xattrs_on(spec: Spec) {
    let m = Mount::with(spec);
    let path = m.path("f");
    fs::write(&path, b"content").unwrap();
    setxattr(&path, "user.color", b"blue").unwrap();
    setxattr(&path, "user.empty", b"").unwrap();
    assert_eq!(getxattr(&path, "user.color").unwrap(), b"blue");
    assert_eq!(getxattr(&path, "user.empty").unwrap(), b"");
    assert_eq!(
        errno_of("missing xattr", getxattr(&path, "user.missing")),
        libc::ENODATA
    );
    let list = listxattr(&path);
    assert!(list.contains(&"user.color".to_string()), "{list:?}");
    assert!(list.contains(&"user.empty".to_string()), "{list:?}");
    assert!(
        !list.iter().any(|n| n.starts_with("user.kmsfs.")),
        "{list:?}"
    );

    // kmsfs's own attributes: hidden, and never reached from the mount.
    let header = getxattr(&m.backing_path("f"), HEADER_XATTR).unwrap();
    assert_eq!(
        errno_of("get header xattr", getxattr(&path, HEADER_XATTR)),
        libc::ENODATA
    );
    if m.encrypted_names() {
        // The user's `user.kmsfs.header` is stored under an encrypted name:
        // allowed, and it is not the header.
        setxattr(&path, HEADER_XATTR, b"junk").unwrap();
        assert_eq!(getxattr(&path, HEADER_XATTR).unwrap(), b"junk");
        kmsfs_sys::lremovexattr(&path, HEADER_XATTR.as_ref()).unwrap();
    } else {
        assert!(
            setxattr(&path, HEADER_XATTR, b"junk").is_err(),
            "header xattr overwritten"
        );
        assert!(
            setxattr(&path, "user.kmsfs.other", b"x").is_err(),
            "user.kmsfs.* accepted"
        );
        assert!(
            kmsfs_sys::lremovexattr(&path, HEADER_XATTR.as_ref()).is_err(),
            "header xattr removed"
        );
    }
    assert_eq!(
        getxattr(&m.backing_path("f"), HEADER_XATTR).unwrap(),
        header
    );
    assert_eq!(fs::read(&path).unwrap(), b"content");

    kmsfs_sys::lremovexattr(&path, "user.color".as_ref()).unwrap();
    assert_eq!(
        errno_of("removed xattr", getxattr(&path, "user.color")),
        libc::ENODATA
    );
    // On a directory too.
    fs::create_dir(m.path("d")).unwrap();
    setxattr(&m.path("d"), "user.dir", b"yes").unwrap();
    assert_eq!(getxattr(&m.path("d"), "user.dir").unwrap(), b"yes");
}

#[test]
fn statfs_works() {
    let m = Mount::new();
    let at_mount = nix::sys::statvfs::statvfs(&m.mnt).unwrap();
    let backing = nix::sys::statvfs::statvfs(&m.backing).unwrap();
    assert!(at_mount.blocks() > 0);
    assert!(at_mount.block_size() > 0);
    assert!(at_mount.name_max() > 0);
    assert_eq!(at_mount.blocks(), backing.blocks());
    assert_eq!(at_mount.fragment_size(), backing.fragment_size());
    assert_eq!(at_mount.files(), backing.files());
    let sfs = nix::sys::statfs::statfs(&m.mnt).unwrap();
    assert_eq!(sfs.filesystem_type(), nix::sys::statfs::FUSE_SUPER_MAGIC);
}

#[test]
fn mknod_fifo() {
    let m = Mount::new();
    let path = m.path("pipe");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_fifo());
    assert!(
        fs::symlink_metadata(m.backing_path("pipe"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let writer_path = path.clone();
    let writer = std::thread::spawn(move || {
        let mut w = OpenOptions::new().write(true).open(&writer_path).unwrap();
        w.write_all(b"through the fifo").unwrap();
    });
    let mut got = String::new();
    fs::File::open(&path)
        .unwrap()
        .read_to_string(&mut got)
        .unwrap();
    writer.join().unwrap();
    assert_eq!(got, "through the fifo");
}

// ---------------------------------------------------------------------------
// A remount while the old daemon is still tearing down.

/// `kmsfs umount M` then `kmsfs mount B M` must leave the new mount in place
/// even when the old daemon finishes its teardown after the new mount.
/// (With fuser's own mounting, fuser 0.18 ended every session with umount(2)
/// on the mount point's *path* — its "already unmounted?" check is inverted,
/// cberner/fuser#703 — which unmounted the new mount.) Deterministic: a file
/// held open makes `kmsfs umount` detach lazily, so the old daemon tears
/// down only when that file is closed, after the remount.
#[test]
fn remount_survives_old_daemon_teardown() {
    let mut m = Mount::new();
    fs::write(m.path("f"), b"x").unwrap();
    let held = fs::File::open(m.path("f")).unwrap();
    m.umount_without_waiting_for_daemon();
    m.mount();
    assert_eq!(fs::read(m.path("f")).unwrap(), b"x");
    drop(held);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let still = is_mounted(&m.mnt);
    if !still {
        m.forget_mounted();
    }
    assert!(
        still,
        "the new mount was unmounted by the old daemon's teardown"
    );
    assert_eq!(fs::read(m.path("f")).unwrap(), b"x");
}
