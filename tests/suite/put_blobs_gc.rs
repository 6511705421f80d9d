//! The batch put (`Engine::put_blobs`) against a GC in another engine (found by an outside attack): the blobs a
//! batch reports stored must still be stored when the call returns, so the caller can tag or
//! lease them next ("blobs committed during a GC, or in the second before it, are kept ... so a
//! writer may commit first and tag next", README). A batch of more than one group commits its
//! first group long before the call returns; a GC that starts in between sees that group as old
//! garbage.

use crate::common;

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::fixture::store;
use ocicas::layout::Storage;
use ocicas::spec::{ImageManifest, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_MANIFEST};
use ocicas::{Descriptor, Engine, GcOptions, OpenOptions};

/// Blobs `put_blobs` links as one group (content::PUT_GROUP).
const GROUP: usize = 256;

/// The real file system, except that the fsync of the second group's first blob is slow (a
/// loaded disk: an fsync of a few seconds is common under write-back pressure), and a GC from
/// another engine starts while it waits, as `ocicas gc` in another process would.
struct SlowSecondGroup {
    layout: PathBuf,
    syncs: AtomicUsize,
    gc: std::sync::Mutex<Option<std::thread::JoinHandle<String>>>,
}

impl SlowSecondGroup {
    /// The report of the GC started during the batch, once it ended.
    fn gc_report(&self) -> String {
        let gc = self.gc.lock().unwrap().take().expect("a GC started during the batch");
        gc.join().unwrap()
    }
}

impl Storage for SlowSecondGroup {
    fn sync_file(&self, file: &File) -> std::io::Result<()> {
        if self.syncs.fetch_add(1, Ordering::SeqCst) == GROUP {
            let layout = self.layout.clone();
            *self.gc.lock().unwrap() = Some(std::thread::spawn(move || {
                // Past the grace GC gives the first group, committed just before.
                std::thread::sleep(Duration::from_millis(1500));
                let other = Engine::open(&layout, &OpenOptions::default()).unwrap();
                format!("{:?}", other.gc(&GcOptions::default()).unwrap())
            }));
            std::thread::sleep(Duration::from_millis(3000));
        }
        file.sync_all()
    }
}

/// A second engine on `engine`'s layout whose second group's seal stalls while a GC starts.
fn slow_writer(engine: &Engine) -> (Arc<SlowSecondGroup>, Engine) {
    let storage = Arc::new(SlowSecondGroup {
        layout: engine.root().to_path_buf(),
        syncs: AtomicUsize::new(0),
        gc: Default::default(),
    });
    let writer = Engine::open_with(engine.root(), &OpenOptions::default(), storage.clone()).unwrap();
    (storage, writer)
}

fn payloads(count: usize) -> Vec<Vec<u8>> {
    (0..count).map(|i| format!("batch blob {i}").into_bytes()).collect()
}

#[test]
fn blobs_of_a_batch_put_are_all_stored_when_it_returns_though_a_gc_ran_during_it() {
    let (_dir, engine) = store();
    let (storage, writer) = slow_writer(&engine);
    let payloads = payloads(GROUP + 1);
    let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let stored = writer.put_blobs(&slices).unwrap();
    let gc_report = storage.gc_report();

    let gone: Vec<_> = stored.iter().filter(|blob| !engine.has_blob(&blob.digest).unwrap()).collect();
    assert!(
        gone.is_empty(),
        "put_blobs returned Ok for {} blobs, and {} of them were already removed by a GC that ran during the \
         call (GC: {gc_report}); first gone: {}",
        stored.len(),
        gone.len(),
        gone[0].digest
    );
}

/// The writer's whole sequence, as the README says a writer may do it: commit (here the layers,
/// in one batch), then the config and manifest, then tag. The tag must resolve to complete blobs.
#[test]
fn an_image_whose_layers_were_put_in_one_batch_and_tagged_at_once_is_complete_after_a_gc_during_the_batch() {
    let (_dir, engine) = store();
    let (storage, writer) = slow_writer(&engine);
    let payloads = payloads(GROUP + 1);
    let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let layers = writer.put_blobs(&slices).unwrap();
    // An uncompressed layer's DiffID is its digest.
    let diff_ids: Vec<String> = layers.iter().map(|blob| blob.digest.to_string()).collect();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = writer.put_blob(config.to_string().as_bytes()).unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_owned()),
        artifact_type: None,
        config: Descriptor::new(MEDIA_TYPE_IMAGE_CONFIG, config.digest, config.size),
        layers: layers
            .iter()
            .map(|blob| Descriptor::new("application/vnd.oci.image.layer.v1.tar", blob.digest.clone(), blob.size))
            .collect(),
        subject: None,
        annotations: Default::default(),
        extra: Default::default(),
    };
    let manifest = writer.put_json(MEDIA_TYPE_IMAGE_MANIFEST, &manifest).unwrap();
    writer.ref_put("batched", &manifest, false).unwrap();
    storage.gc_report();

    let report = engine.fsck().unwrap();
    assert!(
        report.problems.is_empty(),
        "tag `batched` was acknowledged but its image is incomplete ({} problems, first: {})",
        report.problems.len(),
        report.problems[0]
    );
}

/// The same race without any injected delay: `ocicas gc` in a loop in other processes while one
/// batch of 8 groups of 4 KiB blobs is put. On this machine a group of 256 fsyncs takes long
/// enough that the first groups are past GC's one-second grace before the call returns.
#[test]
fn a_batch_put_of_eight_groups_against_gc_processes_in_a_loop_keeps_every_blob_until_it_returns() {
    let (_dir, engine) = store();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let layout = engine.root().to_path_buf();
    let collector = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut runs = 0;
            while !done.load(Ordering::SeqCst) {
                common::cli::ocicas(&["gc", common::cli::s(&layout)]);
                runs += 1;
            }
            runs
        })
    };
    let payloads: Vec<Vec<u8>> = (0..8 * GROUP)
        .map(|i| common::fixture::bytes(4096, (i % 251) as u8).into_iter().chain(i.to_le_bytes()).collect())
        .collect();
    let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let started = std::time::Instant::now();
    let stored = engine.put_blobs(&slices).unwrap();
    let took = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let runs = collector.join().unwrap();
    let gone = stored.iter().filter(|blob| !engine.has_blob(&blob.digest).unwrap()).count();
    assert_eq!(
        gone,
        0,
        "{gone} of the {} blobs put_blobs returned were removed by `ocicas gc` ({runs} runs) before the call returned ({took:?})",
        stored.len()
    );
}
