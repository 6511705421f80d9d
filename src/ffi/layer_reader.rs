//! C ABI of `layer_reader`: a stored layer read as its uncompressed tar.

use std::ffi::c_char;

use super::engine::ocicas_engine;
use super::{
    arg_digest, arg_mut, arg_out, arg_ref, arg_slice_mut, arg_str, boundary, free_handle, into_handle, ocicas_status,
};
use crate::layer_reader::UncompressedLayerReader;
use crate::stream::LayerDescriptor;

/// A stored layer's uncompressed tar, read from the start to the end. Use it from one thread
/// at a time. It holds the layer's open file, not the engine: it may outlive the engine.
pub struct ocicas_layer_reader {
    reader: UncompressedLayerReader,
}

/// Opens the stored layer blob `digest` of `size` bytes as its uncompressed tar, decompressed as
/// `media_type` says: `application/vnd.oci.image.layer.v1.tar`, `…tar+gzip`, `…tar+zstd` (and
/// their `nondistributable` forms), Docker's `application/vnd.docker.image.rootfs.diff.tar.gzip`
/// (and its `foreign` form, `…diff.tar`, its `foreign` form, and `…diff.tar.zstd`). `diff_id` is the layer's DiffID from its image
/// config's `rootfs.diff_ids`. `*out_reader` receives a handle to free with
/// `ocicas_layer_reader_free`.
///
/// `OCICAS_ERR_UNSUPPORTED_MEDIA_TYPE` for any other media type; `OCICAS_ERR_INVALID_ARGUMENT`
/// for a malformed digest or DiffID; `OCICAS_ERR_NOT_FOUND` when the blob is not stored;
/// `OCICAS_ERR_SIZE_MISMATCH` when it is not `size` bytes; `OCICAS_ERR_INVALID_IMAGE` when its
/// entry in the layout is not a regular file (a symlink, a FIFO: never followed or waited on).
///
/// # Safety
/// `engine` is a live engine; `media_type`, `digest` and `diff_id` are NUL-terminated strings;
/// `out_reader` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_layer_reader_open(
    engine: *const ocicas_engine,
    media_type: *const c_char,
    digest: *const c_char,
    size: u64,
    diff_id: *const c_char,
    out_reader: *mut *mut ocicas_layer_reader,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let media_type = unsafe { arg_str(media_type, "media_type") }?;
        let digest = unsafe { arg_digest(digest, "digest") }?;
        let diff_id = unsafe { arg_digest(diff_id, "diff_id") }?;
        let out_reader = unsafe { arg_out(out_reader, "out_reader") }?;
        let layer = LayerDescriptor { media_type: media_type.to_owned(), digest, size, diff_id };
        let reader = engine.engine.open_layer(&layer)?;
        *out_reader = into_handle(ocicas_layer_reader { reader });
        Ok(())
    })
}

/// Reads up to `len` bytes of the uncompressed tar into `buf`; `*out_read` receives the count.
/// 0 (with `len` > 0) is the end, given only once the blob's bytes matched its digest and size
/// and the tar matched the DiffID, and given again by any later read. The bytes before the end
/// are not yet verified: act on them only after it.
///
/// The read that reaches the end returns `OCICAS_ERR_DIGEST_MISMATCH` instead when the tar does
/// not hash to the DiffID or the blob does not hash to its digest (also when a corrupt blob fails
/// to decompress earlier), `OCICAS_ERR_SIZE_MISMATCH` when the blob changed size while it was
/// read; `OCICAS_ERR_INVALID_IMAGE` when the blob does not decompress as its media type says or
/// has bytes after its compressed stream (a zstd frame whose window is over 128 MiB included);
/// `OCICAS_ERR_IO` when reading the file fails. A failed reader gives the same failure at every
/// later read.
///
/// # Safety
/// `reader` is a live reader not used by another thread during the call; `buf` points at `len`
/// writable bytes; `out_read` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_layer_reader_read(
    reader: *mut ocicas_layer_reader,
    buf: *mut u8,
    len: usize,
    out_read: *mut usize,
) -> ocicas_status {
    boundary(|| {
        let reader = unsafe { arg_mut(reader, "reader") }?;
        let buf = unsafe { arg_slice_mut(buf, len, "buf") }?;
        let out_read = unsafe { arg_out(out_read, "out_read") }?;
        *out_read = reader.reader.read_chunk(buf)?;
        Ok(())
    })
}

/// Frees a layer reader, read to its end or not. NULL is a no-op.
///
/// # Safety
/// `reader` is NULL or a reader not freed before and not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_layer_reader_free(reader: *mut ocicas_layer_reader) {
    unsafe { free_handle(reader) }
}
