//! One-pass import of a docker-archive into the store.

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use super::reader::{
    ArchiveImage, ArchiveReader, GZIP_MAGIC, Guarded, HeaderGuard, ZSTD_MAGIC, decompressed, header_limit_error,
};
use super::{ImageChoice, ManifestItem, clean_path, invalid_archive, normalized_image_name};
use crate::content::IO_CHUNK;
use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, ErrorKind, Result};
use crate::gc::LeaseResource;
use crate::layout::Engine;
use crate::limits::{Limit, Limits};
use crate::spec::{Descriptor, ImageManifest, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_MANIFEST};
use crate::stream::{LayerOptions, LayerStream};

const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Annotation containerd and docker 25 give an image's full name.
const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub choice: ImageChoice,
    /// References to tag the (single) imported image with, instead of its RepoTags.
    pub ref_names: Vec<String>,
    /// Recompress uncompressed layers with these options; None stores them as they are.
    pub compression: Option<LayerOptions>,
}

/// An image the import stored and tagged.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedImage {
    pub manifest: Descriptor,
    pub refs: Vec<String>,
    pub repo_tags: Vec<String>,
}

impl ImportedImage {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "manifest": serde_json::to_value(&self.manifest).unwrap_or_default(),
            "refs": self.refs,
            "repoTags": self.repo_tags,
        })
    }
}

impl Engine {
    /// Imports a docker-archive file (plain: read in place; gzip or zstd: read once).
    pub fn import_docker_archive_file(&self, path: &Path, options: &ImportOptions) -> Result<Vec<ImportedImage>> {
        self.import_from_reader(&self.open_docker_archive(path)?, options)
    }

    /// Imports a docker-archive read once from `input` (plain, gzip or zstd; told by magic
    /// bytes). Members go into the store as they stream past, under the reader's lease; on any
    /// failure nothing is tagged and GC takes what was stored.
    pub fn import_docker_archive(&self, input: impl Read, options: &ImportOptions) -> Result<Vec<ImportedImage>> {
        self.import_from_reader(&self.read_docker_archive(input)?, options)
    }

    /// Stores the chosen images of an open archive as OCI images and tags them.
    pub fn import_from_reader(&self, reader: &ArchiveReader, options: &ImportOptions) -> Result<Vec<ImportedImage>> {
        let chosen = reader.choose(&options.choice)?;
        if !options.ref_names.is_empty() && chosen.len() != 1 {
            return Err(crate::error::invalid_argument(format!(
                "reference names were given for {} images; choose one image",
                chosen.len()
            )));
        }
        // Build every manifest before tagging anything, so a bad image tags nothing.
        let mut built = Vec::new();
        for image in &chosen {
            built.push((image, self.store_image(reader, image, options)?));
        }
        // Every tag in one update of index.json: a bad name among them tags nothing.
        let mut images = Vec::new();
        let mut tags = Vec::new();
        for (image, manifest) in built {
            let names =
                if options.ref_names.is_empty() { image.item.repo_tags.clone() } else { options.ref_names.clone() };
            let names = if names.is_empty() { vec![manifest.digest.hex().to_owned()] } else { names };
            for name in &names {
                let mut tagged = manifest.clone();
                tagged.annotations.insert(ANNOTATION_IMAGE_NAME.to_owned(), normalized_image_name(name));
                tags.push((name.clone(), tagged));
            }
            images.push(ImportedImage { manifest, refs: names, repo_tags: image.item.repo_tags.clone() });
        }
        self.ref_put_all(&tags)?;
        Ok(images)
    }

    /// Builds and stores the OCI manifest of one archive image (under the reader's lease);
    /// returns its descriptor.
    fn store_image(&self, reader: &ArchiveReader, image: &ArchiveImage, options: &ImportOptions) -> Result<Descriptor> {
        let ((config_digest, config_size), members) = reader.store_image_members(image)?;
        let mut layers = Vec::new();
        for (((digest, size), diff_id), path) in members.iter().zip(&image.diff_ids).zip(&image.item.layers) {
            let media_type = self.check_layer(path, digest, diff_id)?;
            let layer = match (&options.compression, media_type) {
                (Some(layer_options), LAYER_TAR) => self.recompress(digest, layer_options, reader.lease())?,
                _ => Descriptor::new(media_type, digest.clone(), *size),
            };
            layers.push(layer);
        }
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_owned()),
            artifact_type: None,
            config: Descriptor::new(MEDIA_TYPE_IMAGE_CONFIG, config_digest, config_size),
            layers,
            subject: None,
            annotations: Default::default(),
            extra: Default::default(),
        };
        let bytes = crate::spec::canonical_json(&manifest)?;
        let blob = self.put_blob_leased(reader.lease(), Algorithm::Sha256, &bytes[..])?;
        Ok(Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, blob.digest, blob.size))
    }

    /// Checks that a layer blob's uncompressed bytes hash to its DiffID; returns its media type.
    fn check_layer(&self, path: &str, digest: &Digest, diff_id: &Digest) -> Result<&'static str> {
        if digest == diff_id {
            return Ok(LAYER_TAR);
        }
        let mut reader = BufReader::new(self.open_blob(digest)?);
        let head = reader
            .fill_buf()
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read layer {path:?}: {e}")))?
            .to_vec();
        let (media_type, decoded): (&'static str, Box<dyn Read>) = if head.starts_with(&GZIP_MAGIC) {
            (LAYER_TAR_GZIP, Box::new(flate2::read::MultiGzDecoder::new(reader)))
        } else if head.starts_with(&ZSTD_MAGIC) {
            let decoder = zstd::Decoder::with_buffer(reader).map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
            (LAYER_TAR_ZSTD, Box::new(decoder))
        } else {
            return Err(mismatch(path, digest, diff_id));
        };
        let actual =
            hash_all(decoded).map_err(|e| invalid_archive(format!("layer {path:?} does not decompress: {e}")))?;
        if actual != *diff_id {
            return Err(mismatch(path, &actual, diff_id));
        }
        Ok(media_type)
    }

    fn recompress(&self, digest: &Digest, options: &LayerOptions, lease: &str) -> Result<Descriptor> {
        let options = LayerOptions { lease: Some(lease.to_owned()), ..options.clone() };
        let mut stream = LayerStream::new(self, &options)?;
        self.lease_add(lease, LeaseResource::Ingest(stream.ref_name().to_owned()))?;
        let mut reader = self.open_blob(digest)?;
        io::copy(&mut reader, &mut stream)
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot recompress layer {digest}: {e}")))?;
        Ok(stream.finish()?.descriptor())
    }
}

/// The images an archive's `manifest.json` lists, read in one pass without storing anything,
/// with the default limits.
pub fn read_manifest_items(input: impl Read) -> Result<Vec<ManifestItem>> {
    read_manifest_items_with(input, &Limits::default())
}

/// `read_manifest_items` with `limits` (the manifest.json size, and the header bytes before each
/// member, which the tar reader holds in memory).
pub fn read_manifest_items_with(input: impl Read, limits: &Limits) -> Result<Vec<ManifestItem>> {
    let guard = HeaderGuard::new(limits.archive_header_size);
    let mut archive = tar::Archive::new(Guarded { inner: decompressed(input)?, guard: guard.clone() });
    let mut entries = archive.entries().map_err(|e| invalid_archive(format!("not a tar archive: {e}")))?;
    let mut members = 0u64;
    loop {
        guard.count_from_zero();
        let Some(entry) = entries.next() else { break };
        guard.pause();
        members += 1;
        let entry = entry.map_err(|e| match guard.tripped() {
            true => header_limit_error(members, limits),
            false => invalid_archive(format!("cannot read a member: {e}")),
        })?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if clean_path("", &name).as_deref() == Some("manifest.json") {
            let bytes = limits.read_capped(entry, Limit::ArchiveManifestSize, "manifest.json")?;
            return serde_json::from_slice(&bytes)
                .map_err(|e| invalid_archive(format!("manifest.json is not a list of images: {e}")));
        }
    }
    Err(invalid_archive("it has no manifest.json"))
}

fn mismatch(path: &str, actual: &Digest, diff_id: &Digest) -> Error {
    Error::new(
        ErrorKind::DigestMismatch,
        format!("invalid docker archive: layer {path:?} hashes to {actual}, but the config's DiffID is {diff_id}"),
    )
}

fn hash_all(mut reader: impl Read) -> io::Result<Digest> {
    let mut hasher = Hasher::new(Algorithm::Sha256);
    let mut buf = vec![0u8; IO_CHUNK];
    loop {
        match reader.read(&mut buf)? {
            0 => return Ok(hasher.finish()),
            n => hasher.update(&buf[..n]),
        }
    }
}
