//! Telling whoever started us that the mount is up: systemd (Type=notify,
//! over NOTIFY_SOCKET) and, for a background mount, the waiting parent.

use super::daemonize::report_ready_to_parent;

/// Tells systemd (Type=notify) about our state, if it is listening.
pub fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = std::path::PathBuf::from(path);
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let outcome = if let Some(abstract_name) = path.to_str().and_then(|s| s.strip_prefix('@')) {
        <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            abstract_name.as_bytes(),
        )
        .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// The filesystem answers: tell the parent of a background mount and systemd.
pub(crate) fn notify_ready() {
    report_ready_to_parent();
    sd_notify("READY=1");
}
