//! The OCI distribution API: push an image of the layout to a registry, pull one into it, and
//! stream a layer straight into a registry. A blocking client (no async runtime inside a C
//! library); blobs move in `jobs` threads at once, children before the manifests naming them.
//! Every request has a deadline from the limits `registry_timeout` and `registry_min_rate`.

mod auth;
mod client;
mod pull;
mod push;
mod reference;
mod upload;

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

pub use auth::Credentials;
pub use push::push_layer;
pub use reference::RemoteRef;
pub(crate) use reference::{valid_repository, valid_tag};

use client::{Client, Paced};

use crate::cancel::Cancel;
use crate::digest::Digest;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result, invalid_argument};
use crate::limits::{Limit, Limits};
use crate::spec::Descriptor;

/// Blobs moved at once when the caller does not say (fewer when the `threads` limit is lower).
pub const DEFAULT_JOBS: usize = 4;
/// Bytes per upload request (PATCH) of a streamed layer when the caller does not say: it holds
/// two chunks in memory. A stored blob goes in one request unless the caller says otherwise
/// (fewer requests are faster: a 232 MB push took 1.3 s in 16 MiB chunks, 0.9 s whole; a failed
/// request is resent from the registry's offset either way).
pub const DEFAULT_STREAM_CHUNK_SIZE: u64 = 16 * 1024 * 1024;
/// The largest chunk size accepted (a streamed layer holds two chunks in memory).
pub const MAX_CHUNK_SIZE: u64 = 1024 * 1024 * 1024;
/// Progress is reported at least every this many bytes of a blob.
const PROGRESS_STEP: u64 = 1024 * 1024;

/// How much of one blob has moved. `done == total` once it is complete (or was already there).
/// A streamed layer has neither digest nor total until it ends.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub digest: Option<&'a Digest>,
    pub done: u64,
    pub total: Option<u64>,
}

/// Called from the threads that move blobs, never by two at once.
pub type ProgressCallback = dyn FnMut(&Progress<'_>) + Send;

#[derive(Clone, Default)]
pub struct RegistryOptions {
    /// None: the registry's entry in the Docker config file, if any.
    pub credentials: Option<Credentials>,
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// Blobs moved at once (each a thread), at most the `threads` limit; 0 means `DEFAULT_JOBS`
    /// or the `threads` limit, whichever is lower.
    pub jobs: usize,
    /// Bytes per upload request, at most `MAX_CHUNK_SIZE`; 0 means a whole stored blob per request, and
    /// `DEFAULT_STREAM_CHUNK_SIZE` for a streamed layer.
    pub chunk_size: u64,
    /// Push: a repository of the same registry to mount blobs from instead of uploading them.
    pub mount_from: Option<String>,
    /// Pull of an index: the platforms (`os/arch[/variant]`) to pull; empty means all.
    pub platforms: Vec<String>,
    /// Pull: move the local ref when it already points to another image.
    pub force: bool,
    pub progress: Option<Arc<Mutex<ProgressCallback>>>,
    /// Stops the transfer (`Cancelled`) before its next request and within the blob body being
    /// sent or received (at its next read of a chunk); a document request in flight, and a
    /// body read or send the registry stalls, ends by its deadline (`registry_timeout`) first. A cancelled pull leaves resumable ingests, a cancelled push an upload the
    /// registry purges (it is not cancelled with a request).
    pub cancel: Cancel,
}

impl std::fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("credentials", &self.credentials)
            .field("insecure", &self.insecure)
            .field("jobs", &self.jobs)
            .field("chunk_size", &self.chunk_size)
            .field("mount_from", &self.mount_from)
            .field("platforms", &self.platforms)
            .field("force", &self.force)
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

impl RegistryOptions {
    /// `InvalidArgument` for a job count over the `threads` limit or a chunk size over its
    /// maximum.
    fn check(&self, limits: &Limits) -> Result<()> {
        if self.jobs as u64 > limits.threads {
            let over = limits.exceeded(Limit::Threads, format!("jobs {}", self.jobs));
            return Err(invalid_argument(over.message()));
        }
        if self.chunk_size > MAX_CHUNK_SIZE {
            return Err(invalid_argument(format!(
                "chunk size {} is over the limit of {MAX_CHUNK_SIZE} bytes",
                self.chunk_size
            )));
        }
        Ok(())
    }

    fn jobs(&self, limits: &Limits) -> usize {
        match self.jobs {
            0 => usize::try_from(limits.threads).unwrap_or(usize::MAX).min(DEFAULT_JOBS),
            jobs => jobs,
        }
    }

    /// The bytes per request for a blob of `size` (a stored one) or of a streamed layer (None).
    fn chunk_size(&self, size: Option<u64>) -> u64 {
        match (self.chunk_size, size) {
            (0, Some(size)) => size.max(1),
            (0, None) => DEFAULT_STREAM_CHUNK_SIZE,
            (chunk_size, _) => chunk_size,
        }
    }

    fn report_progress(&self, digest: Option<&Digest>, done: u64, total: Option<u64>) {
        if let Some(progress) = &self.progress {
            let mut callback = progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            callback(&Progress { digest, done, total });
        }
    }
}

/// What a push or pull did: the image's descriptor, and what moved.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferReport {
    pub descriptor: Descriptor,
    /// Blobs (manifests included) whose bytes crossed the network.
    pub transferred: u64,
    /// Blob bytes that crossed the network.
    pub bytes: u64,
    /// Blobs the other side already had.
    pub skipped: u64,
    /// Blobs mounted from another repository instead of uploaded (push only).
    pub mounted: u64,
}

impl TransferReport {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "descriptor": self.descriptor,
            "blobs": {
                "transferred": self.transferred,
                "bytes": self.bytes,
                "skipped": self.skipped,
                "mounted": self.mounted,
            },
        })
    }
}

/// The counters of a transfer, shared by its threads.
#[derive(Default)]
struct Tally {
    transferred: AtomicU64,
    bytes: AtomicU64,
    skipped: AtomicU64,
    mounted: AtomicU64,
}

impl Tally {
    fn report(&self, descriptor: Descriptor) -> TransferReport {
        TransferReport {
            descriptor,
            transferred: self.transferred.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            mounted: self.mounted.load(Ordering::Relaxed),
        }
    }

    fn count(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// One blob on the move: where its bytes are counted and its progress reported, and the
/// registry whose limits pace it.
struct BlobMeter<'a> {
    client: &'a Client,
    options: &'a RegistryOptions,
    tally: &'a Tally,
    /// None for a streamed layer until it ends.
    digest: Option<&'a Digest>,
    total: Option<u64>,
}

/// Counts the bytes of one blob as they are read, into the tally and the progress callback;
/// a read fails when they come slower than the registry limits allow.
struct Metered<'a, R> {
    inner: Paced<'a, R>,
    meter: &'a BlobMeter<'a>,
    done: u64,
    reported: u64,
}

impl<'a, R> Metered<'a, R> {
    /// Reads `inner`, whose first byte is byte `done` of the blob.
    fn new(inner: R, meter: &'a BlobMeter<'a>, done: u64) -> Self {
        meter.options.report_progress(meter.digest, done, meter.total);
        Metered { inner: Paced::new(inner, meter.client), meter, done, reported: done }
    }
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        Tally::count(&self.meter.tally.bytes, n as u64);
        if self.done - self.reported >= PROGRESS_STEP || (n > 0 && Some(self.done) == self.meter.total) {
            self.reported = self.done;
            self.meter.options.report_progress(self.meter.digest, self.done, self.meter.total);
        }
        Ok(n)
    }
}

/// Runs `work` on every item with up to `jobs` threads; stops taking new items after the first
/// failure and returns it.
fn for_each_parallel<T: Sync>(items: &[T], jobs: usize, work: impl Fn(&T) -> Result<()> + Sync) -> Result<()> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    let worker = || {
        while !failed.load(Ordering::Relaxed) {
            let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else { return };
            if let Err(err) = work(item) {
                failed.store(true, Ordering::Relaxed);
                first_error.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get_or_insert(err);
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..jobs.clamp(1, items.len().max(1)) {
            // A thread the system refuses leaves the work to the ones there are.
            if crate::threads::spawn_scoped(scope, "registry job", worker).is_err() {
                break;
            }
        }
        worker();
    });
    match first_error.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()) {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// An index or manifest at `depth` may have its children followed only within
/// `Limits::walk_depth` (a long chain of digests can be crafted by whoever serves or stored
/// them); the same rule as fsck's and GC's.
fn check_depth(engine: &Engine, descriptor: &Descriptor, depth: usize) -> Result<()> {
    let limits = engine.limits();
    if !limits.follows_children_at(depth as u64) {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "{} nests deeper than the walk depth limit (walk_depth) of {}",
                descriptor.digest, limits.walk_depth
            ),
        ));
    }
    Ok(())
}

/// `/v2/<repository>/<kind>/<reference>`.
fn api_path(repository: &str, kind: &str, reference: &str) -> String {
    format!("/v2/{repository}/{kind}/{reference}")
}
