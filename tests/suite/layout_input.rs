//! What a layout's own files can make a command do: oversized metadata is refused in bounded
//! memory (issue 18 item 5), FIFOs in place of layout files never block (item 6), a file source
//! never commits an ingest's stale bytes (item 10), and opening a writer is atomic with respect
//! to the removal of its ingest (issue 25 item 2).

use crate::common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::cli::{FSCK_PROBLEMS, ended_normally, is_error_status, ocicas_watched};
use common::fixture::{closed_ingest, ingest_dir, store};
use ocicas::{Algorithm, Digest, Engine, ErrorKind, GcOptions, OpenOptions, WriterOptions};

#[test]
fn fifos_in_place_of_layout_files_are_refused_without_blocking() {
    let make_fifo = |path: &Path| {
        let _ = std::fs::remove_file(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
    };
    for planted in ["index.json", "oci-layout", ".ocicas/leases/l", ".ocicas/labels/sha256/LABEL", "INGEST/ref"] {
        let (_dir, engine) = store();
        let layout = engine.root().to_owned();
        let blob = engine.put_blob(b"blob").unwrap();
        engine.update_labels(&blob.digest, &[("k".to_owned(), "v".to_owned())].into(), &[]).unwrap();
        engine.lease_new(Some("l"), None).unwrap();
        closed_ingest(&layout, "r", b"partial");
        let path = planted
            .replace("LABEL", blob.digest.hex())
            .replace("INGEST", ingest_dir(&layout, "r").strip_prefix(&layout).unwrap().to_str().unwrap());
        make_fifo(&layout.join(&path));
        let l = layout.to_str().unwrap();
        let digest = blob.digest.to_string();
        // fsck reports it (before GC, which removes a damaged ingest with what is in it), or
        // cannot open the layout when it stands for oci-layout or index.json.
        let fsck = ocicas_watched(&["fsck", l], b"");
        assert!(fsck.code == Some(FSCK_PROBLEMS) || is_error_status(fsck.code), "{planted}: fsck called it sound");
        for args in [
            vec!["ref", "ls", l],
            vec!["ingest", "ls", l],
            vec!["lease", "ls", l],
            vec!["blob", "info", l, &digest],
            vec!["fsck", l],
            vec!["gc", l, "--ingest-expiry", "0s"],
        ] {
            let run = ocicas_watched(&args, b"");
            assert!(ended_normally(run.code), "{planted}: `ocicas {}`: {:?} {}", args.join(" "), run.code, run.stderr);
        }
    }
}

/// Item 10: `blob put L small.txt --ref R` on an ingest of R left from longer, different content
/// committed the stale bytes; a file is copied again from its start.
#[test]
fn a_file_put_on_a_stale_ingest_commits_the_files_bytes() {
    let (dir, engine) = store();
    let layout = engine.root().to_owned();
    let l = layout.to_str().unwrap();
    closed_ingest(&layout, "R", b"longer, different content left by an earlier attempt");
    let small = dir.path().join("small.txt");
    std::fs::write(&small, b"small").unwrap();
    let run = ocicas_watched(&["blob", "put", l, small.to_str().unwrap(), "--ref", "R"], b"");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(engine.list_blobs().unwrap(), vec![Digest::of_bytes(Algorithm::Sha256, b"small")]);
    assert!(engine.fsck().unwrap().is_sound());
    // Through stdin, which cannot be read again, the same is refused and the ingest kept.
    closed_ingest(&layout, "S", b"longer, different content left by an earlier attempt");
    let run = ocicas_watched(&["blob", "put", l, "-", "--ref", "S"], b"small");
    assert_eq!(run.code, Some(8), "digest mismatch: {}", run.stderr);
    assert!(run.stderr.contains("ingest abort"), "{}", run.stderr);
    assert_eq!(engine.list_blobs().unwrap().len(), 1);
}

/// Issue 25 item 2: opening a writer while another thread aborts, GCs or commits the same ingest
/// resumes, starts afresh or reports the blob stored; never NotFound, never AlreadyExists for a
/// blob that is not stored.
#[test]
fn opening_a_writer_is_atomic_with_respect_to_removal_of_its_ingest() {
    const ROUNDS: usize = 1000;
    // On a tmpfs, where fsync costs nothing, the rounds are short and the races many.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    let layout = dir.path().join("layout");
    Engine::create(&layout).unwrap();
    let engine = Engine::open(&layout, &OpenOptions::default()).unwrap();
    let content = b"the content".to_vec();
    let digest = Digest::of_bytes(Algorithm::Sha256, &content);
    let done = AtomicBool::new(false);
    /// Stops the remover however the rounds end, a failed assertion included.
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|scope| {
        let remover = scope.spawn(|| {
            let mut round = 0u64;
            while !done.load(Ordering::Relaxed) {
                round += 1;
                match round % 3 {
                    0 => drop(engine.ingest_abort("r")),
                    1 => drop(engine.gc(&GcOptions {
                        dry_run: false,
                        ingest_expiry: Duration::ZERO,
                        ..GcOptions::default()
                    })),
                    _ => {
                        // Another writer of the same ref committing; then the blob goes again.
                        if let Ok(mut writer) = engine.writer("r", &WriterOptions::default()) {
                            let _ = writer.truncate(0).and_then(|_| writer.write(&content));
                            let _ = writer.commit(None, None, &Default::default());
                        }
                        let _ = engine.delete_blob(&digest);
                    }
                }
            }
        });
        let _stop = Stop(&done);
        for round in 0..ROUNDS {
            let options = WriterOptions { expected_size: None, expected_digest: Some(digest.clone()) };
            match engine.writer("r", &options) {
                Ok(mut writer) => {
                    writer.write(b"x").unwrap_or_else(|e| panic!("round {round}: write: {e}"));
                    drop(writer);
                }
                Err(err) if err.kind() == ErrorKind::Locked => {}
                // Stored when it was looked at (it may be deleted again since), and said so: not
                // an EEXIST of the ingest directory dressed as AlreadyExists.
                Err(err) if err.kind() == ErrorKind::AlreadyExists && err.message().contains("is already stored") => {}
                Err(err) => panic!("round {round}: opening the writer failed with {:?}: {err}", err.kind()),
            }
        }
        drop(_stop);
        remover.join().unwrap();
    });
}
