//! One name component: what every call of the backing layer takes instead
//! of a path. Checking it in one place is what guarantees that no longer
//! path ever reaches the kernel.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;

/// `name` if it is a single component: not empty, not "." or "..", without
/// '/' or NUL. Anything else is EINVAL (a name longer than the filesystem
/// allows is left to the kernel: ENAMETOOLONG).
pub fn check_name(name: &OsStr) -> io::Result<&OsStr> {
    let bytes = name.as_bytes();
    let single = !bytes.is_empty()
        && bytes != b"."
        && bytes != b".."
        && !bytes.iter().any(|b| *b == b'/' || *b == 0);
    if single {
        Ok(name)
    } else {
        Err(io::Error::from_raw_os_error(libc::EINVAL))
    }
}
