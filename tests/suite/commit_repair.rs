//! Re-commits of a stored blob under failure and hostile files (found by an outside attack on
//! the repairing re-commit): a writer whose commit failed after publishing takes no more bytes,
//! so it cannot write into the stored blob; a writer expecting a blob that is stored cut short
//! writes it again (a re-pull repairs it); a stored file someone else may write is replaced;
//! a hard link to an outside file is never changed through the layout; a batch of mixed new,
//! sound, corrupt, linked and special entries stores each right; readers see a blob whole while
//! it is replaced.

use crate::common;

use std::fs::File;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::fixture::store;
use ocicas::layout::{OsStorage, Root, Storage};
use ocicas::{Algorithm, Digest, Engine, ErrorKind, Labels, OpenOptions, WriterOptions};

fn blob_path(engine: &Engine, digest: &Digest) -> PathBuf {
    engine.root().join("blobs/sha256").join(digest.hex())
}

fn sha256(bytes: &[u8]) -> Digest {
    Digest::of_bytes(Algorithm::Sha256, bytes)
}

/// Replaces the file at `path` by a new file of `bytes` with one link (as a hostile writer of the
/// layout does: write beside it, rename over it).
fn swap_in(path: &Path, bytes: &[u8]) {
    let beside = path.with_extension("swap");
    std::fs::write(&beside, bytes).unwrap();
    std::fs::rename(&beside, path).unwrap();
}

/// The stored blob's bytes, or the kind of error reading them gives.
fn stored(engine: &Engine, digest: &Digest) -> Result<Vec<u8>, (ErrorKind, String)> {
    engine.read_blob(digest, 1 << 30).map_err(|e| (e.kind(), e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// FINDING 1 (medium; high impact, needs an I/O error): a writer whose commit fails after its
// data file was published (the directory fsync after the link of a new blob, or after the
// rename that replaces a corrupt or hard-linked one: EIO, or EMFILE at the directory's open)
// stays open, and its descriptor is now the stored blob's file: a caller that does what a
// failed commit invites (truncate and write again, or write on; the Rust and C APIs leave the
// writer usable) truncates or grows the stored blob in place. A sound blob with a second link
// is destroyed that way by a re-commit of its own bytes. The rename path added by a35b0e6 does
// it as the link path did (the containerd adapter closes the writer after any commit).
// ---------------------------------------------------------------------------------------------

/// The real file system, except that the first directory fsync after a blob is published into
/// `blobs/` (by a link or a rename) fails with EIO.
#[derive(Default)]
struct FailDirSyncAfterPublish {
    published: AtomicBool,
    failed: AtomicBool,
}

impl FailDirSyncAfterPublish {
    fn note(&self, to: &Path) {
        if to.starts_with("blobs") {
            self.published.store(true, Ordering::SeqCst);
        }
    }
}

impl Storage for FailDirSyncAfterPublish {
    fn link(&self, root: &Root, file: &File, from: &Path, to: &Path) -> io::Result<()> {
        OsStorage.link(root, file, from, to)?;
        self.note(to);
        Ok(())
    }
    fn rename(&self, root: &Root, from: &Path, to: &Path) -> io::Result<()> {
        OsStorage.rename(root, from, to)?;
        self.note(to);
        Ok(())
    }
    fn sync_dir(&self, root: &Root, path: &Path) -> io::Result<()> {
        if self.published.load(Ordering::SeqCst) && !self.failed.swap(true, Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        OsStorage.sync_dir(root, path)
    }
}

fn rotten(bytes: &[u8]) -> Vec<u8> {
    let mut rotten = bytes.to_vec();
    rotten[0] ^= 0xff;
    rotten
}

fn faulty_engine(layout: &Path) -> Engine {
    Engine::open_with(layout, &OpenOptions::default(), Arc::new(FailDirSyncAfterPublish::default())).unwrap()
}

/// Commits `bytes` through a writer of `engine` whose commit fails after publication, then uses
/// the writer as a caller recovering from a failed commit would: start over and write again.
fn failed_commit_then_rewrite(engine: &Engine, bytes: &[u8]) {
    let mut writer = engine.writer("retry", &WriterOptions::default()).unwrap();
    writer.write(bytes).unwrap();
    let err = writer.commit(None, None, &Labels::new()).expect_err("the directory fsync failed");
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(writer.truncate(0).is_err(), "a writer whose commit failed takes no more bytes");
    assert!(writer.write(b"more").is_err(), "a writer whose commit failed takes no more bytes");
    drop(writer);
    // Starting over is opening the ref again.
    let mut again = engine.writer("retry", &WriterOptions::default()).unwrap();
    again.truncate(0).unwrap();
    again.write(b"the first bytes of the retry").unwrap();
}

#[test]
fn a_writer_whose_commit_failed_after_linking_a_new_blob_does_not_write_into_it() {
    let (_dir, engine) = store();
    let bytes = b"a new layer whose commit fails at the directory fsync".to_vec();
    failed_commit_then_rewrite(&faulty_engine(engine.root()), &bytes);
    let digest = sha256(&bytes);
    if engine.has_blob(&digest).unwrap() {
        assert_eq!(
            stored(&engine, &digest),
            Ok(bytes),
            "the blob the failed commit published was rewritten through the still-open writer"
        );
    }
}

#[test]
fn a_writer_whose_commit_failed_after_replacing_a_corrupt_blob_does_not_write_into_it() {
    let (_dir, engine) = store();
    let bytes = b"a layer whose stored copy rotted".to_vec();
    let digest = engine.put_blob(&bytes).unwrap().digest;
    let mut rotten = bytes.clone();
    rotten[0] ^= 0xff;
    swap_in(&blob_path(&engine, &digest), &rotten);
    failed_commit_then_rewrite(&faulty_engine(engine.root()), &bytes);
    assert_eq!(
        stored(&engine, &digest),
        Ok(bytes),
        "the blob the failed commit put in place of the corrupt one was rewritten through the still-open writer"
    );
}

#[test]
fn a_writer_whose_commit_failed_after_replacing_a_hard_linked_blob_does_not_write_into_it() {
    let (dir, engine) = store();
    let bytes = b"a layer whose file has a second link".to_vec();
    let digest = engine.put_blob(&bytes).unwrap().digest;
    std::fs::hard_link(blob_path(&engine, &digest), dir.path().join("clone")).unwrap();
    failed_commit_then_rewrite(&faulty_engine(engine.root()), &bytes);
    assert_eq!(
        stored(&engine, &digest),
        Ok(bytes),
        "the blob the failed commit put in place of the hard-linked one was rewritten through the still-open writer"
    );
}

fn expecting(digest: &Digest, size: usize) -> WriterOptions {
    WriterOptions { expected_size: Some(size as u64), expected_digest: Some(digest.clone()) }
}

/// Rewrites blob `digest`'s file with `bytes` in place (its inode and single link stay).
fn rewrite_in_place(engine: &Engine, digest: &Digest, bytes: &[u8]) {
    let path = blob_path(engine, digest);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
}

/// Writes and commits `bytes` as a containerd client does: a writer opened with the descriptor,
/// `AlreadyExists` at the open or the commit taken as success.
fn write_blob_as_containerd_does(engine: &Engine, bytes: &[u8]) {
    let digest = sha256(bytes);
    match engine.writer("repull", &expecting(&digest, bytes.len())) {
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
        Err(err) => panic!("open: {err}"),
        Ok(mut writer) => {
            writer.write(bytes).unwrap();
            match writer.commit(Some(bytes.len() as u64), Some(&digest), &Labels::new()) {
                Ok(_) => {}
                Err(err) => assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}"),
            }
        }
    }
}

#[test]
fn a_re_pull_through_a_writer_expecting_the_blob_repairs_a_truncated_copy() {
    let (_dir, engine) = store();
    let bytes = b"a layer whose stored copy was cut short".to_vec();
    let digest = engine.put_blob(&bytes).unwrap().digest;
    rewrite_in_place(&engine, &digest, &bytes[..10]);
    write_blob_as_containerd_does(&engine, &bytes);
    assert_eq!(stored(&engine, &digest), Ok(bytes), "a re-pull through a writer with the descriptor left it broken");
}

#[test]
fn a_re_put_does_not_keep_a_blob_file_another_user_owns_and_may_write() {
    let (_dir, engine) = store();
    let bytes = b"a blob file an unprivileged user planted, writable".to_vec();
    let digest = sha256(&bytes);
    let path = blob_path(&engine, &digest);
    engine.put_blob(b"makes blobs/sha256").unwrap();
    std::fs::write(&path, &bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    engine.put_blob(&bytes).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert!(
        meta.mode() & 0o222 == 0 && meta.uid() == std::fs::metadata(engine.root()).unwrap().uid(),
        "after the re-put, blob {digest} is still a file of uid {} mode {:o}, which that user may rewrite",
        meta.uid(),
        meta.mode() & 0o7777
    );
}

// ---------------------------------------------------------------------------------------------
// What held: these pass, and stay as guards.
// ---------------------------------------------------------------------------------------------

/// A blob file that is also a file outside the layout (hard link), with the blob's bytes or
/// with other bytes of its size: a re-put and a batch re-put replace the layout's name only;
/// the outside file keeps its bytes, mode, owner and time.
#[test]
fn a_re_put_over_a_hard_link_to_an_outside_file_never_changes_the_outside_file() {
    let (dir, engine) = store();
    for (i, same_bytes) in [true, false].into_iter().enumerate() {
        let bytes = format!("blob {i} whose file is also a file outside").into_bytes();
        let digest = engine.put_blob(&bytes).unwrap().digest;
        let outside = dir.path().join(format!("outside-{i}"));
        std::fs::write(&outside, if same_bytes { bytes.clone() } else { rotten(&bytes) }).unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o640)).unwrap();
        common::fixture::age(&outside);
        std::fs::remove_file(blob_path(&engine, &digest)).unwrap();
        std::fs::hard_link(&outside, blob_path(&engine, &digest)).unwrap();
        let before = std::fs::metadata(&outside).unwrap();
        let content = std::fs::read(&outside).unwrap();
        engine.put_blob(&bytes).unwrap();
        engine.put_blobs(&[bytes.as_slice()]).unwrap();
        let mut writer = engine.writer(&format!("w{i}"), &WriterOptions::default()).unwrap();
        writer.write(&bytes).unwrap();
        let _ = writer.commit(None, None, &Labels::new());
        let after = std::fs::metadata(&outside).unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), content);
        assert_eq!(
            (after.mode(), after.uid(), after.mtime(), after.mtime_nsec(), after.ino()),
            (before.mode(), before.uid(), before.mtime(), before.mtime_nsec(), before.ino())
        );
        assert_eq!(stored(&engine, &digest), Ok(bytes));
        assert_eq!(std::fs::metadata(blob_path(&engine, &digest)).unwrap().nlink(), 1);
    }
}

/// One batch mixing a new blob, a sound one, a corrupt one, a hard-linked one, one whose name is
/// a FIFO (nothing blocks), one whose name is a symlink to a file outside of the blob's bytes,
/// one sparse (mostly holes, its size), and the same new blob twice: all stored right.
#[test]
fn a_batch_of_new_sound_corrupt_linked_special_and_repeated_blobs_stores_each_right() {
    let (dir, engine) = store();
    let blobs: Vec<Vec<u8>> = (0..6).map(|i| format!("mixed batch blob {i}").into_bytes()).collect();
    let sparse = common::fixture::bytes(64 << 20, 7);
    for bytes in blobs[1..].iter().chain([&sparse]) {
        engine.put_blob(bytes).unwrap();
    }
    let path = |bytes: &[u8]| blob_path(&engine, &sha256(bytes));
    // 1 sound; 2 corrupt; 3 hard-linked; 4 a FIFO; 5 a symlink to an outside copy.
    swap_in(&path(&blobs[2]), &rotten(&blobs[2]));
    std::fs::hard_link(path(&blobs[3]), dir.path().join("clone")).unwrap();
    std::fs::remove_file(path(&blobs[4])).unwrap();
    rustix::fs::mknodat(rustix::fs::CWD, path(&blobs[4]), rustix::fs::FileType::Fifo, 0o644.into(), 0).unwrap();
    let outside = dir.path().join("outside");
    std::fs::write(&outside, &blobs[5]).unwrap();
    std::fs::remove_file(path(&blobs[5])).unwrap();
    std::os::unix::fs::symlink(&outside, path(&blobs[5])).unwrap();
    std::fs::remove_file(path(&sparse)).unwrap();
    File::create(path(&sparse)).unwrap().set_len(sparse.len() as u64).unwrap();

    let mut batch: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
    batch.push(&sparse);
    batch.push(&blobs[0]);
    let put = engine.put_blobs(&batch).unwrap();
    assert_eq!(put.len(), batch.len());
    for bytes in &batch {
        assert_eq!(stored(&engine, &sha256(bytes)).map(|b| b == *bytes), Ok(true));
        assert_eq!(std::fs::symlink_metadata(path(bytes)).unwrap().nlink(), 1);
    }
    assert_eq!(std::fs::read(&outside).unwrap(), blobs[5]);
    assert!(engine.fsck().unwrap().problems.is_empty(), "{:?}", engine.fsck().unwrap().problems);
}

/// Readers of a blob whose file has a second link, while two engines (as two processes) put it
/// again and again, each replacing the file: every open finds the blob and reads its bytes.
#[test]
fn readers_see_a_blob_whole_while_two_engines_replace_its_hard_linked_file() {
    let (dir, engine) = store();
    let bytes = common::fixture::bytes(1 << 20, 3);
    let digest = engine.put_blob(&bytes).unwrap().digest;
    let clone = dir.path().join("clone");
    let stop = Arc::new(AtomicBool::new(false));
    let root = engine.root().to_owned();
    let putters: Vec<_> = (0..2)
        .map(|_| {
            let (root, bytes, clone) = (root.clone(), bytes.clone(), clone.clone());
            let path = root.join("blobs/sha256").join(digest.hex());
            std::thread::spawn(move || {
                let engine = Engine::open(&root, &OpenOptions::default()).unwrap();
                for _ in 0..40 {
                    let _ = std::fs::remove_file(&clone);
                    let _ = std::fs::hard_link(&path, &clone);
                    engine.put_blob(&bytes).unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let (root, stop, digest, bytes) = (root.clone(), stop.clone(), digest.clone(), bytes.clone());
        std::thread::spawn(move || {
            let engine = Engine::open(&root, &OpenOptions::default()).unwrap();
            let mut reads = 0u32;
            while !stop.load(Ordering::SeqCst) && reads < 100_000 {
                assert_eq!(engine.read_blob(&digest, 1 << 30).map_err(|e| e.to_string()), Ok(bytes.clone()));
                reads += 1;
            }
        })
    };
    for putter in putters {
        putter.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    reader.join().unwrap();
}
