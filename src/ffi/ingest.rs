//! C ABI of `ingest`: ref-named writers and ingest management. Statuses are typed values read
//! with the `ocicas_ingest_status_*` accessors.

use std::collections::BTreeMap;
use std::ffi::{CString, c_char, c_int, c_void};

use super::engine::ocicas_engine;
use super::{
    arg_digest, arg_filters, arg_mut, arg_out, arg_ref, arg_slice, arg_str, boundary, c_string, for_each_until_stopped,
    free_handle, into_c_string, into_handle, ocicas_status, unix_nanos,
};
use crate::content::{IngestStatus, IngestWriter, WriterOptions};
use crate::digest::Digest;
use crate::error::{Result, invalid_argument};

/// A live ingest writer of one ref. Use it from one thread at a time.
pub struct ocicas_writer {
    writer: IngestWriter,
}

/// Called once per ingest by `ocicas_ingest_list` with its status, borrowed for the call only
/// (copy what you keep). Return 0 to go on, non-zero to stop.
pub type ocicas_ingest_list_cb =
    Option<unsafe extern "C" fn(status: *const ocicas_ingest_status, user_data: *mut c_void) -> c_int>;

/// The state of one ingest, read with the `ocicas_ingest_status_*` accessors: its ref, the
/// bytes written so far, the expected size and digest when given, and when it started and was
/// last written. Immutable: any number of threads may read one at once.
pub struct ocicas_ingest_status {
    ref_name: CString,
    offset: u64,
    /// `OCICAS_SIZE_UNKNOWN` when no size was given.
    total: i64,
    expected: Option<CString>,
    started_at: i64,
    updated_at: i64,
}

impl ocicas_ingest_status {
    fn new(status: &IngestStatus) -> Self {
        ocicas_ingest_status {
            ref_name: c_string(&status.ref_name),
            offset: status.offset,
            // An expected size is at most i64::MAX: `ocicas_writer_open` takes it as an int64_t.
            total: status.total.and_then(|total| i64::try_from(total).ok()).unwrap_or(OCICAS_SIZE_UNKNOWN),
            expected: status.expected.as_ref().map(|digest| c_string(&digest.to_string())),
            started_at: unix_nanos(status.started_at),
            updated_at: unix_nanos(status.updated_at),
        }
    }
}

/// A size argument that is not known: `expected_size` of `ocicas_writer_open`, `size` of
/// `ocicas_writer_commit`.
pub const OCICAS_SIZE_UNKNOWN: i64 = -1;

fn optional_size(size: i64, name: &str) -> Result<Option<u64>> {
    match size {
        OCICAS_SIZE_UNKNOWN => Ok(None),
        size => u64::try_from(size)
            .map(Some)
            .map_err(|_| invalid_argument(format!("{name} is {size}: a size is >= 0 or OCICAS_SIZE_UNKNOWN"))),
    }
}

/// Digest strings may be NULL for "none".
unsafe fn optional_digest(ptr: *const c_char, name: &str) -> Result<Option<Digest>> {
    if ptr.is_null() { Ok(None) } else { unsafe { arg_digest(ptr, name) }.map(Some) }
}

/// Opens the writer of `ref` (resuming the ingest a closed writer left, at its offset).
/// `expected_size` is `OCICAS_SIZE_UNKNOWN` or the total; `expected_digest` is NULL or the
/// digest the content must have. `*out_writer` receives a handle for `ocicas_writer_close`.
/// `OCICAS_ERR_LOCKED` when a live writer in any process holds `ref`;
/// `OCICAS_ERR_ALREADY_EXISTS` when `expected_digest` is already stored (nothing to write);
/// `OCICAS_ERR_INVALID_ARGUMENT` for an empty ref, or a total or digest different from the
/// ones the ingest was started with.
///
/// # Safety
/// `engine` is a live engine; `ref` (and `expected_digest` unless NULL) NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_writer_open(
    engine: *const ocicas_engine,
    r#ref: *const c_char,
    expected_size: i64,
    expected_digest: *const c_char,
    out_writer: *mut *mut ocicas_writer,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let ref_name = unsafe { arg_str(r#ref, "ref") }?;
        let out_writer = unsafe { arg_out(out_writer, "out_writer") }?;
        let options = WriterOptions {
            expected_size: optional_size(expected_size, "expected_size")?,
            expected_digest: unsafe { optional_digest(expected_digest, "expected_digest") }?,
        };
        let writer = engine.engine.writer(ref_name, &options)?;
        *out_writer = into_handle(ocicas_writer { writer });
        Ok(())
    })
}

/// Appends `len` bytes. `OCICAS_ERR_SIZE_MISMATCH` (nothing written) when they would pass
/// the declared total; `OCICAS_ERR_INVALID_ARGUMENT` after a successful commit.
///
/// # Safety
/// `writer` is a live writer; `data` points at `len` readable bytes (NULL when `len` is 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_writer_write(writer: *mut ocicas_writer, data: *const u8, len: usize) -> ocicas_status {
    boundary(|| {
        let writer = unsafe { arg_mut(writer, "writer") }?;
        let data = unsafe { arg_slice(data, len, "data") }?;
        writer.writer.write(data)
    })
}

/// The writer's status in `*out_status`, to free with `ocicas_ingest_status_free`.
/// `OCICAS_ERR_INVALID_ARGUMENT` for a NULL argument.
///
/// # Safety
/// `writer` is a live writer; `out_status` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_writer_status(
    writer: *const ocicas_writer,
    out_status: *mut *mut ocicas_ingest_status,
) -> ocicas_status {
    boundary(|| {
        let writer = unsafe { arg_ref(writer, "writer") }?;
        let out_status = unsafe { arg_out(out_status, "out_status") }?;
        *out_status = into_handle(ocicas_ingest_status::new(&writer.writer.status()));
        Ok(())
    })
}

/// The number of bytes the ingest holds so far (the `offset` of `ocicas_writer_status`; after
/// a resume, what earlier writers left plus what this one wrote), in `*out_offset`.
///
/// # Safety
/// `writer` is a live writer; `out_offset` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_writer_offset(writer: *const ocicas_writer, out_offset: *mut u64) -> ocicas_status {
    boundary(|| {
        let writer = unsafe { arg_ref(writer, "writer") }?;
        let out_offset = unsafe { arg_out(out_offset, "out_offset") }?;
        *out_offset = writer.writer.status().offset;
        Ok(())
    })
}

/// The digest of everything written so far, in `*out_digest` (free with `ocicas_string_free`).
///
/// # Safety
/// `writer` is a live writer; `out_digest` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_writer_digest(
    writer: *const ocicas_writer,
    out_digest: *mut *mut c_char,
) -> ocicas_status {
    boundary(|| {
        let writer = unsafe { arg_ref(writer, "writer") }?;
        let out_digest = unsafe { arg_out(out_digest, "out_digest") }?;
        *out_digest = into_c_string(writer.writer.digest().to_string());
        Ok(())
    })
}

/// Restarts the ingest from nothing. Only `size` 0 is supported (`OCICAS_ERR_NOT_IMPLEMENTED`
/// otherwise).
///
/// # Safety
/// `writer` is a live writer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_writer_truncate(writer: *mut ocicas_writer, size: u64) -> ocicas_status {
    boundary(|| unsafe { arg_mut(writer, "writer") }?.writer.truncate(size))
}

/// Commits the ingest as a blob: `size` (or `OCICAS_SIZE_UNKNOWN`) and `expected` (or NULL)
/// are checked, size first; `labels_json` is NULL or a JSON object of string labels set on the
/// blob. `*out_digest` receives the committed digest (free with `ocicas_string_free`).
/// `OCICAS_ERR_SIZE_MISMATCH` / `OCICAS_ERR_DIGEST_MISMATCH`: nothing stored, the writer stays
/// usable and the ingest resumable. `OCICAS_ERR_ALREADY_EXISTS`: the blob was already stored;
/// the ingest is removed. The writer must still be closed.
///
/// # Safety
/// `writer` is a live writer; strings are NULL or NUL-terminated; `out_digest` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_writer_commit(
    writer: *mut ocicas_writer,
    size: i64,
    expected: *const c_char,
    labels_json: *const c_char,
    out_digest: *mut *mut c_char,
) -> ocicas_status {
    boundary(|| {
        let writer = unsafe { arg_mut(writer, "writer") }?;
        let size = optional_size(size, "size")?;
        let expected = unsafe { optional_digest(expected, "expected") }?;
        let labels = unsafe { optional_labels(labels_json) }?;
        let out_digest = unsafe { arg_out(out_digest, "out_digest") }?;
        let digest = writer.writer.commit(size, expected.as_ref(), &labels)?;
        *out_digest = into_c_string(digest.to_string());
        Ok(())
    })
}

/// Parses an optional JSON object of string labels.
pub(crate) unsafe fn optional_labels(ptr: *const c_char) -> Result<BTreeMap<String, String>> {
    if ptr.is_null() {
        return Ok(BTreeMap::new());
    }
    let json = unsafe { arg_str(ptr, "labels_json") }?;
    serde_json::from_str(json)
        .map_err(|e| invalid_argument(format!("labels_json is not an object of string labels: {e}")))
}

/// Closes and frees a writer. An uncommitted ingest stays on disk, resumable: its data is
/// fsynced and its hash state saved. NULL is `OCICAS_OK`. The handle is freed even when
/// saving fails (`OCICAS_ERR_IO`; a resume then re-hashes the data).
///
/// # Safety
/// `writer` is NULL or a writer not closed before and not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_writer_close(writer: *mut ocicas_writer) -> ocicas_status {
    boundary(|| {
        if writer.is_null() {
            return Ok(());
        }
        let writer = unsafe { Box::from_raw(writer) };
        writer.writer.close()
    })
}

/// The status of the ingest of `ref`, whether or not a writer holds it, in `*out_status`, to
/// free with `ocicas_ingest_status_free`. `OCICAS_ERR_INVALID_ARGUMENT` for a NULL argument;
/// `OCICAS_ERR_NOT_FOUND` when there is none.
///
/// # Safety
/// `engine` is a live engine; `ref` a NUL-terminated string; `out_status` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_ingest_status_get(
    engine: *const ocicas_engine,
    r#ref: *const c_char,
    out_status: *mut *mut ocicas_ingest_status,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let ref_name = unsafe { arg_str(r#ref, "ref") }?;
        let out_status = unsafe { arg_out(out_status, "out_status") }?;
        *out_status = into_handle(ocicas_ingest_status::new(&engine.engine.ingest_status(ref_name)?));
        Ok(())
    })
}

/// Frees an ingest status and everything its accessors returned. NULL is a no-op.
///
/// # Safety
/// `status` is NULL or a status returned through `out_status`, not freed before, that no
/// other thread reads during the call (never one passed to an `ocicas_ingest_list` callback).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_ingest_status_free(status: *mut ocicas_ingest_status) {
    unsafe { free_handle(status) }
}

/// The ingest's ref. NULL for a NULL status.
///
/// # Safety
/// `status` is NULL or a live status (one from `ocicas_ingest_status_get` or
/// `ocicas_writer_status` not freed yet, or the one an `ocicas_ingest_list` callback is
/// running with).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_ingest_status_ref(status: *const ocicas_ingest_status) -> *const c_char {
    unsafe { status.as_ref() }.map_or(std::ptr::null(), |status| status.ref_name.as_ptr())
}

/// The bytes the ingest holds so far. 0 for a NULL status.
///
/// # Safety
/// As `ocicas_ingest_status_ref`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_ingest_status_offset(status: *const ocicas_ingest_status) -> u64 {
    unsafe { status.as_ref() }.map_or(0, |status| status.offset)
}

/// The expected size the ingest was opened with; `OCICAS_SIZE_UNKNOWN` when none was given,
/// or for a NULL status.
///
/// # Safety
/// As `ocicas_ingest_status_ref`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_ingest_status_total(status: *const ocicas_ingest_status) -> i64 {
    unsafe { status.as_ref() }.map_or(OCICAS_SIZE_UNKNOWN, |status| status.total)
}

/// The expected digest the ingest was opened with; NULL when none was given, or for a NULL
/// status.
///
/// # Safety
/// As `ocicas_ingest_status_ref`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_ingest_status_expected(status: *const ocicas_ingest_status) -> *const c_char {
    let expected = unsafe { status.as_ref() }.and_then(|status| status.expected.as_ref());
    expected.map_or(std::ptr::null(), |digest| digest.as_ptr())
}

/// When the ingest started, in nanoseconds since the Unix epoch (saturated to the range of
/// `int64_t`). 0 for a NULL status.
///
/// # Safety
/// As `ocicas_ingest_status_ref`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_ingest_status_started_at(status: *const ocicas_ingest_status) -> i64 {
    unsafe { status.as_ref() }.map_or(0, |status| status.started_at)
}

/// When the ingest was last written, in nanoseconds since the Unix epoch; never before
/// `ocicas_ingest_status_started_at`. 0 for a NULL status.
///
/// # Safety
/// As `ocicas_ingest_status_ref`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_ingest_status_updated_at(status: *const ocicas_ingest_status) -> i64 {
    unsafe { status.as_ref() }.map_or(0, |status| status.updated_at)
}

/// Calls `callback` with the status of every ingest in progress matching the filters
/// (containerd syntax over `ref`, `expected`, `total`, `offset`; `filters` is an array of
/// `n_filters` strings, any of which may match; none matches all), sorted by ref.
///
/// # Safety
/// `engine` is a live engine; `filters` points at `n_filters` strings (NULL when 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_ingest_list(
    engine: *const ocicas_engine,
    filters: *const *const c_char,
    n_filters: usize,
    callback: ocicas_ingest_list_cb,
    user_data: *mut c_void,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let filters = unsafe { arg_filters(filters, n_filters) }?;
        let callback = callback.ok_or_else(|| invalid_argument("argument callback is NULL"))?;
        let statuses = engine.engine.ingest_list(&filters)?;
        for_each_until_stopped(statuses, |status| {
            let status = ocicas_ingest_status::new(&status);
            unsafe { callback(&status, user_data) }
        });
        Ok(())
    })
}

/// Removes the ingest of `ref`. `OCICAS_ERR_NOT_FOUND` when there is none,
/// `OCICAS_ERR_LOCKED` while a live writer holds it.
///
/// # Safety
/// `engine` is a live engine; `ref` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_ingest_abort(engine: *const ocicas_engine, r#ref: *const c_char) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let ref_name = unsafe { arg_str(r#ref, "ref") }?;
        engine.engine.ingest_abort(ref_name)
    })
}
