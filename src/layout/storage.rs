//! The one seam every file-system write of a layout goes through. Tests substitute an
//! implementation that fails the Nth operation or records a trace for crash simulation.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// File-system writes, in the smallest set the layout needs. Reads do not go through here:
/// they cannot lose data.
pub trait Storage: Send + Sync {
    /// Creates a directory and its missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates a file that must not exist yet, open for writing, mode 0644.
    fn create_new(&self, path: &Path) -> io::Result<File>;
    /// Opens a file for appending data, creating it when missing.
    fn open_append(&self, path: &Path) -> io::Result<File>;
    /// Opens (creating when missing) a file used only for flock.
    fn open_lock(&self, path: &Path) -> io::Result<File>;
    fn write_all(&self, file: &mut File, bytes: &[u8]) -> io::Result<()>;
    fn set_len(&self, file: &File, len: u64) -> io::Result<()>;
    /// fsync of a file's data and metadata.
    fn sync_file(&self, file: &File) -> io::Result<()>;
    /// Starts writing back a range of a file without waiting: a hint that makes a later fsync
    /// short. Promises nothing about durability.
    fn start_writeback(&self, file: &File, offset: u64, len: u64);
    /// Makes a file read-only (mode 0444), as committed blobs are.
    fn set_read_only(&self, file: &File) -> io::Result<()>;
    /// Sets a file's modification time to now (without following a symlink).
    fn touch(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// fsync of a directory, so that a rename or unlink in it is durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default)]
pub struct OsStorage;

impl Storage for OsStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn create_new(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().write(true).create_new(true).mode(0o644).open(path)
    }

    fn open_append(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).append(true).create(true).mode(0o644).open(path)
    }

    fn open_lock(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o644).open(path)
    }

    fn write_all(&self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        file.write_all(bytes)
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }

    fn sync_file(&self, file: &File) -> io::Result<()> {
        file.sync_all()
    }

    fn start_writeback(&self, file: &File, offset: u64, len: u64) {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on a valid descriptor; its result is only a hint.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
        }
    }

    fn set_read_only(&self, file: &File) -> io::Result<()> {
        file.set_permissions(Permissions::from_mode(0o444))
    }

    fn touch(&self, path: &Path) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
        // SAFETY: a valid NUL-terminated path; NULL times mean "now", which the owner of a
        // read-only file may set.
        let rc = unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), std::ptr::null(), libc::AT_SYMLINK_NOFOLLOW) };
        if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
}
