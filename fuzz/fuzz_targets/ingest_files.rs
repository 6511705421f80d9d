#![no_main]
//! An ingest's metadata files as anything: a writer leaves an ingest of `data`, then fuzzer
//! bytes replace `ingest.json` (whole, or a JSON object of fuzzed fields) and `hashstate`.
//! Reading it (`ingest_status`, `ingest_list`, GC) is a value or an error, never a panic; a
//! writer resumed from it either fails or commits a blob that hashes to its digest, whatever
//! the files claimed (a committed blob is never corrupt).

use std::path::PathBuf;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ocicas::{Engine, Filters, GcOptions, Labels, WriterOptions};

const REF: &str = "fuzz-ingest";

#[derive(Arbitrary, Debug)]
struct MetaFields {
    ref_name: Option<String>,
    started_at: Option<String>,
    total: Option<String>,
    expected: Option<String>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    data: Vec<u8>,
    /// Written after the resume, before the commit.
    more: Vec<u8>,
    /// `ingest.json` as these bytes.
    meta: Option<Vec<u8>>,
    /// Else, `ingest.json` as an object with these values (raw JSON text) of its fields.
    meta_fields: Option<MetaFields>,
    hashstate: Option<Vec<u8>>,
    /// Else, the saved hash state with the byte at this index (modulo its length) xored: a
    /// state that parses but is not the data's.
    hashstate_flip: Option<(u16, u8)>,
}

/// One store for the whole run; each input's ingest and blob are removed at its end.
fn store() -> &'static Engine {
    static STORE: OnceLock<(tempfile::TempDir, Engine)> = OnceLock::new();
    &STORE.get_or_init(ocicas_fuzz::fresh_store).1
}

/// The directory of the one ingest in the store.
fn ingest_dir(engine: &Engine) -> PathBuf {
    let root = engine.root().join(".ocicas/ingest");
    let mut dirs = std::fs::read_dir(&root).expect("the ingest directory lists");
    let dir = dirs.next().expect("one ingest").expect("a directory entry").path();
    assert!(dirs.next().is_none(), "more than one ingest");
    dir
}

fuzz_target!(|input: Input| {
    let engine = store();
    let mut writer = engine.writer(REF, &WriterOptions::default()).expect("a new ingest");
    writer.write(&input.data).expect("writing the data");
    writer.close().expect("closing the writer");
    let dir = ingest_dir(engine);
    let meta = input.meta.clone().or_else(|| {
        let fields = input.meta_fields.as_ref()?;
        let field = |name: &str, value: &Option<String>| value.as_ref().map(|v| format!("\"{name}\":{v}"));
        let fields: Vec<String> = [
            field("ref", &fields.ref_name),
            field("startedAt", &fields.started_at),
            field("total", &fields.total),
            field("expected", &fields.expected),
        ]
        .into_iter()
        .flatten()
        .collect();
        Some(format!("{{{}}}", fields.join(",")).into_bytes())
    });
    for (name, bytes) in [("ingest.json", &meta), ("hashstate", &input.hashstate)] {
        if let Some(bytes) = bytes {
            std::fs::write(dir.join(name), bytes).expect("replacing an ingest file");
        }
    }
    if let (None, Some((index, xor))) = (&input.hashstate, input.hashstate_flip)
        && let Ok(mut state) = std::fs::read(dir.join("hashstate"))
        && !state.is_empty()
    {
        let len = state.len();
        state[usize::from(index) % len] ^= xor;
        std::fs::write(dir.join("hashstate"), state).expect("replacing the hash state");
    }

    let _ = engine.ingest_status(REF).map(|status| status.to_json());
    let _ = engine.ingest_list(&Filters::parse::<&str>(&[]).expect("no filter"));
    let _ = engine.gc(&GcOptions { dry_run: true, ..GcOptions::default() });
    if let Ok(mut writer) = engine.writer(REF, &WriterOptions::default()) {
        if writer.write(&input.more).is_ok()
            && let Ok(digest) = writer.commit(None, None, &Labels::new())
        {
            engine.verify_blob(&digest).expect("a committed blob hashes to its digest");
            engine.delete_blob(&digest).expect("removing the blob");
        }
    }
    let _ = engine.ingest_abort(REF);
});
