//! Ref-named ingest writers (containerd's `content.Writer`), resumable across processes.
//!
//! An ingest lives in `.ocicas/ingest/<sha256(ref)>/`: `ref`, `data`, `total`, `expected`,
//! `startedat`, `updatedat`, and `hashstate` (the hash of `data` up to an offset, so a resume
//! need not re-read what was hashed). A writer holds a flock on the ingest directory, so one ref
//! has at most one live writer across all processes; the kernel drops the lock when the holder
//! dies.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::content::IO_CHUNK;
use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, ErrorKind, Result, invalid_argument, not_found};
use crate::filters::Filters;
use crate::layout::Engine;

/// Hash state is saved (after an fsync of the data) every this many bytes, so a writer killed
/// mid-ingest re-hashes at most this much on resume.
const CHECKPOINT_BYTES: u64 = 256 << 20;
/// Written data is handed to the kernel's writeback in ranges of this size as it arrives, so
/// the disk works while we hash and the fsync of a checkpoint or commit has little left to do.
const WRITEBACK_BYTES: u64 = 8 << 20;

const HASH_STATE_MAGIC: &str = "ocicas-hashstate-v1";

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

/// RFC 3339 with nanoseconds, UTC.
pub fn format_time(time: SystemTime) -> String {
    humantime::format_rfc3339_nanos(time).to_string()
}

/// A live writer of one ref. Dropping it without `commit` closes it (the ingest stays,
/// resumable); `close` does the same and reports errors.
pub struct IngestWriter {
    engine: Engine,
    dir: PathBuf,
    /// The ingest directory, opened and flocked for the writer's lifetime.
    _lock: File,
    data: File,
    hasher: Hasher,
    status: IngestStatus,
    hashed_since_checkpoint: u64,
    state: WriterState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterState {
    Open,
    /// Closed by `close`: progress saved, nothing left to do on drop.
    Closed,
    Committed,
}

impl std::fmt::Debug for IngestWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestWriter").field("status", &self.status).finish()
    }
}

impl Engine {
    fn ingest_root(&self) -> PathBuf {
        self.private_dir().join("ingest")
    }

    fn ingest_dir(&self, ref_name: &str) -> PathBuf {
        self.ingest_root().join(Digest::of_bytes(Algorithm::Sha256, ref_name.as_bytes()).hex())
    }

    /// Opens the writer of `ref_name`, resuming the ingest a closed writer left, or starting one.
    /// `Locked` when a live writer (in any process) holds the ref; `AlreadyExists` when the
    /// expected digest is already stored (nothing is read or written then).
    pub fn writer(&self, ref_name: &str, options: &WriterOptions) -> Result<IngestWriter> {
        if ref_name.is_empty() {
            return Err(invalid_argument("an ingest ref must not be empty"));
        }
        if let Some(expected) = &options.expected_digest
            && self.claim_stored_blob(expected)?
        {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("blob {expected} is already stored (ref {ref_name:?})"),
            ));
        }
        let dir = self.ingest_dir(ref_name);
        let lock = self.lock_ingest_dir(ref_name, &dir)?;
        let status = match self.read_ingest_status(ref_name, &dir) {
            Ok(status) => status,
            // Half-written or damaged metadata: start this ingest afresh.
            Err(err) if err.kind() == ErrorKind::InvalidImage => self.reset_ingest(ref_name, &dir)?,
            Err(err) => return Err(err),
        };
        let status = self.reconcile_options(status, &dir, options)?;
        let data_path = dir.join("data");
        let data = self.storage().open_append(&data_path).map_err(|e| Error::io("cannot open", &data_path, e))?;
        let algorithm = status.expected.as_ref().map_or(Algorithm::Sha256, Digest::algorithm);
        let hasher = resume_hash(&dir, &data, algorithm, status.offset)?;
        Ok(IngestWriter {
            engine: self.clone(),
            dir,
            _lock: lock,
            data,
            hasher,
            status,
            hashed_since_checkpoint: 0,
            state: WriterState::Open,
        })
    }

    /// Creates (when missing) and flocks the ingest directory. Retries when an abort removed
    /// the directory between our open and our lock.
    fn lock_ingest_dir(&self, ref_name: &str, dir: &Path) -> Result<File> {
        self.create_dir(&self.ingest_root())?;
        loop {
            match self.storage().create_dir_all(dir) {
                Ok(()) => {}
                Err(err) => return Err(Error::io("cannot create ingest", dir, err)),
            }
            let handle = File::open(dir).map_err(|e| Error::io("cannot open ingest", dir, e))?;
            match handle.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(Error::new(ErrorKind::Locked, format!("ref {ref_name:?} is locked by another writer")));
                }
                Err(fs::TryLockError::Error(err)) => return Err(Error::io("cannot lock ingest", dir, err)),
            }
            let held = handle.metadata().map_err(|e| Error::io("cannot stat ingest", dir, e))?;
            if fs::metadata(dir).is_ok_and(|now| now.ino() == held.ino() && now.dev() == held.dev()) {
                return Ok(handle);
            }
        }
    }

    /// Starts an ingest from nothing: empty data, fresh metadata.
    fn reset_ingest(&self, ref_name: &str, dir: &Path) -> Result<IngestStatus> {
        let data_path = dir.join("data");
        let data = self.storage().open_append(&data_path).map_err(|e| Error::io("cannot open", &data_path, e))?;
        self.storage().set_len(&data, 0).map_err(|e| Error::io("cannot truncate", &data_path, e))?;
        for stale in ["hashstate", "total", "expected"] {
            remove_if_present(self, &dir.join(stale))?;
        }
        let now = SystemTime::now();
        self.replace_file(&dir.join("startedat"), time_text(now).as_bytes())?;
        self.replace_file(&dir.join("updatedat"), time_text(now).as_bytes())?;
        // `ref` last: an ingest whose `ref` file is present has complete metadata.
        self.replace_file(&dir.join("ref"), ref_name.as_bytes())?;
        Ok(IngestStatus {
            ref_name: ref_name.to_owned(),
            offset: 0,
            total: None,
            expected: None,
            started_at: now,
            updated_at: now,
        })
    }

    /// Applies the caller's expected size and digest to a resumed ingest; a different total than
    /// the one recorded is an error, as is a different expected digest.
    fn reconcile_options(&self, mut status: IngestStatus, dir: &Path, options: &WriterOptions) -> Result<IngestStatus> {
        if let Some(size) = options.expected_size {
            match status.total {
                Some(total) if total != size => {
                    return Err(invalid_argument(format!(
                        "ref {:?} was started with total {total}, not {size}",
                        status.ref_name
                    )));
                }
                Some(_) => {}
                None => {
                    self.replace_file(&dir.join("total"), size.to_string().as_bytes())?;
                    status.total = Some(size);
                }
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
                None => {
                    self.replace_file(&dir.join("expected"), expected.to_string().as_bytes())?;
                    status.expected = Some(expected.clone());
                }
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
        Ok(status)
    }

    /// Reads an ingest's state from its files. `NotFound` when there is no such ingest;
    /// `InvalidImage` when its metadata is incomplete or damaged.
    fn read_ingest_status(&self, ref_name: &str, dir: &Path) -> Result<IngestStatus> {
        let damaged = |what: &str| Error::new(ErrorKind::InvalidImage, format!("ingest {ref_name:?}: {what}"));
        let read = |name: &str| -> Result<Option<String>> {
            match fs::read_to_string(dir.join(name)) {
                Ok(text) => Ok(Some(text)),
                Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(err) if err.kind() == io::ErrorKind::InvalidData => Err(damaged(&format!("{name} is not text"))),
                Err(err) => Err(Error::io("cannot read", &dir.join(name), err)),
            }
        };
        if !dir.is_dir() {
            return Err(not_found(format!("no ingest for ref {ref_name:?}")));
        }
        match read("ref")? {
            Some(recorded) if recorded == ref_name => {}
            _ => return Err(damaged("ref file missing or different")),
        }
        let time = |name: &str| -> Result<SystemTime> {
            read(name)?
                .and_then(|text| parse_time(&text))
                .ok_or_else(|| damaged(&format!("{name} is missing or invalid")))
        };
        let started_at = time("startedat")?;
        let updated_at = time("updatedat")?;
        let total = match read("total")? {
            Some(text) => Some(text.trim().parse::<u64>().map_err(|_| damaged("total is not a number"))?),
            None => None,
        };
        let expected = match read("expected")? {
            Some(text) => Some(text.trim().parse::<Digest>().map_err(|_| damaged("expected is not a digest"))?),
            None => None,
        };
        let data = fs::metadata(dir.join("data"));
        let offset = data.as_ref().map(|m| m.len()).unwrap_or(0);
        let data_mtime = data.ok().and_then(|m| m.modified().ok()).unwrap_or(updated_at);
        Ok(IngestStatus {
            ref_name: ref_name.to_owned(),
            offset,
            total,
            expected,
            started_at,
            updated_at: updated_at.max(data_mtime),
        })
    }

    /// The state of the ingest of `ref_name`, whether or not a writer holds it.
    pub fn ingest_status(&self, ref_name: &str) -> Result<IngestStatus> {
        self.read_ingest_status(ref_name, &self.ingest_dir(ref_name))
    }

    /// Every ingest in progress whose status matches `filters` (containerd syntax over `ref`,
    /// `expected`, `total`, `offset`), sorted by ref. Damaged ingests are skipped.
    pub fn ingest_list(&self, filters: &Filters) -> Result<Vec<IngestStatus>> {
        let root = self.ingest_root();
        let entries = match fs::read_dir(&root) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(Error::io("cannot list", &root, err)),
        };
        let mut statuses = Vec::new();
        for entry in entries {
            let dir = entry.map_err(|e| Error::io("cannot list", &root, e))?.path();
            let Ok(ref_name) = fs::read_to_string(dir.join("ref")) else { continue };
            if let Ok(status) = self.read_ingest_status(&ref_name, &dir)
                && filters.matches(|path| status.field(path))
            {
                statuses.push(status);
            }
        }
        statuses.sort_by(|a, b| a.ref_name.cmp(&b.ref_name));
        Ok(statuses)
    }

    /// Removes the ingest of `ref_name`. `NotFound` when there is none; `Locked` while a live
    /// writer holds it.
    pub fn ingest_abort(&self, ref_name: &str) -> Result<()> {
        let dir = self.ingest_dir(ref_name);
        if !dir.is_dir() {
            return Err(not_found(format!("no ingest for ref {ref_name:?}")));
        }
        let _lock = self.lock_ingest_dir(ref_name, &dir)?;
        self.remove_ingest_dir(&dir)
    }

    /// Opens the data an ingest holds so far for reading, without a writer: the docker-archive
    /// reader reads back the members it staged. Never follows a symlink nor blocks on a FIFO.
    pub(crate) fn open_ingest_data(&self, ref_name: &str) -> Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.ingest_dir(ref_name).join("data");
        fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(&path).map_err(|err| {
            match err.kind() {
                io::ErrorKind::NotFound => not_found(format!("no ingest for ref {ref_name:?}")),
                _ => Error::io("cannot open", &path, err),
            }
        })
    }

    /// GC's part: removes the ingests that no live writer holds, no live lease names, and that
    /// were not updated within `expiry` (zero: all of them). Returns their refs.
    pub(crate) fn sweep_ingests(
        &self,
        expiry: Duration,
        leased: &HashSet<String>,
        dry_run: bool,
    ) -> Result<Vec<String>> {
        let root = self.ingest_root();
        let entries = match fs::read_dir(&root) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(Error::io("cannot list", &root, err)),
        };
        let now = SystemTime::now();
        let mut removed = Vec::new();
        for entry in entries {
            let dir = entry.map_err(|e| Error::io("cannot list", &root, e))?.path();
            let ref_name = fs::read_to_string(dir.join("ref")).unwrap_or_default();
            if leased.contains(&ref_name) {
                continue;
            }
            // A damaged ingest counts from its directory's own time.
            let updated_at = match self.read_ingest_status(&ref_name, &dir) {
                Ok(status) => status.updated_at,
                Err(_) => fs::metadata(&dir).and_then(|m| m.modified()).unwrap_or(now),
            };
            if now.duration_since(updated_at).unwrap_or_default() < expiry {
                continue;
            }
            let Ok(handle) = File::open(&dir) else { continue };
            if handle.try_lock().is_err() {
                continue; // a live writer holds it
            }
            if !dry_run {
                self.remove_ingest_dir(&dir)?;
            }
            removed.push(ref_name);
        }
        removed.sort();
        Ok(removed)
    }

    fn remove_ingest_dir(&self, dir: &Path) -> Result<()> {
        self.storage().remove_dir_all(dir).map_err(|e| Error::io("cannot remove ingest", dir, e))?;
        self.sync_parent(dir)
    }
}

impl IngestWriter {
    pub fn status(&self) -> &IngestStatus {
        &self.status
    }

    /// The digest of what has been written so far.
    pub fn digest(&self) -> Digest {
        self.hasher.current()
    }

    /// Appends `bytes`. Writing past a declared total fails before anything is written.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.check_open()?;
        let end = self.status.offset + bytes.len() as u64;
        if let Some(total) = self.status.total
            && end > total
        {
            return Err(Error::new(
                ErrorKind::SizeMismatch,
                format!(
                    "writing {} bytes to ref {:?} at offset {} would pass its total of {total}",
                    bytes.len(),
                    self.status.ref_name,
                    self.status.offset
                ),
            ));
        }
        let data_path = self.dir.join("data");
        self.engine.storage().write_all(&mut self.data, bytes).map_err(|e| Error::io("cannot write", &data_path, e))?;
        self.hasher.update(bytes);
        let written_back = self.status.offset / WRITEBACK_BYTES;
        if end / WRITEBACK_BYTES > written_back {
            let from = written_back * WRITEBACK_BYTES;
            self.engine.storage().start_writeback(&self.data, from, end - from);
        }
        self.status.offset = end;
        self.status.updated_at = SystemTime::now();
        self.hashed_since_checkpoint += bytes.len() as u64;
        // No checkpoint once the declared total is written: a commit follows, not a resume.
        if self.hashed_since_checkpoint >= CHECKPOINT_BYTES && self.status.total != Some(end) {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Restarts the ingest from nothing. Only size 0 is supported.
    pub fn truncate(&mut self, size: u64) -> Result<()> {
        self.check_open()?;
        if size != 0 {
            return Err(Error::new(ErrorKind::NotImplemented, "an ingest can only be truncated to 0"));
        }
        let data_path = self.dir.join("data");
        self.engine.storage().set_len(&self.data, 0).map_err(|e| Error::io("cannot truncate", &data_path, e))?;
        remove_if_present(&self.engine, &self.dir.join("hashstate"))?;
        self.hasher = Hasher::new(self.hasher.algorithm());
        self.status.offset = 0;
        self.status.updated_at = SystemTime::now();
        self.hashed_since_checkpoint = 0;
        Ok(())
    }

    /// Verifies and publishes the ingest as a blob: fsync, size check, then digest check; on a
    /// mismatch nothing becomes visible and the ingest stays resumable. When the blob is already
    /// stored the ingest is removed and `AlreadyExists` returned. `labels` are set on the blob.
    pub fn commit(
        &mut self,
        size: Option<u64>,
        expected: Option<&Digest>,
        labels: &BTreeMap<String, String>,
    ) -> Result<Digest> {
        self.check_open()?;
        let data_path = self.dir.join("data");
        // The data is fsynced by publish_blob, before anything becomes visible.
        let offset = self.status.offset;
        for (what, wanted) in [("commit size", size), ("declared total", self.status.total)] {
            if let Some(wanted) = wanted.filter(|&w| w != offset) {
                return Err(Error::new(
                    ErrorKind::SizeMismatch,
                    format!("ref {:?} holds {offset} bytes, its {what} is {wanted}", self.status.ref_name),
                ));
            }
        }
        let expected = expected.or(self.status.expected.as_ref());
        let digest = match expected {
            Some(expected) if expected.algorithm() != self.hasher.algorithm() => {
                hash_file(&self.data, expected.algorithm(), offset)?
            }
            _ => self.hasher.current(),
        };
        if let Some(expected) = expected.filter(|e| **e != digest) {
            return Err(Error::new(
                ErrorKind::DigestMismatch,
                format!("ref {:?} hashes to {digest}, expected {expected}", self.status.ref_name),
            ));
        }
        crate::content::validate_labels(labels, self.engine.limits().label_size)?;
        let stored = self.engine.publish_blob(&self.data, &data_path, &digest, offset, labels)?;
        self.finish_ingest()?;
        if !stored {
            return Err(Error::new(ErrorKind::AlreadyExists, format!("blob {digest} is already stored")));
        }
        Ok(digest)
    }

    fn finish_ingest(&mut self) -> Result<()> {
        self.state = WriterState::Committed;
        self.engine.remove_ingest_dir(&self.dir)
    }

    /// Closes the writer, keeping the ingest resumable: data fsynced, hash state saved.
    pub fn close(mut self) -> Result<()> {
        let saved = self.save_progress();
        self.state = WriterState::Closed;
        saved
    }

    fn save_progress(&mut self) -> Result<()> {
        if self.state != WriterState::Open {
            return Ok(());
        }
        self.checkpoint()?;
        self.engine.replace_file(&self.dir.join("updatedat"), time_text(self.status.updated_at).as_bytes())
    }

    /// Makes the data durable, then records the hash state for its offset.
    fn checkpoint(&mut self) -> Result<()> {
        let data_path = self.dir.join("data");
        self.engine.storage().sync_file(&self.data).map_err(|e| Error::io("cannot fsync", &data_path, e))?;
        let mut state =
            format!("{HASH_STATE_MAGIC}\n{}\n{}\n", self.hasher.algorithm().name(), self.status.offset).into_bytes();
        state.extend_from_slice(&self.hasher.save_state());
        self.engine.replace_file(&self.dir.join("hashstate"), &state)?;
        self.hashed_since_checkpoint = 0;
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        if self.state == WriterState::Committed {
            return Err(invalid_argument(format!(
                "the writer of ref {:?} was already committed",
                self.status.ref_name
            )));
        }
        Ok(())
    }
}

impl Drop for IngestWriter {
    fn drop(&mut self) {
        // Best effort: without the saved state a resume re-hashes the data, which is still correct.
        let _ = self.save_progress();
    }
}

/// The hasher for `data` up to `offset`: from the saved state when it is valid for a prefix of
/// the data (hashing only the rest), else by re-hashing everything.
fn resume_hash(dir: &Path, data: &File, algorithm: Algorithm, offset: u64) -> Result<Hasher> {
    let saved = fs::read(dir.join("hashstate")).ok().and_then(|bytes| parse_hash_state(&bytes, algorithm));
    let (mut hasher, from) = match saved {
        Some((hasher, saved_offset)) if saved_offset <= offset => (hasher, saved_offset),
        _ => (Hasher::new(algorithm), 0),
    };
    hash_range(data, &mut hasher, from, offset)?;
    Ok(hasher)
}

fn parse_hash_state(bytes: &[u8], algorithm: Algorithm) -> Option<(Hasher, u64)> {
    let mut parts = bytes.splitn(4, |&b| b == b'\n');
    let magic = parts.next()?;
    let name = parts.next()?;
    let offset = parts.next()?;
    let state = parts.next()?;
    if magic != HASH_STATE_MAGIC.as_bytes() || name != algorithm.name().as_bytes() {
        return None;
    }
    let offset = std::str::from_utf8(offset).ok()?.parse().ok()?;
    Some((Hasher::restore_state(algorithm, state, offset)?, offset))
}

fn hash_range(data: &File, hasher: &mut Hasher, from: u64, to: u64) -> Result<()> {
    let mut buf = vec![0u8; IO_CHUNK];
    let mut pos = from;
    while pos < to {
        let want = (to - pos).min(IO_CHUNK as u64) as usize;
        let n = FileExt::read_at(data, &mut buf[..want], pos)
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read ingest data: {e}")))?;
        if n == 0 {
            return Err(Error::new(ErrorKind::Io, "ingest data ended early"));
        }
        hasher.update(&buf[..n]);
        pos += n as u64;
    }
    Ok(())
}

fn hash_file(data: &File, algorithm: Algorithm, len: u64) -> Result<Digest> {
    let mut hasher = Hasher::new(algorithm);
    hash_range(data, &mut hasher, 0, len)?;
    Ok(hasher.finish())
}

fn remove_if_present(engine: &Engine, path: &Path) -> Result<()> {
    match engine.storage().remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(Error::io("cannot remove", path, err)),
    }
}

fn time_text(time: SystemTime) -> String {
    time.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos().to_string()
}

fn parse_time(text: &str) -> Option<SystemTime> {
    let nanos: u128 = text.trim().parse().ok()?;
    let nanos = u64::try_from(nanos).ok()?;
    Some(UNIX_EPOCH + Duration::from_nanos(nanos))
}

/// Where `copy` reads from: resuming skips what the ingest already has, by seeking or
/// positioned reads when the source allows, else by reading and discarding.
pub enum CopySource<'a> {
    Reader(&'a mut dyn Read),
    Seeker(&'a mut dyn ReadSeek),
    ReaderAt(&'a dyn ReadAt),
}

pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// Positioned reads (`pread`), as from a file or a blob reader.
pub trait ReadAt {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

impl ReadAt for crate::content::BlobReader {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        crate::content::BlobReader::read_at(self, buf, offset).map_err(io::Error::other)
    }
}

impl IngestWriter {
    /// Copies the rest of `source` into the writer (containerd's `content.Copy`): what the
    /// ingest already holds is skipped, then everything up to the end of the source is written.
    /// Does not commit.
    pub fn copy_from(&mut self, source: CopySource<'_>) -> Result<()> {
        let skip = self.status.offset;
        let read_error = |e: io::Error| Error::new(ErrorKind::Io, format!("cannot read the copy source: {e}"));
        let mut buf = vec![0u8; IO_CHUNK];
        match source {
            CopySource::ReaderAt(source) => {
                let mut pos = skip;
                loop {
                    let n = source.read_at(&mut buf, pos).map_err(read_error)?;
                    if n == 0 {
                        return Ok(());
                    }
                    self.write(&buf[..n])?;
                    pos += n as u64;
                }
            }
            CopySource::Seeker(source) => {
                source.seek(SeekFrom::Start(skip)).map_err(read_error)?;
                self.copy_stream(source, &mut buf, read_error)
            }
            CopySource::Reader(source) => {
                let skipped = io::copy(&mut source.take(skip), &mut io::sink()).map_err(read_error)?;
                if skipped < skip {
                    return Err(Error::new(
                        ErrorKind::SizeMismatch,
                        format!("the copy source ended after {skipped} bytes, before the ingest's offset {skip}"),
                    ));
                }
                self.copy_stream(source, &mut buf, read_error)
            }
        }
    }

    fn copy_stream(
        &mut self,
        source: &mut dyn Read,
        buf: &mut [u8],
        read_error: impl Fn(io::Error) -> Error,
    ) -> Result<()> {
        loop {
            let n = match source.read(buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(read_error(err)),
            };
            self.write(&buf[..n])?;
        }
    }
}

impl Engine {
    /// containerd's `WriteBlob`: stores what `source` yields under `ref_name`, resuming an
    /// earlier attempt, and returns at once, reading nothing, when `expected` is already stored.
    pub fn write_blob(
        &self,
        ref_name: &str,
        source: CopySource<'_>,
        size: Option<u64>,
        expected: &Digest,
        labels: &BTreeMap<String, String>,
    ) -> Result<()> {
        let options = WriterOptions { expected_size: size, expected_digest: Some(expected.clone()) };
        let mut writer = match self.writer(ref_name, &options) {
            Err(err) if err.kind() == ErrorKind::AlreadyExists => return Ok(()),
            result => result?,
        };
        writer.copy_from(source)?;
        match writer.commit(size, Some(expected), labels) {
            Err(err) if err.kind() == ErrorKind::AlreadyExists => Ok(()),
            result => result.map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::create(dir.path().join("layout")).unwrap();
        (dir, engine)
    }

    #[test]
    fn closed_writer_resumes_from_saved_hash_state() {
        let (_dir, engine) = engine();
        let mut writer = engine.writer("ref-a", &WriterOptions::default()).unwrap();
        writer.write(b"hello ").unwrap();
        writer.close().unwrap();
        let mut writer = engine.writer("ref-a", &WriterOptions::default()).unwrap();
        assert_eq!(writer.status().offset, 6);
        writer.write(b"world").unwrap();
        let expected = Digest::of_bytes(Algorithm::Sha256, b"hello world");
        assert_eq!(writer.commit(Some(11), Some(&expected), &Labels::new()).unwrap(), expected);
        assert_eq!(engine.read_blob(&expected, 100).unwrap(), b"hello world");
        assert!(engine.ingest_list(&Filters::parse::<&str>(&[]).unwrap()).unwrap().is_empty());
    }

    #[test]
    fn second_writer_of_a_ref_is_locked() {
        let (_dir, engine) = engine();
        let _held = engine.writer("ref-b", &WriterOptions::default()).unwrap();
        let err = engine.writer("ref-b", &WriterOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Locked);
    }

    #[test]
    fn commit_with_wrong_digest_keeps_ingest_resumable() {
        let (_dir, engine) = engine();
        let mut writer = engine.writer("ref-c", &WriterOptions::default()).unwrap();
        writer.write(b"abc").unwrap();
        let wrong = Digest::of_bytes(Algorithm::Sha256, b"abd");
        let err = writer.commit(None, Some(&wrong), &Labels::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DigestMismatch);
        assert!(!engine.has_blob(&wrong).unwrap());
        let right = Digest::of_bytes(Algorithm::Sha256, b"abc");
        assert_eq!(writer.commit(Some(3), Some(&right), &Labels::new()).unwrap(), right);
    }

    use crate::content::Labels;
}
