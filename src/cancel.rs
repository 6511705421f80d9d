//! `Cancel`: a caller's request that a long operation stop (push, pull, GC, archive import and
//! export, layer streams). The caller requests it from any thread; the operation looks at it
//! between chunks, blobs, requests and phases, and stops with `ErrorKind::Cancelled`, leaving
//! no partial blob (a resumable ingest at most). A check is one atomic load.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, ErrorKind, Result};

/// A cancellation flag shared between the caller and the operations it was given to. Clones
/// share the flag. The default flag is never requested unless someone holding a clone asks.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Asks every operation holding this flag to stop. Once requested, it stays requested.
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Cancelled` naming `what` once the stop was requested.
    pub fn check(&self, what: &str) -> Result<()> {
        match self.is_requested() {
            true => Err(cancelled(what)),
            false => Ok(()),
        }
    }

    /// `result`, except that a failure of a kind a stop causes, after the stop was requested,
    /// is `Cancelled`: a stop seen inside a reader, a writer or a transfer surfaces through
    /// layers that report it as `Io`, `Remote`, or (a tar or archive reader cut mid-member)
    /// `InvalidImage`, which would only mislead. Any other failure (a clobbered ref, a digest
    /// or size mismatch, a missing blob) is not what a stop causes, so it stays as it is even
    /// when the stop was requested meanwhile.
    pub fn explain<T>(&self, what: &str, result: Result<T>) -> Result<T> {
        match result {
            Err(err) if self.is_requested() && a_stop_can_cause(err.kind()) => Err(cancelled(what)),
            result => result,
        }
    }
}

/// The kinds that the layers above a reader, writer or transfer give a stop seen inside it.
fn a_stop_can_cause(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Io | ErrorKind::Remote | ErrorKind::InvalidImage)
}

fn cancelled(what: &str) -> Error {
    Error::new(ErrorKind::Cancelled, format!("{what} cancelled"))
}

/// Reads `inner` until the stop is requested, then fails every read with the `Cancelled` error.
pub struct CancelRead<R> {
    inner: R,
    cancel: Cancel,
    what: &'static str,
}

impl<R> CancelRead<R> {
    pub fn new(inner: R, cancel: Cancel, what: &'static str) -> Self {
        CancelRead { inner, cancel, what }
    }
}

impl<R: Read> Read for CancelRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.cancel.check(self.what).map_err(io::Error::other)?;
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_seen_by_every_clone_and_stays() {
        let cancel = Cancel::new();
        let held = cancel.clone();
        assert!(held.check("push").is_ok());
        cancel.request();
        let err = held.check("push").unwrap_err();
        assert_eq!((err.kind(), err.message()), (ErrorKind::Cancelled, "push cancelled"));
        assert!(held.is_requested());
        assert!(!Cancel::default().is_requested(), "a new flag is its own");
    }

    #[test]
    fn explain_turns_only_failures_after_the_request_into_cancelled() {
        let cancel = Cancel::new();
        let io_error = || Err::<(), _>(Error::new(ErrorKind::Io, "cannot write: stopped"));
        assert_eq!(cancel.explain("export", io_error()).unwrap_err().kind(), ErrorKind::Io);
        cancel.request();
        let err = cancel.explain("export", io_error()).unwrap_err();
        assert_eq!((err.kind(), err.message()), (ErrorKind::Cancelled, "export cancelled"));
        assert!(cancel.explain("export", Ok(7)).is_ok(), "a finished operation stays finished");
    }

    #[test]
    fn explain_keeps_a_genuine_failure_that_came_after_the_request() {
        let cancel = Cancel::new();
        cancel.request();
        for kind in [ErrorKind::Clobber, ErrorKind::DigestMismatch, ErrorKind::NotFound, ErrorKind::SizeMismatch] {
            let err = cancel.explain("pull", Err::<(), _>(Error::new(kind, "ref app points elsewhere"))).unwrap_err();
            assert_eq!((err.kind(), err.message()), (kind, "ref app points elsewhere"));
        }
        for kind in [ErrorKind::Io, ErrorKind::Remote, ErrorKind::InvalidImage] {
            let err = cancel.explain("pull", Err::<(), _>(Error::new(kind, "input cut short"))).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Cancelled, "a read or transfer cut by the stop is the stop");
        }
    }

    #[test]
    fn a_cancel_read_stops_at_its_next_read() {
        let cancel = Cancel::new();
        let mut reader = CancelRead::new(&b"abcdef"[..], cancel.clone(), "import");
        let mut buf = [0u8; 2];
        assert_eq!(reader.read(&mut buf).unwrap(), 2);
        cancel.request();
        let err = reader.read(&mut buf).unwrap_err();
        assert!(err.to_string().contains("import cancelled"), "{err}");
    }
}
