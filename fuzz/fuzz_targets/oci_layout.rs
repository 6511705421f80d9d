#![no_main]
//! `oci-layout` as anything: opening the layout is an engine or an error, never a panic; a
//! layout that opens passes fsck's reading of it.

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ocicas::{Engine, OpenOptions};

/// One layout for the whole run; only its `oci-layout` changes between inputs.
fn layout() -> &'static (tempfile::TempDir, PathBuf) {
    static LAYOUT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let (dir, engine) = ocicas_fuzz::fresh_store();
        let root = engine.root().to_path_buf();
        (dir, root)
    })
}

fuzz_target!(|data: &[u8]| {
    let (_, root) = layout();
    std::fs::write(root.join("oci-layout"), data).expect("oci-layout is writable");
    let Ok(engine) = Engine::open(root, &OpenOptions::default()) else { return };
    let _ = engine.fsck();
});
