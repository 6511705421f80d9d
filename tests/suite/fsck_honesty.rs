//! fsck says "sound" only for a layout whose images can be used, reports each fault (a problem,
//! exit 1) or oddity (a note) with the path of descriptors that leads to it, and sees one
//! committed state while others retag and collect. A tag never names a blob as a document it
//! does not parse as.

use crate::common;
use crate::graph_common;

use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use common::cli::{FSCK_PROBLEMS, ocicas_output, s};
use common::fixture::{age_blob, age_blobs, store};
use graph_common::*;
use ocicas::spec::{Descriptor, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST};
use ocicas::{
    Compression, CompressionOptions, Digest, Engine, ErrorKind, FsckOptions, GcOptions, LayerStream, OpenOptions,
    StorageOptions,
};
use serde_json::{Value, json};

fn index_of(engine: &Engine, manifests: &[&Descriptor]) -> Descriptor {
    let index = json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_INDEX, "manifests": manifests});
    put_json(engine, MEDIA_TYPE_IMAGE_INDEX, "", &index)
}

fn entry(media_type: &str, digest: &Digest, size: u64) -> Value {
    json!({"mediaType": media_type, "digest": digest, "size": size})
}

fn assert_problem(engine: &Engine, needles: &[&str]) {
    let report = engine.fsck().unwrap();
    assert!(
        report.problems.iter().any(|p| needles.iter().all(|n| p.contains(n))),
        "no problem mentions {needles:?}: {report:#?}"
    );
}

fn assert_sound_with_note(engine: &Engine, needles: &[&str]) {
    let report = engine.fsck().unwrap();
    assert!(report.is_sound(), "{report:#?}");
    assert!(
        report.notes.iter().any(|n| needles.iter().all(|needle| n.contains(needle))),
        "no note mentions {needles:?}: {report:#?}"
    );
}

#[test]
fn a_ref_put_refuses_a_blob_that_does_not_parse_as_the_media_type_given() {
    let (_dir, engine) = store();
    let (manifest, _) = image(&engine, "a", "");
    let index = index_of(&engine, &[&manifest]);
    engine.ref_put("good", &index, false).unwrap();
    let as_manifest = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, index.digest.clone(), index.size);
    for result in [
        engine.ref_put("bad", &as_manifest, false),
        engine.ref_put("bad", &as_manifest, true),
        engine.ref_put_all(&[("other".to_owned(), manifest.clone()), ("bad".to_owned(), as_manifest.clone())]),
    ] {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidImage, "{err}");
        assert!(err.message().contains("\"bad\"") && err.message().contains(&index.digest.to_string()), "{err}");
    }
    let out = ocicas_output(
        &["ref", "put", s(engine.root()), "bad", &index.digest.to_string(), "--media-type", MEDIA_TYPE_IMAGE_MANIFEST],
        b"",
    );
    assert_eq!(out.status.code(), Some(12), "{out:?} (invalid image)");
    let names: Vec<String> = engine.ref_list().unwrap().into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["good"]);
    age_blobs(engine.root());
    engine.gc(&GcOptions::default()).unwrap();

    // Layers and media types without a parser are not read.
    engine.ref_put("opaque", &Descriptor::new("application/x-foo", index.digest.clone(), index.size), false).unwrap();
    engine.ref_put("layer", &Descriptor::new(LAYER_TAR, index.digest.clone(), index.size), false).unwrap();
}

#[test]
fn fsck_checks_every_media_type_a_digest_is_reached_with() {
    for bad_first in [true, false] {
        let (_dir, engine) = store();
        let (manifest, _) = image(&engine, "a", "");
        let index = index_of(&engine, &[&manifest]);
        let bad = || add_index_entry(&engine, Some("bad"), entry(MEDIA_TYPE_IMAGE_MANIFEST, &index.digest, index.size));
        if bad_first {
            bad();
        }
        engine.ref_put("good", &index, false).unwrap();
        if !bad_first {
            bad();
        }
        assert_problem(&engine, &["\"bad\"", &index.digest.to_string()]);
        age_blobs(engine.root());
        let err = engine.gc(&GcOptions::default()).unwrap_err();
        assert!(err.message().contains("\"bad\""), "{err}");
        engine.ref_delete("bad").unwrap();
        assert!(engine.fsck().unwrap().is_sound(), "{}", problems(&engine));
    }
}

#[test]
fn a_ref_name_on_two_entries_is_a_problem_and_putting_it_again_leaves_one() {
    let (_dir, engine) = store();
    let (manifest, _) = image(&engine, "a", "");
    engine.ref_put("a", &manifest, false).unwrap();
    edit_index(&engine, |index| {
        let first = index["manifests"][0].clone();
        index["manifests"].as_array_mut().unwrap().push(first);
    });
    assert_problem(&engine, &["\"a\"", "ambiguous"]);
    // Idempotent for an equal descriptor, which also leaves one entry.
    engine.ref_put("a", &manifest, false).unwrap();
    assert_eq!(engine.ref_list().unwrap().len(), 1);
    assert!(engine.fsck().unwrap().is_sound(), "{}", problems(&engine));

    let (other, _) = image(&engine, "b", "");
    add_index_entry(&engine, Some("a"), entry(MEDIA_TYPE_IMAGE_MANIFEST, &other.digest, other.size));
    assert_problem(&engine, &["\"a\"", "2 entries"]);
    let err = engine.ref_put("a", &manifest, false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Clobber, "{err}");
    assert!(err.message().contains("2 entries"), "{err}");
    engine.ref_put("a", &manifest, true).unwrap();
    assert_eq!(engine.ref_list().unwrap(), [("a".to_owned(), engine.ref_get("a").unwrap())]);
    assert!(engine.fsck().unwrap().is_sound(), "{}", problems(&engine));
}

#[test]
fn an_index_entry_of_an_unknown_media_type_is_a_note() {
    let (_dir, engine) = store();
    let (manifest, _) = image(&engine, "a", "");
    engine.ref_put("a", &manifest, false).unwrap();
    add_index_entry(&engine, Some("foo"), entry("application/x-foo", &manifest.digest, manifest.size));
    assert_sound_with_note(&engine, &["\"foo\"", "application/x-foo"]);
}

#[test]
fn a_data_field_must_be_the_base64_of_the_blob() {
    let base64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let cases = [
        (json!("!!not base64"), Some("not base64")),
        (json!(base64(b"other bytes")), Some("does not hold the blob")),
        (json!(17), Some("not a string")),
        (Value::Null, None),
    ];
    for (data, fault) in cases {
        // On an index.json entry.
        let (_dir, engine) = store();
        let (manifest, _) = image(&engine, "a", "");
        engine.ref_put("a", &manifest, false).unwrap();
        let bytes = engine.read_blob(&manifest.digest, 1 << 20).unwrap();
        let data = if data.is_null() { json!(base64(&bytes)) } else { data };
        edit_index(&engine, |index| index["manifests"][0]["data"] = data.clone());
        match fault {
            Some(fault) => assert_problem(&engine, &["data", fault, "index.json \"a\""]),
            None => assert!(engine.fsck().unwrap().is_sound(), "{}", problems(&engine)),
        }

        // On a layer descriptor inside a manifest.
        let (_dir, engine) = store();
        let layer = put(&engine, LAYER_TAR, b"layer");
        let config = put_json(
            &engine,
            MEDIA_TYPE_IMAGE_CONFIG,
            "",
            &json!({"architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.digest]}}),
        );
        let mut layer_json = serde_json::to_value(&layer).unwrap();
        layer_json["data"] = if fault.is_some() { data.clone() } else { json!(base64(b"layer")) };
        let manifest = put_json(
            &engine,
            MEDIA_TYPE_IMAGE_MANIFEST,
            "",
            &json!({"schemaVersion": 2,
            "mediaType": MEDIA_TYPE_IMAGE_MANIFEST, "config": config, "layers": [layer_json]}),
        );
        engine.ref_put("m", &manifest, false).unwrap();
        match fault {
            Some(fault) => assert_problem(&engine, &["data", fault, &layer.digest.to_string(), "\"m\""]),
            None => assert!(engine.fsck().unwrap().is_sound(), "{}", problems(&engine)),
        }
    }
}

/// Tags an image manifest built from `config` and `layers`; returns its descriptor.
fn tag_manifest(engine: &Engine, name: &str, config: &Descriptor, layers: &[Descriptor]) -> Descriptor {
    let manifest =
        json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_MANIFEST, "config": config, "layers": layers});
    let manifest = put_json(engine, MEDIA_TYPE_IMAGE_MANIFEST, "", &manifest);
    engine.ref_put(name, &manifest, false).unwrap();
    manifest
}

fn image_config(engine: &Engine, kind: &str, diff_ids: &[&Digest]) -> Descriptor {
    let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": kind, "diff_ids": diff_ids}});
    put_json(engine, MEDIA_TYPE_IMAGE_CONFIG, "", &config)
}

#[test]
fn a_manifest_with_a_config_or_layers_of_the_wrong_kind_is_a_problem_unless_it_is_an_artifact() {
    let (_dir, engine) = store();
    let layer = put(&engine, LAYER_TAR, b"layer");
    let config = image_config(&engine, "layers", &[&layer.digest]);
    let config_as_layer =
        Descriptor::new("application/vnd.oci.image.layer.v1.tar+gzip", config.digest.clone(), config.size);
    tag_manifest(&engine, "config-as-layer", &config_as_layer, std::slice::from_ref(&layer));
    assert_problem(&engine, &["\"config-as-layer\"", "config", "layer media type"]);
    engine.ref_delete("config-as-layer").unwrap();

    let odd_layer = Descriptor::new("application/x-foo", layer.digest.clone(), layer.size);
    tag_manifest(&engine, "odd-layer", &config, &[odd_layer]);
    assert_problem(&engine, &["\"odd-layer\"", "application/x-foo", "not a layer media type"]);
    engine.ref_delete("odd-layer").unwrap();

    // An artifact (its config is not an image's) may hold blobs of any media type.
    let empty = put(&engine, "application/vnd.oci.empty.v1+json", b"{}");
    let blob = Descriptor::new("application/vnd.example.sbom", layer.digest.clone(), layer.size);
    tag_manifest(&engine, "artifact", &empty, &[blob]);
    assert!(engine.fsck().unwrap().is_sound(), "{}", problems(&engine));
}

#[test]
fn a_config_whose_rootfs_does_not_match_the_layers_is_a_problem() {
    let (_dir, engine) = store();
    let layer = put(&engine, LAYER_TAR, b"layer");
    tag_manifest(&engine, "ok", &image_config(&engine, "layers", &[&layer.digest]), std::slice::from_ref(&layer));
    assert!(engine.fsck().unwrap().is_sound(), "{}", problems(&engine));
    tag_manifest(
        &engine,
        "count",
        &image_config(&engine, "layers", &[&layer.digest, &layer.digest]),
        std::slice::from_ref(&layer),
    );
    assert_problem(&engine, &["\"count\"", "2 rootfs.diff_ids for 1 layers"]);
    engine.ref_delete("count").unwrap();
    tag_manifest(&engine, "kind", &image_config(&engine, "foo", &[&layer.digest]), &[layer]);
    assert_problem(&engine, &["\"kind\"", "rootfs.type \"foo\""]);
}

#[test]
fn an_index_json_whose_manifests_are_null_is_a_note_and_is_mended_by_the_next_tag() {
    let (_dir, engine) = store();
    std::fs::write(engine.root().join("index.json"), br#"{"schemaVersion":2,"manifests":null}"#).unwrap();
    let engine = Engine::open(engine.root(), &OpenOptions::default()).unwrap();
    assert_sound_with_note(&engine, &["null"]);
    let (manifest, _) = image(&engine, "a", "");
    engine.ref_put("a", &manifest, false).unwrap();
    let index = std::fs::read_to_string(engine.root().join("index.json")).unwrap();
    assert!(index.contains(r#""manifests":[{"#), "{index}");
    let report = engine.fsck().unwrap();
    assert!(report.is_sound() && !report.notes.iter().any(|n| n.contains("null")), "{report:#?}");
}

#[test]
fn an_index_entry_with_a_digest_ocicas_cannot_parse_is_reported_not_fatal() {
    let (_dir, engine) = store();
    let (manifest, _) = image(&engine, "a", "");
    engine.ref_put("a", &manifest, false).unwrap();
    let sha384 = format!("sha384:{}", "a".repeat(96));
    add_index_entry(&engine, Some("odd"), json!({"mediaType": MEDIA_TYPE_IMAGE_MANIFEST, "digest": sha384, "size": 7}));
    add_index_entry(
        &engine,
        Some("broken"),
        json!({"mediaType": MEDIA_TYPE_IMAGE_MANIFEST, "digest": "sha256:ABC", "size": 7}),
    );
    let engine = Engine::open(engine.root(), &OpenOptions::default()).unwrap();
    assert_eq!(engine.ref_list().unwrap().len(), 1);
    let report = engine.fsck().unwrap();
    assert!(report.notes.iter().any(|n| n.contains("\"odd\"") && n.contains("sha384")), "{report:#?}");
    assert_eq!(report.problems.len(), 1, "{report:#?}");
    assert!(
        report.problems[0].contains("\"broken\"") && report.problems[0].contains("not a valid digest"),
        "{report:#?}"
    );

    // Updates keep the entries they cannot read, and a name on one is taken only by force.
    let (other, _) = image(&engine, "b", "");
    engine.ref_put("b", &other, false).unwrap();
    assert!(std::fs::read_to_string(engine.root().join("index.json")).unwrap().contains(&sha384));
    assert_eq!(engine.ref_put("broken", &other, false).unwrap_err().kind(), ErrorKind::Clobber);
    engine.ref_put("broken", &other, true).unwrap();
    engine.ref_delete("odd").unwrap();
    assert!(!std::fs::read_to_string(engine.root().join("index.json")).unwrap().contains(&sha384));
    age_blobs(engine.root());
    engine.gc(&GcOptions::default()).unwrap();
    assert!(engine.fsck().unwrap().is_sound(), "{}", problems(&engine));

    // An entry that is no descriptor for another reason still makes the layout unreadable.
    add_index_entry(
        &engine,
        Some("worse"),
        json!({"mediaType": MEDIA_TYPE_IMAGE_MANIFEST, "digest": sha384, "size": "7"}),
    );
    let err = Engine::open(engine.root(), &OpenOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidImage, "{err}");
}

#[test]
fn a_layout_of_another_1_x_version_opens_and_fsck_reports_it() {
    let (_dir, engine) = store();
    let (manifest, _) = image(&engine, "a", "");
    engine.ref_put("a", &manifest, false).unwrap();
    std::fs::write(engine.root().join("oci-layout"), br#"{"imageLayoutVersion":"1.1.0"}"#).unwrap();
    let engine = Engine::open(engine.root(), &OpenOptions::default()).unwrap();
    assert_problem(&engine, &["imageLayoutVersion", "1.1.0"]);
    std::fs::write(engine.root().join("oci-layout"), br#"{"imageLayoutVersion":"2.0.0"}"#).unwrap();
    assert_eq!(Engine::open(engine.root(), &OpenOptions::default()).unwrap_err().kind(), ErrorKind::InvalidImage);
}

/// Appends a layer of `content` compressed with `compression` to image `name`.
fn append(engine: &Engine, name: &str, compression: Compression, content: &[u8]) -> Descriptor {
    let options = CompressionOptions { compression, ..CompressionOptions::default() };
    let mut stream = LayerStream::new(engine, &options, &StorageOptions::default()).unwrap();
    stream.write(content).unwrap();
    let layer = stream.finish().unwrap();
    engine.append_layer(name, &layer, "test").unwrap()
}

#[test]
fn fsck_deep_checks_every_layer_against_its_diff_id() {
    let (_dir, engine) = store();
    for (i, compression) in [Compression::Gzip(6), Compression::Zstd(3), Compression::None].into_iter().enumerate() {
        append(&engine, "app", compression, format!("tar bytes {i}").repeat(1000).as_bytes());
    }
    let deep = FsckOptions { deep: true, ..FsckOptions::default() };
    let report = engine.fsck_with(&deep).unwrap();
    assert!(report.is_sound(), "{report:#?}");

    // An image whose config claims other DiffIDs for the same layers.
    let manifest = engine.read_document(&engine.ref_get("app").unwrap()).unwrap();
    let ocicas::Document::Manifest(manifest) = manifest else { panic!("not a manifest") };
    let wrong = Digest::of_bytes(ocicas::Algorithm::Sha256, b"other");
    let config = image_config(&engine, "layers", &[&wrong, &wrong, &wrong]);
    let liar = tag_manifest(&engine, "liar", &config, &manifest.layers);
    assert!(engine.fsck().unwrap().is_sound(), "{}", problems(&engine));
    let report = engine.fsck_with(&deep).unwrap();
    assert_eq!(report.problems.len(), 3, "{report:#?}");
    for (problem, layer) in report.problems.iter().zip(&manifest.layers) {
        assert!(problem.contains(&layer.digest.to_string()) && problem.contains(&liar.digest.to_string()), "{problem}");
        assert!(problem.contains("\"liar\"") && problem.contains(&wrong.to_string()), "{problem}");
    }
    let out = ocicas_output(&["fsck", s(engine.root()), "--deep"], b"");
    assert_eq!(out.status.code(), Some(FSCK_PROBLEMS), "{out:?}");
    let out = ocicas_output(&["fsck", s(engine.root())], b"");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    engine.ref_delete("liar").unwrap();

    // A layer that is not what its media type says.
    let fake = put(&engine, "application/vnd.oci.image.layer.v1.tar+gzip", b"not gzip at all");
    tag_manifest(&engine, "fake", &image_config(&engine, "layers", &[&wrong]), std::slice::from_ref(&fake));
    let report = engine.fsck_with(&deep).unwrap();
    assert_eq!(report.problems.len(), 1, "{report:#?}");
    assert!(
        report.problems[0].contains(&fake.digest.to_string()) && report.problems[0].contains("decompress"),
        "{report:#?}"
    );
}

/// fsck --deep reads layers with the layer reader export and the C API use: every layer media
/// type it knows (Docker's foreign tar and tar.zstd too), the DiffID it found told against the
/// one the config gives, a tampered blob reported, a type it cannot decompress noted.
#[test]
fn fsck_deep_tells_the_diff_id_found_from_the_one_configured_for_every_layer_type() {
    let (_dir, engine) = store();
    let content = b"the bytes of a layer tar ".repeat(400);
    let found = Digest::of_bytes(ocicas::Algorithm::Sha256, &content);
    let layers = [
        put(&engine, "application/vnd.docker.image.rootfs.foreign.diff.tar", &content),
        put(&engine, "application/vnd.docker.image.rootfs.diff.tar.zstd", &zstd::encode_all(&content[..], 3).unwrap()),
    ];
    tag_manifest(&engine, "good", &image_config(&engine, "layers", &[&found, &found]), &layers);
    let deep = FsckOptions { deep: true, ..FsckOptions::default() };
    let report = engine.fsck_with(&deep).unwrap();
    assert!(report.is_sound() && report.notes.iter().all(|n| !n.contains("--deep")), "{report:#?}");

    let wrong = Digest::of_bytes(ocicas::Algorithm::Sha256, b"another tar");
    let liar = tag_manifest(&engine, "liar", &image_config(&engine, "layers", &[&wrong, &found]), &layers);
    let report = engine.fsck_with(&deep).unwrap();
    assert_eq!(report.problems.len(), 1, "{report:#?}");
    let problem = &report.problems[0];
    for needle in [&layers[0].digest.to_string(), &liar.digest.to_string(), &found.to_string(), &wrong.to_string()] {
        assert!(problem.contains(needle), "{needle} not in {problem}");
    }
    assert!(problem.find(&found.to_string()) < problem.find(&wrong.to_string()), "found, then configured: {problem}");
    engine.ref_delete("liar").unwrap();

    // A type no decoder is known for is noted, not guessed at.
    let bzip2 = put(&engine, "application/vnd.oci.image.layer.v1.tar+bzip2", b"BZh9 not read");
    tag_manifest(&engine, "bzip2", &image_config(&engine, "layers", &[&wrong]), std::slice::from_ref(&bzip2));
    let report = engine.fsck_with(&deep).unwrap();
    assert!(report.is_sound(), "{report:#?}");
    assert!(
        report.notes.iter().any(|n| n.contains(&bzip2.digest.to_string()) && n.contains("--deep cannot decompress")),
        "{report:#?}"
    );
    engine.ref_delete("bzip2").unwrap();

    // A stored layer whose bytes were changed: the blob is corrupt, and --deep says why it cannot
    // check the DiffID.
    let path = engine.root().join("blobs/sha256").join(layers[0].digest.hex());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[7] ^= 0x20;
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let report = engine.fsck_with(&deep).unwrap();
    let layer_problems: Vec<_> = report.problems.iter().filter(|p| p.contains("\"good\"")).collect();
    assert_eq!(layer_problems.len(), 1, "{report:#?}");
    assert!(layer_problems[0].contains(&layers[0].digest.to_string()) && layer_problems[0].contains("corrupt"));
}

#[test]
fn fsck_during_retags_and_gcs_sees_one_committed_state() {
    const ROUNDS: usize = 60;
    let (_dir, engine) = store();
    let stop = AtomicBool::new(false);
    let mut fsck_runs = 0;
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            for round in 0..ROUNDS {
                // Each round tags a new image and collects the previous one, aged past GC's grace.
                let (manifest, blobs) = image(&engine, &format!("round {round}"), "");
                for digest in &blobs {
                    age_blob(&engine, digest);
                }
                engine.ref_put("app", &manifest, true).unwrap();
                engine.gc(&GcOptions::default()).unwrap();
            }
            stop.store(true, Ordering::Relaxed);
        });
        while !stop.load(Ordering::Relaxed) {
            let report = engine.fsck().unwrap();
            assert!(report.is_sound(), "fsck run {fsck_runs}: {:#?}", report.problems);
            fsck_runs += 1;
        }
        writer.join().unwrap();
    });
    assert!(fsck_runs > 0);
}

/// The file of `digest` in the layout replaced by one of `bytes` (no lock, as a disk fault
/// would; a new file, as a blob's may be read-only).
fn overwrite_blob(engine: &Engine, digest: &Digest, bytes: &[u8]) {
    let path = engine.root().join("blobs").join(digest.algorithm().name()).join(digest.hex());
    std::fs::remove_file(&path).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn fsck_no_hash_finds_missing_and_resized_blobs_but_reads_no_layer() {
    let no_hash = FsckOptions { no_hash: true, ..FsckOptions::default() };
    let (_dir, engine) = store();
    let (manifest, blobs) = image(&engine, "a", "");
    engine.ref_put("a", &manifest, false).unwrap();
    let layer = &blobs[2];
    let size = std::fs::metadata(engine.root().join("blobs/sha256").join(layer.hex())).unwrap().len();

    // The same number of other bytes: only hashing can tell, and --no-hash does not hash.
    overwrite_blob(&engine, layer, &vec![b'x'; size as usize]);
    let report = engine.fsck_with(&no_hash).unwrap();
    assert!(report.is_sound() && report.blobs_checked == 0 && report.reachable == 3, "{report:#?}");
    assert!(!engine.fsck().unwrap().is_sound());
    let out = ocicas_output(&["fsck", s(engine.root()), "--no-hash"], b"");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("no blob hashed"), "{out:?}");

    // One byte more than the manifest declares.
    overwrite_blob(&engine, layer, &vec![b'x'; size as usize + 1]);
    let report = engine.fsck_with(&no_hash).unwrap();
    assert!(report.problems.iter().any(|p| p.contains(&layer.to_string()) && p.contains("bytes")), "{report:#?}");

    std::fs::remove_file(engine.root().join("blobs/sha256").join(layer.hex())).unwrap();
    let report = engine.fsck_with(&no_hash).unwrap();
    assert!(report.problems.iter().any(|p| p.contains(&layer.to_string()) && p.contains("missing")), "{report:#?}");
    let out = ocicas_output(&["fsck", s(engine.root()), "--no-hash"], b"");
    assert_eq!(out.status.code(), Some(FSCK_PROBLEMS), "{out:?}");
}

#[test]
fn fsck_sums_up_unreachable_blobs_in_one_note_with_a_bounded_sample() {
    let (_dir, engine) = store();
    let (manifest, _) = image(&engine, "a", "");
    engine.ref_put("a", &manifest, false).unwrap();
    let mut garbage: Vec<Digest> =
        (0..25).map(|i| engine.put_blob(format!("garbage {i}").as_bytes()).unwrap().digest).collect();
    garbage.sort();
    for options in [FsckOptions::default(), FsckOptions { no_hash: true, ..FsckOptions::default() }] {
        let report = engine.fsck_with(&options).unwrap();
        assert!(report.is_sound(), "{report:#?}");
        assert_eq!(report.unreachable, 25, "{report:#?}");
        assert_eq!(report.unreachable_sample, garbage[..ocicas::fsck::UNREACHABLE_SAMPLE], "{report:#?}");
        let about_unreachable: Vec<&String> = report.notes.iter().filter(|n| n.contains("not reachable")).collect();
        assert_eq!(about_unreachable.len(), 1, "{report:#?}");
        assert!(about_unreachable[0].starts_with("25 blobs") && about_unreachable[0].contains(&garbage[0].to_string()));
        assert!(!about_unreachable[0].contains(&garbage[24].to_string()), "{report:#?}");
        let json = report.to_json();
        assert_eq!(json["unreachable"], 25);
        assert_eq!(json["unreachableSample"][0], garbage[0].to_string());
    }
}
