//! One pass over a docker-archive's members, for the reader and for `ls`: the safety rules
//! (paths inside the archive, no duplicates, a bounded member count, bounded headers, bounded
//! decompression, bounded memory), the metadata members read into memory, every other regular
//! member handed on. Also the images a pass found (`manifest.json`, or the `repositories` and
//! `<id>/json` files of a pre-1.10 archive).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Codec, ManifestItem, Member, clean_path, excerpt, invalid_archive};
use crate::content::IO_CHUNK;
use crate::error::{Error, ErrorKind, Result};
use crate::limits::{Limit, Limits};

/// What one pass over an archive found.
#[derive(Default)]
pub(super) struct Scanned {
    pub(super) members: HashMap<String, Member>,
    pub(super) manifest_json: Option<Vec<u8>>,
    pub(super) repositories: Option<Vec<u8>>,
    /// Pre-1.10 layer metadata (`<id>/json`), by layer id.
    pub(super) v1_json: HashMap<String, Vec<u8>>,
}

/// How an archive file is read: a plain regular file in place; anything else (compressed, a
/// pipe, a FIFO, a device) once, as a stream.
pub(super) enum ArchiveFile {
    InPlace(File),
    Stream(File),
}

pub(super) fn open_archive_file(path: &Path) -> Result<ArchiveFile> {
    let file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let metadata = file.metadata().map_err(|e| Error::io("cannot stat", path, e))?;
    if !metadata.is_file() {
        return Ok(ArchiveFile::Stream(file));
    }
    let mut head = [0u8; 4];
    let n = file.read_at(&mut head, 0).map_err(|e| Error::io("cannot read", path, e))?;
    match (n, Codec::detect(&head[..n])) {
        (0, _) => Err(invalid_archive(format!("{} is empty", path.display()))),
        (_, Some(_)) => Ok(ArchiveFile::Stream(file)),
        (_, None) => Ok(ArchiveFile::InPlace(file)),
    }
}

/// Indexes a plain archive file: its regular members are recorded where they are.
pub(super) fn scan_file(file: &File, memory: &MemoryBudget, limits: &Limits) -> Result<Scanned> {
    let guard = InputGuard::new(limits, "invalid docker archive");
    let mut archive = tar::Archive::new(Guarded { inner: file, guard: guard.clone() });
    let entries = archive.entries_with_seek().map_err(|e| not_a_tar(&e))?;
    scan(entries, &guard, memory, limits, true, |_, entry| {
        Ok(Some(Member::InPlace { offset: entry.raw_file_position(), size: entry.size() }))
    })
}

/// Reads an archive once from `input` (plain, gzip or zstd, told by magic bytes), handing its
/// regular members to `on_file`, to the very end: a gzip CRC, trailing garbage or truncation is
/// an error, and what follows the last member is held to the header limit (it is read as
/// headers are).
pub(super) fn scan_stream<'a>(
    input: impl Read + 'a,
    memory: &MemoryBudget,
    limits: &Limits,
    on_file: impl FnMut(&str, &mut tar::Entry<'_, Guarded<Box<dyn Read + 'a>>>) -> Result<Option<Member>>,
) -> Result<Scanned> {
    let guard = InputGuard::new(limits, "invalid docker archive");
    let (input, empty) = guarded_input(input, &guard)?;
    if empty {
        return Err(invalid_archive("it is empty"));
    }
    let mut archive = tar::Archive::new(input);
    let entries = archive.entries().map_err(|e| not_a_tar(&e))?;
    let scanned = scan(entries, &guard, memory, limits, false, on_file)?;
    guard.count_headers();
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(|e| {
        let err = invalid_archive(format!("corrupt after its last member: {}", excerpt(&e.to_string())));
        guard.explain(err, limits, "after its last member")
    })?;
    Ok(scanned)
}

fn not_a_tar(err: &io::Error) -> Error {
    invalid_archive(format!("not a tar archive: {}", excerpt(&err.to_string())))
}

/// Goes through the members of an archive once, checking each (see the module), recording
/// links, reading the metadata members into memory and handing every other regular member to
/// `on_file`, which records what it returns. From a stream (`seekable` false) what `on_file`
/// leaves unread of a member is read to its end here, so that it is not taken for header bytes.
fn scan<R: Read>(
    mut entries: tar::Entries<'_, R>,
    guard: &InputGuard,
    memory: &MemoryBudget,
    limits: &Limits,
    seekable: bool,
    mut on_file: impl FnMut(&str, &mut tar::Entry<'_, R>) -> Result<Option<Member>>,
) -> Result<Scanned> {
    let mut scanned = Scanned::default();
    let mut seen = HashSet::new();
    let mut count = 0u64;
    loop {
        // What the tar reader reads to find the next member (headers, long names, PAX
        // records) is held in memory whole: it is capped; the member's own bytes are not.
        guard.count_headers();
        let Some(entry) = entries.next() else { break };
        guard.pause();
        count += 1;
        let mut entry = entry.map_err(|e| {
            let err = match count {
                1 => invalid_archive(format!("not a tar archive: {}", excerpt(&e.to_string()))),
                n => invalid_archive(format!("cannot read member {n}: {}", excerpt(&e.to_string()))),
            };
            guard.explain(err, limits, &format!("before member {count}"))
        })?;
        if count > limits.archive_members {
            return Err(limits.exceeded(Limit::ArchiveMembers, "invalid docker archive: it has more members"));
        }
        let result = scan_member(&mut scanned, &mut seen, &mut entry, memory, limits, &mut on_file);
        let drained = match (&result, seekable) {
            (Ok(()), false) => io::copy(&mut entry, &mut io::sink()).map(|_| ()).map_err(|e| {
                invalid_archive(format!("member {count} is truncated or corrupt: {}", excerpt(&e.to_string())))
            }),
            _ => Ok(()),
        };
        result.and(drained).map_err(|err| guard.explain(err, limits, &format!("before member {count}")))?;
    }
    Ok(scanned)
}

fn scan_member<R: Read>(
    scanned: &mut Scanned,
    seen: &mut HashSet<String>,
    entry: &mut tar::Entry<'_, R>,
    memory: &MemoryBudget,
    limits: &Limits,
    on_file: &mut impl FnMut(&str, &mut tar::Entry<'_, R>) -> Result<Option<Member>>,
) -> Result<()> {
    let raw_name = String::from_utf8(entry.path_bytes().into_owned())
        .map_err(|_| invalid_archive("a member name is not UTF-8"))?;
    memory.hold(raw_name.len() as u64, "a member name")?;
    let name = clean_path("", &raw_name)
        .ok_or_else(|| invalid_archive(format!("member {} leaves the archive", excerpt(&raw_name))))?;
    let kind = entry.header().entry_type();
    // `./` and the like are the archive's root, as `tar -C dir -cf a.tar .` writes it.
    if kind.is_dir() {
        return Ok(());
    }
    if name.is_empty() {
        return Err(invalid_archive(format!("member {} names the archive's root", excerpt(&raw_name))));
    }
    if !seen.insert(name.clone()) {
        return Err(invalid_archive(format!("member {} appears twice", excerpt(&name))));
    }
    if kind.is_symlink() || kind.is_hard_link() {
        let target = entry
            .link_name_bytes()
            .and_then(|t| String::from_utf8(t.into_owned()).ok())
            .ok_or_else(|| invalid_archive(format!("link {} has no UTF-8 target", excerpt(&name))))?;
        memory.hold(target.len() as u64, "a link target")?;
        // Symlinks are relative to their directory, hard links to the archive root.
        let base = if kind.is_symlink() { name.rsplit_once('/').map_or("", |(dir, _)| dir) } else { "" };
        let target = clean_path(base, &target).ok_or_else(|| {
            invalid_archive(format!("link {} -> {} leaves the archive", excerpt(&name), excerpt(&target)))
        })?;
        scanned.members.insert(name, Member::Link(target));
        return Ok(());
    }
    if !kind.is_file() {
        return Ok(());
    }
    match name.as_str() {
        "manifest.json" => {
            scanned.manifest_json = Some(read_json_member(&name, entry, memory, limits, Limit::ArchiveManifestSize)?)
        }
        "repositories" => {
            scanned.repositories = Some(read_json_member(&name, entry, memory, limits, Limit::ArchiveManifestSize)?)
        }
        // The inner layout's own files: the images are found through manifest.json.
        "oci-layout" | "index.json" => {}
        _ if name.ends_with("/VERSION") => {}
        _ if name.ends_with("/json") => {
            let bytes = read_json_member(&name, entry, memory, limits, Limit::JsonSize)?;
            scanned.v1_json.insert(name.trim_end_matches("/json").to_owned(), bytes);
        }
        _ => {
            if let Some(member) = on_file(&name, entry)? {
                scanned.members.insert(name, member);
            }
        }
    }
    Ok(())
}

/// Reads a metadata member whole, up to the value of `limit` bytes, held against `memory`.
fn read_json_member(
    name: &str,
    entry: impl Read,
    memory: &MemoryBudget,
    limits: &Limits,
    limit: Limit,
) -> Result<Vec<u8>> {
    let mut failed = None;
    let source = SourceRead { inner: entry, failed: &mut failed };
    let bytes = limits.read_capped(source, limit, name).map_err(|err| match &failed {
        Some(reason) => invalid_archive(format!("{name} is truncated or corrupt: {}", excerpt(reason))),
        None => err,
    })?;
    memory.hold(bytes.len() as u64, excerpt(name))?;
    Ok(bytes)
}

/// The images a pass found: those of `manifest.json`, else those `repositories` names (a
/// pre-1.10 archive, which containers/image refuses: each tag names its top layer, whose
/// `<id>/json` names its parent, and so on down; the config is `<top>/json`, which the reader
/// makes into an image config). The images' layer lists are held against `memory`.
pub(super) fn items_of(scanned: &Scanned, memory: &MemoryBudget) -> Result<Vec<ManifestItem>> {
    match (&scanned.manifest_json, &scanned.repositories) {
        (Some(manifest_json), _) => serde_json::from_slice(manifest_json).map_err(|e| {
            invalid_archive(format!("manifest.json is not a list of images: {}", excerpt(&e.to_string())))
        }),
        (None, Some(repositories)) => {
            let repositories: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_slice(repositories)
                .map_err(|e| {
                    invalid_archive(format!(
                        "repositories is not a map of repositories to tags: {}",
                        excerpt(&e.to_string())
                    ))
                })?;
            let layers = V1Layers::new(&scanned.v1_json);
            let mut items: Vec<ManifestItem> = Vec::new();
            for (repo, tags) in repositories {
                for (tag, top) in tags {
                    let repo_tag = format!("{repo}:{tag}");
                    let config = format!("{top}/json");
                    if let Some(item) = items.iter_mut().find(|i| i.config == config) {
                        item.repo_tags.push(repo_tag);
                        continue;
                    }
                    let chain = layers.chain(&top)?;
                    memory.hold(chain.iter().map(|id| id.len() as u64 + 10).sum(), "the layers of the images")?;
                    items.push(ManifestItem {
                        config,
                        repo_tags: vec![repo_tag],
                        layers: chain.iter().rev().map(|id| format!("{id}/layer.tar")).collect(),
                        parent: String::new(),
                        layer_sources: Default::default(),
                    });
                }
            }
            Ok(items)
        }
        (None, None) => Err(invalid_archive("it has neither manifest.json nor repositories")),
    }
}

/// The `<id>/json` files of a pre-1.10 archive, each parsed once, when first needed.
pub(super) struct V1Layers<'a> {
    json: &'a HashMap<String, Vec<u8>>,
    parsed: RefCell<HashMap<String, Rc<V1Layer>>>,
}

/// What the configs made from `<id>/json` files need of each layer.
pub(super) struct V1Layer {
    pub(super) parent: Option<String>,
    pub(super) created: serde_json::Value,
    /// The command that made the layer (`container_config.Cmd`, joined).
    pub(super) created_by: Option<String>,
}

impl<'a> V1Layers<'a> {
    pub(super) fn new(json: &'a HashMap<String, Vec<u8>>) -> Self {
        V1Layers { json, parsed: RefCell::new(HashMap::new()) }
    }

    /// The layer's `<id>/json`, parsed whole.
    pub(super) fn object(&self, id: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
        let bytes =
            self.json.get(id).ok_or_else(|| invalid_archive(format!("layer {} has no json file", excerpt(id))))?;
        serde_json::from_slice(bytes).map_err(|e| {
            invalid_archive(format!("{}/json is not a JSON object: {}", excerpt(id), excerpt(&e.to_string())))
        })
    }

    pub(super) fn layer(&self, id: &str) -> Result<Rc<V1Layer>> {
        if let Some(layer) = self.parsed.borrow().get(id) {
            return Ok(layer.clone());
        }
        let json = self.object(id)?;
        let cmd = json.get("container_config").and_then(|c| c.get("Cmd")).and_then(|c| c.as_array());
        let layer = Rc::new(V1Layer {
            parent: json.get("parent").and_then(|p| p.as_str()).map(str::to_owned),
            created: json.get("created").cloned().unwrap_or_default(),
            created_by: cmd.map(|cmd| cmd.iter().filter_map(|part| part.as_str()).collect::<Vec<_>>().join(" ")),
        });
        self.parsed.borrow_mut().insert(id.to_owned(), layer.clone());
        Ok(layer)
    }

    /// The ids from `top` down to the base layer, following `parent`: no longer than the
    /// number of layers (a longer chain is a loop).
    pub(super) fn chain(&self, top: &str) -> Result<Vec<String>> {
        let mut chain = vec![top.to_owned()];
        while let Some(parent) = self.layer(chain.last().map_or(top, String::as_str))?.parent.clone() {
            if chain.len() >= self.json.len() {
                return Err(invalid_archive(format!("the parents of layer {} form a loop", excerpt(top))));
            }
            chain.push(parent);
        }
        Ok(chain)
    }
}

/// The images an archive's `manifest.json` (or pre-1.10 `repositories`) lists, read in one pass
/// without storing anything, with the default limits.
pub fn read_manifest_items(input: impl Read) -> Result<Vec<ManifestItem>> {
    read_manifest_items_with(input, &Limits::default())
}

/// `read_manifest_items` with `limits` (what it holds in memory, the header bytes before each
/// member, decompression, the metadata sizes).
pub fn read_manifest_items_with(input: impl Read, limits: &Limits) -> Result<Vec<ManifestItem>> {
    let memory = MemoryBudget::new(limits);
    let scanned = scan_stream(input, &memory, limits, |_, _| Ok(None))?;
    items_of(&scanned, &memory)
}

/// The images of the archive file at `path`, found as an import finds them: a plain file is
/// indexed in place, anything else (compressed, a pipe) read once.
pub fn list_docker_archive(path: &Path, limits: &Limits) -> Result<Vec<ManifestItem>> {
    match open_archive_file(path)? {
        ArchiveFile::Stream(file) => read_manifest_items_with(file, limits),
        ArchiveFile::InPlace(file) => {
            let memory = MemoryBudget::new(limits);
            items_of(&scan_file(&file, &memory, limits)?, &memory)
        }
    }
}

/// What one archive read holds in memory (member names, metadata, small members, configs):
/// at most `archive_json_total` bytes, all together. Nothing held is given back before the end.
pub(super) struct MemoryBudget {
    held: AtomicU64,
    limits: Limits,
}

impl MemoryBudget {
    pub(super) fn new(limits: &Limits) -> Self {
        MemoryBudget { held: AtomicU64::new(0), limits: *limits }
    }

    pub(super) fn hold(&self, bytes: u64, what: impl std::fmt::Display) -> Result<()> {
        let held = self.held.fetch_add(bytes, Ordering::Relaxed).saturating_add(bytes);
        match held > self.limits.archive_json_total {
            true => Err(self.limits.exceeded(
                Limit::ArchiveJsonTotal,
                format!("invalid docker archive: with {what}, the reader would hold {held} bytes of it in memory"),
            )),
            false => Ok(()),
        }
    }
}

/// `input` as the tar reader (or a layer's reader) reads it: decompressed when it starts with
/// gzip or zstd magic, counted by `guard`. Also says whether it is empty.
pub(super) fn guarded_input<'a>(
    input: impl Read + 'a,
    guard: &InputGuard,
) -> Result<(Guarded<Box<dyn Read + 'a>>, bool)> {
    let mut buffered = BufReader::with_capacity(IO_CHUNK, CountedInput { inner: input, guard: guard.clone() });
    let head = buffered.fill_buf().map_err(|e| Error::new(ErrorKind::Io, format!("cannot read: {e}")))?;
    let empty = head.is_empty();
    let inner: Box<dyn Read + 'a> = match Codec::detect(head) {
        Some(codec) => {
            guard.0.compressed.set(true);
            codec.decoder(buffered)?
        }
        None => Box::new(buffered),
    };
    Ok((Guarded { inner, guard: guard.clone() }, empty))
}

/// Counts what is read of one input, which a `Guarded` reader passes to the tar reader:
/// header bytes (while counting them), and decompressed bytes against compressed ones. A
/// tripped limit fails every read after it and is what `explain` reports.
#[derive(Clone)]
pub(super) struct InputGuard(Rc<GuardState>);

struct GuardState {
    /// What the messages call the input ("invalid docker archive", a layer).
    subject: String,
    header_limit: u64,
    expansion_limit: u64,
    /// Bytes read since the tar reader began looking for the next member; None while a
    /// member's own bytes are read.
    header_bytes: Cell<Option<u64>>,
    compressed: Cell<bool>,
    input_bytes: Cell<u64>,
    output_bytes: Cell<u64>,
    tripped: Cell<Option<Limit>>,
}

impl InputGuard {
    pub(super) fn new(limits: &Limits, subject: impl Into<String>) -> Self {
        InputGuard(Rc::new(GuardState {
            subject: subject.into(),
            header_limit: limits.archive_header_size,
            expansion_limit: limits.archive_expansion,
            header_bytes: Cell::new(None),
            compressed: Cell::new(false),
            input_bytes: Cell::new(0),
            output_bytes: Cell::new(0),
            tripped: Cell::new(None),
        }))
    }

    pub(super) fn count_headers(&self) {
        self.0.header_bytes.set(Some(0));
    }

    pub(super) fn pause(&self) {
        self.0.header_bytes.set(None);
    }

    /// The error to report for `err`, which came of reading through this guard: the limit's,
    /// when one tripped. `position` says where header bytes were being read ("before member 3").
    pub(super) fn explain(&self, err: Error, limits: &Limits, position: &str) -> Error {
        let state = &self.0;
        match state.tripped.get() {
            Some(Limit::ArchiveHeaderSize) => limits.exceeded(
                Limit::ArchiveHeaderSize,
                format!("{}: the header bytes {position} (long names, PAX records)", state.subject),
            ),
            Some(limit) => limits.exceeded(
                limit,
                format!(
                    "{}: {} bytes decompressed from {} compressed bytes",
                    state.subject,
                    state.output_bytes.get(),
                    state.input_bytes.get()
                ),
            ),
            None => err,
        }
    }

    fn count_output(&self, n: usize) -> io::Result<()> {
        let state = &self.0;
        if state.tripped.get().is_some() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "over a limit"));
        }
        let n = n as u64;
        if let Some(count) = state.header_bytes.get() {
            let count = count.saturating_add(n);
            state.header_bytes.set(Some(count));
            if count > state.header_limit {
                state.tripped.set(Some(Limit::ArchiveHeaderSize));
            }
        }
        let output = state.output_bytes.get().saturating_add(n);
        state.output_bytes.set(output);
        if state.compressed.get() && output > state.input_bytes.get().saturating_mul(state.expansion_limit) {
            state.tripped.set(Some(Limit::ArchiveExpansion));
        }
        match state.tripped.get() {
            Some(limit) => Err(io::Error::new(io::ErrorKind::InvalidData, format!("over the {} limit", limit.name()))),
            None => Ok(()),
        }
    }
}

/// The input's bytes, counted before they are decompressed.
struct CountedInput<R> {
    inner: R,
    guard: InputGuard,
}

impl<R: Read> Read for CountedInput<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let state = &self.guard.0;
        state.input_bytes.set(state.input_bytes.get().saturating_add(n as u64));
        Ok(n)
    }
}

/// The (decompressed) input as its reader sees it, counted by an `InputGuard`.
pub(super) struct Guarded<R> {
    pub(super) inner: R,
    pub(super) guard: InputGuard,
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.guard.count_output(n)?;
        Ok(n)
    }
}

impl<R: io::Seek> io::Seek for Guarded<R> {
    fn seek(&mut self, position: io::SeekFrom) -> io::Result<u64> {
        self.inner.seek(position)
    }
}

/// Remembers the first error of the reader it wraps, so that a failure to read the archive is
/// told from a failure to store what was read.
pub(super) struct SourceRead<'a, R> {
    pub(super) inner: R,
    pub(super) failed: &'a mut Option<String>,
}

impl<R: Read> Read for SourceRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|err| {
            self.failed.get_or_insert_with(|| err.to_string());
        })
    }
}
