//! The image graph: which blobs a root leads to. fsck checks what it finds on the way; GC
//! marks it.
//!
//! How a blob is read depends only on the media type it is reached with, never on what reached
//! it first: each (digest, way of reading, declared size) is visited once, so a manifest reached
//! untyped from a lease and typed from index.json is parsed as a manifest either way. The walk
//! is breadth-first, so each is visited at its shallowest depth. The ways of reading:
//! - a document media type (`spec::is_document_media_type`): parsed as that type; its children
//!   are its descriptors (Docker schema 1: its `fsLayers`);
//! - a layer media type (`spec::is_layer_media_type`): a leaf, never read;
//! - any other media type, or none (leases, labels, ingests, blobs committed during GC): a blob
//!   that is JSON (its first byte past whitespace opens an object or array, it parses, and it is
//!   within the JSON limit) is a document, parsed as the type it names or shows
//!   (`spec::media_type_of`) when that type has a parser and it parses as one; otherwise its
//!   children are every object in it shaped like a descriptor (`mediaType`, `digest`, `size`).
//!   Anything else is a leaf.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

use serde_json::Value;

use crate::cancel::Cancel;
use crate::digest::{Algorithm, Digest};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::layout::BlobDirs;
use crate::spec::{
    Child, Descriptor, Document, ImageIndex, descriptor_shaped_objects, is_document_media_type, is_layer_media_type,
    is_manifest_media_type, media_type_of, parse_document,
};

/// Prefix of labels whose value is the digest of a blob to keep alive with the labelled one
/// (`ocicas::gc::LABEL_GC_REF_PREFIX`).
pub const LABEL_GC_REF_PREFIX: &str = "ocicas.gc.ref.";

/// The blob label `key`=`value` keeps alive with the labelled one, when it is such a label
/// (`ocicas.gc.ref.<anything>=<digest>`): an edge of the graph GC marks and the public walk
/// follows.
pub(crate) fn label_edge_target(key: &str, value: &str) -> Option<Digest> {
    if key.starts_with(LABEL_GC_REF_PREFIX) { value.parse().ok() } else { None }
}

/// A digest as its raw bytes: 40 bytes and no allocation for a sha256, where a `Digest` takes
/// 112 (its hex on the heap). GC and fsck keep one per blob of the store, which may be millions.
/// Ordered as the digests are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum BlobKey {
    Sha256([u8; 32]),
    Sha512(Box<[u8; 64]>),
}

impl BlobKey {
    pub(crate) fn of(digest: &Digest) -> BlobKey {
        // A Digest's hex is checked when it is made: it always decodes to its algorithm's size.
        BlobKey::from_file_name(digest.algorithm(), digest.hex().as_bytes())
            .expect("a Digest holds lowercase hex of its algorithm's length")
    }

    /// The key of the blob file `name` in the directory of `algorithm`: None unless the name
    /// is the lowercase hex of a digest of that algorithm (other tools' junk, temp files). A
    /// listing of a million blobs makes no `Digest` (nor its String) per entry.
    pub(crate) fn from_file_name(algorithm: Algorithm, name: &[u8]) -> Option<BlobKey> {
        match algorithm {
            Algorithm::Sha256 => {
                let mut bytes = [0u8; 32];
                decode_lowercase_hex(name, &mut bytes)?;
                Some(BlobKey::Sha256(bytes))
            }
            Algorithm::Sha512 => {
                let mut bytes = Box::new([0u8; 64]);
                decode_lowercase_hex(name, &mut bytes[..])?;
                Some(BlobKey::Sha512(bytes))
            }
        }
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        match self {
            BlobKey::Sha256(_) => Algorithm::Sha256,
            BlobKey::Sha512(_) => Algorithm::Sha512,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            BlobKey::Sha256(bytes) => bytes,
            BlobKey::Sha512(bytes) => &bytes[..],
        }
    }

    /// The name of the blob's file (its digest's hex), written into `buf`: GC stats and
    /// removes listed blobs by name without a heap allocation each.
    pub(crate) fn file_name<'b>(&self, buf: &'b mut [u8; 128]) -> &'b str {
        let hex = &mut buf[..self.bytes().len() * 2];
        hex::encode_to_slice(self.bytes(), hex).expect("the buffer holds the hex of the longest digest");
        std::str::from_utf8(hex).expect("hex is ASCII")
    }

    pub(crate) fn digest(&self) -> Digest {
        let mut name = [0u8; 128];
        Digest::from_parts(self.algorithm(), self.file_name(&mut name))
            .expect("the hex of a digest's bytes is a valid digest")
    }
}

impl Ord for BlobKey {
    /// The digests' order (sha256 first, then by bytes, as their hex sorts), eight bytes at a
    /// time: GC sorts and searches a million keys.
    fn cmp(&self, other: &Self) -> Ordering {
        fn words(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
            bytes.chunks_exact(8).map(|word| u64::from_be_bytes(word.try_into().expect("eight bytes")))
        }
        let by_bytes = |a: &[u8], b: &[u8]| words(a).cmp(words(b));
        match (self, other) {
            (BlobKey::Sha256(a), BlobKey::Sha256(b)) => by_bytes(a, b),
            (BlobKey::Sha512(a), BlobKey::Sha512(b)) => by_bytes(&a[..], &b[..]),
            (BlobKey::Sha256(_), BlobKey::Sha512(_)) => Ordering::Less,
            (BlobKey::Sha512(_), BlobKey::Sha256(_)) => Ordering::Greater,
        }
    }
}

impl PartialOrd for BlobKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Decodes `hex` into `out`, which it must fill exactly; None unless it is all lowercase hex.
fn decode_lowercase_hex(hex: &[u8], out: &mut [u8]) -> Option<()> {
    if hex.len() != out.len() * 2 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(())
}

/// One arrival at a blob.
#[derive(Debug, Clone)]
pub(crate) struct Reached {
    pub digest: Digest,
    /// Empty when the referrer does not say.
    pub media_type: String,
    /// None when the referrer does not say.
    pub size: Option<u64>,
    /// The document this is a child of; None for a root.
    pub parent: Option<Rc<Digest>>,
    /// How it was reached: the root's name, then the digest of each document on the way.
    pub path: Rc<str>,
    depth: u64,
}

impl Reached {
    /// A root that says what it points at.
    pub(crate) fn root(descriptor: &Descriptor, name: String) -> Reached {
        Reached::from_child(Child::from(descriptor), name)
    }

    /// A root that names a blob only (a lease, a label, an ingest, a blob committed during GC).
    pub(crate) fn untyped(digest: Digest, name: String) -> Reached {
        Reached::from_child(Child { digest, media_type: String::new(), size: None }, name)
    }

    fn from_child(child: Child, name: String) -> Reached {
        Reached {
            digest: child.digest,
            media_type: child.media_type,
            size: child.size,
            parent: None,
            path: Rc::from(name),
            depth: 0,
        }
    }

    /// 0 for a root, 1 for what a root references, and so on.
    pub(crate) fn depth(&self) -> u64 {
        self.depth
    }

    /// The blob and the way to it, for reports: `sha256:… (media type) reached by PATH`.
    pub(crate) fn describe(&self) -> String {
        let media_type = if self.media_type.is_empty() { String::new() } else { format!(" ({})", self.media_type) };
        format!("{}{media_type} reached by {}", self.digest, self.path)
    }
}

/// The roots index.json gives, each named by its ref name or, untagged, its position.
pub(crate) fn index_roots(index: &ImageIndex) -> Vec<Reached> {
    index.manifests.iter().enumerate().map(|(position, d)| Reached::root(d, index_entry_name(d, position))).collect()
}

/// How reports name entry `position` of index.json.
pub(crate) fn index_entry_name(descriptor: &Descriptor, position: usize) -> String {
    match descriptor.ref_name() {
        Some(name) => format!("index.json {name:?}"),
        None => format!("index.json entry {position}"),
    }
}

/// The report of a blob the walk did not find: `blob D (MEDIA TYPE) referenced by PATH is missing`.
pub(crate) fn missing_line(reached: &Reached) -> String {
    let media_type = if reached.media_type.is_empty() { String::new() } else { format!(" ({})", reached.media_type) };
    format!("blob {}{media_type} referenced by {} is missing", reached.digest, reached.path)
}

/// Whether a blob reached with `media_type` may have children the walk has to know: a manifest
/// or index, or a media type without a parser. Not a config or layer, and not an untyped
/// arrival, which is followed when it reads as a document and is otherwise a leaf.
pub(crate) fn may_have_children(media_type: &str) -> bool {
    is_manifest_media_type(media_type) || ReadAs::of(media_type) == ReadAs::Sniff && !media_type.is_empty()
}

/// What the walk found at one node.
pub(crate) enum Node<'d> {
    /// The blob is not stored.
    Missing,
    /// The blob is stored but not with the declared size; its children are not followed.
    SizeMismatch(u64),
    /// A stored blob that is not a document (a layer, or a blob of another type that is not JSON).
    Leaf,
    /// A parsed document; its children are walked next.
    Document(&'d Document),
    /// JSON of a media type without a parser; its objects shaped like descriptors (this many)
    /// are walked next.
    UnknownJson(usize),
    /// A blob that could not be read, or a document that does not parse as its media type; its
    /// children are unknown.
    Unreadable(Error),
    /// A document with children nested too deep for `Limits::follows_children_at`; they are not
    /// followed (a cycle cannot be built from digests, but a very deep chain can be crafted).
    TooDeep,
}

/// How a blob is read, by the media type it is reached with (see the module comment).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ReadAs {
    Parse(String),
    Layer,
    Sniff,
}

impl ReadAs {
    fn of(media_type: &str) -> ReadAs {
        if is_document_media_type(media_type) {
            ReadAs::Parse(media_type.to_owned())
        } else if is_layer_media_type(media_type) {
            ReadAs::Layer
        } else {
            ReadAs::Sniff
        }
    }
}

/// What reading a blob gave.
enum Content {
    Leaf,
    Document(Box<Document>),
    UnknownJson(Vec<Child>),
}

/// A breadth-first walk that visits every (digest, way of reading, declared size) once, however
/// many parents share it.
pub(crate) struct GraphWalk<'e> {
    engine: &'e Engine,
    /// Every digest reached and found stored, with its stored size.
    visited: HashMap<BlobKey, u64>,
    seen: HashSet<(BlobKey, ReadAs, Option<u64>)>,
    /// Extra edges from labels (`ocicas.gc.ref.*`), by source digest.
    label_edges: HashMap<Digest, Vec<Digest>>,
    /// Whether each blob's label edges are read when it is first visited, instead of taken
    /// from `label_edges` (see `reading_labels`).
    reads_labels: bool,
    /// A walk stops early once this is requested (see `stopped_by`).
    cancel: Cancel,
    /// Blobs known to be stored (see `knowing_stored`), sorted.
    listed: &'e [BlobKey],
    /// The stored size of each of `listed`, when read before the walk (see `knowing_sizes`).
    listed_sizes: Option<&'e [Option<u64>]>,
}

impl<'e> GraphWalk<'e> {
    pub(crate) fn new(engine: &'e Engine, label_edges: HashMap<Digest, Vec<Digest>>) -> Self {
        GraphWalk {
            engine,
            visited: HashMap::new(),
            seen: HashSet::new(),
            label_edges,
            reads_labels: false,
            cancel: Cancel::default(),
            listed: &[],
            listed_sizes: None,
        }
    }

    /// The walk, made to stop before its next blob once `cancel` is requested. A stopped walk
    /// has not seen everything: its caller checks `cancel` after each walk.
    pub(crate) fn stopped_by(self, cancel: &Cancel) -> Self {
        GraphWalk { cancel: cancel.clone(), ..self }
    }

    /// The walk, taking a layer reached with a declared size as stored at that size, without a
    /// stat, when it is in `listed` (sorted: the store's listing of its blobs). GC's mark needs
    /// only to know that a layer exists (a layer has no children, and a layer removed since the
    /// listing was not garbage to sweep); it saves a stat per layer on the mark's one thread
    /// (GC reads the sizes it reports afterwards, many at once). fsck checks sizes: not it.
    pub(crate) fn knowing_stored(self, listed: &'e [BlobKey]) -> Self {
        GraphWalk { listed, ..self }
    }

    /// The walk, taking a layer in `listed` (sorted) at its size in `sizes` (one per listed
    /// blob, read by many stats at once before the walk) instead of a stat of its own: fsck of
    /// a million blobs checks every layer's size without a million stats on the walk's thread.
    /// A blob whose size could not be read (None) is looked at by the walk, which reports why.
    pub(crate) fn knowing_sizes(self, listed: &'e [BlobKey], sizes: &'e [Option<u64>]) -> Self {
        GraphWalk { listed, listed_sizes: Some(sizes), ..self }
    }

    /// The walk, reading the labels of each blob it visits for its label edges: the public walk
    /// of one image reads the labels of the blobs it reaches, not those of the whole store as
    /// GC does (it needs them all for its roots).
    pub(crate) fn reading_labels(self) -> Self {
        GraphWalk { reads_labels: true, ..self }
    }

    /// The targets of `digest`'s label edges, read from its labels. A label map that cannot
    /// be read gives none here: GC and fsck report it.
    fn read_label_edges(&self, digest: &Digest) -> Vec<Digest> {
        let labels = self.engine.info(digest).map(|info| info.labels).unwrap_or_default();
        labels.iter().filter_map(|(key, value)| label_edge_target(key, value)).collect()
    }

    /// Replaces the label edges (GC re-reads labels under its lock before sweeping). Returns,
    /// as roots, the targets of the edges from blobs already visited: the walk does not come
    /// back to those blobs, so it would miss a label added since.
    pub(crate) fn set_label_edges(&mut self, label_edges: HashMap<Digest, Vec<Digest>>) -> Vec<Reached> {
        self.label_edges = label_edges;
        let from_visited = self.label_edges.iter().filter(|(source, _)| self.is_visited(source));
        from_visited
            .flat_map(|(source, targets)| {
                let name = format!("label of {source}");
                targets.iter().map(move |target| Reached::untyped(target.clone(), name.clone()))
            })
            .collect()
    }

    /// Whether `digest` was reached and found stored.
    pub(crate) fn is_visited(&self, digest: &Digest) -> bool {
        self.visited.contains_key(&BlobKey::of(digest))
    }

    /// The stored size of `blob`, if it was reached and found stored.
    pub(crate) fn visited_size(&self, blob: &BlobKey) -> Option<u64> {
        self.visited.get(blob).copied()
    }

    /// Every blob reached and found stored.
    #[cfg(test)]
    pub(crate) fn visited_digests(&self) -> impl Iterator<Item = Digest> {
        self.visited.keys().map(BlobKey::digest)
    }

    /// How many distinct blobs were reached and found stored.
    pub(crate) fn visited_count(&self) -> usize {
        self.visited.len()
    }

    /// Walks from `roots`, calling `on_node` once per newly seen arrival. Blobs are looked up
    /// in `blob_dirs` (one stat each, no path resolved), which the caller opens when the walk's
    /// view must begin: GC opens them again once it holds the store lock.
    pub(crate) fn walk(
        &mut self,
        blob_dirs: &BlobDirs,
        roots: Vec<Reached>,
        mut on_node: impl FnMut(&Reached, Node<'_>),
    ) {
        let mut pending: VecDeque<Reached> = roots.into();
        while let Some(reached) = pending.pop_front() {
            if self.cancel.is_requested() {
                return;
            }
            self.visit(blob_dirs, reached, &mut pending, &mut on_node);
        }
    }

    /// Visits one arrival; queues its children on `pending`, but visits its layers at once: a
    /// layer has no children, and nothing queued can reach it at a shallower depth, so it is
    /// visited as it would be in its turn, and the queue holds documents, not every layer of
    /// every image (half a million, a quarter of a gigabyte, on a big store).
    fn visit<F: FnMut(&Reached, Node<'_>)>(
        &mut self,
        blob_dirs: &BlobDirs,
        reached: Reached,
        pending: &mut VecDeque<Reached>,
        on_node: &mut F,
    ) {
        let read_as = ReadAs::of(&reached.media_type);
        let blob = BlobKey::of(&reached.digest);
        let key = (blob.clone(), read_as.clone(), reached.size);
        if !self.seen.insert(key.clone()) {
            return;
        }
        let listed = if read_as == ReadAs::Layer { self.listed.binary_search(&blob).ok() } else { None };
        let listed_layer = match (listed, self.listed_sizes) {
            (Some(position), Some(sizes)) => sizes[position],
            (Some(_), None) => reached.size,
            (None, _) => None,
        };
        let size =
            listed_layer.map_or_else(|| self.engine.blob_size_of(&reached.digest, blob_dirs.stat(&reached.digest)), Ok);
        let stored = match size {
            Ok(size) => size,
            Err(err) if err.kind() == ErrorKind::NotFound => {
                // Not seen after all: a later walk (GC's second, under the lock) must follow
                // it if it has been committed meanwhile.
                self.seen.remove(&key);
                on_node(&reached, Node::Missing);
                return;
            }
            Err(err) => {
                on_node(&reached, Node::Unreadable(err));
                return;
            }
        };
        if self.visited.insert(blob.clone(), stored).is_none() {
            let read;
            let targets = if self.reads_labels {
                read = self.read_label_edges(&reached.digest);
                &read
            } else {
                self.label_edges.get(&reached.digest).map_or(&[][..], Vec::as_slice)
            };
            // Label targets carry no media type or size: they are walked untyped.
            if !targets.is_empty() {
                let name = format!("{} > label of {}", reached.path, reached.digest);
                let parent = Rc::new(reached.digest.clone());
                for target in targets {
                    pending.push_back(Reached {
                        depth: reached.depth + 1,
                        parent: Some(parent.clone()),
                        ..Reached::untyped(target.clone(), name.clone())
                    });
                }
            }
        }
        if reached.size.is_some_and(|declared| declared != stored) {
            on_node(&reached, Node::SizeMismatch(stored));
            return;
        }
        let content = match &read_as {
            ReadAs::Layer => Ok(Content::Leaf),
            ReadAs::Parse(media_type) => {
                let descriptor = Descriptor::new(media_type.clone(), reached.digest.clone(), stored);
                self.engine.read_document(&descriptor).map(|document| Content::Document(Box::new(document)))
            }
            ReadAs::Sniff => self.sniff(&reached.digest, stored),
        };
        let content = match content {
            Ok(content) => content,
            Err(err) if err.kind() == ErrorKind::NotFound => {
                // Deleted since its size was read: as missing as if it never was.
                self.seen.remove(&key);
                self.visited.remove(&blob);
                on_node(&reached, Node::Missing);
                return;
            }
            Err(err) => {
                on_node(&reached, Node::Unreadable(err));
                return;
            }
        };
        let children = match &content {
            Content::Leaf => {
                on_node(&reached, Node::Leaf);
                return;
            }
            Content::Document(document) => document.children(),
            Content::UnknownJson(children) => children.clone(),
        };
        if !children.is_empty() && !self.engine.limits().follows_children_at(reached.depth) {
            on_node(&reached, Node::TooDeep);
            return;
        }
        match &content {
            Content::Document(document) => on_node(&reached, Node::Document(document)),
            _ => on_node(&reached, Node::UnknownJson(children.len())),
        }
        // Shared by the siblings, which may be many thousands waiting in the queue at once.
        let path: Rc<str> = Rc::from(format!("{} > {}", reached.path, reached.digest));
        let parent = Rc::new(reached.digest.clone());
        for child in children {
            let child = Reached {
                digest: child.digest,
                media_type: child.media_type,
                size: child.size,
                parent: Some(parent.clone()),
                path: path.clone(),
                depth: reached.depth + 1,
            };
            if ReadAs::of(&child.media_type) != ReadAs::Layer {
                pending.push_back(child);
            } else if !self.cancel.is_requested() {
                self.visit(blob_dirs, child, pending, on_node);
            }
        }
    }

    /// Reads a blob of a media type without a parser, or of none (see the module comment).
    fn sniff(&self, digest: &Digest, size: u64) -> Result<Content> {
        let limit = self.engine.max_json_size();
        if size > limit || !self.starts_like_json(digest, size)? {
            return Ok(Content::Leaf);
        }
        let bytes = self.engine.read_blob(digest, limit)?;
        let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
            return Ok(Content::Leaf);
        };
        let typed = media_type_of(&value)
            .filter(|media_type| is_document_media_type(media_type))
            .and_then(|media_type| parse_document(&media_type, &bytes).ok());
        Ok(match typed {
            Some(document) => Content::Document(Box::new(document)),
            None => Content::UnknownJson(descriptor_shaped_objects(&value)),
        })
    }

    /// Whether the blob's first byte past JSON whitespace opens an object or an array: one
    /// small read decides for most layers, before the whole blob is read and verified.
    fn starts_like_json(&self, digest: &Digest, size: u64) -> Result<bool> {
        let reader = self.engine.open_blob(digest)?;
        let mut buf = [0u8; 4096];
        let mut offset = 0;
        // `size` is within the JSON limit, so this reads at most that many bytes.
        while offset < size {
            let n = reader.read_at(&mut buf, offset)?;
            if n == 0 {
                break;
            }
            if let Some(byte) = buf[..n].iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
                return Ok(matches!(byte, b'{' | b'['));
            }
            offset += n as u64;
        }
        Ok(false)
    }
}
