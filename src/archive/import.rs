//! One-pass import of a docker-archive into the store.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::time::Duration;

use super::{
    ImageChoice, MAX_MANIFEST_JSON, MAX_MEMBERS, ManifestItem, Member, choose_items, clean_path, invalid_archive,
    normalized_image_name, resolve,
};
use crate::content::IO_CHUNK;
use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, ErrorKind, Result};
use crate::gc::LeaseResource;
use crate::layout::{Engine, read_capped};
use crate::spec::{
    Descriptor, Document, ImageManifest, MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_MANIFEST,
    parse_document,
};
use crate::stream::{LayerOptions, LayerStream};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// The import's lease outlives a crashed importer by at most this long.
const IMPORT_LEASE_EXPIRY: Duration = Duration::from_secs(60 * 60);
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
    /// Imports a docker-archive file (plain, gzip or zstd).
    pub fn import_docker_archive_file(&self, path: &Path, options: &ImportOptions) -> Result<Vec<ImportedImage>> {
        let file = std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
        self.import_docker_archive(file, options)
    }

    /// Imports a docker-archive read once from `input` (plain, gzip or zstd; told by magic
    /// bytes). Members go into the store as they stream past, under a lease that is released at
    /// the end; on any failure nothing is tagged and GC takes what was stored.
    pub fn import_docker_archive(&self, input: impl Read, options: &ImportOptions) -> Result<Vec<ImportedImage>> {
        let lease = self.lease_new(None, Some(IMPORT_LEASE_EXPIRY))?;
        let result = self.import_under_lease(input, options, &lease.id);
        let released = self.lease_release(&lease.id);
        let images = result?;
        released?;
        Ok(images)
    }

    fn import_under_lease(&self, input: impl Read, options: &ImportOptions, lease: &str) -> Result<Vec<ImportedImage>> {
        let contents = self.read_archive(decompressed(input)?, lease)?;
        let manifest_json = contents.manifest_json.ok_or_else(|| invalid_archive("it has no manifest.json"))?;
        let items: Vec<ManifestItem> = serde_json::from_slice(&manifest_json)
            .map_err(|e| invalid_archive(format!("manifest.json is not a list of images: {e}")))?;
        let chosen = choose_items(&items, &options.choice)?;
        if !options.ref_names.is_empty() && chosen.len() != 1 {
            return Err(crate::error::invalid_argument(format!(
                "reference names were given for {} images; choose one image",
                chosen.len()
            )));
        }
        // Build every manifest before tagging anything, so a bad image tags nothing.
        let mut built = Vec::new();
        for item in &chosen {
            built.push((item, self.store_image(item, &contents.members, options, lease)?));
        }
        let mut images = Vec::new();
        for (item, manifest) in built {
            let names = if options.ref_names.is_empty() { item.repo_tags.clone() } else { options.ref_names.clone() };
            let names = if names.is_empty() { vec![manifest.digest.hex().to_owned()] } else { names };
            for name in &names {
                let mut tagged = manifest.clone();
                tagged.annotations.insert(ANNOTATION_IMAGE_NAME.to_owned(), normalized_image_name(name));
                self.ref_put(name, &tagged, true)?;
            }
            images.push(ImportedImage { manifest, refs: names, repo_tags: item.repo_tags.clone() });
        }
        Ok(images)
    }

    /// Reads every member once: regular files into the store (leased), links into the member
    /// table, manifest.json into memory.
    fn read_archive(&self, input: Box<dyn Read + '_>, lease: &str) -> Result<ArchiveContents> {
        let mut archive = tar::Archive::new(input);
        let mut contents = ArchiveContents { members: HashMap::new(), manifest_json: None };
        let mut seen = HashSet::new();
        let entries = archive.entries().map_err(|e| invalid_archive(format!("not a tar archive: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| match seen.is_empty() {
                true => invalid_archive(format!("not a tar archive: {e}")),
                false => invalid_archive(format!("cannot read the member after {} members: {e}", seen.len())),
            })?;
            if seen.len() >= MAX_MEMBERS {
                return Err(Error::new(
                    ErrorKind::TooLarge,
                    format!("the archive has more than {MAX_MEMBERS} members"),
                ));
            }
            let raw_name = String::from_utf8(entry.path_bytes().into_owned())
                .map_err(|_| invalid_archive("a member name is not UTF-8"))?;
            let name = clean_path("", &raw_name)
                .ok_or_else(|| invalid_archive(format!("member {raw_name:?} leaves the archive")))?;
            let kind = entry.header().entry_type();
            if kind.is_dir() {
                continue;
            }
            if !seen.insert(name.clone()) {
                return Err(invalid_archive(format!("member {name:?} appears twice")));
            }
            if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name_bytes()
                    .and_then(|t| String::from_utf8(t.into_owned()).ok())
                    .ok_or_else(|| invalid_archive(format!("link {name:?} has no UTF-8 target")))?;
                // Symlinks are relative to their directory, hard links to the archive root.
                let base = if kind.is_symlink() { name.rsplit_once('/').map_or("", |(dir, _)| dir) } else { "" };
                let target = clean_path(base, &target)
                    .ok_or_else(|| invalid_archive(format!("link {name:?} -> {target:?} leaves the archive")))?;
                contents.members.insert(name, Member::Link(target));
            } else if kind.is_file() {
                self.read_member(&name, entry, &mut contents, lease)?;
            }
        }
        // Read to the very end, so a gzip CRC, trailing garbage or truncation is detected.
        let mut rest = archive.into_inner();
        io::copy(&mut rest, &mut io::sink())
            .map_err(|e| invalid_archive(format!("corrupt after its last member: {e}")))?;
        Ok(contents)
    }

    fn read_member(&self, name: &str, entry: impl Read, contents: &mut ArchiveContents, lease: &str) -> Result<()> {
        // A failure to read the archive itself (truncation, a bad CRC) is the archive's fault,
        // not an I/O error of the store: tell the two apart.
        let mut source_error = None;
        let mut entry = SourceRead { inner: entry, failed: &mut source_error };
        let result = match name {
            "manifest.json" => read_capped(&mut entry, MAX_MANIFEST_JSON, "manifest.json")
                .map(|json| contents.manifest_json = Some(json)),
            // Legacy per-layer metadata and the inner layout's own files: not blobs we use.
            "repositories" | "oci-layout" | "index.json" => Ok(()),
            _ if name.ends_with("/json") || name.ends_with("/VERSION") => Ok(()),
            _ => self.put_blob_leased(lease, Algorithm::Sha256, &mut entry).map(|blob| {
                contents.members.insert(name.to_owned(), Member::Stored { digest: blob.digest, size: blob.size });
            }),
        };
        match (result, source_error) {
            (Err(err), _) if err.kind() == ErrorKind::TooLarge => Err(err),
            (Err(_), Some(reason)) => {
                Err(invalid_archive(format!("member {name:?} is truncated or corrupt: {reason}")))
            }
            (result, _) => result,
        }
    }

    /// Builds and stores the OCI manifest of one archive image; returns its descriptor.
    fn store_image(
        &self,
        item: &ManifestItem,
        members: &HashMap<String, Member>,
        options: &ImportOptions,
        lease: &str,
    ) -> Result<Descriptor> {
        let (config_digest, config_size) = resolve(members, &item.config)?;
        let config_bytes = self.read_blob(config_digest, self.max_json_size())?;
        let Document::Config(config) = parse_document(MEDIA_TYPE_DOCKER_CONFIG, &config_bytes)
            .map_err(|e| invalid_archive(format!("config {:?}: {}", item.config, e.message())))?
        else {
            return Err(invalid_archive(format!("config {:?} is not an image config", item.config)));
        };
        if config.rootfs.diff_ids.len() != item.layers.len() {
            return Err(invalid_archive(format!(
                "image {:?} lists {} layers but its config has {} diff_ids",
                item.repo_tags,
                item.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for (path, diff_id) in item.layers.iter().zip(&config.rootfs.diff_ids) {
            let (digest, size) = resolve(members, path)?;
            let media_type = self.check_layer(path, digest, diff_id)?;
            let layer = match (&options.compression, media_type) {
                (Some(layer_options), LAYER_TAR) => self.recompress(digest, layer_options, lease)?,
                _ => Descriptor::new(media_type, digest.clone(), size),
            };
            layers.push(layer);
        }
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_owned()),
            artifact_type: None,
            config: Descriptor::new(MEDIA_TYPE_IMAGE_CONFIG, config_digest.clone(), config_size),
            layers,
            subject: None,
            annotations: Default::default(),
            extra: Default::default(),
        };
        let bytes = crate::spec::canonical_json(&manifest)?;
        let blob = self.put_blob_leased(lease, Algorithm::Sha256, &bytes[..])?;
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

/// The images an archive's `manifest.json` lists, read in one pass without storing anything.
pub fn read_manifest_items(input: impl Read) -> Result<Vec<ManifestItem>> {
    let mut archive = tar::Archive::new(decompressed(input)?);
    let entries = archive.entries().map_err(|e| invalid_archive(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| invalid_archive(format!("cannot read a member: {e}")))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if clean_path("", &name).as_deref() == Some("manifest.json") {
            let bytes = read_capped(entry, MAX_MANIFEST_JSON, "manifest.json")?;
            return serde_json::from_slice(&bytes)
                .map_err(|e| invalid_archive(format!("manifest.json is not a list of images: {e}")));
        }
    }
    Err(invalid_archive("it has no manifest.json"))
}

/// Remembers the first error of the reader it wraps.
struct SourceRead<'a, R> {
    inner: R,
    failed: &'a mut Option<String>,
}

impl<R: Read> Read for SourceRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|err| {
            self.failed.get_or_insert_with(|| err.to_string());
        })
    }
}

struct ArchiveContents {
    members: HashMap<String, Member>,
    manifest_json: Option<Vec<u8>>,
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

/// The archive's tar stream, decompressed when it starts with gzip or zstd magic. gzip is
/// decoded across all members.
fn decompressed<'a>(input: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(IO_CHUNK, input);
    let head = buffered.fill_buf().map_err(|e| Error::new(ErrorKind::Io, format!("cannot read the archive: {e}")))?;
    if head.is_empty() {
        return Err(invalid_archive("it is empty"));
    }
    Ok(if head.starts_with(&GZIP_MAGIC) {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else if head.starts_with(&ZSTD_MAGIC) {
        Box::new(zstd::Decoder::with_buffer(buffered).map_err(|e| Error::new(ErrorKind::Io, format!("zstd: {e}")))?)
    } else {
        Box::new(buffered)
    })
}
