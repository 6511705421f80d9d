//! Consistency check of a layout. index.json is read and the graph walked under the store's
//! shared lock, so fsck sees one committed state however others tag and collect meanwhile; the
//! blobs it listed are then hashed (and, with `deep`, the layers decompressed) without it.
//!
//! Problems (the layout, or an image in it, is broken, or the peers refuse it), each named with
//! the path of descriptors that leads to it: an entry planted in the layout (a symlink, a FIFO,
//! a file where a directory belongs); a lease, labels file or ingest that cannot be read; a
//! blob's creation record that is not a file; a blob that does not hash to its name; a reachable
//! blob that is missing, of another size than declared, or that does not parse as the media
//! type it is reached with (every such pair is checked, not every digest once); a descriptor
//! whose `data` is not base64 of the blob; a ref name on two index.json entries; an index.json
//! entry whose digest is malformed; a manifest whose config has a layer media type, or (an
//! image, not an artifact) a layer of another media type; a config whose `rootfs` is not
//! `layers` with one DiffID per layer; a walk cut at the depth limit; an `imageLayoutVersion`
//! other than 1.0.0; with `deep`, a layer whose uncompressed bytes do not hash to its DiffID.
//!
//! Notes (worth knowing, not broken): how many blobs nothing in index.json reaches (GC removes
//! them unless a lease or label keeps them; the report counts them and names a few, one note
//! sums them up); manifests an index lists or a referrer names as its subject
//! that are not stored while another child of that document is (an index pulled for some
//! platforms keeps its digest and lists them all); index.json entries that are not an index or
//! manifest, or whose digest algorithm ocicas does not support; `"manifests": null`; JSON
//! documents of unknown media types, whose descriptor-shaped objects were followed.

use std::collections::{BTreeMap, HashMap, HashSet};

use base64::Engine as _;

use crate::digest::Digest;
use crate::engine::Engine;
use crate::error::{ErrorKind, Result};
use crate::graph::{BlobKey, GraphWalk, Node, Reached, index_entry_name, index_roots, missing_line};
use crate::layout::{LAYOUT_VERSION, StoreLock};
use crate::spec::{
    Descriptor, Document, ImageIndex, ImageManifest, is_image_config_media_type, is_layer_media_type,
    is_manifest_media_type, unusable_entry_ref_name,
};
use crate::stream::LayerDescriptor;

/// What fsck checks beyond its default.
#[derive(Debug, Clone, Default)]
pub struct FsckOptions {
    /// Decompress every reachable layer of an image and check it against its DiffID.
    pub deep: bool,
    /// Check the structure only: the graph walk, and each reachable blob's presence and size.
    /// No blob is hashed (documents are still read to walk them), so a blob whose bytes were
    /// changed in place goes unnoticed; a store of a million blobs is checked in seconds.
    pub no_hash: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FsckReport {
    /// One line per problem, each naming the blob.
    pub problems: Vec<String>,
    /// Blobs hashed (none with `no_hash`).
    pub blobs_checked: usize,
    /// Distinct blobs reachable from index.json.
    pub reachable: usize,
    /// Stored blobs nothing in index.json reaches (GC removes them unless a lease or label
    /// keeps them); one note says how many, not one note each.
    pub unreachable: usize,
    /// The first of them in digest order, at most `UNREACHABLE_SAMPLE`.
    pub unreachable_sample: Vec<Digest>,
    /// Not problems: see the module comment.
    pub notes: Vec<String>,
}

impl FsckReport {
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "sound": self.is_sound(),
            "problems": self.problems,
            "blobsChecked": self.blobs_checked,
            "reachable": self.reachable,
            "unreachable": self.unreachable,
            "unreachableSample": self.unreachable_sample,
            "notes": self.notes,
        })
    }
}

/// How many unreachable blobs the report names: a store may hold a million, and a note each
/// made fsck of one spend its time writing half a million lines.
pub const UNREACHABLE_SAMPLE: usize = 10;

/// Layers that registries may not serve and layouts may omit (OCI and Docker "foreign" layers).
fn may_be_absent(reached: &Reached) -> bool {
    reached.media_type.contains(".nondistributable.") || reached.media_type.contains(".foreign.")
}

/// A layer to decompress with `deep`: its descriptor, the DiffID its config gives it, and the
/// manifest that lists it.
type LayerCheck = (Descriptor, Digest, String);

/// What the walk found, besides the walk's own visited set.
#[derive(Default)]
struct Findings {
    problems: Vec<String>,
    notes: Vec<String>,
    /// Manifests not stored that a document lists: a problem unless the document has another
    /// child that is stored.
    absent_manifests: Vec<Reached>,
    /// The children of every document walked that lists a manifest, by its digest.
    children: HashMap<Digest, Vec<Digest>>,
    /// With `deep`, every layer of every image.
    layers: Vec<LayerCheck>,
    unreachable: usize,
    unreachable_sample: Vec<Digest>,
}

impl Engine {
    /// `fsck_with` the default options.
    pub fn fsck(&self) -> Result<FsckReport> {
        self.fsck_with(&FsckOptions::default())
    }

    /// Checks the layout (see the module comment). Problems are not an error: the report says
    /// whether the layout is sound.
    pub fn fsck_with(&self, options: &FsckOptions) -> Result<FsckReport> {
        let odd_entries = self.layout.odd_entries()?;
        if self.layout.check_structure().is_err() {
            // A directory of the layout is not one (reported above): its blobs cannot be listed.
            return Ok(FsckReport { problems: odd_entries, ..FsckReport::default() });
        }
        let mut problems = odd_entries;
        problems.extend(self.lease_problems()?);
        problems.extend(self.label_problems()?);
        problems.extend(self.creation_record_problems()?);
        problems.extend(self.ingest_problems()?);
        let mut findings = Findings::default();
        let (blobs, reachable) = {
            let _lock = self.fsck_lock(&mut findings.notes)?;
            let blobs = self.list_blob_keys()?;
            let reachable = self.check_graph(&blobs, options.deep, &mut findings)?;
            (blobs, reachable)
        };
        let mut report = FsckReport {
            problems,
            reachable,
            unreachable: findings.unreachable,
            unreachable_sample: std::mem::take(&mut findings.unreachable_sample),
            ..FsckReport::default()
        };
        let to_hash: &[BlobKey] = if options.no_hash { &[] } else { &blobs };
        for blob in to_hash {
            match self.verify_blob(&blob.digest()) {
                Ok(()) => report.blobs_checked += 1,
                // Removed since it was listed: a GC took it after a retag, or someone deleted it.
                Err(err) if err.kind() == ErrorKind::NotFound => {}
                Err(err) => {
                    report.blobs_checked += 1;
                    report.problems.push(err.message().to_owned());
                }
            }
        }
        report.problems.append(&mut findings.problems);
        if options.deep {
            self.check_layers(std::mem::take(&mut findings.layers), &mut report);
        }
        report.notes.append(&mut findings.notes);
        Ok(report)
    }

    /// The shared store lock, or none on a layout this process cannot lock (one read-only to
    /// it), which it then reads as it finds it, with a note saying so.
    fn fsck_lock(&self, notes: &mut Vec<String>) -> Result<Option<StoreLock>> {
        match self.layout.lock_shared() {
            Ok(lock) => Ok(Some(lock)),
            Err(err) if err.kind() == ErrorKind::Io => {
                notes.push(format!(
                    "fsck could not take the store lock ({}): a tag or GC by another process while it ran may show as a problem",
                    err.message()
                ));
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// The stored size of each of `blobs` (sorted) that `walk` reached, None for the others and
    /// where it is not a file or cannot be looked at (see `GraphWalk::knowing_sizes`): many
    /// stats at once. Also whether every one is the size the walk took it at.
    fn reached_sizes(&self, blobs: &[BlobKey], walk: &GraphWalk<'_>) -> Result<(Vec<Option<u64>>, bool)> {
        let blob_dirs = self.layout.blob_dirs();
        let sizes = self.in_parallel("fsck stat", blobs, |batch| {
            Ok(batch
                .iter()
                .map(|blob| {
                    let taken = walk.visited_size(blob)?;
                    let digest = blob.digest();
                    let stored = self.blob_size_of(&digest, blob_dirs.stat(&digest)).ok();
                    Some((stored, stored == Some(taken)))
                })
                .collect())
        })?;
        let all_as_taken = sizes.iter().flatten().all(|(_, as_taken)| *as_taken);
        Ok((sizes.into_iter().map(|size| size.and_then(|(stored, _)| stored)).collect(), all_as_taken))
    }

    /// Checks oci-layout, index.json and everything reachable from it; returns how many
    /// distinct blobs are reachable.
    fn check_graph(&self, blobs: &[BlobKey], deep: bool, findings: &mut Findings) -> Result<usize> {
        let version = self.layout.layout_version()?;
        if version != LAYOUT_VERSION {
            findings.problems.push(format!(
                "oci-layout: imageLayoutVersion is {version:?}; the image-spec defines only {LAYOUT_VERSION:?} (umoci and oci-image-tool refuse the layout)"
            ));
        }
        let index = self.read_index()?;
        findings.check_index(&index);
        let before_walk = findings.mark();
        let walked = |walk, findings: &mut Findings| self.walk_index(walk, &index, deep, findings);
        // Listed layers are taken at the sizes their referrers declare, without a stat each on
        // the walk's one thread; the blobs reached are then looked at many at once. Only when
        // one is not as taken (resized, removed) is the graph walked again with the sizes read,
        // so that the problem names the path to it.
        let first = walked(GraphWalk::new(self, HashMap::new()).knowing_stored(blobs), findings);
        let (sizes, all_as_taken) = self.reached_sizes(blobs, &first)?;
        let walk = if all_as_taken {
            first
        } else {
            findings.rewind(before_walk);
            walked(GraphWalk::new(self, HashMap::new()).knowing_sizes(blobs, &sizes), findings)
        };
        let mut unreachable = blobs.iter().filter(|blob| walk.visited_size(blob).is_none());
        findings.unreachable_sample = unreachable.by_ref().take(UNREACHABLE_SAMPLE).map(BlobKey::digest).collect();
        findings.unreachable = findings.unreachable_sample.len() + unreachable.count();
        if let Some(note) = unreachable_note(findings.unreachable, &findings.unreachable_sample) {
            findings.notes.push(note);
        }
        for reached in std::mem::take(&mut findings.absent_manifests) {
            let siblings = reached.parent.as_ref().and_then(|parent| findings.children.get(&**parent));
            if siblings.is_some_and(|children| children.iter().any(|child| walk.is_visited(child))) {
                findings.notes.push(format!(
                    "manifest {} ({}) listed by {} is not stored (an index pulled for some platforms only, \
                     or a referrer pulled without its subject)",
                    reached.digest, reached.media_type, reached.path
                ));
            } else {
                findings.problems.push(missing_line(&reached));
            }
        }
        Ok(walk.visited_count())
    }

    /// `walk` from the entries of `index`, the findings on the way noted in `findings`.
    fn walk_index<'w>(
        &'w self,
        mut walk: GraphWalk<'w>,
        index: &ImageIndex,
        deep: bool,
        findings: &mut Findings,
    ) -> GraphWalk<'w> {
        let max_depth = self.limits().walk_depth;
        walk.walk(&self.layout.blob_dirs(), index_roots(index), |reached, node| {
            findings.observe(self, reached, node, max_depth, deep)
        });
        walk
    }

    /// With `deep`: each layer, once per DiffID it is given, decompressed and hashed.
    fn check_layers(&self, layers: Vec<LayerCheck>, report: &mut FsckReport) {
        let mut checked = HashSet::new();
        for (layer, diff_id, manifest) in layers {
            if !checked.insert((layer.digest.clone(), diff_id.clone())) {
                continue;
            }
            let layer =
                LayerDescriptor { media_type: layer.media_type, digest: layer.digest, size: layer.size, diff_id };
            match self.uncompressed_digest(&layer) {
                Ok(actual) if actual == layer.diff_id => {}
                Ok(actual) => report.problems.push(format!(
                    "layer {} of manifest {manifest}: its uncompressed bytes hash to {actual}, but its config's \
                     rootfs.diff_ids says {}",
                    layer.digest, layer.diff_id
                )),
                Err(err) if err.kind() == ErrorKind::UnsupportedMediaType => report.notes.push(format!(
                    "layer {} of manifest {manifest} has media type {:?}, which --deep cannot decompress; not checked",
                    layer.digest, layer.media_type
                )),
                // Removed since the walk (a GC after a retag), or a foreign layer not stored.
                Err(err) if err.kind() == ErrorKind::NotFound => {}
                Err(err) => report.problems.push(format!(
                    "layer {} of manifest {manifest} cannot be read as {}: {}",
                    layer.digest,
                    layer.media_type,
                    err.message()
                )),
            }
        }
    }
}

impl Findings {
    /// Where the findings stand, to `rewind` to.
    fn mark(&self) -> (usize, usize) {
        (self.problems.len(), self.notes.len())
    }

    /// Forgets what a walk found since `mark`, to walk again.
    fn rewind(&mut self, (problems, notes): (usize, usize)) {
        self.problems.truncate(problems);
        self.notes.truncate(notes);
        self.absent_manifests.clear();
        self.children.clear();
        self.layers.clear();
    }

    /// The checks of index.json itself and of its entries.
    fn check_index(&mut self, index: &ImageIndex) {
        if index.manifests_null {
            self.notes.push(
                "index.json has \"manifests\": null (umoci writes it for an empty index), read as empty; the \
                 image-spec asks for an array, and oci-image-tool refuses it"
                    .to_owned(),
            );
        }
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for (position, entry) in index.manifests.iter().enumerate() {
            let name = index_entry_name(entry, position);
            if let Some(ref_name) = entry.ref_name() {
                *names.entry(ref_name).or_default() += 1;
            }
            if !is_manifest_media_type(&entry.media_type) {
                self.notes.push(format!(
                    "{name} points at {} of media type {:?}, not an image index or manifest: umoci, skopeo and \
                     oci-image-tool cannot use it as an image",
                    entry.digest, entry.media_type
                ));
            }
            self.check_data(entry, &name);
        }
        for entry in &index.unusable_manifests {
            let digest = entry.get("digest").and_then(serde_json::Value::as_str).unwrap_or_default();
            let name = match unusable_entry_ref_name(entry) {
                Some(ref_name) => {
                    *names.entry(ref_name).or_default() += 1;
                    format!("index.json {ref_name:?}")
                }
                None => "an untagged entry of index.json".to_owned(),
            };
            if is_well_formed_foreign_digest(digest) {
                self.notes.push(format!(
                    "{name} has digest {digest:?}, of an algorithm ocicas does not support (sha256, sha512): not checked"
                ));
            } else {
                self.problems
                    .push(format!("{name} has digest {digest:?}, which is not a valid digest: no tool can use it"));
            }
        }
        for (name, count) in names {
            if count > 1 {
                self.problems.push(format!(
                    "reference {name:?} names {count} entries of index.json: umoci and oci-image-tool refuse it as \
                     ambiguous (`ocicas ref put` of one of them, forced if they differ, leaves one)"
                ));
            }
        }
    }

    fn observe(&mut self, engine: &Engine, reached: &Reached, node: Node<'_>, max_depth: u64, deep: bool) {
        match node {
            Node::Missing if may_be_absent(reached) => {}
            Node::Missing if reached.parent.is_some() && is_manifest_media_type(&reached.media_type) => {
                self.absent_manifests.push(reached.clone());
            }
            Node::Missing => self.problems.push(missing_line(reached)),
            Node::SizeMismatch(size) => self.problems.push(format!(
                "blob {} is {size} bytes but {} declares {}",
                reached.digest,
                reached.path,
                reached.size.unwrap_or_default()
            )),
            Node::TooDeep => self.problems.push(format!(
                "blob {} is nested deeper than the walk depth limit (walk_depth) of {max_depth} levels; its \
                 children were not checked",
                reached.describe()
            )),
            // A corrupt blob is reported by the hashing pass.
            Node::Unreadable(err) if err.kind() == ErrorKind::DigestMismatch => {}
            Node::Unreadable(err) => self.problems.push(format!("{} (blob {})", err.message(), reached.describe())),
            Node::Document(document) => {
                let here = reached.describe();
                let children = document.children();
                if children.iter().any(|child| is_manifest_media_type(&child.media_type)) {
                    let children = children.into_iter().map(|child| child.digest).collect();
                    self.children.insert(reached.digest.clone(), children);
                }
                for descriptor in document.descriptors() {
                    self.check_data(descriptor, &here);
                }
                if let Document::Manifest(manifest) = document {
                    self.check_manifest(engine, &here, manifest, deep);
                }
            }
            Node::UnknownJson(children) if children > 0 => self.notes.push(format!(
                "blob {} is JSON of a media type ocicas has no parser for; the {children} objects in it shaped \
                 like descriptors were checked as its children",
                reached.describe()
            )),
            Node::UnknownJson(_) | Node::Leaf => {}
        }
    }

    /// The `data` of a descriptor, when it has one, must be the base64 of the blob it
    /// describes (the image-spec says MUST; Go tools refuse the whole layout when it is not
    /// base64).
    fn check_data(&mut self, descriptor: &Descriptor, location: &str) {
        let Some(data) = descriptor.extra.get("data") else { return };
        let fault = match data.as_str().map(|text| base64::engine::general_purpose::STANDARD.decode(text)) {
            None => "is not a string".to_owned(),
            Some(Err(err)) => format!("is not base64 ({err})"),
            Some(Ok(bytes))
                if bytes.len() as u64 != descriptor.size
                    || Digest::of_bytes(descriptor.digest.algorithm(), &bytes) != descriptor.digest =>
            {
                "does not hold the blob: its bytes do not match the descriptor's digest and size".to_owned()
            }
            Some(Ok(_)) => return,
        };
        self.problems.push(format!("the descriptor of {} in {location}: its data field {fault}", descriptor.digest));
    }

    /// What makes an image manifest unusable beyond its blobs being there: a config or layers
    /// of the wrong kind, a config that does not match its layers.
    fn check_manifest(&mut self, engine: &Engine, here: &str, manifest: &ImageManifest, deep: bool) {
        let config = &manifest.config;
        if is_layer_media_type(&config.media_type) {
            self.problems.push(format!(
                "manifest {here}: its config {} has the layer media type {:?}",
                config.digest, config.media_type
            ));
            return;
        }
        // An artifact (a config of another type) may hold blobs of any type.
        if !is_image_config_media_type(&config.media_type) {
            return;
        }
        for layer in manifest.layers.iter().filter(|layer| !is_layer_media_type(&layer.media_type)) {
            self.problems.push(format!(
                "manifest {here}: layer {} has media type {:?}, which is not a layer media type (umoci and \
                 oci-image-tool cannot unpack the image)",
                layer.digest, layer.media_type
            ));
        }
        // A config that cannot be read is reported where the walk reaches it.
        let Ok(Document::Config(image_config)) = engine.read_document(config) else { return };
        if image_config.rootfs.kind != "layers" {
            self.problems.push(format!(
                "manifest {here}: its config {} has rootfs.type {:?}, not \"layers\"",
                config.digest, image_config.rootfs.kind
            ));
        }
        let diff_ids = &image_config.rootfs.diff_ids;
        if diff_ids.len() != manifest.layers.len() {
            self.problems.push(format!(
                "manifest {here}: its config {} lists {} rootfs.diff_ids for {} layers",
                config.digest,
                diff_ids.len(),
                manifest.layers.len()
            ));
        } else if deep {
            let layers = manifest.layers.iter().zip(diff_ids);
            self.layers.extend(layers.map(|(layer, diff_id)| (layer.clone(), diff_id.clone(), here.to_owned())));
        }
    }
}

/// The one note on the blobs nothing in index.json reaches, naming those in `sample`.
fn unreachable_note(count: usize, sample: &[Digest]) -> Option<String> {
    let named: Vec<String> = sample.iter().map(Digest::to_string).collect();
    match count {
        0 => None,
        1 => Some(format!("blob {} is not reachable from index.json", named.join(""))),
        _ if count == sample.len() => {
            Some(format!("{count} blobs are not reachable from index.json: {}", named.join(", ")))
        }
        _ => Some(format!(
            "{count} blobs are not reachable from index.json, among them (the first {} in digest order): {}",
            sample.len(),
            named.join(", ")
        )),
    }
}

/// Whether `digest` follows the image-spec's digest grammar with an algorithm other than the
/// ones ocicas parses (whose digests it would have accepted): another tool may use it.
fn is_well_formed_foreign_digest(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else { return false };
    let component = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    !matches!(algorithm, "sha256" | "sha512")
        && algorithm.split(['+', '.', '_', '-']).all(component)
        && !encoded.is_empty()
        && encoded.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
}
#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::spec::{MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST};

    #[test]
    fn an_absent_manifest_of_an_index_is_a_note_and_an_absent_layer_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::create(dir.path().join("layout")).unwrap();
        let layer = Descriptor::new(
            "application/vnd.oci.image.layer.v1.tar",
            crate::Digest::of_bytes(crate::digest::Algorithm::Sha256, b"gone"),
            4,
        );
        let manifest = |layers: Vec<&Descriptor>| {
            let diff_ids: Vec<&Digest> = layers.iter().map(|layer| &layer.digest).collect();
            let rootfs = json!({"type": "layers", "diff_ids": diff_ids});
            let config = json!({"architecture": "amd64", "os": "linux", "rootfs": rootfs});
            let config = engine.put_json("application/vnd.oci.image.config.v1+json", &config).unwrap();
            let value =
                json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_MANIFEST, "config": config, "layers": layers});
            engine.put_json(MEDIA_TYPE_IMAGE_MANIFEST, &value).unwrap()
        };
        let complete = manifest(vec![]);
        let absent = Descriptor::new(MEDIA_TYPE_IMAGE_MANIFEST, layer.digest.clone(), 100);
        let index = json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_INDEX, "manifests": [complete, absent]});
        let index = engine.put_json(MEDIA_TYPE_IMAGE_INDEX, &index).unwrap();
        engine.ref_put("partial", &index, false).unwrap();
        let report = engine.fsck().unwrap();
        assert!(report.is_sound(), "{report:?}");
        assert!(
            report.notes.iter().any(|n| n.contains(&absent.digest.to_string()) && n.contains("not stored")),
            "{report:?}"
        );

        let lost = json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_INDEX, "manifests": [absent]});
        let lost = engine.put_json(MEDIA_TYPE_IMAGE_INDEX, &lost).unwrap();
        engine.ref_put("lost", &lost, false).unwrap();
        let report = engine.fsck().unwrap();
        assert_eq!(report.problems.len(), 1, "an index none of whose manifests is stored: {report:?}");
        assert!(report.problems[0].contains("is missing"), "{report:?}");
        engine.ref_delete("lost").unwrap();

        let broken = manifest(vec![&layer]);
        engine.ref_put("broken", &broken, false).unwrap();
        let report = engine.fsck().unwrap();
        assert_eq!(report.problems.len(), 1, "{report:?}");
        assert!(report.problems[0].contains("is missing"), "{report:?}");
    }
}
