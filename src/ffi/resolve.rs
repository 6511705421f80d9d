//! C ABI of `resolve`: an image resolved for a platform, as typed values a C caller reads with
//! accessors (libgit2's `git_signature`, `git_status_entry`): no JSON to parse. Its
//! descriptors and lists are those of `descriptor`.
//!
//! The accessors only read what `ocicas_image_resolve` built and cannot fail or panic: they
//! return NULL (or 0) for a NULL handle or an index past the end instead of a status.

use std::ffi::c_char;

use super::descriptor::ocicas_descriptor;
use super::engine::ocicas_engine;
use super::walk::ocicas_config;
use super::{arg_out, arg_ref, arg_str, boundary, free_handle, into_handle, ocicas_status};
use crate::error::Result;
use crate::resolve::ResolvedImage;
use crate::spec::Platform;

/// A platform to resolve an image for. `os` and `architecture` are required (Go's GOOS and
/// GOARCH names: "linux", "amd64"); `variant` ("v8") may be NULL, which matches any variant.
#[repr(C)]
pub struct ocicas_platform {
    /// Required: "linux", "windows", ….
    pub os: *const c_char,
    /// Required: "amd64", "arm64", ….
    pub architecture: *const c_char,
    /// NULL, or the variant to match exactly ("v7", "v8").
    pub variant: *const c_char,
}

/// An image resolved for one platform (`ocicas_image_resolve`): its manifest, config and layer
/// descriptors and its config, parsed (`ocicas_image_parsed_config`). Every pointer an accessor
/// returns is owned by the image and valid until `ocicas_image_free`. Immutable: any number
/// of threads may read one at once.
pub struct ocicas_image {
    manifest: ocicas_descriptor,
    config_descriptor: ocicas_descriptor,
    layers: Vec<ocicas_descriptor>,
    config: ocicas_config,
}

impl ocicas_image {
    /// `InvalidImage` for a config with a NUL in one of its strings.
    fn new(image: &ResolvedImage) -> Result<Self> {
        Ok(ocicas_image {
            manifest: ocicas_descriptor::new(&image.manifest),
            config_descriptor: ocicas_descriptor::new(&image.config_descriptor),
            layers: image.layers.iter().map(ocicas_descriptor::new).collect(),
            config: ocicas_config::new(&image.config, &image.runtime)?,
        })
    }
}

/// The core's platform from the C one.
///
/// # Safety
/// `platform`'s strings are NULL or NUL-terminated.
unsafe fn platform_arg(platform: &ocicas_platform) -> Result<Platform> {
    let variant = match platform.variant.is_null() {
        true => None,
        false => Some(unsafe { arg_str(platform.variant, "platform.variant") }?.to_owned()),
    };
    let os = unsafe { arg_str(platform.os, "platform.os") }?;
    let architecture = unsafe { arg_str(platform.architecture, "platform.architecture") }?;
    Ok(Platform::new(os, architecture, variant))
}

/// Resolves reference `ref` to the image for `platform`: an index (OCI image index or Docker
/// manifest list, nested ones too) leads to its manifest whose platform has the same OS and
/// architecture (and variant, when `platform` names one; the first such when several do).
/// With `platform` NULL: the index's only manifest, else the one for this host. An index's
/// only entry without a platform is followed too. With a `platform`, the config of the
/// manifest reached must be for it. `*out_image` receives the image, to free with
/// `ocicas_image_free`.
///
/// `OCICAS_ERR_INVALID_ARGUMENT` for a NULL `engine`, `ref`, `out_image`, `platform->os` or
/// `platform->architecture`, or a ref name outside the OCI grammar; `OCICAS_ERR_NOT_FOUND` when
/// the reference does not exist, a blob is not stored, no manifest is for the platform (the
/// message lists the platforms there are) or the config reached is for another;
/// `OCICAS_ERR_INVALID_IMAGE` when the reference leads to something other than an index or
/// manifest, a document does not parse as its media type, the layers and DiffIDs do not
/// pair up, or the config has a NUL in a string (which a C string cannot hold); `OCICAS_ERR_SIZE_MISMATCH` / `OCICAS_ERR_TOO_LARGE` for a document of another size
/// than described, over the JSON limit, or indexes nested deeper than the walk depth limit.
///
/// # Safety
/// `engine` is a live engine; `ref` a NUL-terminated string; `platform` NULL or a platform whose
/// strings are NULL or NUL-terminated; `out_image` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_image_resolve(
    engine: *const ocicas_engine,
    r#ref: *const c_char,
    platform: *const ocicas_platform,
    out_image: *mut *mut ocicas_image,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let ref_name = unsafe { arg_str(r#ref, "ref") }?;
        let platform = match unsafe { platform.as_ref() } {
            Some(platform) => Some(unsafe { platform_arg(platform) }?),
            None => None,
        };
        let out_image = unsafe { arg_out(out_image, "out_image") }?;
        let image = engine.engine.image_resolve(ref_name, platform.as_ref())?;
        *out_image = into_handle(ocicas_image::new(&image)?);
        Ok(())
    })
}

/// Frees an image and everything its accessors returned. NULL is a no-op.
///
/// # Safety
/// `image` is NULL or an image not freed before, that no other thread reads during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_image_free(image: *mut ocicas_image) {
    unsafe { free_handle(image) }
}

/// The descriptor of the image's manifest (with its platform when an index named one). NULL
/// for a NULL image.
///
/// # Safety
/// `image` is NULL or a live image.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_image_manifest(image: *const ocicas_image) -> *const ocicas_descriptor {
    unsafe { image.as_ref() }.map_or(std::ptr::null(), |image| &image.manifest)
}

/// The descriptor of the image's config blob. NULL for a NULL image.
///
/// # Safety
/// `image` is NULL or a live image.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_image_config(image: *const ocicas_image) -> *const ocicas_descriptor {
    unsafe { image.as_ref() }.map_or(std::ptr::null(), |image| &image.config_descriptor)
}

/// How many layers the image has (0 for a NULL image).
///
/// # Safety
/// `image` is NULL or a live image.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_image_layer_count(image: *const ocicas_image) -> usize {
    unsafe { image.as_ref() }.map_or(0, |image| image.layers.len())
}

/// Layer `index` (0 is the base layer); NULL for a NULL image or `index` ≥ the layer count.
///
/// # Safety
/// `image` is NULL or a live image.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_image_layer(image: *const ocicas_image, index: usize) -> *const ocicas_descriptor {
    unsafe { image.as_ref() }.and_then(|image| image.layers.get(index)).map_or(std::ptr::null(), |layer| layer)
}

/// The image config, parsed: platform, DiffIDs (`ocicas_config_diff_ids`: entry `i` is what
/// layer `i` unpacks to) and runtime config (Env, Cmd, …), read with the `ocicas_config_*`
/// accessors. Owned by the image. NULL for a NULL image.
///
/// # Safety
/// `image` is NULL or a live image.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_image_parsed_config(image: *const ocicas_image) -> *const ocicas_config {
    unsafe { image.as_ref() }.map_or(std::ptr::null(), |image| &image.config)
}
