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

/// `work` over `items` in batches, one thread each, as many as the `threads` limit allows up to
/// `most`; the batches' results in order. Every batch runs to its end or its first error; the
/// first error is returned.
pub(crate) fn in_parallel<'i, T: Sync, R: Send>(
    name: &str,
    threads: u64,
    most: usize,
    items: &'i [T],
    work: impl Fn(&'i [T]) -> Result<Vec<R>> + Sync,
) -> Result<Vec<R>> {
    let threads = usize::try_from(threads).unwrap_or(usize::MAX).clamp(1, most.max(1));
    let batch_size = items.len().div_ceil(threads).max(1);
    let work = &work;
    std::thread::scope(|scope| {
        let batches: Vec<_> = items
            .chunks(batch_size)
            .map(|batch| spawn_scoped(scope, name, move || work(batch)))
            .collect::<Result<_>>()?;
        let mut results = Vec::new();
        let mut first_error = None;
        for batch in batches {
            match batch.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)) {
                Ok(batch) => results.extend(batch),
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        first_error.map_or(Ok(results), Err)
    })
}
