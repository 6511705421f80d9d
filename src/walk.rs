//! An image's graph walked for a caller (umoci's casext `Walk`, containerd's `images.Walk`):
//! from a ref or a descriptor through indexes and manifests to configs and layers, one step
//! per blob. It is the walk GC's mark and fsck make (`graph`), so a caller sees what GC keeps:
//! each blob once, at its shallowest depth, breadth-first except that a manifest's layers come
//! right after it (its config comes in its turn, after the documents of the manifest's depth),
//! JSON of an unknown media type followed through its descriptor-shaped objects, and a reached
//! blob's `ocicas.gc.ref.*` labels followed to their targets (GC keeps those with it).
//!
//! Each step carries its blob's full descriptor as its referrer wrote it, yet the walk keeps
//! the children of two documents at a time, not of every document read: its memory is bounded
//! by the JSON limit, however many documents the graph holds (see `StepState`). A blob that
//! is not stored is one step however many documents list it.
//!
//! A blob the walk cannot go into (not stored, of another size than declared, not what its
//! media type says, nested past the walk depth limit) is a step too, carrying the error: the
//! caller decides whether that ends its walk.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use serde::Deserialize;
use serde_json::Value;

use crate::cancel::Cancel;
use crate::digest::Digest;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result, not_found};
use crate::graph::{BlobKey, GraphWalk, Node, Reached, missing_line};
use crate::limits::Limit;
use crate::spec::{Descriptor, Document};

/// One blob reached by `Engine::walk_image`.
#[derive(Debug)]
pub struct WalkStep {
    /// The blob as its referrer describes it (annotations and platform included). A blob
    /// referenced by digest alone (a Docker schema 1 layer) has size 0 here; one reached
    /// through a label of its parent (`ocicas.gc.ref.*`, as GC follows it) has no media type
    /// and size 0.
    pub descriptor: Descriptor,
    /// 0 for the root, 1 for what it references, and so on.
    pub depth: u64,
    /// The document that referenced it, or the blob whose label did; None for the root.
    pub parent: Option<Digest>,
    /// Why the walk did not go into this blob: `NotFound` (not stored), `SizeMismatch`,
    /// `DigestMismatch`, `InvalidImage` (not what its media type says), `TooLarge` (over the
    /// JSON limit, or nested past the walk depth limit), `Io`. None when it was read (a
    /// document) or found stored (a layer, which is never read).
    pub error: Option<Error>,
}

/// The full descriptors of one document's children, by (digest, media type, size): the graph
/// walk carries only what it needs to walk (digest, media type, size) to keep GC's queue small;
/// a caller wants a child's annotations and platform too.
struct ChildDescriptors {
    parent: Digest,
    by_child: HashMap<(Digest, String, u64), Descriptor>,
}

impl ChildDescriptors {
    fn of_document(parent: &Digest, document: &Document) -> ChildDescriptors {
        let mut by_child = HashMap::new();
        for child in document.descriptors() {
            by_child.entry(child_key(child)).or_insert_with(|| child.clone());
        }
        ChildDescriptors { parent: parent.clone(), by_child }
    }

    /// Reads `parent` again and takes every object of it shaped like a descriptor: the same
    /// objects a typed document's descriptors are, and the children the graph walk follows in
    /// JSON of a media type without a parser. Empty when it cannot be read again (removed
    /// since): its children's steps then carry what the graph walk knows.
    fn read(engine: &Engine, parent: &Digest) -> ChildDescriptors {
        let mut by_child = HashMap::new();
        let value = engine
            .read_blob(parent, engine.max_json_size())
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        // serde_json nests at most 128 levels deep, so this stack stays small.
        let mut pending: Vec<&Value> = value.iter().collect();
        while let Some(value) = pending.pop() {
            match value {
                Value::Object(object) => {
                    if let Ok(descriptor) = Descriptor::deserialize(value) {
                        by_child.entry(child_key(&descriptor)).or_insert(descriptor);
                    }
                    pending.extend(object.values());
                }
                Value::Array(items) => pending.extend(items),
                _ => {}
            }
        }
        ChildDescriptors { parent: parent.clone(), by_child }
    }
}

fn child_key(descriptor: &Descriptor) -> (Digest, String, u64) {
    (descriptor.digest.clone(), descriptor.media_type.clone(), descriptor.size)
}

/// What the public walk keeps besides the graph walk's own state, bounded by two documents:
/// the children of the document being visited (its layers are visited at once, with it), and
/// the children of the document whose queued children are being visited (they come in a run,
/// breadth-first), read again when its run begins. Keeping every document's children until
/// the walk ends would grow with the whole graph.
struct StepState {
    current: Option<ChildDescriptors>,
    queued: Option<ChildDescriptors>,
    /// Blobs already given as a `NotFound` step: the graph walk forgets a missing blob (GC's
    /// second walk must follow it if it is committed meanwhile), the caller wants it once.
    missing: HashSet<BlobKey>,
}

impl Engine {
    /// Walks the image graph of ref `ref_name`: see `walk_descriptor`. `NotFound` when the
    /// ref does not exist.
    pub fn walk_image(
        &self,
        ref_name: &str,
        cancel: &Cancel,
        on_step: impl FnMut(WalkStep) -> ControlFlow<()>,
    ) -> Result<()> {
        let root = self.ref_get(ref_name)?;
        self.walk_from(&root, format!("ref {ref_name:?}"), cancel, on_step)
    }

    /// Walks the graph under `root`, calling `on_step` once per blob (see the module comment
    /// for the order) until it returns `Break`, which ends the walk with `Ok`. A blob the walk
    /// cannot go into is a step with its error, not an error of the walk. `Cancelled` once
    /// `cancel` is requested (looked at before each step).
    pub fn walk_descriptor(
        &self,
        root: &Descriptor,
        cancel: &Cancel,
        on_step: impl FnMut(WalkStep) -> ControlFlow<()>,
    ) -> Result<()> {
        self.walk_from(root, root.digest.to_string(), cancel, on_step)
    }

    fn walk_from(
        &self,
        root: &Descriptor,
        root_name: String,
        cancel: &Cancel,
        mut on_step: impl FnMut(WalkStep) -> ControlFlow<()>,
    ) -> Result<()> {
        // The graph walk stops on a flag of its own: the callback's stop is not the caller's
        // cancel, which the walk must not request on the caller's behalf.
        let stop = Cancel::new();
        let mut walk = GraphWalk::new(self, HashMap::new()).reading_labels().stopped_by(&stop);
        let mut state = StepState { current: None, queued: None, missing: HashSet::new() };
        walk.walk(&self.layout.blob_dirs(), vec![Reached::root(root, root_name)], |reached, node| {
            if stop.is_requested() || cancel.is_requested() {
                stop.request();
                return;
            }
            let Some(step) = self.step(root, &mut state, reached, node) else {
                return;
            };
            if on_step(step).is_break() {
                stop.request();
            }
        });
        cancel.check("image walk")
    }

    /// The step for one node of the graph walk, None for a missing blob already given; keeps
    /// a document's children's descriptors for their own steps.
    fn step(&self, root: &Descriptor, state: &mut StepState, reached: &Reached, node: Node<'_>) -> Option<WalkStep> {
        let parent = reached.parent.as_deref().cloned();
        let descriptor = match &parent {
            None => root.clone(),
            Some(parent) => self.child_descriptor(state, parent, reached),
        };
        let error = match node {
            Node::Missing => {
                if !state.missing.insert(BlobKey::of(&reached.digest)) {
                    return None;
                }
                Some(not_found(missing_line(reached)))
            }
            Node::SizeMismatch(stored) => Some(Error::new(
                ErrorKind::SizeMismatch,
                format!(
                    "blob {} is {stored} bytes but its descriptor says {}",
                    reached.describe(),
                    reached.size.unwrap_or_default()
                ),
            )),
            Node::Leaf | Node::UnknownJson(_) => None,
            Node::Document(document) => {
                state.current = Some(ChildDescriptors::of_document(&reached.digest, document));
                None
            }
            Node::Unreadable(err) => Some(err),
            Node::TooDeep => Some(self.limits().exceeded(
                Limit::WalkDepth,
                format!("blob {} nests documents deeper than the walk depth", reached.describe()),
            )),
        };
        Some(WalkStep { descriptor, depth: reached.depth(), parent, error })
    }

    /// The descriptor `parent` gives the blob `reached`: from the document being visited (a
    /// layer, visited with it) or from the one whose queued children are visited now, read
    /// again when its run begins; bare (digest, media type, size) when it has none (a Docker
    /// schema 1 layer).
    fn child_descriptor(&self, state: &mut StepState, parent: &Digest, reached: &Reached) -> Descriptor {
        let size = reached.size.unwrap_or_default();
        if reached.media_type.is_empty() && reached.size.is_none() {
            // The target of a label of its parent, which no descriptor describes.
            return Descriptor::new(String::new(), reached.digest.clone(), size);
        }
        let key = (reached.digest.clone(), reached.media_type.clone(), size);
        if state.current.as_ref().is_none_or(|current| current.parent != *parent) {
            // The document being visited is done with: its layers came with it.
            state.current = None;
            if state.queued.as_ref().is_none_or(|queued| queued.parent != *parent) {
                state.queued = None;
                state.queued = Some(ChildDescriptors::read(self, parent));
            }
        }
        let known = state.current.as_ref().or(state.queued.as_ref()).and_then(|children| children.by_child.get(&key));
        known.cloned().unwrap_or_else(|| Descriptor::new(reached.media_type.clone(), reached.digest.clone(), size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::temp_engine;
    use crate::spec::{
        ImageIndex, ImageManifest, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST, Platform,
    };

    const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

    /// Stores a manifest over a config and `layers` (stored unless `missing`); returns it.
    fn store_manifest(engine: &Engine, architecture: &str, layers: &[&[u8]], missing: Option<&[u8]>) -> Descriptor {
        let mut descriptors: Vec<Descriptor> = layers
            .iter()
            .map(|bytes| {
                let stored = engine.put_blob(bytes).unwrap();
                Descriptor::new(LAYER, stored.digest, stored.size)
            })
            .collect();
        if let Some(bytes) = missing {
            let digest = Digest::of_bytes(crate::digest::Algorithm::Sha256, bytes);
            descriptors.push(Descriptor::new(LAYER, digest, bytes.len() as u64));
        }
        let config = serde_json::json!({
            "architecture": architecture, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": descriptors.iter().map(|d| d.digest.to_string()).collect::<Vec<_>>()},
        });
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
            artifact_type: None,
            config: engine.put_json(MEDIA_TYPE_IMAGE_CONFIG, &config).unwrap(),
            layers: descriptors,
            subject: None,
            annotations: Default::default(),
            extra: Default::default(),
        };
        engine.put_json(MEDIA_TYPE_IMAGE_MANIFEST, &manifest).unwrap()
    }

    /// Tags "multi": an index over an amd64 image (two layers) and an arm64 one (one layer).
    fn store_index(engine: &Engine) -> (Descriptor, Vec<Descriptor>) {
        let amd64 = Descriptor {
            platform: Some(Platform::new("linux", "amd64", None)),
            ..store_manifest(engine, "amd64", &[b"base", b"app"], None)
        };
        let arm64 = Descriptor {
            platform: Some(Platform::new("linux", "arm64", Some("v8".into()))),
            ..store_manifest(engine, "arm64", &[b"base"], None)
        };
        let index = ImageIndex { manifests: vec![amd64.clone(), arm64.clone()], ..ImageIndex::empty() };
        let index = engine.put_json(MEDIA_TYPE_IMAGE_INDEX, &index).unwrap();
        engine.ref_put("multi", &index, false).unwrap();
        (index, vec![amd64, arm64])
    }

    fn steps(engine: &Engine, ref_name: &str) -> Vec<WalkStep> {
        let mut steps = Vec::new();
        engine
            .walk_image(ref_name, &Cancel::new(), |step| {
                steps.push(step);
                ControlFlow::Continue(())
            })
            .unwrap();
        steps
    }

    #[test]
    fn walks_index_manifests_configs_and_layers_with_depths_and_parents() {
        let (_dir, engine) = temp_engine();
        let (index, manifests) = store_index(&engine);
        let steps = steps(&engine, "multi");
        // The index, two manifests, two configs, and three layers of which one is shared:
        // the shared base layer is one step, under the first manifest that reaches it.
        assert_eq!(steps.len(), 1 + 2 + 2 + 2, "{steps:#?}");
        assert!(steps.iter().all(|step| step.error.is_none()));
        assert_eq!(
            (steps[0].descriptor.digest.clone(), steps[0].depth, steps[0].parent.clone()),
            (index.digest, 0, None)
        );
        let of_media_type =
            |media_type: &'static str| steps.iter().filter(move |s| s.descriptor.media_type == media_type);
        for step in of_media_type(MEDIA_TYPE_IMAGE_MANIFEST) {
            assert_eq!(step.depth, 1);
            assert_eq!(step.parent.as_ref(), Some(&steps[0].descriptor.digest));
        }
        let walked: Vec<&Descriptor> = of_media_type(MEDIA_TYPE_IMAGE_MANIFEST).map(|s| &s.descriptor).collect();
        assert_eq!(walked, manifests.iter().collect::<Vec<_>>(), "index entries keep their platforms");
        assert_eq!(of_media_type(MEDIA_TYPE_IMAGE_CONFIG).count(), 2);
        assert!(of_media_type(MEDIA_TYPE_IMAGE_CONFIG).chain(of_media_type(LAYER)).all(|s| s.depth == 2));
        assert_eq!(of_media_type(LAYER).count(), 2);
        engine.put_blob(b"stored, but nothing references it").unwrap();
        let report = engine.fsck().unwrap();
        let distinct: std::collections::HashSet<&Digest> = steps.iter().map(|s| &s.descriptor.digest).collect();
        assert_eq!(distinct.len(), report.reachable, "the walk reaches what fsck's walk reaches");
        assert_eq!(report.unreachable, 1);
    }

    #[test]
    fn a_missing_layer_is_a_step_with_not_found_and_the_walk_goes_on() {
        let (_dir, engine) = temp_engine();
        let manifest = store_manifest(&engine, "amd64", &[b"stored"], Some(b"never stored"));
        engine.ref_put("app", &manifest, false).unwrap();
        let steps = steps(&engine, "app");
        assert_eq!(steps.len(), 4, "{steps:#?}");
        let failed: Vec<&WalkStep> = steps.iter().filter(|s| s.error.is_some()).collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].error.as_ref().unwrap().kind(), ErrorKind::NotFound);
        assert_eq!(failed[0].parent.as_ref(), Some(&manifest.digest));
    }

    #[test]
    fn a_document_of_another_type_than_declared_is_a_step_with_invalid_image() {
        let (_dir, engine) = temp_engine();
        let manifest = store_manifest(&engine, "amd64", &[b"layer"], None);
        let as_index = Descriptor { media_type: MEDIA_TYPE_IMAGE_INDEX.into(), ..manifest };
        let mut steps = Vec::new();
        let walked = engine.walk_descriptor(&as_index, &Cancel::new(), |step| {
            steps.push(step);
            ControlFlow::Continue(())
        });
        assert!(walked.is_ok());
        assert_eq!(steps.len(), 1, "{steps:#?}");
        assert_eq!(steps[0].error.as_ref().unwrap().kind(), ErrorKind::InvalidImage);
    }

    #[test]
    fn a_step_returning_break_ends_the_walk_with_ok() {
        let (_dir, engine) = temp_engine();
        store_index(&engine);
        let mut seen = 0;
        let result = engine.walk_image("multi", &Cancel::new(), |_| {
            seen += 1;
            if seen == 2 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        });
        assert!(result.is_ok());
        assert_eq!(seen, 2);
    }

    #[test]
    fn a_requested_cancel_is_cancelled_and_an_unknown_ref_not_found() {
        let (_dir, engine) = temp_engine();
        store_index(&engine);
        let cancel = Cancel::new();
        let mut seen = 0;
        let result = engine.walk_image("multi", &cancel, |_| {
            seen += 1;
            cancel.request();
            ControlFlow::Continue(())
        });
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Cancelled);
        assert_eq!(seen, 1);
        let err = engine.walk_image("nothing", &Cancel::new(), |_| ControlFlow::Continue(())).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn nesting_past_the_walk_depth_is_a_step_with_too_large() {
        let (_dir, mut engine) = temp_engine();
        let (index, _) = store_index(&engine);
        engine.set_limits(crate::limits::Limits { walk_depth: 1, ..*engine.limits() });
        let steps: Vec<WalkStep> = {
            let mut steps = Vec::new();
            engine
                .walk_descriptor(&index, &Cancel::new(), |step| {
                    steps.push(step);
                    ControlFlow::Continue(())
                })
                .unwrap();
            steps
        };
        let too_deep: Vec<&WalkStep> = steps.iter().filter(|s| s.error.is_some()).collect();
        assert_eq!(too_deep.len(), 2, "{steps:#?}");
        assert!(too_deep.iter().all(|s| s.error.as_ref().unwrap().kind() == ErrorKind::TooLarge && s.depth == 1));
    }
}
