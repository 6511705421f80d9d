//! C ABI of `refs`: named references in index.json. Descriptors are put and got as typed
//! `ocicas_descriptor` values; `ocicas_ref_put_json` also takes one as JSON, for the fields
//! `ocicas_descriptor_new` does not set (annotations, platform, URLs).

use std::ffi::{c_char, c_int, c_void};

use super::descriptor::ocicas_descriptor;
use super::engine::ocicas_engine;
use super::{arg_out, arg_ref, arg_str, boundary, c_string, for_each_until_stopped, into_handle, ocicas_status};
use crate::error::invalid_argument;
use crate::spec::Descriptor;

/// Called once per reference by `ocicas_ref_list` with its name and descriptor, both borrowed
/// for the call only (copy what you keep). Return 0 to go on, non-zero to stop listing.
pub type ocicas_ref_list_cb = Option<
    unsafe extern "C" fn(name: *const c_char, descriptor: *const ocicas_descriptor, user_data: *mut c_void) -> c_int,
>;

/// Points reference `name` at `descriptor` (one from `ocicas_ref_get`, `ocicas_blob_put_json`,
/// `ocicas_descriptor_new`, an image's parts, …, with its annotations and platform). The blob must be
/// stored with that size (`OCICAS_ERR_NOT_FOUND` / `OCICAS_ERR_SIZE_MISMATCH`) and, when the
/// media type is a document's (an index, manifest or config, OCI or Docker), parse as that type
/// (`OCICAS_ERR_INVALID_IMAGE`, or `OCICAS_ERR_TOO_LARGE` over the JSON limit); blobs of other
/// media types are not read. Putting an equal descriptor again is `OCICAS_OK` (a name another
/// tool left on several equal entries then ends on one); a different one is
/// `OCICAS_ERR_CLOBBER` unless `force`. `OCICAS_ERR_INVALID_ARGUMENT` for a NULL argument or a
/// name outside the OCI ref.name grammar.
///
/// # Safety
/// `engine` is a live engine; `name` a NUL-terminated string; `descriptor` a live descriptor.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_ref_put(
    engine: *const ocicas_engine,
    name: *const c_char,
    descriptor: *const ocicas_descriptor,
    force: bool,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let name = unsafe { arg_str(name, "name") }?;
        let descriptor = unsafe { arg_ref(descriptor, "descriptor") }?;
        engine.engine.ref_put(name, descriptor.value(), force)
    })
}

/// `ocicas_ref_put` with the descriptor as JSON (`mediaType`, `digest`, `size`, optional
/// `annotations`, `platform`, `urls`, …): for one with fields `ocicas_descriptor_new` does not
/// set. Its status codes, and `OCICAS_ERR_INVALID_ARGUMENT` for JSON that is not a descriptor.
///
/// # Safety
/// `engine` is a live engine; `name` and `descriptor_json` are NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_ref_put_json(
    engine: *const ocicas_engine,
    name: *const c_char,
    descriptor_json: *const c_char,
    force: bool,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let name = unsafe { arg_str(name, "name") }?;
        let json = unsafe { arg_str(descriptor_json, "descriptor_json") }?;
        let descriptor: Descriptor = serde_json::from_str(json)
            .map_err(|e| invalid_argument(format!("descriptor_json is not an OCI descriptor: {e}")))?;
        engine.engine.ref_put(name, &descriptor, force)
    })
}

/// The descriptor reference `name` points at (the index.json entry, its annotations included)
/// in `*out_descriptor`, to free with `ocicas_descriptor_free`. `OCICAS_ERR_INVALID_ARGUMENT`
/// for a NULL argument; `OCICAS_ERR_NOT_FOUND` when there is no such reference.
///
/// # Safety
/// `engine` is a live engine; `name` a NUL-terminated string; `out_descriptor` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_ref_get(
    engine: *const ocicas_engine,
    name: *const c_char,
    out_descriptor: *mut *mut ocicas_descriptor,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let name = unsafe { arg_str(name, "name") }?;
        let out_descriptor = unsafe { arg_out(out_descriptor, "out_descriptor") }?;
        let descriptor = engine.engine.ref_get(name)?;
        *out_descriptor = into_handle(ocicas_descriptor::new(&descriptor));
        Ok(())
    })
}

/// Removes reference `name`; removing an absent reference is `OCICAS_OK`.
///
/// # Safety
/// `engine` is a live engine; `name` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_ref_delete(engine: *const ocicas_engine, name: *const c_char) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let name = unsafe { arg_str(name, "name") }?;
        engine.engine.ref_delete(name)
    })
}

/// Calls `callback` once per reference in index.json order, with `user_data` passed through.
/// `OCICAS_ERR_INVALID_ARGUMENT` for a NULL `engine` or `callback`.
///
/// # Safety
/// `engine` is a live engine; `callback` is a valid function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_ref_list(
    engine: *const ocicas_engine,
    callback: ocicas_ref_list_cb,
    user_data: *mut c_void,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let callback = callback.ok_or_else(|| invalid_argument("argument callback is NULL"))?;
        let refs = engine.engine.ref_list()?;
        for_each_until_stopped(refs, |(name, descriptor)| {
            let (name, descriptor) = (c_string(&name), ocicas_descriptor::new(&descriptor));
            unsafe { callback(name.as_ptr(), &descriptor, user_data) }
        });
        Ok(())
    })
}
