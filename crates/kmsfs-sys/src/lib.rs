//! The FFI edge: the few system calls that neither std nor nix wrap
//! (extended attributes), and adopting an inherited descriptor. Every
//! `unsafe` block of the workspace lives in this crate; the workspace lints
//! deny `unsafe` everywhere else.
#![allow(unsafe_code)]

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn path_c(path: &Path) -> io::Result<CString> {
    cstr(path.as_os_str().as_bytes())
}

/// Converts a `ssize_t` result of an xattr call into a length.
fn check(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Reads an attribute into a buffer grown to fit (the size query and the read
/// race with writers, so retry on ERANGE).
fn read_growing(
    mut call: impl FnMut(*mut libc::c_void, usize) -> libc::ssize_t,
) -> io::Result<Vec<u8>> {
    loop {
        let size = check(call(std::ptr::null_mut(), 0))?;
        let mut buf = vec![0u8; size.max(1)];
        match check(call(buf.as_mut_ptr().cast(), buf.len())) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `fgetxattr`: the value of `name` on an open file.
pub fn fgetxattr(fd: BorrowedFd<'_>, name: &str) -> io::Result<Vec<u8>> {
    let name = cstr(name.as_bytes())?;
    read_growing(|buf, size| {
        // SAFETY: `name` is a valid NUL-terminated string that outlives the
        // call; `buf` is either null with size 0 (size query) or points to a
        // live allocation of exactly `size` bytes owned by `read_growing`.
        unsafe { libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), buf, size) }
    })
}

/// `fsetxattr` with flags (0, XATTR_CREATE or XATTR_REPLACE). Replacing an
/// attribute is atomic: readers see the old or the new value, never a mix.
pub fn fsetxattr(fd: BorrowedFd<'_>, name: &str, value: &[u8], flags: i32) -> io::Result<()> {
    let name = cstr(name.as_bytes())?;
    // SAFETY: `name` is NUL-terminated and `value` is a live slice whose
    // pointer and length are passed together; the kernel only reads them.
    let ret = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `lgetxattr`: the value of `name` on a path, not following a final symlink.
pub fn lgetxattr(path: &Path, name: &OsStr) -> io::Result<Vec<u8>> {
    let path = path_c(path)?;
    let name = cstr(name.as_bytes())?;
    read_growing(|buf, size| {
        // SAFETY: as in `fgetxattr`; `path` is NUL-terminated and outlives the call.
        unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), buf, size) }
    })
}

pub fn lsetxattr(path: &Path, name: &OsStr, value: &[u8], flags: i32) -> io::Result<()> {
    let path = path_c(path)?;
    let name = cstr(name.as_bytes())?;
    // SAFETY: `path` and `name` are NUL-terminated; `value` pointer and length
    // come from one live slice.
    let ret = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `llistxattr`: the NUL-separated list of attribute names.
pub fn llistxattr(path: &Path) -> io::Result<Vec<u8>> {
    let path = path_c(path)?;
    read_growing(|buf, size| {
        // SAFETY: `path` is NUL-terminated; `buf`/`size` as in `fgetxattr`.
        unsafe { libc::llistxattr(path.as_ptr(), buf.cast(), size) }
    })
}

pub fn lremovexattr(path: &Path, name: &OsStr) -> io::Result<()> {
    let path = path_c(path)?;
    let name = cstr(name.as_bytes())?;
    // SAFETY: both arguments are NUL-terminated strings that outlive the call.
    let ret = unsafe { libc::lremovexattr(path.as_ptr(), name.as_ptr()) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Takes ownership of a descriptor number this process inherited (a pipe end
/// a parent created for us and named in the environment, say).
///
/// Returns None for a number that is not an open descriptor, so a stale
/// number never becomes an `OwnedFd` that would close something else.
pub fn adopt_inherited_fd(fd: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if fd < 0 {
        return None;
    }
    // SAFETY: the borrow lives only for one fcntl(F_GETFD), which is harmless
    // on any number: a closed descriptor fails with EBADF.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    nix::fcntl::fcntl(borrowed, nix::fcntl::FcntlArg::F_GETFD).ok()?;
    // SAFETY: `fd` is open (F_GETFD succeeded) and, by the caller's contract,
    // was handed to this process for this use alone: nothing else owns it,
    // so the OwnedFd closes it exactly once.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}
