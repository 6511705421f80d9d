#![no_main]
//! A lease file as anything: raw bytes, or a lease object of fuzzer values (times as fuzzer
//! strings). Reading it (`lease_list`, `lease_get`, GC) is a value or an error, never a panic;
//! a lease that reads can have a blob added, and reads back with it and otherwise unchanged.

use std::path::PathBuf;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ocicas::{Digest, Engine, GcOptions, LeaseResource};

const ID: &str = "fuzz-lease";

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(Vec<u8>),
    Lease { created_at: String, expires_at: Option<String>, digests: Vec<String>, ingests: Vec<String> },
}

/// One store for the whole run, holding one blob to lease; each input replaces the lease file.
fn store() -> &'static (tempfile::TempDir, Engine, Digest, PathBuf) {
    static STORE: OnceLock<(tempfile::TempDir, Engine, Digest, PathBuf)> = OnceLock::new();
    STORE.get_or_init(|| {
        let (dir, engine) = ocicas_fuzz::fresh_store();
        let digest = engine.put_blob(b"leased").expect("a blob").digest;
        engine.lease_new(Some(ID), None).expect("a lease");
        let file = engine.root().join(".ocicas/leases").join(ID);
        assert!(file.is_file(), "the lease is not where the layout keeps it: {}", file.display());
        (dir, engine, digest, file)
    })
}

fuzz_target!(|input: Input| {
    let (_, engine, digest, file) = store();
    let bytes = match input {
        Input::Raw(bytes) => bytes,
        Input::Lease { created_at, expires_at, digests, ingests } => serde_json::to_vec(&serde_json::json!({
            "id": ID,
            "createdAt": created_at,
            "expiresAt": expires_at,
            "digests": digests,
            "ingests": ingests,
        }))
        .expect("JSON"),
    };
    std::fs::write(file, &bytes).expect("replacing the lease file");

    if let Ok(leases) = engine.lease_list() {
        for lease in leases {
            let _ = lease.to_json();
        }
    }
    let _ = engine.gc(&GcOptions { dry_run: true, ..GcOptions::default() });
    let Ok(before) = engine.lease_get(ID) else { return };
    let _ = before.to_json();
    if engine.lease_add(ID, LeaseResource::Blob(digest.clone())).is_ok() {
        let after = engine.lease_get(ID).expect("a lease just written reads back");
        assert!(after.digests.contains(digest), "the added blob is not in the lease");
        let mut expected = before.clone();
        if !expected.digests.contains(digest) {
            expected.digests.push(digest.clone());
        }
        assert_eq!(after, expected, "adding a blob changed more of the lease");
    }
});
