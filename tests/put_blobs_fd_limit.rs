//! The batch put under a low open-file limit (found by an outside attack): a group used to hold
//! 256 temp files open at once, so under RLIMIT_NOFILE 128 a batch of 300 small blobs failed with
//! EMFILE while each of them could be put alone. Groups are now sized from the soft limit, and
//! running out of descriptors anyway is an error that names the limit.

mod common;

use std::fs::File;

use common::child::{child, child_engine, role};
use common::fixture::store;

const BATCH: usize = 300;
const LIMIT: u64 = 128;

fn payloads() -> Vec<Vec<u8>> {
    (0..BATCH).map(|i| format!("fd-limited blob {i}").into_bytes()).collect()
}

fn lower_open_file_limit() {
    let limit = libc::rlimit { rlim_cur: LIMIT, rlim_max: LIMIT };
    // SAFETY: plain syscall lowering this child's own limit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

/// Runs `test` again in a child in role `role` on a new layout; asserts it exited 0.
fn run_child(test: &str, role: &str) {
    let (_dir, engine) = store();
    let out = child(test, role, engine.root()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
}

#[test]
fn a_batch_put_works_under_an_open_file_limit_that_single_puts_work_under() {
    if role().as_deref() == Some("limited") {
        lower_open_file_limit();
        let engine = child_engine();
        let payloads = payloads();
        for bytes in &payloads {
            engine.put_blob(bytes).expect("single put under the limit");
        }
        let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let stored = engine.put_blobs(&slices).expect("the batch put under the limit");
        assert_eq!(stored.len(), BATCH);
        let fresh: Vec<Vec<u8>> = payloads.iter().map(|bytes| [bytes.as_slice(), b" again"].concat()).collect();
        let slices: Vec<&[u8]> = fresh.iter().map(Vec::as_slice).collect();
        engine.put_blobs(&slices).expect("a batch of new blobs under the limit");
        assert_eq!(engine.list_blobs().unwrap().len(), 2 * BATCH);
        return;
    }
    run_child("a_batch_put_works_under_an_open_file_limit_that_single_puts_work_under", "limited");
}

#[test]
fn a_put_that_runs_out_of_file_descriptors_names_the_open_file_limit() {
    if role().as_deref() == Some("exhausted") {
        lower_open_file_limit();
        let engine = child_engine();
        // Everything the limit allows, held by the rest of the process.
        let held: Vec<File> = std::iter::from_fn(|| File::open("/dev/null").ok()).collect();
        assert!(held.len() < LIMIT as usize);
        for err in [engine.put_blob(b"one").unwrap_err(), engine.put_blobs(&[b"two".as_slice()]).unwrap_err()] {
            assert!(
                err.message().contains("RLIMIT_NOFILE") && err.message().contains(&LIMIT.to_string()),
                "the error does not name the open-file limit: {err}"
            );
        }
        drop(held);
        engine.put_blobs(&[b"two".as_slice()]).expect("a put once descriptors are free again");
        return;
    }
    run_child("a_put_that_runs_out_of_file_descriptors_names_the_open_file_limit", "exhausted");
}
