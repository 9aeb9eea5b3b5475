//! Helpers for tests that mount a real kmsfs filesystem: a [`Mount`] guard
//! (temporary folder with its own key store, an initialised volume, a FUSE
//! mount with a log file; unmounted on drop), the backing format's geometry
//! and small I/O utilities.
//!
//! Nothing here touches the test process's environment: the key store is
//! named on each child command only, so tests can run in parallel threads.

#![allow(dead_code)]

pub(crate) mod kms_server;
pub(crate) mod postgres;

use std::fs;
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_kmsfs");

/// The in-file header's length (with `--header file`).
pub(crate) const HEADER_LEN: u64 = 1024;
/// Plaintext bytes per block.
pub(crate) const BLOCK: u64 = 4096;
/// Stored bytes per full block: nonce (12) + ciphertext (4096) + tag (16).
pub(crate) const STORED_BLOCK: u64 = 4124;
/// Offsets of the two key slots in the header.
pub(crate) const SLOT_OFFSETS: [u64; 2] = [32, 32 + 496];
/// The extended attribute holding the header with `--header xattr`.
pub(crate) const HEADER_XATTR: &str = "user.kmsfs.header";
pub(crate) const CONFIG_NAME: &str = ".kmsfs.volume.json";

/// Backing file size of a plaintext of `size` bytes in a format version 2
/// volume: as in version 1, except that an empty file keeps a 28-byte
/// final block (nonce and tag of no bytes).
pub(crate) fn expected_backing_len_v2(header_len: u64, size: u64) -> u64 {
    if size == 0 {
        header_len + 28
    } else {
        expected_backing_len(header_len, size)
    }
}

/// Backing file size of a plaintext of `size` bytes, format version 1.
pub(crate) fn expected_backing_len(header_len: u64, size: u64) -> u64 {
    let full = size / BLOCK;
    let tail = size % BLOCK;
    header_len + full * STORED_BLOCK + if tail == 0 { 0 } else { tail + 28 }
}

/// How to create a volume.
#[derive(Debug, Clone, Default)]
pub(crate) struct Spec {
    /// `--cipher` (default: the CLI's default, aes-256-gcm).
    pub cipher: Option<&'static str>,
    /// `--header` (default: file).
    pub header: Option<&'static str>,
    /// `--key-id` (default: alias/kmsfs/default, created if absent).
    pub key_id: Option<String>,
    /// `-o` mount options.
    pub options: Vec<&'static str>,
    /// `--plaintext-names`: a format version 1 volume.
    pub plaintext_names: bool,
}

impl Spec {
    pub(crate) fn cipher(mut self, c: &'static str) -> Self {
        self.cipher = Some(c);
        self
    }
    pub(crate) fn header(mut self, h: &'static str) -> Self {
        self.header = Some(h);
        self
    }
    pub(crate) fn key_id(mut self, k: &str) -> Self {
        self.key_id = Some(k.to_string());
        self
    }
    pub(crate) fn option(mut self, o: &'static str) -> Self {
        self.options.push(o);
        self
    }
    pub(crate) fn plaintext_names(mut self) -> Self {
        self.plaintext_names = true;
        self
    }
}

/// Runs `kmsfs ARGS` against `keystore` (never a terminal on stdin, so an
/// existing store is never asked for a passphrase).
pub(crate) fn kmsfs_with(keystore: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("KMSFS_KEYSTORE", keystore)
        .env_remove("KMSFS_PASSPHRASE_FILE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run kmsfs")
}

pub(crate) fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Whether `path` is a mount point according to /proc/self/mountinfo.
pub(crate) fn is_mounted(path: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = path.as_os_str().as_encoded_bytes();
    info.lines().any(|line| {
        line.split(' ')
            .nth(4)
            .is_some_and(|mp| unescape_mountinfo(mp) == want)
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// A volume in a temporary folder with its own key store, mounted (while
/// `mounted`) at `mnt`. Drop unmounts it and waits until the kernel no
/// longer lists the mount.
pub(crate) struct Mount {
    dir: Arc<TempDir>,
    pub keystore: PathBuf,
    pub backing: PathBuf,
    pub mnt: PathBuf,
    pub log: PathBuf,
    options: Vec<&'static str>,
    mounted: bool,
    /// Backing paths of version 2 files, found while mounted (see
    /// [`Mount::backing_path`]), for use after an unmount.
    resolved: std::sync::Mutex<std::collections::HashMap<String, PathBuf>>,
}

impl Mount {
    /// A new volume with the defaults (aes-256-gcm, headers in the file),
    /// mounted.
    pub(crate) fn new() -> Mount {
        Mount::with(Spec::default())
    }

    pub(crate) fn with(spec: Spec) -> Mount {
        Mount::with_prepared_backing(spec, |_| ()).1
    }

    /// Like [`Mount::with`], but `prepare` is first given the (not yet
    /// existing) backing directory, e.g. to mount a small filesystem there;
    /// what it returns is handed back beside the mount, to be dropped after
    /// it (bind it first: `let (guard, m) = ...` drops `m` first).
    pub(crate) fn with_prepared_backing<T>(
        spec: Spec,
        prepare: impl FnOnce(&Path) -> T,
    ) -> (T, Mount) {
        let dir = tempfile::Builder::new()
            .prefix("kmsfs-mount-")
            .tempdir()
            .expect("tempdir");
        // Canonical, so the mount point matches what mountinfo shows.
        let root = dir.path().canonicalize().expect("canonical tempdir");
        let keystore = root.join("ks").join("keystore");
        let prepared = prepare(&root.join("vol.backing"));
        let m = Mount::create(Arc::new(dir), &root, "vol", keystore, spec);
        (prepared, m)
    }

    /// Another volume beside this one, in the same temporary folder and
    /// with the same key store.
    pub(crate) fn sibling(&self, name: &str, spec: Spec) -> Mount {
        let root = self.root();
        Mount::create(self.dir.clone(), &root, name, self.keystore.clone(), spec)
    }

    fn create(dir: Arc<TempDir>, root: &Path, name: &str, keystore: PathBuf, spec: Spec) -> Mount {
        let backing = root.join(format!("{name}.backing"));
        let mnt = root.join(format!("{name}.mnt"));
        let log = root.join(format!("{name}.log"));
        fs::create_dir_all(&mnt).expect("create mount point");
        let mut m = Mount {
            dir,
            keystore,
            backing,
            mnt,
            log,
            options: spec.options.clone(),
            mounted: false,
            resolved: Default::default(),
        };
        let backing = m.backing.to_str().expect("utf-8 path").to_string();
        let mut args = vec!["init", backing.as_str()];
        if let Some(c) = spec.cipher {
            args.extend(["--cipher", c]);
        }
        if let Some(h) = spec.header {
            args.extend(["--header", h]);
        }
        if let Some(k) = spec.key_id.as_deref() {
            args.extend(["--key-id", k]);
        }
        if spec.plaintext_names {
            args.push("--plaintext-names");
        }
        m.kmsfs_ok(&args);
        m.mount();
        m
    }

    /// The temporary folder everything lives in.
    pub(crate) fn root(&self) -> PathBuf {
        self.mnt
            .parent()
            .expect("mount point has a parent")
            .to_path_buf()
    }

    pub(crate) fn kmsfs(&self, args: &[&str]) -> Output {
        kmsfs_with(&self.keystore, args)
    }

    /// Runs a kmsfs command that must succeed; returns its stdout.
    pub(crate) fn kmsfs_ok(&self, args: &[&str]) -> String {
        let out = self.kmsfs(args);
        assert!(
            out.status.success(),
            "kmsfs {args:?} failed: {}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn is_mounted(&self) -> bool {
        self.mounted
    }

    pub(crate) fn mount(&mut self) {
        assert!(!self.mounted, "already mounted");
        let (backing, mnt, log) = (
            self.backing.to_str().expect("utf-8").to_string(),
            self.mnt.to_str().expect("utf-8").to_string(),
            self.log.to_str().expect("utf-8").to_string(),
        );
        let mut args = vec![
            "mount",
            backing.as_str(),
            mnt.as_str(),
            "--log-file",
            log.as_str(),
        ];
        let opts = self.options.join(",");
        if !opts.is_empty() {
            args.extend(["-o", opts.as_str()]);
        }
        self.kmsfs_ok(&args);
        assert!(
            is_mounted(&self.mnt),
            "kmsfs mount returned but {mnt} is not mounted; log:\n{}",
            self.log_text()
        );
        self.mounted = true;
    }

    pub(crate) fn umount(&mut self) {
        assert!(self.mounted, "not mounted");
        self.mounted = false;
        let mnt = self.mnt.to_str().expect("utf-8").to_string();
        let daemons = daemon_pids(&self.mnt);
        self.kmsfs_ok(&["umount", &mnt]);
        assert!(
            wait_unmounted(&self.mnt, Duration::from_secs(10)),
            "{mnt} still mounted after kmsfs umount"
        );
        assert!(
            wait_exited(&daemons, &self.mnt, Duration::from_secs(10)),
            "the mount daemon of {mnt} is still running after kmsfs umount"
        );
    }

    /// `kmsfs umount`, waiting only until the kernel has dropped the mount
    /// (not for the daemon to exit).
    pub(crate) fn umount_without_waiting_for_daemon(&mut self) {
        assert!(self.mounted, "not mounted");
        self.mounted = false;
        let mnt = self.mnt.to_str().expect("utf-8").to_string();
        self.kmsfs_ok(&["umount", &mnt]);
        assert!(
            wait_unmounted(&self.mnt, Duration::from_secs(10)),
            "{mnt} still mounted"
        );
    }

    /// Records that the mount has gone (unmounted behind our back).
    pub(crate) fn forget_mounted(&mut self) {
        self.mounted = false;
    }

    pub(crate) fn remount(&mut self) {
        self.umount();
        self.mount();
    }

    /// A path at the mount.
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Whether the volume encrypts names (format version 2).
    pub(crate) fn encrypted_names(&self) -> bool {
        self.config()["format_version"] == 2
    }

    /// The directory of the backing tree that is the mount's root: the
    /// backing root itself (version 1) or its `tree` (version 2).
    /// Backing size of a plaintext of `size` bytes in this volume.
    pub(crate) fn expected_backing_len(&self, size: u64) -> u64 {
        if self.encrypted_names() {
            expected_backing_len_v2(self.header_len(), size)
        } else {
            expected_backing_len(self.header_len(), size)
        }
    }

    pub(crate) fn backing_tree(&self) -> PathBuf {
        if self.encrypted_names() {
            self.backing.join("tree")
        } else {
            self.backing.clone()
        }
    }

    /// The backing file behind a path at the mount. With encrypted names it
    /// is found by inode number (the mount shows the backing inode numbers),
    /// so the path must exist at the mount the first time it is asked for
    /// while mounted; later (unmounted) calls reuse that answer.
    pub(crate) fn backing_path(&self, rel: &str) -> PathBuf {
        if !self.encrypted_names() {
            return self.backing.join(rel);
        }
        use std::os::unix::fs::MetadataExt;
        let mut resolved = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        if !self.mounted {
            return resolved.get(rel).cloned().unwrap_or_else(|| {
                panic!("backing_path({rel}) of a version 2 volume: ask while mounted first")
            });
        }
        let ino = fs::symlink_metadata(self.path(rel))
            .unwrap_or_else(|e| panic!("{rel} at the mount: {e}"))
            .ino();
        let path = find_by_inode(&self.backing_tree(), ino)
            .unwrap_or_else(|| panic!("no backing entry has inode {ino} ({rel})"));
        resolved.insert(rel.to_string(), path.clone());
        path
    }

    /// Sets the volume CMK's key policy to `policy` (through a file://
    /// parameter, as a user would).
    pub(crate) fn put_key_policy(&self, policy: &serde_json::Value) {
        let file = self.root().join("policy.json");
        fs::write(&file, policy.to_string()).expect("write the policy");
        self.kmsfs_ok(&[
            "kms",
            "put-key-policy",
            "--key-id",
            &self.key_arn(),
            "--policy",
            &format!("file://{}", file.display()),
        ]);
    }

    /// `kmsfs status BACKING --json`.
    pub(crate) fn status(&self) -> serde_json::Value {
        let text = self.kmsfs_ok(&["status", self.backing.to_str().expect("utf-8"), "--json"]);
        serde_json::from_str(&text).expect("status --json is JSON")
    }

    /// Files by the CMK version their headers name, from `status`:
    /// (at the rotation target, elsewhere).
    pub(crate) fn census(&self) -> (u64, u64) {
        let s = self.status();
        let (mut current, mut other) = (0, 0);
        for row in s["FilesByKeyVersion"]
            .as_array()
            .expect("FilesByKeyVersion")
        {
            let n = row["Files"].as_u64().expect("Files");
            if row["Current"].as_bool().expect("Current") {
                current += n;
            } else {
                other += n;
            }
        }
        (current, other)
    }

    pub(crate) fn config(&self) -> serde_json::Value {
        let text = fs::read_to_string(self.backing.join(CONFIG_NAME)).expect("volume config");
        serde_json::from_str(&text).expect("volume config is JSON")
    }

    /// The ARN of the volume's CMK.
    pub(crate) fn key_arn(&self) -> String {
        self.config()["key_id"]
            .as_str()
            .expect("key_id in the volume config")
            .to_string()
    }

    /// Bytes before the first block in every backing file.
    pub(crate) fn header_len(&self) -> u64 {
        match self.config()["header"].as_str() {
            Some("file") => HEADER_LEN,
            Some("xattr") => 0,
            other => panic!("unexpected header placement {other:?}"),
        }
    }

    /// `kmsfs fsck BACKING`: (success, stdout).
    pub(crate) fn fsck(&self) -> (bool, String) {
        let backing = self.backing.to_str().expect("utf-8").to_string();
        let out = self.kmsfs(&["fsck", &backing]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    pub(crate) fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Makes the temporary folder traversable by other users (it is 0700).
    pub(crate) fn open_to_others(&self) {
        let root = self.root();
        for dir in [root.as_path(), self.mnt.as_path()] {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        let daemons = daemon_pids(&self.mnt);
        let out = self.kmsfs(&["umount", self.mnt.to_str().unwrap_or_default()]);
        if !out.status.success() {
            eprintln!(
                "warning: kmsfs umount {} failed: {}",
                self.mnt.display(),
                describe(&out)
            );
        }
        if !wait_unmounted(&self.mnt, Duration::from_secs(10)) {
            eprintln!("warning: {} is still mounted", self.mnt.display());
        }
        if !wait_exited(&daemons, &self.mnt, Duration::from_secs(10)) {
            eprintln!(
                "warning: the mount daemon of {} is still running",
                self.mnt.display()
            );
        }
    }
}

/// uid and gid of `nobody`, the unprivileged user tests act as.
pub(crate) const NOBODY: u32 = 65534;

/// Runs `program args` as uid/gid nobody without supplementary groups.
/// setpriv's own exec of `program` is still checked with root's rights
/// here, so a test of exec permission runs the program from a shell
/// (`sh -c 'exec "$0"' PROGRAM`).
pub(crate) fn as_nobody(program: &str, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            program,
        ])
        .args(args)
        .output()
        .expect("run setpriv (util-linux)")
}

/// The first entry below `dir` (not following symlinks) with inode `ino`.
pub(crate) fn find_by_inode(dir: &Path, ino: u64) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.ino() == ino {
            return Some(path);
        }
        if meta.is_dir()
            && let Some(found) = find_by_inode(&path, ino)
        {
            return Some(found);
        }
    }
    None
}

/// The pids of the `kmsfs mount … MNT` daemons serving `mnt`.
pub(crate) fn daemon_pids(mnt: &Path) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| is_daemon_of(pid, mnt))
        .collect()
}

fn is_daemon_of(pid: u32, mnt: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.get(1) == Some(&&b"mount"[..]) && args.contains(&mnt.as_os_str().as_encoded_bytes())
}

/// Waits until none of `pids` is a daemon of `mnt` any more.
///
/// `kmsfs umount` returns as soon as the kernel has dropped the mount, while
/// the daemon may still be tearing down its session. Tests wait for it to be
/// gone so that no daemon outlives its test (and its temporary folder).
/// `remount_survives_old_daemon_teardown` checks the unsynchronised case.
pub(crate) fn wait_exited(pids: &[u32], mnt: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while pids.iter().any(|&pid| is_daemon_of(pid, mnt)) {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

pub(crate) fn wait_unmounted(mnt: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while is_mounted(mnt) {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Deterministic pseudo-random bytes (xorshift64*), distinct per seed.
pub(crate) fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        out.extend_from_slice(&s.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A seed that differs between runs (printed by callers so a failure can be
/// replayed).
pub(crate) fn run_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

/// Reads up to `len` bytes at `off`, retrying short reads; stops at EOF.
pub(crate) fn pread(file: &fs::File, off: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match file.read_at(&mut buf[done..], off + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(done);
    Ok(buf)
}

/// The errno of a failed result (panics, naming `what`, on success).
pub(crate) fn errno_of<T: std::fmt::Debug>(what: &str, r: io::Result<T>) -> i32 {
    match r {
        Ok(v) => panic!("{what}: expected an error, got Ok({v:?})"),
        Err(e) => e
            .raw_os_error()
            .unwrap_or_else(|| panic!("{what}: error without errno: {e}")),
    }
}

/// Every regular file under `dir`, recursively (symlinks not followed).
pub(crate) fn regular_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("read_dir") {
            let entry = entry.expect("dir entry");
            let ft = entry.file_type().expect("file type");
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}
