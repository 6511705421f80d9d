//! A commit of a blob already stored makes it young, so a GC that starts before the writer tags
//! or leases it keeps it ("blobs committed during a GC, or in the second before it, are kept ...
//! so a writer may commit first and tag next", README). A blob file with a second link (a layout
//! cloned with `cp -al`, deduplicated by hardlink(1), or the temp name a killed writer left)
//! cannot have its time refreshed, as that time is the other name's too: the commit replaces it
//! with its own fresh file instead (found by an outside attack).

use crate::common;

use std::path::{Path, PathBuf};

use common::fixture::{age_blob, store};
use ocicas::{Engine, ErrorKind, GcOptions, Labels, OpenOptions, StoredBlob, WriterOptions};

fn blob_file(engine: &Engine, blob: &StoredBlob) -> PathBuf {
    engine.root().join("blobs/sha256").join(blob.digest.hex())
}

/// Stores `bytes`, garbage for an hour (its tag was removed long ago), its file also named `other`.
fn old_blob_with_a_second_link(engine: &Engine, bytes: &[u8], other: &Path) -> StoredBlob {
    let blob = engine.put_blob(bytes).unwrap();
    age_blob(engine, &blob.digest);
    std::fs::hard_link(blob_file(engine, &blob), other).unwrap();
    blob
}

/// A GC in another engine, as `ocicas gc` in another process starting right after the commit.
fn gc_from_elsewhere(engine: &Engine) -> String {
    let collector = Engine::open(engine.root(), &OpenOptions::default()).unwrap();
    format!("{:?}", collector.gc(&GcOptions::default()).unwrap())
}

#[test]
fn a_blob_put_again_whose_file_has_a_second_link_survives_a_gc_right_after_the_put() {
    let (dir, engine) = store();
    let clone = dir.path().join("clone-of-the-blob");
    let bytes = b"a layer stored long ago";
    let layer = old_blob_with_a_second_link(&engine, bytes, &clone);

    assert_eq!(engine.put_blob(bytes).unwrap(), layer);
    let report = gc_from_elsewhere(&engine);
    assert!(engine.has_blob(&layer.digest).unwrap(), "the blob put just before the GC was removed: {report}");
    assert_eq!(engine.read_blob(&layer.digest, 1 << 20).unwrap(), bytes);
    // The clone's name still holds its own copy, and its time was not moved.
    assert_eq!(std::fs::read(&clone).unwrap(), bytes);
    let clone_age = std::fs::metadata(&clone).unwrap().modified().unwrap().elapsed().unwrap();
    assert!(clone_age.as_secs() >= 3000, "the clone's file time was refreshed: {clone_age:?} old");
}

#[test]
fn a_blob_batch_put_again_whose_file_has_a_second_link_survives_a_gc_right_after_the_put() {
    let (dir, engine) = store();
    let bytes = b"a batched layer stored long ago";
    let layer = old_blob_with_a_second_link(&engine, bytes, &dir.path().join("clone"));

    assert_eq!(engine.put_blobs(&[bytes.as_slice()]).unwrap(), vec![layer.clone()]);
    let report = gc_from_elsewhere(&engine);
    assert!(engine.has_blob(&layer.digest).unwrap(), "the blob put just before the GC was removed: {report}");
}

/// The second link ocicas leaves itself: a writer killed between the link of its temp file into
/// `blobs/` and the removal of the temp name (which GC sweeps later).
#[test]
fn a_blob_put_again_whose_killed_writer_left_its_temp_name_survives_a_gc_right_after_the_put() {
    let (_dir, engine) = store();
    let bytes = b"a layer of a killed writer";
    let temp_name = engine.root().join(".ocicas/tmp/4242-0-123456789");
    let layer = old_blob_with_a_second_link(&engine, bytes, &temp_name);

    engine.put_blob(bytes).unwrap();
    let report = gc_from_elsewhere(&engine);
    assert!(engine.has_blob(&layer.digest).unwrap(), "the blob put just before the GC was removed: {report}");
}

#[test]
fn a_blob_committed_again_by_a_writer_whose_file_has_a_second_link_survives_a_gc_right_after_the_commit() {
    let (dir, engine) = store();
    let bytes = b"a layer a writer commits again";
    let layer = old_blob_with_a_second_link(&engine, bytes, &dir.path().join("clone"));

    let mut writer = engine.writer("again", &WriterOptions::default()).unwrap();
    writer.write(bytes).unwrap();
    let err = writer.commit(None, Some(&layer.digest), &Labels::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    let report = gc_from_elsewhere(&engine);
    assert!(engine.has_blob(&layer.digest).unwrap(), "the blob committed just before the GC was removed: {report}");
}

/// A writer opened with the digest it will write is told at once that a stored blob exists, and
/// its time refreshed; a blob whose time cannot be refreshed is not claimed: the writer writes
/// it, and the commit gives it the grace.
#[test]
fn a_writer_expecting_a_blob_whose_file_has_a_second_link_writes_it_and_the_commit_protects_it() {
    let (dir, engine) = store();
    let bytes = b"a layer a writer expects";
    let layer = old_blob_with_a_second_link(&engine, bytes, &dir.path().join("clone"));

    let options = WriterOptions { expected_digest: Some(layer.digest.clone()), ..WriterOptions::default() };
    let mut writer = engine.writer("expected", &options).unwrap();
    writer.write(bytes).unwrap();
    let err = writer.commit(None, None, &Labels::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    let report = gc_from_elsewhere(&engine);
    assert!(engine.has_blob(&layer.digest).unwrap(), "the blob committed just before the GC was removed: {report}");
    // With one link again, the next writer expecting it is told at once.
    let err = engine.writer("expected-again", &options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
}

/// The replacement keeps the blob's creation time, as a refresh of its mtime does.
#[test]
fn a_blob_replaced_to_refresh_it_keeps_its_creation_time() {
    let (dir, engine) = store();
    let bytes = b"a layer whose creation time stays";
    let layer = old_blob_with_a_second_link(&engine, bytes, &dir.path().join("clone"));
    let created = engine.info(&layer.digest).unwrap().created_at;
    engine.put_blob(bytes).unwrap();
    assert_eq!(engine.info(&layer.digest).unwrap().created_at, created);
}
