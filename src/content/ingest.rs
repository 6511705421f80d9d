//! The ingest store (containerd's `content.Store` ingest half): ref-named ingests that resume
//! across processes, opened, reconciled with the caller's expectations, listed, aborted and
//! swept.
//!
//! An ingest lives in `.ocicas/ingest/<sha256(ref)>/`: `ingest.json` (its ref, start time,
//! declared total and expected digest, written once when the writer opens), `data`, and
//! `hashstate` (see `hash_state`); its update time is the data's mtime. A writer holds a flock
//! on the ingest directory, so one ref has at most one live writer across all processes; the
//! kernel drops the lock when the holder dies. Whoever removes an ingest (abort, commit, GC)
//! holds that lock and removes the directory through its handle.
//!
//! Only committed blobs are promised to survive a power loss: an ingest's directory and
//! metadata are written without fsync (replaced atomically, so no reader sees half a file),
//! and an ingest whose metadata a power loss took is started afresh. Its data is fsynced before
//! its hash state is saved, so a state never describes bytes that were lost.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use std::fs::{File, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::format_time;
use super::writer::IngestWriter;
use crate::digest::{Algorithm, Digest};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result, invalid_argument, invalid_image, not_found};
use crate::filters::Filters;
use crate::layout::{EntryKind, INGEST_DIR, modified_time};

/// How long an open waits for an ingest's lock to be released before it reports `Locked`: an
/// abort, a commit or a GC removing the ingest holds it for milliseconds, and so does a child
/// that another thread of a process forks (it holds a copy of every open file description, an
/// ingest's lock too, until it execs); a live writer holds it for as long as it writes.
const LOCK_WAIT: Duration = Duration::from_secs(1);
const LOCK_POLL: Duration = Duration::from_millis(2);
/// Opens retried when the ingest directory is removed or replaced under them.
const OPEN_ATTEMPTS: u32 = 1000;

/// What a writer is opened with; both fields are optional, as in containerd.
#[derive(Debug, Clone, Default)]
pub struct WriterOptions {
    pub expected_size: Option<u64>,
    pub expected_digest: Option<Digest>,
}

/// The state of one ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestStatus {
    pub ref_name: String,
    pub offset: u64,
    pub total: Option<u64>,
    pub expected: Option<Digest>,
    pub started_at: SystemTime,
    pub updated_at: SystemTime,
}

impl IngestStatus {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ref": self.ref_name,
            "offset": self.offset,
            "total": self.total,
            "expected": self.expected.as_ref().map(Digest::to_string),
            "startedAt": format_time(self.started_at),
            "updatedAt": format_time(self.updated_at),
        })
    }

    fn field(&self, path: &[String]) -> Option<String> {
        match path {
            [field] if field == "ref" => Some(self.ref_name.clone()),
            [field] if field == "expected" => self.expected.as_ref().map(Digest::to_string),
            [field] if field == "total" => self.total.map(|t| t.to_string()),
            [field] if field == "offset" => Some(self.offset.to_string()),
            _ => None,
        }
    }
}

/// What `ingest.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IngestMeta {
    #[serde(rename = "ref")]
    ref_name: String,
    /// Nanoseconds since the epoch.
    started_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expected: Option<Digest>,
}

const META_FILE: &str = "ingest.json";

/// An ingest directory, open and flocked: no one else writes or removes it while this lives.
pub(super) struct LockedIngest {
    pub(super) dir: PathBuf,
    pub(super) handle: File,
}

impl Engine {
    fn ingest_root(&self) -> PathBuf {
        PathBuf::from(INGEST_DIR)
    }

    fn ingest_dir(&self, ref_name: &str) -> PathBuf {
        self.ingest_root().join(Digest::of_bytes(Algorithm::Sha256, ref_name.as_bytes()).hex())
    }

    /// Opens the writer of `ref_name`, resuming the ingest a closed writer left, or starting one.
    /// `Locked` when a live writer (in any process) holds the ref; `AlreadyExists` when the
    /// expected digest is already stored (nothing is read then, and an idle ingest of the ref is
    /// removed: its content is there). Atomic with respect to removals of the same ingest: it
    /// resumes, starts fresh or reports the blob stored, never a half-removed ingest.
    pub fn writer(&self, ref_name: &str, options: &WriterOptions) -> Result<IngestWriter> {
        if ref_name.is_empty() {
            return Err(invalid_argument("an ingest ref must not be empty"));
        }
        let locked = self.lock_ingest(ref_name, options.expected_digest.as_ref(), options.expected_size)?;
        let status = match self.read_ingest_status(ref_name, &locked.dir) {
            Ok(status) => status,
            // Half-written or damaged metadata, or a directory just made: start afresh.
            Err(err) if matches!(err.kind(), ErrorKind::InvalidImage | ErrorKind::NotFound) => {
                self.reset_ingest(ref_name, &locked.dir)?
            }
            Err(err) => return Err(err),
        };
        let status = self.reconcile_options(status, &locked.dir, options)?;
        IngestWriter::open(self, locked, status)
    }

    /// Creates (when missing) and flocks the ingest directory of `ref_name`. An ingest being
    /// removed by someone else (who holds its lock for that) is waited for and started afresh;
    /// one held past `LOCK_WAIT` is a live writer's: `Locked`. With `expected`, each attempt
    /// first looks whether that blob is stored at `expected_size`, when given (a commit may be
    /// what removed the ingest):
    /// `AlreadyExists` then, and an idle ingest of the ref is removed.
    fn lock_ingest(
        &self,
        ref_name: &str,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<LockedIngest> {
        let dir = self.ingest_dir(ref_name);
        self.layout.create_dir(&self.ingest_root())?;
        for _ in 0..OPEN_ATTEMPTS {
            if let Some(expected) = expected
                && self.claim_stored_blob(expected, expected_size)?
            {
                self.remove_idle_ingest(ref_name)?;
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("blob {expected} is already stored (ref {ref_name:?})"),
                ));
            }
            // Not made durable: an ingest need not survive a power loss.
            self.layout
                .storage()
                .create_dir(&dir)
                .map_err(|e| self.layout.io_error("cannot create ingest", &dir, e))?;
            let handle = match self.layout.dir().open_dir(&dir) {
                Ok(handle) => handle,
                // Removed between our mkdir and our open.
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(self.layout.io_error("cannot open ingest", &dir, err)),
            };
            if !self.wait_for_lock(&handle, &dir, ref_name)? {
                continue;
            }
            if self.is_at(&handle, &dir)? {
                return Ok(LockedIngest { dir, handle });
            }
        }
        Err(Error::new(ErrorKind::Io, format!("ingest {ref_name:?} kept being removed while it was opened")))
    }

    /// Takes the lock of `handle`; false when the directory left `dir` while we waited (its
    /// remover finished), so the caller starts over.
    fn wait_for_lock(&self, handle: &File, dir: &Path, ref_name: &str) -> Result<bool> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match handle.try_lock() {
                Ok(()) => return Ok(true),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(err)) => return Err(self.layout.io_error("cannot lock ingest", dir, err)),
            }
            if !self.is_at(handle, dir)? {
                return Ok(false);
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::new(ErrorKind::Locked, format!("ref {ref_name:?} is locked by another writer")));
            }
            std::thread::sleep(LOCK_POLL);
        }
    }

    /// Whether the directory open as `handle` is still the one at `dir`.
    fn is_at(&self, handle: &File, dir: &Path) -> Result<bool> {
        let held = handle.metadata().map_err(|e| self.layout.io_error("cannot stat ingest", dir, e))?;
        match self.layout.dir().stat(dir) {
            Ok(now) => Ok(now.st_ino == held.ino() && now.st_dev == held.dev()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(self.layout.io_error("cannot stat ingest", dir, err)),
        }
    }

    /// Removes the ingest of `ref_name` unless a live writer holds it.
    fn remove_idle_ingest(&self, ref_name: &str) -> Result<()> {
        let dir = self.ingest_dir(ref_name);
        let handle = match self.layout.dir().open_dir(&dir) {
            Ok(handle) => handle,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(self.layout.io_error("cannot open ingest", &dir, err)),
        };
        if handle.try_lock().is_err() || !self.is_at(&handle, &dir)? {
            return Ok(());
        }
        self.remove_ingest(&LockedIngest { dir, handle })
    }

    /// Starts an ingest from nothing: no data (its name is removed, never truncated: it may be
    /// a link to another file), no hash state; its metadata is written by `reconcile_options`.
    fn reset_ingest(&self, ref_name: &str, dir: &Path) -> Result<IngestStatus> {
        self.remove_if_present(&dir.join("data"))?;
        self.remove_if_present(&dir.join("hashstate"))?;
        self.remove_if_present(&dir.join(META_FILE))?;
        let now = SystemTime::now();
        Ok(IngestStatus {
            ref_name: ref_name.to_owned(),
            offset: 0,
            total: None,
            expected: None,
            started_at: now,
            updated_at: now,
        })
    }

    /// Applies the caller's expected size and digest to a resumed ingest, and writes the
    /// metadata when it is new or changed: a different total than the one recorded is an
    /// error, as is a different expected digest.
    fn reconcile_options(&self, mut status: IngestStatus, dir: &Path, options: &WriterOptions) -> Result<IngestStatus> {
        let recorded = status.clone();
        if let Some(size) = options.expected_size {
            match status.total {
                Some(total) if total != size => {
                    return Err(invalid_argument(format!(
                        "ref {:?} was started with total {total}, not {size}",
                        status.ref_name
                    )));
                }
                Some(_) => {}
                None => status.total = Some(size),
            }
        }
        if let Some(expected) = &options.expected_digest {
            match &status.expected {
                Some(recorded) if recorded != expected => {
                    return Err(invalid_argument(format!(
                        "ref {:?} was started expecting {recorded}, not {expected}",
                        status.ref_name
                    )));
                }
                Some(_) => {}
                None if status.offset > 0 && expected.algorithm() != Algorithm::Sha256 => {
                    return Err(invalid_argument(format!(
                        "ref {:?} was started as a sha256 ingest; truncate it to expect {expected}",
                        status.ref_name
                    )));
                }
                None => status.expected = Some(expected.clone()),
            }
        }
        if let Some(total) = status.total
            && status.offset > total
        {
            return Err(Error::new(
                ErrorKind::SizeMismatch,
                format!("ref {:?} holds {} bytes, more than its total {total}", status.ref_name, status.offset),
            ));
        }
        if status != recorded || self.layout.dir().kind(&dir.join(META_FILE)).ok().flatten().is_none() {
            let meta = IngestMeta {
                ref_name: status.ref_name.clone(),
                started_at: nanos(status.started_at),
                total: status.total,
                expected: status.expected.clone(),
            };
            self.layout.replace_file_unsynced(&dir.join(META_FILE), &crate::spec::canonical_json(&meta)?)?;
        }
        Ok(status)
    }

    /// Reads an ingest's state from its files. `NotFound` when there is no such ingest;
    /// `InvalidImage` when its metadata is missing, damaged or too large, or names another ref.
    fn read_ingest_status(&self, ref_name: &str, dir: &Path) -> Result<IngestStatus> {
        let damaged = |what: &str| Error::new(ErrorKind::InvalidImage, format!("ingest {ref_name:?}: {what}"));
        match self.layout.dir().kind(dir).map_err(|e| self.layout.io_error("cannot stat", dir, e))? {
            Some(EntryKind::Dir) => {}
            None => return Err(not_found(format!("no ingest for ref {ref_name:?}"))),
            Some(kind) => return Err(damaged(&format!("its directory is {}", kind.describe()))),
        }
        let meta = self.read_ingest_meta(dir).map_err(|err| damaged(err.message()))?;
        if meta.ref_name != ref_name {
            return Err(damaged(&format!("{META_FILE} names another ref")));
        }
        let started_at = UNIX_EPOCH + Duration::from_nanos(meta.started_at);
        let data = self.layout.dir().stat(&dir.join("data"));
        if let Ok(stat) = &data {
            check_data(stat).map_err(|what| damaged(&what))?;
        }
        let offset = data.as_ref().map_or(0, |stat| stat.st_size as u64);
        let updated_at = data.map_or(started_at, |stat| modified_time(&stat)).max(started_at);
        Ok(IngestStatus {
            ref_name: ref_name.to_owned(),
            offset,
            total: meta.total,
            expected: meta.expected,
            started_at,
            updated_at,
        })
    }

    /// The parsed `ingest.json` of the ingest directory `dir`.
    fn read_ingest_meta(&self, dir: &Path) -> Result<IngestMeta> {
        let path = dir.join(META_FILE);
        let bytes = self.layout.read_metadata_file(&path)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| invalid_image(format!("{} is not ingest metadata: {e}", self.layout.display(&path).display())))
    }

    /// The state of the ingest of `ref_name`, whether or not a writer holds it.
    pub fn ingest_status(&self, ref_name: &str) -> Result<IngestStatus> {
        self.read_ingest_status(ref_name, &self.ingest_dir(ref_name))
    }

    /// Every ingest in progress whose status matches `filters` (containerd syntax over `ref`,
    /// `expected`, `total`, `offset`), sorted by ref. Damaged ingests are skipped.
    pub fn ingest_list(&self, filters: &Filters) -> Result<Vec<IngestStatus>> {
        let mut statuses = Vec::new();
        for (dir, ref_name) in self.ingest_dirs()? {
            let Some(ref_name) = ref_name else { continue };
            if let Ok(status) = self.read_ingest_status(&ref_name, &dir)
                && filters.matches(|path| status.field(path))
            {
                statuses.push(status);
            }
        }
        statuses.sort_by(|a, b| a.ref_name.cmp(&b.ref_name));
        Ok(statuses)
    }

    /// Every directory under `.ocicas/ingest/`, with the ref its metadata names (None when it
    /// is missing or damaged, or names a ref whose directory this is not).
    fn ingest_dirs(&self) -> Result<Vec<(PathBuf, Option<String>)>> {
        let root = self.ingest_root();
        let mut dirs = Vec::new();
        self.layout
            .dir()
            .for_each_entry(&root, |name, kind| {
                if kind == EntryKind::Dir {
                    dirs.push(root.join(name));
                }
                Ok(())
            })
            .map_err(|e| self.layout.io_error("cannot list", &root, e))?;
        Ok(dirs
            .into_iter()
            .map(|dir| {
                // A directory not named for its ref is damaged: that ref's writer would not find it.
                let ref_name = self
                    .read_ingest_meta(&dir)
                    .ok()
                    .map(|meta| meta.ref_name)
                    .filter(|ref_name| self.ingest_dir(ref_name) == dir);
                (dir, ref_name)
            })
            .collect())
    }

    /// Removes the ingest of `ref_name`. `NotFound` when there is none; `Locked` while a live
    /// writer holds it.
    pub fn ingest_abort(&self, ref_name: &str) -> Result<()> {
        let dir = self.ingest_dir(ref_name);
        if self.layout.dir().kind(&dir).map_err(|e| self.layout.io_error("cannot stat", &dir, e))?.is_none() {
            return Err(not_found(format!("no ingest for ref {ref_name:?}")));
        }
        let locked = self.lock_ingest(ref_name, None, None)?;
        self.remove_ingest(&locked)
    }

    /// Opens the data an ingest holds so far for reading, without a writer: the docker-archive
    /// reader reads back the members it staged.
    pub(crate) fn open_ingest_data(&self, ref_name: &str) -> Result<File> {
        let path = self.ingest_dir(ref_name).join("data");
        self.layout.dir().open_read(&path).map_err(|err| match err.kind() {
            io::ErrorKind::NotFound => not_found(format!("no ingest for ref {ref_name:?}")),
            _ => self.layout.io_error("cannot open", &path, err),
        })
    }

    /// GC's part: removes the ingests that no live writer holds, no live lease names, and that
    /// were not updated within `expiry` (zero: all of them). Returns their refs.
    pub(crate) fn sweep_ingests(
        &self,
        expiry: Duration,
        leased: &HashSet<String>,
        dry_run: bool,
        failed: &mut Vec<String>,
    ) -> Result<Vec<String>> {
        let now = SystemTime::now();
        let mut removed = Vec::new();
        for (dir, ref_name) in self.ingest_dirs()? {
            let ref_name = ref_name.unwrap_or_default();
            if leased.contains(&ref_name) {
                continue;
            }
            let Ok(handle) = self.layout.dir().open_dir(&dir) else { continue };
            if handle.try_lock().is_err() || !self.is_at(&handle, &dir)? {
                continue; // a live writer holds it, or it was replaced since it was listed
            }
            // Its age is read under its lock, so a writer that resumed it since the listing counts.
            // A damaged ingest counts from its directory's own time.
            let updated_at = match self.read_ingest_status(&ref_name, &dir) {
                Ok(status) => status.updated_at,
                Err(_) => self.layout.dir().stat(&dir).map_or(now, |stat| modified_time(&stat)),
            };
            if now.duration_since(updated_at).unwrap_or_default() < expiry {
                continue;
            }
            if !dry_run && let Err(err) = self.remove_ingest(&LockedIngest { dir, handle }) {
                failed.push(err.message().to_owned());
                continue;
            }
            removed.push(ref_name);
        }
        removed.sort();
        Ok(removed)
    }

    /// fsck's part: every ingest directory holds files only, which GC can remove (a directory
    /// planted in one is not removed).
    pub(crate) fn ingest_problems(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        for (dir, _) in self.ingest_dirs()? {
            self.layout
                .dir()
                .for_each_entry(&dir, |name, kind| {
                    if kind != EntryKind::File {
                        problems.push(format!(
                            "{} is {} in an ingest (GC removes ingests of files only; remove it)",
                            self.layout.display(&dir.join(name)).display(),
                            kind.describe()
                        ));
                    }
                    Ok(())
                })
                .map_err(|e| self.layout.io_error("cannot list", &dir, e))?;
        }
        Ok(problems)
    }

    /// Removes a locked ingest directory through its handle (not durably: one that a power
    /// loss brings back has lost its data to the blob it became, or is garbage GC removes).
    pub(super) fn remove_ingest(&self, locked: &LockedIngest) -> Result<()> {
        self.layout
            .storage()
            .remove_dir_all(&locked.dir, &locked.handle)
            .map_err(|e| self.layout.io_error("cannot remove ingest", &locked.dir, e))
    }

    pub(super) fn remove_if_present(&self, path: &Path) -> Result<()> {
        match self.layout.storage().remove_file(path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(self.layout.io_error("cannot remove", path, err)),
        }
    }
}

/// What a writer never leaves as an ingest's data: anything but a regular file (a planted link
/// or FIFO), a file with other links (one may be a blob the ingest became before a power loss
/// undid its removal, or a file outside the layout), or one of mostly holes (a writer writes
/// every byte; a planted sparse file of terabytes would be hashed for hours when resumed). Such
/// an ingest is started afresh, its data's name removed, never written through.
fn check_data(stat: &rustix::fs::Stat) -> std::result::Result<(), String> {
    let kind = EntryKind::of_stat(stat);
    if kind != EntryKind::File {
        return Err(format!("its data is {}", kind.describe()));
    }
    if stat.st_nlink > 1 {
        return Err(format!("its data has {} links", stat.st_nlink));
    }
    if crate::layout::mostly_holes(stat) {
        return Err(format!("its data of {} bytes is mostly holes", stat.st_size));
    }
    Ok(())
}

/// A time as `ingest.json` records it: nanoseconds since the epoch (0 before it; saturated in
/// the year 2554).
fn nanos(time: SystemTime) -> u64 {
    u64::try_from(time.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()).unwrap_or(u64::MAX)
}
