//! The docker-archive writer (containers/image's tarfile `Writer` and `Destination`): blobs go
//! into the tar stream as they are put, each verified against its digest while it is copied;
//! images (config, layers by DiffID, RepoTags) are recorded; `commit` writes `manifest.json`
//! and `repositories` last (and, for the docker 25+ form, `oci-layout` and `index.json`).
//!
//! An archive without `manifest.json` is not loadable, so a writer that failed or was dropped
//! without commit leaves nothing usable; writing to a file, `export_docker_archive_file` also
//! removes it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom, Write};

use super::reference::Reference;
use super::{ManifestItem, excerpt, for_each_chunk, normalized_image_name};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, ErrorKind, Result, invalid_argument};
use crate::limits::{Limit, Limits};
use crate::spec::{
    Descriptor, ImageIndex, ImageManifest, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_MANIFEST, canonical_json,
};

const MEDIA_TYPE_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// What the top layer's v1 JSON takes from the image config (as docker and containers/image).
const V1_CONFIG_FIELDS: [&str; 7] =
    ["architecture", "config", "container", "container_config", "created", "docker_version", "os"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExportFormat {
    /// As containers/image writes it: `<hex>.json` configs and `<hex>.tar` layers, and for each
    /// layer the `<id>/` directory (`layer.tar` linking to its tar, `VERSION`, the v1 `json`
    /// naming its parent) that loaders before docker 1.10 read through `repositories`.
    #[default]
    Legacy,
    /// Docker 25+: an OCI layout (`blobs/sha256/…`, `index.json`, `oci-layout`) that
    /// `manifest.json` points into.
    Oci,
}

/// What a blob is to the archive, which decides where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveBlob {
    Config,
    /// An uncompressed layer tar, named by its DiffID.
    Layer,
}

pub struct ArchiveWriter<W: Write> {
    tar: tar::Builder<W>,
    format: ExportFormat,
    /// Configs are read whole (for the v1 JSON of the legacy form): at most this many bytes.
    config_limit: Limits,
    /// Blobs written so far: digest → (member name, size).
    written: HashMap<Digest, (String, u64)>,
    /// The configs written, for the v1 JSON of their images' top layers (legacy form).
    configs: HashMap<Digest, Vec<u8>>,
    /// The v1 layer directories written (legacy form).
    v1_layers: HashSet<String>,
    items: Vec<ManifestItem>,
    repositories: BTreeMap<String, BTreeMap<String, String>>,
    /// Docker 25+ form: the manifests index.json lists.
    index: Vec<Descriptor>,
    /// Set by the first failure: the stream is unusable from then on.
    failed: bool,
}

impl<W: Write> ArchiveWriter<W> {
    /// A writer that reads configs up to the default JSON size limit.
    pub fn new(out: W, format: ExportFormat) -> Self {
        ArchiveWriter::with_limits(out, format, &Limits::default())
    }

    /// A writer that reads configs up to `limits.json_size` bytes.
    pub fn with_limits(out: W, format: ExportFormat, limits: &Limits) -> Self {
        ArchiveWriter {
            tar: tar::Builder::new(out),
            format,
            config_limit: *limits,
            written: HashMap::new(),
            configs: HashMap::new(),
            v1_layers: HashSet::new(),
            items: Vec::new(),
            repositories: BTreeMap::new(),
            index: Vec::new(),
            failed: false,
        }
    }

    /// Whether the archive already holds this blob (TryReusingBlob): put it once only.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.written.contains_key(digest)
    }

    /// Writes a blob of `size` bytes read from `data`, checking on the way that they are
    /// exactly `size` bytes hashing to `digest`. A blob already written is skipped without
    /// reading `data`. Any failure leaves the writer failed.
    pub fn put_blob(&mut self, kind: ArchiveBlob, digest: &Digest, size: u64, data: impl Read) -> Result<()> {
        self.check_usable()?;
        if self.has_blob(digest) {
            return Ok(());
        }
        let name = self.member_name(kind, digest);
        self.failed = true;
        if kind == ArchiveBlob::Config && self.format == ExportFormat::Legacy {
            let bytes =
                self.config_limit.read_capped(data.take(size.saturating_add(1)), Limit::JsonSize, "a config")?;
            self.append_checked(&name, digest, size, &bytes[..])?;
            self.configs.insert(digest.clone(), bytes);
        } else {
            self.append_checked(&name, digest, size, data)?;
        }
        self.written.insert(digest.clone(), (name, size));
        self.failed = false;
        Ok(())
    }

    fn member_name(&self, kind: ArchiveBlob, digest: &Digest) -> String {
        match (self.format, kind) {
            (ExportFormat::Oci, _) => format!("blobs/{}/{}", digest.algorithm().name(), digest.hex()),
            (ExportFormat::Legacy, ArchiveBlob::Config) => format!("{}.json", digest.hex()),
            (ExportFormat::Legacy, ArchiveBlob::Layer) => format!("{}.tar", digest.hex()),
        }
    }

    /// Appends member `name`: the `size` bytes of `data`, which must hash to `digest`.
    fn append_checked(&mut self, name: &str, digest: &Digest, size: u64, data: impl Read) -> Result<()> {
        let mut checked =
            CheckedRead { inner: data.take(size), hasher: Hasher::new(digest.algorithm()), count: 0, failed: None };
        let appended = append(&mut self.tar, name, &mut checked, size);
        let read_error = |err| Error::from_read(err, &format!("cannot read blob {digest} for the docker archive"));
        if let Some(err) = checked.failed {
            return Err(read_error(err));
        }
        appended?;
        let mut extra = [0u8; 1];
        let more = checked.inner.into_inner().read(&mut extra).map_err(read_error)?;
        if checked.count != size || more > 0 {
            return Err(Error::new(
                ErrorKind::SizeMismatch,
                format!(
                    "blob {digest}: expected {size} bytes, got {}",
                    if more > 0 { "more".to_owned() } else { checked.count.to_string() }
                ),
            ));
        }
        let actual = checked.hasher.finish();
        if actual != *digest {
            return Err(Error::new(ErrorKind::DigestMismatch, format!("blob {digest}: its bytes hash to {actual}")));
        }
        Ok(())
    }

    /// Records an image whose config and layers (by DiffID) were put, under `repo_tags` (each
    /// `name:tag`; an image added again under other tags gets them too, as in containers/image).
    pub fn add_image(&mut self, config: &Digest, diff_ids: &[Digest], repo_tags: &[String]) -> Result<()> {
        self.check_usable()?;
        for tag in repo_tags {
            let reference = Reference::parse_normalized(tag)?;
            if reference.tag.is_none() || reference.digest.is_some() {
                return Err(invalid_argument(format!("RepoTag {} is not NAME:TAG", excerpt(tag))));
            }
        }
        let member = |digest: &Digest| {
            self.written.get(digest).cloned().ok_or_else(|| invalid_argument(format!("blob {digest} was not put")))
        };
        let (config_name, config_size) = member(config)?;
        let layers = diff_ids
            .iter()
            .map(|d| member(d).map(|(name, size)| (name, d.clone(), size)))
            .collect::<Result<Vec<_>>>()?;
        if self.format == ExportFormat::Oci {
            self.add_oci_manifest(config, config_size, &layers, repo_tags)?;
        }
        self.failed = true;
        let top = match self.format {
            ExportFormat::Legacy => self.add_v1_layers(config, diff_ids)?,
            ExportFormat::Oci => diff_ids.last().map(|d| d.hex().to_owned()),
        };
        if let Some(top) = top {
            for tag in repo_tags {
                if let Some((repo, tag)) = tag.rsplit_once(':') {
                    self.repositories.entry(repo.to_owned()).or_default().insert(tag.to_owned(), top.clone());
                }
            }
        }
        let layer_names: Vec<String> = layers.into_iter().map(|(name, _, _)| name).collect();
        match self.items.iter_mut().find(|item| item.config == config_name) {
            Some(item) if item.layers != layer_names => {
                return Err(invalid_argument(format!("config {config} was added with other layers")));
            }
            Some(item) => {
                for tag in repo_tags {
                    if !item.repo_tags.contains(tag) {
                        item.repo_tags.push(tag.clone());
                    }
                }
            }
            None => self.items.push(ManifestItem {
                config: config_name,
                repo_tags: repo_tags.to_vec(),
                layers: layer_names,
                parent: String::new(),
                layer_sources: Default::default(),
            }),
        }
        self.failed = false;
        Ok(())
    }

    /// The legacy form's `<id>/` directory of each layer (written once per id): `layer.tar`
    /// linking to the layer's tar, `VERSION`, and the v1 `json` naming its parent, the top
    /// one with the image's config fields. Ids are digests of that JSON with the layer's chain
    /// ID, so a DiffID that appears twice cannot make a parent loop. Returns the top layer's id.
    fn add_v1_layers(&mut self, config: &Digest, diff_ids: &[Digest]) -> Result<Option<String>> {
        let config_json: serde_json::Map<String, serde_json::Value> = self
            .configs
            .get(config)
            .map(|bytes| serde_json::from_slice(bytes))
            .transpose()
            .map_err(|e| invalid_argument(format!("config {config} is not a JSON object: {e}")))?
            .ok_or_else(|| invalid_argument(format!("config {config} was not put")))?;
        let mut parent: Option<String> = None;
        let mut chain_id: Option<Digest> = None;
        for (i, diff_id) in diff_ids.iter().enumerate() {
            let mut v1 = serde_json::Map::new();
            if let Some(parent) = &parent {
                v1.insert("parent".to_owned(), parent.clone().into());
            }
            if i + 1 == diff_ids.len() {
                for field in V1_CONFIG_FIELDS {
                    v1.insert(field.to_owned(), config_json.get(field).cloned().unwrap_or_default());
                }
            }
            let chain = match &chain_id {
                None => diff_id.clone(),
                Some(chain) => Digest::of_bytes(Algorithm::Sha256, format!("{chain} {diff_id}").as_bytes()),
            };
            v1.insert("layer_id".to_owned(), chain.to_string().into());
            let id = Digest::of_bytes(Algorithm::Sha256, &canonical_json(&v1)?).hex().to_owned();
            v1.remove("layer_id");
            v1.insert("id".to_owned(), id.clone().into());
            if self.v1_layers.insert(id.clone()) {
                append_symlink(&mut self.tar, &format!("{id}/layer.tar"), &format!("../{}.tar", diff_id.hex()))?;
                append(&mut self.tar, &format!("{id}/VERSION"), &b"1.0"[..], 3)?;
                let json = canonical_json(&v1)?;
                append(&mut self.tar, &format!("{id}/json"), &json[..], json.len() as u64)?;
            }
            chain_id = Some(chain);
            parent = Some(id);
        }
        Ok(parent)
    }

    /// Docker 25+: the image's OCI manifest as a blob, listed in index.json once per tag.
    fn add_oci_manifest(
        &mut self,
        config: &Digest,
        config_size: u64,
        layers: &[(String, Digest, u64)],
        repo_tags: &[String],
    ) -> Result<()> {
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_owned()),
            artifact_type: None,
            config: Descriptor::new(MEDIA_TYPE_IMAGE_CONFIG, config.clone(), config_size),
            layers: layers.iter().map(|(_, d, size)| Descriptor::new(MEDIA_TYPE_OCI_LAYER, d.clone(), *size)).collect(),
            subject: None,
            annotations: Default::default(),
            extra: Default::default(),
        };
        let bytes = canonical_json(&manifest)?;
        let digest = Digest::of_bytes(Algorithm::Sha256, &bytes);
        let size = bytes.len() as u64;
        // Manifests are blobs of the layout, not of manifest.json: the kind only names the place.
        self.put_blob(ArchiveBlob::Config, &digest, size, &bytes[..])?;
        let descriptor = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, digest, size);
        if repo_tags.is_empty() {
            self.index.push(descriptor.clone());
        }
        for tag in repo_tags {
            let mut tagged = descriptor.clone();
            let name = normalized_image_name(tag);
            let short = name.rsplit_once(':').map_or("latest", |(_, t)| t).to_owned();
            tagged.annotations.insert(ANNOTATION_IMAGE_NAME.to_owned(), name);
            tagged.annotations.insert(ANNOTATION_REF_NAME.to_owned(), short);
            self.index.push(tagged);
        }
        Ok(())
    }

    /// Writes `manifest.json` and `repositories` (and the layout files of the docker 25+
    /// form) and ends the tar stream; returns the output.
    pub fn commit(mut self) -> Result<W> {
        self.check_usable()?;
        if self.items.is_empty() {
            return Err(invalid_argument("an archive needs at least one image"));
        }
        if self.format == ExportFormat::Oci {
            let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
            append(&mut self.tar, "oci-layout", &layout[..], layout.len() as u64)?;
            let index = ImageIndex { manifests: std::mem::take(&mut self.index), ..ImageIndex::empty() };
            let bytes = canonical_json(&index)?;
            append(&mut self.tar, "index.json", &bytes[..], bytes.len() as u64)?;
        }
        let manifest = serde_json::to_vec(&self.items).map_err(|e| invalid_argument(e.to_string()))?;
        append(&mut self.tar, "manifest.json", &manifest[..], manifest.len() as u64)?;
        let repositories = serde_json::to_vec(&self.repositories).map_err(|e| invalid_argument(e.to_string()))?;
        append(&mut self.tar, "repositories", &repositories[..], repositories.len() as u64)?;
        let mut out = self.tar.into_inner().map_err(write_error)?;
        out.flush().map_err(write_error)?;
        Ok(out)
    }

    fn check_usable(&self) -> Result<()> {
        match self.failed {
            true => Err(Error::new(ErrorKind::InvalidArgument, "the archive writer failed earlier; start again")),
            false => Ok(()),
        }
    }
}

impl<W: Write + Seek> ArchiveWriter<W> {
    /// `put_blob` of a layer whose size is known only once it is read (a compressed layer's
    /// uncompressed bytes), into an output that seeks: its header is written when its bytes
    /// are, in one pass over them. The bytes must hash to `digest`.
    pub fn put_layer_unsized(&mut self, digest: &Digest, data: impl Read) -> Result<()> {
        self.check_usable()?;
        if self.has_blob(digest) {
            return Ok(());
        }
        let name = self.member_name(ArchiveBlob::Layer, digest);
        self.failed = true;
        let mut hasher = Hasher::new(digest.algorithm());
        let size = write_sized_after(self.tar.get_mut(), &name, data, &mut hasher)?;
        let actual = hasher.finish();
        if actual != *digest {
            return Err(Error::new(ErrorKind::DigestMismatch, format!("blob {digest}: its bytes hash to {actual}")));
        }
        self.written.insert(digest.clone(), (name, size));
        self.failed = false;
        Ok(())
    }
}

/// Writes member `name` with the bytes of `data` (hashed on the way), its header first as a
/// placeholder and then, once the size is known, for real. Returns the size.
fn write_sized_after<W: Write + Seek>(out: &mut W, name: &str, data: impl Read, hasher: &mut Hasher) -> Result<u64> {
    let start = out.stream_position().map_err(write_error)?;
    out.write_all(&[0u8; 512]).map_err(write_error)?;
    let read_error = |err| Error::from_read(err, &format!("cannot read {name} for the docker archive"));
    let size = for_each_chunk(data, read_error, |chunk| {
        hasher.update(chunk);
        out.write_all(chunk).map_err(write_error)
    })?;
    out.write_all(&[0u8; 512][..((512 - size % 512) % 512) as usize]).map_err(write_error)?;
    let end = out.stream_position().map_err(write_error)?;
    let mut header = member_header(size, tar::EntryType::Regular);
    header.set_path(name).map_err(|e| invalid_argument(format!("member name {name}: {e}")))?;
    header.set_cksum();
    out.seek(SeekFrom::Start(start)).map_err(write_error)?;
    out.write_all(header.as_bytes()).map_err(write_error)?;
    out.seek(SeekFrom::Start(end)).map_err(write_error)?;
    Ok(size)
}

fn member_header(size: u64, kind: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(if kind == tar::EntryType::Symlink { 0o777 } else { 0o644 });
    header.set_mtime(0);
    header.set_entry_type(kind);
    header
}

fn append<W: Write>(tar: &mut tar::Builder<W>, path: &str, data: impl Read, size: u64) -> Result<()> {
    tar.append_data(&mut member_header(size, tar::EntryType::Regular), path, data).map_err(write_error)
}

fn append_symlink<W: Write>(tar: &mut tar::Builder<W>, path: &str, target: &str) -> Result<()> {
    tar.append_link(&mut member_header(0, tar::EntryType::Symlink), path, target).map_err(write_error)
}

/// Counts and hashes what passes through, and remembers a failure of its source (so that it
/// is not taken for a failure to write).
struct CheckedRead<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
    failed: Option<io::Error>,
}

impl<R: Read> Read for CheckedRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).map_err(|err| {
            let copy = io::Error::new(err.kind(), err.to_string());
            self.failed.get_or_insert(err);
            copy
        })?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

fn write_error(err: io::Error) -> Error {
    Error::new(ErrorKind::Io, format!("cannot write the docker archive: {err}"))
}
