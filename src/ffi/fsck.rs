//! C ABI of `fsck`.

use std::ffi::c_char;

use super::engine::ocicas_engine;
use super::{arg_out, arg_ref, boundary, into_c_string, ocicas_status};

/// Checks the layout: every blob hashes to its name; every descriptor reachable from index.json
/// is stored with its declared size and parses as its media type. `*out_report` receives JSON
/// `{"sound":bool,"problems":["…"],"blobsChecked":N,"reachable":N}` (free with
/// `ocicas_string_free`). Problems found are not an error: the status is `OCICAS_OK` and
/// `sound` is false.
///
/// # Safety
/// `engine` is a live engine; `out_report` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_fsck(engine: *const ocicas_engine, out_report: *mut *mut c_char) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let out_report = unsafe { arg_out(out_report, "out_report") }?;
        let report = engine.engine.fsck()?;
        *out_report = into_c_string(report.to_json().to_string());
        Ok(())
    })
}
