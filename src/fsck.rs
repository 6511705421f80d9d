//! Consistency check of a layout: every blob hashes to its name, and every descriptor reachable
//! from index.json names a stored blob of the declared size that parses as its media type. A
//! manifest that an index lists (or a referrer names as its subject) may be absent when another
//! child of that document is stored: an index pulled for some platforms keeps its digest and
//! lists them all; that is a note.

use std::collections::HashMap;

use crate::digest::Digest;
use crate::error::{ErrorKind, Result};
use crate::graph::{GraphWalk, Node, missing_line};
use crate::layout::Engine;
use crate::spec::{Descriptor, detect_media_type, is_manifest_media_type, parse_document};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FsckReport {
    /// One line per problem, each naming the blob.
    pub problems: Vec<String>,
    pub blobs_checked: usize,
    /// Distinct blobs reachable from index.json.
    pub reachable: usize,
    /// Not problems: blobs no reference reaches (GC removes them unless a lease or label
    /// keeps them), and manifests an index lists that are not stored.
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
            "notes": self.notes,
        })
    }
}

/// The parent named for the roots of the walk.
const INDEX_JSON: &str = "index.json";

/// Layers that registries may not serve and layouts may omit (OCI and Docker "foreign" layers).
fn may_be_absent(descriptor: &Descriptor) -> bool {
    descriptor.media_type.contains(".nondistributable.") || descriptor.media_type.contains(".foreign.")
}

impl Engine {
    pub fn fsck(&self) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        report.problems.extend(self.odd_entries()?);
        if self.check_structure().is_err() {
            // A directory of the layout is not one (reported above): its blobs cannot be listed.
            return Ok(report);
        }
        report.problems.extend(self.lease_problems()?);
        report.problems.extend(self.label_problems()?);
        report.problems.extend(self.ingest_problems()?);
        let blobs = self.list_blobs()?;
        for digest in &blobs {
            report.blobs_checked += 1;
            if let Err(err) = self.verify_blob(digest) {
                report.problems.push(err.message().to_owned());
            }
        }
        let roots = self.read_index()?.manifests.into_iter().map(|d| (d, INDEX_JSON.to_owned())).collect();
        let mut walk = GraphWalk::new(self, HashMap::new());
        let problems = &mut report.problems;
        let mut absent_manifests = Vec::new();
        let max_depth = self.limits().walk_depth;
        walk.walk(roots, |descriptor, parent, node| match node {
            Node::Missing if may_be_absent(descriptor) => {}
            Node::Missing if parent != INDEX_JSON && is_manifest_media_type(&descriptor.media_type) => {
                absent_manifests.push((descriptor.clone(), parent.to_owned()));
            }
            Node::Missing => problems.push(missing_line(descriptor, parent)),
            Node::SizeMismatch(size) => problems
                .push(format!("blob {} is {size} bytes but {parent} declares {}", descriptor.digest, descriptor.size)),
            Node::TooDeep => problems.push(format!(
                "blob {} is nested deeper than the walk depth limit (walk_depth) of {max_depth} levels; its children were not checked",
                descriptor.digest
            )),
            // A corrupt blob was already reported by the hashing pass.
            Node::Unreadable(err) if err.kind() == ErrorKind::DigestMismatch => {}
            Node::Unreadable(err) => problems.push(err.message().to_owned()),
            Node::Leaf | Node::Document => {}
        });
        report.reachable = walk.visited.len();
        report.notes = blobs
            .iter()
            .filter(|digest| !walk.visited.contains_key(*digest))
            .map(|digest| format!("blob {digest} is not reachable from index.json"))
            .collect();
        for (descriptor, parent) in absent_manifests {
            if self.lists_a_stored_child(&parent, &walk.visited) {
                report.notes.push(format!(
                    "manifest {} ({}) listed by {parent} is not stored (an index pulled for some platforms only, \
                     or a referrer pulled without its subject)",
                    descriptor.digest, descriptor.media_type
                ));
            } else {
                report.problems.push(missing_line(&descriptor, &parent));
            }
        }
        Ok(report)
    }

    /// Whether the document `parent` (a digest) lists a child the walk found stored: a partial
    /// index, not one whose every manifest is lost.
    fn lists_a_stored_child(&self, parent: &str, visited: &HashMap<Digest, u64>) -> bool {
        let Ok(digest) = parent.parse::<Digest>() else { return false };
        let Ok(bytes) = self.read_blob(&digest, self.max_json_size()) else { return false };
        let Some(document) = detect_media_type(&bytes).and_then(|media_type| parse_document(&media_type, &bytes).ok())
        else {
            return false;
        };
        document.children().iter().any(|child| visited.contains_key(&child.digest))
    }
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
        let config = engine
            .put_json(
                "application/vnd.oci.image.config.v1+json",
                &json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}),
            )
            .unwrap();
        let manifest = |layers: Vec<&Descriptor>| {
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
