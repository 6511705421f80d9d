//! The writer of one ingest (containerd's `content.Writer`): appends while hashing, checkpoints
//! its hash state, commits verified (size, then digest), and copies from a source that may be
//! resumed (`copy_from`, containerd's `content.Copy`).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::SystemTime;

use super::ingest::{IngestStatus, LockedIngest, WriterOptions};
use super::{IO_CHUNK, Labels, hash_state, validate_labels};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result, invalid_argument};

/// Hash state is saved (after an fsync of the data) every this many bytes, so a writer closed
/// mid-ingest resumes without reading the data again.
const CHECKPOINT_BYTES: u64 = 256 << 20;
/// Written data is handed to the kernel's writeback in ranges of this size as it arrives, so
/// the disk works while we hash and the fsync of a checkpoint or commit has little left to do.
const WRITEBACK_BYTES: u64 = 8 << 20;

/// A live writer of one ref. Dropping it without `commit` closes it (the ingest stays,
/// resumable); `close` does the same and reports errors.
pub struct IngestWriter {
    engine: Engine,
    /// The ingest directory, open and flocked for the writer's lifetime.
    ingest: LockedIngest,
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
    /// A commit failed while publishing: the data file may already be the blob (linked, then a
    /// later step failed), so no byte more may go into it. Opening the ref again starts afresh.
    Failed,
}

impl std::fmt::Debug for IngestWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestWriter").field("status", &self.status).finish()
    }
}

impl IngestWriter {
    /// The writer of a locked ingest whose state is `status`: its data opened for appending, its
    /// hash restored from the saved state when that is provably about these bytes, else hashed.
    pub(super) fn open(engine: &Engine, ingest: LockedIngest, status: IngestStatus) -> Result<IngestWriter> {
        let data_path = ingest.dir.join("data");
        let data = engine
            .layout
            .storage()
            .open_append(&data_path)
            .map_err(|e| engine.layout.io_error("cannot open", &data_path, e))?;
        let algorithm = status.expected.as_ref().map_or(Algorithm::Sha256, Digest::algorithm);
        let saved = engine.layout.read_metadata_file(&ingest.dir.join("hashstate")).ok();
        let hasher = match saved.and_then(|saved| hash_state::restore(&saved, algorithm, &data)) {
            Some(hasher) => hasher,
            None => hash_prefix(&data, algorithm, status.offset)?,
        };
        Ok(IngestWriter {
            engine: engine.clone(),
            ingest,
            data,
            hasher,
            status,
            hashed_since_checkpoint: 0,
            state: WriterState::Open,
        })
    }

    pub fn status(&self) -> &IngestStatus {
        &self.status
    }

    /// The digest of what has been written so far.
    pub fn digest(&self) -> Digest {
        self.hasher.current()
    }

    fn data_path(&self) -> PathBuf {
        self.ingest.dir.join("data")
    }

    /// Appends `bytes`. Writing past a declared total fails before anything is written.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.check_open()?;
        let end = self.status.offset.saturating_add(bytes.len() as u64);
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
        self.engine
            .layout
            .storage()
            .write_all(&mut self.data, bytes)
            .map_err(|e| self.engine.layout.io_error("cannot write", &self.data_path(), e))?;
        self.hasher.update(bytes);
        let written_back = self.status.offset / WRITEBACK_BYTES;
        if end / WRITEBACK_BYTES > written_back {
            let from = written_back * WRITEBACK_BYTES;
            self.engine.layout.storage().start_writeback(&self.data, from, end - from);
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
        self.engine
            .layout
            .storage()
            .set_len(&self.data, 0)
            .map_err(|e| self.engine.layout.io_error("cannot truncate", &self.data_path(), e))?;
        self.engine.remove_if_present(&self.ingest.dir.join("hashstate"))?;
        self.hasher = Hasher::new(self.hasher.algorithm());
        self.status.offset = 0;
        self.status.updated_at = SystemTime::now();
        self.hashed_since_checkpoint = 0;
        Ok(())
    }

    /// Verifies and publishes the ingest as a blob: fsync, size check, then digest check; on a
    /// mismatch nothing becomes visible and the ingest stays resumable. When the blob is already
    /// stored the ingest is removed and `AlreadyExists` returned. `labels` are set on the blob.
    pub fn commit(&mut self, size: Option<u64>, expected: Option<&Digest>, labels: &Labels) -> Result<Digest> {
        self.check_open()?;
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
                hash_prefix(&self.data, expected.algorithm(), offset)?.finish()
            }
            _ => self.hasher.current(),
        };
        if let Some(expected) = expected.filter(|e| **e != digest) {
            return Err(Error::new(
                ErrorKind::DigestMismatch,
                format!("ref {:?} hashes to {digest}, expected {expected}", self.status.ref_name),
            ));
        }
        validate_labels(labels, self.engine.limits().label_size)?;
        let stored = match self.engine.publish_blob(&self.data, &self.data_path(), &digest, offset, labels) {
            Ok(stored) => stored,
            Err(err) => {
                self.state = WriterState::Failed;
                return Err(err);
            }
        };
        self.state = WriterState::Committed;
        self.engine.remove_ingest(&self.ingest)?;
        if !stored {
            return Err(Error::new(ErrorKind::AlreadyExists, format!("blob {digest} is already stored")));
        }
        Ok(digest)
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
        self.checkpoint()
    }

    /// Makes the data durable, then records the hash state for it (not durably: without it a
    /// resume hashes the data again). The data's mtime becomes the update time the writer shows,
    /// which the ingest's status shows once it is closed (the kernel's own stamp lags the clock).
    fn checkpoint(&mut self) -> Result<()> {
        let storage = self.engine.layout.storage();
        match storage.set_modified(&self.data, self.status.updated_at) {
            Ok(()) => {}
            // Another user's ingest in a shared store: its time stays the kernel's stamp.
            Err(err) if matches!(err.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {}
            Err(err) => return Err(self.engine.layout.io_error("cannot set the mtime of", &self.data_path(), err)),
        }
        storage.sync_file(&self.data).map_err(|e| self.engine.layout.io_error("cannot fsync", &self.data_path(), e))?;
        if let Some(state) = hash_state::save(&self.hasher, &self.data) {
            self.engine.layout.replace_file_unsynced(&self.ingest.dir.join("hashstate"), &state)?;
        }
        self.hashed_since_checkpoint = 0;
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        match self.state {
            WriterState::Committed => {
                Err(invalid_argument(format!("the writer of ref {:?} was already committed", self.status.ref_name)))
            }
            WriterState::Failed => Err(invalid_argument(format!(
                "the writer of ref {:?} failed to commit: open the ref again to retry",
                self.status.ref_name
            ))),
            WriterState::Open | WriterState::Closed => Ok(()),
        }
    }
}

impl Drop for IngestWriter {
    fn drop(&mut self) {
        // Best effort: without the saved state a resume re-hashes the data, which is still correct.
        let _ = self.save_progress();
    }
}

/// The hash of the first `len` bytes of `data`.
fn hash_prefix(data: &File, algorithm: Algorithm, len: u64) -> Result<Hasher> {
    let mut hasher = Hasher::new(algorithm);
    let mut buf = vec![0u8; IO_CHUNK];
    let mut pos = 0;
    while pos < len {
        let want = (len - pos).min(IO_CHUNK as u64) as usize;
        let n = FileExt::read_at(data, &mut buf[..want], pos)
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read ingest data: {e}")))?;
        if n == 0 {
            return Err(Error::new(ErrorKind::Io, "ingest data ended early"));
        }
        hasher.update(&buf[..n]);
        pos += n as u64;
    }
    Ok(hasher)
}

/// Where `copy_from` reads from. Resuming checks that the source starts with what the ingest
/// already holds: a source that can be read again from its start is then re-copied from it when
/// it does not; a stream cannot be, and is refused.
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

impl ReadAt for super::BlobReader {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        super::BlobReader::read_at(self, buf, offset).map_err(io::Error::other)
    }
}

/// A `ReadAt` read from `offset` on as a stream.
struct ReadAtCursor<'a> {
    source: &'a dyn ReadAt,
    offset: u64,
}

impl Read for ReadAtCursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.source.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

fn read_error(err: io::Error) -> Error {
    Error::new(ErrorKind::Io, format!("cannot read the copy source: {err}"))
}

impl IngestWriter {
    /// Copies the rest of `source` into the writer (containerd's `content.Copy`): what the
    /// ingest already holds is skipped once the source is found to start with it (its first
    /// bytes are hashed and compared); then everything up to the end of the source is written.
    /// Does not commit.
    pub fn copy_from(&mut self, source: CopySource<'_>) -> Result<()> {
        let mut buf = vec![0u8; IO_CHUNK];
        match source {
            CopySource::ReaderAt(source) => {
                let mut cursor = ReadAtCursor { source, offset: 0 };
                if !self.source_starts_with_ingest(&mut cursor, &mut buf)? {
                    self.truncate(0)?;
                    cursor.offset = 0;
                }
                self.copy_stream(&mut cursor, &mut buf)
            }
            CopySource::Seeker(source) => {
                source.seek(SeekFrom::Start(0)).map_err(read_error)?;
                if !self.source_starts_with_ingest(source, &mut buf)? {
                    self.truncate(0)?;
                    source.seek(SeekFrom::Start(0)).map_err(read_error)?;
                }
                self.copy_stream(source, &mut buf)
            }
            CopySource::Reader(source) => {
                if !self.source_starts_with_ingest(source, &mut buf)? {
                    return Err(Error::new(
                        ErrorKind::DigestMismatch,
                        format!(
                            "the input does not start with the {} bytes ingest {:?} holds, and a stream cannot be \
                             read again from its start: abort the ingest (`ocicas ingest abort`) to start over",
                            self.status.offset, self.status.ref_name
                        ),
                    ));
                }
                self.copy_stream(source, &mut buf)
            }
        }
    }

    /// Reads the ingest's offset worth of `source` and tells whether it hashes as the ingest's
    /// data does (a source that ends sooner does not).
    fn source_starts_with_ingest(&self, source: &mut dyn Read, buf: &mut [u8]) -> Result<bool> {
        let skip = self.status.offset;
        if skip == 0 {
            return Ok(true);
        }
        let mut hasher = Hasher::new(self.hasher.algorithm());
        let mut read = 0u64;
        while read < skip {
            let want = (skip - read).min(buf.len() as u64) as usize;
            let n = match source.read(&mut buf[..want]) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(read_error(err)),
            };
            hasher.update(&buf[..n]);
            read += n as u64;
        }
        Ok(hasher.finish() == self.hasher.current())
    }

    fn copy_stream(&mut self, source: &mut dyn Read, buf: &mut [u8]) -> Result<()> {
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
    /// containerd's `WriteBlob`: stores what `source` yields under ingest `ref_name`, resuming an
    /// earlier attempt, checked against `size` and `expected` when they are given, and returns
    /// its digest. Returns at once, reading nothing, when `expected` is already stored; content
    /// that was stored before is not an error either (its labels are then left as they are).
    pub fn write_blob(
        &self,
        ref_name: &str,
        source: CopySource<'_>,
        size: Option<u64>,
        expected: Option<&Digest>,
        labels: &Labels,
    ) -> Result<Digest> {
        let options = WriterOptions { expected_size: size, expected_digest: expected.cloned() };
        let mut writer = match (self.writer(ref_name, &options), expected) {
            (Err(err), Some(expected)) if err.kind() == ErrorKind::AlreadyExists => return Ok(expected.clone()),
            (result, _) => result?,
        };
        writer.copy_from(source)?;
        let digest = writer.digest();
        match writer.commit(size, expected, labels) {
            Err(err) if err.kind() == ErrorKind::AlreadyExists => Ok(digest),
            result => result,
        }
    }

    /// Stores what `source` yields as a blob that must hash to `expected`, checked while it is
    /// written so that wrong bytes never become a blob: `write_blob` under a throwaway ingest
    /// ref (named after `expected` and this process), which is removed when the put fails.
    /// Returns at once, reading nothing, when `expected` is already stored.
    pub fn put_blob_expected(&self, source: &mut dyn Read, expected: &Digest, labels: &Labels) -> Result<Digest> {
        let ref_name = format!("ocicas-blob-put-{expected}-{}", std::process::id());
        let result = self.write_blob(&ref_name, CopySource::Reader(source), None, Some(expected), labels);
        if result.is_err() {
            // The error that matters is the put's; a failed removal leaves an ingest GC expires.
            let _ = self.ingest_abort(&ref_name);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::temp_engine;
    use crate::filters::Filters;

    #[test]
    fn closed_writer_resumes_from_saved_hash_state() {
        let (_dir, engine) = temp_engine();
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
        let (_dir, engine) = temp_engine();
        let _held = engine.writer("ref-b", &WriterOptions::default()).unwrap();
        let err = engine.writer("ref-b", &WriterOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Locked);
    }

    #[test]
    fn commit_with_wrong_digest_keeps_ingest_resumable() {
        let (_dir, engine) = temp_engine();
        let mut writer = engine.writer("ref-c", &WriterOptions::default()).unwrap();
        writer.write(b"abc").unwrap();
        let wrong = Digest::of_bytes(Algorithm::Sha256, b"abd");
        let err = writer.commit(None, Some(&wrong), &Labels::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DigestMismatch);
        assert!(!engine.has_blob(&wrong).unwrap());
        let right = Digest::of_bytes(Algorithm::Sha256, b"abc");
        assert_eq!(writer.commit(Some(3), Some(&right), &Labels::new()).unwrap(), right);
    }

    /// An ingest holding `stale`, closed.
    fn stale_ingest(engine: &Engine, ref_name: &str, stale: &[u8]) {
        let mut writer = engine.writer(ref_name, &WriterOptions::default()).unwrap();
        writer.write(stale).unwrap();
        writer.close().unwrap();
    }

    #[test]
    fn a_source_that_does_not_start_with_the_ingest_is_copied_from_its_start_or_refused() {
        let (_dir, engine) = temp_engine();
        let content = b"the file as it is now".to_vec();
        let digest = Digest::of_bytes(Algorithm::Sha256, &content);
        for stale in [&b"longer, different content from an earlier attempt"[..], b"the filE", b"the file"] {
            // The commit checks the digest; AlreadyExists also means the ingest hashed to it.
            let committed = |mut writer: IngestWriter| match writer.commit(None, Some(&digest), &Labels::new()) {
                Ok(_) => {}
                Err(err) => assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}"),
            };
            stale_ingest(&engine, "seek", stale);
            let mut writer = engine.writer("seek", &WriterOptions::default()).unwrap();
            writer.copy_from(CopySource::Seeker(&mut io::Cursor::new(content.clone()))).unwrap();
            committed(writer);

            stale_ingest(&engine, "at", stale);
            let mut writer = engine.writer("at", &WriterOptions::default()).unwrap();
            writer.copy_from(CopySource::ReaderAt(&content)).unwrap();
            committed(writer);
        }
        assert_eq!(engine.read_blob(&digest, 100).unwrap(), content);
        stale_ingest(&engine, "stream", b"the filE");
        let mut writer = engine.writer("stream", &WriterOptions::default()).unwrap();
        let err = writer.copy_from(CopySource::Reader(&mut &content[..])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DigestMismatch, "{err}");
        drop(writer);
        let mut writer = engine.writer("stream", &WriterOptions::default()).unwrap();
        assert_eq!(writer.status().offset, 8, "a refused copy leaves the ingest as it was");
        writer.truncate(0).unwrap();
        writer.copy_from(CopySource::Reader(&mut &content[..])).unwrap();
        assert_eq!(writer.commit(None, None, &Labels::new()).map_err(|e| e.kind()), Err(ErrorKind::AlreadyExists));
    }

    #[test]
    fn write_blob_without_an_expected_digest_resumes_and_returns_the_digest() {
        let (_dir, engine) = temp_engine();
        let content = b"resumed without knowing the digest".to_vec();
        let digest = Digest::of_bytes(Algorithm::Sha256, &content);
        stale_ingest(&engine, "resume", &content[..10]);
        let labels = Labels::from([("k".to_owned(), "v".to_owned())]);
        let written = engine.write_blob("resume", CopySource::Reader(&mut &content[..]), None, None, &labels);
        assert_eq!(written.unwrap(), digest);
        assert_eq!(engine.info(&digest).unwrap().labels, labels);
        // Stored already: not an error, the same digest.
        let again = engine.write_blob("resume", CopySource::Reader(&mut &content[..]), None, None, &Labels::new());
        assert_eq!(again.unwrap(), digest);
        assert!(engine.ingest_list(&Filters::parse::<&str>(&[]).unwrap()).unwrap().is_empty());
    }

    #[test]
    fn put_blob_expected_stores_right_bytes_and_leaves_no_ingest_for_wrong_ones() {
        let (_dir, engine) = temp_engine();
        let content = b"the expected bytes".to_vec();
        let digest = Digest::of_bytes(Algorithm::Sha256, &content);
        let wrong = Digest::of_bytes(Algorithm::Sha256, b"other bytes");
        let err = engine.put_blob_expected(&mut &content[..], &wrong, &Labels::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DigestMismatch, "{err}");
        assert!(!engine.has_blob(&wrong).unwrap());
        assert!(!engine.has_blob(&digest).unwrap(), "wrong bytes never become a blob");
        assert!(engine.ingest_list(&Filters::parse::<&str>(&[]).unwrap()).unwrap().is_empty());

        let labels = Labels::from([("k".to_owned(), "v".to_owned())]);
        assert_eq!(engine.put_blob_expected(&mut &content[..], &digest, &labels).unwrap(), digest);
        assert_eq!(engine.info(&digest).unwrap().labels, labels);
        // Stored already: returns at once, reading nothing.
        let mut nothing: &[u8] = b"";
        assert_eq!(engine.put_blob_expected(&mut nothing, &digest, &Labels::new()).unwrap(), digest);
        assert!(engine.ingest_list(&Filters::parse::<&str>(&[]).unwrap()).unwrap().is_empty());
    }
}
