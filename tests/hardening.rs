//! Issue 15's small things, through the `kmsfs` binary: what a mount does
//! when the key store its volume names is not there.

mod common;

use std::fs;

use common::{Mount, describe, is_mounted};

/// A volume whose key store has been moved away (a disk not mounted) must
/// not be mounted with a new, empty store in its place, which made every
/// file look lost; with the store back, it mounts as before.
#[test]
fn mount_refuses_a_volume_whose_key_store_is_missing() {
    let mut m = Mount::new();
    fs::write(m.path("kept"), b"still here").expect("write at the mount");
    m.umount();
    let away = m.keystore.with_extension("away");
    fs::rename(&m.keystore, &away).expect("move the store away");

    let (backing, mnt, log) = (
        m.backing.to_str().expect("utf-8").to_string(),
        m.mnt.to_str().expect("utf-8").to_string(),
        m.log.to_str().expect("utf-8").to_string(),
    );
    let out = m.kmsfs(&["mount", &backing, &mnt, "--log-file", &log]);
    if is_mounted(&m.mnt) {
        // Let the guard unmount it.
        let _ = m.kmsfs(&["umount", &mnt]);
    }
    assert!(!out.status.success(), "mounted: {}", describe(&out));
    let want = format!(
        "key store not found at {} (the volume's config names it; is its disk mounted?)",
        m.keystore.display()
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&want),
        "{}",
        describe(&out)
    );
    assert!(!m.keystore.exists(), "a new key store was created");

    fs::rename(&away, &m.keystore).expect("move the store back");
    m.mount();
    assert_eq!(fs::read(m.path("kept")).expect("read"), b"still here");
}
