//! GC while other processes write: writers build and append images under leases, a tagger
//! moves and removes tags, a collector runs GC in a loop. At the end every tagged image is
//! complete, fsck is clean, and no writer saw one of its blobs vanish. Children are this test
//! binary re-executed in a role chosen by an env var; they exit non-zero on any failure.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ocicas::spec::{ImageManifest, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_MANIFEST, canonical_json};
use ocicas::{
    Algorithm, Descriptor, Document, Engine, ErrorKind, GcOptions, LayerOptions, LayerStream, LeaseResource,
    OpenOptions,
};

const ROLE: &str = "OCICAS_STRESS_ROLE";
const LAYOUT: &str = "OCICAS_STRESS_LAYOUT";
const RUN_FOR: Duration = Duration::from_secs(12);
const TAGS: [&str; 4] = ["t0", "t1", "t2", "t3"];

fn spawn(role: &str, layout: &std::path::Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "gc_while_processes_write_keeps_every_tagged_image_whole", "--nocapture"])
        .env(ROLE, role)
        .env(LAYOUT, layout)
        .spawn()
        .unwrap()
}

/// One writer round: blobs stored into a lease, an image tagged, its blobs checked present,
/// the lease released.
fn write_image(engine: &Engine, round: usize, writer: &str) {
    let lease = engine.lease_new(None, Some(Duration::from_secs(600))).unwrap();
    let layer_bytes: Vec<u8> = (0..20_000 + round % 7 * 1000).map(|i| (i as u8) ^ round as u8).collect();
    let layer = engine.put_blob_leased(&lease.id, Algorithm::Sha256, &layer_bytes[..]).unwrap();
    // A second layer through a streaming layer joined to the same lease.
    let options = LayerOptions { lease: Some(lease.id.clone()), threads: 1, ..LayerOptions::default() };
    let mut stream = LayerStream::new(engine, &options).unwrap();
    stream.write(format!("{writer} {round}").repeat(500).as_bytes()).unwrap();
    let streamed = stream.finish().unwrap();
    let config = serde_json::json!({"architecture":"amd64","os":"linux",
        "rootfs":{"type":"layers","diff_ids":[layer.digest.to_string(), streamed.diff_id.to_string()]}});
    let config = engine.put_blob_leased(&lease.id, Algorithm::Sha256, &canonical_json(&config).unwrap()[..]).unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_owned()),
        artifact_type: None,
        config: Descriptor::new(MEDIA_TYPE_IMAGE_CONFIG, config.digest, config.size),
        layers: vec![
            Descriptor::new("application/vnd.oci.image.layer.v1.tar", layer.digest, layer.size),
            streamed.descriptor(),
        ],
        subject: None,
        annotations: Default::default(),
        extra: Default::default(),
    };
    let bytes = canonical_json(&manifest).unwrap();
    let stored = engine.put_blob_leased(&lease.id, Algorithm::Sha256, &bytes[..]).unwrap();
    let descriptor = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, stored.digest, stored.size);
    // Everything this writer committed is still there while its lease lives.
    for blob in [&descriptor.digest, &manifest.config.digest, &manifest.layers[0].digest, &manifest.layers[1].digest] {
        assert!(engine.has_blob(blob).unwrap(), "{writer}: blob {blob} vanished under a live lease");
    }
    engine.ref_put(TAGS[round % TAGS.len()], &descriptor, true).unwrap();
    if round % 3 == 0 {
        // Also through append, which leases on its own.
        let streamed = {
            let lease2 = engine.lease_new(None, Some(Duration::from_secs(600))).unwrap();
            let options = LayerOptions { lease: Some(lease2.id.clone()), threads: 1, ..LayerOptions::default() };
            let mut stream = LayerStream::new(engine, &options).unwrap();
            stream.write(b"appended").unwrap();
            let layer = stream.finish().unwrap();
            match engine.append_layer(&format!("app-{writer}"), &layer, "stress") {
                Ok(_) => {}
                Err(err) if err.kind() == ErrorKind::Clobber => {}
                Err(err) => panic!("{writer}: append failed: {err}"),
            }
            engine.lease_release(&lease2.id).unwrap();
            layer
        };
        assert!(engine.has_blob(&streamed.digest).unwrap());
    }
    engine.lease_release(&lease.id).unwrap();
}

fn run_role(role: &str, engine: &Engine) {
    let deadline = Instant::now() + RUN_FOR;
    let mut round = 0;
    while Instant::now() < deadline {
        round += 1;
        match role {
            "writer-a" | "writer-b" => write_image(engine, round, role),
            "tagger" => {
                let from = TAGS[round % TAGS.len()];
                let to = TAGS[(round + 1) % TAGS.len()];
                match engine.ref_get(from) {
                    Ok(descriptor) => match engine.ref_put(to, &descriptor, true) {
                        // The source image may have been collected after its tag moved on.
                        Ok(()) => {}
                        Err(err) if err.kind() == ErrorKind::NotFound => {}
                        Err(err) => panic!("tagger: {err}"),
                    },
                    Err(err) if err.kind() == ErrorKind::NotFound => {}
                    Err(err) => panic!("tagger: {err}"),
                }
                if round % 5 == 0 {
                    engine.ref_delete(to).unwrap();
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            "collector" => {
                engine.gc(&GcOptions::default()).unwrap();
            }
            other => panic!("unknown role {other}"),
        }
    }
    println!("{role}: {round} rounds");
}

#[test]
fn gc_while_processes_write_keeps_every_tagged_image_whole() {
    if let Ok(role) = std::env::var(ROLE) {
        let engine = Engine::open(std::env::var(LAYOUT).unwrap(), &OpenOptions::default()).unwrap();
        run_role(&role, &engine);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let engine = Engine::create(&layout).unwrap();
    let children: Vec<(String, Child)> = ["writer-a", "writer-b", "tagger", "collector"]
        .into_iter()
        .map(|role| (role.to_owned(), spawn(role, &layout)))
        .collect();
    for (role, mut child) in children {
        assert!(child.wait().unwrap().success(), "the {role} process failed");
    }

    let report = engine.fsck().unwrap();
    assert!(report.is_sound(), "{:?}", report.problems);
    for (name, descriptor) in engine.ref_list().unwrap() {
        let Document::Manifest(manifest) = engine.read_document(&descriptor).unwrap() else {
            panic!("{name} is not a manifest");
        };
        for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
            assert!(engine.has_blob(&blob.digest).unwrap(), "{name}: {} is missing", blob.digest);
        }
    }
    // With the writers gone and their leases released, a last GC leaves exactly the tagged images.
    std::thread::sleep(Duration::from_millis(1100));
    engine.gc(&GcOptions::default()).unwrap();
    assert!(engine.fsck().unwrap().notes.is_empty());
    assert!(engine.lease_list().unwrap().is_empty());
}
