//! `Engine`: an open store, the handle every operation of the public API takes. It holds the
//! layout (directory handle, storage seam, limits); the operations live in their own modules
//! (content, stream, refs, gc, fsck, archive, registry) as `impl Engine` blocks.

use std::path::Path;
use std::sync::Arc;

use crate::error::Result;
use crate::layout::{Layout, OsStorage, Storage};
use crate::limits::Limits;
use crate::spec::ImageIndex;

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
    pub(crate) layout: Layout,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("root", &self.root()).finish()
    }
}

impl Engine {
    /// Creates a new layout at `path`; `AlreadyExists` when anything is there already
    /// (umoci's CreateLayout).
    pub fn create(path: impl AsRef<Path>) -> Result<Engine> {
        let layout = Layout::create(path.as_ref(), Arc::new(OsStorage), Limits::default())?;
        Ok(Engine { layout })
    }

    /// Opens the layout at `path`, validating it, or creates it when `options.create` is set and
    /// nothing (or an empty directory) is there.
    pub fn open(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Engine> {
        Engine::open_with(path.as_ref(), options, Arc::new(OsStorage))
    }

    /// `open` over another storage implementation (fault injection in tests).
    pub fn open_with(path: &Path, options: &OpenOptions, storage: Arc<dyn Storage>) -> Result<Engine> {
        let layout = Layout::open(path, options.create, options.limits, storage)?;
        Ok(Engine { layout })
    }

    /// The layout's directory, as given when it was opened (made absolute).
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    pub fn limits(&self) -> &Limits {
        self.layout.limits()
    }

    /// Changes the limits for what this engine (and clones made from it afterwards) does next.
    pub fn set_limits(&mut self, limits: Limits) {
        self.layout.set_limits(limits);
    }

    /// The largest JSON document this engine reads (`limits().json_size`).
    pub fn max_json_size(&self) -> u64 {
        self.layout.max_json_size()
    }

    /// Reads index.json as an image index.
    pub fn read_index(&self) -> Result<ImageIndex> {
        self.layout.read_index()
    }
}

/// For unit tests: an engine over a new layout in a temp dir, which lives as long as the guard.
#[cfg(test)]
pub(crate) fn temp_engine() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path().join("layout")).unwrap();
    (dir, engine)
}
