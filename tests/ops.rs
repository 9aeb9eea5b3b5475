//! Operations: the systemd unit (systemd-analyze verify, and the daemon
//! behaving as the unit expects: READY=1, journal-friendly logs, SIGTERM
//! unmounts), the mount(8) helper (`mount -t fuse.kmsfs`, an fstab line,
//! `umount`), shell completions and man pages.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kmsfs");
const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/kmsfs@.service");
const CONF_EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/kmsfs.conf.example");

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn kmsfs(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run kmsfs")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Skips a test that mounts when not root (fails in CI, which runs as root).
fn need_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(!in_ci(), "{test}: CI must run as root (it mounts FUSE)");
    eprintln!("{test}: skipped: needs root");
    false
}

/// The line of /proc/mounts whose mount point is `path`, if mounted.
fn mount_entry(path: &Path) -> Option<String> {
    let mounts = fs::read_to_string("/proc/mounts").expect("/proc/mounts");
    let want = path.to_str().unwrap();
    mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(want))
        .map(str::to_string)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A temporary backing dir, mount point and key store; lazily unmounts
/// whatever is still mounted on drop, so a failing test leaves no mount.
struct Scratch {
    dir: tempfile::TempDir,
}

/// The first file below `dir` with inode `ino`.
fn find_by_inode(dir: &Path, ino: u64) -> Option<PathBuf> {
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let meta = fs::symlink_metadata(entry.path()).ok()?;
        if std::os::unix::fs::MetadataExt::ino(&meta) == ino {
            return Some(entry.path());
        }
        if meta.is_dir()
            && let Some(found) = find_by_inode(&entry.path(), ino)
        {
            return Some(found);
        }
    }
    None
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("backing")).unwrap();
        fs::create_dir(dir.path().join("mnt")).unwrap();
        Scratch { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn backing(&self) -> PathBuf {
        self.path("backing")
    }
    fn mnt(&self) -> PathBuf {
        self.path("mnt")
    }
    fn keystore(&self) -> PathBuf {
        self.path("keystore")
    }
    fn init(&self) {
        let out = Command::new(BIN)
            .arg("init")
            .arg(self.backing())
            .env("KMSFS_KEYSTORE", self.keystore())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "init: {}", describe(&out));
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if mount_entry(&self.mnt()).is_some() {
            let _ = nix::mount::umount2(&self.mnt(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Writes through the mount, reads back, and checks the backing file holds
/// no plaintext.
fn write_and_read(s: &Scratch, name: &str) {
    let text = format!("kmsfs ops test {name}: attack at dawn\n");
    fs::write(s.mnt().join(name), &text).unwrap();
    assert_eq!(fs::read_to_string(s.mnt().join(name)).unwrap(), text);
    // The backing file is the one with the same inode (its name is
    // encrypted in a version 2 volume).
    let ino = std::os::unix::fs::MetadataExt::ino(&fs::metadata(s.mnt().join(name)).unwrap());
    let stored = find_by_inode(&s.backing(), ino).expect("the backing file");
    let stored = fs::read(stored).unwrap();
    assert!(
        !stored.windows(13).any(|w| w == b"attack at daw"),
        "plaintext reached the backing file"
    );
}

// ---------------------------------------------------------------- systemd

#[test]
fn systemd_unit_verifies() {
    let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(analyze) = analyze else {
        assert!(
            !in_ci(),
            "systemd-analyze is missing: .ci/run installs it (Debian package `systemd`)"
        );
        eprintln!("systemd_unit_verifies: skipped: no systemd-analyze (apt-get install systemd)");
        return;
    };
    // The unit runs /usr/local/bin/kmsfs, which verify requires to exist:
    // check a copy that names the binary under test instead.
    let unit = fs::read_to_string(UNIT).unwrap();
    assert!(unit.contains("/usr/local/bin/kmsfs mount --foreground"));
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("kmsfs@.service"),
        unit.replace("/usr/local/bin/kmsfs", BIN),
    )
    .unwrap();
    // --man=no: the man pages (kmsfs man --out-dir) need not be installed here.
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(dir.path().join("kmsfs@test.service"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}",
        describe(&out)
    );
    assert!(
        !stderr.contains("kmsfs@"),
        "systemd-analyze verify complained about the unit:\n{stderr}"
    );
}

#[test]
fn systemd_unit_keeps_the_host_mount_namespace() {
    // The FUSE mount must be visible outside the service: any option that
    // gives the service its own mount namespace would hide it there.
    let unit = fs::read_to_string(UNIT).unwrap();
    let settings: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .collect();
    for forbidden in [
        "PrivateTmp=",
        "ProtectSystem=",
        "ProtectHome=",
        "ReadWritePaths=",
        "ReadOnlyPaths=",
        "InaccessiblePaths=",
        "PrivateDevices=",
        "PrivateMounts=",
        "PrivateNetwork=",
        "PrivateIPC=",
        "ProtectKernelTunables=",
        "ProtectKernelModules=",
        "ProtectKernelLogs=",
        "ProtectControlGroups=",
        "ProtectProc=",
        "ProcSubset=",
        "TemporaryFileSystem=",
        "BindPaths=",
        "MountFlags=",
    ] {
        assert!(
            !settings.iter().any(|l| l.starts_with(forbidden)),
            "{forbidden} would put the mount in a private namespace"
        );
    }
    for wanted in [
        "Type=notify",
        "NotifyAccess=main",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "EnvironmentFile=/etc/kmsfs/%i.conf",
    ] {
        assert!(settings.contains(&wanted), "the unit lacks {wanted}");
    }
    // The example config sets every variable the unit uses.
    let conf = fs::read_to_string(CONF_EXAMPLE).unwrap();
    for var in ["BACKING=", "MOUNTPOINT=", "OPTIONS="] {
        assert!(
            conf.lines().any(|l| l.starts_with(var)),
            "kmsfs.conf.example lacks {var}"
        );
    }
}

/// What kmsfs@.service runs, under the conditions systemd gives it: a
/// NOTIFY_SOCKET, stderr on the journal stream, and SIGTERM to stop.
#[test]
fn foreground_mount_speaks_systemd() {
    if !need_root("foreground_mount_speaks_systemd") {
        return;
    }
    let s = Scratch::new();
    s.init();
    let notify_path = s.path("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let log_path = s.path("journal");
    let log = fs::File::create(&log_path).unwrap();
    let meta = log.metadata().unwrap();
    let mut daemon = Command::new(BIN)
        .args(["mount", "--foreground"])
        .arg(s.backing())
        .arg(s.mnt())
        // The unit passes -o ${OPTIONS}: an empty list must be fine.
        .args(["-o", ""])
        .env("NOTIFY_SOCKET", &notify_path)
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env("RUST_LOG", "info")
        .env_remove("KMSFS_KEYSTORE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("READY=1 from the daemon");
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means mounted and answering.
    let entry = mount_entry(&s.mnt()).expect("mounted when READY=1 arrives");
    assert!(entry.contains(" fuse.kmsfs "), "{entry}");
    write_and_read(&s, "systemd.txt");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let status = daemon.wait().unwrap();
    assert!(status.success(), "daemon exit on SIGTERM: {status}");
    let n = notify.recv(&mut buf).expect("STOPPING=1 from the daemon");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(
        mount_entry(&s.mnt()).is_none(),
        "still mounted after SIGTERM"
    );

    // On the journal: no timestamps, no colour; level first.
    let mut text = String::new();
    fs::File::open(&log_path)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let mounted = text
        .lines()
        .find(|l| l.contains("mounted") && l.contains(s.mnt().to_str().unwrap()))
        .unwrap_or_else(|| panic!("no 'mounted' line in the log:\n{text}"));
    assert!(mounted.trim_start().starts_with("INFO"), "{mounted}");
    assert!(
        !text.contains('\x1b'),
        "ANSI colour on the journal:\n{text}"
    );
}

// ---------------------------------------------------------------- mount(8)

/// The helper symlink in /sbin, where util-linux's mount(8) looks for
/// `mount.<type>` (/sbin/mount.fuse.kmsfs for `-t fuse.kmsfs`). Tests on one
/// machine share it, so they take a lock; drop puts back whatever was there.
struct HelperLink {
    path: PathBuf,
    previous: Option<PathBuf>,
    _lock: fs::File,
}

impl HelperLink {
    fn install() -> HelperLink {
        let lock = fs::File::create("/run/lock/kmsfs-mount-helper-test.lock")
            .or_else(|_| fs::File::create("/tmp/kmsfs-mount-helper-test.lock"))
            .unwrap();
        lock.lock().unwrap();
        let path = PathBuf::from("/sbin/mount.fuse.kmsfs");
        let previous = match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => Some(fs::read_link(&path).unwrap()),
            Ok(_) => panic!(
                "{} exists and is not a symlink: not replacing it",
                path.display()
            ),
            Err(_) => None,
        };
        let _ = fs::remove_file(&path);
        std::os::unix::fs::symlink(BIN, &path).unwrap();
        HelperLink {
            path,
            previous,
            _lock: lock,
        }
    }
}

impl Drop for HelperLink {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        if let Some(prev) = &self.previous {
            let _ = std::os::unix::fs::symlink(prev, &self.path);
        }
    }
}

fn run_mount(args: &[&std::ffi::OsStr]) -> Output {
    Command::new("mount")
        .args(args)
        // The volume's config names its key store: no environment needed.
        .env_remove("KMSFS_KEYSTORE")
        .env_remove("KMSFS_PASSPHRASE_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run mount(8)")
}

fn umount(path: &Path) {
    let out = Command::new("umount").arg(path).output().unwrap();
    assert!(out.status.success(), "umount: {}", describe(&out));
    wait_until("the mount to go", || mount_entry(path).is_none());
}

#[test]
fn mount_helper_mounts_with_mount_t_and_fstab() {
    if !need_root("mount_helper_mounts_with_mount_t_and_fstab") {
        return;
    }
    let _helper = HelperLink::install();
    let s = Scratch::new();
    s.init();

    // mount -t fuse.kmsfs BACKING MNT
    let out = run_mount(&[
        "-t".as_ref(),
        "fuse.kmsfs".as_ref(),
        s.backing().as_os_str(),
        s.mnt().as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "mount -t fuse.kmsfs: {}",
        describe(&out)
    );
    let entry = mount_entry(&s.mnt()).expect("mounted");
    let fields: Vec<&str> = entry.split(' ').collect();
    assert_eq!(fields[0], s.backing().to_str().unwrap(), "{entry}");
    assert_eq!(fields[2], "fuse.kmsfs", "{entry}");
    let listed = Command::new("mount").output().unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout)
            .contains(&format!("on {} type fuse.kmsfs", s.mnt().display())),
        "mount(8) does not list the mount as fuse.kmsfs"
    );
    write_and_read(&s, "helper.txt");
    umount(&s.mnt());

    // An fstab line (in a separate fstab file: mount -T), as documented,
    // with the daemon's log file named in the options.
    let log = s.path("daemon.log");
    let fstab = s.path("fstab");
    fs::write(
        &fstab,
        format!(
            "# test\n{} {} fuse.kmsfs defaults,allow_other,_netdev,log_file={} 0 0\n",
            s.backing().display(),
            s.mnt().display(),
            log.display()
        ),
    )
    .unwrap();
    let out = run_mount(&["-T".as_ref(), fstab.as_os_str(), s.mnt().as_os_str()]);
    assert!(out.status.success(), "mount via fstab: {}", describe(&out));
    let entry = mount_entry(&s.mnt()).expect("mounted from fstab");
    assert!(entry.contains(" fuse.kmsfs "), "{entry}");
    assert!(entry.contains("allow_other"), "{entry}");
    assert_eq!(
        fs::read_to_string(s.mnt().join("helper.txt")).unwrap(),
        "kmsfs ops test helper.txt: attack at dawn\n"
    );
    write_and_read(&s, "fstab.txt");
    umount(&s.mnt());
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("mounted"), "daemon log:\n{text}");

    // mount -f (fake) does nothing.
    let out = run_mount(&[
        "-f".as_ref(),
        "-t".as_ref(),
        "fuse.kmsfs".as_ref(),
        s.backing().as_os_str(),
        s.mnt().as_os_str(),
    ]);
    assert!(out.status.success(), "mount -f: {}", describe(&out));
    assert!(mount_entry(&s.mnt()).is_none());
}

// ---------------------------------------------------- completions and man

#[test]
fn completions_generate_for_every_shell() {
    let out = kmsfs(&["completions", "bash"]);
    assert!(out.status.success(), "{}", describe(&out));
    let bash = String::from_utf8(out.stdout).unwrap();
    assert!(bash.contains("kms"), "bash completion lacks kms");
    assert!(bash.contains("mount"), "bash completion lacks mount");
    assert!(bash.contains("complete -F"), "not a bash completion script");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = kmsfs(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", describe(&out));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("mount"), "{shell} completion lacks mount");
    }
    let out = kmsfs(&["completions", "tcsh"]);
    assert!(!out.status.success(), "an unknown shell must be refused");
}

fn th_line(page: &str) -> &str {
    page.lines()
        .find(|l| l.starts_with(".TH "))
        .unwrap_or_else(|| panic!("no .TH header in:\n{page}"))
}

#[test]
fn man_pages_generate() {
    let out = kmsfs(&["man"]);
    assert!(out.status.success(), "{}", describe(&out));
    let page = String::from_utf8(out.stdout).unwrap();
    // clap_mangen's preamble (two string definitions), then the header.
    assert!(
        page.lines().take(5).any(|l| l.starts_with(".TH kmsfs 1")),
        "no .TH kmsfs header at the top:\n{}",
        &page[..page.len().min(300)]
    );
    assert!(page.contains(".SH SUBCOMMANDS") || page.contains(".SH COMMANDS"));
    assert!(page.contains("mount"), "the page does not document mount");

    let dir = tempfile::tempdir().unwrap();
    let out = kmsfs(&["man", "--out-dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    for name in [
        "kmsfs",
        "kmsfs-mount",
        "kmsfs-kms",
        "kmsfs-init",
        "kmsfs-umount",
    ] {
        let page = fs::read_to_string(dir.path().join(format!("{name}.1")))
            .unwrap_or_else(|e| panic!("{name}.1: {e}"));
        assert!(
            th_line(&page).starts_with(&format!(".TH {name} 1")),
            "{name}.1: {}",
            th_line(&page)
        );
    }
    let mount = fs::read_to_string(dir.path().join("kmsfs-mount.1")).unwrap();
    assert!(
        mount.contains("foreground"),
        "kmsfs-mount.1 lacks --foreground"
    );
}
