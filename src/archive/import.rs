//! Import of a docker-archive into the store as OCI images. Every blob the chosen images need
//! is staged and checked first (each distinct member once); only when all of them checked out
//! are they published and the images tagged, so a refused archive stores nothing (a failure of
//! the final index.json update leaves the published blobs unreferenced, for the next GC).

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::path::Path;

use super::reader::ArchiveReader;
use super::stage::Staged;
use super::{ArchiveProgress, IMPORT, ImageChoice, LAYER_TAR, excerpt, invalid_archive, normalized_image_name};
use crate::cancel::Cancel;
use crate::digest::Digest;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::spec::{Descriptor, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_MANIFEST};
use crate::stream::{CompressionOptions, LayerReader};

/// Annotation containerd and docker 25 give an image's full name.
const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub choice: ImageChoice,
    /// References to tag the (single) imported image with, instead of its RepoTags.
    pub ref_names: Vec<String>,
    /// Recompress uncompressed layers with these options; None stores them as they are.
    pub compression: Option<CompressionOptions>,
    /// Told the bytes staged into the store so far.
    pub progress: Option<ArchiveProgress>,
    /// Stops the import (`Cancelled`) at its next chunk read or staged, or before its next
    /// layer; nothing is tagged or published then (what was staged is aborted). Once the
    /// import publishes, it finishes.
    pub cancel: Cancel,
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

/// A layer ready to publish: its descriptor in the manifest, the bytes, the DiffID they were
/// checked against.
struct PreparedLayer {
    descriptor: Descriptor,
    staged: Staged,
    diff_id: Digest,
}

impl Engine {
    /// Imports a docker-archive file (plain: read in place; gzip or zstd: read once).
    pub fn import_docker_archive_file(&self, path: &Path, options: &ImportOptions) -> Result<Vec<ImportedImage>> {
        let reader = self.open_docker_archive_reporting(path, options.progress.clone(), options.cancel.clone());
        options.cancel.explain(IMPORT, reader.and_then(|reader| self.import_from_reader(&reader, options)))
    }

    /// Imports a docker-archive read once from `input` (plain, gzip or zstd; told by magic
    /// bytes). On any failure nothing is tagged (see the module comment for what is stored).
    pub fn import_docker_archive(&self, input: impl Read, options: &ImportOptions) -> Result<Vec<ImportedImage>> {
        let reader = self.read_docker_archive_reporting(input, options.progress.clone(), options.cancel.clone());
        options.cancel.explain(IMPORT, reader.and_then(|reader| self.import_from_reader(&reader, options)))
    }

    /// Stores the chosen images of an open archive as OCI images and tags them.
    pub fn import_from_reader(&self, reader: &ArchiveReader, options: &ImportOptions) -> Result<Vec<ImportedImage>> {
        reader.staging.report_to(options.progress.clone());
        reader.staging.stop_on(options.cancel.clone());
        options.cancel.explain(IMPORT, self.import_chosen(reader, options))
    }

    fn import_chosen(&self, reader: &ArchiveReader, options: &ImportOptions) -> Result<Vec<ImportedImage>> {
        let chosen = reader.choose(&options.choice)?;
        if !options.ref_names.is_empty() && chosen.len() != 1 {
            return Err(crate::error::invalid_argument(format!(
                "reference names were given for {} images; choose one image",
                chosen.len()
            )));
        }
        let mut prepared: HashMap<String, PreparedLayer> = HashMap::new();
        let mut to_publish = Vec::new();
        let mut manifests = Vec::new();
        for image in &chosen {
            let config = reader.staged_member(&image.config_member)?;
            if config.digest != image.config.digest {
                return Err(Error::new(
                    ErrorKind::DigestMismatch,
                    format!("config {} changed while it was read", excerpt(&image.item.config)),
                ));
            }
            let mut layers = Vec::new();
            for ((member, diff_id), path) in image.layer_members.iter().zip(&image.diff_ids).zip(&image.item.layers) {
                let descriptor = match prepared.get(member) {
                    Some(layer) if layer.diff_id != *diff_id => return Err(mismatch(path, &layer.diff_id, diff_id)),
                    Some(layer) => layer.descriptor.clone(),
                    None => {
                        options.cancel.check(IMPORT)?;
                        let layer = prepare_layer(reader, member, path, diff_id, options.compression.as_ref())?;
                        to_publish.push(layer.staged.clone());
                        let descriptor = layer.descriptor.clone();
                        prepared.insert(member.clone(), layer);
                        descriptor
                    }
                };
                layers.push(descriptor);
            }
            let config_descriptor = Descriptor::new(MEDIA_TYPE_IMAGE_CONFIG, config.digest.clone(), config.size);
            let bytes = reader.manifest_bytes(&image.item, MEDIA_TYPE_IMAGE_MANIFEST, config_descriptor, layers)?;
            let manifest = reader.staging.stage(&mut &bytes[..])?;
            to_publish.push(config);
            to_publish.push(manifest.clone());
            manifests.push((image, Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, manifest.digest, manifest.size)));
        }
        // Every tag in one update of index.json, after every name was checked: a bad name among
        // them tags and publishes nothing. Each name is tagged once: a RepoTag listed twice, or
        // identical untagged images, name one manifest. A name on two different images is
        // refused, compared as docker normalizes it (`busybox` is `docker.io/library/busybox:
        // latest`): docker load would give it to the last, containers/image to the first.
        let mut images = Vec::new();
        let mut tags = Vec::new();
        let mut tagged_names = HashSet::new();
        let mut manifest_by_image_name: HashMap<String, Digest> = HashMap::new();
        for (image, manifest) in manifests {
            let mut names =
                if options.ref_names.is_empty() { image.item.repo_tags.clone() } else { options.ref_names.clone() };
            if names.is_empty() {
                names.push(manifest.digest.hex().to_owned());
            }
            let mut listed = HashSet::new();
            names.retain(|name| listed.insert(name.clone()));
            for name in &names {
                let image_name = normalized_image_name(name);
                match manifest_by_image_name.get(&image_name) {
                    Some(earlier) if *earlier != manifest.digest => {
                        return Err(invalid_archive(format!(
                            "{} names two different images (manifests {earlier} and {})",
                            excerpt(name),
                            manifest.digest
                        )));
                    }
                    Some(_) => {}
                    None => {
                        manifest_by_image_name.insert(image_name.clone(), manifest.digest.clone());
                    }
                }
                if tagged_names.insert(name.clone()) {
                    let mut tagged = manifest.clone();
                    tagged.annotations.insert(ANNOTATION_IMAGE_NAME.to_owned(), image_name);
                    tags.push((name.clone(), tagged));
                }
            }
            images.push(ImportedImage { manifest, refs: names, repo_tags: image.item.repo_tags.clone() });
        }
        for (name, _) in &tags {
            crate::refs::validate_ref_name(name).map_err(|_| {
                crate::error::invalid_argument(format!(
                    "{} is not a reference name (components of [A-Za-z0-9] joined by one of -._:@+ or --, \
                     separated by /)",
                    excerpt(name)
                ))
            })?;
        }
        // The last stop: what follows publishes and tags, all or nothing, in moments.
        options.cancel.check(IMPORT)?;
        for staged in &to_publish {
            reader.staging.publish(staged)?;
        }
        self.ref_put_all(&tags)?;
        Ok(images)
    }
}

/// Stages one layer member as the image will have it, checked against its DiffID: a plain tar
/// as it is or recompressed with `compression` (the plain tar then never becomes a blob), a
/// compressed one as it is.
fn prepare_layer(
    reader: &ArchiveReader,
    member: &str,
    path: &str,
    diff_id: &Digest,
    compression: Option<&CompressionOptions>,
) -> Result<PreparedLayer> {
    let (staged, media_type) = match (reader.member_codec(member)?, compression) {
        (None, Some(options)) => {
            // A staged member's digest is known: a wrong layer is refused before it is compressed.
            if let Some(actual) = reader.layer_facts(member)?.diff_id.filter(|actual| actual != diff_id) {
                return Err(mismatch(path, &actual, diff_id));
            }
            let mut layer = LayerReader::new(reader.open_member(member)?, options)?;
            let staged = reader.staging.stage(&mut LayerChunks(&mut layer))?;
            let actual = layer.diff_id()?;
            if actual != *diff_id {
                return Err(mismatch(path, &actual, diff_id));
            }
            (staged, layer.media_type().to_owned())
        }
        (None, None) => {
            let staged = reader.staged_member(member)?;
            if staged.digest != *diff_id {
                return Err(mismatch(path, &staged.digest, diff_id));
            }
            (staged, LAYER_TAR.to_owned())
        }
        (Some(codec), _) => {
            // Staged first: the DiffID is checked on the very bytes that are published.
            let staged = reader.staged_member(member)?;
            let actual = reader.layer_facts(member)?.diff_id;
            if let Some(actual) = actual.filter(|actual| actual != diff_id) {
                return Err(mismatch(path, &actual, diff_id));
            }
            (staged, codec.layer_media_type().to_owned())
        }
    };
    let descriptor = Descriptor::new(media_type, staged.digest.clone(), staged.size);
    Ok(PreparedLayer { descriptor, staged, diff_id: diff_id.clone() })
}

/// A layer compressed in pull mode, as a reader of its compressed bytes.
struct LayerChunks<'a, R>(&'a mut LayerReader<R>);

impl<R: Read> Read for LayerChunks<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_chunk(buf).map_err(io::Error::other)
    }
}

fn mismatch(path: &str, actual: &Digest, diff_id: &Digest) -> Error {
    Error::new(
        ErrorKind::DigestMismatch,
        format!(
            "invalid docker archive: layer {} hashes to {actual}, but the config's DiffID is {diff_id}",
            excerpt(path)
        ),
    )
}
