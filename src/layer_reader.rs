//! Reading a stored layer as its uncompressed tar, what a runtime does to unpack an image:
//! decompressed as its media type says (plain, gzip or zstd), with both of its digests checked.
//!
//! The compressed bytes are hashed and counted as they are read and checked against the layer's
//! digest and size; the uncompressed bytes against its DiffID. Both checks run when the tar
//! ends, and the read that reaches the end returns their failure instead of the end: a caller
//! that sees the end (0) has read exactly the layer, byte for byte. Everything is streamed
//! through fixed buffers (and zstd's window, at most `ZSTD_WINDOW_LOG_MAX`), so memory does not
//! grow with the layer.

use std::io::{self, BufReader, Read};

use crate::content::{BlobReader, IO_CHUNK};
use crate::digest::{Digest, Hasher};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result, invalid_image};
use crate::stream::LayerDescriptor;

/// The largest zstd window a layer may ask for: 2^27 bytes (128 MiB), libzstd's own default
/// bound (`ZSTD_WINDOWLOG_LIMIT_DEFAULT`), which the docker-archive reader keeps too. A frame
/// asking for more fails rather than taking that much memory.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// How a layer's blob is compressed, by its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LayerCompression {
    None,
    Gzip,
    Zstd,
}

impl LayerCompression {
    /// The compression of a layer media type: OCI's (distributable or not) and Docker's (foreign
    /// or not, and the `tar.zstd` BuildKit and containers/image write). The one place in the
    /// crate that maps a layer's media type to how it is decompressed.
    fn of_media_type(media_type: &str) -> Result<LayerCompression> {
        Ok(match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar" => LayerCompression::None,
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => LayerCompression::Gzip,
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => LayerCompression::Zstd,
            other => {
                return Err(Error::new(
                    ErrorKind::UnsupportedMediaType,
                    format!("{other:?} is not a layer media type ocicas can decompress (tar, tar+gzip or tar+zstd)"),
                ));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            LayerCompression::None => "tar",
            LayerCompression::Gzip => "gzip",
            LayerCompression::Zstd => "zstd",
        }
    }
}

impl Engine {
    /// Opens the stored layer `layer` (its media type, compressed digest and size, and DiffID)
    /// as its uncompressed tar. `UnsupportedMediaType` for a media type that is not a layer's
    /// (OCI's tar, tar+gzip and tar+zstd, distributable or not, Docker's tar and tar.gzip,
    /// foreign or not, and tar.zstd), `NotFound` when the blob is not stored, `SizeMismatch`
    /// when it is not `layer.size` bytes, `InvalidImage` when its entry is not a regular file.
    /// The reader holds the blob's open file, not the engine.
    pub fn open_layer(&self, layer: &LayerDescriptor) -> Result<UncompressedLayerReader> {
        let compression = LayerCompression::of_media_type(&layer.media_type)?;
        let blob = self.open_blob(&layer.digest)?;
        if blob.size() != layer.size {
            return Err(Error::new(
                ErrorKind::SizeMismatch,
                format!("layer blob {} is {} bytes, but its descriptor says {}", layer.digest, blob.size(), layer.size),
            ));
        }
        let source = BufReader::with_capacity(IO_CHUNK, CheckedBlob::new(blob, layer));
        let decoder = match compression {
            LayerCompression::None => Decoder::None(source),
            LayerCompression::Gzip => Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(source))),
            LayerCompression::Zstd => {
                let zstd_error = |e: io::Error| Error::new(ErrorKind::Io, format!("cannot start zstd: {e}"));
                let mut decoder = zstd::stream::read::Decoder::with_buffer(source).map_err(zstd_error)?;
                decoder.window_log_max(ZSTD_WINDOW_LOG_MAX).map_err(zstd_error)?;
                Decoder::Zstd(decoder)
            }
        };
        Ok(UncompressedLayerReader {
            layer: layer.clone(),
            compression,
            decoder,
            diff_id: Hasher::new(layer.diff_id.algorithm()),
            state: ReaderState::Reading,
        })
    }

    /// The digest of `layer`'s uncompressed tar by the algorithm of its DiffID, read as
    /// `open_layer` reads it and with the blob's digest and size checked the same, but not
    /// compared with the DiffID: `fsck --deep` reports what it found against what the config says.
    pub(crate) fn uncompressed_digest(&self, layer: &LayerDescriptor) -> Result<Digest> {
        let mut reader = self.open_layer(layer)?;
        let mut buf = vec![0u8; IO_CHUNK];
        while reader.read_decoded(&mut buf)? > 0 {}
        reader.check_blob_end()?;
        Ok(reader.diff_id.current())
    }
}

/// The uncompressed tar of a stored layer, from `Engine::open_layer`. `read_chunk` (and
/// `Read::read`) give its bytes; the end (0) only once both digests and the size were checked,
/// and then at every later read. A failure is given again by every later read.
pub struct UncompressedLayerReader {
    layer: LayerDescriptor,
    compression: LayerCompression,
    decoder: Decoder,
    diff_id: Hasher,
    state: ReaderState,
}

enum ReaderState {
    Reading,
    /// The end was reached and every check passed.
    Verified,
    Failed(ErrorKind, String),
}

/// The decompressor over the checked blob, kept concrete so the blob is reachable at the end.
enum Decoder {
    None(BufReader<CheckedBlob>),
    Gzip(Box<flate2::bufread::MultiGzDecoder<BufReader<CheckedBlob>>>),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<CheckedBlob>>),
}

impl Decoder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::None(source) => source.read(buf),
            Decoder::Gzip(decoder) => decoder.read(buf),
            Decoder::Zstd(decoder) => decoder.read(buf),
        }
    }

    fn source(&mut self) -> &mut BufReader<CheckedBlob> {
        match self {
            Decoder::None(source) => source,
            Decoder::Gzip(decoder) => decoder.get_mut(),
            Decoder::Zstd(decoder) => decoder.get_mut(),
        }
    }
}

impl UncompressedLayerReader {
    /// Reads up to `buf.len()` uncompressed bytes. 0 for an empty `buf`, and at the end once the
    /// blob's digest and size and the DiffID were checked; the read that reaches the end returns
    /// `DigestMismatch` or `SizeMismatch` instead when a check fails. A blob that does not
    /// decompress as its media type says, or has bytes after its compressed stream, is
    /// `InvalidImage` (or `DigestMismatch` when its bytes are not the layer's).
    pub fn read_chunk(&mut self, buf: &mut [u8]) -> Result<usize> {
        match &self.state {
            ReaderState::Verified => return Ok(0),
            ReaderState::Failed(kind, message) => return Err(Error::new(*kind, message.clone())),
            ReaderState::Reading if buf.is_empty() => return Ok(0),
            ReaderState::Reading => {}
        }
        let result = match self.read_decoded(buf) {
            Ok(0) => self.check_end().map(|()| 0),
            read => read,
        };
        match &result {
            Ok(0) => self.state = ReaderState::Verified,
            Ok(_) => {}
            Err(err) => self.state = ReaderState::Failed(err.kind(), err.message().to_owned()),
        }
        result
    }

    /// The tar's size when it is known before it is read: the blob's, for a layer stored
    /// uncompressed. (It is still checked as it is read.)
    pub(crate) fn known_size(&self) -> Option<u64> {
        (self.compression == LayerCompression::None).then_some(self.layer.size)
    }

    /// Up to `buf.len()` bytes from the decompressor, hashed for the DiffID; 0 at its end, where
    /// nothing was checked yet.
    fn read_decoded(&mut self, buf: &mut [u8]) -> Result<usize> {
        let read = loop {
            match self.decoder.read(buf) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                read => break read,
            }
        };
        match read {
            Ok(n) => {
                self.diff_id.update(&buf[..n]);
                Ok(n)
            }
            Err(err) => Err(self.decode_failure(err)),
        }
    }

    /// At the end of the tar: the blob's checks, then the DiffID.
    fn check_end(&mut self) -> Result<()> {
        self.check_blob_end()?;
        let diff_id = self.diff_id.current();
        if diff_id != self.layer.diff_id {
            return Err(Error::new(
                ErrorKind::DigestMismatch,
                format!(
                    "layer {} decompresses to bytes that hash to {diff_id}, not to its DiffID {}",
                    self.layer.digest, self.layer.diff_id
                ),
            ));
        }
        Ok(())
    }

    /// At the end of the tar: nothing left of the blob after the compressed stream, and the
    /// blob's digest and size. (gzip and zstd read to the blob's end themselves, and refuse what
    /// is not another member or frame; the blob is drained here whatever they do.)
    fn check_blob_end(&mut self) -> Result<()> {
        let trailing = self.drain_blob()?;
        if trailing > 0 {
            return Err(invalid_image(format!(
                "layer {} has {trailing} bytes after the end of its {} stream",
                self.layer.digest,
                self.compression.name()
            )));
        }
        Ok(())
    }

    /// Reads the blob to its end, checking it; returns how many bytes were left in it. Those
    /// bytes are hashed too, so a blob that was tampered with is a `DigestMismatch` whatever
    /// the decompressor made of it.
    fn drain_blob(&mut self) -> Result<u64> {
        let source = self.decoder.source();
        let left = io::copy(source, &mut io::sink());
        let blob = source.get_mut();
        match left {
            Ok(left) => blob.check().map(|()| left),
            Err(err) => Err(blob.take_failure().unwrap_or_else(|| blob.read_error(err))),
        }
    }

    /// The error for a failure of the decompressor: the blob's own when reading it failed or
    /// its bytes are not the layer's, else the decompressor's.
    fn decode_failure(&mut self, err: io::Error) -> Error {
        if let Some(failure) = self.decoder.source().get_mut().take_failure() {
            return failure;
        }
        let decode_error = invalid_image(format!(
            "layer {} does not decompress as {}: {err}",
            self.layer.digest,
            self.compression.name()
        ));
        match self.drain_blob() {
            Ok(_) => decode_error,
            Err(blob_error) => Error::new(
                blob_error.kind(),
                format!("{} (and it does not decompress as {}: {err})", blob_error.message(), self.compression.name()),
            ),
        }
    }
}

impl Read for UncompressedLayerReader {
    /// `read_chunk`, with its error carried in the `io::Error` (`into_inner` gives it back).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_chunk(buf).map_err(io::Error::other)
    }
}

/// The blob's file, read at most to the layer's declared size, hashed and counted on the way.
struct CheckedBlob {
    file: BlobReader,
    digest: Digest,
    size: u64,
    hasher: Hasher,
    read: u64,
    /// Why a read failed, for the reader above the decompressor, which sees only an io::Error.
    failure: Option<Error>,
}

impl CheckedBlob {
    fn new(file: BlobReader, layer: &LayerDescriptor) -> Self {
        CheckedBlob {
            file,
            digest: layer.digest.clone(),
            size: layer.size,
            hasher: Hasher::new(layer.digest.algorithm()),
            read: 0,
            failure: None,
        }
    }

    fn take_failure(&mut self) -> Option<Error> {
        self.failure.take()
    }

    fn read_error(&self, err: io::Error) -> Error {
        Error::new(ErrorKind::Io, format!("cannot read layer blob {}: {err}", self.digest))
    }

    /// Once every declared byte was read: the file has no more (it grew since it was opened),
    /// and the bytes hash to the digest.
    fn check(&mut self) -> Result<()> {
        let mut byte = [0u8; 1];
        let more = loop {
            match self.file.read(&mut byte) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                more => break more.map_err(|e| self.read_error(e))?,
            }
        };
        if more > 0 {
            return Err(Error::new(
                ErrorKind::SizeMismatch,
                format!("layer blob {} grew past its {} bytes while it was read", self.digest, self.size),
            ));
        }
        let actual = self.hasher.current();
        if actual != self.digest {
            return Err(Error::new(
                ErrorKind::DigestMismatch,
                format!("layer blob {} is corrupt: its bytes hash to {actual}", self.digest),
            ));
        }
        Ok(())
    }
}

impl Read for CheckedBlob {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.size - self.read;
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match self.file.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(err) => {
                if err.kind() != io::ErrorKind::Interrupted {
                    self.failure = Some(self.read_error(io::Error::new(err.kind(), err.to_string())));
                }
                return Err(err);
            }
        };
        if n == 0 {
            let failure = Error::new(
                ErrorKind::SizeMismatch,
                format!(
                    "layer blob {} shrank to {} of its {} bytes while it was read",
                    self.digest, self.read, self.size
                ),
            );
            let err = io::Error::new(io::ErrorKind::UnexpectedEof, failure.message().to_owned());
            self.failure = Some(failure);
            return Err(err);
        }
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}
