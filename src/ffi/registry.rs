//! C ABI of `registry`: push, pull and push-layer over the OCI distribution API. A push's or
//! pull's report is a typed value read with the `ocicas_transfer_report_*` accessors.

use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex};

use super::cancel::{arg_cancel, ocicas_cancel};
use super::descriptor::ocicas_descriptor;
use super::engine::ocicas_engine;
use super::stream::{CallbackReader, layer_options, ocicas_layer_options, ocicas_read_cb, refuse_storage};
use super::{
    arg_options, arg_out, arg_ref, arg_str, arg_str_array, boundary, check_options_version, free_handle, into_c_string,
    into_handle, ocicas_status,
};
use crate::error::{Result, invalid_argument};
use crate::limits::Limits;
use crate::registry::{Credentials, Progress, ProgressCallback, RegistryOptions, TransferReport, push_layer};

/// What a push or pull did: the image's descriptor and what moved, read with the
/// `ocicas_transfer_report_*` accessors. Immutable: any number of threads may read one at once.
pub struct ocicas_transfer_report {
    descriptor: ocicas_descriptor,
    transferred: u64,
    bytes: u64,
    skipped: u64,
    mounted: u64,
}

impl ocicas_transfer_report {
    fn new(report: &TransferReport) -> Self {
        ocicas_transfer_report {
            descriptor: ocicas_descriptor::new(&report.descriptor),
            transferred: report.transferred,
            bytes: report.bytes,
            skipped: report.skipped,
            mounted: report.mounted,
        }
    }
}

/// `ocicas_progress_cb`'s `total` when it is not known yet (a streamed layer).
pub const OCICAS_PROGRESS_TOTAL_UNKNOWN: u64 = u64::MAX;

/// Reports how many bytes of one blob have moved: `digest` (NULL for a streamed layer until it
/// ends), `done`, and `total` (`OCICAS_PROGRESS_TOTAL_UNKNOWN` when not known). Called from the
/// library's transfer threads, never two calls at once, and only during the call that took it.
pub type ocicas_progress_cb =
    Option<unsafe extern "C" fn(digest: *const c_char, done: u64, total: u64, user_data: *mut c_void)>;

/// The version of `ocicas_registry_options` this header describes.
pub const OCICAS_REGISTRY_OPTIONS_VERSION: u32 = 1;

/// Options of a push or pull. Fill with `ocicas_registry_options_init(&options,
/// OCICAS_REGISTRY_OPTIONS_VERSION)`; NULL where options are taken means those defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ocicas_registry_options {
    /// The layout's version, set by `ocicas_registry_options_init`; any other is refused with
    /// `OCICAS_ERR_INVALID_ARGUMENT`.
    pub version: u32,
    /// Credentials for the registry; both NULL: its `auths` entry in the Docker config file
    /// (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`), if any.
    pub username: *const c_char,
    pub password: *const c_char,
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// Blobs moved at once (each a thread), at most the engine's `OCICAS_LIMIT_THREADS` (more
    /// is `OCICAS_ERR_INVALID_ARGUMENT`; `ocicas_registry_push_layer`, which has no engine,
    /// uses the default limits); 0 means 4, or that limit when it is lower.
    pub jobs: u32,
    /// Bytes per upload request, at most 1 GiB; 0 means a whole stored blob per request, 16 MiB
    /// chunks of a streamed layer (which holds two in memory).
    pub chunk_size: u64,
    /// Push: a repository of the same registry to mount blobs from (NULL: none).
    pub mount_from: *const c_char,
    /// Pull of an index: the platforms (`os/arch[/variant]`) to pull; none means all.
    pub platforms: *const *const c_char,
    pub n_platforms: usize,
    /// Pull: move the local ref when it points to another image.
    pub force: bool,
    /// Progress of each blob (NULL: none), with `progress_user_data`.
    pub progress: ocicas_progress_cb,
    pub progress_user_data: *mut c_void,
    /// A flag (from `ocicas_cancel_new`) that stops the transfer with `OCICAS_ERR_CANCELLED`
    /// when requested (NULL: none). It is looked at before every request and at every chunk of
    /// a blob body sent or received; a document request in flight (a manifest, a token, HEAD,
    /// the start or end of an upload), and a chunk read or send the registry stalls, ends by
    /// its deadline (`OCICAS_LIMIT_REGISTRY_TIMEOUT`) first. A cancelled pull leaves the
    /// blobs it finished and resumable ingests of the others, and tags nothing; a cancelled
    /// push leaves its unfinished uploads to the registry's purge.
    pub cancel: *const ocicas_cancel,
}

/// Fills `options` with the defaults of `version` (`OCICAS_REGISTRY_OPTIONS_VERSION`): HTTPS,
/// Docker config credentials, 4 jobs (at most the threads limit), default chunks. It writes
/// only the fields `version` has. `OCICAS_ERR_INVALID_ARGUMENT` for a version this library does
/// not know.
///
/// # Safety
/// `options` is NULL (`OCICAS_ERR_INVALID_ARGUMENT`) or writable for the layout of `version`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_registry_options_init(
    options: *mut ocicas_registry_options,
    version: u32,
) -> ocicas_status {
    boundary(|| {
        let options = unsafe { arg_out(options, "options") }?;
        check_options_version(version, "ocicas_registry_options", OCICAS_REGISTRY_OPTIONS_VERSION)?;
        *options = ocicas_registry_options {
            version,
            username: std::ptr::null(),
            password: std::ptr::null(),
            insecure: false,
            jobs: 0,
            chunk_size: 0,
            mount_from: std::ptr::null(),
            platforms: std::ptr::null(),
            n_platforms: 0,
            force: false,
            progress: None,
            progress_user_data: std::ptr::null_mut(),
            cancel: std::ptr::null(),
        };
        Ok(())
    })
}

/// The C progress callback and its user data, called under the options' mutex.
struct CallbackProgress {
    callback: unsafe extern "C" fn(*const c_char, u64, u64, *mut c_void),
    user_data: *mut c_void,
}

// The callback is only called under a mutex, one call at a time, during the exported call that
// took it: the caller's promise of `ocicas_progress_cb`.
unsafe impl Send for CallbackProgress {}

impl CallbackProgress {
    fn call(&self, progress: &Progress<'_>) {
        let digest = progress.digest.map(|digest| std::ffi::CString::new(digest.to_string()).unwrap_or_default());
        let digest_ptr = digest.as_ref().map_or(std::ptr::null(), |digest| digest.as_ptr());
        let total = progress.total.unwrap_or(OCICAS_PROGRESS_TOTAL_UNKNOWN);
        unsafe { (self.callback)(digest_ptr, progress.done, total, self.user_data) };
    }
}

unsafe fn registry_options(options: *const ocicas_registry_options) -> Result<RegistryOptions> {
    let options = unsafe { arg_options(options, "ocicas_registry_options", OCICAS_REGISTRY_OPTIONS_VERSION) }?;
    let Some(options) = options else { return Ok(RegistryOptions::default()) };
    let optional = |ptr: *const c_char, name: &str| -> Result<Option<String>> {
        if ptr.is_null() { Ok(None) } else { Ok(Some(unsafe { arg_str(ptr, name) }?.to_owned())) }
    };
    let credentials =
        match (optional(options.username, "options.username")?, optional(options.password, "options.password")?) {
            (Some(username), Some(password)) if !username.is_empty() => Some(Credentials { username, password }),
            (None, None) => None,
            _ => {
                return Err(invalid_argument(
                    "options.username and options.password go together, with a non-empty user",
                ));
            }
        };
    let platforms = unsafe { arg_str_array(options.platforms, options.n_platforms, "options.platforms") }?;
    let progress = options.progress.map(|callback| {
        let progress = CallbackProgress { callback, user_data: options.progress_user_data };
        Arc::new(Mutex::new(move |p: &Progress<'_>| progress.call(p))) as Arc<Mutex<ProgressCallback>>
    });
    Ok(RegistryOptions {
        credentials,
        insecure: options.insecure,
        jobs: options.jobs as usize,
        chunk_size: options.chunk_size,
        mount_from: optional(options.mount_from, "options.mount_from")?,
        platforms: platforms.into_iter().map(str::to_owned).collect(),
        force: options.force,
        progress,
        cancel: unsafe { arg_cancel(options.cancel) },
    })
}

/// Pushes image `ref_name` of the layout to `target` (`HOST/REPO[:TAG]`; without a tag, by
/// digest): blobs the registry has are skipped, the others uploaded in chunks, `jobs` at once;
/// manifests last, children first; manifests of the layout's index whose `subject` is the
/// image go too. `*out_report` receives the report, to free with `ocicas_transfer_report_free`.
/// Every request has a deadline from the engine's limits: a document exchange (manifest, token,
/// HEAD, upload start and end) ends within `OCICAS_LIMIT_REGISTRY_TIMEOUT` seconds, and a blob
/// moves at least `OCICAS_LIMIT_REGISTRY_MIN_RATE` bytes per second averaged over each such
/// period; past either, `OCICAS_ERR_TOO_LARGE` naming the registry and the limit. The
/// options' `cancel` flag stops it sooner, with `OCICAS_ERR_CANCELLED`.
/// `OCICAS_ERR_NOT_FOUND` for an unknown ref, `OCICAS_ERR_UNAUTHORIZED` when the registry
/// refuses the credentials, `OCICAS_ERR_REMOTE` when it cannot be reached or answers with an
/// error (or answers plain HTTP while `insecure` is not set: the message says so),
/// `OCICAS_ERR_INVALID_ARGUMENT` for a malformed target or options (`jobs` over the threads
/// limit).
///
/// # Safety
/// `engine` is a live engine; strings NUL-terminated; `options` NULL or valid; `out_report` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_registry_push(
    engine: *const ocicas_engine,
    ref_name: *const c_char,
    target: *const c_char,
    options: *const ocicas_registry_options,
    out_report: *mut *mut ocicas_transfer_report,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let ref_name = unsafe { arg_str(ref_name, "ref_name") }?;
        let target = unsafe { arg_str(target, "target") }?;
        let options = unsafe { registry_options(options) }?;
        let out_report = unsafe { arg_out(out_report, "out_report") }?;
        let report = engine.engine.push(ref_name, target, &options)?;
        *out_report = into_handle(ocicas_transfer_report::new(&report));
        Ok(())
    })
}

/// Pulls `source` (`HOST/REPO[:TAG][@DIGEST]`) into the layout and tags it `ref_name` (NULL:
/// the tag). Manifests are checked against their digests, blobs verified on commit; blobs
/// already stored are not fetched, and a pull that stopped resumes each blob from its ingest.
/// A blob that another writer (another pull, in this or another process) is ingesting is
/// waited for while that writer moves at least `OCICAS_LIMIT_REGISTRY_MIN_RATE`, then taken
/// from the store (or its ingest resumed when that writer stopped). The ref moves last: a
/// failed pull tags nothing. Deadlines and `*out_report` as for push.
/// `OCICAS_ERR_NOT_FOUND` for an unknown repository or tag, `OCICAS_ERR_DIGEST_MISMATCH` when
/// the registry's bytes do not match their digest, `OCICAS_ERR_CLOBBER` when `ref_name` points
/// elsewhere and `force` is not set, `OCICAS_ERR_TOO_LARGE` when a deadline passed,
/// `OCICAS_ERR_UNAUTHORIZED`, `OCICAS_ERR_REMOTE`, `OCICAS_ERR_INVALID_ARGUMENT`,
/// `OCICAS_ERR_CANCELLED` (see the options' `cancel`).
///
/// # Safety
/// As `ocicas_registry_push`; `ref_name` may be NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_registry_pull(
    engine: *const ocicas_engine,
    source: *const c_char,
    ref_name: *const c_char,
    options: *const ocicas_registry_options,
    out_report: *mut *mut ocicas_transfer_report,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let source = unsafe { arg_str(source, "source") }?;
        let ref_name = if ref_name.is_null() { None } else { Some(unsafe { arg_str(ref_name, "ref_name") }?) };
        let options = unsafe { registry_options(options) }?;
        let out_report = unsafe { arg_out(out_report, "out_report") }?;
        let report = engine.engine.pull(source, ref_name, &options)?;
        *out_report = into_handle(ocicas_transfer_report::new(&report));
        Ok(())
    })
}

/// Compresses the uncompressed tar that `read_cb` yields and uploads it to `target`
/// (`HOST/REPO`) while it is compressed, in chunks, nothing written to disk; the upload is
/// completed with the digest after the last chunk. `*out_descriptor` receives the layer's
/// descriptor (free with `ocicas_descriptor_free`) and `*out_diff_id` the digest of the
/// uncompressed tar, its DiffID (free with `ocicas_string_free`). `read_cb` is called on the
/// caller's thread.
/// Having no engine, it uses the default limits: requests have push's deadlines with
/// `OCICAS_LIMIT_REGISTRY_TIMEOUT` 300 s and `OCICAS_LIMIT_REGISTRY_MIN_RATE` 16 KiB/s.
/// `OCICAS_ERR_IO` when `read_cb` fails (nothing is completed in the registry then),
/// `OCICAS_ERR_TOO_LARGE` when a deadline passed, `OCICAS_ERR_CANCELLED` when the `cancel` of
/// either options struct was requested (checked at every chunk read or uploaded; nothing is
/// completed in the registry then).
///
/// # Safety
/// `read_cb` valid with `user_data` during the call; options NULL or valid; output writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_registry_push_layer(
    target: *const c_char,
    read_cb: ocicas_read_cb,
    user_data: *mut c_void,
    layer_options_ptr: *const ocicas_layer_options,
    options: *const ocicas_registry_options,
    out_descriptor: *mut *mut ocicas_descriptor,
    out_diff_id: *mut *mut c_char,
) -> ocicas_status {
    boundary(|| {
        let target = unsafe { arg_str(target, "target") }?;
        let callback = read_cb.ok_or_else(|| invalid_argument("argument read_cb is NULL"))?;
        let (layer, storage) = unsafe { layer_options(layer_options_ptr) }?;
        refuse_storage(&storage, "push-layer")?;
        let options = unsafe { registry_options(options) }?;
        let out_descriptor = unsafe { arg_out(out_descriptor, "out_descriptor") }?;
        let out_diff_id = unsafe { arg_out(out_diff_id, "out_diff_id") }?;
        let pushed = push_layer(CallbackReader { callback, user_data }, target, &layer, &options, &Limits::default())?;
        *out_descriptor = into_handle(ocicas_descriptor::new(&pushed.descriptor()));
        *out_diff_id = into_c_string(pushed.diff_id.to_string());
        Ok(())
    })
}

/// Frees a transfer report and everything its accessors returned. NULL is a no-op.
///
/// # Safety
/// `report` is NULL or a report not freed before, that no other thread reads during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_transfer_report_free(report: *mut ocicas_transfer_report) {
    unsafe { free_handle(report) }
}

/// The descriptor of the image pushed or pulled (its manifest or index), owned by the report.
/// NULL for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_transfer_report_descriptor(
    report: *const ocicas_transfer_report,
) -> *const ocicas_descriptor {
    unsafe { report.as_ref() }.map_or(std::ptr::null(), |report| &report.descriptor)
}

/// How many blobs (manifests included) crossed the network. 0 for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_transfer_report_transferred(report: *const ocicas_transfer_report) -> u64 {
    unsafe { report.as_ref() }.map_or(0, |report| report.transferred)
}

/// How many blob bytes crossed the network. 0 for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_transfer_report_bytes(report: *const ocicas_transfer_report) -> u64 {
    unsafe { report.as_ref() }.map_or(0, |report| report.bytes)
}

/// How many blobs the other side already had. 0 for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_transfer_report_skipped(report: *const ocicas_transfer_report) -> u64 {
    unsafe { report.as_ref() }.map_or(0, |report| report.skipped)
}

/// How many blobs were mounted from `mount_from` instead of uploaded (a push only; 0 for a
/// pull). 0 for a NULL report.
///
/// # Safety
/// `report` is NULL or a live report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_transfer_report_mounted(report: *const ocicas_transfer_report) -> u64 {
    unsafe { report.as_ref() }.map_or(0, |report| report.mounted)
}
