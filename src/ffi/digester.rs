//! C ABI of the streaming digester: the core's `Hasher`, so a caller can compute the `expected`
//! digest it passes to `ocicas_writer_commit` without a hash library of its own.

use std::ffi::c_char;

use super::{arg_mut, arg_out, arg_slice, arg_str, boundary, free_handle, into_c_string, into_handle, ocicas_status};
use crate::digest::{Algorithm, Hasher};
use crate::error::{Error, invalid_argument};

/// A running digest of bytes fed in pieces. Use it from one thread at a time.
pub struct ocicas_digester {
    /// `None` once finished: the digest was handed out and nothing more may be hashed.
    hasher: Option<Hasher>,
}

fn already_finished() -> Error {
    invalid_argument("the digester was already finished")
}

/// A new digester of `algorithm`, "sha256" or "sha512", in `*out_digester` (free with
/// `ocicas_digester_free`). `OCICAS_ERR_INVALID_ARGUMENT` for any other algorithm.
///
/// # Safety
/// `algorithm` is a NUL-terminated string; `out_digester` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_digester_new(
    algorithm: *const c_char,
    out_digester: *mut *mut ocicas_digester,
) -> ocicas_status {
    boundary(|| {
        let algorithm = Algorithm::from_name(unsafe { arg_str(algorithm, "algorithm") }?)?;
        let out_digester = unsafe { arg_out(out_digester, "out_digester") }?;
        *out_digester = into_handle(ocicas_digester { hasher: Some(Hasher::new(algorithm)) });
        Ok(())
    })
}

/// Hashes `len` more bytes. `OCICAS_ERR_INVALID_ARGUMENT` after `ocicas_digester_finish`.
///
/// # Safety
/// `digester` is a live digester; `data` points at `len` readable bytes (NULL when `len` is 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_digester_update(
    digester: *mut ocicas_digester,
    data: *const u8,
    len: usize,
) -> ocicas_status {
    boundary(|| {
        let digester = unsafe { arg_mut(digester, "digester") }?;
        let data = unsafe { arg_slice(data, len, "data") }?;
        digester.hasher.as_mut().ok_or_else(already_finished)?.update(data);
        Ok(())
    })
}

/// The digest of everything hashed, "sha256:<hex>" or "sha512:<hex>", in `*out_digest` (free
/// with `ocicas_string_free`). The digester is finished then: a second finish or an update is
/// `OCICAS_ERR_INVALID_ARGUMENT`. It must still be freed.
///
/// # Safety
/// `digester` is a live digester; `out_digest` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_digester_finish(
    digester: *mut ocicas_digester,
    out_digest: *mut *mut c_char,
) -> ocicas_status {
    boundary(|| {
        let digester = unsafe { arg_mut(digester, "digester") }?;
        let out_digest = unsafe { arg_out(out_digest, "out_digest") }?;
        let hasher = digester.hasher.take().ok_or_else(already_finished)?;
        *out_digest = into_c_string(hasher.finish().to_string());
        Ok(())
    })
}

/// Frees a digester, finished or not. NULL is a no-op.
///
/// # Safety
/// `digester` is NULL or a digester not freed before and not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_digester_free(digester: *mut ocicas_digester) {
    unsafe { free_handle(digester) }
}
