//! The FFI edge: the few system calls that neither std nor nix wrap
//! (extended attributes, fchmodat2, the *xattrat family), and adopting an
//! inherited descriptor. Every
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

/// `flistxattr`: the NUL-separated attribute names of an open file.
pub fn flistxattr(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    read_growing(|buf, size| {
        // SAFETY: `buf`/`size` as in `fgetxattr`; the fd is borrowed for the call.
        unsafe { libc::flistxattr(fd.as_raw_fd(), buf.cast(), size) }
    })
}

/// `fremovexattr` on an open file.
pub fn fremovexattr(fd: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let name = cstr(name.as_bytes())?;
    // SAFETY: `name` is NUL-terminated and outlives the call.
    let ret = unsafe { libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

// System calls newer than the libc crate's tables. Numbers from 424 on are
// the same on every Linux architecture (the unified syscall table).
const SYS_FCHMODAT2: libc::c_long = 452;
const SYS_SETXATTRAT: libc::c_long = 463;
const SYS_GETXATTRAT: libc::c_long = 464;
const SYS_LISTXATTRAT: libc::c_long = 465;
const SYS_REMOVEXATTRAT: libc::c_long = 466;

/// `struct xattr_args` of the *xattrat system calls (Linux 6.13).
#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

fn check_int(ret: libc::c_long) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// `fchmodat2(dirfd, name, mode, flags)` (Linux 6.6): the chmod that can be
/// told not to follow a final symlink (`AT_SYMLINK_NOFOLLOW`) or to act on
/// the descriptor itself, `O_PATH` ones included (`name` empty and
/// `AT_EMPTY_PATH`). On a symlink the kernel answers EOPNOTSUPP.
pub fn fchmodat2(dirfd: BorrowedFd<'_>, name: &OsStr, mode: u32, flags: i32) -> io::Result<()> {
    let name = cstr(name.as_bytes())?;
    // SAFETY: plain integer arguments and a NUL-terminated string that
    // outlives the call; the kernel only reads it.
    let ret = unsafe {
        libc::syscall(
            SYS_FCHMODAT2,
            dirfd.as_raw_fd(),
            name.as_ptr(),
            mode as libc::c_uint,
            flags,
        )
    };
    check_int(ret).map(|_| ())
}

/// `getxattrat(dirfd, name, flags, attr)` (Linux 6.13): an attribute of the
/// entry `name` of a directory, not following it with `AT_SYMLINK_NOFOLLOW`.
pub fn getxattrat(
    dirfd: BorrowedFd<'_>,
    name: &OsStr,
    flags: i32,
    attr: &OsStr,
) -> io::Result<Vec<u8>> {
    let name = cstr(name.as_bytes())?;
    let attr = cstr(attr.as_bytes())?;
    read_growing(|buf, size| {
        let mut args = XattrArgs {
            value: buf as u64,
            size: size as u32,
            flags: 0,
        };
        // SAFETY: `name` and `attr` are NUL-terminated; `args` is a live
        // struct of the size passed, whose value pointer is null with size 0
        // or a live buffer of `size` bytes (see `read_growing`).
        unsafe {
            libc::syscall(
                SYS_GETXATTRAT,
                dirfd.as_raw_fd(),
                name.as_ptr(),
                flags as libc::c_uint,
                attr.as_ptr(),
                &mut args as *mut XattrArgs,
                std::mem::size_of::<XattrArgs>(),
            ) as libc::ssize_t
        }
    })
}

/// `setxattrat` (Linux 6.13): sets an attribute of the entry `name` of a
/// directory; `xattr_flags` is 0, XATTR_CREATE or XATTR_REPLACE.
pub fn setxattrat(
    dirfd: BorrowedFd<'_>,
    name: &OsStr,
    flags: i32,
    attr: &OsStr,
    value: &[u8],
    xattr_flags: i32,
) -> io::Result<()> {
    let name = cstr(name.as_bytes())?;
    let attr = cstr(attr.as_bytes())?;
    let args = XattrArgs {
        value: value.as_ptr() as u64,
        size: value.len() as u32,
        flags: xattr_flags as u32,
    };
    // SAFETY: strings NUL-terminated; `args` points at `value`, a live slice
    // of the length given, and the kernel only reads it.
    let ret = unsafe {
        libc::syscall(
            SYS_SETXATTRAT,
            dirfd.as_raw_fd(),
            name.as_ptr(),
            flags as libc::c_uint,
            attr.as_ptr(),
            &args as *const XattrArgs,
            std::mem::size_of::<XattrArgs>(),
        )
    };
    check_int(ret).map(|_| ())
}

/// `listxattrat` (Linux 6.13): the NUL-separated attribute names of the
/// entry `name` of a directory.
pub fn listxattrat(dirfd: BorrowedFd<'_>, name: &OsStr, flags: i32) -> io::Result<Vec<u8>> {
    let name = cstr(name.as_bytes())?;
    read_growing(|buf, size| {
        // SAFETY: `name` is NUL-terminated; `buf`/`size` as in `fgetxattr`.
        unsafe {
            libc::syscall(
                SYS_LISTXATTRAT,
                dirfd.as_raw_fd(),
                name.as_ptr(),
                flags as libc::c_uint,
                buf,
                size,
            ) as libc::ssize_t
        }
    })
}

/// `removexattrat` (Linux 6.13).
pub fn removexattrat(
    dirfd: BorrowedFd<'_>,
    name: &OsStr,
    flags: i32,
    attr: &OsStr,
) -> io::Result<()> {
    let name = cstr(name.as_bytes())?;
    let attr = cstr(attr.as_bytes())?;
    // SAFETY: both strings are NUL-terminated and outlive the call.
    let ret = unsafe {
        libc::syscall(
            SYS_REMOVEXATTRAT,
            dirfd.as_raw_fd(),
            name.as_ptr(),
            flags as libc::c_uint,
            attr.as_ptr(),
        )
    };
    check_int(ret).map(|_| ())
}

/// `utimensat(fd, "", times, AT_EMPTY_PATH)`: sets the times of the inode a
/// descriptor names, `O_PATH` descriptors and symlinks included (nix's
/// `futimens` needs a descriptor opened for I/O). Each time is
/// (seconds, nanoseconds), nanoseconds possibly UTIME_NOW or UTIME_OMIT.
pub fn futimens_empty_path(
    fd: BorrowedFd<'_>,
    atime: (i64, i64),
    mtime: (i64, i64),
) -> io::Result<()> {
    let times = [
        libc::timespec {
            tv_sec: atime.0 as libc::time_t,
            tv_nsec: atime.1 as _,
        },
        libc::timespec {
            tv_sec: mtime.0 as libc::time_t,
            tv_nsec: mtime.1 as _,
        },
    ];
    // SAFETY: an empty NUL-terminated string and a live array of two
    // timespecs, both only read by the kernel during the call.
    let ret = unsafe {
        libc::utimensat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            times.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Makes `dst` share `src`'s extents (`ioctl(FICLONE)`): a copy that costs
/// no data I/O and no space until either file is written, where the
/// filesystem can (btrfs, xfs with reflink, bcachefs). Fails with
/// EOPNOTSUPP/EXDEV/EINVAL where it cannot; callers then copy the bytes.
pub fn clone_file(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: FICLONE takes the source descriptor as its integer argument
    // and reads no memory of ours; both descriptors are borrowed, so they
    // are open for the duration of the call.
    let ret = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE as _, src.as_raw_fd()) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Makes this process non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`): a crash
/// writes no core file, and other processes of the same user can no longer
/// ptrace it or read its memory through /proc. kmsfs holds root keys, data
/// keys and passphrases in memory; a core file would put them on disk in
/// the clear. Inherited by forked children, reset by `execve`.
pub fn forbid_core_dumps() -> io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes one integer argument (0 or 1) and no
    // pointers; the trailing zeros are the unused arguments prctl expects.
    let ret = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Whether this process may dump core (`prctl(PR_GET_DUMPABLE)`).
pub fn core_dumps_allowed() -> io::Result<bool> {
    // SAFETY: PR_GET_DUMPABLE takes no arguments and returns the flag; the
    // zeros are the unused arguments.
    let ret = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret != 0)
    }
}

/// Makes the child that `command` spawns inherit `fd` under the same number:
/// FD_CLOEXEC is cleared in the child alone, between fork and exec, so the
/// descriptor never leaks into children that other threads of this process
/// spawn meanwhile (clearing it in the parent would). The descriptor must
/// stay open until `spawn` returns; if it is closed by then, the spawn
/// fails with EBADF rather than handing over another file.
pub fn inherit_fd_on_spawn(command: &mut std::process::Command, fd: BorrowedFd<'_>) {
    use std::os::unix::process::CommandExt;
    let raw = fd.as_raw_fd();
    // SAFETY: the hook runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: it makes two fcntl(2) calls on an
    // integer and allocates nothing, takes no lock and touches no shared
    // state. A wrong number only makes fcntl fail (EBADF), which fails the
    // spawn.
    unsafe {
        command.pre_exec(move || {
            let flags = libc::fcntl(raw, libc::F_GETFD);
            if flags < 0 || libc::fcntl(raw, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbid_core_dumps_makes_the_process_non_dumpable() {
        // The test process starts dumpable (not set-uid, not changed by
        // the harness), so this observes the change, not a default.
        assert!(core_dumps_allowed().unwrap());
        forbid_core_dumps().unwrap();
        assert!(!core_dumps_allowed().unwrap());
    }
}
