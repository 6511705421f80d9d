//! C ABI of `walk` and of reading one document by its descriptor (umoci's casext `Walk` and
//! `FromDescriptor`): an image's graph as steps given to a callback, and an index, manifest
//! or image config as typed values read with accessors. The image config is `ocicas_config`,
//! which `ocicas_image_parsed_config` gives for a resolved image too.
//!
//! The accessors only read what was built and cannot fail or panic: they return NULL (or 0)
//! for a NULL value, a value of another kind, or an index past the end instead of a status.

use std::ffi::{CString, c_char, c_int, c_void};
use std::ops::ControlFlow;

use super::descriptor::{ocicas_descriptor, ocicas_key_value_list, ocicas_string_list};
use super::engine::ocicas_engine;
use super::error::set_last_error;
use super::{arg_out, arg_ref, arg_str, boundary, c_string, free_handle, into_handle, ocicas_status};
use crate::cancel::Cancel;
use crate::error::{Error, ErrorKind, Result};
use crate::spec::{Document, ImageConfig, RuntimeConfig};

/// Called by `ocicas_image_walk` once per blob of the image's graph. `descriptor` is the blob
/// as its referrer describes it (with annotations, and a platform for an index entry; no media
/// type and size 0 for the target of a label of its parent),
/// borrowed for the call only (copy what you keep); `depth` is 0 for the ref's own target, 1
/// for what it references, and so on; `parent_digest` is the digest of the document that
/// referenced it (or of the blob whose `ocicas.gc.ref.*` label did), NULL for the root. `blob_status` is `OCICAS_OK` when the blob was read (a
/// document) or found stored (a layer, which is not read), else why the walk did not go into
/// it: `OCICAS_ERR_NOT_FOUND` (not stored), `OCICAS_ERR_SIZE_MISMATCH`,
/// `OCICAS_ERR_DIGEST_MISMATCH`, `OCICAS_ERR_INVALID_IMAGE` (not what its media type says),
/// `OCICAS_ERR_TOO_LARGE` (over the JSON limit or nested past the walk depth limit) or
/// `OCICAS_ERR_IO`, with `ocicas_last_error_message()` naming the blob during the call. Return
/// 0 to go on, non-zero to stop.
pub type ocicas_image_walk_cb = Option<
    unsafe extern "C" fn(
        descriptor: *const ocicas_descriptor,
        depth: u64,
        parent_digest: *const c_char,
        blob_status: ocicas_status,
        user_data: *mut c_void,
    ) -> c_int,
>;

/// Walks the graph of reference `ref`: its index or manifest, then what each document
/// references (an index's manifests, a manifest's config and layers, a subject), calling
/// `callback` once per blob. It is the walk GC and fsck make, so it reaches what GC keeps for
/// the reference: each blob once, at its shallowest depth, breadth-first except that a
/// manifest's layers come right after it (its config comes in its turn, after the documents
/// of the manifest's depth); JSON of an unknown media type followed through its objects
/// shaped like descriptors; a reached blob's `ocicas.gc.ref.*` labels followed to their
/// targets; a blob that is not stored given once, however many documents list it. Its memory
/// is bounded by the JSON limit, not by the number of documents it reads. A blob the walk cannot go into (a missing layer, a broken manifest) is given
/// to the callback with its status and the walk goes on with the rest: the callback decides
/// whether that ends its walk. Returns `OCICAS_OK` when the walk ends, also when the callback
/// stopped it.
///
/// `OCICAS_ERR_INVALID_ARGUMENT` for a NULL `engine`, `ref` or `callback`, or a ref name
/// outside the OCI grammar; `OCICAS_ERR_NOT_FOUND` when the reference does not exist;
/// `OCICAS_ERR_INVALID_IMAGE` when index.json cannot be read.
///
/// # Safety
/// `engine` is a live engine; `ref` a NUL-terminated string; `callback` safe to call with
/// `user_data`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_image_walk(
    engine: *const ocicas_engine,
    r#ref: *const c_char,
    callback: ocicas_image_walk_cb,
    user_data: *mut c_void,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let ref_name = unsafe { arg_str(r#ref, "ref") }?;
        let callback = callback.ok_or_else(|| crate::error::invalid_argument("argument callback is NULL"))?;
        engine.engine.walk_image(ref_name, &Cancel::new(), |step| {
            let descriptor = ocicas_descriptor::new(&step.descriptor);
            let parent = step.parent.map(|digest| c_string(&digest.to_string()));
            let status = match &step.error {
                Some(err) => {
                    set_last_error(err.message());
                    err.kind().into()
                }
                None => ocicas_status::OCICAS_OK,
            };
            let parent_ptr = parent.as_ref().map_or(std::ptr::null(), |parent| parent.as_ptr());
            match unsafe { callback(&descriptor, step.depth, parent_ptr, status, user_data) } {
                0 => ControlFlow::Continue(()),
                _ => ControlFlow::Break(()),
            }
        })
    })
}

/// What a document read with `ocicas_document_read` is.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ocicas_document_kind {
    /// No document: what `ocicas_document_get_kind` gives for NULL.
    OCICAS_DOCUMENT_NONE = 0,
    /// An OCI image index or a Docker manifest list: `ocicas_document_manifest*`.
    OCICAS_DOCUMENT_INDEX = 1,
    /// An OCI image manifest or a Docker image manifest: `ocicas_document_config_descriptor`,
    /// `ocicas_document_layer*`.
    OCICAS_DOCUMENT_MANIFEST = 2,
    /// An OCI or Docker image config: `ocicas_document_config`.
    OCICAS_DOCUMENT_CONFIG = 3,
}

/// An image config, parsed: its platform, its layers' DiffIDs and the runtime config a
/// container of the image starts with. Owned by the document or image it came from
/// (`ocicas_document_config`, `ocicas_image_parsed_config`), valid until that is freed, and
/// so is every pointer its accessors return. Immutable: any number of threads may read one
/// at once. Its strings are the config's exactly: a config with a NUL in a string (JSON
/// `\u0000`), which a C string cannot hold, is refused with `OCICAS_ERR_INVALID_IMAGE`.
pub struct ocicas_config {
    os: CString,
    architecture: CString,
    variant: Option<CString>,
    diff_ids: ocicas_string_list,
    env: ocicas_string_list,
    cmd: ocicas_string_list,
    entrypoint: ocicas_string_list,
    working_dir: CString,
    user: CString,
    labels: ocicas_key_value_list,
    exposed_ports: ocicas_string_list,
    volumes: ocicas_string_list,
    stop_signal: CString,
}

impl ocicas_config {
    /// `InvalidImage` for a config with a NUL in one of its strings (see `refuse_nul`).
    pub(super) fn new(config: &ImageConfig, runtime: &RuntimeConfig) -> Result<Self> {
        refuse_nul(config, runtime)?;
        let diff_ids: Vec<String> = config.rootfs.diff_ids.iter().map(ToString::to_string).collect();
        Ok(ocicas_config {
            os: c_string(&config.os),
            architecture: c_string(&config.architecture),
            variant: config.variant().map(c_string),
            diff_ids: ocicas_string_list::new(&diff_ids),
            env: ocicas_string_list::new(&runtime.env),
            cmd: ocicas_string_list::new(&runtime.cmd),
            entrypoint: ocicas_string_list::new(&runtime.entrypoint),
            working_dir: c_string(&runtime.working_dir),
            user: c_string(&runtime.user),
            labels: ocicas_key_value_list::new(&runtime.labels),
            exposed_ports: ocicas_string_list::new(&runtime.exposed_ports),
            volumes: ocicas_string_list::new(&runtime.volumes),
            stop_signal: c_string(&runtime.stop_signal),
        })
    }
}

/// A C string ends at its first NUL, so a config string holding one (JSON can: `\u0000`) could
/// only be handed over changed: `A=x\u0000y` in Env would reach a runtime as another value, and
/// two labels could become one. Such a config is refused rather than changed.
fn refuse_nul(config: &ImageConfig, runtime: &RuntimeConfig) -> Result<()> {
    let single = [&config.os, &config.architecture, &runtime.working_dir, &runtime.user, &runtime.stop_signal];
    let lists = [&runtime.env, &runtime.cmd, &runtime.entrypoint, &runtime.exposed_ports, &runtime.volumes];
    let labels = runtime.labels.iter().flat_map(|(key, value)| [key, value]);
    let listed = lists.into_iter().flatten().chain(labels);
    let mut strings = single.into_iter().chain(listed).map(String::as_str).chain(config.variant());
    match strings.find(|text| text.contains('\0')) {
        None => Ok(()),
        Some(text) => Err(Error::new(
            ErrorKind::InvalidImage,
            format!("the image config holds a string with a NUL ({text:?}), which a C string cannot hold"),
        )),
    }
}

/// A document read by its descriptor's media type (`ocicas_document_read`): an index, a
/// manifest or an image config, by `ocicas_document_get_kind`. Every pointer an accessor
/// returns is owned by the document and valid until `ocicas_document_free`. Immutable: any
/// number of threads may read one at once.
pub struct ocicas_document {
    kind: ocicas_document_kind,
    /// An index's or a manifest's; empty for a config.
    annotations: ocicas_key_value_list,
    subject: Option<ocicas_descriptor>,
    /// An index's entries.
    manifests: Vec<ocicas_descriptor>,
    /// A manifest's config.
    config_descriptor: Option<ocicas_descriptor>,
    /// A manifest's layers.
    layers: Vec<ocicas_descriptor>,
    /// An image config, parsed.
    config: Option<ocicas_config>,
}

impl ocicas_document {
    fn new(document: Document, media_type: &str) -> Result<Self> {
        let empty = ocicas_document {
            kind: ocicas_document_kind::OCICAS_DOCUMENT_CONFIG,
            annotations: ocicas_key_value_list::new(&Default::default()),
            subject: None,
            manifests: Vec::new(),
            config_descriptor: None,
            layers: Vec::new(),
            config: None,
        };
        Ok(match document {
            Document::Index(index) => ocicas_document {
                kind: ocicas_document_kind::OCICAS_DOCUMENT_INDEX,
                annotations: ocicas_key_value_list::new(&index.annotations),
                subject: index.subject.as_ref().map(ocicas_descriptor::new),
                manifests: index.manifests.iter().map(ocicas_descriptor::new).collect(),
                ..empty
            },
            Document::Manifest(manifest) => ocicas_document {
                kind: ocicas_document_kind::OCICAS_DOCUMENT_MANIFEST,
                annotations: ocicas_key_value_list::new(&manifest.annotations),
                subject: manifest.subject.as_ref().map(ocicas_descriptor::new),
                config_descriptor: Some(ocicas_descriptor::new(&manifest.config)),
                layers: manifest.layers.iter().map(ocicas_descriptor::new).collect(),
                ..empty
            },
            Document::Config(config) => {
                ocicas_document { config: Some(ocicas_config::new(&config, &config.runtime()?)?), ..empty }
            }
            Document::ArtifactManifest(_) | Document::Schema1Manifest(_) | Document::Descriptor(_) => {
                return Err(Error::new(
                    ErrorKind::UnsupportedMediaType,
                    format!(
                        "media type {media_type:?} is not an index, manifest or image config, which the C API reads"
                    ),
                ));
            }
        })
    }
}

/// Reads the blob `descriptor` points at and parses it as its media type says: an OCI image
/// index or Docker manifest list (`OCICAS_DOCUMENT_INDEX`), an OCI or Docker image manifest
/// (`OCICAS_DOCUMENT_MANIFEST`) or an OCI or Docker image config (`OCICAS_DOCUMENT_CONFIG`).
/// The declared size is checked against the JSON limit before anything is read, then against
/// the blob, whose digest is verified. `*out_document` receives the document, to free with
/// `ocicas_document_free`.
///
/// `OCICAS_ERR_INVALID_ARGUMENT` for a NULL argument; `OCICAS_ERR_UNSUPPORTED_MEDIA_TYPE` for
/// any other media type (layers, artifacts, Docker schema 1); `OCICAS_ERR_NOT_FOUND` when the
/// blob is not stored; `OCICAS_ERR_TOO_LARGE` for a size over the JSON limit;
/// `OCICAS_ERR_SIZE_MISMATCH` when the blob is not of the declared size;
/// `OCICAS_ERR_DIGEST_MISMATCH` when its bytes do not hash to its digest;
/// `OCICAS_ERR_INVALID_IMAGE` when it does not parse as its media type (a manifest described
/// as an index, a config whose runtime config is malformed, a config with a NUL in a string,
/// which a C string cannot hold).
///
/// # Safety
/// `engine` is a live engine; `descriptor` a live descriptor; `out_document` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_document_read(
    engine: *const ocicas_engine,
    descriptor: *const ocicas_descriptor,
    out_document: *mut *mut ocicas_document,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let descriptor = unsafe { arg_ref(descriptor, "descriptor") }?.value().clone();
        let out_document = unsafe { arg_out(out_document, "out_document") }?;
        let document = engine.engine.read_document(&descriptor)?;
        *out_document = into_handle(ocicas_document::new(document, &descriptor.media_type)?);
        Ok(())
    })
}

/// Frees a document and everything its accessors returned. NULL is a no-op.
///
/// # Safety
/// `document` is NULL or a document not freed before, that no other thread reads during the
/// call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_document_free(document: *mut ocicas_document) {
    unsafe { free_handle(document) }
}

/// What the document is; `OCICAS_DOCUMENT_NONE` for a NULL document.
///
/// # Safety
/// `document` is NULL or a live document.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_document_get_kind(document: *const ocicas_document) -> ocicas_document_kind {
    unsafe { document.as_ref() }.map_or(ocicas_document_kind::OCICAS_DOCUMENT_NONE, |document| document.kind)
}

/// An index's or manifest's annotations, in key order (empty when none). NULL for a config or
/// a NULL document.
///
/// # Safety
/// `document` is NULL or a live document.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_document_annotations(document: *const ocicas_document) -> *const ocicas_key_value_list {
    unsafe { document.as_ref() }
        .filter(|document| document.kind != ocicas_document_kind::OCICAS_DOCUMENT_CONFIG)
        .map_or(std::ptr::null(), |document| &document.annotations)
}

/// An index's or manifest's `subject` (the manifest it refers to, for a signature or SBOM);
/// NULL when it has none, for a config or a NULL document.
///
/// # Safety
/// `document` is NULL or a live document.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_document_subject(document: *const ocicas_document) -> *const ocicas_descriptor {
    unsafe { document.as_ref() }.and_then(|document| document.subject.as_ref()).map_or(std::ptr::null(), |s| s)
}

/// How many manifests an index lists (0 for a manifest, a config or a NULL document).
///
/// # Safety
/// `document` is NULL or a live document.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_document_manifest_count(document: *const ocicas_document) -> usize {
    unsafe { document.as_ref() }.map_or(0, |document| document.manifests.len())
}

/// Entry `index` of an index's manifests, with its platform when it names one; NULL past the
/// count.
///
/// # Safety
/// `document` is NULL or a live document.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_document_manifest(
    document: *const ocicas_document,
    index: usize,
) -> *const ocicas_descriptor {
    unsafe { document.as_ref() }.and_then(|document| document.manifests.get(index)).map_or(std::ptr::null(), |d| d)
}

/// A manifest's config descriptor; NULL for an index, a config or a NULL document.
///
/// # Safety
/// `document` is NULL or a live document.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_document_config_descriptor(
    document: *const ocicas_document,
) -> *const ocicas_descriptor {
    unsafe { document.as_ref() }
        .and_then(|document| document.config_descriptor.as_ref())
        .map_or(std::ptr::null(), |d| d)
}

/// How many layers a manifest lists (0 for an index, a config or a NULL document).
///
/// # Safety
/// `document` is NULL or a live document.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_document_layer_count(document: *const ocicas_document) -> usize {
    unsafe { document.as_ref() }.map_or(0, |document| document.layers.len())
}

/// Layer `index` of a manifest (0 is the base layer); NULL past the count.
///
/// # Safety
/// `document` is NULL or a live document.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_document_layer(
    document: *const ocicas_document,
    index: usize,
) -> *const ocicas_descriptor {
    unsafe { document.as_ref() }.and_then(|document| document.layers.get(index)).map_or(std::ptr::null(), |d| d)
}

/// An image config, parsed; NULL for an index, a manifest or a NULL document.
///
/// # Safety
/// `document` is NULL or a live document.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_document_config(document: *const ocicas_document) -> *const ocicas_config {
    unsafe { document.as_ref() }.and_then(|document| document.config.as_ref()).map_or(std::ptr::null(), |c| c)
}

/// The config's `os` ("linux"). NULL for a NULL config.
///
/// # Safety
/// `config` is NULL or a live config: one `ocicas_document_config` or
/// `ocicas_image_parsed_config` returned while its owner is alive.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_config_os(config: *const ocicas_config) -> *const c_char {
    unsafe { config.as_ref() }.map_or(std::ptr::null(), |config| config.os.as_ptr())
}

/// The config's `architecture` ("amd64"). NULL for a NULL config.
///
/// # Safety
/// As `ocicas_config_os`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_config_architecture(config: *const ocicas_config) -> *const c_char {
    unsafe { config.as_ref() }.map_or(std::ptr::null(), |config| config.architecture.as_ptr())
}

/// The config's `variant` ("v8"); NULL when it names none, or for a NULL config.
///
/// # Safety
/// As `ocicas_config_os`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_config_variant(config: *const ocicas_config) -> *const c_char {
    unsafe { config.as_ref() }.and_then(|config| config.variant.as_ref()).map_or(std::ptr::null(), |v| v.as_ptr())
}

/// The config's `rootfs.diff_ids`: the digest of each layer's uncompressed tar, base first,
/// as `ocicas_layer_reader_open` takes it. NULL for a NULL config.
///
/// # Safety
/// As `ocicas_config_os`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_config_diff_ids(config: *const ocicas_config) -> *const ocicas_string_list {
    unsafe { config.as_ref() }.map_or(std::ptr::null(), |config| &config.diff_ids)
}

/// The runtime config's `Env` ("KEY=value" items); empty when unset. NULL for a NULL config.
///
/// # Safety
/// As `ocicas_config_os`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_config_env(config: *const ocicas_config) -> *const ocicas_string_list {
    unsafe { config.as_ref() }.map_or(std::ptr::null(), |config| &config.env)
}

/// The runtime config's `Cmd`; empty when unset. NULL for a NULL config.
///
/// # Safety
/// As `ocicas_config_os`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_config_cmd(config: *const ocicas_config) -> *const ocicas_string_list {
    unsafe { config.as_ref() }.map_or(std::ptr::null(), |config| &config.cmd)
}

/// The runtime config's `Entrypoint`; empty when unset. NULL for a NULL config.
///
/// # Safety
/// As `ocicas_config_os`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_config_entrypoint(config: *const ocicas_config) -> *const ocicas_string_list {
    unsafe { config.as_ref() }.map_or(std::ptr::null(), |config| &config.entrypoint)
}

/// The runtime config's `WorkingDir`; "" when unset. NULL for a NULL config.
///
/// # Safety
/// As `ocicas_config_os`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_config_working_dir(config: *const ocicas_config) -> *const c_char {
    unsafe { config.as_ref() }.map_or(std::ptr::null(), |config| config.working_dir.as_ptr())
}

/// The runtime config's `User`; "" when unset. NULL for a NULL config.
///
/// # Safety
/// As `ocicas_config_os`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_config_user(config: *const ocicas_config) -> *const c_char {
    unsafe { config.as_ref() }.map_or(std::ptr::null(), |config| config.user.as_ptr())
}

/// The runtime config's `Labels`, in key order; empty when unset. NULL for a NULL config.
///
/// # Safety
/// As `ocicas_config_os`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_config_labels(config: *const ocicas_config) -> *const ocicas_key_value_list {
    unsafe { config.as_ref() }.map_or(std::ptr::null(), |config| &config.labels)
}

/// The runtime config's `ExposedPorts` ("80/tcp"), in order; empty when unset. NULL for a
/// NULL config.
///
/// # Safety
/// As `ocicas_config_os`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_config_exposed_ports(config: *const ocicas_config) -> *const ocicas_string_list {
    unsafe { config.as_ref() }.map_or(std::ptr::null(), |config| &config.exposed_ports)
}

/// The runtime config's `Volumes` (paths), in order; empty when unset. NULL for a NULL
/// config.
///
/// # Safety
/// As `ocicas_config_os`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_config_volumes(config: *const ocicas_config) -> *const ocicas_string_list {
    unsafe { config.as_ref() }.map_or(std::ptr::null(), |config| &config.volumes)
}

/// The runtime config's `StopSignal` ("SIGTERM"); "" when unset. NULL for a NULL config.
///
/// # Safety
/// As `ocicas_config_os`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_config_stop_signal(config: *const ocicas_config) -> *const c_char {
    unsafe { config.as_ref() }.map_or(std::ptr::null(), |config| config.stop_signal.as_ptr())
}
