//! C ABI of `content`: blobs and blob readers.

use std::ffi::{CString, c_char, c_int, c_void};

use super::descriptor::{ocicas_descriptor, ocicas_key_value_list};
use super::engine::ocicas_engine;
use super::{
    arg_digest, arg_filters, arg_out, arg_ref, arg_slice, arg_slice_mut, arg_str, arg_str_array, boundary, c_string,
    for_each_until_stopped, free_handle, into_c_string, into_handle, ocicas_status, unix_nanos,
};
use crate::content::{BlobInfo, BlobReader};
use crate::error::invalid_argument;

/// A random-access reader of one committed blob. `ocicas_reader_read_at` and
/// `ocicas_reader_size` may be called from several threads at once.
pub struct ocicas_reader {
    reader: BlobReader,
}

/// Called once per blob by `ocicas_blob_list` with its digest (valid only during the call).
/// Return 0 to go on, non-zero to stop listing.
pub type ocicas_blob_list_cb = Option<unsafe extern "C" fn(digest: *const c_char, user_data: *mut c_void) -> c_int>;

/// Stores `len` bytes at `data` as a sha256 blob (idempotent when it is already stored) and
/// returns its digest in `*out_digest`, a string to free with `ocicas_string_free`.
/// `data` may be NULL when `len` is 0.
///
/// # Safety
/// `engine` is a live engine; `data` points at `len` readable bytes; `out_digest` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_blob_put(
    engine: *const ocicas_engine,
    data: *const u8,
    len: usize,
    out_digest: *mut *mut c_char,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let data = unsafe { arg_slice(data, len, "data") }?;
        let out_digest = unsafe { arg_out(out_digest, "out_digest") }?;
        let blob = engine.engine.put_blob(data)?;
        *out_digest = into_c_string(blob.digest.to_string());
        Ok(())
    })
}

/// One blob of `ocicas_blob_put_many`: `len` bytes at `data` (NULL when `len` is 0).
#[repr(C)]
pub struct ocicas_blob_input {
    pub data: *const u8,
    pub len: usize,
}

/// Stores each of the `count` blobs at `blobs` as a sha256 blob, as durably as
/// `ocicas_blob_put`, but fsyncing them together and their directory once per group of 256:
/// for a caller committing many small blobs at once. On success `out_digests[i]` receives the
/// digest of `blobs[i]`, a string to free with `ocicas_string_free`. On an error nothing is
/// written to `out_digests`; the blobs of the groups stored before it stay stored. Every blob
/// has the commit grace from the call's return, as one `ocicas_blob_put` has from its own: a
/// GC does not take it before the caller tags or leases it next. A GC waits for the batch.
///
/// # Safety
/// `engine` is a live engine; `blobs` points at `count` entries (may be NULL when `count` is 0),
/// each `data` at `len` readable bytes; `out_digests` has room for `count` pointers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_blob_put_many(
    engine: *const ocicas_engine,
    blobs: *const ocicas_blob_input,
    count: usize,
    out_digests: *mut *mut c_char,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let inputs = unsafe { arg_slice(blobs, count, "blobs") }?;
        // The caller's array may be uninitialized memory: only written, never read.
        let out_digests =
            unsafe { arg_slice_mut(out_digests.cast::<std::mem::MaybeUninit<*mut c_char>>(), count, "out_digests") }?;
        let mut slices = Vec::with_capacity(count);
        for (i, input) in inputs.iter().enumerate() {
            slices.push(unsafe { arg_slice(input.data, input.len, &format!("blobs[{i}].data")) }?);
        }
        let stored = engine.engine.put_blobs(&slices)?;
        for (out, blob) in out_digests.iter_mut().zip(stored) {
            out.write(into_c_string(blob.digest.to_string()));
        }
        Ok(())
    })
}

/// Parses `json` and stores it as canonical JSON (sorted keys, no insignificant whitespace), so
/// equal documents always get equal digests. `*out_descriptor` receives its descriptor (media
/// type, digest, size), to free with `ocicas_descriptor_free`.
/// `OCICAS_ERR_INVALID_ARGUMENT` for a NULL argument or when `json` is not valid JSON.
///
/// # Safety
/// `engine` is a live engine; `media_type` and `json` are NUL-terminated strings;
/// `out_descriptor` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_blob_put_json(
    engine: *const ocicas_engine,
    media_type: *const c_char,
    json: *const c_char,
    out_descriptor: *mut *mut ocicas_descriptor,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let media_type = unsafe { arg_str(media_type, "media_type") }?;
        let json = unsafe { arg_str(json, "json") }?;
        let out_descriptor = unsafe { arg_out(out_descriptor, "out_descriptor") }?;
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| invalid_argument(format!("json is not valid JSON: {e}")))?;
        let descriptor = engine.engine.put_json(media_type, &value)?;
        *out_descriptor = into_handle(ocicas_descriptor::new(&descriptor));
        Ok(())
    })
}

/// Opens the blob `digest` for random access; `*out_reader` receives a handle to free with
/// `ocicas_reader_free`. `OCICAS_ERR_NOT_FOUND` when absent, `OCICAS_ERR_INVALID_ARGUMENT` for a
/// malformed digest, `OCICAS_ERR_INVALID_IMAGE` when the entry is not a regular file.
///
/// # Safety
/// `engine` is a live engine; `digest` a NUL-terminated string; `out_reader` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_blob_open(
    engine: *const ocicas_engine,
    digest: *const c_char,
    out_reader: *mut *mut ocicas_reader,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let digest = unsafe { arg_digest(digest, "digest") }?;
        let out_reader = unsafe { arg_out(out_reader, "out_reader") }?;
        let reader = engine.engine.open_blob(&digest)?;
        *out_reader = into_handle(ocicas_reader { reader });
        Ok(())
    })
}

/// Reads up to `len` bytes at `offset` into `buf`; `*out_read` receives the count, 0 at or past
/// the end of the blob.
///
/// # Safety
/// `reader` is a live reader; `buf` points at `len` writable bytes; `out_read` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_reader_read_at(
    reader: *const ocicas_reader,
    buf: *mut u8,
    len: usize,
    offset: u64,
    out_read: *mut usize,
) -> ocicas_status {
    boundary(|| {
        let reader = unsafe { arg_ref(reader, "reader") }?;
        let out_read = unsafe { arg_out(out_read, "out_read") }?;
        let buf = unsafe { arg_slice_mut(buf, len, "buf") }?;
        *out_read = reader.reader.read_at(buf, offset)?;
        Ok(())
    })
}

/// The size in bytes of the reader's blob.
///
/// # Safety
/// `reader` is a live reader; `out_size` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_reader_size(reader: *const ocicas_reader, out_size: *mut u64) -> ocicas_status {
    boundary(|| {
        let reader = unsafe { arg_ref(reader, "reader") }?;
        let out_size = unsafe { arg_out(out_size, "out_size") }?;
        *out_size = reader.reader.size();
        Ok(())
    })
}

/// Frees a reader from `ocicas_blob_open`. NULL is a no-op.
///
/// # Safety
/// `reader` is NULL or a reader not freed before and not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_reader_free(reader: *mut ocicas_reader) {
    unsafe { free_handle(reader) }
}

/// `limit` of `ocicas_blob_read` that lets a blob of any size through. A limit is a number of
/// bytes, so 0 allows only the empty blob.
#[allow(dead_code, reason = "for C callers: the library compares against it, it never names it")]
pub const OCICAS_NO_LIMIT: u64 = u64::MAX;

/// Reads the whole blob `digest` and checks that it hashes to its name. `*out_data` and
/// `*out_len` receive a buffer to free with `ocicas_bytes_free(data, len)`.
/// `OCICAS_ERR_DIGEST_MISMATCH` for a corrupt blob; `OCICAS_ERR_TOO_LARGE` when the blob is
/// larger than `limit` bytes (nothing is allocated then): 0 allows only the empty blob,
/// `OCICAS_NO_LIMIT` any size.
///
/// # Safety
/// `engine` is a live engine; `digest` a NUL-terminated string; the outputs are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_blob_read(
    engine: *const ocicas_engine,
    digest: *const c_char,
    limit: u64,
    out_data: *mut *mut u8,
    out_len: *mut usize,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let digest = unsafe { arg_digest(digest, "digest") }?;
        let out_data = unsafe { arg_out(out_data, "out_data") }?;
        let out_len = unsafe { arg_out(out_len, "out_len") }?;
        let bytes = engine.engine.read_blob(&digest, limit)?.into_boxed_slice();
        *out_len = bytes.len();
        *out_data = Box::into_raw(bytes).cast();
        Ok(())
    })
}

/// The size of the stored blob `digest` in `*out_size`; `OCICAS_ERR_NOT_FOUND` when absent.
///
/// # Safety
/// `engine` is a live engine; `digest` a NUL-terminated string; `out_size` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_blob_size(
    engine: *const ocicas_engine,
    digest: *const c_char,
    out_size: *mut u64,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let digest = unsafe { arg_digest(digest, "digest") }?;
        let out_size = unsafe { arg_out(out_size, "out_size") }?;
        *out_size = engine.engine.blob_size(&digest)?;
        Ok(())
    })
}

/// Deletes the blob `digest`. Deleting an absent blob is `OCICAS_OK`.
///
/// # Safety
/// `engine` is a live engine; `digest` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_blob_delete(engine: *const ocicas_engine, digest: *const c_char) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let digest = unsafe { arg_digest(digest, "digest") }?;
        engine.engine.delete_blob(&digest)
    })
}

/// Calls `callback` once per stored blob, sorted by digest, with `user_data` passed through.
///
/// # Safety
/// `engine` is a live engine; `callback` is a valid function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_blob_list(
    engine: *const ocicas_engine,
    callback: ocicas_blob_list_cb,
    user_data: *mut c_void,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let callback = callback.ok_or_else(|| invalid_argument("argument callback is NULL"))?;
        let digests = engine.engine.list_blobs()?;
        for_each_until_stopped(digests, |digest| {
            let text = std::ffi::CString::new(digest.to_string()).unwrap_or_default();
            unsafe { callback(text.as_ptr(), user_data) }
        });
        Ok(())
    })
}

/// Called once per blob by `ocicas_blob_walk` with its info, borrowed for the call only (copy
/// what you keep). Return 0 to go on, non-zero to stop.
pub type ocicas_blob_walk_cb =
    Option<unsafe extern "C" fn(info: *const ocicas_blob_info, user_data: *mut c_void) -> c_int>;

/// What the store knows of one blob: digest, size, times and labels, read with the
/// `ocicas_blob_info_*` accessors. `created_at` is when the blob was first stored (storing it
/// again does not move it); `updated_at` is its last label change, never before `created_at`,
/// as in containerd. Immutable: any number of threads may read one at once.
pub struct ocicas_blob_info {
    digest: CString,
    size: u64,
    created_at: i64,
    updated_at: i64,
    labels: ocicas_key_value_list,
}

impl ocicas_blob_info {
    fn new(info: &BlobInfo) -> Self {
        ocicas_blob_info {
            digest: c_string(&info.digest.to_string()),
            size: info.size,
            created_at: unix_nanos(info.created_at),
            updated_at: unix_nanos(info.updated_at),
            labels: ocicas_key_value_list::new(&info.labels),
        }
    }
}

/// The info of the blob `digest` in `*out_info`, to free with `ocicas_blob_info_free`.
///
/// `OCICAS_ERR_INVALID_ARGUMENT` for a NULL argument or a malformed digest;
/// `OCICAS_ERR_NOT_FOUND` when the blob is not stored.
///
/// # Safety
/// `engine` is a live engine; `digest` a NUL-terminated string; `out_info` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_blob_info_get(
    engine: *const ocicas_engine,
    digest: *const c_char,
    out_info: *mut *mut ocicas_blob_info,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let digest = unsafe { arg_digest(digest, "digest") }?;
        let out_info = unsafe { arg_out(out_info, "out_info") }?;
        *out_info = into_handle(ocicas_blob_info::new(&engine.engine.info(&digest)?));
        Ok(())
    })
}

/// Frees a blob info and everything its accessors returned. NULL is a no-op.
///
/// # Safety
/// `info` is NULL or an info returned through `out_info`, not freed before, that no other
/// thread reads during the call (never one passed to an `ocicas_blob_walk` callback).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_blob_info_free(info: *mut ocicas_blob_info) {
    unsafe { free_handle(info) }
}

/// The blob's digest ("sha256:<hex>"). NULL for a NULL info.
///
/// # Safety
/// `info` is NULL or a live info (one from `ocicas_blob_info_get` or
/// `ocicas_blob_update_labels` not freed yet, or the one an `ocicas_blob_walk` callback is
/// running with).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_blob_info_digest(info: *const ocicas_blob_info) -> *const c_char {
    unsafe { info.as_ref() }.map_or(std::ptr::null(), |info| info.digest.as_ptr())
}

/// The blob's size in bytes. 0 for a NULL info.
///
/// # Safety
/// As `ocicas_blob_info_digest`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_blob_info_size(info: *const ocicas_blob_info) -> u64 {
    unsafe { info.as_ref() }.map_or(0, |info| info.size)
}

/// When the blob was first stored, in nanoseconds since the Unix epoch (saturated to the
/// range of `int64_t`). 0 for a NULL info.
///
/// # Safety
/// As `ocicas_blob_info_digest`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_blob_info_created_at(info: *const ocicas_blob_info) -> i64 {
    unsafe { info.as_ref() }.map_or(0, |info| info.created_at)
}

/// When the blob's labels last changed (its creation when they never did), in nanoseconds
/// since the Unix epoch, never before `ocicas_blob_info_created_at`. 0 for a NULL info.
///
/// # Safety
/// As `ocicas_blob_info_digest`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_blob_info_updated_at(info: *const ocicas_blob_info) -> i64 {
    unsafe { info.as_ref() }.map_or(0, |info| info.updated_at)
}

/// The blob's labels in key order (empty when none), owned by the info. NULL for a NULL
/// info.
///
/// # Safety
/// As `ocicas_blob_info_digest`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_blob_info_labels(info: *const ocicas_blob_info) -> *const ocicas_key_value_list {
    unsafe { info.as_ref() }.map_or(std::ptr::null(), |info| &info.labels)
}

/// Updates the labels of the blob `digest` by containerd's rules: with no field paths (or
/// `"labels"`) its labels become `labels_json` (a JSON object of strings; NULL is `{}`);
/// `"labels.<key>"` sets that key from `labels_json`, or removes it when absent there. Any other
/// path is `OCICAS_ERR_INVALID_ARGUMENT`; a key + value over the label limit (4096 bytes unless
/// set with `OCICAS_LIMIT_LABEL_SIZE`) is `OCICAS_ERR_TOO_LARGE`; a blob not stored is
/// `OCICAS_ERR_NOT_FOUND`. `*out_info` receives the updated info, to free with
/// `ocicas_blob_info_free`, unless `out_info` is NULL.
///
/// # Safety
/// `engine` is a live engine; strings NUL-terminated; `field_paths` points at `n_field_paths`
/// strings (NULL when 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_blob_update_labels(
    engine: *const ocicas_engine,
    digest: *const c_char,
    labels_json: *const c_char,
    field_paths: *const *const c_char,
    n_field_paths: usize,
    out_info: *mut *mut ocicas_blob_info,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let digest = unsafe { arg_digest(digest, "digest") }?;
        let labels = unsafe { super::ingest::optional_labels(labels_json) }?;
        let paths = unsafe { arg_str_array(field_paths, n_field_paths, "field_paths") }?;
        let info = engine.engine.update_labels(&digest, &labels, &paths)?;
        if let Some(out_info) = unsafe { out_info.as_mut() } {
            *out_info = into_handle(ocicas_blob_info::new(&info));
        }
        Ok(())
    })
}

/// Calls `callback` with the info of every blob matching the filters (containerd syntax
/// over `digest`, `size`, `labels.<key>`: `,` joins selectors that must all match; any of the
/// `n_filters` strings may match; none matches all), in digest order.
/// `OCICAS_ERR_INVALID_ARGUMENT` for a malformed filter.
///
/// # Safety
/// `engine` is a live engine; `filters` points at `n_filters` strings (NULL when 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_blob_walk(
    engine: *const ocicas_engine,
    filters: *const *const c_char,
    n_filters: usize,
    callback: ocicas_blob_walk_cb,
    user_data: *mut c_void,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let filters = unsafe { arg_filters(filters, n_filters) }?;
        let callback = callback.ok_or_else(|| invalid_argument("argument callback is NULL"))?;
        engine.engine.walk(&filters, |info| {
            let info = ocicas_blob_info::new(&info);
            Ok(unsafe { callback(&info, user_data) } == 0)
        })
    })
}
