//! GC while other processes write. A soak: writer processes build images under leases and tag
//! them, a tagger moves and deletes tags, a collector runs GC in a loop; at the end every tagged
//! image is whole and no writer saw a blob vanish while its lease held it. Then the races the
//! soak can only hit by chance, each made to happen on purpose: ingests and uploads of live
//! processes under `gc --ingest-expiry 0s`, a lease's manifest committed while GC waits for the
//! store lock, blobs committed (or committed again) just before GC, and what GC keeps of a young
//! manifest. Children are this test binary re-executed in a role chosen by an env var; they exit
//! non-zero on any failure.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use common::child::{child, child_engine, role};
use common::cli::{OCICAS, assert_succeeded, ocicas, s};
use common::fixture::{BeforeFirstLock, age_blob};
use common::rng::Rng;
use ocicas::spec::{ImageManifest, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_MANIFEST, canonical_json};
use ocicas::{
    Algorithm, CompressionOptions, Descriptor, Digest, Document, Engine, ErrorKind, GcOptions, LayerStream,
    LeaseResource, OpenOptions, StorageOptions, WriterOptions,
};

/// How long the soak's children run; each also stops after a bounded number of rounds.
const RUN_FOR: Duration = Duration::from_secs(10);
const WRITERS: usize = 3;
const MAX_WRITER_ROUNDS: usize = 400;
const MAX_TAGGER_ROUNDS: usize = 4000;
const MAX_GC_ROUNDS: usize = 500;
const TAGS: [&str; 4] = ["t0", "t1", "t2", "t3"];
/// Layers every writer puts now and then: the same blobs are garbage, swept, and put again.
const COMMON_LAYERS: usize = 4;

fn layer_descriptor(blob: &ocicas::StoredBlob) -> Descriptor {
    Descriptor::new("application/vnd.oci.image.layer.v1.tar", blob.digest.clone(), blob.size)
}

fn manifest_over(config: Descriptor, layers: Vec<Descriptor>) -> ImageManifest {
    ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_owned()),
        artifact_type: None,
        config,
        layers,
        subject: None,
        annotations: Default::default(),
        extra: Default::default(),
    }
}

/// Stores a config over `layers` and a manifest, both under `lease` when given; returns the
/// manifest's descriptor.
fn put_image(engine: &Engine, lease: Option<&str>, layers: Vec<Descriptor>, salt: &str) -> (Descriptor, ImageManifest) {
    let put = |bytes: Vec<u8>| match lease {
        Some(lease) => engine.put_blob_leased(lease, Algorithm::Sha256, &bytes[..]).unwrap(),
        None => engine.put_blob(&bytes).unwrap(),
    };
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "author": salt,
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>()}});
    let config = put(canonical_json(&config).unwrap());
    let manifest = manifest_over(Descriptor::new(MEDIA_TYPE_IMAGE_CONFIG, config.digest, config.size), layers);
    let stored = put(canonical_json(&manifest).unwrap());
    (Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, stored.digest, stored.size), manifest)
}

// ---------------------------------------------------------------------------------------------
// The soak.

const SOAK: &str = "gc_while_processes_write_keeps_every_tagged_image_whole";

/// A writer fails (panics, so its exit status is non-zero) when a blob it committed under its
/// still-live lease is gone.
fn assert_still_stored(engine: &Engine, writer: &str, round: usize, when: &str, blobs: &[&Digest]) {
    for digest in blobs {
        assert!(
            engine.has_blob(digest).unwrap(),
            "{writer} round {round}: blob {digest} vanished {when}, while the lease holding it was live"
        );
    }
}

/// One writer round: a lease, 1 to 3 fresh random layers, maybe a common layer and a streamed
/// one, a config and a manifest, all put under the lease; checked present; tagged; checked
/// again; the lease released. Every fifth round also appends to the writer's own image.
fn writer_round(engine: &Engine, writer: &str, round: usize, rng: &mut Rng) {
    let lease = engine.lease_new(None, Some(Duration::from_secs(600))).unwrap();
    let mut layers = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let len = 1 + rng.below(32 << 10) as usize;
        let blob = engine.put_blob_leased(&lease.id, Algorithm::Sha256, &rng.bytes(len)[..]).unwrap();
        layers.push(layer_descriptor(&blob));
    }
    if rng.below(2) == 0 {
        let common = format!("common layer {}", rng.below(COMMON_LAYERS as u64)).repeat(100);
        let blob = engine.put_blob_leased(&lease.id, Algorithm::Sha256, common.as_bytes()).unwrap();
        layers.push(layer_descriptor(&blob));
    }
    if rng.below(4) == 0 {
        let mut stream = leased_stream(engine, &lease.id);
        stream.write(format!("{writer} {round}").repeat(500).as_bytes()).unwrap();
        layers.push(stream.finish().unwrap().descriptor());
    }
    let (descriptor, manifest) = put_image(engine, Some(&lease.id), layers, &format!("{writer} {round}"));
    let mut blobs: Vec<&Digest> = manifest.layers.iter().map(|l| &l.digest).collect();
    blobs.extend([&manifest.config.digest, &descriptor.digest]);
    assert_still_stored(engine, writer, round, "before tagging", &blobs);
    let tag = *rng.pick(&TAGS);
    engine.ref_put(tag, &descriptor, true).unwrap();
    assert_still_stored(engine, writer, round, "after tagging", &blobs);
    engine.lease_release(&lease.id).unwrap();

    if round % 5 == 0 {
        // append_layer leases its own new blobs; the layer comes in under ours.
        let lease = engine.lease_new(None, Some(Duration::from_secs(600))).unwrap();
        let mut stream = leased_stream(engine, &lease.id);
        stream.write(&rng.bytes(2000)).unwrap();
        let layer = stream.finish().unwrap();
        let appended = engine.append_layer(&format!("app-{writer}"), &layer, "stress").unwrap();
        assert_still_stored(engine, writer, round, "after appending", &[&layer.digest, &appended.digest]);
        engine.lease_release(&lease.id).unwrap();
    }
}

/// A one-thread push stream whose blob joins `lease` before it becomes visible.
fn leased_stream(engine: &Engine, lease: &str) -> LayerStream {
    let storage = StorageOptions { lease: Some(lease.to_owned()), ..StorageOptions::default() };
    LayerStream::new(engine, &CompressionOptions { threads: 1, ..CompressionOptions::default() }, &storage).unwrap()
}

fn tagger_round(engine: &Engine, rng: &mut Rng) {
    let from = *rng.pick(&TAGS);
    let to = *rng.pick(&TAGS);
    match engine.ref_get(from) {
        Ok(descriptor) => match engine.ref_put(to, &descriptor, true) {
            // The image may have been collected since `from` moved on; the tag must not be made.
            Err(err) if err.kind() == ErrorKind::NotFound => {
                assert!(engine.ref_get(to).map_or(true, |d| d.digest != descriptor.digest))
            }
            other => other.unwrap(),
        },
        Err(err) if err.kind() == ErrorKind::NotFound => {}
        Err(err) => panic!("tagger: {err}"),
    }
    if rng.below(6) == 0 {
        let tag = rng.pick(&TAGS);
        engine.ref_delete(tag).unwrap();
    }
    std::thread::sleep(Duration::from_millis(2));
}

fn run_soak_role(role: &str) {
    let engine = child_engine();
    let deadline = Instant::now() + RUN_FOR;
    let mut rng = Rng(role.bytes().fold(17, |h: u64, b| h.wrapping_mul(31).wrapping_add(b as u64)));
    let (mut rounds, mut removed) = (0, 0);
    let max_rounds = match role {
        "tagger" => MAX_TAGGER_ROUNDS,
        "collector" => MAX_GC_ROUNDS,
        _ => MAX_WRITER_ROUNDS,
    };
    while Instant::now() < deadline && rounds < max_rounds {
        rounds += 1;
        match role {
            "tagger" => tagger_round(&engine, &mut rng),
            "collector" => {
                let report = engine.gc(&GcOptions::default()).unwrap();
                removed += report.blobs_removed;
                std::thread::sleep(Duration::from_millis(20));
            }
            writer => writer_round(&engine, writer, rounds, &mut rng),
        }
    }
    println!("{role}: rounds={rounds} removed={removed}");
}

#[test]
fn gc_while_processes_write_keeps_every_tagged_image_whole() {
    if let Some(role) = role() {
        return run_soak_role(&role);
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let engine = Engine::create(&layout).unwrap();
    let mut roles: Vec<String> = (0..WRITERS).map(|n| format!("writer-{n}")).collect();
    roles.extend(["tagger".to_owned(), "collector".to_owned()]);
    let children: Vec<(String, Child)> = roles
        .into_iter()
        .map(|role| {
            let child = child(SOAK, &role, &layout).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
            (role, child)
        })
        .collect();
    let mut counts = BTreeMap::new();
    for (role, child) in children {
        let output = child.wait_with_output().unwrap();
        assert_succeeded(&format!("the {role} process"), &output);
        let stdout = String::from_utf8_lossy(&output.stdout);
        // libtest may print "test NAME ... " before the child's own line.
        let line = stdout
            .lines()
            .find_map(|l| l.find(&format!("{role}: ")).map(|at| &l[at..]))
            .unwrap_or_else(|| panic!("{stdout}"));
        let field = |name: &str| -> u64 {
            line.split(' ').find_map(|f| f.strip_prefix(&format!("{name}="))).unwrap().parse().unwrap()
        };
        counts.insert(role, (field("rounds"), field("removed")));
    }
    println!("{counts:?}");
    // The run was a real race: writers wrote, GC ran many times and removed garbage meanwhile.
    assert!(counts.iter().filter(|(r, _)| r.starts_with("writer")).all(|(_, (rounds, _))| *rounds >= 5), "{counts:?}");
    assert!(counts["collector"].0 >= 5 && counts["collector"].1 > 0, "{counts:?}");

    let report = engine.fsck().unwrap();
    assert!(report.is_sound(), "{:?}", report.problems);
    let refs = engine.ref_list().unwrap();
    assert!(refs.iter().any(|(name, _)| name.starts_with("app-")), "{refs:?}");
    for (name, descriptor) in &refs {
        let Document::Manifest(manifest) = engine.read_document(descriptor).unwrap() else {
            panic!("{name} is not a manifest");
        };
        for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
            assert!(engine.has_blob(&blob.digest).unwrap(), "{name}: {} is missing", blob.digest);
        }
    }
    // Every lease was released, nothing was left half-written, and a last GC (past the grace
    // for just-committed blobs) leaves exactly the tagged images.
    assert!(engine.lease_list().unwrap().is_empty(), "{:?}", engine.lease_list().unwrap());
    assert!(engine.ingest_list(&ocicas::Filters::parse::<&str>(&[]).unwrap()).unwrap().is_empty());
    std::thread::sleep(Duration::from_millis(1100));
    engine.gc(&GcOptions::default()).unwrap();
    let after = engine.fsck().unwrap();
    assert!(after.is_sound() && after.notes.is_empty(), "{after:?}");
    assert_eq!(after.reachable, after.blobs_checked);
    assert_eq!(fs::read_dir(layout.join(".ocicas/tmp")).map_or(0, |d| d.count()), 0, "temp files left behind");
}

// ---------------------------------------------------------------------------------------------
// Ingests and uploads of live processes under `gc --ingest-expiry 0s`.

const INGESTS: &str = "an_ingest_held_by_a_live_process_survives_gc_with_zero_expiry_and_idle_ones_do_not";
const HELD_PART_1: &[u8] = b"first part of the held ingest\n";
const HELD_PART_2: &[u8] = b"second part, written after the GC\n";

/// Holds ingest REF open: writes part 1, prints "ready", waits for a line on stdin, writes part
/// 2, commits (checking size and digest), prints the digest.
fn run_ingest_holder(ref_name: &str) {
    let engine = child_engine();
    let mut writer = engine.writer(ref_name, &WriterOptions::default()).unwrap();
    writer.write(HELD_PART_1).unwrap();
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    writer.write(HELD_PART_2).unwrap();
    let expected = Digest::of_bytes(Algorithm::Sha256, &[HELD_PART_1, HELD_PART_2].concat());
    let size = (HELD_PART_1.len() + HELD_PART_2.len()) as u64;
    let digest = writer.commit(Some(size), Some(&expected), &Default::default()).unwrap();
    println!("committed {digest}");
}

fn wait_for_line(stdout: &mut BufReader<ChildStdout>, wanted: &str) {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "the child ended before printing {wanted:?}");
        // libtest prints "test NAME ... " before the test's own output, on the same line.
        if line.trim_end().ends_with(wanted) {
            return;
        }
    }
}

fn gc_cli(layout: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["gc", s(layout), "--json"];
    args.extend(extra);
    serde_json::from_str(&ocicas(&args)).unwrap()
}

#[test]
fn an_ingest_held_by_a_live_process_survives_gc_with_zero_expiry_and_idle_ones_do_not() {
    if let Some(role) = role() {
        return run_ingest_holder(role.strip_prefix("hold:").unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let engine = Engine::create(&layout).unwrap();
    let spawn_holder = |ref_name: &str| {
        let mut holder = child(INGESTS, &format!("hold:{ref_name}"), &layout)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(holder.stdout.take().unwrap());
        wait_for_line(&mut stdout, "ready");
        (holder, stdout)
    };
    let (mut held, mut held_stdout) = spawn_holder("held");
    // An ingest whose process was killed: its lock went with it.
    let (mut killed, _) = spawn_holder("killed");
    killed.kill().unwrap();
    killed.wait().unwrap();
    // An ingest closed by a writer that is still alive (this process), resumable, not held.
    let mut idle = engine.writer("idle", &WriterOptions::default()).unwrap();
    idle.write(b"idle bytes").unwrap();
    idle.close().unwrap();

    // The default expiry (24h) removes none of them.
    let report = gc_cli(&layout, &[]);
    assert_eq!(report["ingestsRemoved"], serde_json::json!([]), "{report}");
    // Zero removes the ingests no live writer holds, whatever their age.
    let report = gc_cli(&layout, &["--ingest-expiry", "0s"]);
    assert_eq!(report["ingestsRemoved"], serde_json::json!(["idle", "killed"]), "{report}");
    let listed = ocicas(&["ingest", "ls", s(&layout)]);
    let refs: Vec<String> = listed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["ref"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(refs, ["held"], "{listed}");
    assert_eq!(engine.ingest_status("held").unwrap().offset, HELD_PART_1.len() as u64);

    // The holder goes on writing and commits what it wrote before and after the GC.
    writeln!(held.stdin.take().unwrap(), "go").unwrap();
    let expected = Digest::of_bytes(Algorithm::Sha256, &[HELD_PART_1, HELD_PART_2].concat());
    wait_for_line(&mut held_stdout, &format!("committed {expected}"));
    let status = held.wait().unwrap();
    assert!(status.success(), "the holder failed: {status}");
    assert!(engine.has_blob(&expected).unwrap());
    engine.verify_blob(&expected).unwrap();
    assert!(gc_cli(&layout, &["--ingest-expiry", "0s"])["ingestsRemoved"].as_array().unwrap().is_empty());
}

#[test]
fn a_blob_a_live_process_is_uploading_survives_gc_with_zero_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let engine = Engine::create(&layout).unwrap();
    // `ocicas blob put LAYOUT -` (no --ref) streams stdin into a private temp file.
    let mut upload = Command::new(OCICAS)
        .args(["blob", "put", s(&layout), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = upload.stdin.take().unwrap();
    stdin.write_all(b"first half, ").unwrap();
    stdin.flush().unwrap();
    let tmp = layout.join(".ocicas/tmp");
    let deadline = Instant::now() + Duration::from_secs(10);
    while fs::read_dir(&tmp).map_or(0, |d| d.count()) == 0 {
        assert!(Instant::now() < deadline, "the upload never created its temp file");
        std::thread::sleep(Duration::from_millis(10));
    }

    let report = gc_cli(&layout, &["--ingest-expiry", "0s"]);
    stdin.write_all(b"second half").unwrap();
    drop(stdin);
    let output = upload.wait_with_output().unwrap();
    assert_succeeded(&format!("the upload (GC reported {report}) process"), &output);
    let digest: Digest = String::from_utf8(output.stdout).unwrap().trim().parse().unwrap();
    assert_eq!(digest, Digest::of_bytes(Algorithm::Sha256, b"first half, second half"));
    assert!(engine.has_blob(&digest).unwrap());
}

// ---------------------------------------------------------------------------------------------
// A lease's manifest committed while GC waits for the store lock.

#[test]
fn children_of_a_leased_manifest_committed_while_gc_waits_for_the_lock_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let engine = Engine::create(&layout).unwrap();
    // A layer and a config stored long ago that nothing references yet; the manifest over them
    // is named by a lease before it is stored (as put_blob_leased does).
    let layer = engine.put_blob(b"layer stored long ago").unwrap();
    let (_, manifest) = put_image(&engine, None, vec![layer_descriptor(&layer)], "old");
    age_blob(&engine, &layer.digest);
    age_blob(&engine, &manifest.config.digest);
    let manifest_bytes = canonical_json(&manifest).unwrap();
    let manifest_digest = Digest::of_bytes(Algorithm::Sha256, &manifest_bytes);
    engine.delete_blob(&manifest_digest).unwrap();
    let lease = engine.lease_new(None, None).unwrap();
    engine.lease_add(&lease.id, LeaseResource::Blob(manifest_digest.clone())).unwrap();

    // Hold the store lock shared (as a commit does), so GC marks, then waits to sweep.
    let lock_path = layout.join(".ocicas/lock");
    let lock = fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&lock_path).unwrap();
    lock.lock_shared().unwrap();
    let (reached, lock_reached) = mpsc::channel();
    // GC opens the lock once its unlocked mark is done, to sweep.
    let storage = Arc::new(BeforeFirstLock::new(move || {
        let _ = reached.send(());
    }));
    let gc_engine = Engine::open_with(&layout, &OpenOptions::default(), storage).unwrap();
    let gc = std::thread::spawn(move || gc_engine.gc(&GcOptions::default()));
    lock_reached.recv_timeout(Duration::from_secs(20)).expect("GC never went for the store lock");
    // Meanwhile the writer commits its manifest (commits share the lock).
    engine.put_blob(&manifest_bytes).unwrap();
    lock.unlock().unwrap();
    let report = format!("{:?}", gc.join().unwrap().unwrap());

    // The lease's manifest is stored, so what it references is reachable from a live lease.
    for (what, digest) in
        [("manifest", &manifest_digest), ("config", &manifest.config.digest), ("layer", &layer.digest)]
    {
        assert!(engine.has_blob(digest).unwrap(), "the leased image's {what} {digest} was swept: {report}");
    }
    let descriptor = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, manifest_digest, manifest_bytes.len() as u64);
    engine.ref_put("leased", &descriptor, false).unwrap();
    engine.lease_release(&lease.id).unwrap();
    assert!(engine.fsck().unwrap().is_sound(), "{:?}", engine.fsck().unwrap().problems);
}

// ---------------------------------------------------------------------------------------------
// Commits just before GC: the grace that lets a writer commit, then tag or lease, in two steps.

#[test]
fn a_blob_committed_again_just_before_gc_is_kept_like_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path().join("layout")).unwrap();
    // Stored long ago and unreferenced: garbage, until a writer commits the same bytes again.
    let old = engine.put_blob(b"content put long ago").unwrap();
    age_blob(&engine, &old.digest);
    let fresh = engine.put_blob(b"content put just now").unwrap();

    // The writer's commit succeeds (the blob is there), and it goes on to tag it...
    assert_eq!(engine.put_blob(b"content put long ago").unwrap(), old);
    let report = engine.gc(&GcOptions::default()).unwrap();
    assert!(engine.has_blob(&fresh.digest).unwrap());
    assert!(
        engine.has_blob(&old.digest).unwrap(),
        "a blob whose commit returned just before GC started was swept, as if nobody had committed it: {report:?}"
    );
}

#[test]
fn a_blob_committed_from_an_ingest_just_before_gc_is_kept_however_old_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path().join("layout")).unwrap();
    let mut writer = engine.writer("slow-upload", &WriterOptions::default()).unwrap();
    writer.write(b"bytes written a while ago").unwrap();
    writer.close().unwrap();
    // The upload resumes later and commits; its bytes were last written before the grace.
    std::thread::sleep(Duration::from_millis(1300));
    let mut writer = engine.writer("slow-upload", &WriterOptions::default()).unwrap();
    let digest = writer.commit(None, None, &Default::default()).unwrap();
    let report = engine.gc(&GcOptions::default()).unwrap();
    assert!(
        engine.has_blob(&digest).unwrap(),
        "a blob committed just before GC started was swept (its mtime is that of its last write): {report:?}"
    );
}

#[test]
fn a_manifest_gc_keeps_because_it_is_young_keeps_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path().join("layout")).unwrap();
    // Layers stored long ago (as when a pull finds them already there), a manifest over them
    // committed just now, not yet tagged.
    let layers: Vec<Descriptor> = (0..3)
        .map(|i| {
            let blob = engine.put_blob(format!("old layer {i}").as_bytes()).unwrap();
            age_blob(&engine, &blob.digest);
            layer_descriptor(&blob)
        })
        .collect();
    let (descriptor, manifest) = put_image(&engine, None, layers, "young");
    let report = engine.gc(&GcOptions::default()).unwrap();
    // GC kept the young manifest, so a tag may point at it: it must still be a whole image.
    assert!(engine.has_blob(&descriptor.digest).unwrap(), "{report:?}");
    engine.ref_put("young", &descriptor, false).unwrap();
    let fsck = engine.fsck().unwrap();
    assert!(
        fsck.is_sound(),
        "GC kept manifest {} but removed its children: {:?} (report {report:?})",
        descriptor.digest,
        fsck.problems
    );
    for layer in &manifest.layers {
        assert!(engine.has_blob(&layer.digest).unwrap());
    }
}
