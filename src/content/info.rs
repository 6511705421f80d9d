//! Blob info and labels (`.ocicas/labels/<alg>/<hex>`), and walking blobs with filters.
//!
//! Times, as containerd keeps them: `createdAt` is when the blob was first stored and never
//! moves; `updatedAt` is the last change of its labels, never before `createdAt`. A blob's mtime
//! is its commit time, but every later commit of the same content refreshes it (GC keeps young
//! blobs): before the first refresh, the mtime is recorded as the mtime of the empty file
//! `.ocicas/created/<alg>/<hex>`, which the first claimer links into place and no one replaces.
//! Labels cleared to none stay as an empty map, whose mtime keeps `updatedAt`.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::format_time;
use crate::digest::{Algorithm, Digest};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result, invalid_argument};
use crate::filters::Filters;
use crate::layout::{CREATED_DIR, EntryKind, LABELS_DIR, modified_time};

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    pub labels: Labels,
}

impl BlobInfo {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "digest": self.digest.to_string(),
            "size": self.size,
            "createdAt": format_time(self.created_at),
            "updatedAt": format_time(self.updated_at),
            "labels": self.labels,
        })
    }

    fn field(&self, path: &[String]) -> Option<String> {
        match path {
            [field] if field == "digest" => Some(self.digest.to_string()),
            [field] if field == "size" => Some(self.size.to_string()),
            [field, key @ ..] if field == "labels" && !key.is_empty() => self.labels.get(&key.join(".")).cloned(),
            _ => None,
        }
    }
}

/// Each label's key must be non-empty (`InvalidArgument`) and key plus value at most `limit`
/// bytes (`Limits::label_size`; `TooLarge`).
pub fn validate_labels(labels: &Labels, limit: u64) -> Result<()> {
    for (key, value) in labels {
        if key.is_empty() {
            return Err(invalid_argument("a label key must not be empty"));
        }
        let size = key.len() as u64 + value.len() as u64;
        if size > limit {
            let shown: String = key.chars().take(64).collect();
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "label {shown:?}: key and value are {size} bytes, over the label limit (label_size) of {limit}"
                ),
            ));
        }
    }
    Ok(())
}

impl Engine {
    fn labels_path(&self, digest: &Digest) -> PathBuf {
        Path::new(LABELS_DIR).join(digest.algorithm().name()).join(digest.hex())
    }

    fn read_labels(&self, digest: &Digest) -> Result<Labels> {
        let path = self.labels_path(digest);
        match self.layout.read_json_file(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                crate::error::invalid_image(format!("{} is not a label map: {e}", self.layout.display(&path).display()))
            }),
            Err(err) if err.kind() == crate::ErrorKind::NotFound => Ok(Labels::new()),
            Err(err) => Err(err),
        }
    }

    fn created_path(&self, digest: &Digest) -> PathBuf {
        Path::new(CREATED_DIR).join(digest.algorithm().name()).join(digest.hex())
    }

    /// Replaces a blob's labels; an empty map is written too, its mtime being the blob's
    /// `updatedAt`.
    pub(crate) fn write_labels(&self, digest: &Digest, labels: &Labels) -> Result<()> {
        let path = self.labels_path(digest);
        if let Some(dir) = path.parent() {
            self.layout.create_dir(dir)?;
        }
        self.layout.replace_json_file(&path, &crate::spec::canonical_json(labels)?)
    }

    /// Removes what the store keeps of a blob beside it (labels, creation record): the blob is
    /// deleted or was never there.
    pub(crate) fn remove_blob_metadata(&self, digest: &Digest) -> Result<()> {
        self.remove_labels(digest)?;
        self.remove_creation_record(digest)
    }

    pub(crate) fn remove_labels(&self, digest: &Digest) -> Result<()> {
        self.remove_metadata_file(&self.labels_path(digest))
    }

    pub(crate) fn remove_creation_record(&self, digest: &Digest) -> Result<()> {
        self.remove_metadata_file(&self.created_path(digest))
    }

    fn remove_metadata_file(&self, path: &Path) -> Result<()> {
        match self.layout.storage().remove_file(path) {
            Ok(()) => self.layout.sync_parent(path),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(self.layout.io_error("cannot remove", path, err)),
        }
    }

    /// The creation time recorded for a blob whose mtime a later commit refreshed; `None` when
    /// none was recorded (its mtime is its creation time). Anything but a file there is
    /// `InvalidImage`.
    fn recorded_creation(&self, digest: &Digest) -> Result<Option<SystemTime>> {
        let path = self.created_path(digest);
        match self.layout.dir().stat(&path) {
            Ok(stat) if EntryKind::of_stat(&stat) == EntryKind::File => Ok(Some(modified_time(&stat))),
            Ok(stat) => Err(crate::error::invalid_image(format!(
                "{} is {}, not a blob's creation record",
                self.layout.display(&path).display(),
                EntryKind::of_stat(&stat).describe()
            ))),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(self.layout.io_error("cannot stat", &path, err)),
        }
    }

    /// Records `created` (the mtime of a stored blob a commit is about to refresh) as the blob's
    /// creation time, unless one is recorded already: the record is linked into place, never
    /// replaced, so of claimers racing the first one's stands, and each reads the mtime before
    /// its own refresh. The caller holds the shared store lock.
    pub(crate) fn record_creation(&self, digest: &Digest, created: SystemTime) -> Result<()> {
        let path = self.created_path(digest);
        // Recorded already; anything else there is left to `info` and fsck to report, so that
        // junk planted beside a blob does not stop commits of it.
        if self.layout.dir().kind(&path).map_err(|e| self.layout.io_error("cannot stat", &path, e))?.is_some() {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            self.layout.create_dir(dir)?;
        }
        let temp = self.layout.temp_file()?;
        let storage = self.layout.storage();
        storage
            .set_modified(temp.file(), created)
            .map_err(|e| self.layout.io_error("cannot set the mtime of", temp.path(), e))?;
        temp.sync()?;
        match storage.link(temp.file(), temp.path(), &path) {
            Ok(()) => self.layout.sync_parent(&path),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(err) => Err(self.layout.io_error(
                &format!("cannot link {} to", self.layout.display(temp.path()).display()),
                &path,
                err,
            )),
        }
    }

    /// Digest, size, times and labels of a stored blob.
    pub fn info(&self, digest: &Digest) -> Result<BlobInfo> {
        let reader = self.open_blob(digest)?;
        let labels = self.read_labels(digest)?;
        // The mtime first: a claim records it before refreshing it, so either the record is
        // there now or this mtime is still the creation time.
        let blob_mtime = reader
            .modified()
            .map_err(|e| self.layout.io_error("cannot stat blob", &self.layout.blob_path(digest), e))?;
        let created_at = self.recorded_creation(digest)?.unwrap_or(blob_mtime);
        let labels_mtime = self.layout.dir().stat(&self.labels_path(digest)).ok().map(|stat| modified_time(&stat));
        Ok(BlobInfo {
            digest: digest.clone(),
            size: reader.size(),
            created_at,
            updated_at: labels_mtime.map_or(created_at, |t| t.max(created_at)),
            labels,
        })
    }

    /// containerd's `Update`: with no field paths, or `labels`, the blob's labels become
    /// `labels`; `labels.<key>` sets or (when absent from `labels`) removes one key. Any other
    /// field is `InvalidArgument`. Returns the updated info.
    pub fn update_labels(&self, digest: &Digest, labels: &Labels, field_paths: &[&str]) -> Result<BlobInfo> {
        validate_labels(labels, self.limits().label_size)?;
        let _lock = self.layout.lock_exclusive()?;
        self.open_blob(digest)?;
        let mut updated = if field_paths.is_empty() { labels.clone() } else { self.read_labels(digest)? };
        for path in field_paths {
            if *path == "labels" {
                updated = labels.clone();
            } else if let Some(key) = path.strip_prefix("labels.") {
                match labels.get(key) {
                    Some(value) => updated.insert(key.to_owned(), value.clone()),
                    None => updated.remove(key),
                };
            } else {
                return Err(invalid_argument(format!("cannot update field {path:?} of blob {digest}")));
            }
        }
        self.write_labels(digest, &updated)?;
        drop(_lock);
        self.info(digest)
    }

    /// Calls `visit` with the info of every blob matching `filters` (containerd syntax over
    /// `digest`, `size`, `labels.<key>`), in digest order. `visit` returns false to stop.
    pub fn walk(&self, filters: &Filters, mut visit: impl FnMut(&BlobInfo) -> Result<bool>) -> Result<()> {
        let labelled = self.blobs_named_in(LABELS_DIR)?;
        let recorded = self.blobs_named_in(CREATED_DIR)?;
        for digest in self.list_blobs()? {
            let info = if labelled.contains(&digest) || recorded.contains(&digest) {
                self.info(&digest)
            } else {
                self.info_without_metadata(&digest)
            };
            let info = match info {
                Ok(info) => info,
                // Removed since it was listed.
                Err(err) if err.kind() == crate::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            if filters.matches(|path| info.field(path)) && !visit(&info)? {
                break;
            }
        }
        Ok(())
    }

    /// `info` of a blob with neither labels nor a creation record: one stat.
    fn info_without_metadata(&self, digest: &Digest) -> Result<BlobInfo> {
        let path = self.layout.blob_path(digest);
        let stat = self.layout.dir().stat(&path).map_err(|e| self.layout.io_error("cannot stat blob", &path, e))?;
        let mtime = modified_time(&stat);
        Ok(BlobInfo {
            digest: digest.clone(),
            size: stat.st_size as u64,
            created_at: mtime,
            updated_at: mtime,
            labels: Labels::new(),
        })
    }

    /// Every blob's labels, for GC (its roots and `gc.ref` edges).
    pub(crate) fn all_labels(&self) -> Result<Vec<(Digest, Labels)>> {
        let mut all = Vec::new();
        for digest in self.blobs_named_in(LABELS_DIR)? {
            match self.read_labels(&digest) {
                Ok(labels) => all.push((digest, labels)),
                Err(err) if err.kind() == crate::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        Ok(all)
    }

    /// GC's part: removes the labels and creation records of blobs that are not stored; returns
    /// how many labels files. The caller holds the exclusive store lock (commits write both
    /// under the shared one).
    pub(crate) fn sweep_orphan_labels(&self, dry_run: bool, failed: &mut Vec<String>) -> Result<u64> {
        let mut removed = 0;
        let labelled = self.blobs_named_in(LABELS_DIR)?;
        let recorded = self.blobs_named_in(CREATED_DIR)?;
        for digest in labelled.union(&recorded) {
            if !self.has_blob(digest).unwrap_or(true) {
                if !dry_run && let Err(err) = self.remove_blob_metadata(digest) {
                    failed.push(err.message().to_owned());
                    continue;
                }
                removed += u64::from(labelled.contains(digest));
            }
        }
        Ok(removed)
    }

    /// fsck's part: every labels file named by a digest is a label map GC can read (one it
    /// cannot stops GC).
    pub(crate) fn label_problems(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        for digest in self.blobs_named_in(LABELS_DIR)? {
            if let Err(err) = self.read_labels(&digest) {
                problems.push(format!("{} (GC stops at it; remove it)", err.message()));
            }
        }
        Ok(problems)
    }

    /// fsck's part: every creation record named by a digest is a file (anything else makes the
    /// blob's `info`, and so every walk, fail).
    pub(crate) fn creation_record_problems(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        for digest in self.blobs_named_in(CREATED_DIR)? {
            if let Err(err) = self.recorded_creation(&digest) {
                problems.push(format!("{} (info and walks fail at it; remove it)", err.message()));
            }
        }
        Ok(problems)
    }

    /// Digests that have a file in the per-blob directory `per_blob` (labels or creation
    /// records), listed once so a walk does not probe every blob.
    fn blobs_named_in(&self, per_blob: &str) -> Result<HashSet<Digest>> {
        let mut named = HashSet::new();
        for algorithm in Algorithm::ALL {
            let dir = Path::new(per_blob).join(algorithm.name());
            self.layout
                .dir()
                .for_each_entry(&dir, |name, _| {
                    if let Some(digest) = name.to_str().and_then(|hex| Digest::from_parts(algorithm, hex).ok()) {
                        named.insert(digest);
                    }
                    Ok(())
                })
                .map_err(|e| self.layout.io_error("cannot list", &dir, e))?;
        }
        Ok(named)
    }
}
