//! What another local user cannot do to a mounted volume, its daemon or
//! root's commands: forge the control state the daemon and root's commands
//! act on (the rotation state, a pid file, the volume config), or use a data
//! key through a file someone else holds open. Each test is one attack that
//! worked before, with what must happen instead.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Mount, NOBODY, Spec, as_nobody, daemon_pids, describe};

/// `kmsfs rotate` on a mounted volume: it must hand the work to the daemon.
fn ask_daemon_to_rotate(m: &Mount) {
    let out = m.kmsfs(&["rotate", m.backing.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("asked its daemon"), "{err}");
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The key policy that lets root do everything and nobody use the key.
fn let_nobody_use_the_key(m: &Mount) {
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "root", "Effect": "Allow", "Principal": {"User": ["0"]},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "nobody", "Effect": "Allow", "Principal": {"User": [NOBODY.to_string()]},
             "Action": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:Encrypt", "kms:DescribeKey"],
             "Resource": "*"}
        ]
    });
    m.put_key_policy(&policy);
}

// ---------------------------------------------------------------------------
// Control state.

#[test]
fn the_daemon_is_reached_through_a_private_socket_and_writes_no_pid_file() {
    // Version 1: its backing root is the mount's root, which others reach.
    let mut m = Mount::with(Spec::default().plaintext_names());
    let pids = daemon_pids(&m.mnt);
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert!(!m.backing.join(".kmsfs.daemon.pid").exists());

    // The socket sits in a directory only root can enter.
    let run = Path::new("/run/kmsfs");
    let meta = fs::symlink_metadata(run).unwrap();
    assert!(meta.is_dir());
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o700));
    let backing = fs::metadata(&m.backing).unwrap();
    let socket = run.join(format!("{:x}-{}.sock", backing.dev(), backing.ino()));
    assert_eq!(fs::metadata(&socket).unwrap().mode() & 0o777, 0o600);

    // `status` names the daemon by the pid the kernel vouches for.
    assert_eq!(m.status()["Daemon"], pids[0]);

    // The rotation state the daemon writes is not writable by others.
    ask_daemon_to_rotate(&m);
    let state = m.backing.join(".kmsfs.rotation.json");
    wait_for("the rotation state", Duration::from_secs(20), || {
        fs::read_to_string(&state).is_ok_and(|t| t.contains("complete"))
    });
    let mode = fs::metadata(&state).unwrap().mode() & 0o7777;
    assert_eq!(mode & 0o022, 0, "rotation state mode {mode:04o}");

    m.umount();
    assert!(!socket.exists(), "the socket outlived its daemon");
}

#[test]
fn a_pid_file_naming_another_process_is_not_believed() {
    let mut m = Mount::with(Spec::default().plaintext_names());
    fs::write(m.path("f"), b"content").unwrap();
    m.umount();
    // A decoy whose command line says "kmsfs", named by a planted pid file.
    let mut decoy = Command::new("bash")
        .args(["-c", "exec -a kmsfs-decoy sleep 60"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    fs::write(
        m.backing.join(".kmsfs.daemon.pid"),
        format!("{}\n", decoy.id()),
    )
    .unwrap();
    let backing = m.backing.to_str().unwrap();
    // Not mounted: rotate does the work itself instead of signalling the
    // decoy (SIGUSR1 would have killed it)...
    let out = m.kmsfs_ok(&["rotate", backing]);
    assert!(out.contains("re-wrapped"), "{out}");
    assert_eq!(m.status()["Daemon"], serde_json::Value::Null);
    // ...and reencrypt does not refuse on its account.
    m.kmsfs_ok(&["reencrypt", backing]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        decoy.try_wait().unwrap().is_none(),
        "the decoy was signalled"
    );
    let _ = decoy.kill();
    let _ = decoy.wait();
    m.mount();
    assert_eq!(fs::read(m.path("f")).unwrap(), b"content");
}

#[test]
fn a_forged_complete_rotation_state_does_not_stop_rewrapping() {
    let m = Mount::new();
    for i in 0..20 {
        fs::write(m.path(&format!("f{i}")), format!("file {i}")).unwrap();
    }
    let arn = m.key_arn();
    m.kmsfs_ok(&["kms", "rotate-key-on-demand", "--key-id", &arn]);
    let s = m.status();
    let target = s["Target"].clone();
    assert!(target["version"].as_u64().unwrap() >= 2, "{s}");
    // The record says everything is at the new version already. Even a
    // state file written as root is only a record: the daemon decides by
    // the headers.
    let forged = serde_json::json!({
        "target": target,
        "status": "complete",
        "started_at": "2026-01-01T00:00:00Z",
        "completed_at": "2026-01-01T00:00:01Z",
        "total": 20, "done": 20, "rewrapped": 20, "failures": []
    });
    let state = m.backing.join(".kmsfs.rotation.json");
    fs::write(&state, forged.to_string()).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(m.census(), (0, 20));

    ask_daemon_to_rotate(&m);
    wait_for(
        "every header at the new version",
        Duration::from_secs(30),
        || m.census() == (20, 0),
    );
}

#[test]
fn a_rotation_state_others_can_write_is_ignored_and_printed_safely() {
    let mut m = Mount::with(Spec::default().plaintext_names());
    fs::write(m.path("f"), b"x").unwrap();
    m.umount();
    let state = m.backing.join(".kmsfs.rotation.json");
    let forged = serde_json::json!({
        "status": "complete\u{1b}[2J",
        "total": 1, "done": 1, "rewrapped": 1,
        "failures": [{"path": "f\u{1b}]0;owned\u{7}", "reason": "\u{1b}[31mred"}]
    });
    fs::write(&state, forged.to_string()).unwrap();
    // Root-owned but writable by anyone: not believed.
    fs::set_permissions(&state, fs::Permissions::from_mode(0o666)).unwrap();
    let text = m.kmsfs_ok(&["status", m.backing.to_str().unwrap()]);
    assert!(text.contains("rotation: never run"), "{text}");
    // Believed once it is private, but nothing it says reaches the terminal
    // raw.
    fs::set_permissions(&state, fs::Permissions::from_mode(0o644)).unwrap();
    let text = m.kmsfs_ok(&["status", m.backing.to_str().unwrap()]);
    assert!(text.contains("complete\\u{1b}[2J"), "{text}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    // A huge one is not read at all.
    fs::write(&state, vec![b' '; 5 << 20]).unwrap();
    let text = m.kmsfs_ok(&["status", m.backing.to_str().unwrap()]);
    assert!(text.contains("rotation: never run"), "{text}");
}

#[test]
fn a_config_others_could_write_is_refused_and_never_reloaded_while_mounted() {
    // A version 1 volume whose backing root others can write (the mount's
    // root is world-writable and sticky, like /tmp).
    let mut m = Mount::with(
        Spec::default()
            .plaintext_names()
            .option("rotate_interval=1"),
    );
    m.open_to_others();
    fs::set_permissions(&m.backing, fs::Permissions::from_mode(0o1777)).unwrap();
    let first = m.key_arn();
    let second = m
        .kmsfs_ok(&[
            "kms",
            "create-key",
            "--query",
            "KeyMetadata.Arn",
            "--output",
            "text",
        ])
        .trim()
        .to_string();
    let config = m.backing.join(".kmsfs.volume.json");
    let real = fs::read_to_string(&config).unwrap();

    // The config names another CMK, in a file its group could have
    // written: while mounted, the daemon must neither re-read it on its own
    // (it used to, every interval) nor believe it when asked.
    fs::set_permissions(&config, fs::Permissions::from_mode(0o664)).unwrap();
    fs::write(&config, real.replace(&first, &second)).unwrap();
    ask_daemon_to_rotate(&m);
    std::thread::sleep(Duration::from_secs(3));
    fs::write(m.path("new"), b"written after the planted config").unwrap();
    fs::write(&config, &real).unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
    let s = m.status();
    let rows = s["FilesByKeyVersion"].as_array().unwrap();
    assert!(
        rows.iter().all(|r| r["KeyId"] == first.as_str()),
        "a file was wrapped by the planted CMK: {s}"
    );

    // Mounting with such a config is refused with the reason.
    m.umount();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o666)).unwrap();
    let out = m.kmsfs(&[
        "mount",
        m.backing.to_str().unwrap(),
        m.mnt.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing the volume config"), "{err}");
    assert!(err.contains("0666"), "{err}");
    // A config owned by another user is refused too.
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&config, Some(NOBODY), None).unwrap();
    let out = m.kmsfs(&["status", m.backing.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("belongs to uid 65534"),
        "{}",
        describe(&out)
    );
    std::os::unix::fs::chown(&config, Some(0), None).unwrap();
    m.mount();
    assert_eq!(
        fs::read(m.path("new")).unwrap(),
        b"written after the planted config"
    );
}

// ---------------------------------------------------------------------------
// Access to open files.

#[test]
fn truncating_a_file_another_user_holds_open_needs_the_key() {
    let m = Mount::with(Spec::default().option("allow_other"));
    m.open_to_others();
    let path = m.path("held");
    fs::write(&path, b"a key user's data").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    // Root (a key user) holds it open...
    let held = fs::File::open(&path).unwrap();
    // ...which does not let nobody, who may not use the key, cut it.
    for size in ["0", "3"] {
        let out = as_nobody("truncate", &["-s", size, path.to_str().unwrap()]);
        assert!(
            !out.status.success(),
            "truncate -s {size}: {}",
            describe(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
            "{}",
            describe(&out)
        );
    }
    // truncate(1) opens the file first (refused like any open); truncate(2)
    // by path reaches the daemon as a size change of the open file.
    for size in [0, 3] {
        let out = as_nobody(
            "perl",
            &[
                "-e",
                "truncate($ARGV[0], $ARGV[1]) or die \"truncate: $!\\n\"",
                path.to_str().unwrap(),
                &size.to_string(),
            ],
        );
        assert!(
            !out.status.success(),
            "truncate({size}): {}",
            describe(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
            "{}",
            describe(&out)
        );
    }
    drop(held);
    assert_eq!(fs::read(&path).unwrap(), b"a key user's data");
    // The daemon logged each refusal as what it was, and the key service
    // audited each as a refused Decrypt by nobody.
    let log = m.log_text();
    assert!(log.contains("op=\"truncate\""), "{log}");
    let mut audit = m.keystore.as_os_str().to_os_string();
    audit.push(".audit.log");
    let audit = fs::read_to_string(&audit).unwrap();
    let refused = audit
        .lines()
        .filter(|l| l.contains("Decrypt") && l.contains("65534") && l.contains("AccessDenied"))
        .count();
    assert!(refused >= 4, "{refused} refusals audited:\n{audit}");
}

#[test]
fn a_handle_opened_before_the_file_had_a_key_cannot_read_what_a_key_user_writes() {
    // Version 1, where a file can be placed in the backing tree.
    let m = Mount::with(Spec::default().plaintext_names().option("allow_other"));
    m.open_to_others();
    // An empty file without a header (placed, or left by a crash between
    // create and the header write), readable and writable by everyone.
    let placed = m.backing.join("placed");
    fs::write(&placed, b"").unwrap();
    fs::set_permissions(&placed, fs::Permissions::from_mode(0o666)).unwrap();
    let path = m.path("placed");

    // nobody may not use the key: opening it, even to read, needs the key
    // it is given now.
    let out = as_nobody("cat", &[path.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        describe(&out)
    );
    // A key user writes; nobody still reads nothing.
    fs::write(&path, b"secret of a key user").unwrap();
    let out = as_nobody("cat", &[path.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(out.stdout.is_empty());

    // Once nobody is a key user, it reads like anyone.
    let_nobody_use_the_key(&m);
    let out = as_nobody("cat", &[path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(out.stdout, b"secret of a key user");
}

#[test]
fn new_files_get_exactly_the_mode_asked_for() {
    let m = Mount::new();
    // A umask of 0 in the caller: the daemon's own umask must not show.
    let script = format!(
        "umask 0 && touch {0}/f && mkdir {0}/d && mkfifo {0}/p && umask 077 && touch {0}/g",
        m.mnt.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let mode = |name: &str| fs::symlink_metadata(m.path(name)).unwrap().mode() & 0o7777;
    assert_eq!(mode("f"), 0o666);
    assert_eq!(mode("d"), 0o777);
    assert_eq!(mode("p"), 0o666);
    assert_eq!(mode("g"), 0o600);
}

#[test]
fn the_log_file_is_never_opened_through_a_symlink() {
    let mut m = Mount::new();
    m.umount();
    // Someone plants a symlink where root's daemon will log.
    let victim = m.root().join("victim");
    fs::write(&victim, b"root's file\n").unwrap();
    let log = m.root().join("planted.log");
    std::os::unix::fs::symlink(&victim, &log).unwrap();
    let out = m.kmsfs(&[
        "mount",
        m.backing.to_str().unwrap(),
        m.mnt.to_str().unwrap(),
        "--log-file",
        log.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("planted.log"),
        "{}",
        describe(&out)
    );
    assert_eq!(fs::read(&victim).unwrap(), b"root's file\n");
    // A new log is its owner's alone.
    fs::remove_file(&log).unwrap();
    m.mount();
    assert_eq!(fs::metadata(&m.log).unwrap().mode() & 0o777, 0o600);
}
