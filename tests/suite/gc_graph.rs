//! GC follows the children of every kind of document, whatever reached it first: OCI and
//! Docker manifests and indexes reached both untyped (a lease, a label, an ingest) and typed
//! (index.json), OCI artifact manifests, Docker schema 1, `subject`, and JSON of media types it
//! has no parser for (by its descriptor-shaped objects); non-JSON blobs of unknown types are
//! leaves. fsck follows the same edges, so a missing child makes the layout unsound.

use crate::common;
use crate::graph_common;

use common::fixture::{age_blobs, store};
use graph_common::*;
use ocicas::spec::MEDIA_TYPE_IMAGE_MANIFEST;
use ocicas::{Digest, ErrorKind, GcOptions, Labels, LeaseResource, WriterOptions};
use serde_json::json;

/// How a tagged manifest is also made a root without a media type.
#[derive(Debug, Clone, Copy)]
enum UntypedRoot {
    Lease,
    Label,
    Ingest,
}

#[test]
fn a_tagged_image_also_reached_untyped_keeps_its_config_and_layers_whatever_its_json_starts_with() {
    for root in [UntypedRoot::Lease, UntypedRoot::Label, UntypedRoot::Ingest] {
        for prefix in ["", "\n  ", "\t\r\n "] {
            let (_dir, engine) = store();
            // An ingest that expects the manifest must be opened before the manifest is stored.
            let pending_manifest = image(&engine, "probe", prefix).0;
            engine.delete_blob(&pending_manifest.digest).unwrap();
            if let UntypedRoot::Ingest = root {
                let options =
                    WriterOptions { expected_digest: Some(pending_manifest.digest.clone()), ..Default::default() };
                let mut writer = engine.writer("pending", &options).unwrap();
                writer.write(b"{").unwrap();
                writer.close().unwrap();
            }
            let (manifest, blobs) = image(&engine, "probe", prefix);
            assert_eq!(manifest, pending_manifest);
            engine.ref_put("app", &manifest, false).unwrap();
            match root {
                UntypedRoot::Lease => {
                    let lease = engine.lease_new(None, None).unwrap();
                    engine.lease_add(&lease.id, LeaseResource::Blob(manifest.digest.clone())).unwrap();
                }
                UntypedRoot::Label => {
                    let labels: Labels = [("ocicas.gc.root".to_owned(), "1".to_owned())].into();
                    engine.update_labels(&manifest.digest, &labels, &[]).unwrap();
                }
                UntypedRoot::Ingest => {}
            }
            let garbage = put(&engine, LAYER_TAR, b"garbage").digest;
            let report = gc(&engine);
            assert!(stored(&engine, &blobs), "{root:?}, prefix {prefix:?}: {report:?}");
            assert!(!engine.has_blob(&garbage).unwrap(), "{root:?}, prefix {prefix:?}: {report:?}");
            assert!(engine.fsck().unwrap().is_sound(), "{root:?}, prefix {prefix:?}: {}", problems(&engine));
        }
    }
}

#[test]
fn a_leased_manifest_whose_json_starts_with_whitespace_keeps_its_children() {
    let (_dir, engine) = store();
    let (manifest, blobs) = image(&engine, "leased", "\n\n    ");
    let lease = engine.lease_new(None, None).unwrap();
    engine.lease_add(&lease.id, LeaseResource::Blob(manifest.digest)).unwrap();
    let report = gc(&engine);
    assert!(stored(&engine, &blobs), "{report:?}");
}

const MEDIA_TYPE_ARTIFACT_MANIFEST: &str = "application/vnd.oci.artifact.manifest.v1+json";

#[test]
fn gc_keeps_the_blobs_and_subject_of_a_tagged_artifact_manifest() {
    let (_dir, engine) = store();
    let (subject, subject_blobs) = image(&engine, "subject", "");
    let signature = put(&engine, "application/vnd.example.signature", b"signed");
    let sbom = put_json(&engine, "application/spdx+json", "", &json!({"spdxVersion": "SPDX-2.3"}));
    let artifact = json!({"mediaType": MEDIA_TYPE_ARTIFACT_MANIFEST, "artifactType": "application/vnd.example",
                          "blobs": [signature, sbom], "subject": subject});
    let artifact = put_json(&engine, MEDIA_TYPE_ARTIFACT_MANIFEST, "", &artifact);
    engine.ref_put("signed", &artifact, false).unwrap();
    let garbage = put(&engine, LAYER_TAR, b"garbage").digest;
    let report = gc(&engine);
    assert_eq!(report.blobs_removed, 1, "{report:?}");
    assert!(!engine.has_blob(&garbage).unwrap());
    let mut kept = subject_blobs;
    kept.extend([artifact.digest.clone(), signature.digest.clone(), sbom.digest]);
    assert!(stored(&engine, &kept), "{report:?}");
    assert!(engine.fsck().unwrap().is_sound(), "{}", problems(&engine));

    engine.delete_blob(&signature.digest).unwrap();
    let problems = problems(&engine);
    assert!(problems.contains(&signature.digest.to_string()) && problems.contains("\"signed\""), "{problems}");
}

#[test]
fn gc_keeps_the_layers_of_docker_schema1_manifests_signed_or_not() {
    for media_type in [
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    ] {
        let (_dir, engine) = store();
        let layers: Vec<Digest> = (0..2).map(|i| put(&engine, "", format!("layer {i}").as_bytes()).digest).collect();
        let mut manifest = json!({"schemaVersion": 1, "name": "library/app", "tag": "1", "architecture": "amd64",
                                  "fsLayers": [{"blobSum": layers[0]}, {"blobSum": layers[1]}],
                                  "history": [{"v1Compatibility": "{}"}, {"v1Compatibility": "{}"}]});
        if media_type.ends_with("prettyjws") {
            manifest["signatures"] = json!([{"header": {"alg": "ES256"}, "signature": "c2ln", "protected": "cA"}]);
        }
        let manifest = put_json(&engine, media_type, "  ", &manifest);
        engine.ref_put("old", &manifest, false).unwrap();
        let report = gc(&engine);
        assert_eq!((report.blobs_removed, report.blobs_kept), (0, 3), "{media_type}: {report:?}");
        assert!(engine.fsck().unwrap().is_sound(), "{media_type}: {}", problems(&engine));

        engine.delete_blob(&layers[1]).unwrap();
        let problems = problems(&engine);
        assert!(problems.contains(&layers[1].to_string()), "{media_type}: {problems}");
    }
}

#[test]
fn gc_follows_every_descriptor_shaped_object_of_json_of_an_unknown_media_type() {
    let (_dir, engine) = store();
    let (nested_manifest, nested_blobs) = image(&engine, "nested", "");
    let config = put(&engine, "application/vnd.example.config", b"config bytes");
    let part = put(&engine, "application/vnd.example.part", b"part bytes");
    let sub = put_json(&engine, "application/vnd.example.sub+json", "", &json!({"deep": {"list": [part]}}));
    // A manifest type of the future: every field that could hold children, one of them nested.
    let future = json!({"schemaVersion": 3, "mediaType": "application/vnd.example.manifest.v9+json",
                        "config": config, "layers": [sub], "manifests": [nested_manifest],
                        "extensions": {"more": [{"blobs": []}]}});
    let future = put_json(&engine, "application/vnd.example.manifest.v9+json", "\n", &future);
    engine.ref_put("future", &future, false).unwrap();
    let garbage = put(&engine, LAYER_TAR, b"garbage").digest;
    let report = gc(&engine);
    assert_eq!(report.blobs_removed, 1, "{report:?}");
    assert!(!engine.has_blob(&garbage).unwrap());
    let mut kept = nested_blobs;
    kept.extend([future.digest.clone(), config.digest, sub.digest, part.digest.clone()]);
    assert!(stored(&engine, &kept), "{report:?}");
    let fsck = engine.fsck().unwrap();
    assert!(fsck.is_sound(), "{:?}", fsck.problems);
    assert!(fsck.notes.iter().any(|n| n.contains(&future.digest.to_string()) && n.contains("no parser")), "{fsck:?}");

    engine.delete_blob(&part.digest).unwrap();
    let problems = problems(&engine);
    assert!(problems.contains(&part.digest.to_string()) && problems.contains("\"future\""), "{problems}");
    let report = gc(&engine);
    assert!(report.missing.iter().any(|line| line.contains(&part.digest.to_string())), "{report:?}");
}

#[test]
fn a_blob_of_an_unknown_media_type_that_is_not_json_is_a_leaf() {
    let (_dir, engine) = store();
    let target = put(&engine, LAYER_TAR, b"named inside the blob");
    // Bytes that merely mention a descriptor are not a document.
    let text = format!(r#"not json: {{"mediaType":"x","digest":"{}","size":21}}"#, target.digest);
    let opaque = put(&engine, "application/x-foo", text.as_bytes());
    engine.ref_put("opaque", &opaque, false).unwrap();
    let report = gc(&engine);
    assert_eq!((report.blobs_removed, report.blobs_kept), (1, 1), "{report:?}");
    assert!(!engine.has_blob(&target.digest).unwrap());
    assert!(engine.fsck().unwrap().is_sound(), "{}", problems(&engine));
}

#[test]
fn a_blob_of_an_unknown_media_type_with_the_wrong_size_stops_gc() {
    let (_dir, engine) = store();
    let child = put(&engine, LAYER_TAR, b"child");
    let parent = put_json(&engine, "application/vnd.example+json", "", &json!({"child": child}));
    let declared =
        json!({"mediaType": "application/vnd.example+json", "digest": parent.digest, "size": parent.size + 1});
    add_index_entry(&engine, Some("odd"), declared);
    age_blobs(engine.root());
    let err = engine.gc(&GcOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidImage, "{err}");
    assert!(err.message().contains(&parent.digest.to_string()) && err.message().contains("\"odd\""), "{err}");
    assert!(engine.has_blob(&child.digest).unwrap());
}

#[test]
fn a_referrer_keeps_its_subject_and_an_index_its_manifests() {
    let (_dir, engine) = store();
    let (subject, subject_blobs) = image(&engine, "subject", "");
    let (member, member_blobs) = image(&engine, "member", " ");
    let referrer = json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
                          "artifactType": "application/vnd.example.sig",
                          "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                                     "digest": put(&engine, "", b"{}").digest, "size": 2},
                          "layers": [], "subject": subject});
    let referrer = put_json(&engine, MEDIA_TYPE_IMAGE_MANIFEST, "", &referrer);
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": [referrer, member]});
    let index = put_json(&engine, "application/vnd.oci.image.index.v1+json", "\n", &index);
    engine.ref_put("all", &index, false).unwrap();
    let report = gc(&engine);
    assert_eq!(report.blobs_removed, 0, "{report:?}");
    assert!(stored(&engine, &subject_blobs) && stored(&engine, &member_blobs), "{report:?}");
}
