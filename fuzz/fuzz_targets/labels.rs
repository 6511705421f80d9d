#![no_main]
//! A blob's labels file as anything: raw bytes, or a JSON object of fuzzer strings. Reading it
//! (`info`, `walk` with a label filter, GC) is a value or an error, never a panic; labels that
//! were read can be written back, and read back the same.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ocicas::{Digest, Engine, Filters, GcOptions};

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(Vec<u8>),
    Object(BTreeMap<String, String>),
}

/// One store for the whole run, holding one blob whose labels file each input replaces.
fn store() -> &'static (tempfile::TempDir, Engine, Digest, PathBuf) {
    static STORE: OnceLock<(tempfile::TempDir, Engine, Digest, PathBuf)> = OnceLock::new();
    STORE.get_or_init(|| {
        let (dir, engine) = ocicas_fuzz::fresh_store();
        let digest = engine.put_blob(b"labelled").expect("a blob").digest;
        let mut labels = ocicas::Labels::new();
        labels.insert("seed".to_owned(), "label".to_owned());
        engine.update_labels(&digest, &labels, &[]).expect("labels");
        let file = engine.root().join(".ocicas/labels/sha256").join(digest.hex());
        assert!(file.is_file(), "labels are not where the layout keeps them: {}", file.display());
        (dir, engine, digest, file)
    })
}

fuzz_target!(|input: Input| {
    let (_, engine, digest, file) = store();
    let bytes = match input {
        Input::Raw(bytes) => bytes,
        Input::Object(labels) => serde_json::to_vec(&labels).expect("JSON"),
    };
    std::fs::write(file, &bytes).expect("replacing the labels file");

    let _ = engine.gc(&GcOptions { dry_run: true, ..GcOptions::default() });
    let _ = engine.walk(&Filters::parse(&["labels.seed==label"]).expect("a filter"), |info| {
        let _ = info.to_json();
        Ok(true)
    });
    let Ok(info) = engine.info(digest) else { return };
    let _ = info.to_json();
    if engine.update_labels(digest, &info.labels, &[]).is_ok() {
        let again = engine.info(digest).expect("labels just written read back");
        assert_eq!(again.labels, info.labels, "labels changed on a write back");
    }
});
