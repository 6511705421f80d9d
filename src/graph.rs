//! The image graph: which blobs a descriptor leads to. fsck checks what it finds on the way;
//! GC marks it.

use std::collections::HashMap;

use crate::digest::Digest;
use crate::error::{Error, ErrorKind};
use crate::layout::Engine;
use crate::spec::{Descriptor, Document, detect_media_type, is_document_media_type, parse_document};

/// What the walk found at one node.
pub(crate) enum Node {
    /// The blob is not stored.
    Missing,
    /// The blob is stored but not with the declared size; its children are not followed.
    SizeMismatch(u64),
    /// A stored blob that is not a document (a layer, or a media type without a parser).
    Leaf,
    /// A parsed document; its children are walked next.
    Document,
    /// A document that could not be read or parsed; its children are unknown.
    Unreadable(Error),
    /// An index or manifest nested too deep for `Limits::follows_children_at`; its children are
    /// not followed (a cycle cannot be built from digests, but a very deep chain can be crafted).
    TooDeep,
}

/// The report of a blob the walk did not find: `blob D (MEDIA TYPE) referenced by P is missing`.
pub(crate) fn missing_line(descriptor: &Descriptor, parent: &str) -> String {
    let media_type =
        if descriptor.media_type.is_empty() { String::new() } else { format!(" ({})", descriptor.media_type) };
    format!("blob {}{media_type} referenced by {parent} is missing", descriptor.digest)
}

/// A depth-bounded walk that visits every digest once, however many parents share it.
pub(crate) struct GraphWalk<'e> {
    engine: &'e Engine,
    /// Every digest reached, with its stored size (0 when it is not stored).
    pub visited: HashMap<Digest, u64>,
    /// Extra edges from labels (`ocicas.gc.ref.*`), by source digest.
    label_edges: HashMap<Digest, Vec<Digest>>,
}

impl<'e> GraphWalk<'e> {
    pub(crate) fn new(engine: &'e Engine, label_edges: HashMap<Digest, Vec<Digest>>) -> Self {
        GraphWalk { engine, visited: HashMap::new(), label_edges }
    }

    /// Replaces the label edges (GC re-reads labels under its lock before sweeping).
    pub(crate) fn set_label_edges(&mut self, label_edges: HashMap<Digest, Vec<Digest>>) {
        self.label_edges = label_edges;
    }

    /// Walks from `roots` (each with a name for its parent, used in reports), calling
    /// `on_node(descriptor, parent, node)` once per newly visited digest.
    pub(crate) fn walk(&mut self, roots: Vec<(Descriptor, String)>, mut on_node: impl FnMut(&Descriptor, &str, Node)) {
        let limits = *self.engine.limits();
        let mut pending: Vec<(Descriptor, String, u64)> = roots.into_iter().map(|(d, p)| (d, p, 0)).collect();
        while let Some((descriptor, parent, depth)) = pending.pop() {
            if self.visited.contains_key(&descriptor.digest) {
                continue;
            }
            self.visited.insert(descriptor.digest.clone(), 0);
            let digest_text = descriptor.digest.to_string();
            // Label targets carry no media type or size: they are walked untyped (see sniff_document).
            for target in self.label_edges.get(&descriptor.digest).into_iter().flatten() {
                pending.push((Descriptor::new("", target.clone(), 0), format!("a label of {digest_text}"), depth + 1));
            }
            let size = match self.engine.blob_size(&descriptor.digest) {
                Ok(size) => {
                    self.visited.insert(descriptor.digest.clone(), size);
                    size
                }
                Err(err) if err.kind() == ErrorKind::NotFound => {
                    // Not visited after all: a later walk (GC's second, under the lock) must
                    // follow it if it has been committed meanwhile.
                    self.visited.remove(&descriptor.digest);
                    on_node(&descriptor, &parent, Node::Missing);
                    continue;
                }
                Err(err) => {
                    on_node(&descriptor, &parent, Node::Unreadable(err));
                    continue;
                }
            };
            let untyped = descriptor.media_type.is_empty();
            if size != descriptor.size && !untyped {
                on_node(&descriptor, &parent, Node::SizeMismatch(size));
                continue;
            }
            let document = if untyped {
                self.sniff_document(&descriptor.digest, size)
            } else if is_document_media_type(&descriptor.media_type) {
                Some(self.engine.read_document(&descriptor))
            } else {
                None
            };
            match document {
                None => on_node(&descriptor, &parent, Node::Leaf),
                Some(Err(err)) if err.kind() == ErrorKind::NotFound => {
                    // Deleted since its size was read: as missing as if it never was.
                    self.visited.remove(&descriptor.digest);
                    on_node(&descriptor, &parent, Node::Missing);
                }
                Some(Err(err)) => on_node(&descriptor, &parent, Node::Unreadable(err)),
                Some(Ok(Document::Index(_) | Document::Manifest(_))) if !limits.follows_children_at(depth) => {
                    on_node(&descriptor, &parent, Node::TooDeep)
                }
                Some(Ok(document)) => {
                    on_node(&descriptor, &parent, Node::Document);
                    pending
                        .extend(document.children().into_iter().map(|c| (c.clone(), digest_text.clone(), depth + 1)));
                }
            }
        }
    }

    /// An untyped node (from a lease or label) is followed when it is a JSON document that
    /// names or shows its media type; anything else is a leaf.
    fn sniff_document(&self, digest: &Digest, size: u64) -> Option<crate::Result<Document>> {
        if size > self.engine.max_json_size() {
            return None;
        }
        // One byte decides for most layers, before the whole blob is read and verified.
        let mut first = [0u8; 1];
        self.engine.open_blob(digest).ok()?.read_at(&mut first, 0).ok()?;
        if first != *b"{" {
            return None;
        }
        let bytes = self.engine.read_blob(digest, self.engine.max_json_size()).ok()?;
        let media_type = detect_media_type(&bytes).filter(|m| is_document_media_type(m))?;
        Some(parse_document(&media_type, &bytes))
    }
}
