//! GC attacked: the layout's blob directories swapped, renamed and replaced by links while GC
//! holds them open (7aa8489: one statat/unlinkat per blob on a directory handle opened once),
//! and writers that tag while GC runs. GC must never touch anything outside the layout, never
//! remove a blob that is referenced when it sweeps, never hang and never panic.

use crate::common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::fixture::{BeforeFirstLock, age_blob};
use ocicas::spec::{ImageManifest, MEDIA_TYPE_IMAGE_MANIFEST, canonical_json};
use ocicas::{Algorithm, Descriptor, Digest, Engine, GcOptions, GcReport, OpenOptions};

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// A config, a layer and a manifest over them, stored and aged (past GC's grace), not tagged.
/// Returns the manifest's descriptor and the digests of all three.
fn old_untagged_image(engine: &Engine, salt: &str) -> (Descriptor, Vec<Digest>) {
    let layer = engine.put_blob(format!("layer {salt}").as_bytes()).unwrap();
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "author": salt,
        "rootfs": {"type": "layers", "diff_ids": [layer.digest.to_string()]}});
    let config = engine.put_json(CONFIG, &config).unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_owned()),
        artifact_type: None,
        config: config.clone(),
        layers: vec![Descriptor::new(LAYER, layer.digest.clone(), layer.size)],
        subject: None,
        annotations: Default::default(),
        extra: Default::default(),
    };
    let bytes = canonical_json(&manifest).unwrap();
    let stored = engine.put_blob(&bytes).unwrap();
    let digests = vec![stored.digest.clone(), config.digest.clone(), layer.digest.clone()];
    for digest in &digests {
        age_blob(engine, digest);
    }
    (Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, stored.digest, stored.size), digests)
}

/// A fresh layout (in the returned directory) holding `old_untagged_image(salt)`.
fn layout_with_old_image(salt: &str) -> (tempfile::TempDir, PathBuf, Engine, Descriptor, Vec<Digest>) {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let engine = Engine::create(&layout).unwrap();
    let (descriptor, digests) = old_untagged_image(&engine, salt);
    (dir, layout, engine, descriptor, digests)
}

/// GC of `layout`, with `hook` run between its unlocked mark and its locked one.
fn gc_with_hook(layout: &Path, hook: impl FnOnce() + Send + 'static) -> GcReport {
    let storage = Arc::new(BeforeFirstLock::new(hook));
    let gc_engine = Engine::open_with(layout, &OpenOptions::default(), storage).unwrap();
    gc_engine.gc(&GcOptions::default()).unwrap()
}

/// Replaces `blobs/sha256` by a new directory holding the same files (same names, bytes and
/// mtimes: each is renamed over), as a restore or a migration of the directory would. The
/// store's content is the same before and after.
fn replace_blob_dir(layout: &Path) {
    let blobs = layout.join("blobs");
    fs::rename(blobs.join("sha256"), blobs.join("sha256.old")).unwrap();
    fs::create_dir(blobs.join("sha256")).unwrap();
    for entry in fs::read_dir(blobs.join("sha256.old")).unwrap() {
        let name = entry.unwrap().file_name();
        fs::rename(blobs.join("sha256.old").join(&name), blobs.join("sha256").join(&name)).unwrap();
    }
    fs::remove_dir(blobs.join("sha256.old")).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Finding: the graph walk keeps the blob directory handle it opened before the store lock.

/// GC marks without the lock, then, under it, reads the roots again and marks the new ones
/// through the same `GraphWalk`, whose `BlobDirs` were opened when the unlocked mark began;
/// the sweep opens `blobs/sha256` afresh. When the directory is replaced between the two (its
/// files moved into a new directory of the same name: the store's content does not change), a
/// manifest tagged meanwhile is looked up in the old, now empty, directory, found "missing",
/// and then, found again by the sweep's fresh handle with its old mtime, removed with its
/// config and layer: the tag points at nothing. Before 7aa8489 every lookup resolved the path
/// afresh and the image was kept.
#[test]
fn an_image_tagged_while_gc_waits_for_the_lock_is_kept_when_the_blob_dir_was_replaced() {
    let (_dir, layout, _, descriptor, digests) = layout_with_old_image("tagged during gc");
    let hook_layout = layout.clone();
    let hook_descriptor = descriptor.clone();
    // Between the unlocked mark and the locked one: a writer tags the image (an old manifest,
    // as when an image already stored is tagged again), and blobs/sha256 is replaced.
    let report = gc_with_hook(&layout, move || {
        let writer = Engine::open(&hook_layout, &OpenOptions::default()).unwrap();
        writer.ref_put("latest", &hook_descriptor, false).unwrap();
        replace_blob_dir(&hook_layout);
    });

    let engine = Engine::open(&layout, &OpenOptions::default()).unwrap();
    for (what, digest) in ["manifest", "config", "layer"].iter().zip(&digests) {
        assert!(
            engine.has_blob(digest).unwrap(),
            "GC removed the {what} {digest} of the image tagged `latest` before it took the lock: {report:?}"
        );
    }
    let fsck = engine.fsck().unwrap();
    assert!(fsck.is_sound(), "{:?}", fsck.problems);
}

/// The same held handle, for a blob committed while GC runs: a writer commits a new manifest
/// over a config and a layer stored long ago (a pull that finds them stored), to tag it next.
/// GC keeps a blob committed during its run with everything it references; the new manifest is
/// found by the second listing, but its stat goes through the walk's old handle: not found,
/// so its children are not marked and, old, they are removed from the new directory. The tag
/// that follows names an incomplete image.
#[test]
fn children_of_a_manifest_committed_while_gc_waits_for_the_lock_are_kept_when_the_blob_dir_was_replaced() {
    let (_dir, layout, engine, descriptor, digests) = layout_with_old_image("committed during gc");
    let manifest_bytes = engine.read_blob(&descriptor.digest, 1 << 20).unwrap();
    engine.delete_blob(&descriptor.digest).unwrap();
    let hook_layout = layout.clone();
    let report = gc_with_hook(&layout, move || {
        replace_blob_dir(&hook_layout);
        Engine::open(&hook_layout, &OpenOptions::default()).unwrap().put_blob(&manifest_bytes).unwrap();
    });

    let engine = Engine::open(&layout, &OpenOptions::default()).unwrap();
    assert!(engine.has_blob(&descriptor.digest).unwrap(), "{report:?}");
    engine.ref_put("latest", &descriptor, false).unwrap();
    for (what, digest) in ["config", "layer"].iter().zip(&digests[1..]) {
        assert!(
            engine.has_blob(digest).unwrap(),
            "GC removed the {what} {digest} of a manifest committed while it ran: {report:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Regression: blobs/sha256 swapped for a link outside, or renamed away, while GC's threads run.

/// Writes `n` garbage blobs straight into `blobs/sha256` (named by their sha256, aged past the
/// grace) and, for each, a file of the same name in `victim`, a directory outside the layout
/// that stands for another layout's blob directory. Returns the names.
fn plant_garbage_and_victims(layout: &Path, victim: &Path, n: usize) -> Vec<String> {
    fs::create_dir_all(victim).unwrap();
    let old = SystemTime::now() - Duration::from_secs(3600);
    (0..n)
        .map(|i| {
            let bytes = format!("garbage {i}");
            let name = Digest::of_bytes(Algorithm::Sha256, bytes.as_bytes()).hex().to_owned();
            let path = layout.join("blobs/sha256").join(&name);
            fs::write(&path, &bytes).unwrap();
            fs::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
            fs::write(victim.join(&name), b"victim").unwrap();
            name
        })
        .collect()
}

/// Swaps the two names atomically (renameat2 RENAME_EXCHANGE).
fn exchange(a: &Path, b: &Path) -> bool {
    rustix::fs::renameat_with(rustix::fs::CWD, a, rustix::fs::CWD, b, rustix::fs::RenameFlags::EXCHANGE).is_ok()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Swap {
    /// blobs/sha256 and blobs/x, a symlink to the victim directory, exchanged again and again.
    ExchangeWithLink,
    /// blobs/sha256 renamed away, a symlink to the victim directory put in its place, then the
    /// link removed and the directory renamed back.
    RenameAwayForLink,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum From {
    /// From GC's first unlink of a blob: the sweep's threads race the swaps.
    FirstUnlink,
    /// From GC's going for the store lock: the second listing, the stats of the unmarked blobs,
    /// the opening of the blob directories for the sweep and the sweep all race the swaps.
    Lock,
}

/// The real file system; starts the swapper (once) when GC reaches the point `from` says.
struct StartSwapping {
    from: From,
    start: std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

impl StartSwapping {
    fn fire(&self, at: From) {
        if at == self.from
            && let Some(start) = self.start.lock().unwrap().take()
        {
            let _ = start.send(());
            // Let the swapper get going.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl ocicas::layout::Storage for StartSwapping {
    fn open_lock(&self, root: &ocicas::layout::Root, path: &Path) -> std::io::Result<fs::File> {
        self.fire(From::Lock);
        ocicas::layout::OsStorage.open_lock(root, path)
    }
    fn remove_file_in(&self, dir: &ocicas::layout::Subdir, name: &std::ffi::OsStr) -> std::io::Result<()> {
        self.fire(From::FirstUnlink);
        ocicas::layout::OsStorage.remove_file_in(dir, name)
    }
}

/// Runs GC on `layout` while another thread swaps its blobs/sha256 as `swap` says, from the
/// point `from`, until GC ends; then puts the real directory back. Returns GC's result and the
/// number of swaps.
fn gc_while_swapping(
    layout: &Path,
    victim: &Path,
    swap: Swap,
    from: From,
) -> (ocicas::Result<ocicas::GcReport>, usize) {
    let blobs = layout.join("blobs");
    let (real, x, away) = (blobs.join("sha256"), blobs.join("x"), blobs.join("away"));
    if swap == Swap::ExchangeWithLink {
        symlink(victim, &x).unwrap();
    }
    let (start, started) = std::sync::mpsc::channel();
    let done = Arc::new(AtomicBool::new(false));
    let swapper = {
        let done = done.clone();
        let (real, x, away, victim) = (real.clone(), x.clone(), away.clone(), victim.to_owned());
        std::thread::spawn(move || {
            let mut swaps = 0;
            if started.recv().is_err() {
                return 0;
            }
            while !done.load(Ordering::Relaxed) {
                match swap {
                    Swap::ExchangeWithLink => {
                        exchange(&real, &x);
                        std::thread::yield_now();
                        exchange(&real, &x);
                    }
                    Swap::RenameAwayForLink => {
                        fs::rename(&real, &away).unwrap();
                        symlink(&victim, &real).unwrap();
                        std::thread::yield_now();
                        fs::remove_file(&real).unwrap();
                        fs::rename(&away, &real).unwrap();
                    }
                }
                swaps += 1;
            }
            swaps
        })
    };
    let storage = Arc::new(StartSwapping { from, start: std::sync::Mutex::new(Some(start)) });
    let gc_engine = Engine::open_with(layout, &OpenOptions::default(), storage).unwrap();
    let began = Instant::now();
    let result = gc_engine.gc(&GcOptions::default());
    assert!(began.elapsed() < Duration::from_secs(20), "GC took {:?} while blobs/sha256 was swapped", began.elapsed());
    done.store(true, Ordering::Relaxed);
    drop(gc_engine);
    let swaps = swapper.join().unwrap();
    if fs::symlink_metadata(&real).unwrap().file_type().is_symlink() {
        assert!(exchange(&real, &x));
    }
    let _ = fs::remove_file(&x);
    assert!(fs::symlink_metadata(&real).unwrap().is_dir());
    (result, swaps)
}

/// With 6,000 garbage blobs GC's 32 threads stat and unlink for a while through the handle of
/// blobs/sha256 it opened once, while the name blobs/sha256 keeps turning into a symlink to a
/// directory outside the layout that holds a file of every blob's name (as another layout's
/// blob directory would). GC may fail (a link where a directory belongs), but it must never
/// panic or hang, and never remove or change a file outside: were any lookup or unlink of a
/// blob resolved by path following the link (a plain `unlink("blobs/sha256/<hex>")`, a
/// fallback for a directory that could not be held that follows links), the swaps would lead
/// part of the sweep into the victim directory. Passes on 7aa8489: kept as a regression test.
#[test]
fn blobs_sha256_swapped_for_a_link_outside_while_gc_sweeps_never_reaches_outside() {
    for (swap, from) in [(Swap::ExchangeWithLink, From::FirstUnlink), (Swap::RenameAwayForLink, From::FirstUnlink)] {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        let victim = dir.path().join("victim");
        let engine = Engine::create(&layout).unwrap();
        let (descriptor, _) = old_untagged_image(&engine, "tagged");
        engine.ref_put("latest", &descriptor, false).unwrap();
        let names = plant_garbage_and_victims(&layout, &victim, 6_000);
        // Blob names of the image too: a sweep led outside could take those as well.
        for name in common::fixture::blob_files(&layout) {
            fs::write(victim.join(name), b"victim").unwrap();
        }
        let planted = fs::read_dir(&victim).unwrap().count();

        let (result, swaps) = gc_while_swapping(&layout, &victim, swap, from);
        let outcome = match &result {
            Ok(report) => format!("removed {}", report.blobs_removed),
            Err(err) => err.to_string(),
        };
        eprintln!("{swap:?} from {from:?}: {swaps} swaps, GC: {outcome}");
        assert!(swaps > 0, "the swapper never ran ({swap:?} from {from:?}): {outcome}");
        let left: Vec<_> = fs::read_dir(&victim).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(left.len(), planted, "GC removed files outside the layout ({swap:?} from {from:?}; {outcome})");
        for path in left {
            assert_eq!(fs::read(&path).unwrap(), b"victim", "{} changed", path.display());
        }
        // Whatever GC did, a later GC of the restored layout sweeps all of the garbage.
        let report = Engine::open(&layout, &OpenOptions::default()).unwrap().gc(&GcOptions::default()).unwrap();
        let blobs = common::fixture::blob_files(&layout);
        assert!(names.iter().all(|name| !blobs.contains(name)), "garbage left after a clean GC: {report:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Regression: a writer that commits again what is stored, then tags it, racing GC processes.

/// The bytes of image `k`: a layer, a config over it and a manifest over both (fixed, so that
/// every round commits again blobs that may be stored already, or swept a moment ago).
fn image_bytes(k: usize) -> [(Vec<u8>, &'static str); 3] {
    let layer = format!("layer of image {k}, committed again and again").into_bytes();
    let layer_digest = Digest::of_bytes(Algorithm::Sha256, &layer);
    let config = canonical_json(&serde_json::json!({"architecture": "amd64", "os": "linux", "author": k,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]}}))
    .unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_owned()),
        artifact_type: None,
        config: Descriptor::new(CONFIG, Digest::of_bytes(Algorithm::Sha256, &config), config.len() as u64),
        layers: vec![Descriptor::new(LAYER, layer_digest, layer.len() as u64)],
        subject: None,
        annotations: Default::default(),
        extra: Default::default(),
    };
    [(layer, LAYER), (config, CONFIG), (canonical_json(&manifest).unwrap(), MEDIA_TYPE_IMAGE_MANIFEST)]
}

/// `ocicas gc` processes, one after another, race a writer for 5 s. Each round the writer
/// makes the blobs of one of three images old (as if stored an hour ago: past the grace, so
/// garbage while untagged), commits all three again, children first (a commit of a stored blob
/// only refreshes its mtime), then moves the tag `latest` to it, and checks that all three are
/// still stored. A GC that judged a blob by a listing or a stat taken before the commit, or that
/// swept a blob committed since it started, leaves `latest` on an incomplete image. The rounds
/// also leave garbage (the previous image, a blob of noise) for every GC to sweep. Passes on
/// 7aa8489: kept as a regression test of the listing beside the marking and the parallel stats.
#[test]
fn an_image_committed_again_then_tagged_while_gc_processes_run_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let engine = Engine::create(&layout).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let (stop, layout) = (stop.clone(), layout.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                let out = std::process::Command::new(common::cli::OCICAS)
                    .args(["gc", common::cli::s(&layout)])
                    .output()
                    .unwrap();
                common::cli::assert_succeeded("ocicas gc", &out);
                runs += 1;
            }
            runs
        })
    };
    let until = Instant::now() + Duration::from_secs(5);
    let mut rounds = 0;
    let mut lost = Vec::new();
    while Instant::now() < until && lost.is_empty() {
        let image = image_bytes(rounds % 3);
        let digests: Vec<Digest> = image.iter().map(|(bytes, _)| Digest::of_bytes(Algorithm::Sha256, bytes)).collect();
        for digest in &digests {
            // Swept meanwhile, or not stored yet: nothing to make old.
            let path = layout.join("blobs/sha256").join(digest.hex());
            if let Ok(file) = fs::File::options().write(true).open(&path) {
                let _ = file.set_modified(SystemTime::now() - Duration::from_secs(3600));
            }
        }
        for (bytes, _) in &image {
            engine.put_blob(bytes).unwrap();
        }
        let (manifest, _) = &image[2];
        let descriptor = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, digests[2].clone(), manifest.len() as u64);
        engine.ref_put("latest", &descriptor, true).unwrap();
        for (digest, (_, what)) in digests.iter().zip(&image) {
            if !engine.has_blob(digest).unwrap() {
                lost.push(format!("round {rounds}: the {what} {digest} of the image just tagged `latest` is gone"));
            }
        }
        engine.put_blob(format!("noise {rounds}").as_bytes()).unwrap();
        rounds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let runs = collector.join().unwrap();
    eprintln!("{rounds} rounds against {runs} GC runs");
    assert!(lost.is_empty(), "{}", lost.join("\n"));
    assert!(runs > 10, "only {runs} GC runs raced the writer");
    let fsck = engine.fsck().unwrap();
    assert!(fsck.is_sound(), "{:?}", fsck.problems);
}

/// The garbage blob a directory is planted in place of.
const VICTIM: usize = 7;

/// Fifty garbage blobs, aged; returns the layout's directory and their digests.
fn layout_with_old_garbage() -> (tempfile::TempDir, Engine, Vec<Digest>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path().join("layout")).unwrap();
    let garbage = (0..50)
        .map(|i| {
            let blob = engine.put_blob(format!("garbage {i}").as_bytes()).unwrap();
            age_blob(&engine, &blob.digest);
            blob.digest
        })
        .collect();
    (dir, engine, garbage)
}

/// Puts a directory, with a file in it, where the blob file `path` was.
fn plant_directory(path: &Path) {
    fs::remove_file(path).unwrap();
    fs::create_dir(path).unwrap();
    fs::write(path.join("inner"), b"not a blob").unwrap();
}

/// GC's report says, once, that `victim` was left as no blob; the run removed the other 49.
fn assert_left_and_noted(report: &GcReport, victim: &Path, engine: &Engine) {
    assert!(victim.join("inner").exists(), "the planted directory is left as it was");
    assert_eq!(report.blobs_removed, 49, "{report:?}");
    let removed: usize = (0..50).filter(|i| *i != VICTIM).map(|i| format!("garbage {i}").len()).sum();
    assert_eq!(report.bytes_removed, removed as u64, "{report:?}");
    let noted: Vec<_> = report.not_removed.iter().filter(|line| line.contains("not a regular file")).collect();
    assert_eq!(noted.len(), 1, "{report:?}");
    assert!(noted[0].contains(&victim.display().to_string()), "{report:?}");
    assert!(engine.list_blobs().unwrap().is_empty(), "only the directory is left in blobs/sha256");
}

#[test]
fn a_directory_planted_in_place_of_a_garbage_blob_while_gc_marks_is_left_and_noted_and_the_rest_swept() {
    let (_dir, engine, garbage) = layout_with_old_garbage();
    let victim = engine.root().join("blobs/sha256").join(garbage[VICTIM].hex());
    let planted = victim.clone();
    let report = gc_with_hook(engine.root(), move || plant_directory(&planted));
    assert_left_and_noted(&report, &victim, &engine);
}

/// Plants a directory in place of the blob `victim` (a file name in `blobs/sha256`) just before
/// the sweep unlinks it: after GC looked at it.
struct PlantBeforeUnlink {
    victim: PathBuf,
}

impl ocicas::layout::Storage for PlantBeforeUnlink {
    fn remove_file_in(&self, dir: &ocicas::layout::Subdir, name: &std::ffi::OsStr) -> std::io::Result<()> {
        if self.victim.file_name() == Some(name) {
            plant_directory(&self.victim);
        }
        ocicas::layout::OsStorage.remove_file_in(dir, name)
    }
}

#[test]
fn a_directory_planted_in_place_of_a_garbage_blob_as_gc_sweeps_is_left_and_noted_and_the_rest_swept() {
    let (_dir, engine, garbage) = layout_with_old_garbage();
    let victim = engine.root().join("blobs/sha256").join(garbage[VICTIM].hex());
    let storage = Arc::new(PlantBeforeUnlink { victim: victim.clone() });
    let collector = Engine::open_with(engine.root(), &OpenOptions::default(), storage).unwrap();
    let report = collector.gc(&GcOptions::default()).unwrap();
    assert_left_and_noted(&report, &victim, &engine);
}
