//! Streaming layers (go-containerregistry's `stream.Layer`, done right): an uncompressed tar goes
//! in once and is never buffered whole; out come its DiffID, the compressed bytes, their digest
//! and size. Push mode (`LayerStream`) commits the compressed bytes to the store through an
//! ingest writer; pull mode (`LayerReader`) hands them to the caller to read.

mod gzip;
mod libdeflate;
pub mod tar_dir;

use std::io::{self, Read};

use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
use zstd::zstd_safe::CParameter;

use crate::cancel::Cancel;
use crate::content::{IO_CHUNK, Labels};
use crate::content::{IngestWriter, WriterOptions};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result, invalid_argument};
use crate::limits::{Limit, Limits};
use crate::spec::Descriptor;

pub use gzip::BLOCK_SIZE as GZIP_BLOCK_SIZE;

/// Where compressed output goes.
pub(crate) type Sink<'a> = dyn FnMut(&[u8]) -> Result<()> + 'a;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip, levels 0–9 (6 is the default).
    Gzip(u32),
    /// zstd, levels 1–19 (3 is the default).
    Zstd(i32),
    None,
}

/// A compression without its level, as callers choose it (a C constant, a command-line flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionKind {
    Gzip,
    Zstd,
    None,
}

impl Compression {
    pub const DEFAULT_GZIP_LEVEL: u32 = 6;
    pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

    /// `kind` at `level`, or at its default level when `level` is None; `CompressionKind::None`
    /// has no level and ignores it. A negative gzip level is an invalid argument here; other
    /// levels out of range are refused when a stream starts, as for any `Compression`.
    pub fn from_level(kind: CompressionKind, level: Option<i32>) -> Result<Compression> {
        Ok(match (kind, level) {
            (CompressionKind::Gzip, None) => Compression::Gzip(Compression::DEFAULT_GZIP_LEVEL),
            (CompressionKind::Gzip, Some(level)) => {
                Compression::Gzip(u32::try_from(level).map_err(|_| gzip_level_error(level))?)
            }
            (CompressionKind::Zstd, level) => Compression::Zstd(level.unwrap_or(Compression::DEFAULT_ZSTD_LEVEL)),
            (CompressionKind::None, _) => Compression::None,
        })
    }

    fn validate(self) -> Result<()> {
        match self {
            Compression::Gzip(level) if level > 9 => Err(gzip_level_error(level)),
            Compression::Zstd(level) if !(1..=19).contains(&level) => {
                Err(invalid_argument(format!("zstd level {level} is not in 1-19")))
            }
            _ => Ok(()),
        }
    }
}

fn gzip_level_error(level: impl std::fmt::Display) -> Error {
    invalid_argument(format!("gzip level {level} is not in 0-9"))
}

/// Which family of layer media types to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaTypeStyle {
    Oci,
    Docker,
}

/// How a layer is compressed and which media type it gets: what every layer takes, stored or
/// not (`LayerStream`, `LayerReader`, a registry push-layer).
#[derive(Debug, Clone)]
pub struct CompressionOptions {
    pub compression: Compression,
    pub style: MediaTypeStyle,
    /// Compression threads; 0 means every available core. More than the engine's `threads`
    /// limit is an invalid argument (a `LayerReader`, which has no engine, is held to the
    /// default limit). gzip takes no more than it can keep busy; zstd takes fewer when more
    /// would pass the 64 MiB memory bound, and one more with 0 (see `zstd_workers`).
    pub threads: usize,
    /// Stops the layer at its next chunk of input (`Cancelled`): a push-mode layer commits
    /// nothing, a pull-mode one computes nothing.
    pub cancel: Cancel,
}

impl Default for CompressionOptions {
    fn default() -> Self {
        CompressionOptions {
            compression: Compression::Gzip(Compression::DEFAULT_GZIP_LEVEL),
            style: MediaTypeStyle::Oci,
            threads: 0,
            cancel: Cancel::default(),
        }
    }
}

/// Where a push-mode layer (`LayerStream`) goes in the store: only a layer that is stored
/// takes these, so a pull-mode layer cannot be given them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageOptions {
    /// The ingest ref the compressed bytes are written under; a unique one is made when None.
    pub ref_name: Option<String>,
    /// A lease the committed blob is added to before it becomes visible, so no GC can take it
    /// before the caller references it.
    pub lease: Option<String>,
}

impl CompressionOptions {
    /// The layer media type these options produce.
    pub fn media_type(&self) -> Result<&'static str> {
        Ok(match (self.style, self.compression) {
            (MediaTypeStyle::Oci, Compression::Gzip(_)) => "application/vnd.oci.image.layer.v1.tar+gzip",
            (MediaTypeStyle::Oci, Compression::Zstd(_)) => "application/vnd.oci.image.layer.v1.tar+zstd",
            (MediaTypeStyle::Oci, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
            (MediaTypeStyle::Docker, Compression::Gzip(_)) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            (MediaTypeStyle::Docker, Compression::None) => "application/vnd.docker.image.rootfs.diff.tar",
            (MediaTypeStyle::Docker, Compression::Zstd(_)) => {
                return Err(invalid_argument("Docker layer media types have no zstd form; use OCI media types"));
            }
        })
    }

    /// The compression threads to start: as many as asked for, or with 0 every core and
    /// `spare` more; never more than `limits.threads`, and asking for more is an invalid
    /// argument naming the limit.
    fn threads(&self, limits: &Limits, spare: usize) -> Result<usize> {
        // At least 1: the fields of `Limits` can be set to 0 without `Limits::set`.
        let limit = usize::try_from(limits.threads).unwrap_or(usize::MAX).max(1);
        match self.threads {
            0 => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                Ok(cores.saturating_add(spare).min(limit))
            }
            asked if asked > limit => {
                let over = limits.exceeded(Limit::Threads, format!("{asked} compression threads"));
                Err(invalid_argument(over.message()))
            }
            asked => Ok(asked),
        }
    }
}

/// What a finished layer is; as JSON `{"mediaType","digest","size","diffID"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerDescriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    /// sha256 of the uncompressed bytes.
    #[serde(rename = "diffID")]
    pub diff_id: Digest,
}

impl LayerDescriptor {
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type.clone(), self.digest.clone(), self.size)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The compressor of one layer.
enum Encoder {
    Gzip(gzip::ParallelGzip),
    /// The encoder, and its output buffer (kept: callers may write a few KiB at a time).
    Zstd(zstd::stream::raw::Encoder<'static>, Vec<u8>),
    None,
}

impl Encoder {
    fn new(options: &CompressionOptions, limits: &Limits) -> Result<Encoder> {
        options.compression.validate()?;
        Ok(match options.compression {
            Compression::Gzip(level) => Encoder::Gzip(gzip::ParallelGzip::new(level, options.threads(limits, 0)?)?),
            Compression::Zstd(level) => {
                let zstd_error = |e: io::Error| Error::new(ErrorKind::Io, format!("zstd: {e}"));
                let mut encoder = zstd::stream::raw::Encoder::new(level).map_err(zstd_error)?;
                // Always the multithreaded mode, even for one thread: its output does not
                // depend on the worker count, while the single-threaded mode's differs.
                let workers = zstd_workers(level, options.threads(limits, 1)?);
                encoder.set_parameter(CParameter::NbWorkers(workers)).map_err(zstd_error)?;
                encoder.set_parameter(CParameter::JobSize(ZSTD_JOB_SIZE as u32)).map_err(zstd_error)?;
                Encoder::Zstd(encoder, vec![0u8; IO_CHUNK])
            }
            Compression::None => Encoder::None,
        })
    }

    fn write(&mut self, input: &[u8], sink: &mut Sink<'_>) -> Result<()> {
        match self {
            Encoder::Gzip(gzip) => gzip.write(input, sink),
            Encoder::Zstd(encoder, out) => {
                let mut input = InBuffer::around(input);
                while input.pos() < input.src.len() {
                    let mut output = OutBuffer::around(&mut out[..]);
                    encoder.run(&mut input, &mut output).map_err(zstd_failed)?;
                    let produced = output.pos();
                    if produced > 0 {
                        sink(&out[..produced])?;
                    }
                }
                Ok(())
            }
            Encoder::None => sink(input),
        }
    }

    fn finish(&mut self, sink: &mut Sink<'_>) -> Result<()> {
        match self {
            Encoder::Gzip(gzip) => gzip.finish(sink),
            Encoder::Zstd(encoder, out) => loop {
                let mut output = OutBuffer::around(&mut out[..]);
                let remaining = encoder.finish(&mut output, true).map_err(zstd_failed)?;
                let produced = output.pos();
                if produced > 0 {
                    sink(&out[..produced])?;
                }
                if remaining == 0 {
                    return Ok(());
                }
            },
            Encoder::None => Ok(()),
        }
    }
}

/// Input bytes per zstd job: fixed, so the output is the same on every machine. zstd's default at
/// level 3 is 8 MiB, which took 73 MB of memory with 2 workers and 143 MB with 8; 2 MiB jobs made
/// the bench tar's output 0.3 % larger (still smaller than the zstd 1.5.4 CLI's at -3) at no loss of
/// speed.
const ZSTD_JOB_SIZE: usize = 2 << 20;
/// What the zstd workers may take together, out of the 64 MiB a layer stream is held to (the rest
/// is input and output buffers).
const ZSTD_WORKERS_MEMORY: usize = 48 << 20;

/// The zstd workers for `wanted` threads, which with the default (every core) is one more than
/// the cores (`CompressionOptions::threads` adds it, within the limit). zstd queues no job ahead
/// of its workers, so a worker that finishes waits until the calling thread, which feeds zstd and
/// hashes both streams on the same cores, hands it the next; one spare worker keeps a job ready
/// (the bench tar on 2 cores: 1.15 s with 2 workers, 1.06 s with 3, median of 5). An explicit
/// thread count is a limit and is kept.
///
/// Never more than fit in `ZSTD_WORKERS_MEMORY`: each worker has its level's match tables, the
/// output buffer of its job, and a job's share of the input buffer. From level 10 only one worker
/// fits; from level 15 one worker's tables alone (66 MB, 83 MB at 19) pass the 64 MiB bound, and
/// those levels take what zstd needs (127 MB at 19, as the zstd CLI's 115).
fn zstd_workers(level: i32, wanted: usize) -> u32 {
    // SAFETY: a pure function of the level.
    let tables = unsafe { zstd::zstd_safe::zstd_sys::ZSTD_estimateCCtxSize(level) };
    let per_worker = tables + 2 * ZSTD_JOB_SIZE;
    (ZSTD_WORKERS_MEMORY / per_worker).clamp(1, wanted) as u32
}

/// A xorshift64 sequence from `state`: deterministic data for the compressors' tests.
#[cfg(test)]
fn xorshift(mut state: u64) -> impl Iterator<Item = u64> {
    std::iter::repeat_with(move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    })
}

fn zstd_failed(err: io::Error) -> Error {
    Error::new(ErrorKind::Io, format!("zstd compression failed: {err}"))
}

/// Push mode: `write` the uncompressed bytes, then `finish` commits the compressed blob. The
/// compressed bytes go through an ingest writer, so an interrupted build shows up in
/// `ingest_list` and is removed by `ingest_abort` or GC; dropping the stream without `finish`
/// aborts its ingest.
pub struct LayerStream {
    engine: Engine,
    writer: Option<IngestWriter>,
    encoder: Encoder,
    diff_id: Hasher,
    media_type: &'static str,
    ref_name: String,
    lease: Option<String>,
    cancel: Cancel,
}

impl LayerStream {
    pub fn new(engine: &Engine, options: &CompressionOptions, storage: &StorageOptions) -> Result<LayerStream> {
        let media_type = options.media_type()?;
        let encoder = Encoder::new(options, engine.limits())?;
        let ref_name = storage.ref_name.clone().unwrap_or_else(unique_layer_ref);
        let writer = engine.writer(&ref_name, &WriterOptions::default())?;
        if writer.status().offset > 0 {
            // A compressed stream cannot continue from another run's encoder state.
            return Err(Error::new(
                ErrorKind::Locked,
                format!("ingest {ref_name:?} already holds data; abort it first"),
            ));
        }
        Ok(LayerStream {
            engine: engine.clone(),
            writer: Some(writer),
            encoder,
            diff_id: Hasher::new(Algorithm::Sha256),
            media_type,
            ref_name,
            lease: storage.lease.clone(),
            cancel: options.cancel.clone(),
        })
    }

    pub fn ref_name(&self) -> &str {
        &self.ref_name
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let writer = self.writer.as_mut().ok_or_else(finished_error)?;
        self.cancel.check("the layer stream")?;
        self.diff_id.update(bytes);
        self.encoder.write(bytes, &mut |compressed| writer.write(compressed))
    }

    /// Ends the input, commits the compressed blob and returns its descriptor. A blob that was
    /// already stored is not an error: its descriptor is returned all the same. When finishing
    /// fails, the ingest is aborted (as by a drop): an encoder's state cannot be resumed.
    pub fn finish(mut self) -> Result<LayerDescriptor> {
        self.cancel.check("the layer stream")?;
        // The writer stays in `self` until committed, so that any failure below leaves it to
        // `Drop`, which aborts the ingest.
        let writer = self.writer.as_mut().ok_or_else(finished_error)?;
        self.encoder.finish(&mut |compressed| writer.write(compressed))?;
        let digest = writer.digest();
        let size = writer.status().offset;
        if let Some(lease) = &self.lease {
            self.engine.lease_add(lease, crate::lease::LeaseResource::Blob(digest.clone()))?;
        }
        match writer.commit(Some(size), Some(&digest), &Labels::new()) {
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
        self.writer = None;
        Ok(LayerDescriptor {
            media_type: self.media_type.to_owned(),
            digest,
            size,
            diff_id: std::mem::replace(&mut self.diff_id, Hasher::new(Algorithm::Sha256)).finish(),
        })
    }
}

impl Drop for LayerStream {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            drop(writer);
            let _ = self.engine.ingest_abort(&self.ref_name);
        }
    }
}

impl std::io::Write for LayerStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        LayerStream::write(self, buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn finished_error() -> Error {
    invalid_argument("the layer stream was already finished")
}

fn unique_layer_ref() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("layer-stream-{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Pull mode: reads uncompressed bytes from `source` and yields the compressed layer. Digest,
/// DiffID and size are `NotComputed` until the source ended cleanly and the compressed bytes
/// were read to their end. After the end was reported once, `read_chunk` says `Consumed`.
pub struct LayerReader<R> {
    source: R,
    encoder: Encoder,
    diff_id: Hasher,
    compressed: Hasher,
    compressed_size: u64,
    /// The buffer input is read into (kept across reads).
    input: Vec<u8>,
    /// Compressed output not yet read; `pending_pos` is how much of it was.
    pending: Vec<u8>,
    pending_pos: usize,
    media_type: &'static str,
    state: ReaderState,
    cancel: Cancel,
}

enum ReaderState {
    Reading,
    /// The source ended and the encoder finished; `pending` may still hold output.
    Draining(Digest),
    Done(LayerDescriptor),
    /// The end was reported; a further read is `Consumed`.
    Consumed(LayerDescriptor),
    /// The input failed or the stream was cancelled: every further read says so again.
    Failed(ErrorKind, String),
}

impl<R: Read> LayerReader<R> {
    /// A pull-mode layer over `source`. It belongs to no engine, so its threads are held to the
    /// default `threads` limit.
    pub fn new(source: R, options: &CompressionOptions) -> Result<LayerReader<R>> {
        Ok(LayerReader {
            source,
            media_type: options.media_type()?,
            encoder: Encoder::new(options, &Limits::default())?,
            diff_id: Hasher::new(Algorithm::Sha256),
            compressed: Hasher::new(Algorithm::Sha256),
            compressed_size: 0,
            input: vec![0u8; IO_CHUNK],
            pending: Vec::new(),
            pending_pos: 0,
            state: ReaderState::Reading,
            cancel: options.cancel.clone(),
        })
    }

    /// Reads compressed bytes; 0 at the end, once; `Consumed` after that.
    pub fn read_chunk(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            match &self.state {
                ReaderState::Failed(kind, message) => return Err(Error::new(*kind, message.clone())),
                ReaderState::Consumed(_) => {
                    return Err(Error::new(ErrorKind::Consumed, "the compressed layer was already read to its end"));
                }
                ReaderState::Done(descriptor) => {
                    self.state = ReaderState::Consumed(descriptor.clone());
                    return Ok(0);
                }
                _ => {}
            }
            let unread = &self.pending[self.pending_pos..];
            if !unread.is_empty() || buf.is_empty() {
                let n = unread.len().min(buf.len());
                buf[..n].copy_from_slice(&unread[..n]);
                self.pending_pos += n;
                if self.pending_pos == self.pending.len() {
                    self.pending.clear();
                    self.pending_pos = 0;
                }
                self.compressed.update(&buf[..n]);
                self.compressed_size += n as u64;
                return Ok(n);
            }
            if let ReaderState::Draining(diff_id) = &self.state {
                let descriptor = LayerDescriptor {
                    media_type: self.media_type.to_owned(),
                    digest: self.compressed.current(),
                    size: self.compressed_size,
                    diff_id: diff_id.clone(),
                };
                self.state = ReaderState::Done(descriptor);
                continue;
            }
            if let Err(err) = self.pull_input() {
                self.state = ReaderState::Failed(err.kind(), err.message().to_owned());
                return Err(err);
            }
        }
    }

    /// Reads one chunk of input into the encoder, or finishes the encoder at the end of input.
    fn pull_input(&mut self) -> Result<()> {
        self.cancel.check("the layer stream")?;
        let n = loop {
            match self.source.read(&mut self.input) {
                Ok(n) => break n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(Error::new(ErrorKind::Io, format!("cannot read the layer's input: {err}"))),
            }
        };
        let pending = &mut self.pending;
        let mut sink = |bytes: &[u8]| -> Result<()> {
            pending.extend(bytes);
            Ok(())
        };
        if n == 0 {
            self.encoder.finish(&mut sink)?;
            let diff_id = std::mem::replace(&mut self.diff_id, Hasher::new(Algorithm::Sha256)).finish();
            self.state = ReaderState::Draining(diff_id);
        } else {
            self.diff_id.update(&self.input[..n]);
            self.encoder.write(&self.input[..n], &mut sink)?;
        }
        Ok(())
    }

    fn descriptor(&self) -> Result<&LayerDescriptor> {
        match &self.state {
            ReaderState::Done(descriptor) | ReaderState::Consumed(descriptor) => Ok(descriptor),
            _ => Err(Error::new(
                ErrorKind::NotComputed,
                "not computed: the layer's input has not ended and its compressed bytes have not been read to the end",
            )),
        }
    }

    pub fn media_type(&self) -> &str {
        self.media_type
    }

    pub fn digest(&self) -> Result<Digest> {
        self.descriptor().map(|d| d.digest.clone())
    }

    pub fn diff_id(&self) -> Result<Digest> {
        self.descriptor().map(|d| d.diff_id.clone())
    }

    pub fn size(&self) -> Result<u64> {
        self.descriptor().map(|d| d.size)
    }

    pub fn layer_descriptor(&self) -> Result<LayerDescriptor> {
        self.descriptor().cloned()
    }
}

impl<R: Read> Read for LayerReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.read_chunk(buf) {
            Err(err) if err.kind() == ErrorKind::Consumed => Ok(0),
            result => result.map_err(io::Error::other),
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

    fn input() -> Vec<u8> {
        (0..3_000_000u32).map(|i| (i % 251) as u8 ^ (i >> 13) as u8).collect()
    }

    fn options(compression: Compression, threads: usize) -> CompressionOptions {
        CompressionOptions { compression, threads, ..CompressionOptions::default() }
    }

    fn push_stream(engine: &Engine, options: &CompressionOptions) -> Result<LayerStream> {
        LayerStream::new(engine, options, &StorageOptions::default())
    }

    #[test]
    fn a_level_left_out_is_the_default_and_a_negative_gzip_level_is_refused() {
        use CompressionKind as Kind;
        assert_eq!(Compression::from_level(Kind::Gzip, None).unwrap(), Compression::Gzip(6));
        assert_eq!(Compression::from_level(Kind::Gzip, Some(0)).unwrap(), Compression::Gzip(0));
        assert_eq!(Compression::from_level(Kind::Zstd, None).unwrap(), Compression::Zstd(3));
        assert_eq!(Compression::from_level(Kind::None, Some(-7)).unwrap(), Compression::None);
        let err = Compression::from_level(Kind::Gzip, Some(-1)).unwrap_err();
        assert_eq!((err.kind(), err.message()), (ErrorKind::InvalidArgument, "gzip level -1 is not in 0-9"));
        // Out of range but representable: refused, with the same words, when a stream starts.
        for (compression, message) in [
            (Compression::from_level(Kind::Gzip, Some(10)), "gzip level 10 is not in 0-9"),
            (Compression::from_level(Kind::Zstd, Some(-1)), "zstd level -1 is not in 1-19"),
        ] {
            let options = CompressionOptions { compression: compression.unwrap(), ..CompressionOptions::default() };
            let err = LayerReader::new(&b""[..], &options).err().unwrap();
            assert_eq!((err.kind(), err.message()), (ErrorKind::InvalidArgument, message));
        }
    }

    #[test]
    fn push_commits_a_blob_whose_hashes_match_the_bytes() {
        let (_dir, engine) = engine();
        let input = input();
        for compression in [Compression::Gzip(6), Compression::Zstd(3), Compression::None] {
            let mut stream = push_stream(&engine, &options(compression, 2)).unwrap();
            for chunk in input.chunks(4096) {
                stream.write(chunk).unwrap();
            }
            let layer = stream.finish().unwrap();
            assert_eq!(layer.diff_id, Digest::of_bytes(Algorithm::Sha256, &input));
            let blob = engine.read_blob(&layer.digest, u64::MAX).unwrap();
            assert_eq!(blob.len() as u64, layer.size);
            let decoded = match compression {
                Compression::Gzip(_) => {
                    let mut out = Vec::new();
                    flate2::read::MultiGzDecoder::new(&blob[..]).read_to_end(&mut out).unwrap();
                    out
                }
                Compression::Zstd(_) => zstd::decode_all(&blob[..]).unwrap(),
                Compression::None => blob,
            };
            assert_eq!(decoded, input, "{compression:?}");
        }
        assert!(engine.ingest_list(&crate::Filters::parse::<&str>(&[]).unwrap()).unwrap().is_empty());
    }

    #[test]
    fn zstd_workers_follow_the_threads_asked_for_within_the_memory_bound() {
        let limits = Limits { threads: 1000, ..Limits::default() };
        let workers = |level, threads| {
            let options = CompressionOptions { threads, ..CompressionOptions::default() };
            zstd_workers(level, options.threads(&limits, 1).unwrap())
        };
        assert_eq!(workers(3, 1), 1);
        assert_eq!(workers(3, 2), 2);
        // The default is every core and one spare, unless the bound allows fewer.
        let cores = std::thread::available_parallelism().unwrap().get() as u32;
        let most_at_level_1 = workers(1, 1000);
        assert!((2..1000).contains(&most_at_level_1), "{most_at_level_1}");
        assert_eq!(workers(1, 0), (cores + 1).min(most_at_level_1));
        // Higher levels have bigger tables, so fewer fit; from level 10 only one.
        assert!(workers(6, 1000) < most_at_level_1);
        assert_eq!(workers(10, 8), 1);
        assert_eq!(workers(19, 0), 1);
    }

    #[test]
    fn threads_over_the_limit_are_an_invalid_argument_that_names_it() {
        let limits = Limits { threads: 3, ..Limits::default() };
        let asked = |threads| CompressionOptions { threads, ..CompressionOptions::default() };
        assert_eq!(asked(3).threads(&limits, 0).unwrap(), 3);
        for threads in [4, 100_000, usize::MAX] {
            let err = asked(threads).threads(&limits, 0).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
            assert!(err.message().contains("thread limit (threads) of 3"), "{err}");
        }
        // The default, and its spare, stay within the limit.
        let one = Limits { threads: 1, ..Limits::default() };
        assert_eq!(asked(0).threads(&one, 1).unwrap(), 1);
        // Streams are held to their engine's limit.
        let (_dir, mut engine) = engine();
        engine.set_limits(limits);
        for compression in [Compression::Gzip(6), Compression::Zstd(3)] {
            let err = push_stream(&engine, &options(compression, 4)).err().unwrap();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        }
        assert!(push_stream(&engine, &options(Compression::Gzip(6), 3)).is_ok());
    }

    #[test]
    fn zstd_bytes_do_not_depend_on_threads_or_write_sizes() {
        let input = input();
        let compress = |threads: usize, piece: usize| {
            let mut reader =
                LayerReader::new(ChunkedReader(&input, piece, 0), &options(Compression::Zstd(3), threads)).unwrap();
            let mut out = Vec::new();
            reader.read_to_end(&mut out).unwrap();
            out
        };
        let reference = compress(1, 1 << 20);
        assert_eq!(compress(2, 4096), reference);
        assert_eq!(compress(8, 1), reference);
    }

    /// Yields its bytes `piece` at a time.
    struct ChunkedReader<'a>(&'a [u8], usize, usize);

    impl Read for ChunkedReader<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len() - self.2);
            buf[..n].copy_from_slice(&self.0[self.2..self.2 + n]);
            self.2 += n;
            Ok(n)
        }
    }

    #[test]
    fn pull_computes_nothing_until_read_to_the_end_then_is_consumed() {
        let input = input();
        let mut reader = LayerReader::new(&input[..], &CompressionOptions::default()).unwrap();
        assert_eq!(reader.digest().unwrap_err().kind(), ErrorKind::NotComputed);
        let mut buf = vec![0u8; 1000];
        reader.read_chunk(&mut buf).unwrap();
        assert_eq!(reader.size().unwrap_err().kind(), ErrorKind::NotComputed);
        let mut compressed = buf.clone();
        loop {
            let n = reader.read_chunk(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            compressed.extend_from_slice(&buf[..n]);
        }
        assert_eq!(reader.digest().unwrap(), Digest::of_bytes(Algorithm::Sha256, &compressed));
        assert_eq!(reader.diff_id().unwrap(), Digest::of_bytes(Algorithm::Sha256, &input));
        assert_eq!(reader.size().unwrap(), compressed.len() as u64);
        assert_eq!(reader.read_chunk(&mut buf).unwrap_err().kind(), ErrorKind::Consumed);
    }

    #[test]
    fn an_input_error_leaves_nothing_computed() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                self.0 -= 1;
                buf.fill(7);
                Ok(buf.len())
            }
        }
        let mut reader = LayerReader::new(Failing(3), &CompressionOptions::default()).unwrap();
        let mut out = Vec::new();
        let err = reader.read_to_end(&mut out).unwrap_err();
        assert!(err.to_string().contains("disk on fire"));
        assert_eq!(reader.digest().unwrap_err().kind(), ErrorKind::NotComputed);
    }

    #[test]
    fn a_push_stream_writes_under_its_storage_ref_and_leases_its_blob() {
        let (_dir, engine) = engine();
        let lease = engine.lease_new(None, None).unwrap();
        let storage = StorageOptions { ref_name: Some("my-layer".to_owned()), lease: Some(lease.id.clone()) };
        let mut stream = LayerStream::new(&engine, &CompressionOptions::default(), &storage).unwrap();
        stream.write(b"layer bytes").unwrap();
        assert_eq!(stream.ref_name(), "my-layer");
        assert!(engine.ingest_status("my-layer").is_ok(), "the ingest is under the ref asked for");
        let layer = stream.finish().unwrap();
        assert_eq!(engine.lease_list().unwrap()[0].digests, [layer.digest]);
    }

    #[test]
    fn a_push_stream_whose_finish_fails_leaves_no_ingest() {
        let (_dir, engine) = engine();
        let storage = StorageOptions { ref_name: Some("doomed".to_owned()), lease: Some("no-such-lease".to_owned()) };
        let mut stream = LayerStream::new(&engine, &CompressionOptions::default(), &storage).unwrap();
        stream.write(&input()).unwrap();
        assert_eq!(stream.finish().unwrap_err().kind(), ErrorKind::NotFound);
        assert!(engine.list_blobs().unwrap().is_empty());
        assert_eq!(engine.ingest_status("doomed").unwrap_err().kind(), ErrorKind::NotFound, "nothing can resume it");
    }

    #[test]
    fn dropping_an_unfinished_push_stream_commits_nothing() {
        let (_dir, engine) = engine();
        let mut stream = push_stream(&engine, &CompressionOptions::default()).unwrap();
        stream.write(&input()).unwrap();
        drop(stream);
        assert!(engine.list_blobs().unwrap().is_empty());
        assert!(engine.ingest_list(&crate::Filters::parse::<&str>(&[]).unwrap()).unwrap().is_empty());
    }
}
