//! The on-disk OCI image layout: creating and validating it, its paths, the store lock, and
//! atomic file replacement. Every write goes through the `Storage` seam.

mod storage;

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use storage::{OsStorage, Storage};

use crate::digest::{Algorithm, Digest};
use crate::error::{Error, ErrorKind, Result, invalid_image};
use crate::limits::{Limit, Limits};
use crate::spec::{ImageIndex, MEDIA_TYPE_IMAGE_INDEX};

/// Temp files younger than this are never swept: they may not be flocked yet.
const TEMP_FILE_MIN_AGE: Duration = Duration::from_secs(1);

pub const LAYOUT_VERSION: &str = "1.0.0";

/// How to open a layout.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Create the layout when the path does not exist (or is an empty directory).
    pub create: bool,
    /// The bounds this engine enforces.
    pub limits: Limits,
}

/// An open OCI image layout. Shareable between threads; all state is on disk, so several
/// engines (in this or other processes) may use one layout at once.
#[derive(Clone)]
pub struct Engine {
    root: PathBuf,
    storage: Arc<dyn Storage>,
    limits: Limits,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("root", &self.root).finish()
    }
}

impl Engine {
    /// Creates a new layout at `path`; `AlreadyExists` when anything is there already
    /// (umoci's CreateLayout).
    pub fn create(path: impl AsRef<Path>) -> Result<Engine> {
        Engine::create_with(path.as_ref(), Arc::new(OsStorage), Limits::default())
    }

    /// Opens the layout at `path`, validating it, or creates it when `options.create` is set and
    /// nothing (or an empty directory) is there.
    pub fn open(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Engine> {
        Engine::open_with(path.as_ref(), options, Arc::new(OsStorage))
    }

    /// `open` over another storage implementation (fault injection in tests).
    pub fn open_with(path: &Path, options: &OpenOptions, storage: Arc<dyn Storage>) -> Result<Engine> {
        if options.create && path_state(path)? != PathState::Occupied {
            return match Engine::create_with(path, storage.clone(), options.limits) {
                // Another process created it in between: open what it made.
                Err(err) if err.kind() == ErrorKind::AlreadyExists => Engine::open_existing(path, options, storage),
                result => result,
            };
        }
        Engine::open_existing(path, options, storage)
    }

    fn open_existing(path: &Path, options: &OpenOptions, storage: Arc<dyn Storage>) -> Result<Engine> {
        let root = absolute(path)?;
        let engine = Engine { root, storage, limits: options.limits };
        engine.validate()?;
        Ok(engine)
    }

    fn create_with(path: &Path, storage: Arc<dyn Storage>, limits: Limits) -> Result<Engine> {
        let root = absolute(path)?;
        match path_state(&root)? {
            PathState::Missing => {
                storage.create_dir_all(&root).map_err(|e| Error::io("cannot create layout", &root, e))?
            }
            PathState::EmptyDir => {}
            PathState::Occupied => return Err(already_exists(&root)),
        }
        let engine = Engine { root, storage, limits };
        for algorithm in Algorithm::ALL {
            engine.create_dir(&engine.blob_dir(algorithm))?;
        }
        engine.create_dir(&engine.private_dir())?;
        let oci_layout = serde_json::json!({ "imageLayoutVersion": LAYOUT_VERSION });
        engine.replace_file(&engine.root.join("oci-layout"), &crate::spec::canonical_json(&oci_layout)?)?;
        // index.json last: its presence is what makes the directory a layout.
        engine.write_index(&ImageIndex::empty())?;
        Ok(engine)
    }

    fn validate(&self) -> Result<()> {
        let oci_layout_path = self.root.join("oci-layout");
        let bytes = self.read_json_file(&oci_layout_path).map_err(|err| match err.kind() {
            ErrorKind::NotFound => invalid_image(format!(
                "{} is not an OCI image layout: {} is missing",
                self.root.display(),
                oci_layout_path.display()
            )),
            _ => err,
        })?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| invalid_image(format!("{} is not valid JSON: {e}", oci_layout_path.display())))?;
        match value.get("imageLayoutVersion").and_then(|v| v.as_str()) {
            Some(LAYOUT_VERSION) => {}
            Some(other) => {
                return Err(invalid_image(format!(
                    "{}: unsupported imageLayoutVersion {other:?} (expected {LAYOUT_VERSION:?})",
                    oci_layout_path.display()
                )));
            }
            None => {
                return Err(invalid_image(format!(
                    "{}: imageLayoutVersion is missing or not a string",
                    oci_layout_path.display()
                )));
            }
        }
        self.read_index()?;
        let blobs = self.root.join("blobs");
        match fs::metadata(&blobs) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(invalid_image(format!("{} is not a directory", blobs.display()))),
            Err(err) => Err(invalid_image(format!("{} is missing: {err}", blobs.display()))),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The largest JSON document this engine reads (`limits().json_size`).
    pub fn max_json_size(&self) -> u64 {
        self.limits.json_size
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Changes the limits for what this engine (and clones made from it afterwards) does next.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub(crate) fn storage(&self) -> &dyn Storage {
        &*self.storage
    }

    pub(crate) fn blob_dir(&self, algorithm: Algorithm) -> PathBuf {
        self.root.join("blobs").join(algorithm.name())
    }

    pub(crate) fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blob_dir(digest.algorithm()).join(digest.hex())
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// `.ocicas/`: our private state, which other OCI tools ignore.
    pub(crate) fn private_dir(&self) -> PathBuf {
        self.root.join(".ocicas")
    }

    pub(crate) fn create_dir(&self, path: &Path) -> Result<()> {
        self.storage.create_dir_all(path).map_err(|e| Error::io("cannot create directory", path, e))
    }

    /// Reads index.json as an image index.
    pub fn read_index(&self) -> Result<ImageIndex> {
        let path = self.index_path();
        let bytes = self.read_json_file(&path).map_err(|err| match err.kind() {
            ErrorKind::NotFound => invalid_image(format!("{} is missing", path.display())),
            _ => err,
        })?;
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| invalid_image(format!("{} is not an OCI image index: {e}", path.display())))?;
        if index.schema_version != 2 {
            return Err(invalid_image(format!(
                "{} is not an OCI image index: schemaVersion is {}, expected 2",
                path.display(),
                index.schema_version
            )));
        }
        if let Some(media_type) = &index.media_type
            && media_type != MEDIA_TYPE_IMAGE_INDEX
        {
            return Err(invalid_image(format!(
                "{} is not an OCI image index: mediaType is {media_type:?}",
                path.display()
            )));
        }
        Ok(index)
    }

    /// Replaces index.json atomically. Callers hold the exclusive store lock.
    pub(crate) fn write_index(&self, index: &ImageIndex) -> Result<()> {
        self.replace_file(&self.index_path(), &crate::spec::canonical_json(index)?)
    }

    /// Reads a whole file that holds a JSON document, refusing one over the size limit before
    /// reading it.
    pub(crate) fn read_json_file(&self, path: &Path) -> Result<Vec<u8>> {
        let file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
        self.limits.read_capped(file, Limit::JsonSize, &path.display().to_string())
    }

    /// Write to a temp file, fsync, rename over `dest`, fsync the directory: `dest` is always
    /// either its old or its new content.
    pub(crate) fn replace_file(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let mut temp = self.temp_file()?;
        temp.write_all(bytes)?;
        temp.sync()?;
        temp.rename_to(dest)?;
        self.sync_parent(dest)
    }

    pub(crate) fn sync_parent(&self, path: &Path) -> Result<()> {
        let dir = path.parent().unwrap_or(&self.root);
        self.storage.sync_dir(dir).map_err(|e| Error::io("cannot fsync directory", dir, e))
    }

    /// A new, uniquely named temp file under `.ocicas/tmp/`, on the same file system as
    /// `blobs/` so that a rename can publish it. Removed on drop unless renamed.
    pub(crate) fn temp_file(&self) -> Result<TempFile<'_>> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = self.private_dir().join("tmp");
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
            match self.storage.create_new(&path) {
                Ok(file) => {
                    // Marks the file live for GC (see sweep_temp_files); released with the file.
                    file.try_lock().map_err(|e| Error::io("cannot lock temp file", &path, io::Error::other(e)))?;
                    return Ok(TempFile { engine: self, path, file: Some(file) });
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(Error::io("cannot create temp file", &path, err)),
            }
        }
    }

    /// GC's part: removes the temp files under `.ocicas/tmp/` that no live writer holds (each
    /// writer flocks its temp file from creation to rename). Returns how many.
    pub(crate) fn sweep_temp_files(&self, dry_run: bool) -> Result<u64> {
        let dir = self.private_dir().join("tmp");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(err) => return Err(Error::io("cannot list", &dir, err)),
        };
        let mut removed = 0;
        for entry in entries {
            let path = entry.map_err(|e| Error::io("cannot list", &dir, e))?.path();
            // A file this young may be between its creation and its writer's flock.
            let age = fs::symlink_metadata(&path).ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
            if age.is_none_or(|age| age < TEMP_FILE_MIN_AGE) {
                continue;
            }
            let Ok(file) =
                fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(&path)
            else {
                continue;
            };
            if file.try_lock().is_err() {
                continue;
            }
            if !dry_run {
                match self.storage.remove_file(&path) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                    Err(err) => return Err(Error::io("cannot remove", &path, err)),
                }
            }
            removed += 1;
        }
        Ok(removed)
    }

    /// The store lock, shared: held while committing blobs so a GC sweep cannot interleave.
    pub(crate) fn lock_shared(&self) -> Result<StoreLock> {
        let file = self.open_lock_file()?;
        file.lock_shared().map_err(|e| Error::io("cannot lock", &self.lock_path(), e))?;
        Ok(StoreLock { _file: file })
    }

    /// The store lock, exclusive: index.json read-modify-write and GC sweeps.
    pub(crate) fn lock_exclusive(&self) -> Result<StoreLock> {
        let file = self.open_lock_file()?;
        file.lock().map_err(|e| Error::io("cannot lock", &self.lock_path(), e))?;
        Ok(StoreLock { _file: file })
    }

    fn lock_path(&self) -> PathBuf {
        self.private_dir().join("lock")
    }

    /// A fresh open file description per lock, so that threads of one process exclude each
    /// other too (flock is per open file description).
    fn open_lock_file(&self) -> Result<File> {
        self.create_dir(&self.private_dir())?;
        let path = self.lock_path();
        self.storage.open_lock(&path).map_err(|e| Error::io("cannot open lock file", &path, e))
    }
}

/// Held lock on `.ocicas/lock`; released when dropped.
pub(crate) struct StoreLock {
    _file: File,
}

pub(crate) struct TempFile<'e> {
    engine: &'e Engine,
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
        self.engine.storage.write_all(file, bytes).map_err(|e| Error::io("cannot write", &self.path, e))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn sync(&self) -> Result<()> {
        self.engine.storage.sync_file(self.file()).map_err(|e| Error::io("cannot fsync", &self.path, e))
    }

    /// The file was moved away by its owner: do not remove anything on drop.
    pub(crate) fn disarm(mut self) {
        self.file = None;
    }

    /// Renames the temp file to `dest` (the caller fsyncs the directory).
    pub(crate) fn rename_to(mut self, dest: &Path) -> Result<()> {
        self.engine
            .storage
            .rename(&self.path, dest)
            .map_err(|e| Error::io(&format!("cannot rename {} to", self.path.display()), dest, e))?;
        self.file = None;
        Ok(())
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Best effort: a leftover temp file is private state that GC removes.
            let _ = self.engine.storage.remove_file(&self.path);
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

fn path_state(path: &Path) -> Result<PathState> {
    match fs::read_dir(path) {
        Ok(mut entries) => match entries.next() {
            None => Ok(PathState::EmptyDir),
            Some(_) => Ok(PathState::Occupied),
        },
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(PathState::Missing),
        Err(err) if err.kind() == io::ErrorKind::NotADirectory => Ok(PathState::Occupied),
        Err(err) => Err(Error::io("cannot read", path, err)),
    }
}

/// The layout's absolute path, so that a later change of working directory does not matter.
fn absolute(path: &Path) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        return Err(crate::error::invalid_argument("the layout path is empty"));
    }
    std::path::absolute(path).map_err(|e| Error::io("cannot resolve", path, e))
}
