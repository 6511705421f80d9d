//! Status codes of the C ABI and the calling thread's last error message.

use std::cell::RefCell;
use std::ffi::{CString, c_char};

use crate::error::ErrorKind;

/// Result of every fallible ocicas function. Numbers are never reused or renumbered.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum ocicas_status {
    /// Success; outputs have been written.
    OCICAS_OK = 0,
    /// A NULL pointer, a malformed digest or reference name, bad flags or options.
    OCICAS_ERR_INVALID_ARGUMENT = 1,
    /// The blob, reference or ingest does not exist.
    OCICAS_ERR_NOT_FOUND = 2,
    /// What was to be created already exists.
    OCICAS_ERR_ALREADY_EXISTS = 3,
    /// The layout, or a document in it, is not a valid OCI image layout / document.
    OCICAS_ERR_INVALID_IMAGE = 4,
    /// Bytes do not hash to the digest that names them.
    OCICAS_ERR_DIGEST_MISMATCH = 5,
    /// Bytes are not as long as their declared size.
    OCICAS_ERR_SIZE_MISMATCH = 6,
    /// The reference points elsewhere and force was not given.
    OCICAS_ERR_CLOBBER = 7,
    /// Another writer, in this or another process, holds the resource.
    OCICAS_ERR_LOCKED = 8,
    /// The operating system refused an I/O operation.
    OCICAS_ERR_IO = 9,
    /// A document or value exceeds a configured limit.
    OCICAS_ERR_TOO_LARGE = 10,
    /// The media type has no typed parser.
    OCICAS_ERR_UNSUPPORTED_MEDIA_TYPE = 11,
    /// This form of the operation is not implemented.
    OCICAS_ERR_NOT_IMPLEMENTED = 12,
    /// A bug inside ocicas was caught at the boundary; the message has the details.
    OCICAS_ERR_PANIC = 13,
    /// A layer stream's digest, DiffID or size was asked for before the stream ended.
    OCICAS_ERR_NOT_COMPUTED = 14,
    /// A layer stream's compressed bytes were already read to their end.
    OCICAS_ERR_CONSUMED = 15,
    /// A registry refused the credentials, or asked for credentials none were given for.
    OCICAS_ERR_UNAUTHORIZED = 16,
    /// A registry could not be reached, or answered with an error or a protocol violation.
    OCICAS_ERR_REMOTE = 17,
    /// The caller requested the operation's cancel flag (`ocicas_cancel_request`) and it
    /// stopped; no partial blob was stored (a resumable ingest at most).
    OCICAS_ERR_CANCELLED = 18,
}

impl From<ErrorKind> for ocicas_status {
    fn from(kind: ErrorKind) -> Self {
        use ocicas_status::*;
        match kind {
            ErrorKind::InvalidArgument => OCICAS_ERR_INVALID_ARGUMENT,
            ErrorKind::NotFound => OCICAS_ERR_NOT_FOUND,
            ErrorKind::AlreadyExists => OCICAS_ERR_ALREADY_EXISTS,
            ErrorKind::InvalidImage => OCICAS_ERR_INVALID_IMAGE,
            ErrorKind::DigestMismatch => OCICAS_ERR_DIGEST_MISMATCH,
            ErrorKind::SizeMismatch => OCICAS_ERR_SIZE_MISMATCH,
            ErrorKind::Clobber => OCICAS_ERR_CLOBBER,
            ErrorKind::Locked => OCICAS_ERR_LOCKED,
            ErrorKind::Io => OCICAS_ERR_IO,
            ErrorKind::TooLarge => OCICAS_ERR_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => OCICAS_ERR_UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::NotImplemented => OCICAS_ERR_NOT_IMPLEMENTED,
            ErrorKind::NotComputed => OCICAS_ERR_NOT_COMPUTED,
            ErrorKind::Consumed => OCICAS_ERR_CONSUMED,
            ErrorKind::Unauthorized => OCICAS_ERR_UNAUTHORIZED,
            ErrorKind::Remote => OCICAS_ERR_REMOTE,
            ErrorKind::Cancelled => OCICAS_ERR_CANCELLED,
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(message: &str) {
    // Interior NULs cannot be shown by C; replace them rather than lose the message.
    let message = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = message);
}

/// The message of the calling thread's most recent failed ocicas call ("" when none failed).
/// The pointer is owned by the library and stays valid until the next failing call on the same
/// thread; do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn ocicas_last_error_message() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}
