//! The C ABI. Each file mirrors a core module and only converts: C arguments to Rust values,
//! results to status codes and C outputs. Every exported function runs inside `boundary`, which
//! turns errors into status codes and panics into `OCICAS_ERR_PANIC`, and checks its pointers
//! with the `arg_*` helpers before any work, so NULL is `OCICAS_ERR_INVALID_ARGUMENT`.

#![allow(non_camel_case_types)]

// cbindgen writes the header's functions in the order of these lines: the order a user meets
// them. First the engine, errors and ownership; then one capability after another. Each group
// is its own paragraph so that rustfmt keeps the order.
mod engine;

mod error;

mod status;

mod digester;

mod content;

mod refs;

mod ingest;

mod stream;

// The reader of a stored layer's tar, after the layer streams that write layers.
mod layer_reader;

// After the layer streams: `ocicas_image_append` takes their output.
mod image;

// The images a runtime resolves, after the image operations.
mod resolve;
// An image's graph walked, and one of its documents read, after the image resolved whole.
mod walk;
// The descriptors and lists of typed results, after the image whose parts they first were.
mod descriptor;

mod cancel;

mod gc;

mod fsck;

mod archive;
mod archive_items;

mod registry;

use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{SystemTime, UNIX_EPOCH};

pub use error::ocicas_status;
use error::set_last_error;

use crate::digest::Digest;
use crate::error::{Error, Result, invalid_argument};

/// Runs an exported function's body: `Ok` is `OCICAS_OK`; an error sets the thread's last error
/// message and returns its status; a panic is caught and reported as `OCICAS_ERR_PANIC`.
pub(crate) fn boundary(body: impl FnOnce() -> Result<()>) -> ocicas_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => ocicas_status::OCICAS_OK,
        Ok(Err(err)) => {
            set_last_error(err.message());
            err.kind().into()
        }
        Err(payload) => {
            let reason = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            set_last_error(&format!("internal error (panic) in ocicas: {reason}"));
            ocicas_status::OCICAS_ERR_PANIC
        }
    }
}

fn null_argument(name: &str) -> Error {
    invalid_argument(format!("argument {name} is NULL"))
}

/// Borrows a handle or struct the caller passed in.
///
/// # Safety
/// `ptr` is NULL or points at a live `T` for the duration of the call.
pub(crate) unsafe fn arg_ref<'a, T>(ptr: *const T, name: &str) -> Result<&'a T> {
    unsafe { ptr.as_ref() }.ok_or_else(|| null_argument(name))
}

/// Checks an output pointer; the caller writes it last, only on success.
///
/// # Safety
/// `ptr` is NULL or points at writable memory for a `T`.
pub(crate) unsafe fn arg_out<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T> {
    unsafe { ptr.as_mut() }.ok_or_else(|| null_argument(name))
}

/// Borrows a handle the caller passed in for mutation.
///
/// # Safety
/// `ptr` is NULL or points at a live `T` that no other thread uses during the call.
pub(crate) unsafe fn arg_mut<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T> {
    unsafe { ptr.as_mut() }.ok_or_else(|| null_argument(name))
}

/// Borrows an options struct the caller passed in (NULL: `None`, the defaults). Every options
/// struct starts with a `uint32_t version`, read alone first: only a version this library
/// knows (`known`, the `*_VERSION` of the header it was built from) says the rest of the
/// layout is the one `T` describes. A later version only appends fields, so a library that
/// knows several reads, for each, just the fields that version has.
///
/// # Safety
/// `ptr` is NULL or points at an options struct whose first field is its `uint32_t` version,
/// as large as that version's layout.
pub(crate) unsafe fn arg_options<'a, T>(ptr: *const T, name: &str, known: u32) -> Result<Option<&'a T>> {
    if ptr.is_null() {
        return Ok(None);
    }
    let version = unsafe { ptr.cast::<u32>().read() };
    check_options_version(version, name, known)?;
    Ok(Some(unsafe { &*ptr }))
}

/// `INVALID_ARGUMENT` unless `version` is `known`; the message names the `_init` function.
pub(crate) fn check_options_version(version: u32, name: &str, known: u32) -> Result<()> {
    match version == known {
        true => Ok(()),
        false => Err(invalid_argument(format!(
            "{name} has version {version}, this library knows version {known}: fill it with {name}_init"
        ))),
    }
}

/// Borrows an array of `n` NUL-terminated strings; NULL is allowed when `n` is 0.
///
/// # Safety
/// `ptr` is NULL or points at `n` NUL-terminated strings.
pub(crate) unsafe fn arg_str_array<'a>(ptr: *const *const c_char, n: usize, name: &str) -> Result<Vec<&'a str>> {
    let pointers: &[*const c_char] = match (ptr.is_null(), n) {
        (true, 0) => &[],
        (true, _) => return Err(null_argument(name)),
        (false, _) => unsafe { std::slice::from_raw_parts(ptr, slice_len::<*const c_char>(n, name)?) },
    };
    pointers.iter().map(|&p| unsafe { arg_str(p, name) }).collect()
}

/// Parses an array of `n` filter strings (containerd syntax); NULL is allowed when `n` is 0.
///
/// # Safety
/// As `arg_str_array`.
pub(crate) unsafe fn arg_filters(filters: *const *const c_char, n: usize) -> Result<crate::filters::Filters> {
    crate::filters::Filters::parse(&unsafe { arg_str_array(filters, n, "filters") }?)
}

/// Borrows a NUL-terminated UTF-8 string.
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string alive for the duration of the call.
pub(crate) unsafe fn arg_str<'a>(ptr: *const c_char, name: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(null_argument(name));
    }
    unsafe { CStr::from_ptr(ptr) }.to_str().map_err(|_| invalid_argument(format!("argument {name} is not valid UTF-8")))
}

/// Borrows an array of `len` items (bytes, structs); NULL is allowed only when `len` is 0.
///
/// # Safety
/// `ptr` is NULL or points at `len` readable, initialized items.
pub(crate) unsafe fn arg_slice<'a, T>(ptr: *const T, len: usize, name: &str) -> Result<&'a [T]> {
    match (ptr.is_null(), len) {
        (true, 0) => Ok(&[]),
        (true, _) => Err(null_argument(name)),
        (false, _) => Ok(unsafe { std::slice::from_raw_parts(ptr, slice_len::<T>(len, name)?) }),
    }
}

/// Borrows an array of `len` writable items; NULL is allowed only when `len` is 0.
///
/// # Safety
/// `ptr` is NULL or points at `len` writable, initialized items that nothing else uses during
/// the call.
pub(crate) unsafe fn arg_slice_mut<'a, T>(ptr: *mut T, len: usize, name: &str) -> Result<&'a mut [T]> {
    match (ptr.is_null(), len) {
        (true, 0) => Ok(&mut []),
        (true, _) => Err(null_argument(name)),
        (false, _) => Ok(unsafe { std::slice::from_raw_parts_mut(ptr, slice_len::<T>(len, name)?) }),
    }
}

/// `len`, when an array of `len` `T` can exist: no object is larger than `isize::MAX` bytes,
/// and a slice claiming more is undefined behaviour before it is ever read.
fn slice_len<T>(len: usize, name: &str) -> Result<usize> {
    if len.checked_mul(size_of::<T>()).is_none_or(|bytes| bytes > isize::MAX as usize) {
        return Err(invalid_argument(format!("argument {name} cannot be {len} items long")));
    }
    Ok(len)
}

/// Parses a digest argument strictly.
///
/// # Safety
/// As `arg_str`.
pub(crate) unsafe fn arg_digest(ptr: *const c_char, name: &str) -> Result<Digest> {
    unsafe { arg_str(ptr, name) }?.parse()
}

/// Moves a value to the heap as an owned handle for C.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Frees a handle made by `into_handle`; NULL is a no-op.
///
/// # Safety
/// `ptr` is NULL or came from `into_handle::<T>` and was not freed before.
pub(crate) unsafe fn free_handle<T>(ptr: *mut T) {
    if !ptr.is_null() {
        drop(unsafe { Box::from_raw(ptr) });
    }
}

/// `text` as a C string; a NUL inside (which no C string can hold) is written as `\0`. An image
/// config, whose strings reach a runtime, is refused with a NUL instead (`ocicas_config::new`).
pub(crate) fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', "\\0")).unwrap_or_default()
}

/// `time` in nanoseconds since the Unix epoch (negative before it), the form every time has
/// in the C API, saturated to what an `int64_t` holds (the years 1677 to 2262).
pub(crate) fn unix_nanos(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |nanos| -nanos),
    }
}

/// A string returned to C, to be freed with `ocicas_string_free`.
pub(crate) fn into_c_string(text: String) -> *mut c_char {
    c_string(&text).into_raw()
}

/// Runs a C list callback over `items`; a non-zero return stops the iteration early.
pub(crate) fn for_each_until_stopped<I>(items: I, mut call: impl FnMut(I::Item) -> i32)
where
    I: IntoIterator,
{
    for item in items {
        if call(item) != 0 {
            break;
        }
    }
}

/// Frees a string returned by ocicas. NULL is a no-op.
///
/// # Safety
/// `text` is NULL or a string returned by an ocicas function, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_string_free(text: *mut c_char) {
    if !text.is_null() {
        drop(unsafe { CString::from_raw(text) });
    }
}

/// Frees a byte buffer returned by ocicas (e.g. by `ocicas_blob_read`), with the length that
/// was returned beside it. NULL is a no-op.
///
/// # Safety
/// `data`/`len` are NULL/0 or exactly what an ocicas function returned, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_bytes_free(data: *mut u8, len: usize) {
    if !data.is_null() {
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(data, len)) });
    }
}

/// The library version, e.g. "0.1.0". Static storage; do not free.
#[unsafe(no_mangle)]
pub extern "C" fn ocicas_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
