//! The backing tree: the only code that touches the directory of encrypted
//! files.
//!
//! Why a layer of its own: the FUSE daemon runs as root in a tree whose
//! entries other users may be able to replace. A path walked by the kernel
//! follows every symlink on the way, so `chmod("/backing/d/f")` acts on
//! whatever `d` points to at that instant. Here nothing is ever named by a
//! path: every operation is a directory descriptor plus ONE name component
//! (checked by [`name`]), made with the `*at` system calls and
//! `O_NOFOLLOW`/`AT_SYMLINK_NOFOLLOW`, or is made on a descriptor of the
//! exact inode (`O_PATH`, then `AT_EMPTY_PATH`). A planted symlink is
//! therefore either opened as a symlink (and refused where one is not
//! expected) or fails with ELOOP/ENOTDIR; it is never traversed.
//!
//! No path longer than one component reaches the kernel, so depth is not
//! limited by PATH_MAX either. The one exception is [`Dir::open_root`], the
//! backing directory the administrator names.
//!
//! Errors are `io::Error`s carrying the kernel's errno: callers map them to
//! what a process at the mount should see.

mod name;

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::{AtFlags, OFlag, RenameFlags, openat};
use nix::sys::stat::{Mode, SFlag, mkdirat, mknodat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchownat, linkat, symlinkat, unlinkat};

pub use name::check_name;

fn from_nix(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn open_at(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlag, mode: Mode) -> io::Result<File> {
    let name = check_name(name)?;
    openat(
        dir,
        name,
        flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        mode,
    )
    .map(File::from)
    .map_err(from_nix)
}

/// Whether reads through a descriptor may move the backing inode's access
/// time. The daemon's own reads (headers at open, rotation and fsck walks,
/// side files, read-modify-write of blocks) are not accesses by a user, so
/// they keep it ([`Atime::Kept`], `O_NOATIME`); only a mount's content
/// reads and listings may move it, as its atime options allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Atime {
    /// `O_NOATIME`: reads leave the access time as it is.
    Kept,
    /// Reads move the access time as the backing filesystem's own atime
    /// rules (its mount options) say.
    Updated,
}

impl Atime {
    fn flag(self) -> OFlag {
        match self {
            Atime::Kept => OFlag::O_NOATIME,
            Atime::Updated => OFlag::empty(),
        }
    }
}

/// `open_at` with `atime`'s flag; `O_NOATIME` is only allowed to the
/// file's owner or with CAP_FOWNER (EPERM otherwise), and keeping the
/// access time is a courtesy, not a requirement: without the right the
/// file is opened as usual. Returns the flags that were applied.
fn open_at_atime(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    flags: OFlag,
    atime: Atime,
) -> io::Result<(File, OFlag)> {
    match open_at(dir, name, flags | atime.flag(), Mode::empty()) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) && atime == Atime::Kept => {
            open_at(dir, name, flags, Mode::empty()).map(|f| (f, OFlag::empty()))
        }
        other => other.map(|f| (f, atime.flag())),
    }
}

/// The kind of a directory entry, as the backing filesystem reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    /// The filesystem does not say (DT_UNKNOWN): stat the entry to know.
    Unknown,
}

/// One entry of a directory listing (never "." or "..").
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: OsString,
    pub ino: u64,
    pub kind: EntryKind,
}

/// A directory of the backing tree, held as an `O_PATH` descriptor: it names
/// the directory inode itself, whatever happens to the names leading to it.
#[derive(Debug)]
pub struct Dir {
    fd: File,
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Dir {
    /// Opens the backing root: the one path this layer resolves, given by the
    /// administrator (symlinks in it are the administrator's choice).
    pub fn open_root(path: &Path) -> io::Result<Dir> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(from_nix)?;
        Ok(Dir { fd: File::from(fd) })
    }

    /// Attributes of the directory itself.
    pub fn metadata(&self) -> io::Result<Metadata> {
        self.fd.metadata()
    }

    /// The subdirectory `name`; a symlink (or anything but a directory) there
    /// fails with ENOTDIR or ELOOP instead of being followed.
    pub fn open_dir(&self, name: &OsStr) -> io::Result<Dir> {
        let fd = open_at(
            self.as_fd(),
            name,
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Mode::empty(),
        )?;
        Ok(Dir { fd })
    }

    /// The directory `rel` below this one (a relative path of plain names,
    /// as a walk of the tree records them), descended one `open_dir` at a
    /// time: the kernel still only ever sees one component.
    pub fn open_dir_below(&self, rel: &Path) -> io::Result<Dir> {
        let mut dir = self.duplicate()?;
        for name in components(rel)? {
            dir = dir.open_dir(name)?;
        }
        Ok(dir)
    }

    /// The regular file `rel` below this directory, opened for I/O (see
    /// [`Dir::open_file`]), with the directory that holds it.
    pub fn open_file_below(&self, rel: &Path, writable: bool) -> io::Result<(Dir, File)> {
        let name = rel
            .file_name()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        let dir = self.open_dir_below(parent)?;
        let file = dir.open_file(name, writable)?;
        Ok((dir, file))
    }

    /// A second descriptor of this directory.
    pub fn duplicate(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
        })
    }

    /// The directory itself as a [`Node`] (for chmod, chown, times).
    pub fn as_node(&self) -> io::Result<Node> {
        let fd = self.fd.try_clone()?;
        let metadata = fd.metadata()?;
        Ok(Node { fd, metadata })
    }

    /// The inode `name` names, of any kind, without following it: a symlink
    /// gives the symlink itself.
    pub fn open_node(&self, name: &OsStr) -> io::Result<Node> {
        let fd = open_at(self.as_fd(), name, OFlag::O_PATH, Mode::empty())?;
        let metadata = fd.metadata()?;
        Ok(Node { fd, metadata })
    }

    /// Opens the regular file `name` for I/O. Anything else there (a symlink,
    /// a FIFO, a device) is refused before it is opened for I/O, so opening
    /// never blocks on a FIFO or touches a device; the opened descriptor is
    /// checked to be the inode that was inspected.
    /// The daemon's own reads through it keep the access time
    /// ([`Atime::Kept`]); see [`Dir::open_file_with`].
    pub fn open_file(&self, name: &OsStr, writable: bool) -> io::Result<File> {
        self.open_file_with(name, writable, Atime::Kept)
    }

    /// [`Dir::open_file`], saying whether reads through the descriptor may
    /// move the file's access time.
    pub fn open_file_with(&self, name: &OsStr, writable: bool, atime: Atime) -> io::Result<File> {
        let inspected = self.open_node(name)?;
        if !inspected.metadata.is_file() {
            return Err(io::Error::from_raw_os_error(
                if inspected.metadata.is_dir() {
                    libc::EISDIR
                } else {
                    libc::EINVAL
                },
            ));
        }
        let access = if writable {
            OFlag::O_RDWR
        } else {
            OFlag::O_RDONLY
        };
        let (file, kept) = open_at_atime(
            self.as_fd(),
            name,
            access | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
            atime,
        )?;
        let opened = file.metadata()?;
        if !same_inode(&opened, &inspected.metadata) {
            return Err(io::Error::from_raw_os_error(libc::ESTALE));
        }
        // Back to blocking I/O; F_SETFL also sets O_NOATIME, so keep it.
        nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(kept)).map_err(from_nix)?;
        Ok(file)
    }

    /// This directory opened for reading (listing, fsync, xattrs). Opening
    /// "." relative to the descriptor cannot resolve to anything else.
    /// Listing through it keeps the directory's access time (the
    /// daemon's own walks); see [`Dir::open_readable_with`].
    pub fn open_readable(&self) -> io::Result<File> {
        self.open_readable_with(Atime::Kept)
    }

    /// [`Dir::open_readable`], saying whether listing through it may move
    /// the directory's access time.
    pub fn open_readable_with(&self, atime: Atime) -> io::Result<File> {
        // "." relative to the descriptor: not a name `check_name` passes.
        let open = |extra: OFlag| {
            openat(
                self.as_fd(),
                ".",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | extra,
                Mode::empty(),
            )
            .map(File::from)
            .map_err(from_nix)
        };
        match open(atime.flag()) {
            // As in `open_at_atime`: keeping the access time is a courtesy.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) && atime == Atime::Kept => {
                open(OFlag::empty())
            }
            other => other,
        }
    }

    /// Creates the regular file `name` (it must not exist), open read-write.
    pub fn create_file(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        open_at(
            self.as_fd(),
            name,
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL,
            Mode::from_bits_truncate(mode),
        )
    }

    pub fn mkdir(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        mkdirat(
            self.as_fd(),
            check_name(name)?,
            Mode::from_bits_truncate(mode),
        )
        .map_err(from_nix)
    }

    /// Creates a special file (FIFO, socket, device) `name`.
    pub fn mknod(&self, name: &OsStr, kind: SFlag, mode: u32, rdev: u64) -> io::Result<()> {
        mknodat(
            self.as_fd(),
            check_name(name)?,
            kind,
            Mode::from_bits_truncate(mode),
            rdev as libc::dev_t,
        )
        .map_err(from_nix)
    }

    /// Creates the symlink `name` pointing at `target` (stored, never resolved).
    pub fn symlink(&self, target: &OsStr, name: &OsStr) -> io::Result<()> {
        if target.is_empty() {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        symlinkat(target, self.as_fd(), check_name(name)?).map_err(from_nix)
    }

    /// Removes the non-directory `name` (a symlink is removed, not followed).
    pub fn unlink(&self, name: &OsStr) -> io::Result<()> {
        unlinkat(self.as_fd(), check_name(name)?, UnlinkatFlags::NoRemoveDir).map_err(from_nix)
    }

    /// Removes the empty directory `name`.
    pub fn rmdir(&self, name: &OsStr) -> io::Result<()> {
        unlinkat(self.as_fd(), check_name(name)?, UnlinkatFlags::RemoveDir).map_err(from_nix)
    }

    /// `renameat2`: moves `name` to `to/to_name` (flags: RENAME_NOREPLACE or
    /// RENAME_EXCHANGE, or none). Neither name is followed.
    pub fn rename(
        &self,
        name: &OsStr,
        to: &Dir,
        to_name: &OsStr,
        flags: RenameFlags,
    ) -> io::Result<()> {
        nix::fcntl::renameat2(
            self.as_fd(),
            check_name(name)?,
            to.as_fd(),
            check_name(to_name)?,
            flags,
        )
        .map_err(from_nix)
    }

    /// A new hard link `to/to_name` of the inode `name` names (a symlink is
    /// linked itself, not its target: linkat without AT_SYMLINK_FOLLOW).
    pub fn link(&self, name: &OsStr, to: &Dir, to_name: &OsStr) -> io::Result<()> {
        linkat(
            self.as_fd(),
            check_name(name)?,
            to.as_fd(),
            check_name(to_name)?,
            AtFlags::empty(),
        )
        .map_err(from_nix)
    }

    /// The entries of this directory, "." and ".." left out (a walk of
    /// the daemon's own: the access time is kept).
    pub fn entries(&self) -> io::Result<Vec<DirEntry>> {
        self.entries_with(Atime::Kept)
    }

    /// [`Dir::entries`] for a listing a user asked for, which may move the
    /// directory's access time (`atime`).
    pub fn entries_with(&self, atime: Atime) -> io::Result<Vec<DirEntry>> {
        let readable = self.open_readable_with(atime)?;
        let dir = nix::dir::Dir::from_fd(readable.into()).map_err(from_nix)?;
        let mut entries = Vec::new();
        for entry in dir {
            let entry = entry.map_err(from_nix)?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            use nix::dir::Type;
            let kind = match entry.file_type() {
                Some(Type::File) => EntryKind::File,
                Some(Type::Directory) => EntryKind::Dir,
                Some(Type::Symlink) => EntryKind::Symlink,
                Some(Type::Fifo) => EntryKind::Fifo,
                Some(Type::Socket) => EntryKind::Socket,
                Some(Type::CharacterDevice) => EntryKind::CharDevice,
                Some(Type::BlockDevice) => EntryKind::BlockDevice,
                None => EntryKind::Unknown,
            };
            entries.push(DirEntry {
                name: name.to_os_string(),
                ino: entry.ino(),
                kind,
            });
        }
        Ok(entries)
    }

    /// fsync of the directory (makes its entries durable).
    pub fn sync(&self) -> io::Result<()> {
        self.open_readable()?.sync_all()
    }

    /// Statistics of the filesystem holding the directory.
    pub fn statvfs(&self) -> io::Result<nix::sys::statvfs::Statvfs> {
        nix::sys::statvfs::fstatvfs(self.as_fd()).map_err(from_nix)
    }

    /// Extended attributes of an entry that cannot be opened for I/O without
    /// risk (symlinks, FIFOs, sockets, devices): the *xattrat system calls
    /// (Linux 6.13) with AT_SYMLINK_NOFOLLOW. Regular files and directories
    /// are better served through an opened descriptor (`f*xattr`).
    pub fn get_xattr_of(&self, name: &OsStr, attr: &OsStr) -> io::Result<Vec<u8>> {
        kmsfs_sys::getxattrat(
            self.as_fd(),
            check_name(name)?,
            libc::AT_SYMLINK_NOFOLLOW,
            attr,
        )
        .map_err(no_xattrat)
    }

    pub fn set_xattr_of(
        &self,
        name: &OsStr,
        attr: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> io::Result<()> {
        kmsfs_sys::setxattrat(
            self.as_fd(),
            check_name(name)?,
            libc::AT_SYMLINK_NOFOLLOW,
            attr,
            value,
            flags,
        )
        .map_err(no_xattrat)
    }

    pub fn list_xattr_of(&self, name: &OsStr) -> io::Result<Vec<u8>> {
        kmsfs_sys::listxattrat(self.as_fd(), check_name(name)?, libc::AT_SYMLINK_NOFOLLOW)
            .map_err(no_xattrat)
    }

    pub fn remove_xattr_of(&self, name: &OsStr, attr: &OsStr) -> io::Result<()> {
        kmsfs_sys::removexattrat(
            self.as_fd(),
            check_name(name)?,
            libc::AT_SYMLINK_NOFOLLOW,
            attr,
        )
        .map_err(no_xattrat)
    }
}

/// A kernel without the *xattrat calls: refuse rather than reach the inode
/// by a path (or a /proc/self/fd magic link).
fn no_xattrat(e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::ENOSYS) {
        io::Error::from_raw_os_error(libc::EOPNOTSUPP)
    } else {
        e
    }
}

/// The names of a relative path of plain components; anything else ("..",
/// ".", a root) is EINVAL.
fn components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    rel.components()
        .map(|c| match c {
            std::path::Component::Normal(name) => check_name(name),
            _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
        })
        .collect()
}

/// Whether two attribute sets describe the same inode.
pub fn same_inode(a: &Metadata, b: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// One inode of the backing tree, of any kind, held as an `O_PATH`
/// descriptor: attribute changes act on exactly this inode (`AT_EMPTY_PATH`),
/// never on whatever a name points to by then.
#[derive(Debug)]
pub struct Node {
    fd: File,
    metadata: Metadata,
}

impl AsFd for Node {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Node {
    /// The attributes read when the node was opened.
    pub fn opened_metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Fresh attributes.
    pub fn metadata(&self) -> io::Result<Metadata> {
        self.fd.metadata()
    }

    /// chmod of this inode (fchmodat2 with AT_EMPTY_PATH, Linux 6.6). A
    /// symlink has no mode of its own: EOPNOTSUPP, as from the kernel. An
    /// older kernel gets EOPNOTSUPP too: there is no other way to change the
    /// mode of an `O_PATH` descriptor that does not go through a path.
    pub fn chmod(&self, mode: u32) -> io::Result<()> {
        kmsfs_sys::fchmodat2(
            self.as_fd(),
            OsStr::new(""),
            mode & 0o7777,
            libc::AT_EMPTY_PATH,
        )
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOSYS) {
                io::Error::from_raw_os_error(libc::EOPNOTSUPP)
            } else {
                e
            }
        })
    }

    /// chown of this inode (a symlink's own owner, never its target's).
    pub fn chown(&self, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        fchownat(
            self.as_fd(),
            "",
            uid.map(Uid::from_raw),
            gid.map(Gid::from_raw),
            AtFlags::AT_EMPTY_PATH,
        )
        .map_err(from_nix)
    }

    /// Access and modification times (UTIME_NOW / UTIME_OMIT allowed).
    pub fn set_times(&self, atime: TimeSpec, mtime: TimeSpec) -> io::Result<()> {
        kmsfs_sys::futimens_empty_path(
            self.as_fd(),
            (atime.tv_sec(), atime.tv_nsec()),
            (mtime.tv_sec(), mtime.tv_nsec()),
        )
    }

    /// The target of this symlink (readlinkat with an empty name reads the
    /// link the descriptor names).
    pub fn read_link(&self) -> io::Result<OsString> {
        nix::fcntl::readlinkat(self.as_fd(), "").map_err(from_nix)
    }
}

#[cfg(test)]
mod tests;
