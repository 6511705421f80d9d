//! The layouts tests start from, and the files of a layout tests reach into.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use ocicas::layout::{OsStorage, Root, Storage};
use ocicas::{Algorithm, Digest, Engine, OpenOptions, WriterOptions};

use super::cli::{run, s};

/// A new empty layout in a temp dir, and its engine; the layout goes with the dir.
pub fn store() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path().join("layout")).unwrap();
    (dir, engine)
}

/// The directory of the ingest of `ref_name` in `layout`.
pub fn ingest_dir(layout: &Path, ref_name: &str) -> PathBuf {
    layout.join(".ocicas/ingest").join(Digest::of_bytes(Algorithm::Sha256, ref_name.as_bytes()).hex())
}

/// An ingest of `ref_name` left by a writer that was closed after `bytes`.
pub fn closed_ingest(layout: &Path, ref_name: &str, bytes: &[u8]) {
    let engine = Engine::open(layout, &OpenOptions::default()).unwrap();
    let mut writer = engine.writer(ref_name, &WriterOptions::default()).unwrap();
    writer.write(bytes).unwrap();
    writer.close().unwrap();
}

/// The storage of the real file system, which runs a hook once, when the store lock is first
/// opened: in GC, between its unlocked mark and the locked one; in a commit, between the check
/// that the data file is still the writer's and its rename into `blobs/`.
pub struct BeforeFirstLock {
    hook: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl BeforeFirstLock {
    pub fn new(hook: impl FnOnce() + Send + 'static) -> BeforeFirstLock {
        BeforeFirstLock { hook: Mutex::new(Some(Box::new(hook))) }
    }
}

impl Storage for BeforeFirstLock {
    fn open_lock(&self, root: &Root, path: &Path) -> std::io::Result<std::fs::File> {
        if let Some(hook) = self.hook.lock().unwrap().take() {
            hook();
        }
        OsStorage.open_lock(root, path)
    }
}

/// `n` bytes of a simple pattern, another for each `seed` (they compress, unlike `Rng::bytes`).
pub fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Sets the mtime of `path` an hour back: a blob so old is past GC's grace for blobs committed
/// while it runs.
pub fn age(path: &Path) {
    // futimens needs ownership of the file, not a writable descriptor (blobs are 0444).
    std::fs::File::open(path).unwrap().set_modified(SystemTime::now() - Duration::from_secs(3600)).unwrap();
}

/// Ages the file of blob `digest` (see `age`).
pub fn age_blob(engine: &Engine, digest: &Digest) {
    age(&engine.root().join("blobs").join(digest.algorithm().name()).join(digest.hex()));
}

/// Ages every sha256 blob file of `layout` (see `age`).
pub fn age_blobs(layout: &Path) {
    for name in blob_files(layout) {
        age(&layout.join("blobs/sha256").join(name));
    }
}

/// The names of the files in `blobs/sha256` of `layout` (none when there is no such directory).
pub fn blob_files(layout: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(layout.join("blobs/sha256")) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().into_string().unwrap()).collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Copies `from` to `to` with `cp -a`, replacing what was at `to`.
pub fn copy_layout(from: &Path, to: &Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).unwrap();
    }
    run("cp", &["-a", s(from), s(to)]);
}
