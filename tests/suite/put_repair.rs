//! A commit must not leave bytes that are not the blob's under its name: putting or committing
//! the right bytes again over a blob that rotted in place (or was planted) at its right size
//! replaces it, so the natural repair of what fsck reports corrupt works (found by an outside
//! attack: "intact" used to mean a regular file of the right size).

use crate::common;

use std::os::unix::fs::PermissionsExt;

use common::fixture::store;
use ocicas::{Algorithm, Digest, Engine, ErrorKind, Labels, WriterOptions};

/// Flips the first byte of blob `digest` in place (bit rot; the size stays).
fn rot(engine: &Engine, digest: &Digest) {
    let path = engine.root().join("blobs/sha256").join(digest.hex());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    assert_eq!(engine.read_blob(digest, 1 << 20).unwrap_err().kind(), ErrorKind::DigestMismatch);
}

fn assert_repaired(engine: &Engine, digest: &Digest, bytes: &[u8], how: &str) {
    let read = engine.read_blob(digest, 1 << 20).map_err(|e| (e.kind(), e.to_string()));
    assert_eq!(read, Ok(bytes.to_vec()), "{how} of the right bytes returned Ok but blob {digest} is still corrupt");
    assert!(engine.fsck().unwrap().problems.is_empty(), "{:?}", engine.fsck().unwrap().problems);
}

#[test]
fn putting_the_right_bytes_again_repairs_a_blob_corrupted_in_place() {
    let (_dir, engine) = store();
    let bytes = b"a blob that will rot".to_vec();
    let blob = engine.put_blob(&bytes).unwrap();
    rot(&engine, &blob.digest);
    assert_eq!(engine.put_blob(&bytes).unwrap().digest, Digest::of_bytes(Algorithm::Sha256, &bytes));
    assert_repaired(&engine, &blob.digest, &bytes, "put_blob");
}

#[test]
fn a_batch_put_of_the_right_bytes_repairs_a_blob_corrupted_in_place() {
    let (_dir, engine) = store();
    let bytes = b"a batched blob that will rot".to_vec();
    let blob = engine.put_blobs(&[bytes.as_slice()]).unwrap().remove(0);
    rot(&engine, &blob.digest);
    engine.put_blobs(&[b"a new blob beside it".as_slice(), bytes.as_slice()]).unwrap();
    assert_repaired(&engine, &blob.digest, &bytes, "put_blobs");
}

/// The commit stored the blob (it was not there: other bytes were), so it is not `AlreadyExists`.
#[test]
fn a_writer_committing_the_right_bytes_repairs_a_blob_corrupted_in_place_and_stores_it() {
    let (_dir, engine) = store();
    let bytes = b"a committed blob that will rot".to_vec();
    let blob = engine.put_blob(&bytes).unwrap();
    rot(&engine, &blob.digest);
    let mut writer = engine.writer("repair", &WriterOptions::default()).unwrap();
    writer.write(&bytes).unwrap();
    assert_eq!(writer.commit(Some(bytes.len() as u64), Some(&blob.digest), &Labels::new()).unwrap(), blob.digest);
    assert_repaired(&engine, &blob.digest, &bytes, "a writer's commit");
}

/// A sound blob put again is kept as it is: the same file, only its time refreshed.
#[test]
fn putting_a_sound_blob_again_keeps_its_file() {
    use std::os::unix::fs::MetadataExt;
    let (_dir, engine) = store();
    let bytes = b"a sound blob".to_vec();
    let blob = engine.put_blob(&bytes).unwrap();
    let path = engine.root().join("blobs/sha256").join(blob.digest.hex());
    let inode = std::fs::metadata(&path).unwrap().ino();
    engine.put_blob(&bytes).unwrap();
    engine.put_blobs(&[bytes.as_slice()]).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
}
