//! Typed values shared by several C results: OCI descriptors and the string and key/value
//! lists inside them, read with accessors (libgit2's `git_oid`, `git_signature`): no JSON to
//! parse.
//!
//! The accessors only read what was built and cannot fail or panic: they return NULL (or 0)
//! for a NULL value or an index past the end instead of a status.

use std::collections::BTreeMap;
use std::ffi::{CString, c_char};

use super::{arg_digest, arg_out, arg_str, boundary, c_string, free_handle, into_handle, ocicas_status};
use crate::error::{Result, invalid_argument};
use crate::spec::Descriptor;

/// A list of strings (an image's Env, Cmd, Entrypoint, a descriptor's URLs), owned by the
/// value it came from.
pub struct ocicas_string_list {
    items: Vec<CString>,
}

/// A list of key/value pairs in key order (annotations, labels), owned by the value it came
/// from.
pub struct ocicas_key_value_list {
    pairs: Vec<(CString, CString)>,
}

/// The platform of an index entry.
struct DescriptorPlatform {
    os: CString,
    architecture: CString,
    variant: Option<CString>,
    os_version: Option<CString>,
    os_features: ocicas_string_list,
}

/// An OCI descriptor: media type, digest, size, annotations, URLs, artifact type, embedded
/// data and, for an index entry, a platform. One an accessor returns (`ocicas_image_layer`) is
/// owned by its value; one returned through an out argument (`ocicas_ref_get`,
/// `ocicas_blob_put_json`) is freed with `ocicas_descriptor_free`. Immutable: any number of
/// threads may read one at once.
pub struct ocicas_descriptor {
    media_type: CString,
    digest: CString,
    size: u64,
    annotations: ocicas_key_value_list,
    urls: ocicas_string_list,
    artifact_type: Option<CString>,
    /// The `data` field as written: base64 of the content.
    data: Option<CString>,
    platform: Option<DescriptorPlatform>,
}

impl ocicas_key_value_list {
    pub(super) fn new(map: &BTreeMap<String, String>) -> Self {
        ocicas_key_value_list { pairs: map.iter().map(|(key, value)| (c_string(key), c_string(value))).collect() }
    }
}

impl ocicas_string_list {
    pub(super) fn new(items: &[String]) -> Self {
        ocicas_string_list { items: items.iter().map(|item| c_string(item)).collect() }
    }
}

impl ocicas_descriptor {
    pub(super) fn new(descriptor: &Descriptor) -> Self {
        ocicas_descriptor {
            media_type: c_string(&descriptor.media_type),
            digest: c_string(&descriptor.digest.to_string()),
            size: descriptor.size,
            annotations: ocicas_key_value_list::new(&descriptor.annotations),
            urls: ocicas_string_list::new(&descriptor.urls),
            artifact_type: descriptor.artifact_type.as_deref().map(c_string),
            data: descriptor.extra.get("data").and_then(|data| data.as_str()).map(c_string),
            platform: descriptor.platform.as_ref().map(|platform| DescriptorPlatform {
                os: c_string(&platform.os),
                architecture: c_string(&platform.architecture),
                variant: platform.variant.as_deref().map(c_string),
                os_version: platform.os_version.as_deref().map(c_string),
                os_features: ocicas_string_list::new(&platform.os_features),
            }),
        }
    }
}

impl ocicas_descriptor {
    /// The media type, digest and size, which say what to read: all a descriptor passed in
    /// is used for.
    pub(super) fn to_spec(&self) -> Result<Descriptor> {
        let media_type =
            self.media_type.to_str().map_err(|_| invalid_argument("descriptor media type is not UTF-8"))?;
        let digest = self.digest.to_str().map_err(|_| invalid_argument("descriptor digest is not UTF-8"))?;
        Ok(Descriptor::new(media_type, digest.parse()?, self.size))
    }
}

/// A descriptor of media type `media_type`, digest `digest` and size `size`, without
/// annotations or platform: what `ocicas_document_read` takes for a blob known from
/// elsewhere. `*out_descriptor` receives it, to free with `ocicas_descriptor_free`.
///
/// `OCICAS_ERR_INVALID_ARGUMENT` for a NULL argument, an empty media type or a malformed
/// digest.
///
/// # Safety
/// `media_type` and `digest` are NUL-terminated strings; `out_descriptor` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_descriptor_new(
    media_type: *const c_char,
    digest: *const c_char,
    size: u64,
    out_descriptor: *mut *mut ocicas_descriptor,
) -> ocicas_status {
    boundary(|| {
        let media_type = unsafe { arg_str(media_type, "media_type") }?;
        if media_type.is_empty() {
            return Err(invalid_argument("argument media_type is empty"));
        }
        let digest = unsafe { arg_digest(digest, "digest") }?;
        let out_descriptor = unsafe { arg_out(out_descriptor, "out_descriptor") }?;
        *out_descriptor = into_handle(ocicas_descriptor::new(&Descriptor::new(media_type, digest, size)));
        Ok(())
    })
}

/// The platform of `descriptor`, when it is not NULL and has one.
///
/// # Safety
/// As `ocicas_descriptor_media_type`.
unsafe fn platform_of<'a>(descriptor: *const ocicas_descriptor) -> Option<&'a DescriptorPlatform> {
    unsafe { descriptor.as_ref() }.and_then(|descriptor| descriptor.platform.as_ref())
}

/// An optional string as C sees it: NULL when absent.
fn optional_ptr(text: Option<&CString>) -> *const c_char {
    text.map_or(std::ptr::null(), |text| text.as_ptr())
}

/// Frees a descriptor returned through an out argument (`ocicas_ref_get`,
/// `ocicas_blob_put_json`, `ocicas_descriptor_new`) and everything its accessors returned. NULL is a no-op.
///
/// # Safety
/// `descriptor` is NULL or a descriptor returned through an out argument, not freed before,
/// that no other thread reads during the call; never one an accessor returned or a callback
/// was given (its owner frees it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_descriptor_free(descriptor: *mut ocicas_descriptor) {
    unsafe { free_handle(descriptor) }
}

/// The descriptor's media type. NULL for a NULL descriptor.
///
/// # Safety
/// `descriptor` is NULL or a live descriptor: one an accessor returned while its owner is
/// alive, one a callback is running with, or one returned through an out argument and not
/// freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_descriptor_media_type(descriptor: *const ocicas_descriptor) -> *const c_char {
    unsafe { descriptor.as_ref() }.map_or(std::ptr::null(), |d| d.media_type.as_ptr())
}

/// The descriptor's digest ("sha256:<hex>"). NULL for a NULL descriptor.
///
/// # Safety
/// As `ocicas_descriptor_media_type`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_descriptor_digest(descriptor: *const ocicas_descriptor) -> *const c_char {
    unsafe { descriptor.as_ref() }.map_or(std::ptr::null(), |d| d.digest.as_ptr())
}

/// The descriptor's size in bytes. 0 for a NULL descriptor.
///
/// # Safety
/// As `ocicas_descriptor_media_type`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_descriptor_size(descriptor: *const ocicas_descriptor) -> u64 {
    unsafe { descriptor.as_ref() }.map_or(0, |d| d.size)
}

/// The descriptor's annotations, in key order (empty when none). NULL for a NULL descriptor.
///
/// # Safety
/// As `ocicas_descriptor_media_type`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_descriptor_annotations(
    descriptor: *const ocicas_descriptor,
) -> *const ocicas_key_value_list {
    unsafe { descriptor.as_ref() }.map_or(std::ptr::null(), |d| &d.annotations)
}

/// The OS of the descriptor's platform; NULL when it has no platform (only index entries
/// have one), or for a NULL descriptor.
///
/// # Safety
/// As `ocicas_descriptor_media_type`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_descriptor_platform_os(descriptor: *const ocicas_descriptor) -> *const c_char {
    optional_ptr(unsafe { platform_of(descriptor) }.map(|platform| &platform.os))
}

/// The architecture of the descriptor's platform; NULL when it has no platform, or for a NULL
/// descriptor.
///
/// # Safety
/// As `ocicas_descriptor_media_type`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_descriptor_platform_architecture(
    descriptor: *const ocicas_descriptor,
) -> *const c_char {
    optional_ptr(unsafe { platform_of(descriptor) }.map(|platform| &platform.architecture))
}

/// The variant of the descriptor's platform; NULL when it has no platform or the platform no
/// variant, or for a NULL descriptor.
///
/// # Safety
/// As `ocicas_descriptor_media_type`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_descriptor_platform_variant(descriptor: *const ocicas_descriptor) -> *const c_char {
    optional_ptr(unsafe { platform_of(descriptor) }.and_then(|platform| platform.variant.as_ref()))
}

/// The `os.version` of the descriptor's platform; NULL when it has no platform or the platform
/// none, or for a NULL descriptor.
///
/// # Safety
/// As `ocicas_descriptor_media_type`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_descriptor_platform_os_version(descriptor: *const ocicas_descriptor) -> *const c_char {
    optional_ptr(unsafe { platform_of(descriptor) }.and_then(|platform| platform.os_version.as_ref()))
}

/// The `os.features` of the descriptor's platform (empty when none); NULL when it has no
/// platform, or for a NULL descriptor.
///
/// # Safety
/// As `ocicas_descriptor_media_type`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_descriptor_platform_os_features(
    descriptor: *const ocicas_descriptor,
) -> *const ocicas_string_list {
    unsafe { platform_of(descriptor) }.map_or(std::ptr::null(), |platform| &platform.os_features)
}

/// The descriptor's `urls` (empty when none). NULL for a NULL descriptor.
///
/// # Safety
/// As `ocicas_descriptor_media_type`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_descriptor_urls(descriptor: *const ocicas_descriptor) -> *const ocicas_string_list {
    unsafe { descriptor.as_ref() }.map_or(std::ptr::null(), |d| &d.urls)
}

/// The descriptor's `artifactType`; NULL when it has none, or for a NULL descriptor.
///
/// # Safety
/// As `ocicas_descriptor_media_type`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_descriptor_artifact_type(descriptor: *const ocicas_descriptor) -> *const c_char {
    optional_ptr(unsafe { descriptor.as_ref() }.and_then(|d| d.artifact_type.as_ref()))
}

/// The descriptor's `data` (the content embedded in it) as written there, in base64; NULL
/// when it has none, or for a NULL descriptor.
///
/// # Safety
/// As `ocicas_descriptor_media_type`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_descriptor_data(descriptor: *const ocicas_descriptor) -> *const c_char {
    optional_ptr(unsafe { descriptor.as_ref() }.and_then(|d| d.data.as_ref()))
}

/// How many strings the list holds (0 for a NULL list).
///
/// # Safety
/// `list` is NULL or one returned by an accessor, its owner still alive.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_string_list_count(list: *const ocicas_string_list) -> usize {
    unsafe { list.as_ref() }.map_or(0, |list| list.items.len())
}

/// String `index` of the list; NULL for a NULL list or `index` ≥ the count.
///
/// # Safety
/// As `ocicas_string_list_count`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_string_list_get(list: *const ocicas_string_list, index: usize) -> *const c_char {
    unsafe { list.as_ref() }.and_then(|list| list.items.get(index)).map_or(std::ptr::null(), |item| item.as_ptr())
}

/// How many pairs the list holds (0 for a NULL list).
///
/// # Safety
/// `list` is NULL or one returned by an accessor, its owner still alive.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_key_value_list_count(list: *const ocicas_key_value_list) -> usize {
    unsafe { list.as_ref() }.map_or(0, |list| list.pairs.len())
}

/// The key of pair `index`; NULL for a NULL list or `index` ≥ the count.
///
/// # Safety
/// As `ocicas_key_value_list_count`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_key_value_list_key(list: *const ocicas_key_value_list, index: usize) -> *const c_char {
    unsafe { list.as_ref() }.and_then(|list| list.pairs.get(index)).map_or(std::ptr::null(), |(key, _)| key.as_ptr())
}

/// The value of pair `index`; NULL for a NULL list or `index` ≥ the count.
///
/// # Safety
/// As `ocicas_key_value_list_count`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_key_value_list_value(
    list: *const ocicas_key_value_list,
    index: usize,
) -> *const c_char {
    let pair = unsafe { list.as_ref() }.and_then(|list| list.pairs.get(index));
    pair.map_or(std::ptr::null(), |(_, value)| value.as_ptr())
}
