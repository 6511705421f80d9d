//! A port of containerd's content store test suite (core/content/testsuite), case by case,
//! against ocicas's ingest writers.

use crate::common;

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::PathBuf;
use std::time::SystemTime;

use common::fixture::{age_blob, store};
use common::rng::Rng;
use ocicas::{Algorithm, CopySource, Digest, Engine, ErrorKind, Filters, GcOptions, Labels, WriterOptions};

/// Deterministic pseudo-random content, as containerd's `createContent`.
fn content(size: usize, seed: u64) -> (Vec<u8>, Digest) {
    let bytes = Rng(seed).bytes(size);
    let digest = Digest::of_bytes(Algorithm::Sha256, &bytes);
    (bytes, digest)
}

fn no_labels() -> Labels {
    Labels::new()
}

fn options(size: usize, digest: &Digest) -> WriterOptions {
    WriterOptions { expected_size: Some(size as u64), expected_digest: Some(digest.clone()) }
}

#[test]
fn writer() {
    let (_dir, engine) = store();
    let (bytes, digest) = content(256, 1);
    let mut writer = engine.writer("myref", &options(bytes.len(), &digest)).unwrap();
    assert_eq!(writer.status().ref_name, "myref");
    assert_eq!(writer.status().offset, 0);
    writer.write(&bytes[..128]).unwrap();
    assert_eq!(writer.status().offset, 128);
    writer.write(&bytes[128..]).unwrap();
    assert_eq!(writer.digest(), digest);
    assert_eq!(writer.commit(Some(256), Some(&digest), &no_labels()).unwrap(), digest);
    let info = engine.info(&digest).unwrap();
    assert_eq!((info.digest, info.size), (digest.clone(), 256));
    assert_eq!(engine.read_blob(&digest, 1 << 20).unwrap(), bytes);
    assert_eq!(engine.ingest_status("myref").unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn update_status() {
    let (_dir, engine) = store();
    let (bytes, digest) = content(100, 2);
    let mut writer = engine.writer("update-status", &options(bytes.len(), &digest)).unwrap();
    let first = writer.status().clone();
    assert_eq!(first.total, Some(100));
    assert_eq!(first.expected.as_ref(), Some(&digest));
    assert!(first.started_at <= first.updated_at);
    std::thread::sleep(std::time::Duration::from_millis(5));
    writer.write(&bytes[..40]).unwrap();
    let second = writer.status().clone();
    assert_eq!(second.offset, 40);
    assert_eq!(second.started_at, first.started_at);
    assert!(second.updated_at > first.updated_at);
    writer.close().unwrap();
    let stored = engine.ingest_status("update-status").unwrap();
    assert_eq!((stored.offset, stored.total, stored.expected), (40, Some(100), Some(digest)));
}

#[test]
fn commit_exists() {
    let (_dir, engine) = store();
    let (bytes, digest) = content(64, 3);
    engine.put_blob(&bytes).unwrap();
    let err = engine.writer("exists", &options(bytes.len(), &digest)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    let mut writer = engine.writer("exists-no-expect", &WriterOptions::default()).unwrap();
    writer.write(&bytes).unwrap();
    let err = writer.commit(Some(64), Some(&digest), &no_labels()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(engine.ingest_status("exists-no-expect").unwrap_err().kind(), ErrorKind::NotFound);
}

#[derive(Debug, Clone, Copy)]
enum Resume {
    Truncate,
    Discard,
    Copy,
    CopySeeker,
    CopyReaderAt,
}

fn resume_case(method: Resume, size: usize, cut: f64) {
    let (_dir, engine) = store();
    let (bytes, digest) = content(size, size as u64 + (cut * 10.0) as u64);
    let cut_at = (size as f64 * cut) as usize;
    let ref_name = format!("resume-{size}-{cut}");
    let mut first = engine.writer(&ref_name, &options(size, &digest)).unwrap();
    first.write(&bytes[..cut_at]).unwrap();
    first.close().unwrap();

    let mut writer = engine.writer(&ref_name, &options(size, &digest)).unwrap();
    let offset = writer.status().offset as usize;
    assert_eq!(offset, cut_at, "{method:?} {size} {cut}: resumed offset");
    match method {
        Resume::Truncate => {
            writer.truncate(0).unwrap();
            writer.write(&bytes).unwrap();
        }
        Resume::Discard => {
            let mut source = Cursor::new(&bytes);
            std::io::copy(&mut (&mut source).take(offset as u64), &mut std::io::sink()).unwrap();
            let mut rest = Vec::new();
            source.read_to_end(&mut rest).unwrap();
            writer.write(&rest).unwrap();
        }
        Resume::Copy => writer.copy_from(CopySource::Reader(&mut &bytes[..])).unwrap(),
        Resume::CopySeeker => writer.copy_from(CopySource::Seeker(&mut Cursor::new(&bytes))).unwrap(),
        Resume::CopyReaderAt => writer.copy_from(CopySource::ReaderAt(&bytes)).unwrap(),
    }
    let committed = writer.commit(Some(size as u64), Some(&digest), &no_labels());
    assert_eq!(committed.unwrap(), digest, "{method:?} size {size} cut {cut}");
    assert_eq!(engine.read_blob(&digest, 1 << 20).unwrap(), bytes, "{method:?} size {size} cut {cut}");
}

fn resume_all(method: Resume) {
    for size in [500, 5000, 50000] {
        for cut in [0.0, 0.1, 0.5, 0.9, 1.0] {
            resume_case(method, size, cut);
        }
    }
}

#[test]
fn resume_truncate() {
    resume_all(Resume::Truncate);
}

#[test]
fn resume_discard() {
    resume_all(Resume::Discard);
}

#[test]
fn resume_copy() {
    resume_all(Resume::Copy);
}

#[test]
fn resume_copy_seeker() {
    resume_all(Resume::CopySeeker);
}

#[test]
fn resume_copy_reader_at() {
    resume_all(Resume::CopyReaderAt);
}

#[test]
fn small_blob() {
    let (_dir, engine) = store();
    for size in 1..=4 {
        let (bytes, digest) = content(size, 40 + size as u64);
        let mut writer = engine.writer(&format!("small-{size}"), &WriterOptions::default()).unwrap();
        writer.write(&bytes).unwrap();
        writer.commit(Some(size as u64), Some(&digest), &no_labels()).unwrap();
        let reader = engine.open_blob(&digest).unwrap();
        let mut buf = vec![0u8; 16];
        assert_eq!(reader.read_at(&mut buf, 0).unwrap(), size);
        assert_eq!(&buf[..size], &bytes[..]);
        assert_eq!(reader.size(), size as u64);
    }
}

#[test]
fn labels() {
    let (_dir, engine) = store();
    let (bytes, digest) = content(32, 50);
    let labels: Labels = BTreeMap::from([("k1".into(), "v1".into()), ("k2".into(), "v2".into())]);
    let mut writer = engine.writer("labels", &WriterOptions::default()).unwrap();
    writer.write(&bytes).unwrap();
    writer.commit(None, Some(&digest), &labels).unwrap();
    assert_eq!(engine.info(&digest).unwrap().labels, labels);

    // Update one key, add one, remove one, through field paths.
    let update: Labels = BTreeMap::from([("k1".into(), "changed".into()), ("k3".into(), "new".into())]);
    let info = engine.update_labels(&digest, &update, &["labels.k1", "labels.k3", "labels.k2"]).unwrap();
    assert_eq!(info.labels, BTreeMap::from([("k1".into(), "changed".into()), ("k3".into(), "new".into())]));
    // No field paths replaces the whole set.
    let info = engine.update_labels(&digest, &BTreeMap::from([("only".into(), "one".into())]), &[]).unwrap();
    assert_eq!(info.labels.len(), 1);
    assert_eq!(engine.update_labels(&digest, &no_labels(), &["size"]).unwrap_err().kind(), ErrorKind::InvalidArgument);
    let too_big: Labels = BTreeMap::from([("k".into(), "v".repeat(4096))]);
    assert_eq!(engine.update_labels(&digest, &too_big, &[]).unwrap_err().kind(), ErrorKind::TooLarge);

    let walked = |filter: &str| {
        let mut found = Vec::new();
        engine
            .walk(&Filters::parse(&[filter]).unwrap(), |info| {
                found.push(info.digest.clone());
                Ok(true)
            })
            .unwrap();
        found
    };
    assert_eq!(walked("labels.only==one"), vec![digest.clone()]);
    assert!(walked("labels.only!=one").is_empty());
    engine.delete_blob(&digest).unwrap();
    assert!(walked("labels.only").is_empty());
}

#[test]
fn commit_error_state() {
    let (_dir, engine) = store();
    let (bytes, digest) = content(4096, 60);
    let mut writer = engine.writer("commit-error", &WriterOptions::default()).unwrap();
    writer.write(&bytes[..4000]).unwrap();
    assert_eq!(writer.commit(Some(4096), Some(&digest), &no_labels()).unwrap_err().kind(), ErrorKind::SizeMismatch);
    writer.write(&bytes[4000..]).unwrap();
    let (_, wrong) = content(4096, 61);
    assert_eq!(writer.commit(Some(4096), Some(&wrong), &no_labels()).unwrap_err().kind(), ErrorKind::DigestMismatch);
    assert!(!engine.has_blob(&wrong).unwrap());
    assert_eq!(engine.ingest_status("commit-error").unwrap().offset, 4096);
    assert_eq!(writer.commit(Some(4096), Some(&digest), &no_labels()).unwrap(), digest);
    assert_eq!(writer.write(b"more").unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(writer.commit(None, None, &no_labels()).unwrap_err().kind(), ErrorKind::InvalidArgument);
}

#[test]
fn resuming_with_a_different_total_is_an_error() {
    let (_dir, engine) = store();
    let mut writer = engine.writer("total", &WriterOptions { expected_size: Some(10), expected_digest: None }).unwrap();
    writer.write(b"12345").unwrap();
    assert_eq!(writer.write(b"678901").unwrap_err().kind(), ErrorKind::SizeMismatch);
    writer.close().unwrap();
    let err = engine.writer("total", &WriterOptions { expected_size: Some(11), expected_digest: None }).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(engine.writer("", &WriterOptions::default()).unwrap_err().kind(), ErrorKind::InvalidArgument);
}

#[test]
fn corrupt_metadata_recreates_the_ingest_and_bad_hash_state_rehashes() {
    let (dir, engine) = store();
    let (bytes, digest) = content(3000, 70);
    let ingest_dir = dir.path().join("layout/.ocicas/ingest").join(Digest::of_bytes(Algorithm::Sha256, b"meta").hex());

    let mut writer = engine.writer("meta", &WriterOptions::default()).unwrap();
    writer.write(&bytes[..1000]).unwrap();
    writer.close().unwrap();
    // Garbage hash state: the resume re-hashes the data and still commits the right digest.
    std::fs::write(ingest_dir.join("hashstate"), b"garbage").unwrap();
    let mut writer = engine.writer("meta", &WriterOptions::default()).unwrap();
    assert_eq!(writer.status().offset, 1000);
    writer.write(&bytes[1000..2000]).unwrap();
    writer.close().unwrap();
    std::fs::remove_file(ingest_dir.join("hashstate")).unwrap();
    let mut writer = engine.writer("meta", &WriterOptions::default()).unwrap();
    writer.write(&bytes[2000..]).unwrap();
    assert_eq!(writer.commit(None, Some(&digest), &no_labels()).unwrap(), digest);

    // Damaged metadata: the ingest starts over with its data truncated.
    let mut writer = engine.writer("meta2", &WriterOptions::default()).unwrap();
    writer.write(b"partial").unwrap();
    writer.close().unwrap();
    let meta2 = ingest_dir.with_file_name(Digest::of_bytes(Algorithm::Sha256, b"meta2").hex());
    std::fs::write(meta2.join("ingest.json"), br#"{"ref":"meta2","startedAt":"not a time"}"#).unwrap();
    let writer = engine.writer("meta2", &WriterOptions::default()).unwrap();
    assert_eq!(writer.status().offset, 0);
}

#[test]
fn write_blob_returns_at_once_when_the_digest_is_stored() {
    struct MustNotRead;
    impl Read for MustNotRead {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            panic!("write_blob read its source although the blob was stored");
        }
    }
    let (_dir, engine) = store();
    let (bytes, digest) = content(100, 80);
    let written = engine.write_blob("wb", CopySource::Reader(&mut &bytes[..]), Some(100), Some(&digest), &no_labels());
    assert_eq!(written.unwrap(), digest);
    let again = engine.write_blob("wb", CopySource::Reader(&mut MustNotRead), Some(100), Some(&digest), &no_labels());
    assert_eq!(again.unwrap(), digest);
    assert_eq!(engine.read_blob(&digest, 1000).unwrap(), bytes);
}

#[test]
fn sha512_ingests_commit_and_verify() {
    let (_dir, engine) = store();
    let (bytes, _) = content(1000, 90);
    let digest = Digest::of_bytes(Algorithm::Sha512, &bytes);
    let mut writer = engine.writer("sha512", &options(bytes.len(), &digest)).unwrap();
    writer.write(&bytes[..500]).unwrap();
    writer.close().unwrap();
    let mut writer = engine.writer("sha512", &WriterOptions::default()).unwrap();
    writer.write(&bytes[500..]).unwrap();
    assert_eq!(writer.commit(None, None, &no_labels()).unwrap(), digest);
    engine.verify_blob(&digest).unwrap();
}

#[test]
fn ingest_list_filters_and_abort() {
    let (_dir, engine) = store();
    for name in ["pull-a", "pull-b", "push-c"] {
        engine.writer(name, &WriterOptions::default()).unwrap().close().unwrap();
    }
    let refs = |filter: &str| -> Vec<String> {
        engine.ingest_list(&Filters::parse(&[filter]).unwrap()).unwrap().into_iter().map(|s| s.ref_name).collect()
    };
    assert_eq!(refs("ref~=^pull-"), vec!["pull-a", "pull-b"]);
    assert_eq!(refs("ref==push-c"), vec!["push-c"]);
    assert_eq!(refs(""), vec!["pull-a", "pull-b", "push-c"]);
    let held = engine.writer("pull-a", &WriterOptions::default()).unwrap();
    assert_eq!(engine.ingest_abort("pull-a").unwrap_err().kind(), ErrorKind::Locked);
    drop(held);
    engine.ingest_abort("pull-a").unwrap();
    assert_eq!(engine.ingest_abort("pull-a").unwrap_err().kind(), ErrorKind::NotFound);
}

// Blob times, as containerd keeps them: createdAt never moves, updatedAt never goes back.

fn created_record(engine: &Engine, digest: &Digest) -> PathBuf {
    engine.root().join(".ocicas/created").join(digest.algorithm().name()).join(digest.hex())
}

fn one_label(key: &str, value: &str) -> Labels {
    BTreeMap::from([(key.into(), value.into())])
}

#[test]
fn blob_times_fall_between_the_clock_readings_around_a_commit_and_an_update() {
    let (_dir, engine) = store();
    let (bytes, digest) = content(256, 70);
    let before = SystemTime::now();
    let mut writer = engine.writer("times", &WriterOptions::default()).unwrap();
    writer.write(&bytes).unwrap();
    writer.commit(None, Some(&digest), &one_label("k", "v")).unwrap();
    let after = SystemTime::now();
    let info = engine.info(&digest).unwrap();
    assert!(before <= info.created_at && info.created_at <= after, "{info:?} not within {before:?}..{after:?}");
    assert_eq!(info.updated_at, info.created_at);

    let before = SystemTime::now();
    let updated = engine.update_labels(&digest, &one_label("k", "w"), &[]).unwrap();
    let after = SystemTime::now();
    assert!(
        before <= updated.updated_at && updated.updated_at <= after,
        "{updated:?} not within {before:?}..{after:?}"
    );
    assert_eq!(updated.created_at, info.created_at);
}

#[test]
fn closed_ingest_shows_the_update_time_of_its_last_write() {
    let (_dir, engine) = store();
    let (bytes, _) = content(300, 71);
    let mut writer = engine.writer("ingest-times", &WriterOptions::default()).unwrap();
    let before = SystemTime::now();
    writer.write(&bytes).unwrap();
    let after = SystemTime::now();
    let shown = writer.status().updated_at;
    writer.close().unwrap();
    let stored = engine.ingest_status("ingest-times").unwrap();
    assert_eq!(stored.updated_at, shown);
    assert!(before <= stored.updated_at && stored.updated_at <= after);
}

#[test]
fn storing_stored_content_again_keeps_its_created_at() {
    let (_dir, engine) = store();
    let (bytes, digest) = content(100, 72);
    engine.put_blob(&bytes).unwrap();
    age_blob(&engine, &digest);
    let first = engine.info(&digest).unwrap();
    assert!(first.created_at < SystemTime::now() - std::time::Duration::from_secs(3000));

    // Every way of storing it again: a put, a commit of an ingest, a writer that expects it.
    engine.put_blob(&bytes).unwrap();
    let mut writer = engine.writer("again", &WriterOptions::default()).unwrap();
    writer.write(&bytes).unwrap();
    assert_eq!(writer.commit(None, None, &no_labels()).unwrap_err().kind(), ErrorKind::AlreadyExists);
    let err = engine.writer("again", &options(bytes.len(), &digest)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);

    let info = engine.info(&digest).unwrap();
    assert_eq!((info.created_at, info.updated_at), (first.created_at, first.updated_at));
    // The file itself was made young again, for GC.
    let blob_mtime =
        std::fs::metadata(engine.root().join("blobs/sha256").join(digest.hex())).unwrap().modified().unwrap();
    assert!(blob_mtime > first.created_at);
    let mut walked = Vec::new();
    engine
        .walk(&Filters::parse::<&str>(&[]).unwrap(), |info| {
            walked.push(info.clone());
            Ok(true)
        })
        .unwrap();
    assert_eq!(walked, vec![info]);
}

#[test]
fn label_updates_move_updated_at_forward_and_clearing_them_does_not_move_it_back() {
    let (_dir, engine) = store();
    let (bytes, digest) = content(100, 73);
    engine.put_blob(&bytes).unwrap();
    age_blob(&engine, &digest);
    let created = engine.info(&digest).unwrap().created_at;

    let labelled = engine.update_labels(&digest, &one_label("k", "v"), &[]).unwrap();
    assert!(labelled.updated_at > created);
    let relabelled = engine.update_labels(&digest, &one_label("k", "w"), &["labels.k"]).unwrap();
    assert!(relabelled.updated_at >= labelled.updated_at);

    // The last key removed through its field path, then the whole (empty) set replaced.
    let cleared = engine.update_labels(&digest, &no_labels(), &["labels.k"]).unwrap();
    assert!(cleared.labels.is_empty());
    assert!(cleared.updated_at >= relabelled.updated_at);
    let cleared_again = engine.update_labels(&digest, &no_labels(), &[]).unwrap();
    assert!(cleared_again.updated_at >= cleared.updated_at);
    let info = engine.info(&digest).unwrap();
    assert_eq!((info.created_at, info.updated_at), (created, cleared_again.updated_at));
    assert!(info.labels.is_empty());
}

#[test]
fn deleting_or_collecting_a_blob_forgets_its_created_at() {
    let (_dir, engine) = store();
    let (bytes, digest) = content(100, 74);
    engine.put_blob(&bytes).unwrap();
    age_blob(&engine, &digest);
    engine.put_blob(&bytes).unwrap();
    assert!(created_record(&engine, &digest).is_file());

    engine.delete_blob(&digest).unwrap();
    assert!(!created_record(&engine, &digest).exists());
    let before = SystemTime::now();
    engine.put_blob(&bytes).unwrap();
    assert!(engine.info(&digest).unwrap().created_at >= before);

    // Unreferenced and old: GC removes the blob and its record.
    age_blob(&engine, &digest);
    engine.put_blob(&bytes).unwrap();
    age_blob(&engine, &digest);
    assert!(created_record(&engine, &digest).is_file());
    engine.gc(&GcOptions::default()).unwrap();
    assert!(!engine.has_blob(&digest).unwrap());
    assert!(!created_record(&engine, &digest).exists());
}

#[test]
fn a_link_planted_as_a_creation_record_is_never_followed() {
    let (dir, engine) = store();
    let (bytes, digest) = content(100, 75);
    engine.put_blob(&bytes).unwrap();
    age_blob(&engine, &digest);
    let outside = dir.path().join("outside");
    std::fs::write(&outside, b"not ocicas's").unwrap();
    let outside_mtime = std::fs::metadata(&outside).unwrap().modified().unwrap();
    let record = created_record(&engine, &digest);
    std::fs::create_dir_all(record.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&outside, &record).unwrap();

    // A commit is not stopped by it, info names it, and the target is untouched.
    engine.put_blob(&bytes).unwrap();
    let err = engine.info(&digest).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidImage);
    assert!(err.message().contains(".ocicas/created/sha256"), "{err}");
    assert_eq!(std::fs::metadata(&outside).unwrap().modified().unwrap(), outside_mtime);
    assert!(engine.fsck().unwrap().problems.iter().any(|p| p.contains(".ocicas/created/sha256")));
    // Deleting the blob removes the link itself, not its target.
    engine.delete_blob(&digest).unwrap();
    assert!(std::fs::symlink_metadata(&record).is_err());
    assert_eq!(std::fs::read(&outside).unwrap(), b"not ocicas's");
}

#[test]
fn a_link_planted_as_the_creation_records_directory_is_never_followed() {
    let (dir, engine) = store();
    let (bytes, digest) = content(100, 76);
    engine.put_blob(&bytes).unwrap();
    age_blob(&engine, &digest);
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, engine.root().join(".ocicas/created")).unwrap();

    assert!(engine.put_blob(&bytes).is_err());
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert!(engine.has_blob(&digest).unwrap());
}

/// A batch stores each blob as `put_blob` would, in order, duplicates and stored blobs included,
/// across more than one group of links (a group holds 256 temp files open).
#[test]
fn put_blobs_stores_every_blob_of_a_batch() {
    let (_dir, engine) = store();
    let already = engine.put_blob(b"stored before").unwrap();
    let mut blobs: Vec<Vec<u8>> = (0..600).map(|i| content(4096, i).0).collect();
    blobs.push(blobs[3].clone());
    blobs.push(b"stored before".to_vec());
    let slices: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
    let stored = engine.put_blobs(&slices).unwrap();
    assert_eq!(stored.len(), blobs.len());
    for (blob, bytes) in stored.iter().zip(&blobs) {
        assert_eq!(blob.digest, Digest::of_bytes(Algorithm::Sha256, bytes));
        assert_eq!(blob.size, bytes.len() as u64);
        assert_eq!(engine.read_blob(&blob.digest, u64::MAX).unwrap(), *bytes);
    }
    assert_eq!(stored.last().unwrap().digest, already.digest);
    assert_eq!(engine.list_blobs().unwrap().len(), 601);
    assert!(engine.fsck().unwrap().problems.is_empty());
    assert!(engine.put_blobs(&[]).unwrap().is_empty());
}
