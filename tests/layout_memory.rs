//! Issue 18 item 5: metadata files of a gigabyte planted in a layout are refused in bounded
//! memory. Alone in its test binary, so that the peak memory a child reports is its own (see
//! `common::cli::Finished::peak_rss_kib`).

mod common;

use std::path::Path;

use common::cli::{TOO_LARGE, ocicas_watched};
use common::fixture::{closed_ingest, ingest_dir};
use ocicas::{Algorithm, Digest, Engine, OpenOptions};

/// Peak memory any command here may use on a tiny layout, planted files of gigabytes included.
const MEMORY_BOUND_KIB: i64 = 64 * 1024;

/// A sparse file of 1 GiB: no disk, but a reader that trusts its size allocates it.
fn sparse_gib(path: &Path) {
    std::fs::File::create(path).unwrap().set_len(1 << 30).unwrap();
}

#[test]
fn metadata_files_of_a_gigabyte_are_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    Engine::create(&layout).unwrap();
    let l = layout.to_str().unwrap();
    let blob = Engine::open(&layout, &OpenOptions::default()).unwrap().put_blob(b"labelled").unwrap();
    // An ingest whose `ref` is 1 GiB: damaged, skipped by `ingest ls`, removed by GC.
    closed_ingest(&layout, "huge-ref", b"x");
    sparse_gib(&ingest_dir(&layout, "huge-ref").join("ref"));
    // An ingest whose saved hash state is 1 GiB: not trusted, the data is hashed instead.
    closed_ingest(&layout, "huge-state", b"hello ");
    sparse_gib(&ingest_dir(&layout, "huge-state").join("hashstate"));
    // A labels file and a lease of 1 GiB.
    std::fs::create_dir_all(layout.join(".ocicas/labels/sha256")).unwrap();
    sparse_gib(&layout.join(".ocicas/labels/sha256").join(blob.digest.hex()));
    std::fs::create_dir_all(layout.join(".ocicas/leases")).unwrap();
    sparse_gib(&layout.join(".ocicas/leases/big"));

    let digest = blob.digest.to_string();
    for (args, stdin, code) in [
        (vec!["ingest", "ls", l], &b""[..], 0),
        (vec!["blob", "put", l, "-", "--ref", "huge-state"], b"hello world", 0),
        (vec!["blob", "info", l, &digest], b"", TOO_LARGE),
        (vec!["lease", "ls", l], b"", TOO_LARGE),
        (vec!["gc", l, "--ingest-expiry", "0s"], b"", TOO_LARGE),
    ] {
        let run = ocicas_watched(&args, stdin);
        assert_eq!(run.code, Some(code), "`ocicas {}`: {}", args.join(" "), run.stderr);
        if code == TOO_LARGE {
            assert!(
                run.stderr.contains("_size"),
                "`ocicas {}` does not name the limit: {}",
                args.join(" "),
                run.stderr
            );
        }
        assert!(run.peak_rss_kib < MEMORY_BOUND_KIB, "`ocicas {}` peaked at {} KiB", args.join(" "), run.peak_rss_kib);
    }
    let hello_world = Digest::of_bytes(Algorithm::Sha256, b"hello world");
    Engine::open(&layout, &OpenOptions::default()).unwrap().verify_blob(&hello_world).unwrap();
}
