//! C ABI of `gc`: garbage collection and leases. Reports and leases are JSON strings.

use std::ffi::{CString, c_char, c_int, c_void};
use std::time::Duration;

use super::cancel::{arg_cancel, ocicas_cancel};
use super::engine::ocicas_engine;
use super::{
    arg_digest, arg_options, arg_out, arg_ref, arg_str, boundary, check_options_version, for_each_until_stopped,
    into_c_string, ocicas_status,
};
use crate::error::{Result, invalid_argument};
use crate::gc::GcOptions;
use crate::lease::LeaseResource;

/// The version of `ocicas_gc_options` this header describes.
pub const OCICAS_GC_OPTIONS_VERSION: u32 = 1;

/// Options of `ocicas_gc_run`. Fill with `ocicas_gc_options_init(&options,
/// OCICAS_GC_OPTIONS_VERSION)`, then set what differs from the defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ocicas_gc_options {
    /// The layout's version, set by `ocicas_gc_options_init`; any other is refused with
    /// `OCICAS_ERR_INVALID_ARGUMENT`.
    pub version: u32,
    /// Report what would be removed, remove nothing.
    pub dry_run: bool,
    /// Ingests not updated for this many seconds are removed. 0 means the default (24 hours);
    /// a negative value removes every ingest that no live writer or lease holds.
    pub ingest_expiry_seconds: i64,
    /// A flag (from `ocicas_cancel_new`) that stops the run with `OCICAS_ERR_CANCELLED` when
    /// requested (NULL: none): between phases, between the blobs it marks, before each blob it
    /// removes (a run waiting for the store lock looks once it has it; the wait is bounded by
    /// `OCICAS_LIMIT_LOCK_TIMEOUT`). Stopped while marking, it removed nothing; stopped while sweeping, every blob it
    /// removed was garbage and went with its labels, and the rest waits for the next run. The
    /// store is consistent either way (`ocicas_fsck` finds no problem it made).
    pub cancel: *const ocicas_cancel,
    /// Blobs committed within this many seconds before the run started are kept, with
    /// everything they reference, as if a writer still meant to tag or lease them. 0 (the
    /// default) keeps none but those committed during the run and in the second before it,
    /// which are always kept; negative is `OCICAS_ERR_INVALID_ARGUMENT`.
    pub min_age_seconds: i64,
}

/// Fills `options` with the defaults of `version` (`OCICAS_GC_OPTIONS_VERSION`): not a dry
/// run, ingests expire after 24 hours, no cancel flag, no grace period. It writes only the
/// fields `version` has. `OCICAS_ERR_INVALID_ARGUMENT` for a version this library does not know.
///
/// # Safety
/// `options` is NULL (`OCICAS_ERR_INVALID_ARGUMENT`) or writable for the layout of `version`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_gc_options_init(options: *mut ocicas_gc_options, version: u32) -> ocicas_status {
    boundary(|| {
        let options = unsafe { arg_out(options, "options") }?;
        check_options_version(version, "ocicas_gc_options", OCICAS_GC_OPTIONS_VERSION)?;
        *options = ocicas_gc_options {
            version,
            dry_run: false,
            ingest_expiry_seconds: 0,
            cancel: std::ptr::null(),
            min_age_seconds: 0,
        };
        Ok(())
    })
}

/// Called once per lease by `ocicas_lease_list` with its JSON (valid only during the call):
/// `{"id":"…","createdAt":"RFC 3339","expiresAt":"RFC 3339" (absent: never),"digests":[…],
/// "ingests":[…]}`. Return 0 to go on, non-zero to stop.
pub type ocicas_lease_list_cb =
    Option<unsafe extern "C" fn(lease_json: *const c_char, user_data: *mut c_void) -> c_int>;

/// Runs a mark-and-sweep GC. Roots: index.json entries, live leases, blobs labelled
/// `ocicas.gc.root`, ingests in progress. Edges: labels `ocicas.gc.ref.*`, and the descriptors
/// of every document, read by the media type it is reached with, whatever reached it first:
/// - OCI index and manifest, OCI artifact manifest (`blobs`), Docker manifest list and schema 2
///   manifest, and `subject` in each: their descriptors; Docker schema 1 (`…manifest.v1+json`,
///   `…v1+prettyjws`): the `fsLayers[].blobSum` digests;
/// - layers (`application/vnd.oci.image.layer.*`, `application/vnd.docker.image.rootfs.*`):
///   none, they are not read;
/// - any other media type, or none (leases, labels, ingests): a blob that is JSON within the
///   JSON limit (whitespace before it allowed) is parsed as the type it names or shows, and
///   failing that, every object in it with a `mediaType`, a `digest` and a `size` is followed.
///   A blob that is not JSON is a leaf.
///
/// A reachable index or manifest, or a blob of a media type without a parser, that cannot be
/// read, does not parse, has another size than declared or nests deeper than the walk depth
/// limit makes the run remove nothing and fail with `OCICAS_ERR_INVALID_IMAGE` naming it and
/// the path to it. A missing child is reported, not fatal. Safe while other processes write: a
/// blob committed (or committed again) within about a second of the GC's start, or during it, is
/// kept with everything it references, so a writer may commit first and tag or lease next;
/// `min_age_seconds` keeps older ones too. `options` may be NULL (the defaults);
/// `OCICAS_ERR_INVALID_ARGUMENT` when its version is not `OCICAS_GC_OPTIONS_VERSION`. `OCICAS_ERR_CANCELLED` when
/// the options' `cancel` was requested.
/// `*out_report` receives JSON: `{"dryRun","blobsRemoved","bytesRemoved","blobsKept",
/// "bytesKept","missing":[…],"ingestsRemoved":[refs],"leasesRemoved","tempFilesRemoved",
/// "labelsRemoved","notRemoved":[…]}`; free it with `ocicas_string_free`. `blobsKept` counts the
/// blobs stored when the run started that it kept. `bytesKept` and `bytesRemoved` are the
/// lengths of the kept and removed blob files as stored (`st_size`), not what referrers declare
/// and not the blocks allocated: a sparse file counts its holes, a small blob its bytes (`du`
/// shows allocated space). `notRemoved` names, one line each, what the sweep
/// could not remove and left (private state with something planted in it; an entry of `blobs/`
/// named as a blob that is not a regular file, such as a directory planted during the run):
/// the rest is swept and the call returns `OCICAS_OK`.
///
/// # Safety
/// `engine` is a live engine; `options` NULL or valid; `out_report` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_gc_run(
    engine: *const ocicas_engine,
    options: *const ocicas_gc_options,
    out_report: *mut *mut c_char,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let out_report = unsafe { arg_out(out_report, "out_report") }?;
        let mut gc_options = GcOptions::default();
        if let Some(options) = unsafe { arg_options(options, "ocicas_gc_options", OCICAS_GC_OPTIONS_VERSION) }? {
            gc_options.dry_run = options.dry_run;
            gc_options.ingest_expiry = match options.ingest_expiry_seconds {
                0 => gc_options.ingest_expiry,
                seconds if seconds < 0 => Duration::ZERO,
                seconds => Duration::from_secs(seconds.unsigned_abs()),
            };
            gc_options.cancel = unsafe { arg_cancel(options.cancel) };
            gc_options.min_age = match u64::try_from(options.min_age_seconds) {
                Ok(seconds) => Duration::from_secs(seconds),
                Err(_) => return Err(invalid_argument("min_age_seconds is negative")),
            };
        }
        *out_report = into_c_string(engine.engine.gc(&gc_options)?.to_json().to_string());
        Ok(())
    })
}

/// Creates a lease named `id` (NULL: a generated id) that expires after `expiry_seconds`
/// (negative: never). `*out_id` receives its id (free with `ocicas_string_free`).
/// `OCICAS_ERR_ALREADY_EXISTS` when the id is taken; `OCICAS_ERR_INVALID_ARGUMENT` for an id
/// outside 1–128 of [A-Za-z0-9._-], or an expiry past the end of year 9999 (the last an RFC 3339
/// time can name).
///
/// # Safety
/// `engine` is a live engine; `id` NULL or NUL-terminated; `out_id` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_lease_new(
    engine: *const ocicas_engine,
    id: *const c_char,
    expiry_seconds: i64,
    out_id: *mut *mut c_char,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let id = if id.is_null() { None } else { Some(unsafe { arg_str(id, "id") }?) };
        let out_id = unsafe { arg_out(out_id, "out_id") }?;
        let expiry = u64::try_from(expiry_seconds).ok().map(Duration::from_secs);
        *out_id = into_c_string(engine.engine.lease_new(id, expiry)?.id);
        Ok(())
    })
}

/// Adds the blob `digest` to lease `id` (idempotent); GC keeps it while the lease lives.
/// `OCICAS_ERR_NOT_FOUND` for an unknown lease.
///
/// # Safety
/// `engine` is a live engine; `id` and `digest` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_lease_add_blob(
    engine: *const ocicas_engine,
    id: *const c_char,
    digest: *const c_char,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let id = unsafe { arg_str(id, "id") }?;
        let digest = unsafe { arg_digest(digest, "digest") }?;
        engine.engine.lease_add(id, LeaseResource::Blob(digest))
    })
}

/// Adds the ingest of `ref` to lease `id` (idempotent); GC keeps that ingest while the lease
/// lives, however old it is.
///
/// # Safety
/// `engine` is a live engine; `id` and `ref` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_lease_add_ingest(
    engine: *const ocicas_engine,
    id: *const c_char,
    r#ref: *const c_char,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let id = unsafe { arg_str(id, "id") }?;
        let ref_name = unsafe { arg_str(r#ref, "ref") }?;
        engine.engine.lease_add(id, LeaseResource::Ingest(ref_name.to_owned()))
    })
}

/// Releases lease `id`. `OCICAS_ERR_NOT_FOUND` when there is none.
///
/// # Safety
/// `engine` is a live engine; `id` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_lease_release(engine: *const ocicas_engine, id: *const c_char) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let id = unsafe { arg_str(id, "id") }?;
        engine.engine.lease_release(id)
    })
}

/// Calls `callback` with the JSON of every lease (live or expired), sorted by id.
///
/// # Safety
/// `engine` is a live engine; `callback` a valid function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_lease_list(
    engine: *const ocicas_engine,
    callback: ocicas_lease_list_cb,
    user_data: *mut c_void,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let callback = callback.ok_or_else(|| invalid_argument("argument callback is NULL"))?;
        let leases = engine
            .engine
            .lease_list()?
            .into_iter()
            .map(|lease| CString::new(lease.to_json().to_string()).map_err(|e| invalid_argument(e.to_string())))
            .collect::<Result<Vec<_>>>()?;
        for_each_until_stopped(leases, |json| unsafe { callback(json.as_ptr(), user_data) });
        Ok(())
    })
}
