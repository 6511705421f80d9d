#![no_main]
//! index.json as anything: opening the layout and reading its index is an error or a value,
//! never a panic. When it opens, fsck runs, and tagging through it keeps every other entry
//! (those it cannot read too) and every field we do not know.

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ocicas::spec::{ANNOTATION_REF_NAME, MEDIA_TYPE_IMAGE_MANIFEST, unusable_entry_ref_name};
use ocicas::{Descriptor, Engine, OpenOptions};

const TAG: &str = "fuzz/tagged:1";

/// One layout for the whole run (only its index.json changes between inputs), holding one
/// manifest to tag.
struct Layout {
    _dir: tempfile::TempDir,
    root: PathBuf,
    blob: Descriptor,
}

fn layout() -> &'static Layout {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let (dir, engine) = ocicas_fuzz::fresh_store();
        let manifest = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
        let blob = engine.put_blob(manifest).expect("a blob");
        Layout {
            root: engine.root().to_path_buf(),
            _dir: dir,
            blob: Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, blob.digest, blob.size),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let layout = layout();
    std::fs::write(layout.root.join("index.json"), data).expect("index.json is writable");
    let Ok(engine) = Engine::open(&layout.root, &OpenOptions::default()) else { return };
    let before = engine.read_index().expect("the index that opened reads again");
    let _ = engine.fsck();
    engine.ref_put(TAG, &layout.blob, true).expect("tagging a stored blob");
    let after = engine.read_index().expect("the index we wrote reads back");
    let mut expected = before.clone();
    expected.manifests.retain(|d| d.ref_name() != Some(TAG));
    expected.unusable_manifests.retain(|e| unusable_entry_ref_name(e) != Some(TAG));
    expected.manifests_null = false;
    let mut tagged = layout.blob.clone();
    tagged.annotations.insert(ANNOTATION_REF_NAME.to_owned(), TAG.to_owned());
    expected.manifests.push(tagged.clone());
    assert_eq!(after, expected, "tagging changed more of index.json than the one tag");
    assert_eq!(engine.ref_get(TAG).expect("the new tag"), tagged);
});
