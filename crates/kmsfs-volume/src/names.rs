//! What the user's names are called in the backing tree.
//!
//! A version 1 volume stores names as they are. A version 2 volume stores
//! each name encrypted under the volume's name key with the directory's id
//! as associated data (`kmsfs_format::names`): the id lives in the
//! directory's `.kmsfs.dirid` file, so a name's ciphertext depends on the
//! directory it is in but not on that directory's name or path, and
//! renaming a directory is O(1). Names too long to stay a single entry once
//! encrypted become a hashed entry plus a side file holding the full
//! ciphertext. Symlink targets and user xattrs are encrypted too.
//!
//! Everything here goes through `backing` (a directory descriptor and one
//! name): this module decides what the name is, never where it is.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use kmsfs_format::cipher::DataKey;
use kmsfs_format::names::{
    BackingName, DIR_ID_FILE, DirId, EntryClass, NameError, NameKeys, classify, long_entry_matches,
    side_file_of,
};

use crate::backing::Dir;

fn name_error(e: NameError) -> io::Error {
    io::Error::from_raw_os_error(e.errno())
}

fn eio(why: &str) -> io::Error {
    io::Error::other(why.to_string())
}

/// The side file of a long name: the name's full ciphertext.
const SIDE_FILE_MODE: u32 = 0o400;
/// The directory id file: 16 random bytes.
const DIR_ID_MODE: u32 = 0o400;

/// How a volume names its entries.
pub enum VolumeNames {
    /// Version 1: names, symlink targets and xattrs as the user gave them.
    Plain,
    /// Version 2: encrypted under keys derived from the volume's name key.
    Encrypted(Box<NameKeys>),
}

impl std::fmt::Debug for VolumeNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VolumeNames::Plain => "VolumeNames::Plain",
            VolumeNames::Encrypted(_) => "VolumeNames::Encrypted",
        })
    }
}

/// A user's name as it is stored in one directory: the entry, and for a
/// long name the side file that must exist beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryName {
    pub entry: OsString,
    side: Option<(OsString, String)>,
}

impl EntryName {
    pub fn as_os_str(&self) -> &OsStr {
        &self.entry
    }

    pub fn is_long(&self) -> bool {
        self.side.is_some()
    }
}

impl VolumeNames {
    pub fn encrypted(name_key: &DataKey) -> VolumeNames {
        VolumeNames::Encrypted(Box::new(NameKeys::derive(name_key)))
    }

    pub fn is_encrypted(&self) -> bool {
        matches!(self, VolumeNames::Encrypted(_))
    }

    /// The id of directory `dir` (`None` with plaintext names). A directory
    /// without one, or with an unreadable one, gets a new id if it is
    /// empty (a crash between mkdir and writing the id, or rmdir undone);
    /// a non-empty directory without its id cannot be read: EIO.
    pub fn dir_id(&self, dir: &Dir) -> io::Result<Option<DirId>> {
        if !self.is_encrypted() {
            return Ok(None);
        }
        match read_dir_id(dir) {
            Ok(id) => Ok(Some(id)),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::EIO) =>
            {
                // One repair at a time, re-checked under the lock: two
                // threads repairing the same directory would each cache the
                // id they wrote, and one of them would name entries under an
                // id that is no longer on disk.
                static REPAIR: std::sync::Mutex<()> = std::sync::Mutex::new(());
                let _repair = REPAIR.lock().unwrap_or_else(|p| p.into_inner());
                if let Ok(id) = read_dir_id(dir) {
                    return Ok(Some(id));
                }
                let others = dir.entries()?.iter().any(|entry| entry.name != DIR_ID_FILE);
                if others {
                    return Err(eio("the directory's .kmsfs.dirid is missing or damaged"));
                }
                let _ = dir.unlink(OsStr::new(DIR_ID_FILE));
                self.init_dir(dir)?;
                read_dir_id(dir).map(Some)
            }
            Err(e) => Err(e),
        }
    }

    /// Gives a new, empty directory its id.
    pub fn init_dir(&self, dir: &Dir) -> io::Result<()> {
        if !self.is_encrypted() {
            return Ok(());
        }
        write_dir_id(dir, &DirId::random())
    }

    /// The stored name of `name` in the directory with id `id`.
    pub fn encode(&self, id: Option<&DirId>, name: &OsStr) -> io::Result<EntryName> {
        match (self, id) {
            (VolumeNames::Plain, _) => Ok(EntryName {
                entry: name.to_os_string(),
                side: None,
            }),
            (VolumeNames::Encrypted(keys), Some(id)) => {
                match keys.encrypt_name(id, name.as_bytes()).map_err(name_error)? {
                    BackingName::Short(entry) => Ok(EntryName {
                        entry: entry.into(),
                        side: None,
                    }),
                    BackingName::Long {
                        entry,
                        side_file,
                        encoded,
                    } => Ok(EntryName {
                        entry: entry.into(),
                        side: Some((side_file.into(), encoded)),
                    }),
                }
            }
            (VolumeNames::Encrypted(_), None) => Err(eio("directory id missing")),
        }
    }

    /// The user's name of the stored entry `entry` of `dir`, or `None` for
    /// an entry that is not a user's (the id file, side files, temporary
    /// files of kmsfs) or that does not decrypt (logged: it is invisible at
    /// the mount, as gocryptfs does, rather than failing the whole listing).
    pub fn decode(&self, dir: &Dir, id: Option<&DirId>, entry: &OsStr) -> Option<OsString> {
        let (keys, id) = match (self, id) {
            (VolumeNames::Plain, _) => return Some(entry.to_os_string()),
            (VolumeNames::Encrypted(keys), Some(id)) => (keys, id),
            (VolumeNames::Encrypted(_), None) => return None,
        };
        let encoded = match stored_encoding(dir, entry) {
            Ok(Some(encoded)) => encoded,
            Ok(None) => return None,
            Err(why) => {
                tracing::warn!(entry = %entry.to_string_lossy(), why, "entry hidden");
                return None;
            }
        };
        match keys.decrypt_name(id, &encoded) {
            Ok(name) => Some(OsString::from_vec(name)),
            Err(_) => {
                tracing::warn!(entry = %entry.to_string_lossy(), "name does not decrypt; entry hidden");
                None
            }
        }
    }

    /// Makes `name` ready to be linked into `dir` (create, mkdir, rename,
    /// link): for a long name, its side file. Writing it again is harmless:
    /// its content is a function of the name and the directory.
    pub fn prepare(&self, dir: &Dir, name: &EntryName) -> io::Result<()> {
        let Some((side, encoded)) = &name.side else {
            return Ok(());
        };
        if let Ok(existing) = read_side_file(dir, &name.entry.to_string_lossy())
            && existing == *encoded
        {
            return Ok(());
        }
        let _ = dir.unlink(side);
        let mut f = dir.create_file(side, SIDE_FILE_MODE)?;
        f.write_all(encoded.as_bytes())
    }

    /// After `name`'s entry left `dir` (unlink, rmdir, renamed away): its
    /// side file goes too.
    pub fn forget(&self, dir: &Dir, name: &EntryName) {
        if let Some((side, _)) = &name.side {
            let _ = dir.unlink(side);
        }
    }

    /// Removes the directory `name` of `parent`. With encrypted names the
    /// directory still holds its id file, which must go first; if rmdir
    /// then fails (not empty after all), the id is put back.
    pub fn remove_dir(&self, parent: &Dir, name: &EntryName) -> io::Result<()> {
        if !self.is_encrypted() {
            return parent.rmdir(&name.entry);
        }
        let dir = parent.open_dir(&name.entry)?;
        for entry in dir.entries()? {
            match classify(entry.name.as_bytes()) {
                EntryClass::DirId => {}
                // A side file whose entry is gone (a crash between the two
                // unlinks) is debris, not content.
                EntryClass::LongSide if !entry_of_side_exists(&dir, &entry.name) => {
                    let _ = dir.unlink(&entry.name);
                }
                _ => return Err(io::Error::from_raw_os_error(libc::ENOTEMPTY)),
            }
        }
        let id = read_dir_id(&dir).ok();
        let _ = dir.unlink(OsStr::new(DIR_ID_FILE));
        match parent.rmdir(&name.entry) {
            Ok(()) => {
                self.forget(parent, name);
                Ok(())
            }
            Err(e) => {
                let restored = match id {
                    Some(id) => write_dir_id(&dir, &id),
                    None => Ok(()),
                };
                if let Err(r) = restored {
                    tracing::error!(error = %r, "cannot restore a directory id after a failed rmdir");
                }
                Err(e)
            }
        }
    }

    /// The stored path, below the tree `tree`, of the path `rel` the user
    /// sees at the mount (for commands that name files, like reencrypt).
    pub fn stored_path(&self, tree: &Dir, rel: &Path) -> io::Result<PathBuf> {
        let mut stored = PathBuf::new();
        let mut dir = tree.duplicate()?;
        let parts: Vec<_> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name),
                _ => None,
            })
            .collect();
        for (i, part) in parts.iter().enumerate() {
            let id = self.dir_id(&dir)?;
            let entry = self.encode(id.as_ref(), part)?;
            if i + 1 < parts.len() {
                dir = dir.open_dir(&entry.entry)?;
            }
            stored.push(&entry.entry);
        }
        Ok(stored)
    }

    /// fsck of one directory's stored names (read-only): each entry that is
    /// wrong, and why. Nothing for plaintext names. The directory id is not
    /// recreated here, unlike [`VolumeNames::dir_id`].
    pub fn check_dir(&self, dir: &Dir) -> Vec<(OsString, String)> {
        let VolumeNames::Encrypted(keys) = self else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        let id = match read_dir_id(dir) {
            Ok(id) => id,
            Err(e) => {
                problems.push((
                    OsString::from(DIR_ID_FILE),
                    format!("the directory id is missing or damaged ({e}): no entry of this directory can be named"),
                ));
                return problems;
            }
        };
        let entries = match dir.entries() {
            Ok(entries) => entries,
            Err(e) => {
                problems.push((OsString::new(), format!("cannot list: {e}")));
                return problems;
            }
        };
        for entry in entries {
            let name = &entry.name;
            let why = match classify(name.as_bytes()) {
                EntryClass::DirId => None,
                EntryClass::Short | EntryClass::Long => match stored_encoding(dir, name) {
                    Err(why) => Some(format!("{why}; it is hidden at the mount")),
                    Ok(encoded) => encoded
                        .filter(|encoded| keys.decrypt_name(&id, encoded).is_err())
                        .map(|_| {
                            "the name does not decrypt in this directory (renamed or moved in the backing tree, or damaged); it is hidden at the mount".to_string()
                        }),
                },
                EntryClass::LongSide => (!entry_of_side_exists(dir, name))
                    .then(|| "a long-name side file whose entry is gone (debris of an interrupted operation)".into()),
                EntryClass::Foreign => Some(
                    "not an entry kmsfs makes (left by an interrupted reencrypt, or put there by hand); it is hidden at the mount".into(),
                ),
            };
            if let Some(why) = why {
                problems.push((name.clone(), why));
            }
        }
        problems
    }

    /// What a symlink to `target` stores.
    pub fn encode_link(&self, target: &OsStr) -> io::Result<OsString> {
        match self {
            VolumeNames::Plain => Ok(target.to_os_string()),
            VolumeNames::Encrypted(keys) => keys
                .encrypt_link(target.as_bytes())
                .map(OsString::from_vec)
                .map_err(name_error),
        }
    }

    /// The target the user gave, from what a symlink stores.
    pub fn decode_link(&self, stored: &OsStr) -> io::Result<OsString> {
        match self {
            VolumeNames::Plain => Ok(stored.to_os_string()),
            VolumeNames::Encrypted(keys) => keys
                .decrypt_link(stored.as_bytes())
                .map(OsString::from_vec)
                .map_err(name_error),
        }
    }

    /// The stored name of the extended attribute `name`: user attributes
    /// are encrypted, the kernel's own namespaces (security, system,
    /// trusted) are kept as they are, since the backing filesystem acts on
    /// them.
    pub fn encode_xattr_name(&self, name: &OsStr) -> io::Result<OsString> {
        match self {
            VolumeNames::Encrypted(keys) if name.as_bytes().starts_with(b"user.") => keys
                .encrypt_xattr_name(name.as_bytes())
                .map(OsString::from)
                .map_err(name_error),
            _ => Ok(name.to_os_string()),
        }
    }

    /// The user's name of a stored attribute; `None` for kmsfs's own
    /// (`user.kmsfs.*`) and for user attributes that do not decrypt.
    pub fn decode_xattr_name(&self, stored: &[u8]) -> Option<Vec<u8>> {
        if stored.starts_with(b"user.kmsfs.") {
            return None;
        }
        match self {
            VolumeNames::Encrypted(keys) if stored.starts_with(b"user.") => {
                if !kmsfs_format::names::is_encrypted_xattr_name(stored) {
                    return None;
                }
                keys.decrypt_xattr_name(stored).ok()
            }
            _ => Some(stored.to_vec()),
        }
    }

    /// The stored value of attribute `stored_name` (already encoded).
    pub fn encode_xattr_value(&self, stored_name: &OsStr, value: &[u8]) -> Vec<u8> {
        match self {
            VolumeNames::Encrypted(keys) if is_user_attr(stored_name) => {
                keys.encrypt_xattr_value(&stored_name.to_string_lossy(), value)
            }
            _ => value.to_vec(),
        }
    }

    pub fn decode_xattr_value(&self, stored_name: &OsStr, stored: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            VolumeNames::Encrypted(keys) if is_user_attr(stored_name) => keys
                .decrypt_xattr_value(&stored_name.to_string_lossy(), stored)
                .map_err(name_error),
            _ => Ok(stored.to_vec()),
        }
    }
}

fn is_user_attr(name: &OsStr) -> bool {
    name.as_bytes().starts_with(b"user.")
}

/// The encrypted name an entry stands for: the entry itself (short), or its
/// side file's content checked against the entry's hash (long); `None` for
/// entries that are not names. `Err` says why a long name is unusable.
fn stored_encoding(dir: &Dir, entry: &OsStr) -> Result<Option<String>, String> {
    let Some(entry_str) = entry.to_str() else {
        return Ok(None);
    };
    match classify(entry.as_bytes()) {
        EntryClass::Short => Ok(Some(entry_str.to_string())),
        EntryClass::Long => match read_side_file(dir, entry_str) {
            Ok(encoded) if long_entry_matches(entry_str, &encoded) => Ok(Some(encoded)),
            Ok(_) => Err("the long-name side file belongs to another entry".into()),
            Err(e) => Err(format!("long name without a readable side file ({e})")),
        },
        EntryClass::LongSide | EntryClass::DirId | EntryClass::Foreign => Ok(None),
    }
}

fn read_dir_id(dir: &Dir) -> io::Result<DirId> {
    let f = dir.open_file(OsStr::new(DIR_ID_FILE), false)?;
    let mut bytes = Vec::with_capacity(17);
    f.take(17).read_to_end(&mut bytes)?;
    DirId::decode(&bytes).map_err(name_error)
}

fn write_dir_id(dir: &Dir, id: &DirId) -> io::Result<()> {
    let mut f = dir.create_file(OsStr::new(DIR_ID_FILE), DIR_ID_MODE)?;
    f.write_all(id.as_bytes())
}

fn read_side_file(dir: &Dir, entry: &str) -> io::Result<String> {
    let side = side_file_of(entry);
    let f = dir.open_file(OsStr::new(&side), false)?;
    let mut text = String::new();
    // An encrypted 255-byte name is 362 base64 characters; anything much
    // longer is not ours.
    f.take(1024).read_to_string(&mut text)?;
    Ok(text)
}

fn entry_of_side_exists(dir: &Dir, side: &OsStr) -> bool {
    let Some(entry) = side
        .to_str()
        .and_then(|s| s.strip_suffix(kmsfs_format::names::SIDE_SUFFIX))
    else {
        return false;
    };
    dir.open_node(OsStr::new(entry)).is_ok()
}
