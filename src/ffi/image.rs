//! C ABI of `image`: appending a stored layer to an image.

use std::ffi::c_char;

use super::engine::ocicas_engine;
use super::{arg_out, arg_ref, arg_str, boundary, into_c_string, ocicas_status};
use crate::error::invalid_argument;
use crate::stream::LayerDescriptor;

/// Appends a stored layer (`layer_json`, as `ocicas_layer_stream_finish` returns it) to image
/// `ref`, creating a one-layer image for this host when `ref` does not exist: new config
/// (DiffID and history added), new manifest, ref moved atomically; the new blobs are leased
/// until then. `*out_manifest` receives the new manifest's descriptor JSON.
/// `OCICAS_ERR_CLOBBER` when another writer moved `ref` meanwhile; `OCICAS_ERR_NOT_FOUND` when
/// the layer blob is not stored; `OCICAS_ERR_INVALID_ARGUMENT` when `ref` is not an image
/// manifest.
///
/// # Safety
/// `engine` is a live engine; strings NUL-terminated; `out_manifest` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_image_append(
    engine: *const ocicas_engine,
    r#ref: *const c_char,
    layer_json: *const c_char,
    out_manifest: *mut *mut c_char,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let ref_name = unsafe { arg_str(r#ref, "ref") }?;
        let layer_json = unsafe { arg_str(layer_json, "layer_json") }?;
        let out_manifest = unsafe { arg_out(out_manifest, "out_manifest") }?;
        let layer: LayerDescriptor = serde_json::from_str(layer_json)
            .map_err(|e| invalid_argument(format!("layer_json is not a layer descriptor: {e}")))?;
        let manifest = engine.engine.append_layer(ref_name, &layer, "ocicas_image_append")?;
        *out_manifest = into_c_string(crate::spec::canonical_json_string(&manifest)?);
        Ok(())
    })
}
