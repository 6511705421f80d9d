//! Starting threads without panicking: `std::thread::spawn` and `Scope::spawn` panic when the
//! system refuses a thread (no memory for its stack, RLIMIT_NPROC, threads-max); these return
//! the refusal as an `Io` error that names the thread.

use std::io;
use std::thread::{Builder, JoinHandle, Scope, ScopedJoinHandle};

use crate::error::{Error, ErrorKind, Result};

/// Starts a thread named `name` running `work`.
pub(crate) fn spawn<T, F>(name: &str, work: F) -> Result<JoinHandle<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    Builder::new().name(name.to_owned()).spawn(work).map_err(|e| refused(name, e))
}

/// Starts a thread named `name` running `work` in `scope`.
pub(crate) fn spawn_scoped<'scope, T, F>(
    scope: &'scope Scope<'scope, '_>,
    name: &str,
    work: F,
) -> Result<ScopedJoinHandle<'scope, T>>
where
    T: Send + 'scope,
    F: FnOnce() -> T + Send + 'scope,
{
    Builder::new().name(name.to_owned()).spawn_scoped(scope, work).map_err(|e| refused(name, e))
}

fn refused(name: &str, err: io::Error) -> Error {
    Error::new(ErrorKind::Io, format!("the system refused a thread ({name}): {err}"))
}
