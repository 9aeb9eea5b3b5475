//! The FUSE adapter: translates kernel requests into calls on the volume
//! (`kmsfs_volume`) and the content format (`kmsfs_format`). It owns no
//! cryptography and does no ciphertext offset arithmetic, and it reaches
//! the backing tree only through `kmsfs_volume::backing` (directory
//! descriptors and single names, resolved by `tree`), never by a path.

mod dir_cache;
pub(crate) mod inodes;
pub(crate) mod open_files;
mod tree;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, KernelConfig,
    LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};
use nix::sys::stat::{Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

use inodes::ROOT;
use kmsfs_format::content::{ContentError, PositionalIo};
use kmsfs_kms::Caller;
use kmsfs_volume::backing::{Atime, Dir, EntryKind, Node};
use kmsfs_volume::config::HEADER_XATTR;
use kmsfs_volume::names::{EntryName, VolumeNames};
use kmsfs_volume::{FileError, FileKey, Volume};
use open_files::{OpenFile, OpenFiles};
use tree::{CachedDir, Tree, errno};

/// How long the kernel may cache attributes and names. Short, because the
/// backing directory may change under us (rotation, fsck, a second mount).
const TTL: Duration = Duration::from_secs(1);
/// The kernel's largest write request we ask for (fewer round trips).
const MAX_WRITE: u32 = 1 << 20;

/// Names reserved for kmsfs in a version 1 backing root (which is the
/// mount's root), invisible at the mount. A version 2 tree has none: kmsfs's
/// own files live outside it.
fn is_reserved(names: &VolumeNames, parent: u64, name: &OsStr) -> bool {
    !names.is_encrypted() && parent == ROOT && kmsfs_volume::rotate::is_reserved_name(name)
}

/// Extended attributes reserved for kmsfs (the xattr header). With
/// encrypted names a user's attribute never has this stored name, so none
/// is reserved at the mount.
fn is_reserved_xattr(names: &VolumeNames, name: &OsStr) -> bool {
    !names.is_encrypted() && name.as_bytes().starts_with(b"user.kmsfs.")
}

/// The daemon's umask (set once in `daemon::serve`). Its bits are the only
/// ones a create in the backing tree can lose from the mode a request asks
/// for (the request's mode already has the caller's umask applied); they
/// are added back at once with an explicit chmod, so new files get exactly
/// the caller's mode while nothing the daemon makes for itself is
/// group- or world-writable by accident.
pub(crate) const DAEMON_UMASK: u32 = 0o022;

/// The bits of `mode` that the daemon's umask removed at creation.
fn lost_to_umask(mode: u32) -> u32 {
    mode & DAEMON_UMASK
}

/// The bits of `mode` that the daemon's umask removed from a node just
/// created in `dir`: none if `dir` has a default ACL, which the backing
/// filesystem applies instead of the umask (a chmod "adding back" bits
/// would overwrite the mode and ACL the new node inherited: generic/099).
fn lost_to_umask_in(dir: &Dir, mode: u32) -> u32 {
    let lost = lost_to_umask(mode);
    if lost != 0 && has_default_acl(dir) {
        0
    } else {
        lost
    }
}

/// The permission bits a node created in `dir` is asked for: the
/// request's mode less the caller's umask, except under a default ACL,
/// which takes the umask's place (POSIX.1e; generic/099 with umask 722).
/// The kernel leaves the umask to us (FUSE_DONT_MASK); one that does not
/// has applied it already, and applying it again changes nothing. Costs
/// an open and a getxattr of the directory per create.
fn requested_mode(dir: &Dir, mode: u32, umask: u32) -> u32 {
    if mode & umask & 0o7777 != 0 && has_default_acl(dir) {
        mode & 0o7777
    } else {
        mode & !umask & 0o7777
    }
}

fn has_default_acl(dir: &Dir) -> bool {
    dir.open_readable()
        .is_ok_and(|d| kmsfs_sys::fgetxattr(d.as_fd(), "system.posix_acl_default").is_ok())
}

/// Whether setting or removing the extended attribute `name` can change
/// the inode's mode bits (the access ACL's owner, group/mask and other
/// entries are the mode).
fn changes_mode(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b"system.posix_acl_")
}

fn nix_errno(e: nix::Error) -> Errno {
    Errno::from_i32(e as i32)
}

/// The generation of a backing inode: its birth time. Backing inode numbers
/// are reused after deletion; a different generation tells the kernel that
/// a reused number names a new file, so it drops the old one's cached
/// attributes and pages instead of serving them for the new file.
fn generation(m: &Metadata) -> Generation {
    let born = m
        .created()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    Generation(born)
}

/// A backing inode's timestamp: (seconds, nanoseconds).
type Timestamp = (i64, i64);

/// A backing inode's access time.
fn atime_of(m: &Metadata) -> Timestamp {
    (m.atime(), m.atime_nsec())
}

fn kind_of(ft: fs::FileType) -> FileType {
    if ft.is_dir() {
        FileType::Directory
    } else if ft.is_symlink() {
        FileType::Symlink
    } else if ft.is_fifo() {
        FileType::NamedPipe
    } else if ft.is_socket() {
        FileType::Socket
    } else if ft.is_char_device() {
        FileType::CharDevice
    } else if ft.is_block_device() {
        FileType::BlockDevice
    } else {
        FileType::RegularFile
    }
}

fn kind_of_mode(kind: SFlag) -> FileType {
    match kind {
        SFlag::S_IFIFO => FileType::NamedPipe,
        SFlag::S_IFSOCK => FileType::Socket,
        SFlag::S_IFCHR => FileType::CharDevice,
        SFlag::S_IFBLK => FileType::BlockDevice,
        SFlag::S_IFDIR => FileType::Directory,
        SFlag::S_IFLNK => FileType::Symlink,
        _ => FileType::RegularFile,
    }
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(nsecs as u64)
    }
}

fn timespec(t: Option<TimeOrNow>) -> TimeSpec {
    match t {
        None => TimeSpec::UTIME_OMIT,
        Some(TimeOrNow::Now) => TimeSpec::UTIME_NOW,
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => TimeSpec::new(d.as_secs() as i64, d.subsec_nanos() as i64),
            Err(e) => {
                let d = e.duration();
                let mut secs = -(d.as_secs() as i64);
                let mut nanos = -(d.subsec_nanos() as i64);
                if nanos < 0 {
                    secs -= 1;
                    nanos += 1_000_000_000;
                }
                TimeSpec::new(secs, nanos)
            }
        },
    }
}

/// The identity of the process behind a request, with its supplementary
/// groups (read from /proc, as the kernel does not send them). Groups are
/// remembered per (pid, uid, gid) for a couple of seconds: a process creating
/// thousands of files would otherwise cost three extra syscalls per file.
/// A process that changes its groups is seen with the new ones at the latest
/// `CALLER_TTL` later.
/// (pid, uid, gid) of a request → its supplementary groups, and when read.
type CallerCache = HashMap<(u32, u32, u32), (Vec<u32>, std::time::Instant)>;

#[derive(Default)]
struct Callers {
    known: Mutex<CallerCache>,
}

const CALLER_TTL: Duration = Duration::from_secs(2);

impl Callers {
    fn of(&self, req: &Request) -> Caller {
        let key = (req.pid(), req.uid(), req.gid());
        let now = std::time::Instant::now();
        let cached = self
            .known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .filter(|(_, at)| now.duration_since(*at) < CALLER_TTL)
            .map(|(g, _)| g.clone());
        let groups = cached.unwrap_or_else(|| {
            let groups = read_groups(req.pid());
            let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            if known.len() > 4096 {
                known.retain(|_, (_, at)| now.duration_since(*at) < CALLER_TTL);
            }
            known.insert(key, (groups.clone(), now));
            groups
        });
        Caller {
            uid: req.uid(),
            gid: req.gid(),
            groups,
            iam_user: None,
            // A volume names its CMK by id or ARN, which binds the region.
            region: None,
        }
    }
}

fn read_groups(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Groups:")).map(|g| {
                g.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

struct DirSnapshot {
    entries: Vec<SnapshotEntry>,
}

struct SnapshotEntry {
    ino: u64,
    kind: FileType,
    /// The name the user sees.
    name: OsString,
    /// The entry in the backing directory.
    stored: OsString,
}

pub(crate) struct KmsFs {
    volume: Arc<Volume>,
    tree: Tree,
    files: OpenFiles,
    /// Open directory handles; snapshots are shared so that no request holds
    /// this lock across I/O.
    dirs: Mutex<HashMap<u64, Arc<DirSnapshot>>>,
    next_dir: AtomicU64,
    read_only: bool,
    tuning: Tuning,
    callers: Callers,
    /// The session's channel for notifications to the kernel, set once the
    /// session exists (it is made from this filesystem, so later).
    notifier: Arc<OnceLock<fuser::Notifier>>,
}

/// Kernel caching choices, from mount options.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    /// FUSE writeback cache: the kernel gathers small writes into large ones
    /// and answers appends and size itself. On by default: measured faster
    /// for random 4 KiB writes (benches/RESULTS.md), and pjdfstest and fsx
    /// pass with it.
    pub writeback_cache: bool,
    /// Keep a file's cached pages across opens (FOPEN_KEEP_CACHE); the
    /// kernel still drops them when it sees the mtime change.
    pub keep_cache: bool,
    /// How long the kernel may trust names and attributes.
    pub attr_ttl: Duration,
    /// Whether a user's reads of a file may move its access time. FUSE
    /// leaves atime to the filesystem (the kernel marks its inodes
    /// S_NOATIME), so it is the backing file's, moved by the daemon's reads
    /// under the backing filesystem's rules: kept (`O_NOATIME`) on a
    /// `noatime` or read-only mount.
    pub file_atime: Atime,
    /// The same for listing a directory (also kept under `nodiratime`).
    pub dir_atime: Atime,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            writeback_cache: true,
            keep_cache: true,
            attr_ttl: TTL,
            file_atime: Atime::Updated,
            dir_atime: Atime::Updated,
        }
    }
}

impl KmsFs {
    pub(crate) fn new(
        backing: PathBuf,
        volume: Arc<Volume>,
        read_only: bool,
        tuning: Tuning,
    ) -> io::Result<KmsFs> {
        // A version 2 volume unwraps its name key here, so that a refusal
        // fails the mount instead of every lookup.
        volume
            .names()
            .map_err(|e| io::Error::other(format!("cannot read the volume's names: {e}")))?;
        let tree_root = volume.config.open_tree(&backing)?;
        let tree_path = volume.config.tree_path(&backing);
        Ok(KmsFs {
            tree: Tree::open(tree_root, &tree_path)?,
            volume,
            files: OpenFiles::default(),
            dirs: Mutex::new(HashMap::new()),
            next_dir: AtomicU64::new(1),
            read_only,
            tuning,
            callers: Callers::default(),
            notifier: Arc::default(),
        })
    }

    /// The names the kernel knows `ino` by, as it knows them: (parent,
    /// plaintext name) of every link it looked up. Links whose directory or
    /// name cannot be read any more are left out.
    fn kernel_names(&self, ino: u64) -> Vec<(u64, OsString)> {
        let Ok(names) = self.names() else {
            return Vec::new();
        };
        let links = self.tree.inodes.links(ino).unwrap_or_default();
        links
            .into_iter()
            .filter_map(|(parent, stored)| {
                let dir = self.tree.dir(parent).ok()?;
                let id = dir.id(names).ok()?;
                Some((parent, names.decode(&dir, id.as_ref(), &stored)?))
            })
            .collect()
    }

    /// Where the session's notifier goes once the session is made.
    pub(crate) fn notifier_slot(&self) -> Arc<OnceLock<fuser::Notifier>> {
        self.notifier.clone()
    }

    /// After a failed write: the kernel must not keep believing what it
    /// cached for `ino`. With the writeback cache it extended the size when
    /// the data went into its page cache, before we refused to store it;
    /// dropping its attributes makes it ask for them again. In that mode,
    /// though, the kernel never takes a regular file's size from us for an
    /// inode it has cached, so its names are invalidated too: once the
    /// last descriptor is closed the kernel drops the inode (and its
    /// pages), and the next lookup shows the size that is stored.
    ///
    /// Sent from another thread, after this request's reply: a
    /// notification about an inode the kernel is busy with in this very
    /// request may wait on a lock that request holds (a write holds the
    /// file's inode lock; dropping a name takes the directory's, which an
    /// unlink may hold while it waits for the file's). The returned
    /// receiver hears when the kernel has taken the notifications.
    fn invalidate_attrs(&self, ino: u64) -> Option<mpsc::Receiver<()>> {
        let notifier = self.notifier.get().cloned()?;
        let links = self.kernel_names(ino);
        let (done, heard) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("kmsfs-inval".into())
            .spawn(move || {
                // Offset -1: attributes only, no cached pages (dropping
                // dirty pages would write them back, and fail, again).
                if let Err(e) = notifier.inval_inode(INodeNo(ino), -1, 0) {
                    tracing::debug!(ino, error = %e, "cannot invalidate the kernel's attributes");
                }
                for (parent, name) in links {
                    if let Err(e) = notifier.inval_entry(INodeNo(parent), &name) {
                        tracing::debug!(ino, error = %e, "cannot invalidate the kernel's entry");
                    }
                }
                let _ = done.send(());
            });
        match spawned {
            Ok(_) => Some(heard),
            Err(e) => {
                tracing::debug!(error = %e, "cannot start the invalidation thread");
                None
            }
        }
    }

    /// After a change that can alter an inode's mode (a POSIX ACL: the
    /// backing filesystem rewrites the mode bits from it), the kernel's
    /// cached attributes are dropped *before* the reply, so no permission
    /// check after the call returns uses the old mode (the kernel's own
    /// setxattr path refreshes only ctime). Attributes only (offset -1):
    /// the kernel takes no inode lock for that, so it is safe from inside
    /// the request.
    fn invalidate_attrs_now(&self, ino: INodeNo) {
        if let Some(notifier) = self.notifier.get()
            && let Err(e) = notifier.inval_inode(ino, -1, 0)
        {
            tracing::debug!(ino = ino.0, error = %e, "cannot invalidate the kernel's attributes");
        }
    }

    fn open_flags(&self) -> FopenFlags {
        if self.tuning.keep_cache {
            FopenFlags::FOPEN_KEEP_CACHE
        } else {
            FopenFlags::empty()
        }
    }

    /// How this volume stores names (unwrapped when the mount started).
    fn names(&self) -> Result<&VolumeNames, Errno> {
        self.volume.names().map_err(|_| Errno::EIO)
    }

    /// The directory `parent` and the stored form of its entry `name`, for
    /// an operation that may create, change or remove that entry.
    fn parent_entry(
        &self,
        parent: INodeNo,
        name: &OsStr,
    ) -> Result<(Arc<CachedDir>, EntryName), Errno> {
        let names = self.names()?;
        if is_reserved(names, parent.0, name) {
            return Err(Errno::EPERM);
        }
        self.entry_in(parent, name)
    }

    /// The directory `parent` and the stored form of its entry `name`.
    fn entry_in(
        &self,
        parent: INodeNo,
        name: &OsStr,
    ) -> Result<(Arc<CachedDir>, EntryName), Errno> {
        let names = self.names()?;
        let dir = self.tree.dir(parent.0)?;
        let id = dir.id(names)?;
        let entry = names.encode(id.as_ref(), name).map_err(|e| errno(&e))?;
        Ok((dir, entry))
    }

    /// Attributes of a backing inode as the mount shows them. `node`, when
    /// given, lets a symlink of a version 2 volume report the length of its
    /// decrypted target, as lstat must.
    fn attr(&self, m: &Metadata, node: Option<&Node>) -> FileAttr {
        let kind = kind_of(m.file_type());
        let size = match kind {
            FileType::RegularFile => self.volume.display_size(m.size()),
            // Version 1 stores the target as it is: its length is the size.
            FileType::Symlink if self.names().is_ok_and(VolumeNames::is_encrypted) => node
                .and_then(|n| self.link_target(n).ok())
                .map_or(m.size(), |t| t.len() as u64),
            _ => m.size(),
        };
        FileAttr {
            ino: INodeNo(self.tree.inodes.fuse_ino(m.ino())),
            size,
            blocks: m.blocks(),
            atime: time(m.atime(), m.atime_nsec()),
            mtime: time(m.mtime(), m.mtime_nsec()),
            ctime: time(m.ctime(), m.ctime_nsec()),
            crtime: UNIX_EPOCH,
            kind,
            perm: (m.mode() & 0o7777) as u16,
            nlink: m.nlink() as u32,
            uid: m.uid(),
            gid: m.gid(),
            rdev: m.rdev() as u32,
            blksize: 4096,
            flags: 0,
        }
    }

    /// The target a symlink's user gave.
    fn link_target(&self, node: &Node) -> Result<OsString, Errno> {
        let stored = node.read_link().map_err(|e| errno(&e))?;
        self.names()?.decode_link(&stored).map_err(|e| errno(&e))
    }

    /// Current attributes of FUSE inode `ino`.
    fn stat(&self, ino: INodeNo) -> Result<FileAttr, Errno> {
        let located = self.tree.locate(ino.0)?;
        located
            .node
            .metadata()
            .map(|m| self.attr(&m, Some(&located.node)))
            .map_err(|e| errno(&e))
    }

    /// Registers the entry `dir/name` (new or looked up) and replies with it.
    fn entry(&self, parent: INodeNo, name: &OsStr, dir: &Dir, reply: ReplyEntry) {
        match dir.open_node(name) {
            Ok(node) => {
                let m = node.opened_metadata();
                let attr = self.attr(m, Some(&node));
                self.tree.remember(attr.ino.0, parent.0, name);
                reply.entry(&self.tuning.attr_ttl, &attr, generation(m));
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// The gid a node created by `req` in `dir` gets: the caller's, except
    /// in a setgid directory, where the backing filesystem has already
    /// given it the directory's group.
    fn caller_gid(&self, req: &Request, dir: &Dir) -> Option<u32> {
        let setgid_parent = dir
            .metadata()
            .map(|m| m.mode() & libc::S_ISGID != 0)
            .unwrap_or(false);
        (!setgid_parent).then_some(req.gid())
    }

    fn created_by_daemon(req: &Request) -> bool {
        req.uid() == nix::unistd::geteuid().as_raw() && req.gid() == nix::unistd::getegid().as_raw()
    }

    /// New nodes belong to the caller, as on a local filesystem (the daemon
    /// creates them as its own user). The node is re-opened by name, so it
    /// must still be what we just made: of that kind, ours, and with no
    /// other name (a hard link planted in the meantime would hand the
    /// caller someone else's file).
    fn give_to_caller(
        &self,
        req: &Request,
        dir: &Dir,
        name: &OsStr,
        kind: FileType,
        mode: u32,
    ) -> Result<(), Errno> {
        let lost = lost_to_umask_in(dir, mode);
        let by_daemon = Self::created_by_daemon(req);
        if by_daemon && (lost == 0 || kind == FileType::Symlink) {
            return Ok(());
        }
        let node = dir.open_node(name).map_err(|e| errno(&e))?;
        let m = node.opened_metadata();
        let ours = kind_of(m.file_type()) == kind
            && m.uid() == nix::unistd::geteuid().as_raw()
            && (kind == FileType::Directory || m.nlink() == 1);
        if !ours {
            return Err(Errno::ESTALE);
        }
        if lost != 0 && kind != FileType::Symlink {
            // What the kernel made (a directory may have inherited setgid)
            // plus what our umask took.
            node.chmod((m.mode() & 0o7777) | lost)
                .map_err(|e| errno(&e))?;
        }
        if by_daemon {
            return Ok(());
        }
        node.chown(Some(req.uid()), self.caller_gid(req, dir))
            .map_err(|e| errno(&e))
    }

    /// Logs a refused or failed file operation with the backing path it
    /// concerns (`what`, from `Tree::describe`).
    fn log_file_error(&self, op: &str, what: &str, e: &FileError) {
        let path = what;
        match e {
            // Out of space and other errors of the backing filesystem: the
            // file is not damaged.
            FileError::Io(_) | FileError::Content(ContentError::Io(_)) => {
                tracing::warn!(op, path, error = %e, "I/O error")
            }
            FileError::Denied(_) => {
                tracing::warn!(op, path, error = %e, "access denied by the key service")
            }
            _ => {
                tracing::error!(op, path, error = %e, "damaged file: refusing to return wrong data")
            }
        }
    }

    /// unlink and rmdir: remove `parent/name` and forget that link.
    fn remove_entry(
        &self,
        parent: INodeNo,
        name: &OsStr,
        remove: impl FnOnce(&VolumeNames, &Dir, &EntryName) -> io::Result<()>,
    ) -> Result<(), Errno> {
        let (dir, entry) = self.parent_entry(parent, name)?;
        let stored = entry.as_os_str();
        let node = dir.open_node(stored).map_err(|e| errno(&e))?;
        let ino = node.opened_metadata().ino();
        // A directory is kept by descriptor past its removal (see
        // `Tree::keep_removed_dir`); checked to be the inode just seen.
        let kept = if node.opened_metadata().is_dir() {
            dir.open_dir(stored).ok().filter(|d| {
                d.metadata()
                    .is_ok_and(|m| kmsfs_volume::backing::same_inode(&m, node.opened_metadata()))
            })
        } else {
            None
        };
        remove(self.names()?, &dir, &entry).map_err(|e| errno(&e))?;
        let ino = self.tree.inodes.fuse_ino(ino);
        self.tree.inodes.unlink(ino, parent.0, stored);
        self.tree.drop_dir(ino);
        if let Some(kept) = kept {
            self.tree.keep_removed_dir(ino, kept);
        }
        Ok(())
    }

    /// Gets `dir` ready for `entry` to be linked in (a long name's side file).
    fn prepare(&self, dir: &Dir, entry: &EntryName) -> Result<(), Errno> {
        self.names()?.prepare(dir, entry).map_err(|e| errno(&e))
    }

    /// Undoes [`Self::prepare`] when the entry could not be linked in (or
    /// was removed again): a long name's side file must not outlive its
    /// entry. An entry that does exist (the operation failed with EEXIST,
    /// say) keeps its side file. The kernel holds `dir` locked for every
    /// operation that links or unlinks a name in it, so no other request
    /// can have prepared the same name meanwhile.
    fn unprepare(&self, dir: &Dir, entry: &EntryName) {
        if !entry.is_long() {
            return;
        }
        let gone = matches!(
            dir.open_node(entry.as_os_str()),
            Err(e) if e.kind() == io::ErrorKind::NotFound
        );
        if gone && let Ok(names) = self.names() {
            names.forget(dir, entry);
        }
    }

    /// Creates a new regular file with its header: a data key from the key
    /// service as the caller, owned by the caller. If the policy, the key's
    /// state or anything else refuses, nothing stays behind.
    fn create_regular(
        &self,
        req: &Request,
        op: &str,
        (parent, dir): (INodeNo, &Dir),
        entry: &EntryName,
        mode: u32,
    ) -> Result<(File, FileKey), Errno> {
        let name = entry.as_os_str();
        self.prepare(dir, entry)?;
        let file = dir.create_file(name, mode).map_err(|e| {
            self.unprepare(dir, entry);
            errno(&e)
        })?;
        let fail = |e: Errno| {
            let _ = dir.unlink(name);
            self.unprepare(dir, entry);
            e
        };
        let key = match self.volume.create_key(&self.callers.of(req), &file) {
            Ok(k) => k,
            Err(e) => {
                self.log_file_error(op, &self.tree.describe(parent.0, Some(name)), &e);
                return Err(fail(Errno::from_i32(e.errno())));
            }
        };
        // The descriptor is the file we created: chmod and chown it, not a
        // name.
        if lost_to_umask_in(dir, mode) != 0 {
            nix::sys::stat::fchmod(file.as_fd(), Mode::from_bits_truncate(mode & 0o7777))
                .map_err(|e| fail(nix_errno(e)))?;
        }
        if !Self::created_by_daemon(req) {
            nix::unistd::fchown(
                file.as_fd(),
                Some(Uid::from_raw(req.uid())),
                self.caller_gid(req, dir).map(Gid::from_raw),
            )
            .map_err(|e| fail(nix_errno(e)))?;
        }
        Ok((file, key))
    }

    /// Opens a handle on a regular file for `caller`. The key service is asked
    /// on every open, so the key policy and the key's state are checked for
    /// each process, not just the first.
    fn open_file(&self, caller: &Caller, ino: u64) -> Result<(u64, Arc<OpenFile>), Errno> {
        self.open_file_atime(caller, ino)
            .map(|(fh, of, _)| (fh, of))
    }

    /// [`Self::open_file`], also returning the backing file's access time
    /// from before the header was read (which may move it).
    fn open_file_atime(
        &self,
        caller: &Caller,
        ino: u64,
    ) -> Result<(u64, Arc<OpenFile>, Option<Timestamp>), Errno> {
        let fail = |e: FileError| {
            self.log_file_error("open", &self.tree.describe(ino, None), &e);
            Errno::from_i32(e.errno())
        };
        let mut atime_before = None;
        if let Some(of) = self.files.get_ino(ino) {
            atime_before = of.file.metadata().ok().map(|m| atime_of(&m));
            // Already open: authorize this caller against the same header.
            let header = self.volume.read_header(&of.file).map_err(fail)?;
            if let Some(header) = header {
                self.volume.unwrap_key(caller, header).map_err(fail)?;
            }
        }
        let mut refusal = None;
        let mut unreachable = None;
        let opened = self.files.open(ino, || {
            let file = self
                .tree
                .open_file(ino, !self.read_only, self.tuning.file_atime)
                .map_err(|e| {
                    unreachable = Some(e);
                    io::Error::from_raw_os_error(libc::ESTALE)
                })?;
            atime_before = file.metadata().ok().map(|m| atime_of(&m));
            // A file without a header gets its key now, as this caller, for
            // any kind of open on a writable mount: otherwise a handle
            // opened before a key existed would later read what key users
            // write through theirs, never having been authorized for it.
            match self.volume.open_key(caller, &file, !self.read_only) {
                Ok(key) => Ok((file, key)),
                Err(e) => {
                    let code = e.errno();
                    refusal = Some(e);
                    Err(io::Error::from_raw_os_error(code))
                }
            }
        });
        match opened {
            Ok((fh, of)) => {
                self.note_kernel_mtime(&of);
                Ok((fh, of, atime_before))
            }
            Err(e) => match (refusal, unreachable) {
                (Some(fe), _) => Err(fail(fe)),
                (None, Some(code)) => Err(code),
                (None, None) => Err(errno(&e)),
            },
        }
    }

    /// Checks with the key service that `caller` may use the data key of the
    /// open file `of` (a Decrypt of its wrapped key, as `open` does): the
    /// key policy and the key's state decide, and the key service audits it.
    fn authorize(&self, caller: &Caller, of: &OpenFile, op: &str) -> Result<(), Errno> {
        let header = match of.key.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(key) => key.header.clone(),
            // No key: nothing is stored that a key would protect.
            None => return Ok(()),
        };
        self.volume
            .unwrap_key(caller, header)
            .map(drop)
            .map_err(|e| {
                self.log_file_error(op, &self.tree.describe(of.ino, None), &e);
                Errno::from_i32(e.errno())
            })
    }

    /// Truncates a file that is not open to `size` plaintext bytes (opening
    /// it as `caller` for the duration).
    fn truncate(&self, caller: &Caller, ino: u64, size: u64) -> Result<(), Errno> {
        let (fh, of) = self.open_file(caller, ino)?;
        let result = self.truncate_open(caller, &of, size);
        self.files.release(fh);
        result
    }

    /// Truncates an open file to `size` plaintext bytes.
    fn truncate_open(&self, caller: &Caller, of: &OpenFile, size: u64) -> Result<(), Errno> {
        let fail = |e: FileError| {
            self.log_file_error("truncate", &self.tree.describe(of.ino, None), &e);
            Errno::from_i32(e.errno())
        };
        let mut key = of.key.write().unwrap_or_else(|p| p.into_inner());
        if size == 0 && key.is_none() {
            // A file without a header is emptied without a key.
            return of.file.set_len(0).map_err(|e| errno(&e));
        }
        if key.is_none() {
            *key = Some(self.volume.create_key(caller, &of.file).map_err(fail)?);
        }
        let k = key.as_ref().ok_or(Errno::EIO)?;
        self.volume
            .content(k)
            .truncate(&of.file, size)
            .map_err(|e| fail(FileError::Content(e)))
    }

    /// A new entry of the open-file table starts from the backing mtime,
    /// which is what the kernel was shown (see `KernelMtime`).
    fn note_kernel_mtime(&self, of: &OpenFile) {
        if !self.tuning.writeback_cache {
            return;
        }
        let mut m = of.mtime.lock().unwrap_or_else(|p| p.into_inner());
        if m.shown.is_none() {
            m.shown = of.file.metadata().ok().map(|m| (m.mtime(), m.mtime_nsec()));
        }
    }

    /// After a change of ours to the backing file's content or size: its
    /// mtime no longer is the kernel's.
    fn backing_mtime_moved(&self, of: &OpenFile) {
        if self.tuning.writeback_cache {
            of.mtime.lock().unwrap_or_else(|p| p.into_inner()).moved = true;
        }
    }

    /// The kernel set the file's mtime (a setattr): the backing file has it
    /// now (`m`, its metadata after the change).
    fn kernel_set_mtime(&self, of: &OpenFile, m: &Metadata) {
        if self.tuning.writeback_cache {
            let mut k = of.mtime.lock().unwrap_or_else(|p| p.into_inner());
            k.shown = Some((m.mtime(), m.mtime_nsec()));
            k.moved = false;
        }
    }

    /// Puts the kernel's mtime back on the backing file after our writes
    /// moved it (at flush, fsync and release, not per write). The lock is
    /// held across the futimens, so a write that lands after it marks the
    /// file moved again rather than being forgotten.
    fn restore_kernel_mtime(&self, of: &OpenFile) {
        if !self.tuning.writeback_cache {
            return;
        }
        let mut k = of.mtime.lock().unwrap_or_else(|p| p.into_inner());
        let Some((secs, nsecs)) = k.shown.filter(|_| k.moved) else {
            return;
        };
        match nix::sys::stat::futimens(
            of.file.as_fd(),
            &TimeSpec::UTIME_OMIT,
            &TimeSpec::new(secs, nsecs),
        ) {
            Ok(()) => k.moved = false,
            Err(e) => {
                tracing::debug!(ino = of.ino, error = %e, "cannot restore the kernel's mtime")
            }
        }
    }

    /// Preallocates the backing storage of plaintext `[offset, offset +
    /// length)` of an open file (`fallocate`), the in-file header too when
    /// the file has none yet (`headerless`). Only allocates: the size and
    /// the content are unchanged. Blocks count at their full stored length,
    /// except past `size_after` (the plaintext size the file will have,
    /// when known), where nothing will be stored.
    fn preallocate(
        &self,
        file: &File,
        headerless: bool,
        offset: u64,
        length: u64,
        size_after: Option<u64>,
    ) -> Result<(), FileError> {
        let layout = self.volume.layout;
        if offset.saturating_add(length) > kmsfs_format::content::MAX_PLAIN_SIZE {
            return Err(FileError::Content(ContentError::TooLarge));
        }
        let (mut start, mut end) = layout.stored_range(offset, length);
        if let Some(size) = size_after {
            end = end.min(layout.backing_len(size)).max(start);
        }
        if headerless {
            start = 0;
        }
        file.reserve(start, end - start)?;
        Ok(())
    }

    /// Where the extended attributes of `ino` are reached: an opened
    /// descriptor for regular files and directories, (parent, name) with the
    /// non-following *xattrat calls for everything else.
    fn xattr_target(&self, ino: INodeNo) -> Result<XattrTarget, Errno> {
        let located = self.tree.locate(ino.0)?;
        let kind = located.node.opened_metadata().file_type();
        if kind.is_dir() {
            let dir = self.tree.dir(ino.0)?;
            return dir
                .open_readable()
                .map(XattrTarget::Opened)
                .map_err(|e| errno(&e));
        }
        if kind.is_file() {
            return self
                .tree
                .open_file(ino.0, false, Atime::Kept)
                .map(XattrTarget::Opened);
        }
        let (dir, name) = located.link.ok_or(Errno::ESTALE)?;
        Ok(XattrTarget::Entry(dir, name))
    }

    fn snapshot_dir(&self, ino: INodeNo, dir: &CachedDir) -> Result<DirSnapshot, Errno> {
        let names = self.names()?;
        let id = dir.id(names)?;
        let dot = |name: &str, ino: u64| SnapshotEntry {
            ino,
            kind: FileType::Directory,
            name: name.into(),
            stored: name.into(),
        };
        // `..` is the parent's inode (a directory has one link; the root's
        // parent is outside the mount, so the root answers for it).
        let parent = match ino.0 {
            ROOT => ROOT,
            dir => self.tree.inodes.first_link(dir).map_or(ROOT, |(p, _)| p),
        };
        let mut entries = vec![dot(".", ino.0), dot("..", parent)];
        for entry in dir
            .entries_with(self.tuning.dir_atime)
            .map_err(|e| errno(&e))?
        {
            if is_reserved(names, ino.0, &entry.name) {
                continue;
            }
            // The id file, side files, and names that do not decrypt.
            let Some(name) = names.decode(dir, id.as_ref(), &entry.name) else {
                continue;
            };
            let kind = match entry.kind {
                EntryKind::Unknown => dir
                    .open_node(&entry.name)
                    .map(|n| kind_of(n.opened_metadata().file_type()))
                    .unwrap_or(FileType::RegularFile),
                known => entry_kind(known),
            };
            entries.push(SnapshotEntry {
                ino: self.tree.inodes.fuse_ino(entry.ino),
                kind,
                name,
                stored: entry.name,
            });
        }
        Ok(DirSnapshot { entries })
    }
}

enum XattrTarget {
    Opened(File),
    Entry(Arc<CachedDir>, OsString),
}

fn entry_kind(kind: EntryKind) -> FileType {
    match kind {
        EntryKind::Dir => FileType::Directory,
        EntryKind::Symlink => FileType::Symlink,
        EntryKind::Fifo => FileType::NamedPipe,
        EntryKind::Socket => FileType::Socket,
        EntryKind::CharDevice => FileType::CharDevice,
        EntryKind::BlockDevice => FileType::BlockDevice,
        EntryKind::File | EntryKind::Unknown => FileType::RegularFile,
    }
}

impl fuser::Filesystem for KmsFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let _ = config.set_max_write(MAX_WRITE);
        // readdirplus saves a lookup per entry of `ls -l`; parallel dirops let
        // lookups in one directory run concurrently; auto_inval_data drops
        // cached pages when a file's mtime changes behind the kernel's back.
        if self.tuning.writeback_cache
            && config
                .add_capabilities(fuser::InitFlags::FUSE_WRITEBACK_CACHE)
                .is_err()
        {
            tracing::warn!("kernel lacks the FUSE writeback cache; writing through");
        }
        for cap in [
            fuser::InitFlags::FUSE_DO_READDIRPLUS,
            fuser::InitFlags::FUSE_READDIRPLUS_AUTO,
            fuser::InitFlags::FUSE_PARALLEL_DIROPS,
            fuser::InitFlags::FUSE_AUTO_INVAL_DATA,
            fuser::InitFlags::FUSE_CACHE_SYMLINKS,
            // The caller's umask comes to us unapplied, for
            // `requested_mode` (a default ACL replaces it).
            fuser::InitFlags::FUSE_DONT_MASK,
        ] {
            if config.add_capabilities(cap).is_err() {
                tracing::debug!(?cap, "kernel lacks FUSE capability");
            }
        }
        // Read ahead as far as we write: sequential reads then arrive as
        // large requests, each one pread and a run of block decryptions.
        if config.set_max_readahead(MAX_WRITE).is_err() {
            let _ = config.set_max_readahead(128 * 1024);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.names() {
            Ok(names) if is_reserved(names, parent.0, name) => return reply.error(Errno::ENOENT),
            Ok(_) => {}
            Err(e) => return reply.error(e),
        }
        match self.entry_in(parent, name) {
            Ok((dir, entry)) => self.entry(parent, entry.as_os_str(), &dir, reply),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.tree.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        // Through an open file, stat works even after the last name is gone.
        let open = fh
            .and_then(|fh| self.files.handle(fh.0))
            .or_else(|| self.files.get_ino(ino.0));
        if let Some(of) = open {
            return match of.file.metadata() {
                Ok(m) => reply.attr(&self.tuning.attr_ttl, &self.attr(&m, None)),
                Err(e) => reply.error(errno(&e)),
            };
        }
        match self.stat(ino) {
            Ok(attr) => reply.attr(&self.tuning.attr_ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let result = (|| {
            // An open file is changed through its descriptor: that also works
            // once its last name is gone (ftruncate/fchmod after unlink).
            if let Some(of) = self.files.get_ino(ino.0) {
                if let Some(size) = size {
                    // Another process holding the file open does not make
                    // this caller a key user: it is authorized (and
                    // audited) as an open would be, for any size.
                    let caller = self.callers.of(req);
                    self.authorize(&caller, &of, "truncate")?;
                    let truncated = self.truncate_open(&caller, &of, size);
                    self.backing_mtime_moved(&of);
                    truncated?;
                }
                let fd = of.file.as_fd();
                if uid.is_some() || gid.is_some() {
                    nix::unistd::fchown(fd, uid.map(Uid::from_raw), gid.map(Gid::from_raw))
                        .map_err(nix_errno)?;
                }
                if let Some(mode) = mode {
                    nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(mode & 0o7777))
                        .map_err(nix_errno)?;
                }
                if atime.is_some() || mtime.is_some() {
                    nix::sys::stat::futimens(fd, &timespec(atime), &timespec(mtime))
                        .map_err(nix_errno)?;
                }
                let m = of.file.metadata().map_err(|e| errno(&e))?;
                if mtime.is_some() {
                    self.kernel_set_mtime(&of, &m);
                }
                return Ok(self.attr(&m, None));
            }
            if let Some(size) = size {
                self.truncate(&self.callers.of(req), ino.0, size)?;
            }
            // Everything else acts on the inode itself (an O_PATH descriptor
            // checked to be `ino`), never on what a name points to.
            let node = self.tree.locate(ino.0)?.node;
            if uid.is_some() || gid.is_some() {
                node.chown(uid, gid).map_err(|e| errno(&e))?;
            }
            if let Some(mode) = mode {
                node.chmod(mode & 0o7777).map_err(|e| errno(&e))?;
            }
            if atime.is_some() || mtime.is_some() {
                node.set_times(timespec(atime), timespec(mtime))
                    .map_err(|e| errno(&e))?;
            }
            node.metadata()
                .map(|m| self.attr(&m, Some(&node)))
                .map_err(|e| errno(&e))
        })();
        match result {
            Ok(attr) => reply.attr(&self.tuning.attr_ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self
            .tree
            .locate(ino.0)
            .and_then(|l| self.link_target(&l.node))
        {
            Ok(target) => reply.data(target.as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let result = (|| {
            let (dir, entry) = self.parent_entry(parent, name)?;
            let stored = entry.as_os_str();
            let kind = SFlag::from_bits_truncate(mode & libc::S_IFMT);
            let perm = requested_mode(&dir, mode, umask);
            if kind == SFlag::S_IFREG || kind.is_empty() {
                self.create_regular(req, "mknod", (parent, &dir), &entry, perm)?;
            } else {
                self.prepare(&dir, &entry)?;
                dir.mknod(stored, kind, perm, u64::from(rdev))
                    .map_err(|e| {
                        self.unprepare(&dir, &entry);
                        errno(&e)
                    })?;
                let made = kind_of_mode(kind);
                if let Err(e) = self.give_to_caller(req, &dir, stored, made, perm) {
                    let _ = dir.unlink(stored);
                    self.unprepare(&dir, &entry);
                    return Err(e);
                }
            }
            Ok((dir, entry))
        })();
        match result {
            Ok((dir, entry)) => self.entry(parent, entry.as_os_str(), &dir, reply),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let result = (|| {
            let (dir, entry) = self.parent_entry(parent, name)?;
            let stored = entry.as_os_str();
            let names = self.names()?;
            self.prepare(&dir, &entry)?;
            let perm = requested_mode(&dir, mode, umask);
            dir.mkdir(stored, perm).map_err(|e| {
                self.unprepare(&dir, &entry);
                errno(&e)
            })?;
            let made = dir
                .open_dir(stored)
                .and_then(|new| {
                    names.init_dir(&new)?;
                    // On the directory we opened (never by name); what the
                    // kernel made, which may have inherited setgid, plus
                    // what our umask took.
                    let lost = lost_to_umask_in(&dir, perm);
                    if lost != 0 {
                        let node = new.as_node()?;
                        let now = node.opened_metadata().mode() & 0o7777;
                        node.chmod(now | lost)?;
                    }
                    Ok(())
                })
                .map_err(|e| errno(&e))
                .and_then(|()| self.give_to_caller(req, &dir, stored, FileType::Directory, 0));
            if let Err(e) = made {
                let _ = names.remove_dir(&dir, &entry);
                return Err(e);
            }
            Ok((dir, entry))
        })();
        match result {
            Ok((dir, entry)) => self.entry(parent, entry.as_os_str(), &dir, reply),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let unlink = |names: &VolumeNames, dir: &Dir, entry: &EntryName| {
            dir.unlink(entry.as_os_str())?;
            names.forget(dir, entry);
            Ok(())
        };
        match self.remove_entry(parent, name, unlink) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let rmdir =
            |names: &VolumeNames, dir: &Dir, entry: &EntryName| names.remove_dir(dir, entry);
        match self.remove_entry(parent, name, rmdir) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let result = (|| {
            let (dir, entry) = self.parent_entry(parent, link_name)?;
            let stored = entry.as_os_str();
            let target = self
                .names()?
                .encode_link(target.as_os_str())
                .map_err(|e| errno(&e))?;
            self.prepare(&dir, &entry)?;
            dir.symlink(&target, stored).map_err(|e| {
                self.unprepare(&dir, &entry);
                errno(&e)
            })?;
            if let Err(e) = self.give_to_caller(req, &dir, stored, FileType::Symlink, 0) {
                let _ = dir.unlink(stored);
                self.unprepare(&dir, &entry);
                return Err(e);
            }
            Ok((dir, entry))
        })();
        match result {
            Ok((dir, entry)) => self.entry(parent, entry.as_os_str(), &dir, reply),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let result = (|| {
            let (from, from_entry) = self.parent_entry(parent, name)?;
            let (to, to_entry) = self.parent_entry(newparent, newname)?;
            let (name, newname) = (from_entry.as_os_str(), to_entry.as_os_str());
            let ino_of = |dir: &Dir, name: &OsStr| {
                dir.open_node(name)
                    .map(|n| self.tree.inodes.fuse_ino(n.opened_metadata().ino()))
            };
            let moved = ino_of(&from, name).map_err(|e| errno(&e))?;
            let replaced = ino_of(&to, newname).ok();
            let is_dir = |dir: &Dir, name: &OsStr| {
                dir.open_node(name)
                    .is_ok_and(|n| n.opened_metadata().is_dir())
            };
            let same_entry = parent == newparent && name == newname;
            // A directory may replace an empty one. With encrypted names
            // an empty directory still holds its id file, and the backing
            // rename would refuse with ENOTEMPTY (generic/023, 078): the
            // target goes first, as rmdir would remove it (ENOTEMPTY if it
            // holds anything else). The kernel holds both parents locked
            // for the rename, so no request can make a new target meanwhile;
            // it has also refused the cases the backing rename would (a
            // directory into itself), short of an I/O error.
            let replaces = replaced.is_some()
                && replaced != Some(moved)
                && !same_entry
                && !flags.contains(RenameFlags::RENAME_EXCHANGE)
                && !flags.contains(RenameFlags::RENAME_NOREPLACE);
            // A directory the rename replaces is kept by descriptor, as
            // rmdir keeps one (`Tree::keep_removed_dir`): a process holding
            // it open can still fstat it (generic/035).
            let replaced_dir = if replaces {
                to.open_dir(newname).ok().filter(|d| {
                    d.metadata()
                        .is_ok_and(|m| Some(self.tree.inodes.fuse_ino(m.ino())) == replaced)
                })
            } else {
                None
            };
            if replaces
                && self.names()?.is_encrypted()
                && is_dir(&from, name)
                && is_dir(&to, newname)
            {
                self.names()?
                    .remove_dir(&to, &to_entry)
                    .map_err(|e| errno(&e))?;
            }
            let mut f = nix::fcntl::RenameFlags::empty();
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                f |= nix::fcntl::RenameFlags::RENAME_NOREPLACE;
            }
            if flags.contains(RenameFlags::RENAME_EXCHANGE) {
                f |= nix::fcntl::RenameFlags::RENAME_EXCHANGE;
            }
            // A whiteout (overlayfs's mark of a deleted lower entry) is a
            // 0:0 character device the backing filesystem leaves at the old
            // stored name: the name stays, so does its long-name side file.
            let whiteout = flags.contains(RenameFlags::RENAME_WHITEOUT);
            if whiteout {
                f |= nix::fcntl::RenameFlags::RENAME_WHITEOUT;
            }
            self.prepare(&to, &to_entry)?;
            from.rename(name, &to, newname, f).map_err(|e| {
                self.unprepare(&to, &to_entry);
                errno(&e)
            })?;
            if !flags.contains(RenameFlags::RENAME_EXCHANGE) && !same_entry && !whiteout {
                self.names()?.forget(&from, &from_entry);
            }
            if let Some(other) = replaced {
                if flags.contains(RenameFlags::RENAME_EXCHANGE) {
                    self.tree
                        .inodes
                        .rename(other, (newparent.0, newname), (parent.0, name));
                } else if other != moved {
                    self.tree.inodes.unlink(other, newparent.0, newname);
                    self.tree.drop_dir(other);
                    if let Some(kept) = replaced_dir {
                        self.tree.keep_removed_dir(other, kept);
                    }
                }
            }
            self.tree
                .inodes
                .rename(moved, (parent.0, name), (newparent.0, newname));
            Ok(())
        })();
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let result = (|| {
            let located = self.tree.locate(ino.0)?;
            let (from, name) = located.link.ok_or(Errno::EPERM)?;
            let (to, to_entry) = self.parent_entry(newparent, newname)?;
            let newname = to_entry.as_os_str();
            self.prepare(&to, &to_entry)?;
            from.link(&name, &to, newname).map_err(|e| {
                self.unprepare(&to, &to_entry);
                errno(&e)
            })?;
            // The name may have been swapped between locate and linkat: the
            // new link must be the inode the kernel asked for.
            let linked = to.open_node(newname).map_err(|e| errno(&e))?;
            if !kmsfs_volume::backing::same_inode(
                linked.opened_metadata(),
                located.node.opened_metadata(),
            ) {
                let _ = to.unlink(newname);
                self.unprepare(&to, &to_entry);
                return Err(Errno::ESTALE);
            }
            Ok((to, to_entry))
        })();
        match result {
            Ok((dir, entry)) => self.entry(newparent, entry.as_os_str(), &dir, reply),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.open_file_atime(&self.callers.of(req), ino.0) {
            Ok((fh, of, before)) => {
                // Reading the header may have moved the access time (the
                // backing filesystem's rules, e.g. relatime after a change),
                // and the reads that follow may be served from the page
                // cache without reaching us: the kernel must not keep the
                // old atime it has cached from the lookup before this open.
                let after = of.file.metadata().ok().map(|m| atime_of(&m));
                if before.is_some() && after != before {
                    self.invalidate_attrs_now(ino);
                }
                reply.opened(FileHandle(fh), self.open_flags())
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(of) = self.files.handle(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let key = of.key.read().unwrap_or_else(|p| p.into_inner());
        let Some(key) = key.as_ref() else {
            // No header: the file is empty.
            return reply.data(&[]);
        };
        match self
            .volume
            .content(key)
            .read(&of.file, offset, size as usize)
        {
            Ok(data) => reply.data(&data),
            Err(e) => {
                let e = FileError::Content(e);
                self.log_file_error("read", &self.tree.describe(ino.0, None), &e);
                reply.error(Errno::from_i32(e.errno()));
            }
        }
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let Some(of) = self.files.handle(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let mut key = of.key.write().unwrap_or_else(|p| p.into_inner());
        let result = (|| {
            if key.is_none() {
                *key = Some(self.volume.create_key(&self.callers.of(req), &of.file)?);
            }
            let k = key
                .as_ref()
                .ok_or(FileError::Io(io::Error::from_raw_os_error(libc::EIO)))?;
            let written = self.volume.content(k).write(&of.file, offset, data);
            self.backing_mtime_moved(&of);
            written?;
            Ok::<_, FileError>(())
        })();
        match result {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => {
                self.log_file_error("write", &self.tree.describe(ino.0, None), &e);
                reply.error(Errno::from_i32(e.errno()));
                of.write_failed.store(true, Ordering::Release);
                self.invalidate_attrs(ino.0);
            }
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) waits for this (and the kernel has written back the
        // file's dirty pages and its times just before): the last moment
        // at which a stat after close can still be made to agree with
        // what is stored.
        if let Some(of) = self.files.handle(fh.0) {
            self.restore_kernel_mtime(&of);
            // The invalidation sent when a write failed may not have
            // reached the kernel yet: if it arrives after close returns, a
            // reader in between is shown pages that were never stored.
            // Send it again and wait for the kernel to take it (bounded,
            // in case something holds the directory lock it needs; then
            // the window is only narrowed). The flush of close(2) holds no
            // inode lock, so the wait is normally short.
            if of.write_failed.swap(false, Ordering::AcqRel)
                && let Some(heard) = self.invalidate_attrs(of.ino)
            {
                let _ = heard.recv_timeout(Duration::from_secs(2));
            }
        }
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Pages of a shared mapping may be written back after the flush.
        if let Some(of) = self.files.release(fh.0) {
            self.restore_kernel_mtime(&of);
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let Some(of) = self.files.handle(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        self.restore_kernel_mtime(&of);
        let r = if datasync {
            of.file.sync_data()
        } else {
            of.file.sync_all()
        };
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let result = self
            .tree
            .dir(ino.0)
            .and_then(|dir| self.snapshot_dir(ino, &dir));
        match result {
            Ok(snapshot) => {
                let fh = self.next_dir.fetch_add(1, Ordering::Relaxed);
                self.dirs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(fh, Arc::new(snapshot));
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let dirs = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
        let Some(snapshot) = dirs.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        for (i, e) in snapshot.entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(e.ino), (i + 1) as u64, e.kind, &e.name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: fuser::ReplyDirectoryPlus,
    ) {
        let dir = match self.tree.dir(ino.0) {
            Ok(dir) => dir,
            Err(e) => return reply.error(e),
        };
        let snapshot = self
            .dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh.0)
            .cloned();
        let Some(snapshot) = snapshot else {
            return reply.error(Errno::EBADF);
        };
        for (i, e) in snapshot.entries.iter().enumerate().skip(offset as usize) {
            let dots = e.name == "." || e.name == "..";
            let node = if dots {
                dir.as_node()
            } else {
                dir.open_node(&e.stored)
            };
            // Gone since the snapshot: leave it out, as a fresh readdir would.
            let Ok(node) = node else {
                continue;
            };
            let m = node.opened_metadata();
            let mut attr = self.attr(m, Some(&node));
            // The kernel ignores the attributes of the dot entries but lists
            // their inode number (fuser takes it from the attributes): `..`
            // must be the parent's, as in the snapshot, not the directory's
            // own (generic/257).
            if dots {
                attr.ino = INodeNo(e.ino);
            }
            if reply.add(
                attr.ino,
                (i + 1) as u64,
                &e.name,
                &self.tuning.attr_ttl,
                &attr,
                generation(m),
            ) {
                break;
            }
            // Each entry handed to the kernel counts as a lookup (except the
            // dot entries, which the kernel ignores).
            if !dots {
                self.tree.remember(attr.ino.0, ino.0, &e.stored);
            }
        }
        reply.ok();
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        // No ioctls (FS_IOC_GETFLAGS and friends, which tar and cp probe on
        // every file): answer as a filesystem without them does, quietly.
        reply.error(Errno::ENOTTY);
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self
            .tree
            .dir(ino.0)
            .and_then(|dir| dir.sync().map_err(|e| errno(&e)))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.tree.root().statvfs() {
            Ok(s) => reply.statfs(
                s.blocks(),
                s.blocks_free(),
                s.blocks_available(),
                s.files(),
                s.files_free(),
                s.block_size() as u32,
                s.name_max() as u32,
                s.fragment_size() as u32,
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let result = (|| {
            let names = self.names()?;
            if is_reserved_xattr(names, name) {
                return Err(Errno::EPERM);
            }
            let stored = names.encode_xattr_name(name).map_err(|e| errno(&e))?;
            let value = names.encode_xattr_value(&stored, value);
            match self.xattr_target(ino)? {
                XattrTarget::Opened(file) => stored
                    .to_str()
                    .ok_or(io::Error::from_raw_os_error(libc::EINVAL))
                    .and_then(|name| kmsfs_sys::fsetxattr(file.as_fd(), name, &value, flags)),
                XattrTarget::Entry(dir, entry) => dir.set_xattr_of(&entry, &stored, &value, flags),
            }
            .map_err(|e| errno(&e))
        })();
        if result.is_ok() && changes_mode(name) {
            self.invalidate_attrs_now(ino);
        }
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let no_data = Errno::from_i32(libc::ENODATA);
        let names = match self.names() {
            Ok(names) => names,
            Err(e) => return reply.error(e),
        };
        if is_reserved_xattr(names, name) {
            return reply.error(no_data);
        }
        // A name that cannot be stored cannot be there.
        let Ok(stored) = names.encode_xattr_name(name) else {
            return reply.error(no_data);
        };
        let Some(name_str) = stored.to_str() else {
            return reply.error(no_data);
        };
        // The kernel asks for security.capability before every write to an
        // open file: answer through its descriptor instead of a lookup.
        let value = match self.files.get_ino(ino.0) {
            Some(of) => kmsfs_sys::fgetxattr(of.file.as_fd(), name_str).map_err(|e| errno(&e)),
            None => self.xattr_target(ino).and_then(|target| {
                match target {
                    XattrTarget::Opened(file) => kmsfs_sys::fgetxattr(file.as_fd(), name_str),
                    XattrTarget::Entry(dir, entry) => dir.get_xattr_of(&entry, &stored),
                }
                .map_err(|e| errno(&e))
            }),
        }
        .and_then(|v| names.decode_xattr_value(&stored, &v).map_err(|e| errno(&e)));
        match value {
            Ok(value) => xattr_reply(reply, &value, size),
            Err(e) => reply.error(e),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let list = self.xattr_target(ino).and_then(|target| {
            match target {
                XattrTarget::Opened(file) => kmsfs_sys::flistxattr(file.as_fd()),
                XattrTarget::Entry(dir, entry) => dir.list_xattr_of(&entry),
            }
            .map_err(|e| errno(&e))
        });
        let names = match self.names() {
            Ok(names) => names,
            Err(e) => return reply.error(e),
        };
        match list {
            Ok(list) => {
                let mut visible = Vec::with_capacity(list.len());
                for stored in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
                    if stored.starts_with(HEADER_XATTR.as_bytes()) {
                        continue;
                    }
                    if let Some(name) = names.decode_xattr_name(stored) {
                        visible.extend_from_slice(&name);
                        visible.push(0);
                    }
                }
                xattr_reply(reply, &visible, size);
            }
            Err(e) => reply.error(e),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let result = (|| {
            let names = self.names()?;
            if is_reserved_xattr(names, name) {
                return Err(Errno::EPERM);
            }
            let stored = names
                .encode_xattr_name(name)
                .map_err(|_| Errno::from_i32(libc::ENODATA))?;
            match self.xattr_target(ino)? {
                XattrTarget::Opened(file) => kmsfs_sys::fremovexattr(file.as_fd(), &stored),
                XattrTarget::Entry(dir, entry) => dir.remove_xattr_of(&entry, &stored),
            }
            .map_err(|e| errno(&e))
        })();
        if result.is_ok() && changes_mode(name) {
            self.invalidate_attrs_now(ino);
        }
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // Mounted with default_permissions: the kernel has checked the mode
        // bits already; here only existence remains to be confirmed.
        match self.tree.locate(ino.0) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let result = (|| {
            let (dir, entry) = self.parent_entry(parent, name)?;
            let (file, key) = self.create_regular(
                req,
                "create",
                (parent, &dir),
                &entry,
                requested_mode(&dir, mode, umask),
            )?;
            let (attr, generation) = file
                .metadata()
                .map(|m| (self.attr(&m, None), generation(&m)))
                .map_err(|e| errno(&e))?;
            self.tree.remember(attr.ino.0, parent.0, entry.as_os_str());
            let mut key = Some(key);
            // The file was created read-write; a read-only mount has no
            // create, so this descriptor serves every handle.
            if self.tuning.file_atime == Atime::Kept {
                // As `Dir::open_file_with` does for an opened file; a
                // courtesy (the daemon owns the file it just made).
                let _ = nix::fcntl::fcntl(
                    &file,
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NOATIME),
                );
            }
            let (fh, of) = self
                .files
                .open(attr.ino.0, || Ok((file, key.take())))
                .map_err(|e| errno(&e))?;
            self.note_kernel_mtime(&of);
            Ok((attr, generation, fh))
        })();
        match result {
            Ok((attr, generation, fh)) => reply.created(
                &self.tuning.attr_ttl,
                &attr,
                generation,
                FileHandle(fh),
                self.open_flags(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        // Plain and KEEP_SIZE allocation reserve the backing storage the
        // range will take once written (header, every block's nonce and tag)
        // and fail with ENOSPC when it is not there, as on any filesystem;
        // plain allocation then extends the file (its new blocks read as
        // zeros: holes, not encrypted zeros). PUNCH_HOLE (always with
        // KEEP_SIZE) makes the range read as zeros. Collapsing, inserting
        // and zeroing ranges would shift or re-seal many blocks: not
        // supported.
        let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        if mode != 0 && mode != libc::FALLOC_FL_KEEP_SIZE && mode != punch {
            return reply.error(Errno::from_i32(libc::EOPNOTSUPP));
        }
        let Some(of) = self.files.handle(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let end = offset.saturating_add(length);
        let result = (|| {
            let mut key = of.key.write().unwrap_or_else(|p| p.into_inner());
            if mode != punch {
                // Mode 0: the file will end at `end` or beyond, so no more
                // than its stored length past the range's last block.
                let size_after = if mode == 0 {
                    Some(self.volume.display_size(of.file.metadata()?.len()).max(end))
                } else {
                    None
                };
                self.preallocate(&of.file, key.is_none(), offset, length, size_after)?;
            }
            if mode == libc::FALLOC_FL_KEEP_SIZE {
                return Ok(());
            }
            if mode == punch {
                // A file without a header has no content to punch.
                return match key.as_ref() {
                    Some(k) => Ok(self
                        .volume
                        .content(k)
                        .punch_hole(&of.file, offset, length)?),
                    None => Ok(()),
                };
            }
            let size = self.volume.display_size(of.file.metadata()?.len());
            if end <= size {
                return Ok(());
            }
            if key.is_none() {
                *key = Some(self.volume.create_key(&self.callers.of(req), &of.file)?);
            }
            let k = key
                .as_ref()
                .ok_or(FileError::Io(io::Error::from_raw_os_error(libc::EIO)))?;
            self.volume.content(k).truncate(&of.file, end)?;
            Ok::<_, FileError>(())
        })();
        self.backing_mtime_moved(&of);
        match result {
            Ok(()) => reply.ok(),
            Err(e) => {
                self.log_file_error("fallocate", &self.tree.describe(ino.0, None), &e);
                reply.error(Errno::from_i32(e.errno()));
            }
        }
    }
}

fn xattr_reply(reply: ReplyXattr, value: &[u8], size: u32) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}
