//! Staging: what an archive read writes goes into ingests of its own, under the reader's lease,
//! and becomes a blob only when an import publishes it. Whatever was not published is aborted
//! when the staging is dropped, so a refused or partial import leaves nothing behind (a crash
//! leaves ingests that GC removes once the lease expires). Every byte staged counts toward
//! `archive_import_size`.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{ArchiveProgress, IMPORT, for_each_chunk};
use crate::cancel::Cancel;
use crate::content::Labels;
use crate::content::WriterOptions;
use crate::digest::Digest;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::lease::LeaseResource;
use crate::limits::Limit;

/// The lease outlives a crashed process (or a reader left unused) by at most this long.
const LEASE_EXPIRY: Duration = Duration::from_secs(60 * 60);
/// Each use of the staging renews its lease once this much of its expiry has passed, so a
/// reader in use keeps it however long it lives.
const LEASE_RENEW_AFTER: Duration = Duration::from_secs(15 * 60);
/// How often a long staging (a huge member, a slow stream) looks at its lease meanwhile.
const LEASE_CHECK_EVERY: Duration = Duration::from_secs(60);

/// Bytes written to an ingest of the staging, not yet published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Staged {
    pub(crate) ref_name: String,
    pub(crate) digest: Digest,
    pub(crate) size: u64,
}

pub(super) struct Staging {
    engine: Engine,
    lease: String,
    /// Bytes staged so far.
    written: AtomicU64,
    /// Every ingest staged, by ref: whether it was published (its bytes are a blob now).
    ingests: Mutex<HashMap<String, bool>>,
    next_ref: AtomicU64,
    progress: Mutex<Option<ArchiveProgress>>,
    /// Stops what is staged or read from now on.
    cancel: Mutex<Cancel>,
    /// When `charge` last looked at the lease.
    lease_checked: Mutex<Instant>,
}

impl Staging {
    pub(super) fn new(engine: &Engine) -> Result<Staging> {
        let lease = engine.lease_new(None, Some(LEASE_EXPIRY))?.id;
        Ok(Staging {
            engine: engine.clone(),
            lease,
            written: AtomicU64::new(0),
            ingests: Mutex::new(HashMap::new()),
            next_ref: AtomicU64::new(0),
            progress: Mutex::new(None),
            cancel: Mutex::new(Cancel::default()),
            lease_checked: Mutex::new(Instant::now()),
        })
    }

    /// Reports every byte staged from now on to `progress`.
    pub(super) fn report_to(&self, progress: Option<ArchiveProgress>) {
        *self.progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = progress;
    }

    /// Makes what is staged, and the members read, from now on stop once `cancel` is requested.
    pub(super) fn stop_on(&self, cancel: Cancel) {
        *self.cancel.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = cancel;
    }

    pub(super) fn cancel(&self) -> Cancel {
        self.cancel.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub(super) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Writes everything `source` yields into a new ingest. A failure to read `source` is an
    /// `Io` error; callers that know better (the archive was truncated) say so.
    pub(super) fn stage(&self, source: &mut dyn Read) -> Result<Staged> {
        self.keep_lease()?;
        let ref_name = format!("{}-member-{}", self.lease, self.next_ref.fetch_add(1, Ordering::Relaxed));
        let mut writer = self.engine.writer(&ref_name, &WriterOptions::default())?;
        self.ingests().insert(ref_name.clone(), false);
        self.engine.lease_add(&self.lease, LeaseResource::Ingest(ref_name.clone()))?;
        let read_error = |err| Error::new(ErrorKind::Io, format!("cannot read a member to stage: {err}"));
        for_each_chunk(source, read_error, |chunk| {
            self.charge(chunk.len() as u64)?;
            writer.write(chunk)
        })?;
        let staged = Staged { ref_name, digest: writer.digest(), size: writer.status().offset };
        // Closed, so that a reader with many members holds no descriptor for each.
        writer.close()?;
        Ok(staged)
    }

    /// Counts `bytes` more toward what this import writes; `TooLarge` past `archive_import_size`.
    fn charge(&self, bytes: u64) -> Result<()> {
        self.cancel().check(IMPORT)?;
        let written = self.written.fetch_add(bytes, Ordering::Relaxed).saturating_add(bytes);
        if let Some(progress) = self.progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).as_ref() {
            (progress.0)(written);
        }
        {
            let mut checked = self.lease_checked.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if checked.elapsed() >= LEASE_CHECK_EVERY {
                self.keep_lease()?;
                *checked = Instant::now();
            }
        }
        let limits = self.engine.limits();
        match written > limits.archive_import_size {
            true => Err(limits.exceeded(
                Limit::ArchiveImportSize,
                format!("the docker archive import has {written} bytes to write into the store"),
            )),
            false => Ok(()),
        }
    }

    /// The staged bytes: from the ingest, or from the blob once published.
    pub(super) fn open(&self, staged: &Staged) -> Result<Box<dyn Read + Send>> {
        self.keep_lease()?;
        match self.ingests().get(&staged.ref_name) {
            Some(true) => Ok(Box::new(self.engine.open_blob(&staged.digest)?)),
            _ => Ok(Box::new(self.engine.open_ingest_data(&staged.ref_name)?.take(staged.size))),
        }
    }

    /// Makes the staged bytes the blob they hash to, added to the lease first so that no GC
    /// takes it before it is tagged. Publishing twice is publishing once.
    pub(super) fn publish(&self, staged: &Staged) -> Result<()> {
        if self.ingests().get(&staged.ref_name) == Some(&true) {
            return Ok(());
        }
        self.keep_lease()?;
        self.engine.lease_add(&self.lease, LeaseResource::Blob(staged.digest.clone()))?;
        let mut writer = self.engine.writer(&staged.ref_name, &WriterOptions::default())?;
        match writer.commit(Some(staged.size), Some(&staged.digest), &Labels::new()) {
            Err(err) if err.kind() != ErrorKind::AlreadyExists => return Err(err),
            _ => {}
        }
        self.ingests().insert(staged.ref_name.clone(), true);
        Ok(())
    }

    /// Renews the lease when `LEASE_RENEW_AFTER` of it has passed. A lease that expired (the
    /// reader was left unused for `LEASE_EXPIRY`) is `NotFound`: GC may have taken what it held.
    fn keep_lease(&self) -> Result<()> {
        let lease = self.engine.lease_get(&self.lease)?;
        let now = std::time::SystemTime::now();
        let left = lease.expires_at.and_then(|expires| expires.duration_since(now).ok()).unwrap_or_default();
        if left + LEASE_RENEW_AFTER > LEASE_EXPIRY {
            return Ok(());
        }
        self.engine.lease_renew(&self.lease, LEASE_EXPIRY).map_err(|err| match err.kind() {
            ErrorKind::NotFound => Error::new(
                ErrorKind::NotFound,
                format!(
                    "the archive reader's lease {:?} expired (unused for an hour): open the archive again",
                    self.lease
                ),
            ),
            _ => err,
        })
    }

    fn ingests(&self) -> std::sync::MutexGuard<'_, HashMap<String, bool>> {
        self.ingests.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Best effort: what is left is removed by GC once the lease has expired.
        for (ref_name, published) in self.ingests().iter() {
            if !published {
                let _ = self.engine.ingest_abort(ref_name);
            }
        }
        let _ = self.engine.lease_release(&self.lease);
    }
}
