//! The docker-archive reader (containers/image's tarfile `Reader` and `Source`): the images an
//! archive holds, and any blob of one of them.
//!
//! A plain tar file is indexed once and its members are read in place. A stream (or a
//! compressed file) is read once: every regular member goes straight into the store under the
//! reader's lease and is read from there; nothing is spooled whole. The lease is released when
//! the reader is dropped, so what was stored and not tagged meanwhile is garbage for GC.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use super::{ImageChoice, ManifestItem, Member, choose_items, clean_path, invalid_archive, resolve};
use crate::content::IO_CHUNK;
use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, ErrorKind, Result};
use crate::layout::Engine;
use crate::limits::{Limit, Limits};
use crate::spec::{
    Descriptor, Document, ImageManifest, MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_IMAGE_CONFIG,
    MEDIA_TYPE_IMAGE_MANIFEST, canonical_json, parse_document,
};

pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
pub(crate) const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// The reader's lease outlives a crashed process by at most this long.
const READER_LEASE_EXPIRY: Duration = Duration::from_secs(60 * 60);
const MEDIA_TYPE_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
const MEDIA_TYPE_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

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
    config_member: String,
    layer_members: Vec<String>,
}

/// An open docker-archive.
pub struct ArchiveReader {
    engine: Engine,
    lease: String,
    /// The archive file, when its members are read in place.
    file: Option<File>,
    members: HashMap<String, Member>,
    items: Vec<ManifestItem>,
}

impl Engine {
    /// Opens a docker-archive file. A plain tar is indexed and read in place; a gzip or zstd
    /// one is read once into the store (see `read_docker_archive`).
    pub fn open_docker_archive(&self, path: &Path) -> Result<ArchiveReader> {
        let mut file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
        let mut head = [0u8; 4];
        let n = file.read_at(&mut head, 0).map_err(|e| Error::io("cannot read", path, e))?;
        if n == 0 {
            return Err(invalid_archive(format!("{} is empty", path.display())));
        }
        if head[..n].starts_with(&GZIP_MAGIC) || head[..n].starts_with(&ZSTD_MAGIC) {
            return self.read_docker_archive(file);
        }
        let mut reader = ArchiveReader::new(self)?;
        let guard = HeaderGuard::new(self.limits().archive_header_size);
        let mut archive = tar::Archive::new(Guarded { inner: &mut file, guard: guard.clone() });
        let entries = archive.entries_with_seek().map_err(|e| invalid_archive(format!("not a tar archive: {e}")))?;
        let scanned = scan(entries, &guard, self.limits(), |_, entry| {
            Ok(Member::InPlace { offset: entry.raw_file_position(), size: entry.size() })
        })?;
        drop(archive);
        reader.file = Some(file);
        reader.set_contents(scanned)?;
        Ok(reader)
    }

    /// Reads a docker-archive once from `input` (plain, gzip or zstd, told by magic bytes),
    /// storing every regular member under the reader's lease as it streams past.
    pub fn read_docker_archive(&self, input: impl Read) -> Result<ArchiveReader> {
        let mut reader = ArchiveReader::new(self)?;
        let guard = HeaderGuard::new(self.limits().archive_header_size);
        let mut archive = tar::Archive::new(Guarded { inner: decompressed(input)?, guard: guard.clone() });
        let entries = archive.entries().map_err(|e| invalid_archive(format!("not a tar archive: {e}")))?;
        let scanned = scan(entries, &guard, self.limits(), |name, entry| reader.store_entry(name, entry))?;
        // Read to the very end, so a gzip CRC, trailing garbage or truncation is detected.
        io::copy(&mut archive.into_inner(), &mut io::sink())
            .map_err(|e| invalid_archive(format!("corrupt after its last member: {e}")))?;
        reader.set_contents(scanned)?;
        Ok(reader)
    }
}

impl ArchiveReader {
    fn new(engine: &Engine) -> Result<Self> {
        let lease = engine.lease_new(None, Some(READER_LEASE_EXPIRY))?.id;
        Ok(ArchiveReader { engine: engine.clone(), lease, file: None, members: HashMap::new(), items: Vec::new() })
    }

    fn set_contents(&mut self, scanned: Scanned) -> Result<()> {
        self.members = scanned.members;
        self.items = match (scanned.manifest_json, scanned.repositories) {
            (Some(manifest_json), _) => serde_json::from_slice(&manifest_json)
                .map_err(|e| invalid_archive(format!("manifest.json is not a list of images: {e}")))?,
            (None, Some(repositories)) => self.items_from_repositories(&repositories, &scanned.v1_json)?,
            (None, None) => return Err(invalid_archive("it has neither manifest.json nor repositories")),
        };
        Ok(())
    }

    /// The images of a pre-1.10 archive (no manifest.json; containers/image refuses these):
    /// each tag in `repositories` names its top layer, whose `<id>/json` names its parent, and
    /// so on down. The config of each image is made from its top layer's v1 JSON, with the
    /// DiffIDs of its layers, and stored under the reader's lease.
    fn items_from_repositories(
        &mut self,
        repositories: &[u8],
        v1_json: &HashMap<String, Vec<u8>>,
    ) -> Result<Vec<ManifestItem>> {
        let repositories: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_slice(repositories)
            .map_err(|e| invalid_archive(format!("repositories is not a map of repositories to tags: {e}")))?;
        let mut items: Vec<ManifestItem> = Vec::new();
        for (repo, tags) in repositories {
            for (tag, top) in tags {
                let repo_tag = format!("{repo}:{tag}");
                if let Some(item) = items.iter_mut().find(|i| i.layers.last() == Some(&format!("{top}/layer.tar"))) {
                    item.repo_tags.push(repo_tag);
                    continue;
                }
                items.push(self.v1_image(&top, v1_json, repo_tag)?);
            }
        }
        Ok(items)
    }

    fn v1_image(&mut self, top: &str, v1_json: &HashMap<String, Vec<u8>>, repo_tag: String) -> Result<ManifestItem> {
        let parse = |id: &str| -> Result<serde_json::Map<String, serde_json::Value>> {
            let bytes = v1_json.get(id).ok_or_else(|| invalid_archive(format!("layer {id:?} has no {id}/json")))?;
            serde_json::from_slice(bytes).map_err(|e| invalid_archive(format!("{id}/json is not a JSON object: {e}")))
        };
        // Top to base, a bounded number of layers (a parent loop cannot be longer).
        let mut chain = vec![(top.to_owned(), parse(top)?)];
        while let Some(parent) = chain.last().and_then(|(_, json)| json.get("parent")?.as_str().map(str::to_owned)) {
            if chain.len() > v1_json.len() {
                return Err(invalid_archive(format!("the parents of layer {top:?} form a loop")));
            }
            let json = parse(&parent)?;
            chain.push((parent, json));
        }
        chain.reverse();
        let mut diff_ids = Vec::new();
        let mut history = Vec::new();
        for (id, json) in &chain {
            let name = resolve(&self.members, &format!("{id}/layer.tar"))?;
            diff_ids.push(serde_json::Value::String(self.hash_member(&name)?.to_string()));
            let cmd = json.get("container_config").and_then(|c| c.get("Cmd")).and_then(|c| c.as_array());
            let created_by = cmd.map(|cmd| cmd.iter().filter_map(|part| part.as_str()).collect::<Vec<_>>().join(" "));
            history.push(serde_json::json!({"created": json.get("created"), "created_by": created_by}));
        }
        let mut config = chain.pop().map(|(_, json)| json).unwrap_or_default();
        for v1_only in ["id", "parent", "Size", "layer_id", "checksum"] {
            config.remove(v1_only);
        }
        config.insert("rootfs".to_owned(), serde_json::json!({"type": "layers", "diff_ids": diff_ids}));
        config.insert("history".to_owned(), serde_json::Value::Array(history));
        let bytes = canonical_json(&config)?;
        let blob = self.engine.put_blob_leased(&self.lease, Algorithm::Sha256, &bytes[..])?;
        // The config takes the name of the v1 JSON it was made from (never a member's name).
        let config_name = format!("{top}/json");
        self.members.insert(config_name.clone(), Member::Stored { digest: blob.digest, size: blob.size });
        Ok(ManifestItem {
            config: config_name,
            repo_tags: vec![repo_tag],
            layers: chain.iter().map(|(id, _)| format!("{id}/layer.tar")).chain([format!("{top}/layer.tar")]).collect(),
            parent: String::new(),
            layer_sources: Default::default(),
        })
    }

    /// The sha256 of a member's bytes as they are in the archive.
    fn hash_member(&self, name: &str) -> Result<Digest> {
        if let Member::Stored { digest, .. } = &self.members[name] {
            return Ok(digest.clone());
        }
        let mut hasher = Hasher::new(Algorithm::Sha256);
        let mut reader = self.open_member(name)?;
        let mut buf = vec![0u8; IO_CHUNK];
        loop {
            match reader.read(&mut buf).map_err(|e| Error::new(ErrorKind::Io, format!("cannot read {name:?}: {e}")))? {
                0 => return Ok(hasher.finish()),
                n => hasher.update(&buf[..n]),
            }
        }
    }

    /// The lease every blob this reader stores is added to (released on drop).
    pub(crate) fn lease(&self) -> &str {
        &self.lease
    }

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
        let what = format!("config {:?}", item.config);
        let bytes = self.engine.limits().read_capped(self.open_member(&config_member)?, Limit::JsonSize, &what)?;
        let Document::Config(config) = parse_document(MEDIA_TYPE_DOCKER_CONFIG, &bytes)
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
        let layer_members = item.layers.iter().map(|l| self.resolve_name(l)).collect::<Result<Vec<_>>>()?;
        Ok(ArchiveImage {
            config: Descriptor::new(
                MEDIA_TYPE_DOCKER_CONFIG,
                Digest::of_bytes(Algorithm::Sha256, &bytes),
                bytes.len() as u64,
            ),
            diff_ids: config.rootfs.diff_ids,
            item,
            config_member,
            layer_members,
        })
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
            crate::error::not_found(format!("blob {digest} is not part of image {:?}", image.item.repo_tags))
        })?;
        let member = &image.layer_members[index];
        let size = self.uncompressed_size(member)?;
        Ok((Box::new(VerifyingReader::new(self.open_layer(member)?, digest)), size))
    }

    /// The image's manifest, synthesized: its config and its layers by DiffID, uncompressed.
    /// Returns the manifest's descriptor and bytes (canonical JSON).
    pub fn manifest(&self, image: &ArchiveImage, format: ManifestFormat) -> Result<(Descriptor, Vec<u8>)> {
        let (media_type, config_type, layer_type) = match format {
            ManifestFormat::DockerSchema2 => {
                (MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_DOCKER_LAYER)
            }
            ManifestFormat::Oci => (MEDIA_TYPE_IMAGE_MANIFEST, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_OCI_LAYER),
        };
        let mut layers = Vec::new();
        for (member, diff_id) in image.layer_members.iter().zip(&image.diff_ids) {
            layers.push(Descriptor::new(layer_type, diff_id.clone(), self.uncompressed_size(member)?));
        }
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(media_type.to_owned()),
            artifact_type: None,
            config: Descriptor::new(config_type, image.config.digest.clone(), image.config.size),
            layers,
            subject: None,
            annotations: Default::default(),
            extra: Default::default(),
        };
        let bytes = canonical_json(&manifest)?;
        let descriptor = Descriptor::new(media_type, Digest::of_bytes(Algorithm::Sha256, &bytes), bytes.len() as u64);
        Ok((descriptor, bytes))
    }

    /// The config and layer members of `image` as stored blobs (copied into the store under
    /// the reader's lease when they are read in place): `(config, layers)`, digests and sizes
    /// of the member bytes as they are in the archive.
    pub(crate) fn store_image_members(&self, image: &ArchiveImage) -> Result<((Digest, u64), Vec<(Digest, u64)>)> {
        let config = self.store_member(&image.config_member)?;
        let layers = image.layer_members.iter().map(|m| self.store_member(m)).collect::<Result<Vec<_>>>()?;
        Ok((config, layers))
    }

    fn store_member(&self, name: &str) -> Result<(Digest, u64)> {
        match &self.members[name] {
            Member::Stored { digest, size } => Ok((digest.clone(), *size)),
            _ => {
                let blob = self.engine.put_blob_leased(&self.lease, Algorithm::Sha256, self.open_member(name)?)?;
                Ok((blob.digest, blob.size))
            }
        }
    }

    /// Stores one streamed member under the lease. A failure to read the archive itself (a
    /// truncation, a bad CRC) is the archive's fault, not an I/O error of the store.
    fn store_entry(&self, name: &str, entry: impl Read) -> Result<Member> {
        let mut source_error = None;
        let entry = SourceRead { inner: entry, failed: &mut source_error };
        match (self.engine.put_blob_leased(&self.lease, Algorithm::Sha256, entry), source_error) {
            (Ok(blob), _) => Ok(Member::Stored { digest: blob.digest, size: blob.size }),
            (Err(_), Some(reason)) => {
                Err(invalid_archive(format!("member {name:?} is truncated or corrupt: {reason}")))
            }
            (Err(err), None) => Err(err),
        }
    }

    /// The name of the stored or in-place member `path` leads to, links followed.
    fn resolve_name(&self, path: &str) -> Result<String> {
        resolve(&self.members, path)
    }

    /// The bytes of a (resolved) member, as they are in the archive.
    fn open_member(&self, name: &str) -> Result<Box<dyn Read + '_>> {
        match (&self.members[name], &self.file) {
            (Member::Stored { digest, .. }, _) => Ok(Box::new(self.engine.open_blob(digest)?)),
            (Member::InPlace { offset, size }, Some(file)) => {
                Ok(Box::new(FileRange { file, offset: *offset, remaining: *size }))
            }
            _ => unreachable!("resolve() returns only stored or in-place members"),
        }
    }

    /// A layer member's uncompressed tar bytes.
    fn open_layer(&self, name: &str) -> Result<Box<dyn Read + '_>> {
        let mut reader = BufReader::with_capacity(IO_CHUNK, self.open_member(name)?);
        let head = reader.fill_buf().map_err(|e| Error::new(ErrorKind::Io, format!("cannot read {name:?}: {e}")))?;
        Ok(if head.starts_with(&GZIP_MAGIC) {
            Box::new(flate2::read::MultiGzDecoder::new(reader))
        } else if head.starts_with(&ZSTD_MAGIC) {
            Box::new(zstd::Decoder::with_buffer(reader).map_err(|e| Error::new(ErrorKind::Io, format!("zstd: {e}")))?)
        } else {
            Box::new(reader)
        })
    }

    /// Size of a layer's uncompressed tar: the member's own size when it is plain, else
    /// counted by decompressing it once.
    fn uncompressed_size(&self, name: &str) -> Result<u64> {
        if self.is_compressed(name)? {
            return io::copy(&mut self.open_layer(name)?, &mut io::sink())
                .map_err(|e| invalid_archive(format!("layer {name:?} does not decompress: {e}")));
        }
        match &self.members[name] {
            Member::Stored { size, .. } | Member::InPlace { size, .. } => Ok(*size),
            Member::Link(_) => unreachable!("resolve() returns only stored or in-place members"),
        }
    }

    fn is_compressed(&self, name: &str) -> Result<bool> {
        let mut head = [0u8; 4];
        let n = read_full(&mut self.open_member(name)?, &mut head)
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read {name:?}: {e}")))?;
        Ok(head[..n].starts_with(&GZIP_MAGIC) || head[..n].starts_with(&ZSTD_MAGIC))
    }
}

impl Drop for ArchiveReader {
    fn drop(&mut self) {
        // Best effort: an unreleased lease expires by itself.
        let _ = self.engine.lease_release(&self.lease);
    }
}

/// Goes through the members of an archive once, enforcing the safety rules (paths inside,
/// no duplicates, a bounded member count), recording links, reading `manifest.json` into
/// memory (and `repositories` and the `<id>/json` files of pre-1.10 archives, which may have
/// no `manifest.json`) and handing every other regular member to `on_file`.
fn scan<R: Read>(
    mut entries: tar::Entries<'_, R>,
    guard: &HeaderGuard,
    limits: &Limits,
    mut on_file: impl FnMut(&str, &mut tar::Entry<'_, R>) -> Result<Member>,
) -> Result<Scanned> {
    let mut scanned = Scanned::default();
    let mut seen = HashSet::new();
    loop {
        // What the tar reader reads to find the next member (headers, long names, PAX
        // records) is held in memory whole: it is capped; the member's own bytes are not.
        guard.count_from_zero();
        let Some(entry) = entries.next() else { break };
        guard.pause();
        let mut entry = entry.map_err(|e| match (guard.tripped(), seen.is_empty()) {
            (true, _) => header_limit_error(seen.len() as u64 + 1, limits),
            (false, true) => invalid_archive(format!("not a tar archive: {e}")),
            (false, false) => invalid_archive(format!("cannot read the member after {} members: {e}", seen.len())),
        })?;
        if seen.len() as u64 >= limits.archive_members {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "invalid docker archive: it has more than the member limit (archive_members) of {} members",
                    limits.archive_members
                ),
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
            scanned.members.insert(name, Member::Link(target));
        } else if kind.is_file() {
            match name.as_str() {
                "manifest.json" => {
                    scanned.manifest_json =
                        Some(read_json_member(&name, &mut entry, limits, Limit::ArchiveManifestSize)?)
                }
                "repositories" => {
                    scanned.repositories =
                        Some(read_json_member(&name, &mut entry, limits, Limit::ArchiveManifestSize)?)
                }
                // The inner layout's own files: the images are found through manifest.json.
                "oci-layout" | "index.json" => {}
                _ if name.ends_with("/VERSION") => {}
                _ if name.ends_with("/json") => {
                    let id = name.trim_end_matches("/json").to_owned();
                    scanned.v1_json.insert(id, read_json_member(&name, &mut entry, limits, Limit::JsonSize)?);
                }
                _ => {
                    let member = on_file(&name, &mut entry)?;
                    scanned.members.insert(name, member);
                }
            }
        }
    }
    guard.pause();
    Ok(scanned)
}

/// What one pass over an archive found.
#[derive(Default)]
struct Scanned {
    members: HashMap<String, Member>,
    manifest_json: Option<Vec<u8>>,
    repositories: Option<Vec<u8>>,
    /// Pre-1.10 layer metadata (`<id>/json`), by layer id.
    v1_json: HashMap<String, Vec<u8>>,
}

/// Reads a small metadata member whole, up to `limit` bytes.
fn read_json_member(name: &str, entry: impl Read, limits: &Limits, limit: Limit) -> Result<Vec<u8>> {
    let mut failed = None;
    let source = SourceRead { inner: entry, failed: &mut failed };
    limits.read_capped(source, limit, name).map_err(|err| match failed {
        Some(reason) => invalid_archive(format!("{name} is truncated or corrupt: {reason}")),
        None => err,
    })
}

/// The error of a `HeaderGuard` that tripped before member `member` (counted from 1).
pub(super) fn header_limit_error(member: u64, limits: &Limits) -> Error {
    limits.exceeded(
        Limit::ArchiveHeaderSize,
        format!("invalid docker archive: the headers before member {member} (long names, PAX records)"),
    )
}

/// Counts what the tar reader reads while it is looking for the next member: headers, GNU long
/// names and PAX records, which it reads whole into memory (a hostile archive could declare a
/// long name of many gigabytes), up to `Limits::archive_header_size`; paused while a member's
/// own bytes are read.
#[derive(Clone)]
pub(super) struct HeaderGuard {
    state: Rc<Cell<GuardState>>,
    limit: u64,
}

#[derive(Clone, Copy, Default)]
enum GuardState {
    #[default]
    Paused,
    Counting(u64),
    Tripped,
}

impl HeaderGuard {
    pub(super) fn new(limit: u64) -> Self {
        HeaderGuard { state: Rc::new(Cell::new(GuardState::Paused)), limit }
    }

    pub(super) fn count_from_zero(&self) {
        self.state.set(GuardState::Counting(0));
    }

    pub(super) fn pause(&self) {
        if !self.tripped() {
            self.state.set(GuardState::Paused);
        }
    }

    pub(super) fn tripped(&self) -> bool {
        matches!(self.state.get(), GuardState::Tripped)
    }

    fn add(&self, n: usize) -> io::Result<()> {
        match self.state.get() {
            GuardState::Counting(count) if count.saturating_add(n as u64) > self.limit => {
                self.state.set(GuardState::Tripped);
                Err(io::Error::new(io::ErrorKind::InvalidData, "tar headers over the limit"))
            }
            GuardState::Counting(count) => {
                self.state.set(GuardState::Counting(count + n as u64));
                Ok(())
            }
            GuardState::Paused | GuardState::Tripped => Ok(()),
        }
    }
}

/// The archive's input, as the tar reader sees it, counted by a `HeaderGuard`.
pub(super) struct Guarded<R> {
    pub(super) inner: R,
    pub(super) guard: HeaderGuard,
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.guard.add(n)?;
        Ok(n)
    }
}

impl<R: io::Seek> io::Seek for Guarded<R> {
    fn seek(&mut self, position: io::SeekFrom) -> io::Result<u64> {
        self.inner.seek(position)
    }
}

/// The archive's tar stream, decompressed when it starts with gzip or zstd magic. gzip is
/// decoded across all members.
pub(crate) fn decompressed<'a>(input: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
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

/// A byte range of a file, read with pread so that several can be open at once.
struct FileRange<'f> {
    file: &'f File,
    offset: u64,
    remaining: u64,
}

impl Read for FileRange<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.offset)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the archive file is shorter than its index"));
        }
        self.offset += n as u64;
        self.remaining -= n as u64;
        Ok(n)
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

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
