//! C ABI of `layout`: opening and closing an engine.

use std::ffi::c_char;

use super::{arg_mut, arg_out, arg_ref, arg_str, boundary, free_handle, into_handle, ocicas_status};
use crate::engine::{Engine, OpenOptions};
use crate::error::{ErrorKind, invalid_argument};
use crate::limits::Limit;

/// An open OCI image layout. Thread-safe: one engine may be used by many threads at once.
pub struct ocicas_engine {
    pub(crate) engine: Engine,
}

/// `ocicas_engine_open` flag: create the layout when nothing (or an empty directory) is at
/// the path; open it otherwise.
pub const OCICAS_OPEN_CREATE: u32 = 1;
/// `ocicas_engine_open` flag, with `OCICAS_OPEN_CREATE`: fail with `OCICAS_ERR_ALREADY_EXISTS`
/// when anything is at the path (umoci's CreateLayout).
pub const OCICAS_OPEN_EXCLUSIVE: u32 = 2;

/// Opens the OCI image layout at `path`, validating `oci-layout`, `index.json` and `blobs/`.
/// `flags` is 0 or a combination of `OCICAS_OPEN_CREATE` and `OCICAS_OPEN_EXCLUSIVE`.
/// On success `*out_engine` receives a handle to free with `ocicas_engine_close`.
///
/// Returns `OCICAS_ERR_INVALID_IMAGE` for a path that is not a valid layout (the message names
/// the file), `OCICAS_ERR_ALREADY_EXISTS` with `OCICAS_OPEN_EXCLUSIVE` when the path exists,
/// `OCICAS_ERR_INVALID_ARGUMENT` for NULL arguments or unknown flags, `OCICAS_ERR_IO`.
///
/// # Safety
/// `path` is a NUL-terminated string; `out_engine` points at writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_engine_open(
    path: *const c_char,
    flags: u32,
    out_engine: *mut *mut ocicas_engine,
) -> ocicas_status {
    boundary(|| {
        let path = unsafe { arg_str(path, "path") }?;
        let out_engine = unsafe { arg_out(out_engine, "out_engine") }?;
        if flags & !(OCICAS_OPEN_CREATE | OCICAS_OPEN_EXCLUSIVE) != 0 {
            return Err(invalid_argument(format!("unknown flags {flags:#x} for ocicas_engine_open")));
        }
        let engine = match (flags & OCICAS_OPEN_CREATE != 0, flags & OCICAS_OPEN_EXCLUSIVE != 0) {
            (true, true) => Engine::create(path)?,
            (create, false) => Engine::open(path, &OpenOptions { create, ..OpenOptions::default() })?,
            (false, true) => {
                return Err(crate::error::Error::new(
                    ErrorKind::InvalidArgument,
                    "OCICAS_OPEN_EXCLUSIVE needs OCICAS_OPEN_CREATE",
                ));
            }
        };
        *out_engine = into_handle(ocicas_engine { engine });
        Ok(())
    })
}

/// Closes an engine from `ocicas_engine_open`. NULL is a no-op. Readers opened from the engine
/// stay valid and must still be freed.
///
/// # Safety
/// `engine` is NULL or a handle from `ocicas_engine_open` that no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_engine_close(engine: *mut ocicas_engine) {
    unsafe { free_handle(engine) }
}

/// `ocicas_engine_set_limit` limit `json_size`: the largest JSON document read or written
/// (index.json, manifests, configs, labels, leases), in bytes. Default 4 MiB.
pub const OCICAS_LIMIT_JSON_SIZE: u32 = 1;
/// `ocicas_engine_set_limit` limit `archive_manifest_size`: the largest `manifest.json` (or
/// `repositories`) of a docker-archive, in bytes. Default 1 MiB.
pub const OCICAS_LIMIT_ARCHIVE_MANIFEST_SIZE: u32 = 2;
/// `ocicas_engine_set_limit` limit `archive_header_size`: the most bytes read to reach one
/// docker-archive member (its tar header blocks, GNU long names, PAX records). Default 1 MiB.
pub const OCICAS_LIMIT_ARCHIVE_HEADER_SIZE: u32 = 3;
/// `ocicas_engine_set_limit` limit `archive_members`: the most members of one docker-archive.
/// Default 100000.
pub const OCICAS_LIMIT_ARCHIVE_MEMBERS: u32 = 4;
/// `ocicas_engine_set_limit` limit `label_size`: the largest label, key and value together, in
/// bytes. Default 4096.
pub const OCICAS_LIMIT_LABEL_SIZE: u32 = 5;
/// `ocicas_engine_set_limit` limit `walk_depth`: how many levels of nested documents GC, fsck,
/// push and pull follow. Default 16.
pub const OCICAS_LIMIT_WALK_DEPTH: u32 = 6;
/// `ocicas_engine_set_limit` limit `metadata_size`: the largest private metadata file of the
/// layout (an ingest's ref, total, expected digest, times, saved hash state), in bytes.
/// Default 64 KiB.
pub const OCICAS_LIMIT_METADATA_SIZE: u32 = 7;
/// `ocicas_engine_set_limit` limit `archive_json_total`: the most bytes one docker-archive read
/// holds in memory, all together (member names, JSON members, a stream's small members).
/// Default 64 MiB.
pub const OCICAS_LIMIT_ARCHIVE_JSON_TOTAL: u32 = 8;
/// `ocicas_engine_set_limit` limit `archive_import_size`: the most bytes one docker-archive
/// import writes into the store, staged members included. Default 1 TiB.
pub const OCICAS_LIMIT_ARCHIVE_IMPORT_SIZE: u32 = 9;
/// `ocicas_engine_set_limit` limit `threads`: the most worker threads one operation starts
/// (compression, GC sweep, registry jobs); 1 to 1024. Default 4 per core, at least 32, at most
/// 256.
pub const OCICAS_LIMIT_THREADS: u32 = 10;
/// `ocicas_engine_set_limit` limit `registry_timeout`: the deadline of one registry request for
/// a document (manifest, token, HEAD), first byte sent to last byte read, in seconds.
/// Default 300.
pub const OCICAS_LIMIT_REGISTRY_TIMEOUT: u32 = 11;
/// `ocicas_engine_set_limit` limit `registry_min_rate`: the slowest a registry blob transfer may
/// be, in bytes per second averaged over `registry_timeout` seconds. Default 16 KiB/s.
pub const OCICAS_LIMIT_REGISTRY_MIN_RATE: u32 = 12;
/// `ocicas_engine_set_limit` limit `archive_expansion`: the most bytes one compressed byte of a
/// docker-archive (or of a compressed layer in it) may decompress to, over everything read so
/// far. Default 2048 (twice deflate's ceiling: no gzip input is refused by it).
pub const OCICAS_LIMIT_ARCHIVE_EXPANSION: u32 = 13;
/// `ocicas_engine_set_limit` limit `lock_timeout`: the longest wait for the store lock (held by
/// a GC sweep, an index.json update or a commit), in seconds; past it the call fails with
/// `OCICAS_ERR_LOCKED`. Default 300.
pub const OCICAS_LIMIT_LOCK_TIMEOUT: u32 = 14;

/// Sets one of the engine's limits (`OCICAS_LIMIT_*`) to `value`. Every resource one operation
/// uses is bounded by one of these; input over a limit gives `OCICAS_ERR_TOO_LARGE` with a
/// message naming the limit and how to raise it (fsck reports a document nested past
/// `OCICAS_LIMIT_WALK_DEPTH` as a problem). Applies to what the engine does afterwards, and to
/// readers, writers and streams opened afterwards. The CLI's `--limit NAME=VALUE` and Go's
/// `Engine.SetLimit` set the same limits by the names given with each constant.
///
/// Returns `OCICAS_ERR_INVALID_ARGUMENT` for a NULL engine, an unknown `limit`, or a value out
/// of the limit's range (0 for any limit but `OCICAS_LIMIT_WALK_DEPTH`; over 1024 for
/// `OCICAS_LIMIT_THREADS`).
///
/// # Safety
/// `engine` is a handle from `ocicas_engine_open` that no other thread is using during the
/// call (set limits before sharing the engine).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_engine_set_limit(engine: *mut ocicas_engine, limit: u32, value: u64) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_mut(engine, "engine") }?;
        let limit = limit_from_c(limit)?;
        let mut limits = *engine.engine.limits();
        limits.set(limit, value)?;
        engine.engine.set_limits(limits);
        Ok(())
    })
}

/// Writes the current value of one of the engine's limits (`OCICAS_LIMIT_*`) to `*out_value`.
///
/// Returns `OCICAS_ERR_INVALID_ARGUMENT` for NULL arguments or an unknown `limit`.
///
/// # Safety
/// `engine` is a handle from `ocicas_engine_open`; `out_value` points at writable storage.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_engine_get_limit(
    engine: *const ocicas_engine,
    limit: u32,
    out_value: *mut u64,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let out_value = unsafe { arg_out(out_value, "out_value") }?;
        *out_value = engine.engine.limits().get(limit_from_c(limit)?);
        Ok(())
    })
}

fn limit_from_c(limit: u32) -> crate::Result<Limit> {
    Ok(match limit {
        OCICAS_LIMIT_JSON_SIZE => Limit::JsonSize,
        OCICAS_LIMIT_ARCHIVE_MANIFEST_SIZE => Limit::ArchiveManifestSize,
        OCICAS_LIMIT_ARCHIVE_HEADER_SIZE => Limit::ArchiveHeaderSize,
        OCICAS_LIMIT_ARCHIVE_MEMBERS => Limit::ArchiveMembers,
        OCICAS_LIMIT_LABEL_SIZE => Limit::LabelSize,
        OCICAS_LIMIT_WALK_DEPTH => Limit::WalkDepth,
        OCICAS_LIMIT_METADATA_SIZE => Limit::MetadataSize,
        OCICAS_LIMIT_ARCHIVE_JSON_TOTAL => Limit::ArchiveJsonTotal,
        OCICAS_LIMIT_ARCHIVE_IMPORT_SIZE => Limit::ArchiveImportSize,
        OCICAS_LIMIT_THREADS => Limit::Threads,
        OCICAS_LIMIT_REGISTRY_TIMEOUT => Limit::RegistryTimeout,
        OCICAS_LIMIT_REGISTRY_MIN_RATE => Limit::RegistryMinRate,
        OCICAS_LIMIT_ARCHIVE_EXPANSION => Limit::ArchiveExpansion,
        OCICAS_LIMIT_LOCK_TIMEOUT => Limit::LockTimeout,
        _ => return Err(invalid_argument(format!("unknown limit {limit}"))),
    })
}
