#![no_main]
//! Every document media type: bytes that parse serialize to canonical JSON that parses back to
//! an equal value, and serializes to the same bytes again (so a digest of canonical JSON is
//! stable). A document that names its own media type is detected as that type. Any JSON gives
//! the descriptor-shaped objects GC follows in documents of unknown types, each one a
//! descriptor (digest, media type and size) that some object of the input holds.

use libfuzzer_sys::fuzz_target;
use ocicas::spec::{
    Document, MEDIA_TYPE_ARTIFACT_MANIFEST, MEDIA_TYPE_DESCRIPTOR, MEDIA_TYPE_DOCKER_CONFIG,
    MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_DOCKER_SCHEMA1_MANIFEST,
    MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED_MANIFEST, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST,
    canonical_json, descriptor_shaped_objects, detect_media_type, parse_document,
};
use serde_json::Value;

const MEDIA_TYPES: [&str; 10] = [
    MEDIA_TYPE_IMAGE_INDEX,
    MEDIA_TYPE_IMAGE_MANIFEST,
    MEDIA_TYPE_IMAGE_CONFIG,
    MEDIA_TYPE_DESCRIPTOR,
    MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_DOCKER_MANIFEST_LIST,
    MEDIA_TYPE_DOCKER_CONFIG,
    MEDIA_TYPE_ARTIFACT_MANIFEST,
    MEDIA_TYPE_DOCKER_SCHEMA1_MANIFEST,
    MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED_MANIFEST,
];

fuzz_target!(|data: &[u8]| {
    let _ = detect_media_type(data);
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        for child in descriptor_shaped_objects(&value) {
            assert!(holds(&value, &child), "{child:?} is not an object of the input");
        }
    }
    for media_type in MEDIA_TYPES {
        let Ok(document) = parse_document(media_type, data) else { continue };
        let canonical = canonical_bytes(&document);
        let reparsed = parse_document(media_type, &canonical)
            .unwrap_or_else(|err| panic!("canonical {media_type} does not parse: {err}"));
        assert_eq!(reparsed, document, "{media_type}: parse → serialize → parse changed the document");
        assert_eq!(canonical_bytes(&reparsed), canonical, "{media_type}: canonical JSON is not a fixed point");
        let own_media_type = match &document {
            Document::Index(index) => index.media_type.as_deref(),
            Document::Manifest(manifest) => manifest.media_type.as_deref(),
            Document::ArtifactManifest(manifest) => Some(manifest.media_type.as_str()),
            Document::Schema1Manifest(_) | Document::Config(_) | Document::Descriptor(_) => None,
        };
        if let Some(own) = own_media_type {
            assert_eq!(detect_media_type(&canonical).as_deref(), Some(own));
        }
    }
});

fn canonical_bytes(document: &Document) -> Vec<u8> {
    match document {
        Document::Index(index) => canonical_json(index),
        Document::Manifest(manifest) => canonical_json(manifest),
        Document::ArtifactManifest(manifest) => canonical_json(manifest),
        Document::Schema1Manifest(manifest) => canonical_json(manifest),
        Document::Config(config) => canonical_json(config),
        Document::Descriptor(descriptor) => canonical_json(descriptor),
    }
    .expect("a parsed document serializes")
}

/// Whether some object in `value` has the digest, media type and size of `child`.
fn holds(value: &Value, child: &ocicas::spec::Child) -> bool {
    match value {
        Value::Object(object) => {
            let digest = child.digest.to_string();
            let matches = object.get("digest").and_then(Value::as_str) == Some(digest.as_str())
                && object.get("mediaType").and_then(Value::as_str) == Some(child.media_type.as_str())
                && object.get("size").and_then(Value::as_u64) == child.size;
            matches || object.values().any(|v| holds(v, child))
        }
        Value::Array(items) => items.iter().any(|v| holds(v, child)),
        _ => false,
    }
}
