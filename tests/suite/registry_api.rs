//! The registry Rust API on what the CLI tests do not build: a multi-platform index (pushed
//! whole, pulled for the platforms asked), the referrers of an image (pushed with it), the
//! progress callback, the errors a caller acts on, the deadlines of the registry limits, and
//! pulls that meet another writer of the same blob.

use crate::common;
use crate::distribution;

use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use common::peers::peers_available;
use common::rng::Rng;
use distribution::{Faults, Proxy, Registry};
use ocicas::registry::Progress;
use ocicas::spec::{Descriptor, MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST};
use ocicas::{Engine, ErrorKind, Filters, Limits, RegistryOptions, StoredBlob, WriterOptions};
use serde_json::json;

const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

fn put(engine: &Engine, media_type: &str, value: &serde_json::Value) -> Descriptor {
    let blob = engine.put_blob(&serde_json::to_vec(value).unwrap()).unwrap();
    Descriptor::new(media_type, blob.digest, blob.size)
}

/// A manifest of one (fake, uncompressed) layer of `layer_bytes`, with a config for `arch`.
fn one_layer_manifest(engine: &Engine, arch: &str, layer_bytes: &[u8]) -> Descriptor {
    let layer = engine.put_blob(layer_bytes).unwrap();
    let config = put(
        engine,
        CONFIG,
        &json!({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer.digest]}}),
    );
    put(
        engine,
        MEDIA_TYPE_IMAGE_MANIFEST,
        &json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_MANIFEST, "config": config,
                "layers": [Descriptor::new(LAYER, layer.digest, layer.size)]}),
    )
}

/// A manifest of one layer for `arch`, with its platform set.
fn platform_manifest(engine: &Engine, arch: &str) -> Descriptor {
    let manifest = one_layer_manifest(engine, arch, format!("layer for {arch}").as_bytes());
    let mut with_platform = serde_json::to_value(&manifest).unwrap();
    with_platform["platform"] = json!({"os": "linux", "architecture": arch});
    serde_json::from_value(with_platform).unwrap()
}

/// Layout with `app` = an index of linux/amd64 and linux/arm64, and `app-sbom` = an artifact
/// manifest whose subject is that index. Returns the layout, the index and the arm64 manifest.
fn multi_platform_layout(dir: &std::path::Path) -> (Engine, Descriptor, Descriptor, Descriptor) {
    let engine = Engine::create(dir.join("source")).unwrap();
    let amd64 = platform_manifest(&engine, "amd64");
    let arm64 = platform_manifest(&engine, "arm64");
    let index = put(
        &engine,
        MEDIA_TYPE_IMAGE_INDEX,
        &json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_INDEX, "manifests": [amd64, arm64]}),
    );
    engine.ref_put("app", &index, false).unwrap();
    let sbom = engine.put_blob(b"{\"sbom\":true}").unwrap();
    let empty = put(&engine, "application/vnd.oci.empty.v1+json", &json!({}));
    let referrer = put(
        &engine,
        MEDIA_TYPE_IMAGE_MANIFEST,
        &json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_MANIFEST, "artifactType": "application/spdx+json",
                "config": empty, "layers": [Descriptor::new("application/spdx+json", sbom.digest, sbom.size)],
                "subject": Descriptor::new(MEDIA_TYPE_IMAGE_INDEX, index.digest.clone(), index.size)}),
    );
    engine.ref_put("app-sbom", &referrer, false).unwrap();
    (engine, index, arm64, referrer)
}

fn insecure() -> RegistryOptions {
    RegistryOptions { insecure: true, ..RegistryOptions::default() }
}

#[test]
fn an_index_is_pushed_with_every_platform_and_its_referrers_then_pulled_for_one_platform() {
    if !peers_available(&["docker-registry"]) {
        return;
    }
    let registry = Registry::start(None);
    let dir = tempfile::tempdir().unwrap();
    let (source, index, arm64, referrer) = multi_platform_layout(dir.path());

    let completed = Arc::new(Mutex::new(Vec::new()));
    let seen = completed.clone();
    let progress = move |p: &Progress<'_>| {
        if Some(p.done) == p.total {
            seen.lock().unwrap().extend(p.digest.cloned());
        }
    };
    let options = RegistryOptions { progress: Some(Arc::new(Mutex::new(progress))), ..insecure() };
    let pushed = source.push("app", &format!("{}/multi/app:v1", registry.host()), &options).unwrap();
    assert_eq!(pushed.descriptor.digest, index.digest);
    // 2 configs + 2 layers, 2 manifests + the index, the referrer's config, layer and manifest.
    assert_eq!(pushed.transferred, 10, "{pushed:?}");
    assert_eq!(completed.lock().unwrap().len(), 6, "progress completes each of the 6 non-manifest blobs");
    let referrer_path = format!("/v2/multi/app/manifests/{}", referrer.digest);
    let answer = distribution::http_get_with(registry.host(), &referrer_path, &[("Accept", MEDIA_TYPE_IMAGE_MANIFEST)]);
    assert_eq!(answer.0, 200, "the referrer was pushed: {}", String::from_utf8_lossy(&answer.1));

    let target = Engine::create(dir.path().join("target")).unwrap();
    let options = RegistryOptions { platforms: vec!["linux/arm64".into()], ..insecure() };
    let pulled = target.pull(&format!("{}/multi/app:v1", registry.host()), Some("app"), &options).unwrap();
    assert_eq!(pulled.descriptor.digest, index.digest);
    assert_eq!(target.ref_get("app").unwrap().digest, index.digest);
    assert!(target.has_blob(&arm64.digest).unwrap());
    let stored: Vec<_> = target.list_blobs().unwrap();
    assert_eq!(stored.len(), 4, "the index, the arm64 manifest, its config and its layer: {stored:?}");
    let fsck = target.fsck().unwrap();
    assert!(fsck.is_sound(), "{fsck:?}");
    assert!(fsck.notes.iter().any(|note| note.contains("pulled for some platforms")), "{fsck:?}");
    let partial = target.push("app", &format!("{}/multi/partial:v1", registry.host()), &insecure()).unwrap_err();
    assert_eq!(partial.kind(), ErrorKind::NotFound);
    assert!(partial.message().contains("pulled for some platforms"), "{partial}");

    let none = RegistryOptions { platforms: vec!["windows/amd64".into()], ..insecure() };
    let err = target.pull(&format!("{}/multi/app:v1", registry.host()), Some("other"), &none).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("windows/amd64"), "{err}");
}

#[test]
fn errors_have_the_kinds_a_caller_acts_on() {
    if !peers_available(&["docker-registry"]) {
        return;
    }
    let registry = Registry::start(None);
    let dir = tempfile::tempdir().unwrap();
    let (source, index, _, _) = multi_platform_layout(dir.path());
    let host = registry.host();
    source.push("app", &format!("{host}/errors/app:v1"), &insecure()).unwrap();

    let target = Engine::create(dir.path().join("target")).unwrap();
    let by_digest = format!("{host}/errors/app@{}", index.digest);
    assert_eq!(target.pull(&by_digest, None, &insecure()).unwrap_err().kind(), ErrorKind::InvalidArgument);
    target.pull(&by_digest, Some("pinned"), &insecure()).unwrap();
    assert_eq!(target.ref_get("pinned").unwrap().digest, index.digest);

    let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}});
    let other = put(&target, CONFIG, &config);
    target.ref_put("taken", &other, false).unwrap();
    let clobber = target.pull(&format!("{host}/errors/app:v1"), Some("taken"), &insecure()).unwrap_err();
    assert_eq!(clobber.kind(), ErrorKind::Clobber);
    assert_eq!(target.ref_get("taken").unwrap().digest, other.digest, "the ref did not move");

    let unreachable = target.pull("127.0.0.1:1/errors/app:v1", None, &insecure()).unwrap_err();
    assert_eq!(unreachable.kind(), ErrorKind::Remote);
    let tls_to_plain = target.pull(&format!("{host}/errors/app:v1"), None, &RegistryOptions::default()).unwrap_err();
    assert_eq!(tls_to_plain.kind(), ErrorKind::Remote, "HTTPS to a plain-HTTP registry fails: {tls_to_plain}");
    for words in [host, "answered in plain HTTP", "--insecure", "RegistryOptions.Insecure", "ocicas_registry_options"] {
        assert!(tls_to_plain.message().contains(words), "the message says what to do: {tls_to_plain}");
    }
    let missing_ref = source.push("nothing", &format!("{host}/errors/app:v2"), &insecure()).unwrap_err();
    assert_eq!(missing_ref.kind(), ErrorKind::NotFound);
    let mut two_threads = Engine::create(dir.path().join("two-threads")).unwrap();
    two_threads.set_limits(Limits { threads: 2, ..Limits::default() });
    let three_jobs = RegistryOptions { jobs: 3, ..insecure() };
    let over = two_threads.pull(&format!("{host}/errors/app:v1"), None, &three_jobs).unwrap_err();
    assert_eq!(over.kind(), ErrorKind::InvalidArgument, "{over}");
    assert!(over.message().contains("jobs 3") && over.message().contains("--limit threads=N"), "{over}");
    assert!(two_threads.list_blobs().unwrap().is_empty(), "nothing was fetched");
    let pulled = two_threads.pull(&format!("{host}/errors/app:v1"), None, &insecure());
    assert!(pulled.is_ok(), "the default job count stays within the threads limit: {pulled:?}");
    let bad_mount = RegistryOptions { mount_from: Some("Not/Valid".into()), ..insecure() };
    assert_eq!(
        source.push("app", &format!("{host}/errors/app:v3"), &bad_mount).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

/// A registry and an empty layout `source` in `dir`; None when docker-registry is missing.
fn registry_with_source(dir: &std::path::Path) -> Option<(Registry, Engine)> {
    if !peers_available(&["docker-registry"]) {
        return None;
    }
    Some((Registry::start(None), Engine::create(dir.join("source")).unwrap()))
}

/// An image `ref_name` of one layer of `layer_bytes` and a small config for amd64.
fn one_layer_image(engine: &Engine, ref_name: &str, layer_bytes: &[u8]) -> Descriptor {
    let manifest = one_layer_manifest(engine, "amd64", layer_bytes);
    engine.ref_put(ref_name, &manifest, false).unwrap();
    manifest
}

#[test]
fn a_blob_body_that_ends_short_fails_after_the_retries_and_the_next_pull_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let Some((registry, source)) = registry_with_source(dir.path()) else { return };
    let manifest = one_layer_image(&source, "img", &vec![7u8; 300_000]);
    source.push("img", &format!("{}/short/img:v1", registry.host()), &insecure()).unwrap();

    let proxy = Proxy::start(registry.host(), Faults { short_blob_bodies: true, ..Faults::default() });
    let target_dir = dir.path().join("target");
    let target = Engine::create(&target_dir).unwrap();
    let from_proxy = format!("{}/short/img:v1", proxy.host());
    let (done, outcome) = std::sync::mpsc::channel();
    let one_job = RegistryOptions { jobs: 1, ..insecure() };
    let pull = from_proxy.clone();
    std::thread::spawn(move || {
        let _ = done.send(Engine::open(&target_dir, &Default::default()).unwrap().pull(&pull, None, &one_job));
    });
    let err = outcome.recv_timeout(Duration::from_secs(120)).expect("the pull ends").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Remote, "{err}");
    assert!(err.message().contains("ended after"), "{err}");
    let manifest_gets: Vec<_> =
        proxy.requests().into_iter().filter(|r| r.method == "GET" && r.path.contains("/manifests/")).collect();
    assert!(
        manifest_gets.iter().all(|r| r.path.ends_with(&manifest.digest.to_string())),
        "by tag, the HEAD's digest is what the GET asks for (a tag moved meanwhile changes nothing): {manifest_gets:?}"
    );
    let blob_gets = proxy.requests().iter().filter(|r| r.is_blob_get()).count();
    assert_eq!(blob_gets, 4, "one GET and three resumed ones, then the error");
    assert!(target.ref_get("v1").is_err(), "nothing tagged");

    proxy.faults.lock().unwrap().short_blob_bodies = false;
    proxy.clear();
    target.pull(&from_proxy, None, &insecure()).unwrap();
    assert_eq!(target.ref_get("v1").unwrap().digest, manifest.digest);
    let resumed = proxy.requests().into_iter().find(|r| r.is_blob_get() && r.range.is_some());
    assert!(resumed.is_some(), "the big layer resumed from its ingest: {:?}", proxy.requests());
    assert!(target.ingest_list(&ocicas::Filters::parse::<&str>(&[]).unwrap()).unwrap().is_empty());
}

#[test]
fn a_one_byte_blob_byte_sized_chunks_and_a_lost_patch_answer_are_pushed() {
    let dir = tempfile::tempdir().unwrap();
    let Some((registry, source)) = registry_with_source(dir.path()) else { return };
    let tiny = one_layer_image(&source, "tiny", b"x");
    source.push("tiny", &format!("{}/bytes/tiny:v1", registry.host()), &insecure()).unwrap();
    let by_byte = RegistryOptions { chunk_size: 1, ..insecure() };
    source.push("tiny", &format!("{}/bytes/by-byte:v1", registry.host()), &by_byte).unwrap();

    let layer: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let big = one_layer_image(&source, "big", &layer);
    let proxy = Proxy::start(registry.host(), Faults { drop_first_patch_answer: true, ..Faults::default() });
    let chunked = RegistryOptions { chunk_size: 64 * 1024, jobs: 1, ..insecure() };
    source.push("big", &format!("{}/bytes/lost:v1", proxy.host()), &chunked).unwrap();
    let patches = proxy.requests().iter().filter(|r| r.method == "PATCH").count();
    // docker-registry cancels an upload asked about with a stale state, so the blob starts over.
    assert_eq!(patches, 1 + 4 + 1, "the lost one, the layer's 4 chunks in a new upload, and the config");
    let cancelled =
        proxy.requests().iter().filter(|r| r.method == "DELETE" && r.path.contains("/blobs/uploads/")).count();
    assert_eq!(cancelled, 1, "the abandoned upload is cancelled");

    // A registry that keeps the upload: the status GET finds the whole chunk held, so nothing
    // is sent again and nothing is cancelled.
    let keeps = Faults { drop_first_patch_answer: true, status_with_current_state: true, ..Faults::default() };
    let proxy = Proxy::start(registry.host(), keeps);
    source.push("big", &format!("{}/bytes/kept:v1", proxy.host()), &chunked).unwrap();
    let requests = proxy.requests();
    let count = |method: &str| requests.iter().filter(|r| r.method == method && r.path.contains("/uploads/")).count();
    assert_eq!((count("PATCH"), count("GET"), count("DELETE")), (4 + 1, 1, 0), "{requests:?}");

    let target = Engine::create(dir.path().join("target")).unwrap();
    for (repository, manifest) in [("tiny", &tiny), ("by-byte", &tiny), ("lost", &big), ("kept", &big)] {
        let pulled = target.pull(&format!("{}/bytes/{repository}:v1", registry.host()), Some(repository), &insecure());
        assert_eq!(pulled.unwrap().descriptor.digest, manifest.digest, "{repository}");
    }
    assert!(target.fsck().unwrap().is_sound());
}

#[test]
fn credentials_are_not_sent_to_an_upload_location_on_another_host() {
    let dir = tempfile::tempdir().unwrap();
    let Some((registry, source)) = registry_with_source(dir.path()) else { return };
    let elsewhere = Proxy::start(registry.host(), Faults::default());
    let bearer = Faults {
        bearer: Some(("ci".into(), "pw".into(), 1000)),
        location_host: Some(elsewhere.host().to_string()),
        ..Faults::default()
    };
    let front = Proxy::start(registry.host(), bearer);
    let manifest = one_layer_image(&source, "img", b"a layer");
    let options = RegistryOptions {
        credentials: Some(ocicas::registry::Credentials { username: "ci".into(), password: "pw".into() }),
        ..insecure()
    };
    let pushed = source.push("img", &format!("{}/moved/img:v1", front.host()), &options).unwrap();
    assert_eq!(pushed.descriptor.digest, manifest.digest);

    let uploads = elsewhere.requests();
    assert!(uploads.iter().any(|r| r.method == "PATCH"), "the uploads went to the Location: {uploads:?}");
    assert!(uploads.iter().all(|r| !r.authorized), "no credentials went to the other host: {uploads:?}");
    assert!(front.requests().iter().any(|r| r.authorized && r.method == "PUT"), "the manifest PUT is authorized");
}

/// An engine at `path` whose registry deadlines are `timeout` seconds and `min_rate` bytes/s.
fn engine_with_deadlines(path: &std::path::Path, timeout: u64, min_rate: u64) -> Engine {
    let mut engine = Engine::create(path).unwrap();
    engine.set_limits(Limits { registry_timeout: timeout, registry_min_rate: min_rate, ..Limits::default() });
    engine
}

/// Runs `work` on another thread; fails when it has not ended within a minute (a wait with no
/// deadline), else returns what it returned.
fn within_a_minute<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(work());
    });
    outcome.recv_timeout(Duration::from_secs(60)).expect("it ended within a minute")
}

#[test]
fn a_manifest_sent_byte_by_byte_fails_at_the_registry_timeout_naming_the_registry_and_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let Some((registry, source)) = registry_with_source(dir.path()) else { return };
    let manifest = one_layer_image(&source, "img", b"a layer");
    assert!(manifest.size > 300, "a manifest of {} bytes takes minutes at one byte per 250 ms", manifest.size);
    source.push("img", &format!("{}/slow/img:v1", registry.host()), &insecure()).unwrap();
    let trickle = Faults { trickle_manifests: Some(Duration::from_millis(250)), ..Faults::default() };
    let proxy = Proxy::start(registry.host(), trickle);

    let target = engine_with_deadlines(&dir.path().join("target"), 2, 1);
    let from_proxy = format!("{}/slow/img:v1", proxy.host());
    let err = within_a_minute(move || target.pull(&from_proxy, None, &insecure())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    for words in [proxy.host(), "/manifests/", "registry_timeout) of 2 seconds", "--limit registry_timeout=N"] {
        assert!(err.message().contains(words), "{words:?} is named: {err}");
    }
}

#[test]
fn a_blob_slower_than_the_minimum_rate_fails_naming_the_limit_and_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let Some((registry, source)) = registry_with_source(dir.path()) else { return };
    one_layer_image(&source, "img", &Rng(1).bytes(2 << 20));
    source.push("img", &format!("{}/slow/img:v1", registry.host()), &insecure()).unwrap();
    // 64 KiB per 250 ms is 256 KiB/s: the 2 MiB layer would take 8 s.
    let slow = Faults { throttle_blobs: Some(Duration::from_millis(250)), ..Faults::default() };
    let proxy = Proxy::start(registry.host(), slow);

    let target = engine_with_deadlines(&dir.path().join("target"), 1, 1 << 20);
    let from_proxy = format!("{}/slow/img:v1", proxy.host());
    let one_job = RegistryOptions { jobs: 1, ..insecure() };
    let (err, target) = within_a_minute(move || (target.pull(&from_proxy, None, &one_job).unwrap_err(), target));
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    for words in [proxy.host(), "/blobs/sha256:", "registry_min_rate) of 1048576 bytes/s", "registry_timeout"] {
        assert!(err.message().contains(words), "{words:?} is named: {err}");
    }
    let blob_gets = proxy.requests().iter().filter(|r| r.is_blob_get()).count();
    assert_eq!(blob_gets, 1, "a deadline passed is not retried: {:?}", proxy.requests());
    assert!(target.ref_get("v1").is_err(), "nothing tagged");
}

#[test]
fn an_upload_the_registry_takes_slower_than_the_minimum_rate_fails_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let Some((registry, mut source)) = registry_with_source(dir.path()) else { return };
    one_layer_image(&source, "img", &Rng(2).bytes(16 << 20));
    // 8 KiB per 100 ms is 80 KiB/s: the 16 MiB layer would take 200 s.
    let slow = Faults { slow_upload_reads: Some(8 << 10), ..Faults::default() };
    let proxy = Proxy::start(registry.host(), slow);
    source.set_limits(Limits { registry_timeout: 1, registry_min_rate: 8 << 20, ..Limits::default() });
    let target = format!("{}/slow/img:v1", proxy.host());
    let err = within_a_minute(move || source.push("img", &target, &insecure()).unwrap_err());
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    for words in [proxy.host(), "PATCH", "registry_min_rate) of 8388608 bytes/s"] {
        assert!(err.message().contains(words), "{words:?} is named: {err}");
    }
}

#[test]
fn a_pull_removes_the_leftover_ingest_of_a_blob_it_finds_stored() {
    let dir = tempfile::tempdir().unwrap();
    let Some((registry, source)) = registry_with_source(dir.path()) else { return };
    let layer = b"a layer that is already stored";
    one_layer_image(&source, "img", layer);
    source.push("img", &format!("{}/leftover/img:v1", registry.host()), &insecure()).unwrap();
    // What a pull killed between storing the blob and removing its ingest leaves.
    let target = Engine::create(dir.path().join("target")).unwrap();
    let stored = target.put_blob(layer).unwrap();
    let leftover = format!("pull:{}:{}", stored.digest, stored.size);
    target.writer(&leftover, &WriterOptions::default()).unwrap().close().unwrap();
    assert_eq!(target.ingest_list(&Filters::parse::<&str>(&[]).unwrap()).unwrap().len(), 1);

    let pulled = target.pull(&format!("{}/leftover/img:v1", registry.host()), None, &insecure()).unwrap();
    assert_eq!(pulled.skipped, 1, "the stored layer is not fetched: {pulled:?}");
    let left = target.ingest_list(&Filters::parse::<&str>(&[]).unwrap()).unwrap();
    assert!(left.is_empty(), "the leftover ingest is removed: {left:?}");
}

/// Two images `a` and `b` in `registry`'s repository `shared`: each its own config, both the
/// same 1 MiB layer. Returns the layer's digest.
fn images_sharing_a_layer(source: &Engine, registry: &Registry) -> ocicas::Digest {
    let layer = Rng(3).bytes(1 << 20);
    for name in ["a", "b"] {
        let manifest = one_layer_manifest(source, name, &layer);
        source.ref_put(name, &manifest, false).unwrap();
        source.push(name, &format!("{}/shared/img:{name}", registry.host()), &insecure()).unwrap();
    }
    source.put_blob(&layer).unwrap().digest
}

#[test]
fn two_pulls_sharing_a_layer_into_one_layout_both_succeed_and_fetch_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some((registry, source)) = registry_with_source(dir.path()) else { return };
    let layer = images_sharing_a_layer(&source, &registry);
    // 64 KiB per 50 ms: the shared layer takes 0.8 s, so the two pulls meet on it.
    let slow = Faults { throttle_blobs: Some(Duration::from_millis(50)), ..Faults::default() };
    let proxy = Proxy::start(registry.host(), slow);
    const ROUNDS: usize = 5;
    for round in 0..ROUNDS {
        let layout = dir.path().join(format!("round-{round}"));
        Engine::create(&layout).unwrap();
        proxy.clear();
        let start = Arc::new(Barrier::new(2));
        let pulls: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|tag| {
                let (layout, start) = (layout.clone(), start.clone());
                let source = format!("{}/shared/img:{tag}", proxy.host());
                std::thread::spawn(move || {
                    // Each pull with an engine of its own, as two processes would.
                    let engine = Engine::open(&layout, &Default::default()).unwrap();
                    start.wait();
                    engine.pull(&source, None, &insecure())
                })
            })
            .collect();
        for pull in pulls {
            let report = pull.join().unwrap();
            assert!(report.is_ok(), "round {round}: {report:?}");
        }
        let engine = Engine::open(&layout, &Default::default()).unwrap();
        assert!(engine.fsck().unwrap().is_sound(), "round {round}");
        assert!(engine.ingest_list(&Filters::parse::<&str>(&[]).unwrap()).unwrap().is_empty(), "round {round}");
        let layer_gets =
            proxy.requests().iter().filter(|r| r.is_blob_get() && r.path.ends_with(&layer.to_string())).count();
        assert_eq!(layer_gets, 1, "round {round}: one pull fetched the shared layer, the other waited for it");
    }
}

/// Pulls `source` into `target` on another thread, reporting each progress of `digest`'s blob
/// on `progress`.
fn pull_watching(
    target: Engine,
    source: String,
    digest: ocicas::Digest,
    progress: std::sync::mpsc::Sender<u64>,
) -> std::thread::JoinHandle<ocicas::Result<ocicas::TransferReport>> {
    let report = move |p: &Progress<'_>| {
        if p.digest == Some(&digest) {
            let _ = progress.send(p.done);
        }
    };
    let options = RegistryOptions { progress: Some(Arc::new(Mutex::new(report))), ..insecure() };
    std::thread::spawn(move || target.pull(&source, None, &options))
}

/// A registry serving `HOST/REPOSITORY/img:v1`, an image of one layer of `layer` (returned);
/// None when docker-registry is missing.
fn registry_with_image_of(dir: &std::path::Path, repository: &str, layer: &[u8]) -> Option<(Registry, StoredBlob)> {
    let (registry, source) = registry_with_source(dir)?;
    one_layer_image(&source, "img", layer);
    source.push("img", &format!("{}/{repository}/img:v1", registry.host()), &insecure()).unwrap();
    Some((registry, source.put_blob(layer).unwrap()))
}

#[test]
fn a_pull_waits_for_another_writer_of_a_blob_and_resumes_its_ingest_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let layer = Rng(4).bytes(300_000);
    let Some((registry, stored)) = registry_with_image_of(dir.path(), "wait", &layer) else { return };
    let proxy = Proxy::start(registry.host(), Faults::default());
    let target = Engine::create(dir.path().join("target")).unwrap();
    let options = WriterOptions { expected_size: Some(stored.size), expected_digest: Some(stored.digest.clone()) };
    let mut other = target.writer(&format!("pull:{}:{}", stored.digest, stored.size), &options).unwrap();
    other.write(&layer[..100_000]).unwrap();

    let (progress, seen) = std::sync::mpsc::channel();
    let pull = pull_watching(target.clone(), format!("{}/wait/img:v1", proxy.host()), stored.digest.clone(), progress);
    // The waiting pull shows the other writer's offset as its progress.
    let shown = seen.recv_timeout(Duration::from_secs(30)).expect("the waiting pull shows progress");
    assert_eq!(shown, 100_000);
    other.close().unwrap();
    let report = within_a_minute(move || pull.join().unwrap()).unwrap();
    assert_eq!(target.ref_get("v1").unwrap().digest, report.descriptor.digest);
    let resumed: Vec<_> = proxy.requests().into_iter().filter(|r| r.is_blob_get() && r.range.is_some()).collect();
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert_eq!(resumed[0].range.as_deref(), Some("bytes=100000-"), "it took over the stopped ingest");
    assert!(target.fsck().unwrap().is_sound());
}

#[test]
fn a_pull_gives_up_on_another_writer_of_a_blob_that_does_not_move() {
    let dir = tempfile::tempdir().unwrap();
    let Some((registry, stored)) = registry_with_image_of(dir.path(), "stuck", &Rng(5).bytes(300_000)) else { return };
    let target = engine_with_deadlines(&dir.path().join("target"), 1, 1);
    let ingest = format!("pull:{}:{}", stored.digest, stored.size);
    let stuck = target.writer(&ingest, &WriterOptions::default()).unwrap();

    let from_registry = format!("{}/stuck/img:v1", registry.host());
    let waiting = target.clone();
    let err = within_a_minute(move || waiting.pull(&from_registry, None, &insecure())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    for words in ["other writer", &ingest, "registry_min_rate"] {
        assert!(err.message().contains(words), "{words:?} is named: {err}");
    }
    drop(stuck);
    assert!(target.ref_get("v1").is_err(), "nothing tagged");
}
