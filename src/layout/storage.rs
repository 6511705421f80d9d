//! The one seam every file-system write of a layout goes through. Paths are relative to the
//! layout's `Root` and resolved beneath it (see `confined`). Tests substitute an implementation
//! that fails the Nth operation or records a trace for crash simulation.

use std::ffi::OsStr;
use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::SystemTime;

use super::confined::{Root, Subdir};

/// File-system writes, in the smallest set the layout needs. Reads do not go through here:
/// they cannot lose data. Each method does its work on the real file system unless an
/// implementation overrides it (a test's failing or recording storage overrides what it needs).
pub trait Storage: Send + Sync {
    /// Creates one directory (its parent exists); false when a directory is already there.
    fn create_dir(&self, root: &Root, path: &Path) -> io::Result<bool> {
        root.mkdir(path)
    }

    /// Creates a file that must not exist yet, open for writing, mode 0644.
    fn create_new(&self, root: &Root, path: &Path) -> io::Result<File> {
        root.create_new(path, 0o644)
    }

    /// Opens a file for appending data, creating it when missing.
    fn open_append(&self, root: &Root, path: &Path) -> io::Result<File> {
        root.open_append(path, 0o644)
    }

    /// Opens (creating when missing) a file used only for flock: mode 0600, and made so when it
    /// was not and we own it, since a user who can open the lock can hold it and stall every
    /// writer of the layout.
    fn open_lock(&self, root: &Root, path: &Path) -> io::Result<File> {
        let file = root.open_read_write(path, 0o600)?;
        if file.metadata()?.permissions().mode() & 0o077 != 0 {
            // Not ours (EPERM): its owner decides who may use it.
            let _ = file.set_permissions(Permissions::from_mode(0o600));
        }
        Ok(file)
    }

    fn write_all(&self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        file.write_all(bytes)
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }

    /// fsync of a file's data and metadata.
    fn sync_file(&self, file: &File) -> io::Result<()> {
        file.sync_all()
    }

    /// Starts writing back a range of a file without waiting: a hint that makes a later fsync
    /// short. Promises nothing about durability.
    fn start_writeback(&self, file: &File, offset: u64, len: u64) {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else { return };
        // SAFETY: a plain syscall on a valid descriptor; its result is only a hint.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
        }
    }

    /// Makes a file read-only (mode 0444), as committed blobs are.
    fn set_read_only(&self, file: &File) -> io::Result<()> {
        file.set_permissions(Permissions::from_mode(0o444))
    }

    /// Sets a file's modification time to now (without following a symlink).
    fn touch(&self, root: &Root, path: &Path) -> io::Result<()> {
        root.touch(path)
    }

    /// Sets an open file's modification time (and access time) to `time`.
    fn set_modified(&self, file: &File, time: SystemTime) -> io::Result<()> {
        file.set_times(std::fs::FileTimes::new().set_accessed(time).set_modified(time))
    }

    fn rename(&self, root: &Root, from: &Path, to: &Path) -> io::Result<()> {
        root.rename(from, to)
    }

    /// Gives the open `file` (named `from`) the new name `to`, which must be free.
    fn link(&self, root: &Root, file: &File, from: &Path, to: &Path) -> io::Result<()> {
        root.link_open_file(file, from, to)
    }

    fn remove_file(&self, root: &Root, path: &Path) -> io::Result<()> {
        root.unlink(path)
    }

    /// Removes the file `name` of the open directory `dir` (GC's sweep of a blob directory).
    fn remove_file_in(&self, dir: &Subdir, name: &OsStr) -> io::Result<()> {
        dir.unlink(name)
    }

    /// Removes the directory `path`, open as `dir`, and everything in it, through the handle.
    fn remove_dir_all(&self, root: &Root, path: &Path, dir: &File) -> io::Result<()> {
        root.remove_tree(path, dir)
    }

    /// fsync of a directory, so that a rename, unlink or mkdir in it is durable.
    fn sync_dir(&self, root: &Root, path: &Path) -> io::Result<()> {
        root.open_dir(path)?.sync_all()
    }
}

/// The real file system.
#[derive(Debug, Default)]
pub struct OsStorage;

impl Storage for OsStorage {}

/// The storage seam bound to one layout's root: what `Layout::storage` hands out, so callers
/// name only paths inside the layout.
pub(crate) struct LayoutStorage<'e> {
    pub(super) storage: &'e dyn Storage,
    pub(super) root: &'e Root,
}

impl LayoutStorage<'_> {
    pub(crate) fn create_dir(&self, path: &Path) -> io::Result<bool> {
        self.storage.create_dir(self.root, path)
    }

    pub(crate) fn open_append(&self, path: &Path) -> io::Result<File> {
        self.storage.open_append(self.root, path)
    }

    pub(crate) fn write_all(&self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        self.storage.write_all(file, bytes)
    }

    pub(crate) fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        self.storage.set_len(file, len)
    }

    pub(crate) fn sync_file(&self, file: &File) -> io::Result<()> {
        self.storage.sync_file(file)
    }

    pub(crate) fn start_writeback(&self, file: &File, offset: u64, len: u64) {
        self.storage.start_writeback(file, offset, len)
    }

    pub(crate) fn set_read_only(&self, file: &File) -> io::Result<()> {
        self.storage.set_read_only(file)
    }

    pub(crate) fn touch(&self, path: &Path) -> io::Result<()> {
        self.storage.touch(self.root, path)
    }

    pub(crate) fn set_modified(&self, file: &File, time: SystemTime) -> io::Result<()> {
        self.storage.set_modified(file, time)
    }

    pub(crate) fn link(&self, file: &File, from: &Path, to: &Path) -> io::Result<()> {
        self.storage.link(self.root, file, from, to)
    }

    pub(crate) fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.storage.rename(self.root, from, to)
    }

    pub(crate) fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.storage.remove_file(self.root, path)
    }

    pub(crate) fn remove_file_in(&self, dir: &Subdir, name: &OsStr) -> io::Result<()> {
        self.storage.remove_file_in(dir, name)
    }

    pub(crate) fn remove_dir_all(&self, path: &Path, dir: &File) -> io::Result<()> {
        self.storage.remove_dir_all(self.root, path, dir)
    }

    pub(crate) fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.storage.sync_dir(self.root, path)
    }
}
