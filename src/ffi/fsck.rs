//! C ABI of `fsck`.

use std::ffi::c_char;

use super::engine::ocicas_engine;
use super::{arg_out, arg_ref, boundary, into_c_string, ocicas_status};
use crate::error::invalid_argument;
use crate::fsck::FsckOptions;

/// `ocicas_fsck_ext` flag: also decompress every layer of every image (gzip, zstd or plain,
/// by its media type) and check it against the DiffID its config gives it.
pub const OCICAS_FSCK_DEEP: u32 = 1;
/// `ocicas_fsck_ext` flag: check the structure only (the graph, and each reachable blob's
/// presence and size) and hash no blob: a blob whose bytes were changed in place is not found.
/// `blobsChecked` is then 0.
pub const OCICAS_FSCK_NO_HASH: u32 = 2;

/// Checks the layout, `ocicas_fsck_ext` with no flags.
///
/// # Safety
/// `engine` is a live engine; `out_report` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_fsck(engine: *const ocicas_engine, out_report: *mut *mut c_char) -> ocicas_status {
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
/// `*out_report` receives JSON `{"sound":bool,"problems":["…"],"blobsChecked":N,"reachable":N,
/// "unreachable":N,"unreachableSample":["sha256:…"],"notes":["…"]}` (free with
/// `ocicas_string_free`); each problem and note names the blob and the path of descriptors to
/// it. The blobs nothing in index.json reaches are counted in `unreachable`, the first ten in
/// digest order named in `unreachableSample`, and summed up in one note. Problems found are not an error: the status is `OCICAS_OK`
/// and `sound` is false. `OCICAS_ERR_INVALID_ARGUMENT` for NULL arguments or unknown flags,
/// `OCICAS_ERR_INVALID_IMAGE` when index.json or oci-layout cannot be read as such,
/// `OCICAS_ERR_IO`.
///
/// # Safety
/// `engine` is a live engine; `out_report` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_fsck_ext(
    engine: *const ocicas_engine,
    flags: u32,
    out_report: *mut *mut c_char,
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
        *out_report = into_c_string(report.to_json().to_string());
        Ok(())
    })
}
