//! Cancellation (`Cancel`) of every long operation: requested before it starts, or from inside
//! it at a chosen moment (a read of its input, a write of its output, a progress report, an
//! unlink of its sweep), it stops with `Cancelled`, stores no partial blob and leaves the store
//! sound.

use crate::common;
use crate::distribution;

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use common::fixture::{BeforeFirstLock, age_blobs, bytes};
use common::peers::peers_available;
use distribution::Registry;
use ocicas::archive::{ExportOptions, ImportOptions};
use ocicas::layout::{OsStorage, Storage, Subdir};
use ocicas::registry::Progress;
use ocicas::spec::{Descriptor, MEDIA_TYPE_IMAGE_MANIFEST};
use ocicas::{
    Cancel, CompressionOptions, Engine, ErrorKind, Filters, GcOptions, LayerReader, LayerStream, OpenOptions,
    RegistryOptions, StorageOptions,
};
use serde_json::json;

/// An image `ref_name` of one uncompressed layer of `layer` bytes and a config.
fn image(engine: &Engine, ref_name: &str, layer: &[u8]) -> Descriptor {
    let layer = engine.put_blob(layer).unwrap();
    let diff_id = layer.digest.clone();
    let config = engine
        .put_blob(
            &serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [diff_id]}}))
            .unwrap(),
        )
        .unwrap();
    let manifest = json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
        "config": Descriptor::new("application/vnd.oci.image.config.v1+json", config.digest, config.size),
        "layers": [Descriptor::new("application/vnd.oci.image.layer.v1.tar", layer.digest, layer.size)]});
    let manifest = engine.put_blob(&serde_json::to_vec(&manifest).unwrap()).unwrap();
    let descriptor = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, manifest.digest, manifest.size);
    engine.ref_put(ref_name, &descriptor, false).unwrap();
    descriptor
}

fn no_ingests(engine: &Engine) -> bool {
    engine.ingest_list(&Filters::parse::<&str>(&[]).unwrap()).unwrap().is_empty()
}

fn assert_cancelled<T: std::fmt::Debug>(result: ocicas::Result<T>) {
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    assert!(err.message().contains("cancelled"), "{err}");
}

/// A reader of `bytes` that requests `cancel` once `after` of them were read.
struct CancellingReader {
    bytes: Vec<u8>,
    at: usize,
    after: usize,
    cancel: Cancel,
}

impl Read for CancellingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at >= self.after {
            self.cancel.request();
        }
        let n = buf.len().min(self.bytes.len() - self.at).min(64 * 1024);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The storage of the real file system that requests `cancel` at the first blob the sweep unlinks.
struct CancelAtFirstUnlink(Cancel);

impl Storage for CancelAtFirstUnlink {
    fn remove_file_in(&self, dir: &Subdir, name: &OsStr) -> io::Result<()> {
        self.0.request();
        OsStorage.remove_file_in(dir, name)
    }
}

/// A failure the operation finds before it looks at the flag is not what the stop caused:
/// it is reported as itself even though the stop was requested.
#[test]
fn a_failure_found_before_the_stop_is_seen_is_reported_as_itself() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path().join("layout")).unwrap();
    let cancel = Cancel::new();
    cancel.request();
    let options = RegistryOptions { insecure: true, cancel, ..RegistryOptions::default() };
    let err = engine.push("missing", "127.0.0.1:1/app:v1", &options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = ocicas::registry::push_layer(
        &b""[..],
        "127.0.0.1:1/app:v1",
        &CompressionOptions::default(),
        &options,
        engine.limits(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "a target with a tag: {err}");
}

#[test]
fn a_gc_cancelled_before_it_starts_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path().join("layout")).unwrap();
    let garbage = engine.put_blob(b"garbage").unwrap();
    age_blobs(engine.root());
    let cancel = Cancel::new();
    cancel.request();
    assert_cancelled(engine.gc(&GcOptions { cancel, ..GcOptions::default() }));
    assert!(engine.has_blob(&garbage.digest).unwrap());
}

#[test]
fn a_gc_cancelled_between_its_marking_and_its_sweep_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("layout");
    let engine = Engine::create(&root).unwrap();
    let garbage: Vec<_> = (0..20).map(|i| engine.put_blob(&bytes(100, i)).unwrap().digest).collect();
    age_blobs(&root);
    let cancel = Cancel::new();
    let requested = cancel.clone();
    let hooked =
        Engine::open_with(&root, &OpenOptions::default(), Arc::new(BeforeFirstLock::new(move || requested.request())))
            .unwrap();
    assert_cancelled(hooked.gc(&GcOptions { cancel, ..GcOptions::default() }));
    for digest in &garbage {
        assert!(engine.has_blob(digest).unwrap(), "{digest} was kept");
    }
}

#[test]
fn a_gc_cancelled_in_its_sweep_stops_removing_and_leaves_the_store_sound() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("layout");
    let engine = Engine::create(&root).unwrap();
    let tagged = image(&engine, "app", &bytes(5000, 1));
    let garbage: Vec<_> =
        (0..400).map(|i| engine.put_blob(format!("garbage {i}").as_bytes()).unwrap().digest).collect();
    for digest in garbage.iter().take(50) {
        engine.update_labels(digest, &[("team".to_owned(), "x".to_owned())].into_iter().collect(), &[]).unwrap();
    }
    age_blobs(&root);
    let cancel = Cancel::new();
    let hooked =
        Engine::open_with(&root, &OpenOptions::default(), Arc::new(CancelAtFirstUnlink(cancel.clone()))).unwrap();
    assert_cancelled(hooked.gc(&GcOptions { cancel, ..GcOptions::default() }));
    let left = garbage.iter().filter(|digest| engine.has_blob(digest).unwrap()).count();
    assert!(left > 0 && left < garbage.len(), "the sweep stopped part way: {left} of {} left", garbage.len());
    assert!(engine.fsck().unwrap().is_sound(), "{:?}", engine.fsck().unwrap());
    assert_eq!(engine.ref_get("app").unwrap().digest, tagged.digest);
    // The next run removes the rest.
    let report = engine.gc(&GcOptions::default()).unwrap();
    assert_eq!(report.blobs_removed, left as u64);
    assert!(engine.fsck().unwrap().is_sound());
}

#[test]
fn a_push_layer_stream_cancelled_commits_nothing_and_fails_every_later_call() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path().join("layout")).unwrap();
    let cancel = Cancel::new();
    let options = CompressionOptions { cancel: cancel.clone(), ..CompressionOptions::default() };
    let mut stream = LayerStream::new(&engine, &options, &StorageOptions::default()).unwrap();
    stream.write(&bytes(1 << 20, 3)).unwrap();
    cancel.request();
    assert_cancelled(stream.write(b"more"));
    assert_cancelled(stream.finish());
    assert!(engine.list_blobs().unwrap().is_empty());
    assert!(no_ingests(&engine), "dropping the stream aborted its ingest");
}

#[test]
fn a_pull_layer_stream_cancelled_by_its_input_computes_nothing() {
    let cancel = Cancel::new();
    let source = CancellingReader { bytes: bytes(4 << 20, 9), at: 0, after: 1 << 20, cancel: cancel.clone() };
    let options = CompressionOptions { cancel, ..CompressionOptions::default() };
    let mut layer = LayerReader::new(source, &options).unwrap();
    let mut out = Vec::new();
    let err = layer.read_to_end(&mut out).unwrap_err();
    assert!(err.to_string().contains("cancelled"), "{err}");
    assert_eq!(layer.digest().unwrap_err().kind(), ErrorKind::NotComputed);
    assert_cancelled(layer.read_chunk(&mut [0u8; 16]));
}

/// A docker-archive (legacy) of image `app`, from a store of its own.
fn archive_of_app(dir: &std::path::Path, layer: &[u8]) -> Vec<u8> {
    let source = Engine::create(dir.join("source")).unwrap();
    image(&source, "app:v1", layer);
    source.export_docker_archive(&["app:v1"], &[], Vec::new(), &ExportOptions::default()).unwrap()
}

#[test]
fn an_import_cancelled_mid_stream_stores_and_tags_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let archive = archive_of_app(dir.path(), &bytes(3 << 20, 4));
    let engine = Engine::create(dir.path().join("layout")).unwrap();
    let cancel = Cancel::new();
    let input = CancellingReader { bytes: archive.clone(), at: 0, after: 1 << 20, cancel: cancel.clone() };
    assert_cancelled(engine.import_docker_archive(input, &ImportOptions { cancel, ..ImportOptions::default() }));
    assert!(engine.list_blobs().unwrap().is_empty());
    assert!(no_ingests(&engine), "the staged members were aborted");
    assert!(engine.ref_get("app:v1").is_err());
    assert!(engine.fsck().unwrap().is_sound());
    // Nothing was left in the way of the same import.
    engine.import_docker_archive(&archive[..], &ImportOptions::default()).unwrap();
}

#[test]
fn an_import_of_a_file_cancelled_before_it_starts_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.tar");
    std::fs::write(&path, archive_of_app(dir.path(), &bytes(100_000, 5))).unwrap();
    let engine = Engine::create(dir.path().join("layout")).unwrap();
    let cancel = Cancel::new();
    cancel.request();
    assert_cancelled(engine.import_docker_archive_file(&path, &ImportOptions { cancel, ..ImportOptions::default() }));
    assert!(engine.list_blobs().unwrap().is_empty());
    assert!(no_ingests(&engine));
}

/// A sink that requests `cancel` once `after` bytes were written to it.
#[derive(Debug)]
struct CancellingWriter {
    written: usize,
    after: usize,
    cancel: Cancel,
}

impl Write for CancellingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        if self.written >= self.after {
            self.cancel.request();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn an_export_cancelled_mid_stream_stops_writing_and_a_file_export_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path().join("layout")).unwrap();
    image(&engine, "app:v1", &bytes(4 << 20, 6));
    let cancel = Cancel::new();
    let sink = CancellingWriter { written: 0, after: 1 << 20, cancel: cancel.clone() };
    let options = ExportOptions { cancel: cancel.clone(), ..ExportOptions::default() };
    assert_cancelled(engine.export_docker_archive(&["app:v1"], &[], sink, &options));

    let path = dir.path().join("out").join("app.tar");
    std::fs::create_dir(path.parent().unwrap()).unwrap();
    assert_cancelled(engine.export_docker_archive_file(&["app:v1"], &[], &path, &options));
    assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 0, "no archive, no partial file");
}

/// Registry options that request `cancel` once `after` bytes of a blob of at least that size moved.
fn cancelling_at(cancel: &Cancel, after: u64) -> RegistryOptions {
    let requested = cancel.clone();
    let progress = move |p: &Progress<'_>| {
        if p.done >= after && p.total.is_some_and(|total| total > p.done) {
            requested.request();
        }
    };
    RegistryOptions {
        insecure: true,
        chunk_size: 1 << 20,
        jobs: 1,
        progress: Some(Arc::new(Mutex::new(progress))),
        cancel: cancel.clone(),
        ..RegistryOptions::default()
    }
}

#[test]
fn a_push_and_a_pull_cancelled_mid_blob_stop_and_the_pull_resumes_later() {
    if !peers_available(&["docker-registry"]) {
        return;
    }
    let registry = Registry::start(None);
    let dir = tempfile::tempdir().unwrap();
    let source = Engine::create(dir.path().join("source")).unwrap();
    let layer = bytes(8 << 20, 7);
    image(&source, "img", &layer);
    let target = format!("{}/cancel/img:v1", registry.host());

    let cancel = Cancel::new();
    assert_cancelled(source.push("img", &target, &cancelling_at(&cancel, 2 << 20)));
    assert!(distribution::http_status(registry.host(), "GET", "/v2/cancel/manifests/v1") == Some(404), "no tag");
    let insecure = RegistryOptions { insecure: true, ..RegistryOptions::default() };
    source.push("img", &target, &insecure).unwrap();

    let pulled = Engine::create(dir.path().join("pulled")).unwrap();
    let cancel = Cancel::new();
    assert_cancelled(pulled.pull(&target, None, &cancelling_at(&cancel, 2 << 20)));
    assert!(pulled.ref_get("v1").is_err(), "nothing tagged");
    let layer_digest = ocicas::Digest::of_bytes(ocicas::Algorithm::Sha256, &layer);
    assert!(!pulled.has_blob(&layer_digest).unwrap(), "no partial blob");
    assert!(pulled.fsck().unwrap().is_sound());
    pulled.pull(&target, None, &insecure).unwrap();
    assert!(pulled.has_blob(&layer_digest).unwrap());

    let cancel = Cancel::new();
    cancel.request();
    let before = pulled.list_blobs().unwrap();
    assert_cancelled(pulled.pull(
        &format!("{}/cancel/img:v1", registry.host()),
        Some("again"),
        &RegistryOptions { cancel, ..insecure },
    ));
    assert_eq!(pulled.list_blobs().unwrap(), before);
}
