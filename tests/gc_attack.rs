//! GC attacked: the layout's blob directories swapped, renamed and replaced by links while GC
//! holds them open (7aa8489: one statat/unlinkat per blob on a directory handle opened once),
//! and writers that tag while GC runs. GC must never touch anything outside the layout, never
//! remove a blob that is referenced when it sweeps, never hang and never panic.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::cli::{OCICAS, s};
use common::fixture::{BeforeFirstLock, age_blob};
use ocicas::spec::{ImageManifest, MEDIA_TYPE_IMAGE_MANIFEST, canonical_json};
use ocicas::{Algorithm, Descriptor, Digest, Engine, GcOptions, OpenOptions};

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// A config, a layer and a manifest over them, stored and aged (past GC's grace), not tagged.
/// Returns the manifest's descriptor and the digests of all three.
fn old_untagged_image(engine: &Engine, salt: &str) -> (Descriptor, Vec<Digest>) {
    let layer = engine.put_blob(format!("layer {salt}").as_bytes()).unwrap();
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "author": salt,
        "rootfs": {"type": "layers", "diff_ids": [layer.digest.to_string()]}});
    let config = engine.put_json(CONFIG, &config).unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_owned()),
        artifact_type: None,
        config: config.clone(),
        layers: vec![Descriptor::new(LAYER, layer.digest.clone(), layer.size)],
        subject: None,
        annotations: Default::default(),
        extra: Default::default(),
    };
    let bytes = canonical_json(&manifest).unwrap();
    let stored = engine.put_blob(&bytes).unwrap();
    let digests = vec![stored.digest.clone(), config.digest.clone(), layer.digest.clone()];
    for digest in &digests {
        age_blob(engine, digest);
    }
    (Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, stored.digest, stored.size), digests)
}

/// Replaces `blobs/sha256` by a new directory holding the same files (same names, bytes and
/// mtimes: each is renamed over), as a restore or a migration of the directory would. The
/// store's content is the same before and after.
fn replace_blob_dir(layout: &Path) {
    let blobs = layout.join("blobs");
    fs::rename(blobs.join("sha256"), blobs.join("sha256.old")).unwrap();
    fs::create_dir(blobs.join("sha256")).unwrap();
    for entry in fs::read_dir(blobs.join("sha256.old")).unwrap() {
        let name = entry.unwrap().file_name();
        fs::rename(blobs.join("sha256.old").join(&name), blobs.join("sha256").join(&name)).unwrap();
    }
    fs::remove_dir(blobs.join("sha256.old")).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Finding: the graph walk keeps the blob directory handle it opened before the store lock.

/// GC marks without the lock, then, under it, reads the roots again and marks the new ones
/// through the same `GraphWalk`, whose `BlobDirs` were opened when the unlocked mark began;
/// the sweep opens `blobs/sha256` afresh. When the directory is replaced between the two (its
/// files moved into a new directory of the same name: the store's content does not change), a
/// manifest tagged meanwhile is looked up in the old, now empty, directory, found "missing",
/// and then, found again by the sweep's fresh handle with its old mtime, removed with its
/// config and layer: the tag points at nothing. Before 7aa8489 every lookup resolved the path
/// afresh and the image was kept.
#[test]
fn an_image_tagged_while_gc_waits_for_the_lock_is_kept_when_the_blob_dir_was_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let engine = Engine::create(&layout).unwrap();
    let (descriptor, digests) = old_untagged_image(&engine, "tagged during gc");
    let hook_layout = layout.clone();
    let hook_descriptor = descriptor.clone();
    // Between the unlocked mark and the locked one: a writer tags the image (an old manifest,
    // as when an image already stored is tagged again), and blobs/sha256 is replaced.
    let storage = Arc::new(BeforeFirstLock::new(move || {
        let writer = Engine::open(&hook_layout, &OpenOptions::default()).unwrap();
        writer.ref_put("latest", &hook_descriptor, false).unwrap();
        replace_blob_dir(&hook_layout);
    }));
    let gc_engine = Engine::open_with(&layout, &OpenOptions::default(), storage).unwrap();
    let report = gc_engine.gc(&GcOptions::default()).unwrap();

    let engine = Engine::open(&layout, &OpenOptions::default()).unwrap();
    for (what, digest) in ["manifest", "config", "layer"].iter().zip(&digests) {
        assert!(
            engine.has_blob(digest).unwrap(),
            "GC removed the {what} {digest} of the image tagged `latest` before it took the lock: {report:?}"
        );
    }
    let fsck = engine.fsck().unwrap();
    assert!(fsck.is_sound(), "{:?}", fsck.problems);
}
