//! Attacks on blob times (`.ocicas/created/<alg>/<hex>`, the creation record, and labels'
//! mtimes as updatedAt): planted entries, stale records, races of commits, deletes and GC.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::fixture::{age_blob, store};
use ocicas::layout::{OsStorage, Storage, Subdir};
use ocicas::{Cancel, Digest, Engine, ErrorKind, Filters, GcOptions, Labels, OpenOptions};

fn created_record(engine: &Engine, digest: &Digest) -> PathBuf {
    engine.root().join(".ocicas/created").join(digest.algorithm().name()).join(digest.hex())
}

fn blob_file(engine: &Engine, digest: &Digest) -> PathBuf {
    engine.root().join("blobs").join(digest.algorithm().name()).join(digest.hex())
}

fn labels_file(engine: &Engine, digest: &Digest) -> PathBuf {
    engine.root().join(".ocicas/labels").join(digest.algorithm().name()).join(digest.hex())
}

fn one_label(key: &str, value: &str) -> Labels {
    BTreeMap::from([(key.into(), value.into())])
}

/// A blob stored, aged an hour, and stored again: it has a creation record an hour old.
fn recorded_blob(engine: &Engine, bytes: &[u8]) -> (Digest, SystemTime) {
    let digest = engine.put_blob(bytes).unwrap().digest;
    age_blob(engine, &digest);
    let created = engine.info(&digest).unwrap().created_at;
    engine.put_blob(bytes).unwrap();
    assert!(created_record(engine, &digest).is_file());
    assert_eq!(engine.info(&digest).unwrap().created_at, created);
    (digest, created)
}

fn fsck_problems(engine: &Engine) -> Vec<String> {
    engine.fsck().unwrap().problems
}

fn walk_all(engine: &Engine) -> ocicas::Result<Vec<ocicas::BlobInfo>> {
    let mut walked = Vec::new();
    engine.walk(&Filters::parse::<&str>(&[]).unwrap(), |info| {
        walked.push(info.clone());
        Ok(true)
    })?;
    Ok(walked)
}

#[test]
fn a_put_after_the_blob_was_removed_behind_ocicas_does_not_inherit_its_created_at() {
    // Another OCI tool (umoci gc, rm) removes a blob file and knows nothing of .ocicas.
    let (_dir, engine) = store();
    let (digest, old) = recorded_blob(&engine, b"removed by another tool");
    std::fs::remove_file(blob_file(&engine, &digest)).unwrap();

    let before = SystemTime::now();
    engine.put_blob(b"removed by another tool").unwrap();
    let info = engine.info(&digest).unwrap();
    assert!(
        info.created_at >= before,
        "the new blob shows the removed one's createdAt {:?} (old {old:?})",
        info.created_at
    );
    assert!(fsck_problems(&engine).is_empty());
}

#[test]
fn a_put_replacing_a_truncated_blob_does_not_inherit_its_created_at() {
    let (_dir, engine) = store();
    let (digest, _) = recorded_blob(&engine, b"truncated on disk, then stored again");
    let path = blob_file(&engine, &digest);
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&path, perms).unwrap();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(3).unwrap();

    let before = SystemTime::now();
    engine.put_blob(b"truncated on disk, then stored again").unwrap();
    assert!(engine.info(&digest).unwrap().created_at >= before);
}

/// The real file system, requesting a cancel right after it removed a blob file in GC's sweep.
struct CancelAfterBlobRemoval(Cancel);

impl Storage for CancelAfterBlobRemoval {
    fn remove_file_in(&self, dir: &Subdir, name: &std::ffi::OsStr) -> std::io::Result<()> {
        OsStorage.remove_file_in(dir, name)?;
        self.0.request();
        Ok(())
    }
}

#[test]
fn a_gc_cancelled_after_removing_a_blob_leaves_no_created_at_for_the_next_put() {
    let (dir, engine) = store();
    let (digest, _) = recorded_blob(&engine, b"collected, then stored again");
    age_blob(&engine, &digest);
    drop(engine);

    let cancel = Cancel::new();
    let layout = dir.path().join("layout");
    let collecting =
        Engine::open_with(&layout, &OpenOptions::default(), Arc::new(CancelAfterBlobRemoval(cancel.clone()))).unwrap();
    let err = collecting.gc(&GcOptions { cancel, ..GcOptions::default() }).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert!(!collecting.has_blob(&digest).unwrap());

    let engine = Engine::open(&layout, &OpenOptions::default()).unwrap();
    let before = SystemTime::now();
    engine.put_blob(b"collected, then stored again").unwrap();
    assert!(engine.info(&digest).unwrap().created_at >= before);
}

#[test]
fn a_directory_planted_as_a_creation_record_is_reported_by_fsck() {
    let (_dir, engine) = store();
    let digest = engine.put_blob(b"a directory as its record").unwrap().digest;
    std::fs::create_dir_all(created_record(&engine, &digest)).unwrap();

    let err = engine.info(&digest).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidImage);
    // What info refuses, fsck names.
    let problems = fsck_problems(&engine);
    assert!(problems.iter().any(|p| p.contains(".ocicas/created/sha256")), "{problems:?}");
}

#[test]
fn a_directory_planted_as_the_creation_record_of_a_labelled_garbage_blob_is_noted_and_gc_goes_on() {
    let (_dir, engine) = store();
    let mut garbage = Vec::new();
    for i in 0..8u8 {
        let digest = engine.put_blob(&[b'g', i]).unwrap().digest;
        engine.update_labels(&digest, &one_label("k", "v"), &[]).unwrap();
        age_blob(&engine, &digest);
        garbage.push(digest);
    }
    let planted = created_record(&engine, &garbage[3]);
    std::fs::create_dir_all(planted.join("inside")).unwrap();

    // It used to fail GC after the blobs were removed, leaving the rest unswept and no report.
    let report = engine.gc(&GcOptions::default()).unwrap();
    assert_eq!(report.blobs_removed, 8);
    assert!(garbage.iter().all(|digest| !engine.has_blob(digest).unwrap()));
    assert_eq!(report.not_removed.len(), 1, "{report:?}");
    assert!(report.not_removed[0].contains(&garbage[3].hex().to_string()), "{report:?}");
    assert!(garbage.iter().all(|digest| !labels_file(&engine, digest).exists()));
    assert!(planted.is_dir());
    assert!(fsck_problems(&engine).iter().any(|p| p.contains(".ocicas/created/sha256")));
}

#[test]
fn a_fifo_planted_as_a_creation_record_neither_hangs_nor_stops_commits() {
    let (_dir, engine) = store();
    let digest = engine.put_blob(b"a fifo as its record").unwrap().digest;
    let record = created_record(&engine, &digest);
    std::fs::create_dir_all(record.parent().unwrap()).unwrap();
    mkfifo(&record);

    engine.put_blob(b"a fifo as its record").unwrap();
    assert_eq!(engine.info(&digest).unwrap_err().kind(), ErrorKind::InvalidImage);
    assert_eq!(walk_all(&engine).unwrap_err().kind(), ErrorKind::InvalidImage);
    assert!(fsck_problems(&engine).iter().any(|p| p.contains(".ocicas/created/sha256")));
    engine.delete_blob(&digest).unwrap();
    assert!(std::fs::symlink_metadata(&record).is_err());
    assert!(fsck_problems(&engine).is_empty());
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn a_hard_link_planted_as_a_creation_record_is_only_unlinked() {
    let (dir, engine) = store();
    let (digest, _) = recorded_blob(&engine, b"a hard link as its record");
    let outside = dir.path().join("outside");
    std::fs::write(&outside, b"not ocicas's").unwrap();
    let record = created_record(&engine, &digest);
    std::fs::remove_file(&record).unwrap();
    std::fs::hard_link(&outside, &record).unwrap();

    engine.put_blob(b"a hard link as its record").unwrap();
    engine.info(&digest).unwrap();
    engine.delete_blob(&digest).unwrap();
    assert!(std::fs::symlink_metadata(&record).is_err());
    assert_eq!(std::fs::read(&outside).unwrap(), b"not ocicas's");
}

#[test]
fn a_link_planted_as_an_algorithm_directory_of_the_records_is_never_followed() {
    let (dir, engine) = store();
    let (digest, _) = recorded_blob(&engine, b"a link as the records' sha256 directory");
    let other = engine.put_blob(b"no record").unwrap().digest;
    age_blob(&engine, &other);
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::rename(created_record(&engine, &digest), outside.join(digest.hex())).unwrap();
    let records = engine.root().join(".ocicas/created/sha256");
    std::fs::remove_dir(&records).unwrap();
    symlink(&outside, &records).unwrap();

    // Storing the other blob again would record its creation there: refused, nothing written.
    assert!(engine.put_blob(b"no record").is_err());
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    assert!(engine.info(&digest).is_err());
    assert!(walk_all(&engine).is_err());
    assert!(fsck_problems(&engine).iter().any(|p| p.contains(".ocicas/created/sha256")));
    // GC removes nothing while it is there, and deleting does not reach through it.
    assert!(engine.gc(&GcOptions::default()).is_err());
    assert!(engine.has_blob(&other).unwrap());
    let _ = engine.delete_blob(&digest);
    assert!(outside.join(digest.hex()).is_file());
}

#[test]
fn a_blob_stored_with_its_mtime_in_the_future_keeps_updated_at_at_or_after_created_at() {
    // A clock that was ahead when the blob was stored, and is right again now.
    let (_dir, engine) = store();
    let digest = engine.put_blob(b"stored by a clock an hour ahead").unwrap().digest;
    let ahead = SystemTime::now() + Duration::from_secs(3600);
    std::fs::File::open(blob_file(&engine, &digest)).unwrap().set_modified(ahead).unwrap();
    engine.put_blob(b"stored by a clock an hour ahead").unwrap();

    let info = engine.info(&digest).unwrap();
    assert_eq!(info.created_at, ahead);
    let updated = engine.update_labels(&digest, &one_label("k", "v"), &[]).unwrap();
    assert_eq!(updated.created_at, ahead);
    assert!(updated.updated_at >= updated.created_at);
    let cleared = engine.update_labels(&digest, &Labels::new(), &[]).unwrap();
    assert!(cleared.updated_at >= updated.updated_at);
    assert!(fsck_problems(&engine).is_empty());
}

#[test]
fn labels_cleared_to_none_stay_as_an_empty_map_that_gc_and_delete_remove() {
    let (_dir, engine) = store();
    let digest = engine.put_blob(b"labels cleared").unwrap().digest;
    engine.update_labels(&digest, &one_label("k", "v"), &[]).unwrap();
    engine.update_labels(&digest, &Labels::new(), &[]).unwrap();
    assert_eq!(std::fs::read(labels_file(&engine, &digest)).unwrap(), b"{}");
    age_blob(&engine, &digest);
    let report = engine.gc(&GcOptions::default()).unwrap();
    assert_eq!(report.blobs_removed, 1);
    assert!(!labels_file(&engine, &digest).exists());
    assert!(fsck_problems(&engine).is_empty());
}

#[test]
fn threads_storing_the_same_content_at_once_keep_its_first_created_at() {
    let (dir, engine) = store();
    let layout = dir.path().join("layout");
    for round in 0..20u8 {
        let bytes = vec![round; 64];
        let digest = engine.put_blob(&bytes).unwrap().digest;
        age_blob(&engine, &digest);
        let created = engine.info(&digest).unwrap().created_at;
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let bytes = &bytes;
                let layout = &layout;
                scope.spawn(move || {
                    let engine = Engine::open(layout, &OpenOptions::default()).unwrap();
                    for _ in 0..5 {
                        engine.put_blob(bytes).unwrap();
                    }
                });
            }
        });
        let info = engine.info(&digest).unwrap();
        assert_eq!(info.created_at, created, "round {round}");
        assert_eq!(info.updated_at, created, "round {round}");
    }
    assert!(fsck_problems(&engine).is_empty());
}

#[test]
fn a_blob_stored_again_while_gc_runs_is_kept() {
    let (dir, engine) = store();
    let layout = dir.path().join("layout");
    let bytes = b"stored again and again while GC runs".to_vec();
    let digest = engine.put_blob(&bytes).unwrap().digest;
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let collector = scope.spawn(|| {
            let engine = Engine::open(&layout, &OpenOptions::default()).unwrap();
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                engine.gc(&GcOptions::default()).unwrap();
                runs += 1;
            }
            runs
        });
        for _ in 0..200 {
            // Aged, so that a GC may take it before it is stored again (then it is a new blob).
            if let Ok(file) = std::fs::File::open(blob_file(&engine, &digest)) {
                file.set_modified(SystemTime::now() - Duration::from_secs(3600)).unwrap();
            }
            engine.put_blob(&bytes).unwrap();
            // Stored (again) just now: young, so no GC may take it before it is tagged.
            assert!(engine.has_blob(&digest).unwrap());
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(collector.join().unwrap() > 0);
    });
    assert!(fsck_problems(&engine).is_empty());
}
