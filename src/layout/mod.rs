//! The on-disk OCI image layout: creating and validating it, its paths, the store lock, and
//! atomic file replacement. Every file access goes through `confined` (beneath the layout's
//! directory handle, no link followed) and every write also through the `Storage` seam.

pub mod confined;
mod storage;
mod structure;

use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use confined::{Entry, EntryKind, Root, Subdir};
use storage::LayoutStorage;
pub use storage::{OsStorage, Storage};
use structure::{BLOBS_DIR, LOCK_FILE, PRIVATE_DIR, TEMP_DIR};
pub(crate) use structure::{CREATED_DIR, INGEST_DIR, LABELS_DIR, LEASES_DIR};

use crate::digest::{Algorithm, Digest};
use crate::error::{Error, ErrorKind, Result, invalid_image};
use crate::limits::{Limit, Limits};
use crate::spec::{ImageIndex, MEDIA_TYPE_IMAGE_INDEX};

/// The longest pause between two tries of the store lock.
const LOCK_POLL_MAX: Duration = Duration::from_millis(50);

/// See `Layout::read_index_to_mend`.
const MEND_FACTOR: u64 = 16;

/// Temp files younger than this are never swept: they may not be flocked yet.
const TEMP_FILE_MIN_AGE: Duration = Duration::from_secs(1);

pub const LAYOUT_VERSION: &str = "1.0.0";

/// An open OCI image layout: its directory handle, the storage seam its writes go through, and
/// the limits its reads enforce. `Engine` is the public face over it.
#[derive(Clone)]
pub(crate) struct Layout {
    root: Arc<Root>,
    storage: Arc<dyn Storage>,
    limits: Limits,
}

impl Layout {
    /// Opens the layout at `path`, validating it, or creates it when `create` is set and nothing
    /// (or an empty directory) is there.
    pub(crate) fn open(path: &Path, create: bool, limits: Limits, storage: Arc<dyn Storage>) -> Result<Layout> {
        if create && path_state(path)? != PathState::Occupied {
            return match Layout::create(path, storage.clone(), limits) {
                // Another process created it in between: open what it made.
                Err(err) if err.kind() == ErrorKind::AlreadyExists => Layout::open_existing(path, limits, storage),
                result => result,
            };
        }
        Layout::open_existing(path, limits, storage)
    }

    fn open_existing(path: &Path, limits: Limits, storage: Arc<dyn Storage>) -> Result<Layout> {
        let root = open_root(&absolute(path)?)?;
        let layout = Layout { root: Arc::new(root), storage, limits };
        layout.validate()?;
        Ok(layout)
    }

    /// The layout's own directory is the caller's path, created (with an fsync of its parent)
    /// before the layout's handle exists; everything inside it goes through the handle.
    /// Creates a new layout at `path`; `AlreadyExists` when anything is there already.
    pub(crate) fn create(path: &Path, storage: Arc<dyn Storage>, limits: Limits) -> Result<Layout> {
        let path = absolute(path)?;
        match path_state(&path)? {
            PathState::Missing => create_layout_dir(&path)?,
            PathState::EmptyDir => {}
            PathState::Occupied => return Err(already_exists(&path)),
        }
        let layout = Layout { root: Arc::new(open_root(&path)?), storage, limits };
        for algorithm in Algorithm::ALL {
            layout.create_dir(&layout.blob_dir(algorithm))?;
        }
        layout.create_dir(&layout.private_dir())?;
        let oci_layout = serde_json::json!({ "imageLayoutVersion": LAYOUT_VERSION });
        layout.replace_file(Path::new("oci-layout"), &crate::spec::canonical_json(&oci_layout)?)?;
        // index.json last: its presence is what makes the directory a layout.
        layout.write_index(&ImageIndex::empty())?;
        Ok(layout)
    }

    fn validate(&self) -> Result<()> {
        // Every 1.x layout opens: skopeo reads them, and fsck reports any version but 1.0.0.
        let version = self.layout_version()?;
        if !version.starts_with("1.") {
            return Err(invalid_image(format!(
                "{}: unsupported imageLayoutVersion {version:?} (expected {LAYOUT_VERSION:?})",
                self.display(Path::new("oci-layout")).display()
            )));
        }
        self.read_index_to_mend()?;
        let blobs = Path::new(BLOBS_DIR);
        match self.root.kind(blobs) {
            Ok(Some(EntryKind::Dir)) => Ok(()),
            Ok(Some(kind)) => {
                Err(invalid_image(format!("{} is {}, not a directory", self.display(blobs).display(), kind.describe())))
            }
            Ok(None) => Err(invalid_image(format!("{} is missing", self.display(blobs).display()))),
            Err(err) => Err(self.io_error("cannot stat", blobs, err)),
        }
    }

    /// The `imageLayoutVersion` of the layout's oci-layout file.
    pub(crate) fn layout_version(&self) -> Result<String> {
        let oci_layout_path = Path::new("oci-layout");
        let shown = self.display(oci_layout_path);
        let bytes = self.read_json_file(oci_layout_path).map_err(|err| match err.kind() {
            ErrorKind::NotFound => invalid_image(format!(
                "{} is not an OCI image layout: {} is missing",
                self.root().display(),
                shown.display()
            )),
            _ => err,
        })?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| invalid_image(format!("{} is not valid JSON: {e}", shown.display())))?;
        match value.get("imageLayoutVersion").and_then(|v| v.as_str()) {
            Some(version) => Ok(version.to_owned()),
            None => Err(invalid_image(format!("{}: imageLayoutVersion is missing or not a string", shown.display()))),
        }
    }

    pub(crate) fn root(&self) -> &Path {
        self.root.path()
    }

    /// Confined access to the layout's files, for reads (writes go through `storage`).
    pub(crate) fn dir(&self) -> &Root {
        &self.root
    }

    /// A path of the layout as messages show it.
    pub(crate) fn display(&self, rel: &Path) -> PathBuf {
        self.root.display(rel)
    }

    /// The error of an I/O operation `what` on the layout's path `rel`.
    pub(crate) fn io_error(&self, what: &str, rel: &Path, err: io::Error) -> Error {
        let limit = match err.raw_os_error() {
            Some(libc::EMFILE) => Some(match open_file_limit() {
                Some(limit) => format!(
                    "; this process may have {limit} files open at once (its RLIMIT_NOFILE soft limit) and has \
                     reached that: raise it (`ulimit -n`) or open fewer at once"
                ),
                None => "; this process reached its limit of open files (RLIMIT_NOFILE)".to_owned(),
            }),
            Some(libc::ENFILE) => Some("; the system-wide limit of open files (fs.file-max) is reached".to_owned()),
            _ => None,
        };
        let error = Error::io(what, &self.display(rel), err);
        match limit {
            Some(limit) => Error::new(error.kind(), format!("{}{limit}", error.message())),
            None => error,
        }
    }

    /// The largest JSON document this layout reads (`limits().json_size`).
    pub(crate) fn max_json_size(&self) -> u64 {
        self.limits.json_size
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Changes the limits for what this layout (and clones made from it afterwards) does next.
    pub(crate) fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The writes of this layout (the `Storage` seam bound to its root).
    pub(crate) fn storage(&self) -> LayoutStorage<'_> {
        LayoutStorage { storage: &*self.storage, root: &self.root }
    }

    pub(crate) fn blob_dir(&self, algorithm: Algorithm) -> PathBuf {
        Path::new(BLOBS_DIR).join(algorithm.name())
    }

    pub(crate) fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blob_dir(digest.algorithm()).join(digest.hex())
    }

    /// When each blob directory last had an entry added or removed: its ctime, which every
    /// creation, rename and removal in it moves forward and which no caller can set back; None
    /// where it cannot be looked at. Two equal readings, the first taken well after the time it
    /// reads (a file time lags the clock by up to a tick), prove no blob appeared between them.
    pub(crate) fn blob_dirs_changed(&self) -> [Option<std::time::SystemTime>; Algorithm::ALL.len()] {
        Algorithm::ALL.map(|algorithm| self.root.stat(&self.blob_dir(algorithm)).ok().map(|stat| changed_time(&stat)))
    }

    /// The blob directories held open, for a pass that looks at or removes many blobs.
    pub(crate) fn blob_dirs(&self) -> BlobDirs<'_> {
        let dirs = Algorithm::ALL.map(|algorithm| self.root.open_subdir(&self.blob_dir(algorithm)).ok());
        BlobDirs { layout: self, dirs }
    }

    pub(crate) fn index_path(&self) -> &'static Path {
        Path::new("index.json")
    }

    /// `.ocicas/`: our private state, which other OCI tools ignore.
    pub(crate) fn private_dir(&self) -> PathBuf {
        PathBuf::from(PRIVATE_DIR)
    }

    /// Creates the directory `path` and its missing parents, each made durable in its parent
    /// (an fsync of the parent after the mkdir), so a blob or ingest placed in it survives a
    /// power loss with its directory. A link or file where a directory belongs is refused.
    pub(crate) fn create_dir(&self, path: &Path) -> Result<()> {
        // Nearly always it is there already (a blob's, an ingest's, a temp file's directory,
        // looked for at each of them): one stat instead of a mkdir and a stat per component.
        // Anything else there, a link on the way included, is left to the mkdirs to refuse.
        if matches!(self.root.kind(path), Ok(Some(EntryKind::Dir))) {
            return Ok(());
        }
        let mut prefix = PathBuf::new();
        for component in path.iter() {
            prefix.push(component);
            let created = self
                .storage
                .create_dir(&self.root, &prefix)
                .map_err(|e| self.io_error("cannot create directory", &prefix, e))?;
            if created {
                self.sync_parent(&prefix)?;
            }
        }
        Ok(())
    }

    /// Reads index.json as an image index.
    pub(crate) fn read_index(&self) -> Result<ImageIndex> {
        Ok(self.read_index_within(&self.limits)?.0)
    }

    /// index.json for opening the layout and for listing and removing references, with its size
    /// in bytes: up to `MEND_FACTOR` times the JSON limit, so that a layout whose index.json grew
    /// over the limit (written by another tool, or before the limit was lowered) can still be
    /// opened, listed and mended; everything else refuses it.
    pub(crate) fn read_index_to_mend(&self) -> Result<(ImageIndex, u64)> {
        let json_size = self.limits.json_size.saturating_mul(MEND_FACTOR);
        self.read_index_within(&Limits { json_size, ..self.limits })
    }

    /// Writes index.json after a removal of references: allowed over the JSON limit when it
    /// shrinks index.json (from `read_size` bytes), so mending an oversized layout is possible.
    pub(crate) fn write_mended_index(&self, index: &ImageIndex, read_size: u64) -> Result<()> {
        let bytes = crate::spec::canonical_json(index)?;
        if (bytes.len() as u64) < read_size {
            self.replace_file(self.index_path(), &bytes)
        } else {
            self.replace_json_file(self.index_path(), &bytes)
        }
    }

    fn read_index_within(&self, limits: &Limits) -> Result<(ImageIndex, u64)> {
        let path = self.index_path();
        let shown = self.display(path);
        let file = self.root.open_read(path).map_err(|err| match err.kind() {
            io::ErrorKind::NotFound => invalid_image(format!("{} is missing", shown.display())),
            _ => self.io_error("cannot open", path, err),
        })?;
        let bytes = limits.read_capped(file, Limit::JsonSize, &shown.display().to_string())?;
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| invalid_image(format!("{} is not an OCI image index: {e}", shown.display())))?;
        if index.schema_version != 2 {
            return Err(invalid_image(format!(
                "{} is not an OCI image index: schemaVersion is {}, expected 2",
                shown.display(),
                index.schema_version
            )));
        }
        if let Some(media_type) = &index.media_type
            && media_type != MEDIA_TYPE_IMAGE_INDEX
        {
            return Err(invalid_image(format!(
                "{} is not an OCI image index: mediaType is {media_type:?}",
                shown.display()
            )));
        }
        Ok((index, bytes.len() as u64))
    }

    /// Replaces index.json atomically. Callers hold the exclusive store lock.
    pub(crate) fn write_index(&self, index: &ImageIndex) -> Result<()> {
        self.replace_json_file(self.index_path(), &crate::spec::canonical_json(index)?)
    }

    /// Reads the whole file `path`, which holds a JSON document, up to the JSON size limit.
    pub(crate) fn read_json_file(&self, path: &Path) -> Result<Vec<u8>> {
        self.read_file_capped(path, Limit::JsonSize)
    }

    /// Reads the whole private metadata file `path` (an ingest's ref, times, hash state), up to
    /// the metadata size limit.
    pub(crate) fn read_metadata_file(&self, path: &Path) -> Result<Vec<u8>> {
        self.read_file_capped(path, Limit::MetadataSize)
    }

    fn read_file_capped(&self, path: &Path, limit: Limit) -> Result<Vec<u8>> {
        let file = self.root.open_read(path).map_err(|e| self.io_error("cannot open", path, e))?;
        self.limits.read_capped(file, limit, &self.display(path).display().to_string())
    }

    /// `replace_file` for a JSON document, which is never written larger than the reader's
    /// limit: a write that would make a document unreadable fails and changes nothing.
    pub(crate) fn replace_json_file(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        if bytes.len() as u64 > self.limits.json_size {
            return Err(self.limits.exceeded(
                Limit::JsonSize,
                format!("writing {} would make it {} bytes", self.display(dest).display(), bytes.len()),
            ));
        }
        self.replace_file(dest, bytes)
    }

    /// Write to a temp file, fsync, rename over `dest`, fsync the directory: `dest` is always
    /// either its old or its new content, even after a power loss. Its mtime is read from the
    /// clock, not the kernel's file-time clock that lags it by up to a tick: a blob's updatedAt
    /// is its labels file's mtime, and falls between the caller's clock readings around an update.
    pub(crate) fn replace_file(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let mut temp = self.temp_file()?;
        temp.write_all(bytes)?;
        self.storage
            .set_modified(temp.file(), std::time::SystemTime::now())
            .map_err(|e| self.io_error("cannot set the mtime of", temp.path(), e))?;
        temp.sync()?;
        temp.rename_to(dest)?;
        self.sync_parent(dest)
    }

    /// `replace_file` without the fsyncs: readers see the old or the new content, but a power
    /// loss may leave either, or neither. For private state whose loss costs only work.
    pub(crate) fn replace_file_unsynced(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let mut temp = self.temp_file()?;
        temp.write_all(bytes)?;
        temp.rename_to(dest)
    }

    pub(crate) fn sync_parent(&self, path: &Path) -> Result<()> {
        let dir = path.parent().unwrap_or(Path::new(""));
        self.storage.sync_dir(&self.root, dir).map_err(|e| self.io_error("cannot fsync directory", dir, e))
    }

    fn temp_dir(&self) -> PathBuf {
        PathBuf::from(TEMP_DIR)
    }

    /// A new, uniquely named temp file under `.ocicas/tmp/`, on the same file system as
    /// `blobs/` so that a rename can publish it. Removed on drop unless renamed.
    pub(crate) fn temp_file(&self) -> Result<TempFile<'_>> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = self.temp_dir();
        self.create_dir(&dir)?;
        loop {
            let name = format!(
                "{}-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0)
            );
            let path = dir.join(name);
            match self.storage.create_new(&self.root, &path) {
                Ok(file) => {
                    // Marks the file live for GC (see sweep_temp_files); released with the file.
                    file.try_lock().map_err(|e| self.io_error("cannot lock temp file", &path, io::Error::other(e)))?;
                    return Ok(TempFile { layout: self, path, file: Some(file) });
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(self.io_error("cannot create temp file", &path, err)),
            }
        }
    }

    /// GC's part: removes the temp files under `.ocicas/tmp/` that no live writer holds (each
    /// writer flocks its temp file from creation to rename). Returns how many. Entries that are
    /// not regular files were planted, not made by a writer: they are left to fsck.
    pub(crate) fn sweep_temp_files(&self, dry_run: bool, failed: &mut Vec<String>) -> Result<u64> {
        let dir = self.temp_dir();
        let mut removed = 0;
        self.root
            .for_each_entry(&dir, |name, kind| {
                let path = dir.join(name);
                if kind != EntryKind::File || !self.is_old_unlocked_temp_file(&path) {
                    return Ok(());
                }
                if !dry_run {
                    match self.storage.remove_file(&self.root, &path) {
                        Ok(()) => {}
                        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
                        Err(err) => {
                            failed.push(self.io_error("cannot remove", &path, err).message().to_owned());
                            return Ok(());
                        }
                    }
                }
                removed += 1;
                Ok(())
            })
            .map_err(|e| self.io_error("cannot sweep temp files in", &dir, e))?;
        Ok(removed)
    }

    /// A temp file no writer holds: older than `TEMP_FILE_MIN_AGE` (a younger one may be between
    /// its creation and its writer's flock) and not flocked, or one with other links (the name
    /// a published blob kept when its writer stopped before removing it).
    fn is_old_unlocked_temp_file(&self, path: &Path) -> bool {
        let Ok(stat) = self.root.stat(path) else { return false };
        let old = modified_time(&stat).elapsed().is_ok_and(|age| age >= TEMP_FILE_MIN_AGE);
        old && (stat.st_nlink > 1 || self.root.open_read(path).is_ok_and(|file| file.try_lock().is_ok()))
    }

    /// The store lock, shared: held while committing blobs so a GC sweep cannot interleave.
    pub(crate) fn lock_shared(&self) -> Result<StoreLock> {
        self.lock_store(File::try_lock_shared)
    }

    /// The store lock, exclusive: index.json read-modify-write and GC sweeps.
    pub(crate) fn lock_exclusive(&self) -> Result<StoreLock> {
        self.lock_store(File::try_lock)
    }

    /// Takes the store lock with `try_lock` (flock has no deadline of its own), trying again
    /// with waits from 1 ms to 50 ms until `lock_timeout` passes.
    fn lock_store(&self, try_lock: fn(&File) -> std::result::Result<(), TryLockError>) -> Result<StoreLock> {
        let file = self.open_lock_file()?;
        let deadline = Instant::now() + Duration::from_secs(self.limits.lock_timeout);
        let mut wait = Duration::from_millis(1);
        loop {
            match try_lock(&file) {
                Ok(()) => return Ok(StoreLock { _file: file }),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(LOCK_POLL_MAX);
                }
                Err(TryLockError::WouldBlock) => {
                    let what = format!("the store lock {}", self.display(&self.lock_path()).display());
                    return Err(self.limits.waited_too_long(Limit::LockTimeout, what));
                }
                Err(TryLockError::Error(err)) => return Err(self.io_error("cannot lock", &self.lock_path(), err)),
            }
        }
    }

    fn lock_path(&self) -> PathBuf {
        PathBuf::from(LOCK_FILE)
    }

    /// A fresh open file description per lock, so that threads of one process exclude each
    /// other too (flock is per open file description).
    fn open_lock_file(&self) -> Result<File> {
        self.create_dir(&self.private_dir())?;
        let path = self.lock_path();
        self.storage.open_lock(&self.root, &path).map_err(|e| self.io_error("cannot open lock file", &path, e))
    }
}

/// Files this large whose disk blocks hold less than a sixteenth of their size are mostly
/// holes: nothing ocicas writes is, and hashing one that was planted (terabytes of nothing)
/// would take hours.
const SPARSE_MIN_SIZE: u64 = 64 << 20;

/// Whether the file of status `stat` is a large file that is mostly holes. (A file system that
/// keeps zeros as holes, as ZFS with compression does, can make a real file look so too.)
pub(crate) fn mostly_holes(stat: &rustix::fs::Stat) -> bool {
    let size = stat.st_size as u64;
    let allocated = (stat.st_blocks as u64).saturating_mul(512);
    size >= SPARSE_MIN_SIZE && allocated < size / 16
}

/// The process's soft limit on open files (RLIMIT_NOFILE); None when unlimited or unknown.
pub(crate) fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a plain syscall writing into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(limit.rlim_cur)
}

/// A file's modification time from its status.
pub(crate) fn modified_time(stat: &rustix::fs::Stat) -> std::time::SystemTime {
    let since_epoch = Duration::new(stat.st_mtime.max(0) as u64, stat.st_mtime_nsec.clamp(0, 999_999_999) as u32);
    std::time::UNIX_EPOCH + since_epoch
}

/// A file's status change time from its status.
fn changed_time(stat: &rustix::fs::Stat) -> std::time::SystemTime {
    let since_epoch = Duration::new(stat.st_ctime.max(0) as u64, stat.st_ctime_nsec.clamp(0, 999_999_999) as u32);
    std::time::UNIX_EPOCH + since_epoch
}

/// The layout's blob directories, each held open (`Layout::blob_dirs`). A directory that could
/// not be opened (missing, or a planted link) is looked into by path instead, which reports
/// the blob missing or the link refused as any single lookup does.
pub(crate) struct BlobDirs<'l> {
    layout: &'l Layout,
    dirs: [Option<Subdir>; Algorithm::ALL.len()],
}

impl BlobDirs<'_> {
    fn dir(&self, algorithm: Algorithm) -> Option<&Subdir> {
        let index = Algorithm::ALL.iter().position(|known| *known == algorithm)?;
        self.dirs[index].as_ref()
    }

    /// The status of the blob's file itself (not following a link).
    pub(crate) fn stat(&self, digest: &Digest) -> io::Result<rustix::fs::Stat> {
        self.stat_file(digest.algorithm(), digest.hex())
    }

    /// The status of the file `name` (a digest's hex) in the directory of `algorithm` itself:
    /// GC looks at the blobs it listed by name, without making a `Digest` of each.
    pub(crate) fn stat_file(&self, algorithm: Algorithm, name: &str) -> io::Result<rustix::fs::Stat> {
        match self.dir(algorithm) {
            Some(dir) => dir.stat(name.as_ref()),
            None => self.layout.root.stat(&self.layout.blob_dir(algorithm).join(name)),
        }
    }

    /// Removes the file `name` (a digest's hex) of the directory of `algorithm`, through the
    /// storage seam.
    pub(crate) fn remove_file(&self, algorithm: Algorithm, name: &str) -> io::Result<()> {
        match self.dir(algorithm) {
            Some(dir) => self.layout.storage().remove_file_in(dir, name.as_ref()),
            None => self.layout.storage().remove_file(&self.layout.blob_dir(algorithm).join(name)),
        }
    }
}

/// Held lock on `.ocicas/lock`; released when dropped.
pub(crate) struct StoreLock {
    _file: File,
}

pub(crate) struct TempFile<'e> {
    layout: &'e Layout,
    path: PathBuf,
    /// `None` once renamed away.
    file: Option<File>,
}

impl TempFile<'_> {
    pub(crate) fn file(&self) -> &File {
        self.file.as_ref().expect("temp file used after rename")
    }

    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let file = self.file.as_mut().expect("temp file used after rename");
        self.layout.storage.write_all(file, bytes).map_err(|e| self.layout.io_error("cannot write", &self.path, e))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn sync(&self) -> Result<()> {
        self.layout.storage.sync_file(self.file()).map_err(|e| self.layout.io_error("cannot fsync", &self.path, e))
    }

    /// Renames the temp file to `dest` (the caller fsyncs the directory).
    pub(crate) fn rename_to(mut self, dest: &Path) -> Result<()> {
        let layout = self.layout;
        layout.storage.rename(&layout.root, &self.path, dest).map_err(|e| {
            layout.io_error(&format!("cannot rename {} to", layout.display(&self.path).display()), dest, e)
        })?;
        self.file = None;
        Ok(())
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Best effort: a leftover temp file is private state that GC removes.
            let _ = self.layout.storage.remove_file(&self.layout.root, &self.path);
        }
    }
}

fn already_exists(root: &Path) -> Error {
    Error::new(ErrorKind::AlreadyExists, format!("cannot create a layout at {}: it already exists", root.display()))
}

#[derive(PartialEq)]
enum PathState {
    Missing,
    EmptyDir,
    Occupied,
}

/// What is at the caller's layout path (outside the layout: the caller chose it).
fn path_state(path: &Path) -> Result<PathState> {
    match std::fs::read_dir(path) {
        Ok(mut entries) => match entries.next() {
            None => Ok(PathState::EmptyDir),
            Some(_) => Ok(PathState::Occupied),
        },
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(PathState::Missing),
        Err(err) if err.kind() == io::ErrorKind::NotADirectory => Ok(PathState::Occupied),
        Err(err) => Err(Error::io("cannot read", path, err)),
    }
}

/// Creates the caller's layout directory (and its missing parents) and makes its entry durable.
fn create_layout_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| Error::io("cannot create layout", path, e))?;
    let parent = path.parent().unwrap_or(Path::new("/"));
    File::open(parent).and_then(|dir| dir.sync_all()).map_err(|e| Error::io("cannot fsync directory", parent, e))
}

fn open_root(path: &Path) -> Result<Root> {
    Root::open(path).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
            invalid_image(format!("{} is not an OCI image layout: {err}", path.display()))
        }
        _ => Error::io("cannot open layout", path, err),
    })
}

/// The layout's absolute path, so that a later change of working directory does not matter.
fn absolute(path: &Path) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        return Err(crate::error::invalid_argument("the layout path is empty"));
    }
    std::path::absolute(path).map_err(|e| Error::io("cannot resolve", path, e))
}
