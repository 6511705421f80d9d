//! The registry Rust API on what the CLI tests do not build: a multi-platform index (pushed
//! whole, pulled for the platforms asked), the referrers of an image (pushed with it), the
//! progress callback, and the errors a caller acts on.

mod distribution;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use distribution::{Faults, Proxy, Registry, peers_available};
use ocicas::registry::Progress;
use ocicas::spec::{Descriptor, MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST};
use ocicas::{Engine, ErrorKind, RegistryOptions};
use serde_json::json;

const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

fn put(engine: &Engine, media_type: &str, value: &serde_json::Value) -> Descriptor {
    let blob = engine.put_blob(&serde_json::to_vec(value).unwrap()).unwrap();
    Descriptor::new(media_type, blob.digest, blob.size)
}

/// A manifest of one (fake, uncompressed) layer for `arch`, with its platform set.
fn platform_manifest(engine: &Engine, arch: &str) -> Descriptor {
    let layer = engine.put_blob(format!("layer for {arch}").as_bytes()).unwrap();
    let config = put(
        engine,
        CONFIG,
        &json!({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer.digest]}}),
    );
    let manifest = put(
        engine,
        MEDIA_TYPE_IMAGE_MANIFEST,
        &json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_MANIFEST, "config": config,
                "layers": [Descriptor::new(LAYER, layer.digest, layer.size)]}),
    );
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

    let other = put(&target, CONFIG, &json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}));
    target.ref_put("taken", &other, false).unwrap();
    let clobber = target.pull(&format!("{host}/errors/app:v1"), Some("taken"), &insecure()).unwrap_err();
    assert_eq!(clobber.kind(), ErrorKind::Clobber);
    assert_eq!(target.ref_get("taken").unwrap().digest, other.digest, "the ref did not move");

    let unreachable = target.pull("127.0.0.1:1/errors/app:v1", None, &insecure()).unwrap_err();
    assert_eq!(unreachable.kind(), ErrorKind::Remote);
    let tls_to_plain = target.pull(&format!("{host}/errors/app:v1"), None, &RegistryOptions::default()).unwrap_err();
    assert_eq!(tls_to_plain.kind(), ErrorKind::Remote, "HTTPS to a plain-HTTP registry fails: {tls_to_plain}");
    let missing_ref = source.push("nothing", &format!("{host}/errors/app:v2"), &insecure()).unwrap_err();
    assert_eq!(missing_ref.kind(), ErrorKind::NotFound);
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

/// An image `ref_name` of one layer of `layer_bytes` and a small config.
fn one_layer_image(engine: &Engine, ref_name: &str, layer_bytes: &[u8]) -> Descriptor {
    let layer = engine.put_blob(layer_bytes).unwrap();
    let config = put(
        engine,
        CONFIG,
        &json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer.digest]}}),
    );
    let manifest = put(
        engine,
        MEDIA_TYPE_IMAGE_MANIFEST,
        &json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_MANIFEST, "config": config,
                "layers": [Descriptor::new(LAYER, layer.digest, layer.size)]}),
    );
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
