//! Typed OCI and Docker documents, and parsing of a blob by its media type.
//!
//! Our own serde structs rather than the `oci-spec` crate: every struct here keeps unknown
//! fields (`extra`), which index.json updates must preserve and which lets us detect a document
//! whose fields contradict its media type (CVE-2021-41190); Docker schema2 types share the
//! structs; and the crate stays free of oci-spec's builder/getter dependency tree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result, invalid_image};

pub const MEDIA_TYPE_DESCRIPTOR: &str = "application/vnd.oci.descriptor.v1+json";
pub const MEDIA_TYPE_IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The annotation that names a reference in index.json.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

type Extra = Map<String, Value>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Descriptor {
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
            extra: Extra::new(),
        }
    }

    pub fn ref_name(&self) -> Option<&str> {
        self.annotations.get(ANNOTATION_REF_NAME).map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// An OCI image index (also index.json, and the Docker manifest list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(deserialize_with = "null_as_empty")]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ImageIndex {
    /// The index.json of a new layout.
    pub fn empty() -> ImageIndex {
        ImageIndex {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_INDEX.to_owned()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: BTreeMap::new(),
            extra: Extra::new(),
        }
    }
}

/// An OCI image manifest (also the Docker schema2 manifest, which has the same shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(deserialize_with = "null_as_empty")]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// An OCI image config (also the Docker image config). Fields we do not interpret stay in
/// `extra`, so parse → serialize keeps them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub architecture: String,
    pub os: String,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Go writers (umoci among them) emit `null` for an empty list: read it as empty. The field is
/// still required.
fn null_as_empty<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// A blob parsed by its media type (umoci's `FromDescriptor`).
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    Index(ImageIndex),
    Manifest(ImageManifest),
    Config(ImageConfig),
    Descriptor(Descriptor),
}

impl Document {
    /// The descriptors this document points at: the edges of the image graph.
    pub fn children(&self) -> Vec<&Descriptor> {
        match self {
            Document::Index(index) => index.manifests.iter().chain(&index.subject).collect(),
            Document::Manifest(manifest) => {
                std::iter::once(&manifest.config).chain(&manifest.layers).chain(&manifest.subject).collect()
            }
            Document::Config(_) | Document::Descriptor(_) => Vec::new(),
        }
    }
}

/// This machine's platform in OCI terms (Go's GOOS/GOARCH names).
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    };
    (std::env::consts::OS, arch)
}

/// Whether a media type names a document `parse_document` understands.
pub fn is_document_media_type(media_type: &str) -> bool {
    is_manifest_media_type(media_type)
        || matches!(media_type, MEDIA_TYPE_IMAGE_CONFIG | MEDIA_TYPE_DOCKER_CONFIG | MEDIA_TYPE_DESCRIPTOR)
}

/// An image index or manifest (OCI or Docker): a document that selects an image, as opposed to
/// a config or layer, which is part of one.
pub fn is_manifest_media_type(media_type: &str) -> bool {
    matches!(
        media_type,
        MEDIA_TYPE_IMAGE_INDEX
            | MEDIA_TYPE_DOCKER_MANIFEST_LIST
            | MEDIA_TYPE_IMAGE_MANIFEST
            | MEDIA_TYPE_DOCKER_MANIFEST
    )
}

/// Parses `bytes` as the document `media_type` says it is. A document whose own `mediaType`
/// differs, or that carries the fields of another kind (a manifest with `manifests`, an index
/// with `config` or `layers`), is rejected: the same bytes must not mean two things.
pub fn parse_document(media_type: &str, bytes: &[u8]) -> Result<Document> {
    match media_type {
        MEDIA_TYPE_IMAGE_INDEX | MEDIA_TYPE_DOCKER_MANIFEST_LIST => {
            let index: ImageIndex = parse_json(media_type, bytes)?;
            check_header(media_type, index.schema_version, index.media_type.as_deref())?;
            reject_fields(media_type, &index.extra, &["config", "layers"])?;
            Ok(Document::Index(index))
        }
        MEDIA_TYPE_IMAGE_MANIFEST | MEDIA_TYPE_DOCKER_MANIFEST => {
            let manifest: ImageManifest = parse_json(media_type, bytes)?;
            check_header(media_type, manifest.schema_version, manifest.media_type.as_deref())?;
            reject_fields(media_type, &manifest.extra, &["manifests"])?;
            Ok(Document::Manifest(manifest))
        }
        MEDIA_TYPE_IMAGE_CONFIG | MEDIA_TYPE_DOCKER_CONFIG => {
            let config: ImageConfig = parse_json(media_type, bytes)?;
            reject_fields(media_type, &config.extra, &["manifests", "layers", "schemaVersion"])?;
            Ok(Document::Config(config))
        }
        MEDIA_TYPE_DESCRIPTOR => Ok(Document::Descriptor(parse_json(media_type, bytes)?)),
        other => Err(Error::new(ErrorKind::UnsupportedMediaType, format!("media type {other:?} has no typed parser"))),
    }
}

/// Guesses the media type of a JSON document from its content: its own `mediaType` field, else
/// its shape. Used where a caller names a blob without saying what it is.
pub fn detect_media_type(bytes: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let object = value.as_object()?;
    if let Some(media_type) = object.get("mediaType").and_then(Value::as_str) {
        return Some(media_type.to_owned());
    }
    let has = |key: &str| object.contains_key(key);
    let guess = if has("manifests") && !has("config") {
        MEDIA_TYPE_IMAGE_INDEX
    } else if has("config") && has("layers") && !has("manifests") {
        MEDIA_TYPE_IMAGE_MANIFEST
    } else if has("rootfs") && has("architecture") {
        MEDIA_TYPE_IMAGE_CONFIG
    } else {
        return None;
    };
    Some(guess.to_owned())
}

/// Serializes a value as canonical JSON: keys sorted, no insignificant whitespace. Equal values
/// therefore always give equal bytes and equal digests.
pub fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    // Going through `Value` sorts every object's keys (serde_json's map is a BTreeMap), struct
    // fields and flattened extras alike.
    let value = serde_json::to_value(value)
        .map_err(|e| crate::error::invalid_argument(format!("cannot serialize JSON: {e}")))?;
    serde_json::to_vec(&value).map_err(|e| crate::error::invalid_argument(format!("cannot serialize JSON: {e}")))
}

/// `canonical_json` as a string.
pub fn canonical_json_string<T: Serialize>(value: &T) -> Result<String> {
    // serde_json writes only valid UTF-8.
    Ok(String::from_utf8_lossy(&canonical_json(value)?).into_owned())
}

fn parse_json<T: DeserializeOwned>(media_type: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| invalid_image(format!("invalid {media_type} document: {e}")))
}

fn check_header(media_type: &str, schema_version: u32, own_media_type: Option<&str>) -> Result<()> {
    if schema_version != 2 {
        return Err(invalid_image(format!(
            "invalid {media_type} document: schemaVersion is {schema_version}, expected 2"
        )));
    }
    match own_media_type {
        Some(own) if own != media_type => Err(invalid_image(format!(
            "document contradicts its descriptor: its mediaType is {own:?} but it was described as {media_type:?}"
        ))),
        _ => Ok(()),
    }
}

fn reject_fields(media_type: &str, extra: &Extra, forbidden: &[&str]) -> Result<()> {
    match forbidden.iter().find(|key| extra.contains_key(**key)) {
        Some(key) => {
            Err(invalid_image(format!("document contradicts its media type {media_type:?}: it has a {key:?} field")))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn manifest_json(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{MEDIA_TYPE_IMAGE_CONFIG}","digest":"{DIGEST}","size":0}},"layers":[]{extra}}}"#
        )
    }

    #[test]
    fn parses_a_manifest_and_lists_its_children() {
        let doc = parse_document(MEDIA_TYPE_IMAGE_MANIFEST, manifest_json("").as_bytes()).unwrap();
        assert_eq!(doc.children().len(), 1);
    }

    #[test]
    fn manifest_with_manifests_field_is_rejected() {
        let json = manifest_json(r#","manifests":[]"#);
        let err = parse_document(MEDIA_TYPE_IMAGE_MANIFEST, json.as_bytes()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidImage);
        assert!(err.message().contains("manifests"), "{err}");
    }

    #[test]
    fn manifest_described_as_an_index_is_rejected() {
        let json = manifest_json(&format!(r#","mediaType":"{MEDIA_TYPE_IMAGE_MANIFEST}""#));
        let err = parse_document(MEDIA_TYPE_IMAGE_INDEX, json.as_bytes()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidImage);
    }

    #[test]
    fn own_media_type_must_match_the_descriptor() {
        let json = manifest_json(&format!(r#","mediaType":"{MEDIA_TYPE_DOCKER_MANIFEST}""#));
        let err = parse_document(MEDIA_TYPE_IMAGE_MANIFEST, json.as_bytes()).unwrap_err();
        assert!(err.message().contains("contradicts"), "{err}");
        assert!(parse_document(MEDIA_TYPE_DOCKER_MANIFEST, json.as_bytes()).is_ok());
    }

    #[test]
    fn negative_sizes_and_duplicate_fields_are_rejected() {
        let negative = manifest_json("").replace("\"size\":0", "\"size\":-1");
        assert!(parse_document(MEDIA_TYPE_IMAGE_MANIFEST, negative.as_bytes()).is_err());
        let duplicate = manifest_json(r#","layers":[]"#);
        assert!(parse_document(MEDIA_TYPE_IMAGE_MANIFEST, duplicate.as_bytes()).is_err());
    }

    #[test]
    fn unknown_media_type_is_unsupported() {
        let err = parse_document("text/plain", b"{}").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnsupportedMediaType);
    }

    #[test]
    fn canonical_json_sorts_keys_and_keeps_unknown_fields() {
        let index: ImageIndex =
            serde_json::from_str(r#"{"zeta":1,"schemaVersion":2,"manifests":[],"alpha":{"b":1,"a":2}}"#).unwrap();
        let bytes = canonical_json(&index).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"alpha":{"a":2,"b":1},"manifests":[],"schemaVersion":2,"zeta":1}"#
        );
    }

    #[test]
    fn detects_media_types_by_shape() {
        assert_eq!(detect_media_type(manifest_json("").as_bytes()).unwrap(), MEDIA_TYPE_IMAGE_MANIFEST);
        assert_eq!(detect_media_type(br#"{"schemaVersion":2,"manifests":[]}"#).unwrap(), MEDIA_TYPE_IMAGE_INDEX);
        assert_eq!(detect_media_type(b"not json"), None);
    }
}
