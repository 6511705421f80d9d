//! C ABI of `image`: appending a stored layer to an image.

use std::ffi::c_char;

use super::descriptor::ocicas_descriptor;
use super::engine::ocicas_engine;
use super::{arg_digest, arg_out, arg_ref, arg_str, boundary, into_handle, ocicas_status};
use crate::stream::LayerDescriptor;

/// Appends a stored layer (`layer`, its descriptor, and `diff_id`, the sha256 of its
/// uncompressed tar, as `ocicas_layer_stream_finish` and `ocicas_registry_push_layer` give
/// them) to image `ref`, creating a one-layer image for this host when `ref` does not exist:
/// new config (DiffID and history added), new manifest, ref moved atomically; the new blobs are
/// leased until then. `*out_manifest` receives the new manifest's descriptor (free with
/// `ocicas_descriptor_free`). `OCICAS_ERR_CLOBBER` when another writer moved `ref` meanwhile;
/// `OCICAS_ERR_NOT_FOUND` when the layer blob is not stored; `OCICAS_ERR_INVALID_ARGUMENT` for a
/// NULL argument, a malformed `diff_id`, or when `ref` is not an image manifest.
///
/// # Safety
/// `engine` is a live engine; `ref` and `diff_id` NUL-terminated; `layer` a live descriptor;
/// `out_manifest` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_image_append(
    engine: *const ocicas_engine,
    r#ref: *const c_char,
    layer: *const ocicas_descriptor,
    diff_id: *const c_char,
    out_manifest: *mut *mut ocicas_descriptor,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let ref_name = unsafe { arg_str(r#ref, "ref") }?;
        let layer = unsafe { arg_ref(layer, "layer") }?.value();
        let diff_id = unsafe { arg_digest(diff_id, "diff_id") }?;
        let out_manifest = unsafe { arg_out(out_manifest, "out_manifest") }?;
        let layer = LayerDescriptor {
            media_type: layer.media_type.clone(),
            digest: layer.digest.clone(),
            size: layer.size,
            diff_id,
        };
        let manifest = engine.engine.append_layer(ref_name, &layer, "ocicas_image_append")?;
        *out_manifest = into_handle(ocicas_descriptor::new(&manifest));
        Ok(())
    })
}
