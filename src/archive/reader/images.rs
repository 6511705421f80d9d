//! The image view of an open archive: the images `manifest.json` lists, each with its config
//! read and checked, their blobs (configs by digest, layers by DiffID, uncompressed) served
//! verified, and the manifests synthesized for them.

use std::io::{self, Read, Write};
use std::sync::Arc;

use super::{ArchiveReader, lock};
use crate::archive::{ImageChoice, LAYER_TAR, ManifestItem, choose_items, excerpt, for_each_chunk, invalid_archive};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, ErrorKind, Result};
use crate::limits::Limit;
use crate::spec::{
    Descriptor, Document, ImageManifest, MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_IMAGE_CONFIG,
    MEDIA_TYPE_IMAGE_MANIFEST, canonical_json, parse_document,
};

const MEDIA_TYPE_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// The manifest a reader synthesizes for an archive image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    DockerSchema2,
    Oci,
}

/// One image of an archive, resolved: its config read and checked against its layers.
#[derive(Debug, Clone)]
pub struct ArchiveImage {
    /// Its entry in manifest.json.
    pub item: ManifestItem,
    /// The config as stored in the archive (Docker config media type).
    pub config: Descriptor,
    /// One per layer, in order: the sha256 of its uncompressed tar.
    pub diff_ids: Vec<Digest>,
    pub(in crate::archive) config_member: String,
    pub(in crate::archive) layer_members: Vec<String>,
}

/// What an image needs of its config.
pub(super) struct ParsedConfig {
    descriptor: Descriptor,
    diff_ids: Vec<Digest>,
}

impl ArchiveReader {
    /// The images `manifest.json` lists.
    pub fn items(&self) -> &[ManifestItem] {
        &self.items
    }

    /// The chosen images, each with its config read and its layer count checked.
    pub fn choose(&self, choice: &ImageChoice) -> Result<Vec<ArchiveImage>> {
        choose_items(&self.items, choice)?.into_iter().map(|item| self.image(item)).collect()
    }

    fn image(&self, item: ManifestItem) -> Result<ArchiveImage> {
        let config_member = self.resolve_name(&item.config)?;
        let config = self.config(&config_member, &item.config)?;
        if config.diff_ids.len() != item.layers.len() {
            return Err(invalid_archive(format!(
                "image {} lists {} layers but its config has {} diff_ids",
                excerpt(&item.repo_tags.join(",")),
                item.layers.len(),
                config.diff_ids.len()
            )));
        }
        let layer_members = item.layers.iter().map(|l| self.resolve_name(l)).collect::<Result<Vec<_>>>()?;
        Ok(ArchiveImage {
            config: config.descriptor.clone(),
            diff_ids: config.diff_ids.clone(),
            item,
            config_member,
            layer_members,
        })
    }

    /// The config in member `member` (named `path` by manifest.json), read and parsed once.
    fn config(&self, member: &str, path: &str) -> Result<Arc<ParsedConfig>> {
        if let Some(config) = lock(&self.configs).get(member) {
            return Ok(config.clone());
        }
        let what = format!("config {}", excerpt(path));
        let limits = self.staging.engine().limits();
        let bytes = limits.read_capped(self.open_member(member)?, Limit::JsonSize, &what)?;
        self.memory.hold(bytes.len() as u64, &what)?;
        let Document::Config(parsed) = parse_document(MEDIA_TYPE_DOCKER_CONFIG, &bytes)
            .map_err(|e| invalid_archive(format!("{what}: {}", excerpt(e.message()))))?
        else {
            return Err(invalid_archive(format!("{what} is not an image config")));
        };
        let digest = Digest::of_bytes(Algorithm::Sha256, &bytes);
        let config = Arc::new(ParsedConfig {
            descriptor: Descriptor::new(MEDIA_TYPE_DOCKER_CONFIG, digest, bytes.len() as u64),
            diff_ids: parsed.rootfs.diff_ids,
        });
        lock(&self.configs).insert(member.to_owned(), config.clone());
        Ok(config)
    }

    /// Opens a blob of `image`: its config by digest, or a layer by DiffID (uncompressed, as
    /// containers/image serves them). The bytes are verified as they are read: a reader that
    /// reaches the end of wrong bytes fails instead. Returns the reader and the size.
    pub fn open_blob(&self, image: &ArchiveImage, digest: &Digest) -> Result<(Box<dyn Read + '_>, u64)> {
        if *digest == image.config.digest {
            let reader = self.open_member(&image.config_member)?;
            return Ok((Box::new(VerifyingReader::new(reader, digest)), image.config.size));
        }
        let index = image.diff_ids.iter().position(|d| d == digest).ok_or_else(|| {
            crate::error::not_found(format!("blob {digest} is not part of image {}", excerpt(&image.item.config)))
        })?;
        let member = &image.layer_members[index];
        let size = self.layer_facts(member)?.uncompressed_size;
        let (layer, _) = self.open_layer(member)?;
        Ok((Box::new(VerifyingReader::new(layer, digest)), size))
    }

    /// Writes a blob of `image` (as `open_blob` opens it) to `out` and returns its size. The
    /// bytes are verified as they pass: when they do not hash to `digest`, `DigestMismatch`
    /// after the last of them was written (the caller discards them). `Io` when `out` fails.
    pub fn copy_blob(&self, image: &ArchiveImage, digest: &Digest, mut out: impl Write) -> Result<u64> {
        let (blob, size) = self.open_blob(image, digest)?;
        // `VerifyingReader` reports wrong bytes as `InvalidData`.
        let read_error = |err: io::Error| match err.kind() {
            io::ErrorKind::InvalidData => Error::new(ErrorKind::DigestMismatch, format!("blob {digest}: {err}")),
            _ => Error::new(ErrorKind::Io, format!("cannot read blob {digest}: {err}")),
        };
        for_each_chunk(blob, read_error, |chunk| {
            out.write_all(chunk).map_err(|e| Error::new(ErrorKind::Io, format!("blob {digest}: {e}")))
        })?;
        Ok(size)
    }

    /// The image's manifest, synthesized: its config and its layers by DiffID, uncompressed.
    /// Returns the manifest's descriptor and bytes (canonical JSON).
    pub fn manifest(&self, image: &ArchiveImage, format: ManifestFormat) -> Result<(Descriptor, Vec<u8>)> {
        let (media_type, config_type, layer_type) = match format {
            ManifestFormat::DockerSchema2 => {
                (MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_DOCKER_LAYER)
            }
            ManifestFormat::Oci => (MEDIA_TYPE_IMAGE_MANIFEST, MEDIA_TYPE_IMAGE_CONFIG, LAYER_TAR),
        };
        let mut layers = Vec::new();
        for (member, diff_id) in image.layer_members.iter().zip(&image.diff_ids) {
            layers.push(Descriptor::new(layer_type, diff_id.clone(), self.layer_facts(member)?.uncompressed_size));
        }
        let config = Descriptor::new(config_type, image.config.digest.clone(), image.config.size);
        let bytes = self.manifest_bytes(&image.item, media_type, config, layers)?;
        let descriptor = Descriptor::new(media_type, Digest::of_bytes(Algorithm::Sha256, &bytes), bytes.len() as u64);
        Ok((descriptor, bytes))
    }

    /// A manifest of `config` and `layers` as canonical JSON, no larger than the JSON size
    /// limit (so that the store can read it back).
    pub(in crate::archive) fn manifest_bytes(
        &self,
        item: &ManifestItem,
        media_type: &str,
        config: Descriptor,
        layers: Vec<Descriptor>,
    ) -> Result<Vec<u8>> {
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(media_type.to_owned()),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: Default::default(),
            extra: Default::default(),
        };
        let bytes = canonical_json(&manifest)?;
        let limits = self.staging.engine().limits();
        if bytes.len() as u64 > limits.json_size {
            return Err(limits.exceeded(
                Limit::JsonSize,
                format!("the manifest of image {} would be {} bytes", excerpt(&item.config), bytes.len()),
            ));
        }
        Ok(bytes)
    }
}

/// Passes bytes through and fails at their end when they do not hash to `expected`.
struct VerifyingReader<R> {
    inner: R,
    hasher: Hasher,
    expected: Digest,
}

impl<R: Read> VerifyingReader<R> {
    fn new(inner: R, expected: &Digest) -> Self {
        VerifyingReader { inner, hasher: Hasher::new(expected.algorithm()), expected: expected.clone() }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.hasher.update(&buf[..n]);
        } else if !buf.is_empty() {
            let actual = self.hasher.current();
            if actual != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the archive's bytes hash to {actual}, not {}", self.expected),
                ));
            }
        }
        Ok(n)
    }
}
