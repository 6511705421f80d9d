//! C ABI of `cancel`: a flag the caller sets, from any thread, to stop a long operation it was
//! given to (through the `cancel` field of its options, or its `cancel` argument).

use super::{arg_out, arg_ref, boundary, free_handle, into_handle, ocicas_status};
use crate::cancel::Cancel;

/// A cancellation flag. Give it to push, pull, push-layer, GC, archive import and export, and
/// layer streams; `ocicas_cancel_request` makes each of them stop at its next check (between
/// chunks, blobs, requests and phases) with `OCICAS_ERR_CANCELLED`, storing no partial blob (a
/// resumable ingest at most). Thread-safe: one flag may be given to several operations at once
/// and requested from any thread while they run. A requested flag stays requested.
pub struct ocicas_cancel {
    cancel: Cancel,
}

/// A new flag, not requested, in `*out_cancel` (free with `ocicas_cancel_free`).
///
/// # Safety
/// `out_cancel` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_cancel_new(out_cancel: *mut *mut ocicas_cancel) -> ocicas_status {
    boundary(|| {
        let out_cancel = unsafe { arg_out(out_cancel, "out_cancel") }?;
        *out_cancel = into_handle(ocicas_cancel { cancel: Cancel::new() });
        Ok(())
    })
}

/// Requests the stop: every operation given `cancel` stops at its next check. Callable from any
/// thread, while the operations run; requesting again does nothing more.
///
/// # Safety
/// `cancel` is a live flag.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_cancel_request(cancel: *const ocicas_cancel) -> ocicas_status {
    boundary(|| {
        unsafe { arg_ref(cancel, "cancel") }?.cancel.request();
        Ok(())
    })
}

/// Frees a flag. NULL is a no-op. A call given the flag takes its own hold on it when it
/// starts, so the flag may be freed while such a call runs (or while a layer stream made with
/// it lives): that call can then no longer be stopped, and ends as it would have. The free
/// must not race with `ocicas_cancel_request` of the same flag, nor with the start of a call
/// given it, on another thread: free it after those returned. A requested flag stays
/// requested, so a flag is not reused for a new operation once requested: make a new one.
///
/// # Safety
/// `cancel` is NULL or a flag not freed before, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_cancel_free(cancel: *mut ocicas_cancel) {
    unsafe { free_handle(cancel) }
}

/// The flag an options field or argument names; NULL is a flag nobody can request.
///
/// # Safety
/// `cancel` is NULL or a live flag.
pub(super) unsafe fn arg_cancel(cancel: *const ocicas_cancel) -> Cancel {
    unsafe { cancel.as_ref() }.map_or_else(Cancel::default, |cancel| cancel.cancel.clone())
}
