//! Consistency check of a layout: every blob hashes to its name, and every descriptor reachable
//! from index.json names a stored blob of the declared size that parses as its media type.

use std::collections::HashSet;

use crate::digest::Digest;
use crate::error::{ErrorKind, Result};
use crate::layout::Engine;
use crate::spec::{Descriptor, is_document_media_type};

/// How deep image indexes may nest before the walk stops (a cycle can't be built from digests,
/// but a very deep chain could still be crafted).
pub const MAX_WALK_DEPTH: usize = 16;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FsckReport {
    /// One line per problem, each naming the blob.
    pub problems: Vec<String>,
    pub blobs_checked: usize,
    /// Distinct blobs reachable from index.json.
    pub reachable: usize,
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
        for digest in self.list_blobs()? {
            report.blobs_checked += 1;
            if let Err(err) = self.verify_blob(&digest) {
                report.problems.push(err.message().to_owned());
            }
        }
        let mut visited: HashSet<Digest> = HashSet::new();
        let mut pending: Vec<(Descriptor, String, usize)> = self
            .read_index()?
            .manifests
            .into_iter()
            .map(|d| (d, "index.json".to_owned(), 0))
            .collect();
        while let Some((descriptor, parent, depth)) = pending.pop() {
            if !visited.insert(descriptor.digest.clone()) {
                continue;
            }
            let size = match self.blob_size(&descriptor.digest) {
                Ok(size) => size,
                Err(err) if err.kind() == ErrorKind::NotFound && may_be_absent(&descriptor) => continue,
                Err(err) if err.kind() == ErrorKind::NotFound => {
                    report.problems.push(format!(
                        "blob {} ({}) referenced by {parent} is missing",
                        descriptor.digest, descriptor.media_type
                    ));
                    continue;
                }
                Err(err) => {
                    report.problems.push(err.message().to_owned());
                    continue;
                }
            };
            if size != descriptor.size {
                report.problems.push(format!(
                    "blob {} is {size} bytes but {parent} declares {}",
                    descriptor.digest, descriptor.size
                ));
                continue;
            }
            if !is_document_media_type(&descriptor.media_type) {
                continue;
            }
            if depth >= MAX_WALK_DEPTH {
                report.problems.push(format!(
                    "blob {} is nested deeper than {MAX_WALK_DEPTH} levels; its children were not checked",
                    descriptor.digest
                ));
                continue;
            }
            match self.read_document(&descriptor) {
                Ok(document) => {
                    let parent = descriptor.digest.to_string();
                    pending.extend(document.children().into_iter().map(|c| (c.clone(), parent.clone(), depth + 1)));
                }
                // A corrupt blob was already reported by the hashing pass.
                Err(err) if err.kind() == ErrorKind::DigestMismatch => {}
                Err(err) => report.problems.push(err.message().to_owned()),
            }
        }
        report.reachable = visited.len();
        Ok(report)
    }
}
