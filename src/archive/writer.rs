//! The docker-archive writer (containers/image's tarfile `Writer` and `Destination`): blobs go
//! into the tar stream as they are put, each verified against its digest while it is copied;
//! images (config, layers by DiffID, RepoTags) are recorded; `commit` writes `manifest.json`
//! and `repositories` last (and, for the docker 25+ form, `oci-layout` and `index.json`).
//!
//! An archive without `manifest.json` is not loadable, so a writer that failed or was dropped
//! without commit leaves nothing usable; writing to a file, `write_docker_archive_file` also
//! removes it.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};

use super::{ManifestItem, normalized_image_name};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, ErrorKind, Result, invalid_argument};
use crate::spec::{
    Descriptor, ImageIndex, ImageManifest, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_MANIFEST, canonical_json,
};

const MEDIA_TYPE_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExportFormat {
    /// `<id>.json` configs and `<id>/layer.tar` directories, as docker save wrote before 25.
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
    /// Blobs written so far: digest → (member name, size).
    written: HashMap<Digest, (String, u64)>,
    items: Vec<ManifestItem>,
    repositories: BTreeMap<String, BTreeMap<String, String>>,
    /// Docker 25+ form: the manifests index.json lists.
    index: Vec<Descriptor>,
    /// Set by the first failure: the stream is unusable from then on.
    failed: bool,
}

impl<W: Write> ArchiveWriter<W> {
    pub fn new(out: W, format: ExportFormat) -> Self {
        ArchiveWriter {
            tar: tar::Builder::new(out),
            format,
            written: HashMap::new(),
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
        let name = match (self.format, kind) {
            (ExportFormat::Oci, _) => format!("blobs/{}/{}", digest.algorithm().name(), digest.hex()),
            (ExportFormat::Legacy, ArchiveBlob::Config) => format!("{}.json", digest.hex()),
            (ExportFormat::Legacy, ArchiveBlob::Layer) => format!("{}/layer.tar", digest.hex()),
        };
        self.failed = true;
        let mut checked =
            CheckedRead { inner: data.take(size), hasher: Hasher::new(digest.algorithm()), count: 0, failed: None };
        let appended = append(&mut self.tar, &name, &mut checked, size);
        if let Some(err) = checked.failed {
            return Err(Error::new(ErrorKind::Io, format!("cannot read blob {digest} for the docker archive: {err}")));
        }
        appended?;
        let mut extra = [0u8; 1];
        let more =
            checked.inner.into_inner().read(&mut extra).map_err(|e| {
                Error::new(ErrorKind::Io, format!("cannot read blob {digest} for the docker archive: {e}"))
            })?;
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
        if self.format == ExportFormat::Legacy && kind == ArchiveBlob::Layer {
            append(&mut self.tar, &format!("{}/VERSION", digest.hex()), &b"1.0"[..], 3)?;
        }
        self.written.insert(digest.clone(), (name, size));
        self.failed = false;
        Ok(())
    }

    /// Records an image whose config and layers (by DiffID) were put, under `repo_tags`.
    pub fn add_image(&mut self, config: &Digest, diff_ids: &[Digest], repo_tags: &[String]) -> Result<()> {
        self.check_usable()?;
        let member = |digest: &Digest| {
            self.written.get(digest).cloned().ok_or_else(|| invalid_argument(format!("blob {digest} was not put")))
        };
        let (config_name, config_size) = member(config)?;
        let layers = diff_ids
            .iter()
            .map(|d| member(d).map(|(name, size)| (name, d.clone(), size)))
            .collect::<Result<Vec<_>>>()?;
        if let Some(top) = diff_ids.last() {
            for tag in repo_tags {
                if let Some((repo, tag)) = tag.rsplit_once(':').filter(|(repo, _)| !repo.is_empty()) {
                    self.repositories.entry(repo.to_owned()).or_default().insert(tag.to_owned(), top.hex().to_owned());
                }
            }
        }
        if self.format == ExportFormat::Oci {
            self.add_oci_manifest(config, config_size, &layers, repo_tags)?;
        }
        self.items.push(ManifestItem {
            config: config_name,
            repo_tags: repo_tags.to_vec(),
            layers: layers.into_iter().map(|(name, _, _)| name).collect(),
            parent: String::new(),
            layer_sources: Default::default(),
        });
        Ok(())
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

fn append<W: Write>(tar: &mut tar::Builder<W>, path: &str, data: impl Read, size: u64) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, path, data).map_err(write_error)
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
