//! Layouts with hand-made documents for the GC graph and fsck tests: raw blobs, index.json
//! entries written as other tools would (past the checks of `ref_put`), aged blobs.
#![allow(dead_code)] // each test file uses its own part

use std::fs;

use ocicas::spec::{Descriptor, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_MANIFEST};
use ocicas::{Digest, Engine, GcOptions, GcReport};
use serde_json::{Value, json};

use crate::common::fixture::age_blobs;

pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// Stores `bytes` and returns a descriptor of `media_type` for them.
pub fn put(engine: &Engine, media_type: &str, bytes: &[u8]) -> Descriptor {
    let blob = engine.put_blob(bytes).unwrap();
    Descriptor::new(media_type, blob.digest, blob.size)
}

/// Stores `value` as JSON with `prefix` (whitespace, say) before it.
pub fn put_json(engine: &Engine, media_type: &str, prefix: &str, value: &Value) -> Descriptor {
    put(engine, media_type, format!("{prefix}{value}").as_bytes())
}

/// A one-layer OCI image (not tagged): its manifest, and every blob of it. The manifest's JSON
/// starts with `prefix`.
pub fn image(engine: &Engine, name: &str, prefix: &str) -> (Descriptor, Vec<Digest>) {
    let layer = put(engine, LAYER_TAR, format!("layer of {name}").as_bytes());
    let config = json!({"architecture": "amd64", "os": "linux",
                        "rootfs": {"type": "layers", "diff_ids": [layer.digest]}});
    let config = put_json(engine, MEDIA_TYPE_IMAGE_CONFIG, "", &config);
    let manifest = json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
                          "config": config, "layers": [layer]});
    let manifest = put_json(engine, MEDIA_TYPE_IMAGE_MANIFEST, prefix, &manifest);
    let blobs = vec![manifest.digest.clone(), config.digest, layer.digest];
    (manifest, blobs)
}

/// Adds `entry` (a descriptor as JSON, with a ref name when `name` is given) to index.json as
/// another tool would, without ocicas' checks.
pub fn add_index_entry(engine: &Engine, name: Option<&str>, mut entry: Value) {
    if let Some(name) = name {
        entry["annotations"] = json!({"org.opencontainers.image.ref.name": name});
    }
    edit_index(engine, |index| index["manifests"].as_array_mut().unwrap().push(entry));
}

/// Rewrites index.json with `edit`.
pub fn edit_index(engine: &Engine, edit: impl FnOnce(&mut Value)) {
    let path = engine.root().join("index.json");
    let mut index: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    edit(&mut index);
    fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Ages every blob (past GC's grace for blobs committed while it runs, which would keep and
/// walk them) and runs a GC that must succeed.
pub fn gc(engine: &Engine) -> GcReport {
    age_blobs(engine.root());
    engine.gc(&GcOptions::default()).unwrap()
}

pub fn stored(engine: &Engine, digests: &[Digest]) -> bool {
    digests.iter().all(|digest| engine.has_blob(digest).unwrap())
}

/// The report's problems joined, for assertions and their messages.
pub fn problems(engine: &Engine) -> String {
    engine.fsck().unwrap().problems.join("\n")
}
