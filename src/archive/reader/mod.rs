//! The docker-archive reader (containers/image's tarfile `Reader` and `Source`): the images an
//! archive holds, and any blob of one of them.
//!
//! A plain tar file is indexed once and its members are read in place. A stream (or a
//! compressed file) is read once: members of up to `SMALL_MEMBER` bytes are held in memory, the
//! others staged in ingests of the reader's own (see `stage`), published only when an import
//! uses them. Each distinct config is parsed once and each compressed layer decompressed once,
//! whatever number of images and layers name it.
//!
//! This file is the reader and its member table: opening the archive, holding or staging its
//! members, resolving their names and reading their bytes; `images` is the image view.

mod images;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

pub use images::{ArchiveImage, ManifestFormat};

use super::scan::{
    ArchiveFile, InputGuard, MemoryBudget, Scanned, SourceRead, V1Layers, guarded_input, items_of, open_archive_file,
    scan_file, scan_stream,
};
use super::stage::{Staged, Staging};
use super::{ArchiveProgress, Codec, IMPORT, ManifestItem, Member, excerpt, for_each_chunk, invalid_archive, resolve};
use crate::cancel::{Cancel, CancelRead};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::spec::canonical_json;
use images::ParsedConfig;

/// Members of a stream up to this size are held in memory (against `archive_json_total`)
/// rather than staged: configs, the empty layers of `docker save`, small files.
const SMALL_MEMBER: u64 = 64 << 10;

/// An open docker-archive.
pub struct ArchiveReader {
    pub(super) staging: Staging,
    /// The archive file, when its members are read in place.
    file: Option<File>,
    members: HashMap<String, Member>,
    items: Vec<ManifestItem>,
    memory: MemoryBudget,
    /// Configs read so far, by member.
    configs: Mutex<HashMap<String, Arc<ParsedConfig>>>,
    /// Layers measured so far, by member.
    layers: Mutex<HashMap<String, LayerFacts>>,
    /// Copies staged for an import of members read in place or held in memory, by member.
    copies: Mutex<HashMap<String, Staged>>,
}

/// What a layer member is uncompressed.
#[derive(Debug, Clone)]
pub(super) struct LayerFacts {
    pub(super) uncompressed_size: u64,
    /// The sha256 of the uncompressed bytes, when they were read (a compressed layer, or a
    /// staged one).
    pub(super) diff_id: Option<Digest>,
}

impl Engine {
    /// Opens a docker-archive file. A plain tar is indexed and read in place; a gzip or zstd
    /// one, or a path that is not a regular file (a pipe, a FIFO), is read once (see
    /// `read_docker_archive`).
    pub fn open_docker_archive(&self, path: &Path) -> Result<ArchiveReader> {
        self.open_docker_archive_reporting(path, None, Cancel::default())
    }

    /// `open_docker_archive`, reporting what is staged to `progress` and stopping once `cancel`
    /// is requested.
    pub(super) fn open_docker_archive_reporting(
        &self,
        path: &Path,
        progress: Option<ArchiveProgress>,
        cancel: Cancel,
    ) -> Result<ArchiveReader> {
        let file = match open_archive_file(path)? {
            ArchiveFile::Stream(file) => return self.read_docker_archive_reporting(file, progress, cancel),
            ArchiveFile::InPlace(file) => file,
        };
        let mut reader = ArchiveReader::new(self, progress, cancel)?;
        let scanned = scan_file(&file, &reader.memory, self.limits())?;
        reader.file = Some(file);
        reader.set_contents(scanned)?;
        Ok(reader)
    }

    /// Reads a docker-archive once from `input` (plain, gzip or zstd, told by magic bytes):
    /// members of a stream are held in memory when small and staged otherwise (see the module).
    pub fn read_docker_archive(&self, input: impl Read) -> Result<ArchiveReader> {
        self.read_docker_archive_reporting(input, None, Cancel::default())
    }

    /// `read_docker_archive`, reporting what is staged to `progress` and stopping at the next
    /// read of `input` once `cancel` is requested.
    pub(super) fn read_docker_archive_reporting(
        &self,
        input: impl Read,
        progress: Option<ArchiveProgress>,
        cancel: Cancel,
    ) -> Result<ArchiveReader> {
        let input = CancelRead::new(input, cancel.clone(), IMPORT);
        let mut reader = ArchiveReader::new(self, progress, cancel)?;
        let scanned =
            scan_stream(input, &reader.memory, self.limits(), |name, entry| reader.take_member(name, entry).map(Some))?;
        reader.set_contents(scanned)?;
        Ok(reader)
    }
}

impl ArchiveReader {
    fn new(engine: &Engine, progress: Option<ArchiveProgress>, cancel: Cancel) -> Result<Self> {
        let staging = Staging::new(engine)?;
        staging.report_to(progress);
        staging.stop_on(cancel);
        Ok(ArchiveReader {
            staging,
            file: None,
            members: HashMap::new(),
            items: Vec::new(),
            memory: MemoryBudget::new(engine.limits()),
            configs: Mutex::new(HashMap::new()),
            layers: Mutex::new(HashMap::new()),
            copies: Mutex::new(HashMap::new()),
        })
    }

    /// One regular member of a stream: held in memory when small, else staged.
    fn take_member<R: Read>(&self, name: &str, entry: &mut tar::Entry<'_, R>) -> Result<Member> {
        let size = entry.size();
        let mut failed = None;
        let mut source = SourceRead { inner: entry, failed: &mut failed };
        let member = match size <= SMALL_MEMBER {
            true => self.memory.hold(size, excerpt(name)).and_then(|()| {
                let mut bytes = Vec::new();
                source
                    .by_ref()
                    .take(SMALL_MEMBER)
                    .read_to_end(&mut bytes)
                    .map(|_| Member::Memory(bytes.into()))
                    .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))
            }),
            false => self.staging.stage(&mut source).map(Member::Staged),
        };
        member.map_err(|err| match &failed {
            Some(reason) => {
                invalid_archive(format!("member {} is truncated or corrupt: {}", excerpt(name), excerpt(reason)))
            }
            None => err,
        })
    }

    fn set_contents(&mut self, scanned: Scanned) -> Result<()> {
        self.items = items_of(&scanned, &self.memory)?;
        self.members = scanned.members;
        if scanned.manifest_json.is_none() {
            let layers = V1Layers::new(&scanned.v1_json);
            for item in self.items.clone() {
                self.add_v1_config(&item, &layers)?;
            }
        }
        Ok(())
    }

    /// The config of a pre-1.10 image (whose `Config` is `<top>/json`), made from its top
    /// layer's v1 JSON with the DiffIDs of its layers and a history from theirs, held in
    /// memory under the name `<top>/json` (which no member has: those files are read apart).
    fn add_v1_config(&mut self, item: &ManifestItem, layers: &V1Layers<'_>) -> Result<()> {
        let top = item.config.trim_end_matches("/json");
        let mut diff_ids = Vec::new();
        let mut history = Vec::new();
        for layer in &item.layers {
            let id = layer.trim_end_matches("/layer.tar");
            diff_ids.push(serde_json::Value::String(self.member_digest(&self.resolve_name(layer)?)?.to_string()));
            let v1 = layers.layer(id)?;
            history.push(serde_json::json!({"created": v1.created, "created_by": v1.created_by}));
        }
        let mut config = layers.object(top)?;
        for v1_only in ["id", "parent", "Size", "layer_id", "checksum"] {
            config.remove(v1_only);
        }
        config.insert("rootfs".to_owned(), serde_json::json!({"type": "layers", "diff_ids": diff_ids}));
        config.insert("history".to_owned(), serde_json::Value::Array(history));
        let bytes = canonical_json(&config)?;
        self.memory.hold(bytes.len() as u64, excerpt(&item.config))?;
        self.members.insert(item.config.clone(), Member::Memory(bytes.into()));
        Ok(())
    }

    /// The sha256 of a member's bytes as they are in the archive.
    fn member_digest(&self, name: &str) -> Result<Digest> {
        if let Member::Staged(staged) = self.member(name)? {
            return Ok(staged.digest.clone());
        }
        hash_all(self.open_member(name)?, |e| read_error(name, e)).map(|(digest, _)| digest)
    }

    /// A layer member's uncompressed size and (when read) DiffID; a compressed
    /// layer is decompressed once to learn them, whatever number of images name it.
    pub(super) fn layer_facts(&self, name: &str) -> Result<LayerFacts> {
        if let Some(facts) = lock(&self.layers).get(name) {
            return Ok(facts.clone());
        }
        let facts = match self.member_codec(name)? {
            Some(_) => {
                let (layer, guard) = self.open_layer(name)?;
                let (diff_id, size) = hash_all(layer, |e| {
                    let err = invalid_archive(format!(
                        "layer {} does not decompress: {}",
                        excerpt(name),
                        excerpt(&e.to_string())
                    ));
                    guard.explain(err, self.staging.engine().limits(), "in the layer")
                })?;
                LayerFacts { uncompressed_size: size, diff_id: Some(diff_id) }
            }
            None => {
                let member = self.member(name)?;
                let diff_id = match member {
                    Member::Staged(staged) => Some(staged.digest.clone()),
                    _ => None,
                };
                LayerFacts { uncompressed_size: member.size(), diff_id }
            }
        };
        lock(&self.layers).insert(name.to_owned(), facts.clone());
        Ok(facts)
    }

    /// How a member is compressed, told by its first bytes.
    pub(super) fn member_codec(&self, name: &str) -> Result<Option<Codec>> {
        let mut head = Vec::with_capacity(4);
        self.open_member(name)?.take(4).read_to_end(&mut head).map_err(|e| read_error(name, e))?;
        Ok(Codec::detect(&head))
    }

    /// The member staged, as an import publishes it: a staged member as it is, any other
    /// copied into an ingest once.
    pub(super) fn staged_member(&self, name: &str) -> Result<Staged> {
        if let Member::Staged(staged) = self.member(name)? {
            return Ok(staged.clone());
        }
        if let Some(copy) = lock(&self.copies).get(name) {
            return Ok(copy.clone());
        }
        let mut failed = None;
        let mut source = SourceRead { inner: self.open_member(name)?, failed: &mut failed };
        let copy = self.staging.stage(&mut source).map_err(|err| match &failed {
            Some(reason) => read_error(name, io::Error::other(reason.clone())),
            None => err,
        })?;
        lock(&self.copies).insert(name.to_owned(), copy.clone());
        Ok(copy)
    }

    /// A regular member or link, by its cleaned name.
    fn member(&self, name: &str) -> Result<&Member> {
        self.members.get(name).ok_or_else(|| invalid_archive(format!("{} is not in the archive", excerpt(name))))
    }

    /// The name of the stored or in-place member `path` leads to, links followed.
    fn resolve_name(&self, path: &str) -> Result<String> {
        resolve(&self.members, path)
    }

    /// The bytes of a (resolved) member, as they are in the archive: from a copy the reader
    /// staged when there is one (what an import checks is then what it publishes). Reading it
    /// stops once the staging's cancel is requested.
    pub(super) fn open_member(&self, name: &str) -> Result<Box<dyn Read + '_>> {
        let copy = lock(&self.copies).get(name).cloned();
        let member: Box<dyn Read + '_> = match (copy, self.member(name)?, &self.file) {
            (Some(copy), _, _) => self.staging.open(&copy)?,
            (None, Member::Staged(staged), _) => self.staging.open(staged)?,
            (None, Member::Memory(bytes), _) => Box::new(io::Cursor::new(bytes.clone())),
            (None, Member::InPlace { offset, size }, Some(file)) => {
                Box::new(FileRange { file, offset: *offset, remaining: *size })
            }
            _ => return Err(Error::new(ErrorKind::InvalidImage, format!("{} is not a regular member", excerpt(name)))),
        };
        Ok(Box::new(CancelRead::new(member, self.staging.cancel(), IMPORT)))
    }

    /// A layer member's uncompressed tar bytes, and the guard that bounds their decompression.
    fn open_layer(&self, name: &str) -> Result<(Box<dyn Read + '_>, InputGuard)> {
        let limits = self.staging.engine().limits();
        let guard = InputGuard::new(limits, format!("invalid docker archive: layer {}", excerpt(name)));
        let (layer, _) = guarded_input(self.open_member(name)?, &guard)?;
        Ok((Box::new(layer), guard))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read_error(name: &str, err: io::Error) -> Error {
    Error::new(ErrorKind::Io, format!("cannot read member {}: {err}", excerpt(name)))
}

/// The sha256 and the length of everything `reader` yields.
fn hash_all(reader: impl Read, read_error: impl Fn(io::Error) -> Error) -> Result<(Digest, u64)> {
    let mut hasher = Hasher::new(Algorithm::Sha256);
    let size = for_each_chunk(reader, read_error, |chunk| {
        hasher.update(chunk);
        Ok(())
    })?;
    Ok((hasher.finish(), size))
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
