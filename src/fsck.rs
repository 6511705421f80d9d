//! Consistency check of a layout: every blob hashes to its name, and every descriptor reachable
//! from index.json names a stored blob of the declared size that parses as its media type.

use std::collections::HashMap;

use crate::error::{ErrorKind, Result};
use crate::graph::{GraphWalk, Node};
use crate::layout::Engine;
use crate::spec::Descriptor;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FsckReport {
    /// One line per problem, each naming the blob.
    pub problems: Vec<String>,
    pub blobs_checked: usize,
    /// Distinct blobs reachable from index.json.
    pub reachable: usize,
    /// Not problems: blobs no reference reaches (GC removes them unless a lease or label
    /// keeps them).
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

/// Layers that registries may not serve and layouts may omit (OCI and Docker "foreign" layers).
fn may_be_absent(descriptor: &Descriptor) -> bool {
    descriptor.media_type.contains(".nondistributable.") || descriptor.media_type.contains(".foreign.")
}

impl Engine {
    pub fn fsck(&self) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        let blobs = self.list_blobs()?;
        for digest in &blobs {
            report.blobs_checked += 1;
            if let Err(err) = self.verify_blob(digest) {
                report.problems.push(err.message().to_owned());
            }
        }
        let roots = self.read_index()?.manifests.into_iter().map(|d| (d, "index.json".to_owned())).collect();
        let mut walk = GraphWalk::new(self, HashMap::new());
        let problems = &mut report.problems;
        let max_depth = self.limits().walk_depth;
        walk.walk(roots, |descriptor, parent, node| match node {
            Node::Missing if may_be_absent(descriptor) => {}
            Node::Missing => problems.push(format!(
                "blob {} ({}) referenced by {parent} is missing",
                descriptor.digest, descriptor.media_type
            )),
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
        Ok(report)
    }
}
