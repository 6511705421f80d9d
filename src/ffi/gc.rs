//! C ABI of `gc`: garbage collection and leases. The GC report and each lease are typed
//! values read with the `ocicas_gc_report_*` and `ocicas_lease_*` accessors.

use std::ffi::{CString, c_char, c_int, c_void};
use std::time::Duration;

use super::cancel::{arg_cancel, ocicas_cancel};
use super::descriptor::ocicas_string_list;
use super::engine::ocicas_engine;
use super::{
    arg_digest, arg_options, arg_out, arg_ref, arg_str, boundary, c_string, check_options_version,
    for_each_until_stopped, free_handle, into_c_string, into_handle, ocicas_status, unix_nanos,
};
use crate::error::invalid_argument;
use crate::gc::{GcOptions, GcReport};
use crate::lease::{Lease, LeaseResource};

/// What `ocicas_gc_run` removed and kept, read with the `ocicas_gc_report_*` accessors.
/// Immutable: any number of threads may read one at once.
pub struct ocicas_gc_report {
    dry_run: bool,
    blobs_removed: u64,
    bytes_removed: u64,
    blobs_kept: u64,
    bytes_kept: u64,
    missing: ocicas_string_list,
    ingests_removed: ocicas_string_list,
    leases_removed: u64,
    temp_files_removed: u64,
    labels_removed: u64,
    not_removed: ocicas_string_list,
}

impl ocicas_gc_report {
    fn new(report: &GcReport) -> Self {
        ocicas_gc_report {
            dry_run: report.dry_run,
            blobs_removed: report.blobs_removed,
            bytes_removed: report.bytes_removed,
            blobs_kept: report.blobs_kept,
            bytes_kept: report.bytes_kept,
            missing: ocicas_string_list::new(&report.missing),
            ingests_removed: ocicas_string_list::new(&report.ingests_removed),
            leases_removed: report.leases_removed,
            temp_files_removed: report.temp_files_removed,
            labels_removed: report.labels_removed,
            not_removed: ocicas_string_list::new(&report.not_removed),
        }
    }
}

/// A lease, read with the `ocicas_lease_*` accessors; `ocicas_lease_list` lends one to its
/// callback for the call only. Immutable.
pub struct ocicas_lease {
    id: CString,
    created_at: i64,
    /// None: it never expires.
    expires_at: Option<i64>,
    digests: ocicas_string_list,
    ingests: ocicas_string_list,
}

impl ocicas_lease {
    fn new(lease: &Lease) -> Self {
        ocicas_lease {
            id: c_string(&lease.id),
            created_at: unix_nanos(lease.created_at),
            expires_at: lease.expires_at.map(unix_nanos),
            digests: ocicas_string_list::new(&lease.digests.iter().map(ToString::to_string).collect::<Vec<_>>()),
            ingests: ocicas_string_list::new(&lease.ingests),
        }
    }
}

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

/// Called once per lease by `ocicas_lease_list` with the lease, borrowed for the call only
/// (copy what you keep; never free it). Return 0 to go on, non-zero to stop.
pub type ocicas_lease_list_cb =
    Option<unsafe extern "C" fn(lease: *const ocicas_lease, user_data: *mut c_void) -> c_int>;

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
/// `*out_report` receives the report (read with the `ocicas_gc_report_*` accessors), to free
/// with `ocicas_gc_report_free`. `blobs_kept` counts the blobs stored when the run started that
/// it kept. `bytes_kept` and `bytes_removed` are the lengths of the kept and removed blob files
/// as stored (`st_size`), not what referrers declare and not the blocks allocated: a sparse file
/// counts its holes (`du` shows allocated space). `not_removed` names, one line each, what the
/// sweep could not remove and left (private state with something planted in it; an entry of
/// `blobs/` named as a blob that is not a regular file, such as a directory planted during the
/// run): the rest is swept and the call returns `OCICAS_OK`.
///
/// # Safety
/// `engine` is a live engine; `options` NULL or valid; `out_report` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_gc_run(
    engine: *const ocicas_engine,
    options: *const ocicas_gc_options,
    out_report: *mut *mut ocicas_gc_report,
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
        *out_report = into_handle(ocicas_gc_report::new(&engine.engine.gc(&gc_options)?));
        Ok(())
    })
}

/// Frees a GC report and everything its accessors returned. NULL is a no-op.
///
/// # Safety
/// `report` is NULL or a report not freed before, that no other thread reads during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_gc_report_free(report: *mut ocicas_gc_report) {
    unsafe { free_handle(report) }
}

/// Whether the run was a dry run (it removed nothing; the counts say what it would have
/// removed). false for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_gc_report_dry_run(report: *const ocicas_gc_report) -> bool {
    unsafe { report.as_ref() }.is_some_and(|report| report.dry_run)
}

/// How many blobs the run removed. 0 for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_gc_report_blobs_removed(report: *const ocicas_gc_report) -> u64 {
    unsafe { report.as_ref() }.map_or(0, |report| report.blobs_removed)
}

/// The removed blobs' sizes on disk, in bytes. 0 for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_gc_report_bytes_removed(report: *const ocicas_gc_report) -> u64 {
    unsafe { report.as_ref() }.map_or(0, |report| report.bytes_removed)
}

/// How many of the blobs stored when the run started it kept (those committed during it are
/// kept too, and not counted). 0 for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_gc_report_blobs_kept(report: *const ocicas_gc_report) -> u64 {
    unsafe { report.as_ref() }.map_or(0, |report| report.blobs_kept)
}

/// The kept blobs' sizes on disk (not what their referrers declare), in bytes. 0 for a NULL
/// report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_gc_report_bytes_kept(report: *const ocicas_gc_report) -> u64 {
    unsafe { report.as_ref() }.map_or(0, |report| report.bytes_kept)
}

/// The referenced blobs that are not stored, one line each naming the blob and what
/// references it, owned by the report. NULL for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_gc_report_missing(report: *const ocicas_gc_report) -> *const ocicas_string_list {
    unsafe { report.as_ref() }.map_or(std::ptr::null(), |report| &report.missing)
}

/// The refs of the ingests removed, owned by the report. NULL for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_gc_report_ingests_removed(
    report: *const ocicas_gc_report,
) -> *const ocicas_string_list {
    unsafe { report.as_ref() }.map_or(std::ptr::null(), |report| &report.ingests_removed)
}

/// How many expired leases the run removed. 0 for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_gc_report_leases_removed(report: *const ocicas_gc_report) -> u64 {
    unsafe { report.as_ref() }.map_or(0, |report| report.leases_removed)
}

/// How many temporary files left by stopped writers the run removed. 0 for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_gc_report_temp_files_removed(report: *const ocicas_gc_report) -> u64 {
    unsafe { report.as_ref() }.map_or(0, |report| report.temp_files_removed)
}

/// How many label files of blobs that are not stored the run removed. 0 for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_gc_report_labels_removed(report: *const ocicas_gc_report) -> u64 {
    unsafe { report.as_ref() }.map_or(0, |report| report.labels_removed)
}

/// What the sweep meant to remove and could not (an ingest with a directory planted in it,
/// say), one line each, owned by the report; the rest of the sweep went on and `ocicas_fsck`
/// says why. NULL for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_gc_report_not_removed(report: *const ocicas_gc_report) -> *const ocicas_string_list {
    unsafe { report.as_ref() }.map_or(std::ptr::null(), |report| &report.not_removed)
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

/// Calls `callback` with every lease (live or expired), sorted by id, each borrowed for the
/// call only. `OCICAS_ERR_INVALID_ARGUMENT` for a NULL engine or callback.
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
        for_each_until_stopped(engine.engine.lease_list()?, |lease| {
            let lease = ocicas_lease::new(&lease);
            unsafe { callback(&lease, user_data) }
        });
        Ok(())
    })
}

/// The lease's id. NULL for a NULL lease.
///
/// # Safety
/// `lease` is NULL or the one an `ocicas_lease_list` callback is running with.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_lease_id(lease: *const ocicas_lease) -> *const c_char {
    unsafe { lease.as_ref() }.map_or(std::ptr::null(), |lease| lease.id.as_ptr())
}

/// When the lease was made, in nanoseconds since the Unix epoch. 0 for a NULL lease.
///
/// # Safety
/// As `ocicas_lease_id`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_lease_created_at(lease: *const ocicas_lease) -> i64 {
    unsafe { lease.as_ref() }.map_or(0, |lease| lease.created_at)
}

/// Whether the lease expires at all (false: it lives until released). false for a NULL lease.
///
/// # Safety
/// As `ocicas_lease_id`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_lease_expires(lease: *const ocicas_lease) -> bool {
    unsafe { lease.as_ref() }.is_some_and(|lease| lease.expires_at.is_some())
}

/// When the lease expires, in nanoseconds since the Unix epoch, saturated to `INT64_MAX` for
/// an expiry after the year 2262; 0 when it never expires (see `ocicas_lease_expires`) or for
/// a NULL lease.
///
/// # Safety
/// As `ocicas_lease_id`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_lease_expires_at(lease: *const ocicas_lease) -> i64 {
    unsafe { lease.as_ref() }.and_then(|lease| lease.expires_at).unwrap_or(0)
}

/// The digests of the blobs the lease keeps, owned by the lease. NULL for a NULL lease.
///
/// # Safety
/// As `ocicas_lease_id`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_lease_digests(lease: *const ocicas_lease) -> *const ocicas_string_list {
    unsafe { lease.as_ref() }.map_or(std::ptr::null(), |lease| &lease.digests)
}

/// The refs of the ingests the lease keeps, owned by the lease. NULL for a NULL lease.
///
/// # Safety
/// As `ocicas_lease_id`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_lease_ingests(lease: *const ocicas_lease) -> *const ocicas_string_list {
    unsafe { lease.as_ref() }.map_or(std::ptr::null(), |lease| &lease.ingests)
}
