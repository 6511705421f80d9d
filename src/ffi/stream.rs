//! C ABI of `stream`: streaming layers (push and pull). Layer descriptors are JSON:
//! `{"mediaType":"…","digest":"sha256:…","size":N,"diffID":"sha256:…"}`.

use std::ffi::{c_char, c_void};
use std::io::{self, Read};

use super::cancel::{arg_cancel, ocicas_cancel};
use super::descriptor::ocicas_descriptor;
use super::engine::ocicas_engine;
use super::{
    arg_mut, arg_options, arg_out, arg_ref, arg_slice, arg_slice_mut, arg_str, boundary, check_options_version,
    free_handle, into_c_string, into_handle, ocicas_status,
};
use crate::error::{Error, ErrorKind, Result, invalid_argument};
use crate::stream::{
    Compression, CompressionKind, CompressionOptions, LayerDescriptor, LayerReader, LayerStream, MediaTypeStyle,
    StorageOptions,
};

/// `ocicas_layer_options.compression`: gzip (the default).
pub const OCICAS_COMPRESSION_GZIP: u32 = 0;
/// `ocicas_layer_options.compression`: zstd.
pub const OCICAS_COMPRESSION_ZSTD: u32 = 1;
/// `ocicas_layer_options.compression`: none (the layer is the tar itself).
pub const OCICAS_COMPRESSION_NONE: u32 = 2;
/// `ocicas_layer_options.level`: the compression's default level (gzip 6, zstd 3).
pub const OCICAS_LEVEL_DEFAULT: i32 = -1;

/// The version of `ocicas_layer_options` this header describes.
pub const OCICAS_LAYER_OPTIONS_VERSION: u32 = 1;

/// Options of a layer stream. Fill with `ocicas_layer_options_init(&options,
/// OCICAS_LAYER_OPTIONS_VERSION)`; passing NULL where options are taken means those defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ocicas_layer_options {
    /// The layout's version, set by `ocicas_layer_options_init`; any other is refused with
    /// `OCICAS_ERR_INVALID_ARGUMENT`.
    pub version: u32,
    /// `OCICAS_COMPRESSION_GZIP`, `_ZSTD` or `_NONE`.
    pub compression: u32,
    /// gzip 0–9, zstd 1–19, or `OCICAS_LEVEL_DEFAULT`.
    pub level: i32,
    /// Docker layer media types instead of OCI ones (gzip or none only).
    pub docker_media_types: bool,
    /// Compression threads; 0 means every available core. The output is the same for any count.
    /// More than the engine's `OCICAS_LIMIT_THREADS` (4 per core, at least 32, at most 256,
    /// unless set) is `OCICAS_ERR_INVALID_ARGUMENT`; a pull-mode stream, which has no engine, is
    /// held to that limit's default.
    pub threads: u32,
    /// Push mode only (a pull-mode stream refuses it): the ingest ref the compressed bytes are
    /// written under (NULL: a unique one).
    pub ref_name: *const c_char,
    /// Push mode only: a lease (from `ocicas_lease_new`) the layer blob joins before it becomes
    /// visible, so GC cannot take it before it is referenced (NULL: none).
    pub lease: *const c_char,
    /// A flag (from `ocicas_cancel_new`) that stops the layer with `OCICAS_ERR_CANCELLED` when
    /// requested (NULL: none), at its next chunk of input: every later write, finish or read
    /// fails so too. A push-mode layer commits nothing (freeing it aborts its ingest); a
    /// pull-mode one computes nothing.
    pub cancel: *const ocicas_cancel,
}

/// Reads up to `len` bytes of uncompressed input into `buf`. Returns how many (0 at the end of
/// the input), or a negative value on failure (the stream then fails and commits nothing).
pub type ocicas_read_cb = Option<unsafe extern "C" fn(buf: *mut u8, len: usize, user_data: *mut c_void) -> i64>;

/// A streaming layer: push mode (`ocicas_layer_stream_new`, write, finish) or pull mode
/// (`ocicas_layer_stream_from_reader`, read). Use it from one thread at a time.
pub struct ocicas_layer_stream {
    mode: StreamMode,
    /// Follows from the options, so it is known before any byte.
    media_type: &'static str,
}

enum StreamMode {
    Push(PushState),
    Pull(LayerReader<CallbackReader>),
}

enum PushState {
    Open(LayerStream),
    Finished(LayerDescriptor),
    /// `finish` failed (a cancel included): every later write and finish says so again, as a
    /// pull stream that failed does, rather than claiming the stream was finished.
    Failed(ErrorKind, String),
}

pub(super) struct CallbackReader {
    pub(super) callback: unsafe extern "C" fn(*mut u8, usize, *mut c_void) -> i64,
    pub(super) user_data: *mut c_void,
}

impl Read for CallbackReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = unsafe { (self.callback)(buf.as_mut_ptr(), buf.len(), self.user_data) };
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= buf.len())
            .ok_or_else(|| io::Error::other(format!("the read callback returned {n}")))
    }
}

/// Fills `options` with the defaults of `version` (`OCICAS_LAYER_OPTIONS_VERSION`): gzip at
/// level 6, OCI media types, every core, a unique ref. It writes only the fields `version`
/// has. `OCICAS_ERR_INVALID_ARGUMENT` for a version this library does not know.
///
/// # Safety
/// `options` is NULL (`OCICAS_ERR_INVALID_ARGUMENT`) or writable for the layout of `version`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_layer_options_init(options: *mut ocicas_layer_options, version: u32) -> ocicas_status {
    boundary(|| {
        let options = unsafe { arg_out(options, "options") }?;
        check_options_version(version, "ocicas_layer_options", OCICAS_LAYER_OPTIONS_VERSION)?;
        *options = ocicas_layer_options {
            version,
            compression: OCICAS_COMPRESSION_GZIP,
            level: OCICAS_LEVEL_DEFAULT,
            docker_media_types: false,
            threads: 0,
            ref_name: std::ptr::null(),
            lease: std::ptr::null(),
            cancel: std::ptr::null(),
        };
        Ok(())
    })
}

/// The two halves of the C options: how to compress, and (push mode) where to store.
pub(super) unsafe fn layer_options(
    options: *const ocicas_layer_options,
) -> Result<(CompressionOptions, StorageOptions)> {
    let options = unsafe { arg_options(options, "ocicas_layer_options", OCICAS_LAYER_OPTIONS_VERSION) }?;
    let Some(options) = options else { return Ok(Default::default()) };
    let kind = match options.compression {
        OCICAS_COMPRESSION_GZIP => CompressionKind::Gzip,
        OCICAS_COMPRESSION_ZSTD => CompressionKind::Zstd,
        OCICAS_COMPRESSION_NONE => CompressionKind::None,
        other => return Err(invalid_argument(format!("unknown compression {other}"))),
    };
    let level = (options.level != OCICAS_LEVEL_DEFAULT).then_some(options.level);
    let compression = Compression::from_level(kind, level)?;
    let optional = |ptr: *const c_char, name: &str| -> Result<Option<String>> {
        if ptr.is_null() { Ok(None) } else { Ok(Some(unsafe { arg_str(ptr, name) }?.to_owned())) }
    };
    let ref_name = optional(options.ref_name, "options.ref_name")?;
    let lease = optional(options.lease, "options.lease")?;
    let style = if options.docker_media_types { MediaTypeStyle::Docker } else { MediaTypeStyle::Oci };
    Ok((
        CompressionOptions {
            compression,
            style,
            threads: options.threads as usize,
            cancel: unsafe { arg_cancel(options.cancel) },
        },
        StorageOptions { ref_name, lease },
    ))
}

/// Refuses the storage half of the C options where `what` (a pull-mode stream, a registry
/// push-layer) stores nothing: the Rust call it converts to has no place for them.
pub(super) fn refuse_storage(storage: &StorageOptions, what: &str) -> Result<()> {
    if *storage != StorageOptions::default() {
        return Err(invalid_argument(format!(
            "{what} stores nothing: the layer options ref_name and lease are for push mode \
             (ocicas_layer_stream_new) and must be NULL"
        )));
    }
    Ok(())
}

/// Starts a push-mode layer: write uncompressed bytes with `ocicas_layer_stream_write`, then
/// `ocicas_layer_stream_finish` commits the compressed blob. `options` may be NULL.
/// `*out_stream` receives a handle for `ocicas_layer_stream_free` (freeing an unfinished push
/// stream aborts its ingest). `OCICAS_ERR_INVALID_ARGUMENT` for bad options (more threads than
/// `OCICAS_LIMIT_THREADS` included); `OCICAS_ERR_IO` when the system refuses a thread.
///
/// # Safety
/// `engine` is a live engine; `options` NULL or valid; `out_stream` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_layer_stream_new(
    engine: *const ocicas_engine,
    options: *const ocicas_layer_options,
    out_stream: *mut *mut ocicas_layer_stream,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let (options, storage) = unsafe { layer_options(options) }?;
        let out_stream = unsafe { arg_out(out_stream, "out_stream") }?;
        let stream = LayerStream::new(&engine.engine, &options, &storage)?;
        let media_type = options.media_type()?;
        *out_stream = into_handle(ocicas_layer_stream { mode: StreamMode::Push(PushState::Open(stream)), media_type });
        Ok(())
    })
}

/// Starts a pull-mode layer over `read_cb`: the caller reads the compressed bytes with
/// `ocicas_layer_stream_read`; nothing is stored. `read_cb` is called only from inside
/// `ocicas_layer_stream_read`, on the caller's thread. `options` may be NULL.
/// `OCICAS_ERR_INVALID_ARGUMENT` for bad options (more threads than the default
/// `OCICAS_LIMIT_THREADS` included); `OCICAS_ERR_IO` when the system refuses a thread.
///
/// # Safety
/// `read_cb` is valid and `user_data` what it expects, for the stream's life.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_layer_stream_from_reader(
    read_cb: ocicas_read_cb,
    user_data: *mut c_void,
    options: *const ocicas_layer_options,
    out_stream: *mut *mut ocicas_layer_stream,
) -> ocicas_status {
    boundary(|| {
        let callback = read_cb.ok_or_else(|| invalid_argument("argument read_cb is NULL"))?;
        let (options, storage) = unsafe { layer_options(options) }?;
        let out_stream = unsafe { arg_out(out_stream, "out_stream") }?;
        refuse_storage(&storage, "a pull-mode layer")?;
        let media_type = options.media_type()?;
        let reader = LayerReader::new(CallbackReader { callback, user_data }, &options)?;
        *out_stream = into_handle(ocicas_layer_stream { mode: StreamMode::Pull(reader), media_type });
        Ok(())
    })
}

/// The error of a write or finish on a push stream that `finish` already ended.
fn ended_error(state: &PushState) -> Error {
    match state {
        PushState::Failed(kind, message) => Error::new(*kind, message.clone()),
        _ => invalid_argument("the layer stream was already finished"),
    }
}

fn not_push() -> Error {
    invalid_argument("this layer stream is in pull mode: read it with ocicas_layer_stream_read")
}

/// Push mode: takes `len` more uncompressed bytes. `OCICAS_ERR_INVALID_ARGUMENT` after a
/// successful finish or on a pull stream; `OCICAS_ERR_CANCELLED` once the options' `cancel`
/// was requested; after a failed finish, that finish's status (`OCICAS_ERR_CANCELLED` for a
/// cancelled one).
///
/// # Safety
/// `stream` is a live stream; `data` points at `len` bytes (NULL when 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_layer_stream_write(
    stream: *mut ocicas_layer_stream,
    data: *const u8,
    len: usize,
) -> ocicas_status {
    boundary(|| {
        let stream = unsafe { arg_mut(stream, "stream") }?;
        let data = unsafe { arg_slice(data, len, "data") }?;
        match &mut stream.mode {
            StreamMode::Push(PushState::Open(push)) => push.write(data),
            StreamMode::Push(ended) => Err(ended_error(ended)),
            StreamMode::Pull(_) => Err(not_push()),
        }
    })
}

/// Push mode: ends the input, commits the compressed blob (a blob already stored is fine) and
/// gives the layer: its descriptor in `*out_layer` (free with `ocicas_descriptor_free`) and its
/// DiffID, the sha256 of the uncompressed tar, in `*out_diff_id` (free with
/// `ocicas_string_free`), the two `ocicas_image_append` takes. `OCICAS_ERR_CANCELLED` once the
/// options' `cancel` was requested: nothing is committed, and every later write and finish is
/// `OCICAS_ERR_CANCELLED` too. `OCICAS_ERR_INVALID_ARGUMENT` for a NULL argument, a pull-mode
/// stream, or one finished before.
///
/// # Safety
/// `stream` is a live stream; `out_layer` and `out_diff_id` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_layer_stream_finish(
    stream: *mut ocicas_layer_stream,
    out_layer: *mut *mut ocicas_descriptor,
    out_diff_id: *mut *mut c_char,
) -> ocicas_status {
    boundary(|| {
        let stream = unsafe { arg_mut(stream, "stream") }?;
        let out_layer = unsafe { arg_out(out_layer, "out_layer") }?;
        let out_diff_id = unsafe { arg_out(out_diff_id, "out_diff_id") }?;
        let StreamMode::Push(state) = &mut stream.mode else { return Err(not_push()) };
        // Taken out for `finish`, which consumes the stream; every arm below puts a state back.
        let push = match std::mem::replace(
            state,
            PushState::Failed(ErrorKind::InvalidArgument, "the layer stream's finish panicked".into()),
        ) {
            PushState::Open(push) => push,
            ended => {
                let err = ended_error(&ended);
                *state = ended;
                return Err(err);
            }
        };
        match push.finish() {
            Ok(layer) => {
                *out_layer = into_handle(ocicas_descriptor::new(&layer.descriptor()));
                *out_diff_id = into_c_string(layer.diff_id.to_string());
                *state = PushState::Finished(layer);
                Ok(())
            }
            Err(err) => {
                *state = PushState::Failed(err.kind(), err.message().to_owned());
                Err(err)
            }
        }
    })
}

/// Pull mode: reads up to `len` compressed bytes into `buf`; `*out_read` receives the count,
/// 0 once at the end (with `len` > 0: a `len` of 0 reads nothing and tells nothing). Reading again after that is `OCICAS_ERR_CONSUMED`. A failing read
/// callback makes this `OCICAS_ERR_IO`, a requested `cancel` of its options
/// `OCICAS_ERR_CANCELLED` (looked at before each chunk of input); the stream then stays failed.
///
/// # Safety
/// `stream` is a live stream; `buf` points at `len` writable bytes; `out_read` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_layer_stream_read(
    stream: *mut ocicas_layer_stream,
    buf: *mut u8,
    len: usize,
    out_read: *mut usize,
) -> ocicas_status {
    boundary(|| {
        let stream = unsafe { arg_mut(stream, "stream") }?;
        let out_read = unsafe { arg_out(out_read, "out_read") }?;
        let buf = unsafe { arg_slice_mut(buf, len, "buf") }?;
        let StreamMode::Pull(reader) = &mut stream.mode else {
            return Err(invalid_argument("this layer stream is in push mode: it has nothing to read"));
        };
        *out_read = reader.read_chunk(buf)?;
        Ok(())
    })
}

/// The finished layer, or `OCICAS_ERR_NOT_COMPUTED` while a push stream is not finished or a
/// pull stream's input has not ended and its output not been read to the end.
fn finished_layer(stream: &ocicas_layer_stream) -> Result<LayerDescriptor> {
    match &stream.mode {
        StreamMode::Push(PushState::Finished(layer)) => Ok(layer.clone()),
        StreamMode::Push(_) => {
            Err(Error::new(ErrorKind::NotComputed, "not computed: the layer stream is not finished"))
        }
        StreamMode::Pull(reader) => reader.layer_descriptor(),
    }
}

/// The layer's media type in `*out_media_type` (free with `ocicas_string_free`), known from
/// the stream's creation: it follows from the options.
///
/// # Safety
/// `stream` is a live stream; `out_media_type` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_layer_stream_media_type(
    stream: *const ocicas_layer_stream,
    out_media_type: *mut *mut c_char,
) -> ocicas_status {
    boundary(|| {
        let stream = unsafe { arg_ref(stream, "stream") }?;
        let out_media_type = unsafe { arg_out(out_media_type, "out_media_type") }?;
        *out_media_type = into_c_string(stream.media_type.to_owned());
        Ok(())
    })
}

/// The compressed layer's digest in `*out_digest` (free with `ocicas_string_free`);
/// `OCICAS_ERR_NOT_COMPUTED` until the stream is done.
///
/// # Safety
/// `stream` is a live stream; `out_digest` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_layer_stream_digest(
    stream: *const ocicas_layer_stream,
    out_digest: *mut *mut c_char,
) -> ocicas_status {
    boundary(|| {
        let stream = unsafe { arg_ref(stream, "stream") }?;
        let out_digest = unsafe { arg_out(out_digest, "out_digest") }?;
        *out_digest = into_c_string(finished_layer(stream)?.digest.to_string());
        Ok(())
    })
}

/// The DiffID (sha256 of the uncompressed bytes) in `*out_diff_id`; `OCICAS_ERR_NOT_COMPUTED`
/// until the stream is done.
///
/// # Safety
/// `stream` is a live stream; `out_diff_id` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_layer_stream_diff_id(
    stream: *const ocicas_layer_stream,
    out_diff_id: *mut *mut c_char,
) -> ocicas_status {
    boundary(|| {
        let stream = unsafe { arg_ref(stream, "stream") }?;
        let out_diff_id = unsafe { arg_out(out_diff_id, "out_diff_id") }?;
        *out_diff_id = into_c_string(finished_layer(stream)?.diff_id.to_string());
        Ok(())
    })
}

/// The compressed size in `*out_size`; `OCICAS_ERR_NOT_COMPUTED` until the stream is done.
///
/// # Safety
/// `stream` is a live stream; `out_size` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_layer_stream_size(
    stream: *const ocicas_layer_stream,
    out_size: *mut u64,
) -> ocicas_status {
    boundary(|| {
        let stream = unsafe { arg_ref(stream, "stream") }?;
        let out_size = unsafe { arg_out(out_size, "out_size") }?;
        *out_size = finished_layer(stream)?.size;
        Ok(())
    })
}

/// Frees a layer stream. An unfinished push stream's ingest is aborted; an unfinished pull
/// stream computes nothing. NULL is a no-op.
///
/// # Safety
/// `stream` is NULL or a stream not freed before and not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_layer_stream_free(stream: *mut ocicas_layer_stream) {
    unsafe { free_handle(stream) }
}
