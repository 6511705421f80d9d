//! The one error type of the core. Each `ErrorKind` maps to exactly one C status code
//! (`src/ffi/error.rs`), so a C caller can act on the kind and print the message.

use std::fmt;
use std::io;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A caller-supplied value is malformed (a digest, a reference name, an option).
    InvalidArgument,
    /// The blob, reference or ingest does not exist.
    NotFound,
    /// The thing to create is already there (a layout, a blob with the expected digest).
    AlreadyExists,
    /// The layout or a document in it is not a valid OCI image layout / document.
    InvalidImage,
    /// Bytes do not hash to the digest that names them.
    DigestMismatch,
    /// Bytes are not as long as the size that was declared for them.
    SizeMismatch,
    /// A reference already points elsewhere and the caller did not ask to force it.
    Clobber,
    /// Another writer (in this or another process) holds the resource.
    Locked,
    /// The operating system refused an I/O operation.
    Io,
    /// A document or value exceeds a configured limit.
    TooLarge,
    /// The media type has no typed parser.
    UnsupportedMediaType,
    /// The operation exists in the API but this form of it is not implemented.
    NotImplemented,
    /// A result (digest, DiffID, size) asked for before the stream that computes it ended.
    NotComputed,
    /// A stream that can be read once was already read to its end.
    Consumed,
    /// A registry refused the credentials, or asked for credentials none were given for.
    Unauthorized,
    /// A registry could not be reached, or answered with an error or a protocol violation.
    Remote,
    /// The caller asked the operation to stop (`Cancel::request`), and it did.
    Cancelled,
}

#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }

    /// An I/O error on `path`, keeping the OS reason in the message. A `Refused` path of the
    /// layout (a planted link or special file) makes the layout invalid.
    pub fn io(what: &str, path: &Path, err: io::Error) -> Self {
        let kind = match err.kind() {
            _ if Refused::is(&err) => ErrorKind::InvalidImage,
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            _ => ErrorKind::Io,
        };
        Error::new(kind, format!("{what} {}: {err}", path.display()))
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// A failed read: the reader's own error when it carried one in the `io::Error` (a layer
    /// that failed its checks, a cancelled export), else `Io`; its message prefixed with `context`.
    pub(crate) fn from_read(err: io::Error, context: &str) -> Error {
        match err.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
            Some(ours) => Error::new(ours.kind(), format!("{context}: {}", ours.message())),
            None => Error::new(ErrorKind::Io, format!("{context}: {err}")),
        }
    }

    /// The same error, its message prefixed with what was being done.
    pub fn with_context(self, context: &str) -> Error {
        Error::new(self.kind, format!("{context}: {}", self.message))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Why a path inside a layout was not opened: it is or passes through a symlink, or it is
/// neither a regular file nor a directory. Carried inside an `io::Error`.
#[derive(Debug)]
pub struct Refused(pub String);

impl Refused {
    pub fn into_io(self) -> io::Error {
        io::Error::other(self)
    }

    pub fn is(err: &io::Error) -> bool {
        err.get_ref().is_some_and(|inner| inner.is::<Refused>())
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Shorthand constructors, so call sites read as the error they raise.
pub fn invalid_argument(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, message)
}

pub fn invalid_image(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidImage, message)
}

pub fn not_found(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::NotFound, message)
}
