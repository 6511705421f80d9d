//! The registry Rust API on what the CLI tests do not build: a multi-platform index (pushed
//! whole, pulled for the platforms asked), the referrers of an image (pushed with it), the
//! progress callback, and the errors a caller acts on.

mod distribution;

use std::sync::{Arc, Mutex};

use distribution::{Registry, peers_available};
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
