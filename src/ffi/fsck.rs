//! C ABI of `fsck`: the report is a typed value read with the `ocicas_fsck_report_*`
//! accessors.

use super::descriptor::ocicas_string_list;
use super::engine::ocicas_engine;
use super::{arg_out, arg_ref, boundary, free_handle, into_handle, ocicas_status};
use crate::error::invalid_argument;
use crate::fsck::{FsckOptions, FsckReport};

/// What `ocicas_fsck_ext` found. Problems are not an error: `ocicas_fsck_report_sound` is
/// false and the problems say why; each problem and note names the blob and the path of
/// descriptors to it. Immutable: any number of threads may read one at once.
pub struct ocicas_fsck_report {
    sound: bool,
    problems: ocicas_string_list,
    blobs_checked: u64,
    reachable: u64,
    unreachable: u64,
    unreachable_sample: ocicas_string_list,
    notes: ocicas_string_list,
}

impl ocicas_fsck_report {
    fn new(report: &FsckReport) -> Self {
        ocicas_fsck_report {
            sound: report.is_sound(),
            problems: ocicas_string_list::new(&report.problems),
            blobs_checked: report.blobs_checked as u64,
            reachable: report.reachable as u64,
            unreachable: report.unreachable as u64,
            unreachable_sample: ocicas_string_list::new(
                &report.unreachable_sample.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ),
            notes: ocicas_string_list::new(&report.notes),
        }
    }
}

/// `ocicas_fsck_ext` flag: also decompress every layer of every image (gzip, zstd or plain,
/// by its media type) and check it against the DiffID its config gives it.
pub const OCICAS_FSCK_DEEP: u32 = 1;
/// `ocicas_fsck_ext` flag: check the structure only (the graph, and each reachable blob's
/// presence and size) and hash no blob: a blob whose bytes were changed in place is not found.
/// `ocicas_fsck_report_blobs_checked` is then 0.
pub const OCICAS_FSCK_NO_HASH: u32 = 2;

/// Checks the layout, `ocicas_fsck_ext` with no flags.
///
/// # Safety
/// `engine` is a live engine; `out_report` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_fsck(
    engine: *const ocicas_engine,
    out_report: *mut *mut ocicas_fsck_report,
) -> ocicas_status {
    unsafe { ocicas_fsck_ext(engine, 0, out_report) }
}

/// Checks the layout: every blob hashes to its name; every descriptor reachable from index.json
/// (OCI and Docker indexes and manifests, OCI artifact manifests, Docker schema 1, and the
/// descriptor-shaped objects of JSON of unknown media types) is stored with its declared size
/// and parses as the media type it is reached with; descriptors' `data` match their blobs; ref
/// names are unique; image manifests have a config and layers of the right kinds and a config
/// with one DiffID per layer. index.json is read and walked under the store's shared lock, so
/// concurrent tags and GCs never show as problems. `flags` is 0 or any of `OCICAS_FSCK_DEEP` and
/// `OCICAS_FSCK_NO_HASH` or'ed.
/// `*out_report` receives the report, to free with `ocicas_fsck_report_free`; each problem and
/// note names the blob and the path of descriptors to it. The blobs nothing in index.json
/// reaches are counted (`ocicas_fsck_report_unreachable`), the first ten in digest order named
/// (`ocicas_fsck_report_unreachable_sample`), and summed up in one note. Problems found are not an error: the
/// status is `OCICAS_OK` and `ocicas_fsck_report_sound` is false. `OCICAS_ERR_INVALID_ARGUMENT` for NULL arguments or unknown flags,
/// `OCICAS_ERR_INVALID_IMAGE` when index.json or oci-layout cannot be read as such,
/// `OCICAS_ERR_IO`.
///
/// # Safety
/// `engine` is a live engine; `out_report` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_fsck_ext(
    engine: *const ocicas_engine,
    flags: u32,
    out_report: *mut *mut ocicas_fsck_report,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let out_report = unsafe { arg_out(out_report, "out_report") }?;
        if flags & !(OCICAS_FSCK_DEEP | OCICAS_FSCK_NO_HASH) != 0 {
            return Err(invalid_argument(format!("unknown flags {flags:#x} for ocicas_fsck_ext")));
        }
        let report = engine.engine.fsck_with(&FsckOptions {
            deep: flags & OCICAS_FSCK_DEEP != 0,
            no_hash: flags & OCICAS_FSCK_NO_HASH != 0,
        })?;
        *out_report = into_handle(ocicas_fsck_report::new(&report));
        Ok(())
    })
}

/// Frees a report and everything its accessors returned. NULL is a no-op.
///
/// # Safety
/// `report` is NULL or a report not freed before, that no other thread reads during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_fsck_report_free(report: *mut ocicas_fsck_report) {
    unsafe { free_handle(report) }
}

/// Whether the layout is sound: no problem was found. false for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_fsck_report_sound(report: *const ocicas_fsck_report) -> bool {
    unsafe { report.as_ref() }.is_some_and(|report| report.sound)
}

/// The problems found, one line each (empty when sound), owned by the report. NULL for a NULL
/// report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_fsck_report_problems(report: *const ocicas_fsck_report) -> *const ocicas_string_list {
    unsafe { report.as_ref() }.map_or(std::ptr::null(), |report| &report.problems)
}

/// Notes worth knowing that are not problems (unreachable blobs, manifests an index lists that
/// are not stored, index entries that are not images), owned by the report. NULL for a NULL
/// report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_fsck_report_notes(report: *const ocicas_fsck_report) -> *const ocicas_string_list {
    unsafe { report.as_ref() }.map_or(std::ptr::null(), |report| &report.notes)
}

/// How many blobs were hashed (0 with `OCICAS_FSCK_NO_HASH`). 0 for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_fsck_report_blobs_checked(report: *const ocicas_fsck_report) -> u64 {
    unsafe { report.as_ref() }.map_or(0, |report| report.blobs_checked)
}

/// How many distinct blobs are reachable from index.json. 0 for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_fsck_report_reachable(report: *const ocicas_fsck_report) -> u64 {
    unsafe { report.as_ref() }.map_or(0, |report| report.reachable)
}

/// How many stored blobs nothing in index.json reaches (GC removes them unless a lease or label
/// keeps them). 0 for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_fsck_report_unreachable(report: *const ocicas_fsck_report) -> u64 {
    unsafe { report.as_ref() }.map_or(0, |report| report.unreachable)
}

/// The first ten unreachable blobs in digest order, owned by the report. NULL for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_fsck_report_unreachable_sample(
    report: *const ocicas_fsck_report,
) -> *const ocicas_string_list {
    unsafe { report.as_ref() }.map_or(std::ptr::null(), |report| &report.unreachable_sample)
}
