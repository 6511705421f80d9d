//! Faults and crashes on the storage seam (`ocicas::layout::Storage`).
//!
//! Fault injection: one scenario of commits, ingests, tags, labels, leases and GC is run once
//! per storage operation, with that operation failing (EIO, ENOSPC, or a short write). The
//! failing step must report an error, every step that reported success must have taken effect,
//! and fsck must be clean.
//!
//! Crash simulation (the method of the ALICE study and LevelDB's fault-injection env): the
//! scenario runs once while every fsync is recorded: a file's durable bytes are what it held
//! at its last fsync, a directory's durable entries what it held at its last fsync. For every
//! prefix of the operations, the layout is rebuilt as a power loss at that point would leave
//! it (un-fsynced data and directory entries dropped) and reopened: every commit and tag
//! acknowledged by then survived, no blob is partial, index.json is whole.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fixture::bytes;
use ocicas::layout::{OsStorage, Root, Storage, Subdir};
use ocicas::spec::MEDIA_TYPE_IMAGE_MANIFEST;
use ocicas::{Algorithm, Digest, Engine, GcOptions, LeaseResource, OpenOptions, WriterOptions};

// ---------------------------------------------------------------------------------------------
// The scenario.

/// What a step promised when it reported success.
#[derive(Debug, Clone)]
enum Promise {
    Stored(Digest),
    StoredAll(Vec<Digest>),
    Tagged(String, Digest),
    Untagged(String),
    /// A step that failed while changing this name: either the old or the new value may hold.
    Unknown(String),
    Nothing,
}

fn manifest(engine: &Engine, layer: &Digest, salt: &str) -> ocicas::Result<ocicas::Descriptor> {
    let config = engine.put_json(
        "application/vnd.oci.image.config.v1+json",
        &serde_json::json!({"architecture": "amd64", "os": "linux", "author": salt,
            "rootfs": {"type": "layers", "diff_ids": [layer.to_string()]}}),
    )?;
    let size = engine.blob_size(layer)?;
    engine.put_json(
        MEDIA_TYPE_IMAGE_MANIFEST,
        &serde_json::json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_MANIFEST, "config": config,
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": size}]}),
    )
}

/// Runs every step, whatever the earlier ones returned; calls `done(step, tag, result)` after
/// each, `tag` naming the reference the step changes, if any.
fn run_scenario(engine: &Engine, mut done: impl FnMut(&str, Option<&str>, ocicas::Result<Promise>)) {
    let layer = Digest::of_bytes(Algorithm::Sha256, &bytes(100_000, 1));
    done("put a blob", None, engine.put_blob(&bytes(100_000, 1)).map(|b| Promise::Stored(b.digest)));
    done(
        "put a blob again whose file has a second link (replaced by a fresh one)",
        None,
        second_link(engine, &layer)
            .and_then(|()| engine.put_blob(&bytes(100_000, 1)))
            .map(|blob| Promise::Stored(blob.digest)),
    );
    done(
        "ingest: write, close",
        None,
        engine.writer("upload", &WriterOptions::default()).and_then(|mut w| {
            w.write(&bytes(40_000, 2))?;
            w.close()?;
            Ok(Promise::Nothing)
        }),
    );
    done(
        "ingest: resume, write, commit",
        None,
        engine.writer("upload", &WriterOptions::default()).and_then(|mut w| {
            let offset = w.status().offset as usize;
            w.write(&bytes(80_000, 2)[offset..])?;
            Ok(Promise::Stored(w.commit(Some(80_000), None, &Default::default())?))
        }),
    );
    done(
        "put blobs in a batch, one of them stored before",
        None,
        engine
            .put_blobs(&[&bytes(3_000, 4), &bytes(100_000, 1), &bytes(4_096, 5), &bytes(1, 6)])
            .map(|stored| Promise::StoredAll(stored.into_iter().map(|blob| blob.digest).collect())),
    );
    done(
        "tag an image",
        Some("app"),
        manifest(engine, &layer, "first").and_then(|m| {
            engine.ref_put("app", &m, true)?;
            Ok(Promise::Tagged("app".into(), m.digest))
        }),
    );
    done(
        "label a blob",
        None,
        engine
            .update_labels(&layer, &[("purpose".to_owned(), "test".to_owned())].into(), &[])
            .map(|_| Promise::Stored(layer.clone())),
    );
    done(
        "a leased blob",
        None,
        engine.lease_new(None, None).and_then(|lease| {
            let blob = engine.put_blob_leased(&lease.id, Algorithm::Sha256, &bytes(5_000, 3)[..])?;
            engine.lease_add(&lease.id, LeaseResource::Blob(layer.clone()))?;
            // The lease stays: the final GC keeps the blob because of it, not because GC came
            // within its grace of the commit (a slow machine once took longer).
            let released = engine.lease_new(None, None)?;
            engine.lease_release(&released.id)?;
            Ok(Promise::Stored(blob.digest))
        }),
    );
    done(
        "move the tag",
        Some("app"),
        manifest(engine, &layer, "second").and_then(|m| {
            engine.ref_put("app", &m, true)?;
            Ok(Promise::Tagged("app".into(), m.digest))
        }),
    );
    done(
        "tag and untag",
        Some("gone"),
        manifest(engine, &layer, "third").and_then(|m| {
            engine.ref_put("gone", &m, true)?;
            engine.ref_delete("gone")?;
            Ok(Promise::Untagged("gone".into()))
        }),
    );
    done(
        "garbage from long ago",
        None,
        engine.put_blob(&bytes(2_000, 7)).and_then(|blob| age(engine, &blob.digest)).map(|()| Promise::Nothing),
    );
    // Every blob the scenario stored untagged is kept by the grace of `min_age`, however slow
    // the machine: only the aged garbage (and expired ingests) may go.
    done(
        "gc",
        None,
        engine
            .gc(&GcOptions {
                dry_run: false,
                ingest_expiry: Duration::ZERO,
                min_age: SCENARIO_GRACE,
                ..GcOptions::default()
            })
            .map(|_| Promise::Nothing),
    );
}

/// Longer than any run of the scenario.
const SCENARIO_GRACE: Duration = Duration::from_secs(3600);

/// Dates blob `digest` from before `SCENARIO_GRACE`, so that the final GC removes it (made
/// directly, not through the storage under test).
fn age(engine: &Engine, digest: &Digest) -> ocicas::Result<()> {
    let blob = engine.root().join("blobs").join(digest.algorithm().name()).join(digest.hex());
    let long_ago = std::time::SystemTime::now() - 2 * SCENARIO_GRACE;
    File::open(&blob)
        .and_then(|file| file.set_modified(long_ago))
        .map_err(|e| ocicas::Error::io("cannot date", &blob, e))
}

/// Gives blob `digest` a second link outside the layout, as a `cp -al` clone of it would
/// (made directly, not through the storage under test).
fn second_link(engine: &Engine, digest: &Digest) -> ocicas::Result<()> {
    let clone = engine.root().with_extension("clone");
    let _ = std::fs::remove_file(&clone);
    let blob = engine.root().join("blobs").join(digest.algorithm().name()).join(digest.hex());
    std::fs::hard_link(&blob, &clone).map_err(|e| ocicas::Error::io("cannot link", &blob, e))
}

/// Checks the promises against a layout opened afresh, and that fsck finds nothing wrong.
fn check_layout(path: &Path, promises: &[(String, Promise)], context: &str) {
    let engine = Engine::open(path, &OpenOptions::default()).unwrap_or_else(|e| panic!("{context}: reopen: {e}"));
    let report = engine.fsck().unwrap_or_else(|e| panic!("{context}: fsck: {e}"));
    assert!(report.is_sound(), "{context}: fsck: {:?}", report.problems);
    engine.ingest_list(&ocicas::Filters::parse::<&str>(&[]).unwrap()).unwrap_or_else(|e| panic!("{context}: {e}"));
    // A later tag or untag of a name supersedes the earlier promises about it.
    let last_of_name: HashMap<&str, usize> = promises
        .iter()
        .enumerate()
        .filter_map(|(i, (_, p))| match p {
            Promise::Tagged(name, _) | Promise::Untagged(name) | Promise::Unknown(name) => Some((name.as_str(), i)),
            _ => None,
        })
        .collect();
    for (i, (step, promise)) in promises.iter().enumerate() {
        if let Promise::Tagged(name, _) | Promise::Untagged(name) | Promise::Unknown(name) = promise
            && last_of_name[name.as_str()] != i
        {
            continue;
        }
        let held = match promise {
            Promise::Stored(digest) => engine.verify_blob(digest).is_ok(),
            Promise::StoredAll(digests) => digests.iter().all(|digest| engine.verify_blob(digest).is_ok()),
            Promise::Tagged(name, digest) => engine.ref_get(name).is_ok_and(|d| d.digest == *digest),
            Promise::Untagged(name) => engine.ref_get(name).is_err(),
            Promise::Unknown(_) | Promise::Nothing => true,
        };
        assert!(held, "{context}: step {step:?} reported success but {promise:?} does not hold");
    }
}

// ---------------------------------------------------------------------------------------------
// Fault injection.

#[derive(Debug, Clone, Copy)]
enum Fault {
    Eio,
    Enospc,
    /// A write that stores half its bytes, then fails with ENOSPC.
    Short,
}

/// The real file system, except that operation number `fail_at` (counting from 1) fails.
struct FaultyStorage {
    count: Mutex<usize>,
    fail_at: usize,
    fault: Fault,
    /// The operation that failed, once it has.
    fired: Mutex<Option<&'static str>>,
}

impl FaultyStorage {
    fn check(&self, op: &'static str) -> io::Result<()> {
        let mut count = self.count.lock().unwrap();
        *count += 1;
        if *count != self.fail_at {
            return Ok(());
        }
        *self.fired.lock().unwrap() = Some(op);
        Err(match self.fault {
            Fault::Eio => io::Error::from_raw_os_error(libc::EIO),
            Fault::Enospc | Fault::Short => io::Error::from_raw_os_error(libc::ENOSPC),
        })
    }
}

impl Storage for FaultyStorage {
    fn create_dir(&self, root: &Root, path: &Path) -> io::Result<bool> {
        self.check("create_dir")?;
        OsStorage.create_dir(root, path)
    }
    fn create_new(&self, root: &Root, path: &Path) -> io::Result<File> {
        self.check("create_new")?;
        OsStorage.create_new(root, path)
    }
    fn open_append(&self, root: &Root, path: &Path) -> io::Result<File> {
        self.check("open_append")?;
        OsStorage.open_append(root, path)
    }
    fn open_lock(&self, root: &Root, path: &Path) -> io::Result<File> {
        self.check("open_lock")?;
        OsStorage.open_lock(root, path)
    }
    fn write_all(&self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        if let Err(err) = self.check("write_all") {
            if let Fault::Short = self.fault {
                OsStorage.write_all(file, &bytes[..bytes.len() / 2])?;
            }
            return Err(err);
        }
        OsStorage.write_all(file, bytes)
    }
    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        self.check("set_len")?;
        OsStorage.set_len(file, len)
    }
    fn sync_file(&self, file: &File) -> io::Result<()> {
        self.check("sync_file")?;
        OsStorage.sync_file(file)
    }
    fn start_writeback(&self, file: &File, offset: u64, len: u64) {
        OsStorage.start_writeback(file, offset, len)
    }
    fn set_read_only(&self, file: &File) -> io::Result<()> {
        self.check("set_read_only")?;
        OsStorage.set_read_only(file)
    }
    fn touch(&self, root: &Root, path: &Path) -> io::Result<()> {
        self.check("touch")?;
        OsStorage.touch(root, path)
    }
    fn rename(&self, root: &Root, from: &Path, to: &Path) -> io::Result<()> {
        self.check("rename")?;
        OsStorage.rename(root, from, to)
    }
    fn link(&self, root: &Root, file: &File, from: &Path, to: &Path) -> io::Result<()> {
        self.check("link")?;
        OsStorage.link(root, file, from, to)
    }
    fn remove_file(&self, root: &Root, path: &Path) -> io::Result<()> {
        self.check("remove_file")?;
        OsStorage.remove_file(root, path)
    }
    fn remove_file_in(&self, dir: &Subdir, name: &OsStr) -> io::Result<()> {
        self.check("remove_file")?;
        OsStorage.remove_file_in(dir, name)
    }
    fn remove_dir_all(&self, root: &Root, path: &Path, dir: &File) -> io::Result<()> {
        self.check("remove_dir_all")?;
        OsStorage.remove_dir_all(root, path, dir)
    }
    fn sync_dir(&self, root: &Root, path: &Path) -> io::Result<()> {
        self.check("sync_dir")?;
        OsStorage.sync_dir(root, path)
    }
}

/// Cleanup that a successful step may fail at without harm: what it leaves is private state
/// that GC removes.
const BEST_EFFORT: &[&str] = &["remove_file", "remove_dir_all"];

#[test]
fn every_storage_operation_failing_in_turn_loses_nothing_acknowledged() {
    // A run without faults counts the operations.
    let dir = tempfile::tempdir().unwrap();
    let counter =
        Arc::new(FaultyStorage { count: Mutex::new(0), fail_at: 0, fault: Fault::Eio, fired: Mutex::new(None) });
    let layout = dir.path().join("count");
    let engine =
        Engine::open_with(&layout, &OpenOptions { create: true, ..OpenOptions::default() }, counter.clone()).unwrap();
    let setup_ops = *counter.count.lock().unwrap();
    run_scenario(&engine, |step, _, result| assert!(result.is_ok(), "{step} failed without a fault: {result:?}"));
    let total = *counter.count.lock().unwrap();
    assert!(total - setup_ops > 50, "the scenario made only {} storage operations", total - setup_ops);

    let mut fired_by_op: BTreeMap<&str, usize> = BTreeMap::new();
    for fail_at in setup_ops + 1..=total {
        let fault = [Fault::Eio, Fault::Enospc, Fault::Short][fail_at % 3];
        let storage = Arc::new(FaultyStorage { count: Mutex::new(0), fail_at, fault, fired: Mutex::new(None) });
        let layout = dir.path().join(format!("fault-{fail_at}"));
        let engine =
            Engine::open_with(&layout, &OpenOptions { create: true, ..OpenOptions::default() }, storage.clone())
                .unwrap();
        let mut promises = Vec::new();
        let mut swallowed = None;
        run_scenario(&engine, |step, tag, result| {
            let fired_now = storage.fired.lock().unwrap().take();
            match (result, fired_now) {
                (Ok(_), Some(op)) if !BEST_EFFORT.contains(&op) => swallowed = Some((step.to_owned(), op)),
                (Ok(promise), _) => promises.push((step.to_owned(), promise)),
                (Err(_), _) => promises.extend(tag.map(|t| (step.to_owned(), Promise::Unknown(t.to_owned())))),
            }
            if let Some(op) = fired_now {
                *fired_by_op.entry(op).or_default() += 1;
            }
        });
        let context = format!("{fault:?} at storage operation {fail_at}");
        assert!(swallowed.is_none(), "{context}: {swallowed:?} reported success over a failed operation");
        drop(engine);
        check_layout(&layout, &promises, &context);
    }
    println!("{} operations failed in turn: {fired_by_op:?}", total - setup_ops);
}

// ---------------------------------------------------------------------------------------------
// Crash simulation.

/// What a directory or file held at one fsync.
#[derive(Default)]
struct Durable {
    /// Directory path → (operation number, entries: name → (inode, is_dir)) at each fsync.
    dirs: HashMap<PathBuf, Vec<(usize, BTreeMap<String, (u64, bool)>)>>,
    /// Inode → (operation number, bytes) at each fsync.
    files: HashMap<u64, Vec<(usize, Vec<u8>)>>,
}

/// The real file system, recording what each fsync made durable.
struct RecordingStorage {
    count: Mutex<usize>,
    durable: Mutex<Durable>,
}

impl RecordingStorage {
    fn step(&self) -> usize {
        let mut count = self.count.lock().unwrap();
        *count += 1;
        *count
    }

    fn record_dir(&self, step: usize, path: &Path) -> io::Result<()> {
        let mut entries = BTreeMap::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            entries.insert(entry.file_name().to_string_lossy().into_owned(), (meta.ino(), meta.is_dir()));
        }
        self.durable.lock().unwrap().dirs.entry(path.to_owned()).or_default().push((step, entries));
        Ok(())
    }

    fn record_file(&self, step: usize, file: &File) -> io::Result<()> {
        // Through /proc, as the handle may be open for writing only.
        let mut bytes = Vec::new();
        File::open(format!("/proc/self/fd/{}", file.as_raw_fd()))?.read_to_end(&mut bytes)?;
        let ino = file.metadata()?.ino();
        self.durable.lock().unwrap().files.entry(ino).or_default().push((step, bytes));
        Ok(())
    }

    /// Records the whole tree as durable (the state before the trace).
    fn record_tree(&self, path: &Path) -> io::Result<()> {
        self.record_dir(0, path)?;
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                self.record_tree(&entry.path())?;
            } else {
                self.record_file(0, &File::open(entry.path())?)?;
            }
        }
        Ok(())
    }

    /// Writes to `out` the tree at `root` as a crash after operation `at` leaves it.
    fn materialize(&self, root: &Path, at: usize, out: &Path) {
        build_crashed(&self.durable.lock().unwrap(), at, root, out);
    }
}

/// The snapshot in force after operation `at`: the last one taken by then.
fn latest<T>(snapshots: Option<&Vec<(usize, T)>>, at: usize) -> Option<&T> {
    snapshots?.iter().rev().find(|(n, _)| *n <= at).map(|(_, snapshot)| snapshot)
}

/// A directory holds the entries of its last fsync (none if never synced); a file the bytes of
/// its last fsync (none if never synced).
fn build_crashed(durable: &Durable, at: usize, path: &Path, out: &Path) {
    fs::create_dir_all(out).unwrap();
    for (name, (ino, is_dir)) in latest(durable.dirs.get(path), at).cloned().unwrap_or_default() {
        if is_dir {
            build_crashed(durable, at, &path.join(&name), &out.join(&name));
        } else {
            fs::write(out.join(&name), latest(durable.files.get(&ino), at).cloned().unwrap_or_default()).unwrap();
        }
    }
}

impl Storage for RecordingStorage {
    fn create_dir(&self, root: &Root, path: &Path) -> io::Result<bool> {
        self.step();
        OsStorage.create_dir(root, path)
    }
    fn create_new(&self, root: &Root, path: &Path) -> io::Result<File> {
        self.step();
        OsStorage.create_new(root, path)
    }
    fn open_append(&self, root: &Root, path: &Path) -> io::Result<File> {
        self.step();
        OsStorage.open_append(root, path)
    }
    fn open_lock(&self, root: &Root, path: &Path) -> io::Result<File> {
        self.step();
        OsStorage.open_lock(root, path)
    }
    fn write_all(&self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        self.step();
        OsStorage.write_all(file, bytes)
    }
    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        self.step();
        OsStorage.set_len(file, len)
    }
    fn sync_file(&self, file: &File) -> io::Result<()> {
        let step = self.step();
        OsStorage.sync_file(file)?;
        self.record_file(step, file)
    }
    fn start_writeback(&self, file: &File, offset: u64, len: u64) {
        OsStorage.start_writeback(file, offset, len)
    }
    fn set_read_only(&self, file: &File) -> io::Result<()> {
        self.step();
        OsStorage.set_read_only(file)
    }
    fn touch(&self, root: &Root, path: &Path) -> io::Result<()> {
        self.step();
        OsStorage.touch(root, path)
    }
    fn rename(&self, root: &Root, from: &Path, to: &Path) -> io::Result<()> {
        self.step();
        OsStorage.rename(root, from, to)
    }
    fn link(&self, root: &Root, file: &File, from: &Path, to: &Path) -> io::Result<()> {
        self.step();
        OsStorage.link(root, file, from, to)
    }
    fn remove_file(&self, root: &Root, path: &Path) -> io::Result<()> {
        self.step();
        OsStorage.remove_file(root, path)
    }
    fn remove_file_in(&self, dir: &Subdir, name: &OsStr) -> io::Result<()> {
        self.step();
        OsStorage.remove_file_in(dir, name)
    }
    fn remove_dir_all(&self, root: &Root, path: &Path, dir: &File) -> io::Result<()> {
        self.step();
        OsStorage.remove_dir_all(root, path, dir)
    }
    fn sync_dir(&self, root: &Root, path: &Path) -> io::Result<()> {
        let step = self.step();
        OsStorage.sync_dir(root, path)?;
        // "" is the root itself (a join would add a trailing slash to the key).
        let dir = if path.as_os_str().is_empty() { root.path().to_owned() } else { root.path().join(path) };
        self.record_dir(step, &dir)
    }
}

#[test]
fn a_crash_after_any_operation_keeps_every_acknowledged_commit_and_tag() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    // The layout is made by the recorded engine, from an empty directory, so that its creation
    // (every directory made durable in its parent) is crash-tested too.
    fs::create_dir(&layout).unwrap();
    let storage = Arc::new(RecordingStorage { count: Mutex::new(0), durable: Mutex::new(Durable::default()) });
    storage.record_tree(&layout).unwrap();
    let create = OpenOptions { create: true, ..OpenOptions::default() };
    let engine = Engine::open_with(&layout, &create, storage.clone()).unwrap();
    let created = *storage.count.lock().unwrap();
    // Each promise with the operation count at which its step returned.
    let mut promises: Vec<(usize, String, Promise)> = Vec::new();
    run_scenario(&engine, |step, _, result| {
        let at = *storage.count.lock().unwrap();
        promises.push((at, step.to_owned(), result.unwrap_or_else(|e| panic!("{step}: {e}"))));
    });
    let total = *storage.count.lock().unwrap();
    for at in 0..=total {
        let crashed = dir.path().join(format!("crash-{at}"));
        storage.materialize(&layout, at, &crashed);
        let context = format!("a crash after storage operation {at} of {total}");
        if at < created {
            // Not yet acknowledged: a half-made layout may not open, but it says so.
            if let Err(err) = Engine::open(&crashed, &OpenOptions::default()) {
                assert_eq!(err.kind(), ocicas::ErrorKind::InvalidImage, "{context}: {err}");
            }
        } else {
            let acknowledged: Vec<(String, Promise)> = promises
                .iter()
                .filter(|(done, ..)| *done <= at)
                .map(|(_, step, p)| (step.clone(), p.clone()))
                .collect();
            check_layout(&crashed, &acknowledged, &context);
        }
        fs::remove_dir_all(&crashed).unwrap();
    }
    println!("{} crash points checked", total + 1);
}
