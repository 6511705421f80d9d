//! The content store: committed blobs (putting, reading random access and verified, stat,
//! delete, list); in `info` their labels and filtered walks; in `ingest`, `writer` and
//! `hash_state` the ref-named ingests that become blobs.

mod hash_state;
mod info;
mod ingest;
mod writer;

pub use info::{BlobInfo, Labels, validate_labels};
pub use ingest::{IngestStatus, WriterOptions};
pub use writer::{CopySource, IngestWriter, ReadAt, ReadSeek};

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::Serialize;

use crate::digest::{Algorithm, Digest, Hasher};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result, invalid_image, not_found};
use crate::layout::{EntryKind, TempFile};
use crate::limits::Limit;
use crate::spec::{Descriptor, Document, canonical_json, parse_document};

/// Times a publication replaces an odd entry of its blob's name before it gives up.
const PUBLISH_ATTEMPTS: u32 = 8;

/// Blobs `put_blobs` writes, fsyncs and links as one group: it holds this many temp files open
/// (fewer under a low open-file limit, see `put_group_size`).
const PUT_GROUP: usize = 256;
/// Most threads that fsync a group of `put_blobs` at once.
const SEAL_THREADS: usize = 16;

/// Read size for hashing and copying: 128 KiB measured fastest for sha2 here (PEERS.md).
pub(crate) const IO_CHUNK: usize = 128 << 10;

/// RFC 3339 with nanoseconds, UTC: how blob info and ingest status show times. These are file
/// times, which a layout can set before 1970 or after 9999: they are shown clamped to what RFC
/// 3339 can write.
pub fn format_time(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_nanos(time.clamp(std::time::UNIX_EPOCH, crate::timestamp::latest())).to_string()
}

/// A blob that is in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub digest: Digest,
    pub size: u64,
}

/// What `blobs/` holds under the name of a blob being committed (`Engine::stored_copy`).
enum StoredCopy {
    /// Nothing, or an entry that is not a file of the blob's size: the commit links its own.
    Absent,
    /// The blob's bytes in a file of one link: the commit refreshes its time (claims it).
    Sound,
    /// The blob's bytes in a file with other links (a `cp -al` clone of the layout, the temp name
    /// a killed writer left): its time is theirs too and cannot be refreshed, so the commit
    /// replaces it with its own file, young. Carries its mtime, the blob's creation time.
    Shared(std::time::SystemTime),
    /// A file of the blob's size whose bytes are not the blob's: the commit replaces it.
    Corrupt,
}

/// Random-access reader of one committed blob. `read_at` takes `&self`, so one reader may be
/// shared by threads; `Read` reads it from the start.
#[derive(Debug)]
pub struct BlobReader {
    file: File,
    size: u64,
    digest: Digest,
}

impl BlobReader {
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The blob file's mtime: its commit time, or its latest claim's (see `info`).
    pub(crate) fn modified(&self) -> io::Result<std::time::SystemTime> {
        self.file.metadata()?.modified()
    }

    /// Reads up to `buf.len()` bytes at `offset`; 0 at or past the end, whatever the offset
    /// (pread itself refuses offsets past i64::MAX).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        if offset >= self.size {
            return Ok(0);
        }
        FileExt::read_at(&self.file, buf, offset)
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read blob {}: {e}", self.digest)))
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Engine {
    /// Stores `bytes` as a sha256 blob; idempotent when it is already there.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<StoredBlob> {
        self.put_blob_from(Algorithm::Sha256, bytes)
    }

    /// Stores everything `reader` yields, hashing it while it is written: temp file under
    /// `.ocicas/`, fsync, rename into `blobs/`, fsync the directory, mode 0444.
    pub fn put_blob_from(&self, algorithm: Algorithm, reader: impl Read) -> Result<StoredBlob> {
        self.put_blob_with(algorithm, reader, None)
    }

    /// `put_blob_from`, with the blob added to lease `lease` before it becomes visible, so no
    /// GC can take it between its commit and whatever will reference it.
    pub fn put_blob_leased(&self, lease: &str, algorithm: Algorithm, reader: impl Read) -> Result<StoredBlob> {
        self.put_blob_with(algorithm, reader, Some(lease))
    }

    fn put_blob_with(&self, algorithm: Algorithm, mut reader: impl Read, lease: Option<&str>) -> Result<StoredBlob> {
        let mut temp = self.layout.temp_file()?;
        let mut hasher = Hasher::new(algorithm);
        let mut buf = vec![0u8; IO_CHUNK];
        let mut size = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    return Err(Error::new(ErrorKind::Io, format!("cannot read the blob's input: {err}")));
                }
            };
            hasher.update(&buf[..n]);
            temp.write_all(&buf[..n])?;
            size += n as u64;
        }
        let digest = hasher.finish();
        if let Some(lease) = lease {
            self.lease_add(lease, crate::lease::LeaseResource::Blob(digest.clone()))?;
        }
        self.install_blob(temp, &digest, size)?;
        Ok(StoredBlob { digest, size })
    }

    /// Stores `value` as canonical JSON (sorted keys, no whitespace), so that equal values
    /// always give the same digest, and returns its descriptor.
    pub fn put_json<T: Serialize>(&self, media_type: &str, value: &T) -> Result<Descriptor> {
        self.put_json_with(media_type, value, None)
    }

    /// `put_json`, with the blob added to lease `lease` before it becomes visible (as
    /// `put_blob_leased`).
    pub(crate) fn put_json_leased<T: Serialize>(&self, lease: &str, media_type: &str, value: &T) -> Result<Descriptor> {
        self.put_json_with(media_type, value, Some(lease))
    }

    fn put_json_with<T: Serialize>(&self, media_type: &str, value: &T, lease: Option<&str>) -> Result<Descriptor> {
        let bytes = canonical_json(value)?;
        let blob = self.put_blob_with(Algorithm::Sha256, &bytes[..], lease)?;
        Ok(Descriptor::new(media_type, blob.digest, blob.size))
    }

    /// Publishes a fully written temp file as the blob `digest`. Returns whether it was new.
    /// The temp file's name is removed when it drops.
    pub(crate) fn install_blob(&self, temp: TempFile<'_>, digest: &Digest, size: u64) -> Result<bool> {
        self.publish_blob(temp.file(), temp.path(), digest, size, &Labels::new())
    }

    /// Makes the fully written, open `file` (named `path`) the blob `digest`: fsync, mode 0444,
    /// a link of the open file into `blobs/` under the shared store lock, fsync the directory.
    /// The caller removes the name `path`. Returns false when an intact blob of that digest is
    /// already stored. Non-empty `labels` are written under the same lock, before the link, so
    /// GC never sees a labelled blob without its labels.
    pub(crate) fn publish_blob(
        &self,
        file: &File,
        path: &Path,
        digest: &Digest,
        size: u64,
        labels: &Labels,
    ) -> Result<bool> {
        self.seal(file, path)?;
        let _lock = self.layout.lock_shared()?;
        let new = self.link_blob(file, path, digest, size, labels)?;
        if new {
            self.layout.sync_parent(&self.layout.blob_path(digest))?;
        }
        Ok(new)
    }

    /// Stores each of `blobs` as a sha256 blob (idempotent for those already stored), as
    /// durably as `put_blob` does, for a caller with many small blobs to commit at once: each is
    /// written to its own temp file, then a group of them is fsynced (the file system can commit
    /// them together), linked into `blobs/` under one hold of the store lock, and the blob
    /// directory fsynced once per group. Stops at the first error; the blobs linked before it
    /// stay stored, durably. Every blob returned has the commit grace from the call's return,
    /// as a single put has from its own: a GC may not take it before the caller tags or leases
    /// it. A GC waits for the batch to end.
    pub fn put_blobs(&self, blobs: &[&[u8]]) -> Result<Vec<StoredBlob>> {
        // One shared hold of the store lock over the whole batch, so that no GC sweeps between
        // its groups; then the groups linked before the last are made young again, as they may
        // be older than the grace by now.
        let _lock = self.layout.lock_shared()?;
        let group_size = put_group_size();
        let mut stored = Vec::with_capacity(blobs.len());
        for group in blobs.chunks(group_size) {
            stored.extend(self.put_blob_group(group)?);
        }
        let last_group = blobs.len().checked_sub(1).map_or(0, |last| last % group_size + 1);
        for blob in &stored[..stored.len() - last_group] {
            let path = self.layout.blob_path(&blob.digest);
            if !self.touch(&path)? {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("blob {} was deleted while the batch that put it went on", blob.digest),
                ));
            }
        }
        Ok(stored)
    }

    /// One group of `put_blobs`; the caller holds the shared store lock.
    fn put_blob_group(&self, blobs: &[&[u8]]) -> Result<Vec<StoredBlob>> {
        let mut staged = Vec::with_capacity(blobs.len());
        for bytes in blobs {
            let mut temp = self.layout.temp_file()?;
            temp.write_all(bytes)?;
            let blob = StoredBlob { digest: Digest::of_bytes(Algorithm::Sha256, bytes), size: bytes.len() as u64 };
            staged.push((temp, blob));
        }
        // Every file is fsynced, on several threads: fsyncs that wait together share the disk's
        // cache flush (and a journal's commit), where one after another each waits for its own.
        // 256 blobs of 4 KiB took 12 ms here, 1 per blob before.
        crate::threads::in_parallel("blob seal", self.limits().threads, SEAL_THREADS, &staged, |batch| {
            batch.iter().try_for_each(|(temp, _)| self.seal(temp.file(), temp.path())).map(|()| Vec::<()>::new())
        })?;
        let mut linked = false;
        let mut outcome = Ok(());
        for (temp, blob) in &staged {
            match self.link_blob(temp.file(), temp.path(), &blob.digest, blob.size, &Labels::new()) {
                Ok(new) => linked |= new,
                Err(err) => {
                    outcome = Err(err);
                    break;
                }
            }
        }
        if linked {
            self.layout.sync_parent(&self.layout.blob_path(&staged[0].1.digest))?;
        }
        outcome?;
        Ok(staged.into_iter().map(|(_, blob)| blob).collect())
    }

    /// Makes a written blob file durable and read-only, before it is linked into `blobs/`.
    fn seal(&self, file: &File, path: &Path) -> Result<()> {
        let storage = self.layout.storage();
        storage.sync_file(file).map_err(|e| self.layout.io_error("cannot fsync", path, e))?;
        storage.set_read_only(file).map_err(|e| self.layout.io_error("cannot chmod", path, e))
    }

    /// Links the sealed `file` into `blobs/` as `digest`, without the directory's fsync (the
    /// caller's, once for as many links as it makes; a replacement fsyncs it at once). The caller
    /// holds the shared store lock. False when the blob is already stored with its bytes (it is
    /// claimed instead, or replaced by `file` when its time cannot be refreshed).
    fn link_blob(&self, file: &File, path: &Path, digest: &Digest, size: u64, labels: &Labels) -> Result<bool> {
        let storage = self.layout.storage();
        // A commit makes its blob young, whether it arrives now or was stored before, so that a
        // GC starting before the caller tags or leases it keeps it (see gc::COMMIT_GRACE_MARGIN).
        let replace = match self.stored_copy(digest, size) {
            // Deleted between the look and the touch (deletes take the shared lock too): published
            // below.
            StoredCopy::Sound => {
                if self.claim_stored(digest)? {
                    return Ok(false);
                }
                false
            }
            StoredCopy::Shared(created) => {
                self.record_creation(digest, created)?;
                self.replace_blob(path, digest, true)?;
                return Ok(false);
            }
            StoredCopy::Corrupt => true,
            StoredCopy::Absent => false,
        };
        // A record left by a blob of that digest that is gone (removed behind ocicas's back, a GC
        // cancelled mid-sweep, a truncated or corrupt file replaced below) is not this blob's
        // creation time. Removed before the link, so that it never removes the record of a
        // claimer of this blob.
        self.remove_creation_record(digest)?;
        let dest = self.layout.blob_path(digest);
        if !labels.is_empty() {
            self.write_labels(digest, labels)?;
        }
        if replace {
            self.replace_blob(path, digest, false)?;
            return Ok(true);
        }
        self.layout.create_dir(&self.layout.blob_dir(digest.algorithm()))?;
        self.touch_own(path)?;
        // An entry of that name that is not an intact blob (a truncated file, a planted link) is
        // replaced; a publisher of the same blob racing us (the lock is shared) may win.
        for _ in 0..PUBLISH_ATTEMPTS {
            match storage.link(file, path, &dest) {
                Ok(()) => return Ok(true),
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    if self.is_intact(digest, size) {
                        return Ok(false);
                    }
                    match storage.remove_file(&dest) {
                        Ok(()) => {}
                        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                        Err(err) => return Err(self.layout.io_error("cannot remove", &dest, err)),
                    }
                }
                Err(err) => {
                    return Err(self.layout.io_error(
                        &format!("cannot link {} to", self.layout.display(path).display()),
                        &dest,
                        err,
                    ));
                }
            }
        }
        Err(Error::new(
            ErrorKind::Io,
            format!("{} kept being replaced while it was published", self.layout.display(&dest).display()),
        ))
    }

    /// What `blobs/` holds for `digest`, which a commit of `size` bytes is about to publish. A
    /// file of the right size is hashed: the caller has just supplied every byte of the blob,
    /// so this costs about what the commit did, and a commit must not leave bytes that are not
    /// the blob's (rot, tampering) under its name. A new blob costs one stat, as before.
    fn stored_copy(&self, digest: &Digest, size: u64) -> StoredCopy {
        let Ok(stat) = self.layout.dir().stat(&self.layout.blob_path(digest)) else { return StoredCopy::Absent };
        if EntryKind::of_stat(&stat) != EntryKind::File || stat.st_size as u64 != size {
            return StoredCopy::Absent;
        }
        // ocicas seals its blobs read-only: a file someone else may write can change right after
        // any check of it, so it is replaced by the committer's sealed file, unhashed.
        // SAFETY: geteuid has no preconditions and cannot fail.
        let owner_writes = stat.st_mode & 0o200 != 0 && stat.st_uid != unsafe { libc::geteuid() };
        if stat.st_mode & 0o022 != 0 || owner_writes {
            return StoredCopy::Corrupt;
        }
        match self.verify_blob(digest) {
            Ok(()) if stat.st_nlink > 1 => StoredCopy::Shared(crate::layout::modified_time(&stat)),
            Ok(()) => StoredCopy::Sound,
            Err(err) if err.kind() == ErrorKind::NotFound => StoredCopy::Absent,
            // Not the blob's bytes, or not readable as them (EIO from a bad sector, a sparse file).
            Err(_) => StoredCopy::Corrupt,
        }
    }

    /// Makes the sealed file `path` the blob `digest` in one step (renamed over what is there, so
    /// readers see the old file or the new one, never none), young, and fsyncs the directory.
    /// `sound`: what is there is the blob's bytes, and a layout of another owner that refuses
    /// the rename keeps it (with the grace of its own mtime, as `touch` allows).
    fn replace_blob(&self, path: &Path, digest: &Digest, sound: bool) -> Result<()> {
        let dest = self.layout.blob_path(digest);
        self.touch_own(path)?;
        match self.layout.storage().rename(path, &dest) {
            Ok(()) => self.layout.sync_parent(&dest),
            Err(err) if sound && matches!(err.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => Ok(()),
            Err(err) => Err(self.layout.io_error(
                &format!("cannot rename {} over", self.layout.display(path).display()),
                &dest,
                err,
            )),
        }
    }

    /// Sets the mtime of the committing file itself to now, before it is published.
    fn touch_own(&self, path: &Path) -> Result<()> {
        if !self.touch(path)? {
            return Err(not_found(format!("{} vanished before it was committed", self.layout.display(path).display())));
        }
        Ok(())
    }

    /// Whether `digest` is stored. A stored blob gets its mtime refreshed under the store lock,
    /// as a commit would, so a caller told it already exists can go on and reference it; one
    /// whose file has other links cannot be refreshed, so it is not claimed: the caller writes
    /// it, and the commit replaces the file with its own. So is one whose file is not of the
    /// `size` the caller expects (cut short or grown in place: a re-pull repairs it).
    pub(crate) fn claim_stored_blob(&self, digest: &Digest, size: Option<u64>) -> Result<bool> {
        let _lock = self.layout.lock_shared()?;
        if let Some(size) = size
            && self.blob_size(digest).ok() != Some(size)
        {
            return Ok(false);
        }
        Ok(self.has_blob(digest)? && self.claim_stored(digest)?)
    }

    /// Refreshes a stored blob's mtime, as a commit of it does, having first recorded the mtime
    /// as its creation time (once; see `info`). False when the blob is gone (deleted meanwhile:
    /// the record is removed, the next publication is a new blob; its labels are left, as they
    /// may be a publisher's racing this one), and when its file has other links (its time is
    /// theirs too: the next publication replaces it). The caller holds the shared store lock.
    fn claim_stored(&self, digest: &Digest) -> Result<bool> {
        let path = self.layout.blob_path(digest);
        let stat = match self.layout.dir().stat(&path) {
            Ok(stat) => stat,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(err) => return Err(self.layout.io_error("cannot stat blob", &path, err)),
        };
        if stat.st_nlink > 1 {
            return Ok(false);
        }
        self.record_creation(digest, crate::layout::modified_time(&stat))?;
        if self.touch(&path)? {
            return Ok(true);
        }
        self.remove_creation_record(digest)?;
        Ok(false)
    }

    /// Sets a file's mtime to now; false when the file is gone (deleted by someone else). A
    /// layout of another owner (a shared read-mostly store) may refuse it, and a hard-linked
    /// file is not touched (its time is another file's too; a commit replaces such a blob, but
    /// one may gain a link in between); the commit still stands, with the grace of the file's
    /// own mtime.
    fn touch(&self, path: &Path) -> Result<bool> {
        match self.layout.storage().touch(path) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(err) if crate::error::Refused::is(&err) => Ok(true),
            Err(err) if matches!(err.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => Ok(true),
            Err(err) => Err(self.layout.io_error("cannot set the mtime of", path, err)),
        }
    }

    /// Whether `blobs/` holds a regular file of `size` bytes for `digest`: how a publisher that
    /// lost the race to link a blob tells that the winner's file is there.
    pub(crate) fn is_intact(&self, digest: &Digest, size: u64) -> bool {
        self.layout
            .dir()
            .stat(&self.layout.blob_path(digest))
            .is_ok_and(|stat| EntryKind::of_stat(&stat) == EntryKind::File && stat.st_size as u64 == size)
    }

    /// Opens a committed blob for random access.
    pub fn open_blob(&self, digest: &Digest) -> Result<BlobReader> {
        let path = self.layout.blob_path(digest);
        let file = self.layout.dir().open_read(&path).map_err(|err| match err.kind() {
            io::ErrorKind::NotFound => self.blob_not_found(digest),
            _ => self.layout.io_error("cannot open blob", &path, err),
        })?;
        let meta = file.metadata().map_err(|e| self.layout.io_error("cannot stat blob", &path, e))?;
        Ok(BlobReader { file, size: meta.len(), digest: digest.clone() })
    }

    /// Size of a committed blob (one stat; a symlink or other non-file is not a blob).
    pub fn blob_size(&self, digest: &Digest) -> Result<u64> {
        self.blob_size_of(digest, self.layout.dir().stat(&self.layout.blob_path(digest)))
    }

    /// The blob's size from the result of a stat of its file.
    /// The blob's path is built only for an error message: the GC walk calls this per blob.
    pub(crate) fn blob_size_of(&self, digest: &Digest, stat: io::Result<rustix::fs::Stat>) -> Result<u64> {
        match stat {
            Ok(stat) => match EntryKind::of_stat(&stat) {
                EntryKind::File => Ok(stat.st_size as u64),
                kind => Err(invalid_image(format!(
                    "{} is {}, not a blob",
                    self.layout.display(&self.layout.blob_path(digest)).display(),
                    kind.describe()
                ))),
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => Err(self.blob_not_found(digest)),
            Err(err) => Err(self.layout.io_error("cannot stat blob", &self.layout.blob_path(digest), err)),
        }
    }

    /// Whether a blob is stored.
    pub fn has_blob(&self, digest: &Digest) -> Result<bool> {
        match self.open_blob(digest) {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Hashes a committed blob and checks it against its name.
    /// A blob that is mostly holes is not hashed (see `layout::mostly_holes`): it is reported
    /// as not being one ocicas stored.
    pub fn verify_blob(&self, digest: &Digest) -> Result<()> {
        let mut reader = self.open_blob(digest)?;
        let stat = rustix::fs::fstat(&reader.file)
            .map_err(|e| self.layout.io_error("cannot stat", &self.layout.blob_path(digest), e.into()))?;
        if crate::layout::mostly_holes(&stat) {
            return Err(invalid_image(format!(
                "blob {digest} is {} bytes but only {} are on disk: a sparse file, not hashed (ocicas writes \
                 every byte of a blob)",
                stat.st_size,
                (stat.st_blocks as u64).saturating_mul(512)
            )));
        }
        let mut hasher = Hasher::new(digest.algorithm());
        let mut buf = vec![0u8; IO_CHUNK];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read blob {digest}: {e}")))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        check_digest(digest, hasher.finish())
    }

    /// Reads a whole blob into memory and verifies it; `TooLarge` past `limit` bytes (checked
    /// against the file's real size, never a declared one).
    pub fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        let reader = self.open_blob(digest)?;
        if reader.size() > limit {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("blob {digest} is {} bytes, over the limit of {limit}", reader.size()),
            ));
        }
        let mut bytes = Vec::new();
        reader
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read blob {digest}: {e}")))?;
        check_digest(digest, Digest::of_bytes(digest.algorithm(), &bytes))?;
        Ok(bytes)
    }

    /// Reads and parses the document a descriptor points at, by its media type. The declared
    /// size is checked against the JSON limit before anything is read, and against the bytes.
    pub fn read_document(&self, descriptor: &Descriptor) -> Result<Document> {
        if descriptor.size > self.max_json_size() {
            return Err(self.limits().exceeded(
                Limit::JsonSize,
                format!("{} {} declares {} bytes", descriptor.media_type, descriptor.digest, descriptor.size),
            ));
        }
        let bytes = self.read_blob(&descriptor.digest, self.max_json_size())?;
        if bytes.len() as u64 != descriptor.size {
            return Err(Error::new(
                ErrorKind::SizeMismatch,
                format!(
                    "blob {} is {} bytes but its descriptor says {}",
                    descriptor.digest,
                    bytes.len(),
                    descriptor.size
                ),
            ));
        }
        parse_document(&descriptor.media_type, &bytes)
            .map_err(|e| Error::new(e.kind(), format!("blob {}: {}", descriptor.digest, e.message())))
    }

    /// Removes a blob; removing one that is not there is not an error.
    pub fn delete_blob(&self, digest: &Digest) -> Result<()> {
        let path = self.layout.blob_path(digest);
        let _lock = self.layout.lock_shared()?;
        match self.layout.storage().remove_file(&path) {
            Ok(()) => self.layout.sync_parent(&path)?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(self.layout.io_error("cannot remove blob", &path, err)),
        }
        self.remove_blob_metadata(digest)
    }

    /// Every committed blob, sorted by digest. Entries under `blobs/` that are not named by a
    /// valid digest (other tools' junk, temp files) are not blobs and are skipped.
    pub fn list_blobs(&self) -> Result<Vec<Digest>> {
        let mut digests = Vec::new();
        self.for_each_blob_key(|blob| digests.push(blob.digest()))?;
        digests.sort();
        Ok(digests)
    }

    /// Calls `visit` with each stored blob, in directory order: each file of a blob directory
    /// named by a digest's hex, read straight into its key.
    pub(crate) fn for_each_blob_key(&self, mut visit: impl FnMut(crate::graph::BlobKey)) -> Result<()> {
        for algorithm in Algorithm::ALL {
            let dir = self.layout.blob_dir(algorithm);
            self.layout
                .dir()
                .for_each_entry(&dir, |name, kind| {
                    if kind == EntryKind::File
                        && let Some(blob) = crate::graph::BlobKey::from_file_name(
                            algorithm,
                            std::os::unix::ffi::OsStrExt::as_bytes(name),
                        )
                    {
                        visit(blob);
                    }
                    Ok(())
                })
                .map_err(|e| self.layout.io_error("cannot list", &dir, e))?;
        }
        Ok(())
    }

    fn blob_not_found(&self, digest: &Digest) -> Error {
        not_found(format!("blob {digest} not found in {}", self.root().display()))
    }
}

/// Blobs in one group of `put_blobs`: `PUT_GROUP`, or a quarter of the process's open-file
/// limit when that is lower, so that a batch works where single puts do (the rest of the limit
/// is left to the process's other files, and to the directories each link opens for a moment).
fn put_group_size() -> usize {
    let quarter = crate::layout::open_file_limit().map_or(PUT_GROUP as u64, |limit| limit / 4);
    quarter.clamp(1, PUT_GROUP as u64) as usize
}

fn check_digest(expected: &Digest, actual: Digest) -> Result<()> {
    if *expected != actual {
        return Err(Error::new(
            ErrorKind::DigestMismatch,
            format!("blob {expected} is corrupt: its bytes hash to {actual}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn file_times_rfc_3339_cannot_write_are_shown_clamped() {
        let before_1970 = UNIX_EPOCH - Duration::from_secs(10 * 365 * 86400);
        assert_eq!(super::format_time(before_1970), "1970-01-01T00:00:00.000000000Z");
        let after_9999 = crate::timestamp::latest() + Duration::from_secs(1);
        assert_eq!(super::format_time(after_9999), "9999-12-31T23:59:59.999999999Z");
    }
}
