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
/// The OCI artifact manifest of image-spec 1.1's release candidates (children in `blobs`), which
/// ORAS wrote for years.
pub const MEDIA_TYPE_ARTIFACT_MANIFEST: &str = "application/vnd.oci.artifact.manifest.v1+json";
/// Docker image manifest schema 1 (children in `fsLayers[].blobSum`, without sizes), unsigned
/// and signed.
pub const MEDIA_TYPE_DOCKER_SCHEMA1_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// The layers of Docker schema 1 and schema 2 images.
pub const MEDIA_TYPE_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

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

impl Platform {
    pub fn new(os: impl Into<String>, architecture: impl Into<String>, variant: Option<String>) -> Platform {
        Platform {
            architecture: architecture.into(),
            os: os.into(),
            os_version: None,
            os_features: Vec::new(),
            variant,
            extra: Extra::new(),
        }
    }
}

/// An OCI image index (also index.json, and the Docker manifest list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "IndexJson", into = "IndexJson")]
pub struct ImageIndex {
    pub schema_version: u32,
    pub media_type: Option<String>,
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    /// Entries of `manifests` that are descriptors but for a digest ocicas cannot parse (an
    /// algorithm it does not know): Go tools open such a layout and fail only on the entry, so
    /// ocicas reads it too. Kept as they are, written after the others, so that an update of
    /// index.json does not drop them; fsck reports them. No blob can be stored under such a
    /// digest, so GC has nothing to keep for them.
    pub unusable_manifests: Vec<Value>,
    /// The document had `"manifests": null` (Go's empty list; umoci writes it), read as empty.
    /// Written back as `[]`.
    pub manifests_null: bool,
    pub subject: Option<Descriptor>,
    pub annotations: BTreeMap<String, String>,
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
            unusable_manifests: Vec::new(),
            manifests_null: false,
            subject: None,
            annotations: BTreeMap::new(),
            extra: Extra::new(),
        }
    }
}

/// The ref name an entry of `ImageIndex::unusable_manifests` carries.
pub fn unusable_entry_ref_name(entry: &Value) -> Option<&str> {
    entry.get("annotations")?.get(ANNOTATION_REF_NAME)?.as_str()
}

/// `ImageIndex` as JSON: `manifests` required but possibly null, each entry a descriptor or,
/// when only its digest keeps it from being one, kept as it is.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexJson {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    // deserialize_with makes the field required: a missing one is an error, a null one is None.
    #[serde(deserialize_with = "Option::deserialize")]
    manifests: Option<Vec<IndexEntry>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Serialize)]
#[serde(untagged)]
enum IndexEntry {
    Descriptor(Box<Descriptor>),
    Unusable(Value),
}

impl<'de> Deserialize<'de> for IndexEntry {
    /// A descriptor; or, when its digest is what keeps it from being one, the entry as it is.
    /// Its keys must be unique, as a descriptor's fields are.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<IndexEntry, D::Error> {
        struct EntryVisitor;

        impl<'de> serde::de::Visitor<'de> for EntryVisitor {
            type Value = Map<String, Value>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a descriptor")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut entry = Map::new();
                while let Some((key, value)) = access.next_entry::<String, Value>()? {
                    if entry.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!("duplicate field `{key}`")));
                    }
                    entry.insert(key, value);
                }
                Ok(entry)
            }
        }

        let entry = Value::Object(deserializer.deserialize_map(EntryVisitor)?);
        let unusable_digest = entry.get("digest").and_then(Value::as_str).is_some_and(|d| d.parse::<Digest>().is_err());
        if !unusable_digest {
            return serde_json::from_value(entry).map(IndexEntry::Descriptor).map_err(serde::de::Error::custom);
        }
        const ANY_DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let mut with_any_digest = entry.clone();
        with_any_digest["digest"] = Value::from(ANY_DIGEST);
        match serde_json::from_value::<Descriptor>(with_any_digest) {
            Ok(_) => Ok(IndexEntry::Unusable(entry)),
            Err(err) => Err(serde::de::Error::custom(err)),
        }
    }
}

impl From<IndexJson> for ImageIndex {
    fn from(json: IndexJson) -> ImageIndex {
        let manifests_null = json.manifests.is_none();
        let mut manifests = Vec::new();
        let mut unusable_manifests = Vec::new();
        for entry in json.manifests.unwrap_or_default() {
            match entry {
                IndexEntry::Descriptor(descriptor) => manifests.push(*descriptor),
                IndexEntry::Unusable(value) => unusable_manifests.push(value),
            }
        }
        ImageIndex {
            schema_version: json.schema_version,
            media_type: json.media_type,
            artifact_type: json.artifact_type,
            manifests,
            unusable_manifests,
            manifests_null,
            subject: json.subject,
            annotations: json.annotations,
            extra: json.extra,
        }
    }
}

impl From<ImageIndex> for IndexJson {
    fn from(index: ImageIndex) -> IndexJson {
        let entries = index.manifests.into_iter().map(|descriptor| IndexEntry::Descriptor(Box::new(descriptor)));
        IndexJson {
            schema_version: index.schema_version,
            media_type: index.media_type,
            artifact_type: index.artifact_type,
            manifests: Some(entries.chain(index.unusable_manifests.into_iter().map(IndexEntry::Unusable)).collect()),
            subject: index.subject,
            annotations: index.annotations,
            extra: index.extra,
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
    #[serde(deserialize_with = "null_as_default")]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// An OCI artifact manifest (image-spec 1.1 release candidates): any blobs, no config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactManifest {
    pub media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub blobs: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A Docker image manifest of schema 1 (signed or not): its layers are named by digest alone,
/// and its config lives inside it (`history[].v1Compatibility`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schema1Manifest {
    pub schema_version: u32,
    #[serde(deserialize_with = "null_as_default")]
    pub fs_layers: Vec<FsLayer>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FsLayer {
    pub blob_sum: Digest,
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

impl ImageConfig {
    /// The CPU variant (`arm64`'s `v8`), when the config names one.
    pub fn variant(&self) -> Option<&str> {
        self.extra.get("variant").and_then(Value::as_str)
    }

    /// The runtime config (`config`): what a container of this image runs and how. An image
    /// without one runs nothing by default, which is the empty `RuntimeConfig`.
    pub fn runtime(&self) -> Result<RuntimeConfig> {
        match self.extra.get("config") {
            None | Some(Value::Null) => Ok(RuntimeConfig::default()),
            Some(value) => RuntimeConfig::deserialize(value)
                .map_err(|e| invalid_image(format!("invalid image config: its \"config\" field: {e}"))),
        }
    }
}

/// The fields of an image config's `config` a runtime needs to start a container. Go writers
/// emit `null` for an empty list or map: read as empty, like an absent field.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    #[serde(default, deserialize_with = "null_as_default")]
    pub env: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub cmd: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub entrypoint: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub working_dir: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub user: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// The keys of `ExposedPorts` ("80/tcp"), in order; their values are always `{}`.
    #[serde(default, deserialize_with = "object_keys")]
    pub exposed_ports: Vec<String>,
    /// The keys of `Volumes` (paths), in order; their values are always `{}`.
    #[serde(default, deserialize_with = "object_keys")]
    pub volumes: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub stop_signal: String,
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

/// Go writers (umoci among them) emit `null` for an empty list or map: read it as empty. The
/// field is still required unless it is also `#[serde(default)]`.
fn null_as_default<'de, D: serde::Deserializer<'de>, T: Deserialize<'de> + Default>(
    deserializer: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The keys of a JSON object whose values carry nothing (Docker's sets, `{"80/tcp": {}}`), in
/// order; `null` reads as empty.
fn object_keys<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let set = Option::<BTreeMap<String, serde::de::IgnoredAny>>::deserialize(deserializer)?;
    Ok(set.unwrap_or_default().into_keys().collect())
}

/// A blob parsed by its media type (umoci's `FromDescriptor`).
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    Index(ImageIndex),
    Manifest(ImageManifest),
    ArtifactManifest(ArtifactManifest),
    Schema1Manifest(Schema1Manifest),
    Config(ImageConfig),
    Descriptor(Descriptor),
}

/// A blob a document references: by a descriptor, or (Docker schema 1) by its digest alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub digest: Digest,
    pub media_type: String,
    /// None when the document does not say.
    pub size: Option<u64>,
}

impl From<&Descriptor> for Child {
    fn from(descriptor: &Descriptor) -> Child {
        Child {
            digest: descriptor.digest.clone(),
            media_type: descriptor.media_type.clone(),
            size: Some(descriptor.size),
        }
    }
}

impl Document {
    /// Every descriptor this document holds (a descriptor document is one itself).
    pub fn descriptors(&self) -> Vec<&Descriptor> {
        match self {
            Document::Index(index) => index.manifests.iter().chain(&index.subject).collect(),
            Document::Manifest(manifest) => {
                std::iter::once(&manifest.config).chain(&manifest.layers).chain(&manifest.subject).collect()
            }
            Document::ArtifactManifest(manifest) => manifest.blobs.iter().chain(&manifest.subject).collect(),
            Document::Descriptor(descriptor) => vec![descriptor],
            Document::Schema1Manifest(_) | Document::Config(_) => Vec::new(),
        }
    }

    /// The blobs this document points at: the edges of the image graph.
    pub fn children(&self) -> Vec<Child> {
        let mut children: Vec<Child> = self.descriptors().into_iter().map(Child::from).collect();
        if let Document::Schema1Manifest(manifest) = self {
            children.extend(manifest.fs_layers.iter().map(|layer| Child {
                digest: layer.blob_sum.clone(),
                media_type: MEDIA_TYPE_DOCKER_LAYER_GZIP.to_owned(),
                size: None,
            }));
        }
        children
    }
}

/// Every object anywhere in a JSON value that has the shape of a descriptor: a string
/// `mediaType`, a `digest` ocicas can parse and an unsigned `size`. How the children of a JSON
/// document of an unknown media type are found.
pub fn descriptor_shaped_objects(value: &Value) -> Vec<Child> {
    let mut found = Vec::new();
    // serde_json nests at most 128 levels deep, so this stack stays small.
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(object) => {
                let media_type = object.get("mediaType").and_then(Value::as_str);
                let digest = object.get("digest").and_then(Value::as_str).and_then(|d| d.parse::<Digest>().ok());
                let size = object.get("size").and_then(Value::as_u64);
                if let (Some(media_type), Some(digest), Some(size)) = (media_type, digest, size) {
                    found.push(Child { digest, media_type: media_type.to_owned(), size: Some(size) });
                }
                pending.extend(object.values());
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    found
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
    is_manifest_media_type(media_type) || is_image_config_media_type(media_type) || media_type == MEDIA_TYPE_DESCRIPTOR
}

/// An image index or manifest (OCI, OCI artifact, Docker schema 1 or 2): a document that
/// selects an image or artifact, as opposed to a config or layer, which is part of one.
pub fn is_manifest_media_type(media_type: &str) -> bool {
    matches!(
        media_type,
        MEDIA_TYPE_IMAGE_INDEX
            | MEDIA_TYPE_DOCKER_MANIFEST_LIST
            | MEDIA_TYPE_IMAGE_MANIFEST
            | MEDIA_TYPE_DOCKER_MANIFEST
            | MEDIA_TYPE_ARTIFACT_MANIFEST
            | MEDIA_TYPE_DOCKER_SCHEMA1_MANIFEST
            | MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED_MANIFEST
    )
}

/// The config of a container image (OCI or Docker), as opposed to an artifact's.
pub fn is_image_config_media_type(media_type: &str) -> bool {
    matches!(media_type, MEDIA_TYPE_IMAGE_CONFIG | MEDIA_TYPE_DOCKER_CONFIG)
}

/// A filesystem layer of an image (OCI, also non-distributable, or Docker), compressed or not.
pub fn is_layer_media_type(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.oci.image.layer.")
        || media_type.starts_with("application/vnd.docker.image.rootfs.")
}

/// Parses `bytes` as the document `media_type` says it is. A document whose own `mediaType`
/// differs, or that carries the fields of another kind (a manifest with `manifests`, an index
/// with `config` or `layers`), is rejected: the same bytes must not mean two things.
pub fn parse_document(media_type: &str, bytes: &[u8]) -> Result<Document> {
    match media_type {
        MEDIA_TYPE_IMAGE_INDEX | MEDIA_TYPE_DOCKER_MANIFEST_LIST => {
            let index: ImageIndex = parse_json(media_type, bytes)?;
            check_header(media_type, (index.schema_version, 2), index.media_type.as_deref())?;
            reject_fields(media_type, &index.extra, &["config", "layers"])?;
            if let Some(entry) = index.unusable_manifests.first() {
                let digest = entry.get("digest").and_then(Value::as_str).unwrap_or_default();
                return Err(invalid_image(format!(
                    "invalid {media_type} document: it lists digest {digest:?}, which is not a digest ocicas can use"
                )));
            }
            Ok(Document::Index(index))
        }
        MEDIA_TYPE_IMAGE_MANIFEST | MEDIA_TYPE_DOCKER_MANIFEST => {
            let manifest: ImageManifest = parse_json(media_type, bytes)?;
            check_header(media_type, (manifest.schema_version, 2), manifest.media_type.as_deref())?;
            reject_fields(media_type, &manifest.extra, &["manifests"])?;
            Ok(Document::Manifest(manifest))
        }
        MEDIA_TYPE_ARTIFACT_MANIFEST => {
            let manifest: ArtifactManifest = parse_json(media_type, bytes)?;
            check_own_media_type(media_type, Some(&manifest.media_type))?;
            reject_fields(media_type, &manifest.extra, &["manifests", "config", "layers", "fsLayers"])?;
            Ok(Document::ArtifactManifest(manifest))
        }
        MEDIA_TYPE_DOCKER_SCHEMA1_MANIFEST | MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED_MANIFEST => {
            let manifest: Schema1Manifest = parse_json(media_type, bytes)?;
            let own_media_type = manifest.extra.get("mediaType").and_then(Value::as_str);
            check_header(media_type, (manifest.schema_version, 1), own_media_type)?;
            reject_fields(media_type, &manifest.extra, &["manifests", "config", "layers", "blobs"])?;
            Ok(Document::Schema1Manifest(manifest))
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
    media_type_of(&serde_json::from_slice(bytes).ok()?)
}

/// `detect_media_type` of a parsed document.
pub fn media_type_of(value: &Value) -> Option<String> {
    let object = value.as_object()?;
    if let Some(media_type) = object.get("mediaType").and_then(Value::as_str) {
        return Some(media_type.to_owned());
    }
    let has = |key: &str| object.contains_key(key);
    let guess = if has("manifests") && !has("config") {
        MEDIA_TYPE_IMAGE_INDEX
    } else if has("config") && has("layers") && !has("manifests") {
        MEDIA_TYPE_IMAGE_MANIFEST
    } else if has("fsLayers") && has("signatures") {
        MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED_MANIFEST
    } else if has("fsLayers") {
        MEDIA_TYPE_DOCKER_SCHEMA1_MANIFEST
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

/// Checks `schemaVersion` (found, expected) and the document's own `mediaType`.
fn check_header(media_type: &str, (schema_version, expected): (u32, u32), own_media_type: Option<&str>) -> Result<()> {
    if schema_version != expected {
        return Err(invalid_image(format!(
            "invalid {media_type} document: schemaVersion is {schema_version}, expected {expected}"
        )));
    }
    check_own_media_type(media_type, own_media_type)
}

fn check_own_media_type(media_type: &str, own_media_type: Option<&str>) -> Result<()> {
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
    fn artifact_and_schema1_manifests_list_their_children() {
        let artifact = format!(
            r#"{{"mediaType":"{MEDIA_TYPE_ARTIFACT_MANIFEST}","blobs":[{{"mediaType":"x","digest":"{DIGEST}","size":0}}]}}"#
        );
        let doc = parse_document(MEDIA_TYPE_ARTIFACT_MANIFEST, artifact.as_bytes()).unwrap();
        assert_eq!(doc.children(), [Child { digest: DIGEST.parse().unwrap(), media_type: "x".into(), size: Some(0) }]);
        let unnamed = artifact.replace(&format!(r#""mediaType":"{MEDIA_TYPE_ARTIFACT_MANIFEST}","#), "");
        assert!(parse_document(MEDIA_TYPE_ARTIFACT_MANIFEST, unnamed.as_bytes()).is_err());

        let schema1 = format!(r#"{{"schemaVersion":1,"fsLayers":[{{"blobSum":"{DIGEST}"}}],"signatures":[]}}"#);
        assert_eq!(detect_media_type(schema1.as_bytes()).unwrap(), MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED_MANIFEST);
        let doc = parse_document(MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED_MANIFEST, schema1.as_bytes()).unwrap();
        let layer =
            Child { digest: DIGEST.parse().unwrap(), media_type: MEDIA_TYPE_DOCKER_LAYER_GZIP.into(), size: None };
        assert_eq!(doc.children(), [layer]);
        let version2 = schema1.replace(r#""schemaVersion":1"#, r#""schemaVersion":2"#);
        assert!(parse_document(MEDIA_TYPE_DOCKER_SCHEMA1_MANIFEST, version2.as_bytes()).is_err());
    }

    #[test]
    fn index_entries_with_digests_ocicas_cannot_parse_are_kept_and_written_back() {
        let sha384 = format!("sha384:{}", "a".repeat(96));
        let json = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"m","digest":"{sha384}","size":1}},{{"mediaType":"m","digest":"{DIGEST}","size":0}}]}}"#
        );
        let index: ImageIndex = serde_json::from_str(&json).unwrap();
        assert_eq!((index.manifests.len(), index.unusable_manifests.len(), index.manifests_null), (1, 1, false));
        let written = canonical_json_string(&index).unwrap();
        assert!(written.contains(&sha384), "{written}");
        assert!(parse_document(MEDIA_TYPE_IMAGE_INDEX, json.as_bytes()).unwrap_err().message().contains(&sha384));
        for (bad, culprit) in [
            (json.replace(r#""size":1"#, r#""size":"1""#), "invalid type"),
            (json.replace(r#""size":1"#, r#""size":1,"size":1"#), "duplicate field `size`"),
            (
                json.replace(
                    &format!(r#""digest":"{DIGEST}""#),
                    &format!(r#""digest":"{DIGEST}","digest":"{DIGEST}""#),
                ),
                "duplicate",
            ),
        ] {
            let err = serde_json::from_str::<ImageIndex>(&bad).unwrap_err();
            assert!(err.to_string().contains(culprit), "{err}");
        }
        let null: ImageIndex = serde_json::from_str(r#"{"schemaVersion":2,"manifests":null}"#).unwrap();
        assert!(null.manifests_null && null.manifests.is_empty());
        assert!(canonical_json_string(&null).unwrap().contains(r#""manifests":[]"#));
        assert!(serde_json::from_str::<ImageIndex>(r#"{"schemaVersion":2}"#).is_err());
    }

    #[test]
    fn descriptor_shaped_objects_are_found_at_any_depth() {
        let value: Value = serde_json::from_str(&format!(
            r#"{{"a":[{{"b":{{"mediaType":"x","digest":"{DIGEST}","size":3}}}}],"mediaType":"y","digest":"sha256:short","size":1,
                "c":{{"mediaType":"z","digest":"{DIGEST}"}}}}"#
        ))
        .unwrap();
        let found = descriptor_shaped_objects(&value);
        assert_eq!(found, [Child { digest: DIGEST.parse().unwrap(), media_type: "x".into(), size: Some(3) }]);
    }

    #[test]
    fn runtime_config_reads_go_nulls_as_empty_and_rejects_wrong_types() {
        let config = |runtime: &str| {
            let json = format!(
                r#"{{"architecture":"arm64","variant":"v8","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}{runtime}}}"#
            );
            let Document::Config(config) = parse_document(MEDIA_TYPE_IMAGE_CONFIG, json.as_bytes()).unwrap() else {
                panic!("not a config")
            };
            config
        };
        assert_eq!(config("").runtime().unwrap(), RuntimeConfig::default());
        assert_eq!(config(r#","config":null"#).runtime().unwrap(), RuntimeConfig::default());
        let nulls = config(r#","config":{"Env":null,"Cmd":null,"WorkingDir":null,"Labels":null,"User":"root"}"#);
        assert_eq!(nulls.runtime().unwrap(), RuntimeConfig { user: "root".into(), ..RuntimeConfig::default() });
        assert_eq!(nulls.variant(), Some("v8"));
        let err = config(r#","config":{"Env":"PATH=/bin"}"#).runtime().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidImage);
    }

    #[test]
    fn detects_media_types_by_shape() {
        assert_eq!(detect_media_type(manifest_json("").as_bytes()).unwrap(), MEDIA_TYPE_IMAGE_MANIFEST);
        assert_eq!(detect_media_type(br#"{"schemaVersion":2,"manifests":[]}"#).unwrap(), MEDIA_TYPE_IMAGE_INDEX);
        assert_eq!(detect_media_type(b"not json"), None);
    }
}
