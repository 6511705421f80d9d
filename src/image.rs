//! Images, not just blobs: appending a layer to a tagged image.

use std::time::{Duration, SystemTime};

use crate::engine::Engine;
use crate::error::{Result, invalid_argument};
use crate::lease::LeaseResource;
use crate::refs::RefUpdate;
use crate::spec::{
    Descriptor, Document, History, ImageConfig, ImageManifest, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_MANIFEST,
    RootFs, host_platform,
};
use crate::stream::{CompressionOptions, LayerDescriptor, LayerStream, StorageOptions};

/// How long the lease that protects an append's new blobs may outlive a crashed appender.
const APPEND_LEASE_EXPIRY: Duration = Duration::from_secs(60 * 60);

impl Engine {
    /// Appends a stored layer to image `ref_name`: a new config with the layer's DiffID added
    /// to `rootfs.diff_ids` and a history entry, a new manifest, and the ref moved atomically.
    /// A ref that does not exist yet becomes a one-layer image for this host's platform. The
    /// new blobs are under a lease until the ref points at them, so GC cannot take them; a
    /// concurrent move of the ref makes this a `Clobber` rather than losing either update.
    /// Returns the new manifest's descriptor.
    pub fn append_layer(&self, ref_name: &str, layer: &LayerDescriptor, created_by: &str) -> Result<Descriptor> {
        crate::refs::validate_ref_name(ref_name)?;
        self.with_lease(APPEND_LEASE_EXPIRY, |lease| self.append_under_lease(ref_name, layer, created_by, lease))
    }

    /// Streams a new layer, the uncompressed tar that `write_tar` writes into the stream, and
    /// appends it to image `ref_name` as `append_layer` does. The layer blob is leased from its
    /// commit until the image references it, so no GC can take it in between. Returns the layer
    /// and the new manifest's descriptor.
    pub fn append_new_layer(
        &self,
        ref_name: &str,
        options: &CompressionOptions,
        created_by: &str,
        write_tar: impl FnOnce(&mut LayerStream) -> Result<()>,
    ) -> Result<(LayerDescriptor, Descriptor)> {
        self.with_lease(APPEND_LEASE_EXPIRY, |lease| {
            let storage = StorageOptions { lease: Some(lease.to_owned()), ..StorageOptions::default() };
            let mut stream = LayerStream::new(self, options, &storage)?;
            write_tar(&mut stream)?;
            let layer = stream.finish()?;
            let manifest = self.append_layer(ref_name, &layer, created_by)?;
            Ok((layer, manifest))
        })
    }

    fn append_under_lease(
        &self,
        ref_name: &str,
        layer: &LayerDescriptor,
        created_by: &str,
        lease: &str,
    ) -> Result<Descriptor> {
        self.lease_add(lease, LeaseResource::Blob(layer.digest.clone()))?;
        let stored = self.blob_size(&layer.digest)?;
        if stored != layer.size {
            return Err(invalid_argument(format!("layer {} is {stored} bytes, not {}", layer.digest, layer.size)));
        }
        let current = match self.ref_get(ref_name) {
            Ok(descriptor) => Some(descriptor),
            Err(err) if err.kind() == crate::ErrorKind::NotFound => None,
            Err(err) => return Err(err),
        };
        let (mut manifest, manifest_media_type, mut config, config_media_type) = match &current {
            Some(descriptor) => self.read_image(ref_name, descriptor)?,
            None => new_image(),
        };
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        config.rootfs.diff_ids.push(layer.diff_id.clone());
        config.history.push(History {
            created: Some(now.clone()),
            created_by: Some(created_by.to_owned()),
            comment: None,
            empty_layer: None,
            extra: Default::default(),
        });
        config.extra.insert("created".to_owned(), now.into());
        // Leased before they are visible: a GC between a commit and a later lease_add could take
        // a blob whose commit grace ran out while this call stalled.
        let config = self.put_json_leased(lease, &config_media_type, &config)?;
        manifest.config = config;
        manifest.layers.push(layer.descriptor());
        let manifest = self.put_json_leased(lease, &manifest_media_type, &manifest)?;
        self.ref_update(ref_name, &manifest, RefUpdate::IfCurrent(current.as_ref().map(|d| &d.digest)))?;
        Ok(manifest)
    }

    /// The manifest and config of the image a ref points at, with their media types.
    fn read_image(
        &self,
        ref_name: &str,
        descriptor: &Descriptor,
    ) -> Result<(ImageManifest, String, ImageConfig, String)> {
        let Document::Manifest(manifest) = self.read_document(descriptor)? else {
            return Err(invalid_argument(format!(
                "reference {ref_name:?} points at a {}, not an image manifest",
                descriptor.media_type
            )));
        };
        let Document::Config(config) = self.read_document(&manifest.config)? else {
            return Err(invalid_argument(format!("the config of {ref_name:?} is a {}", manifest.config.media_type)));
        };
        let config_media_type = manifest.config.media_type.clone();
        Ok((manifest, descriptor.media_type.clone(), config, config_media_type))
    }
}

fn new_image() -> (ImageManifest, String, ImageConfig, String) {
    let (os, architecture) = host_platform();
    let config = ImageConfig {
        architecture: architecture.to_owned(),
        os: os.to_owned(),
        rootfs: RootFs { kind: "layers".to_owned(), diff_ids: Vec::new() },
        history: Vec::new(),
        extra: Default::default(),
    };
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_owned()),
        artifact_type: None,
        // Replaced by the real config before the manifest is stored.
        config: Descriptor::new(MEDIA_TYPE_IMAGE_CONFIG, crate::Digest::of_bytes(crate::Algorithm::Sha256, b""), 0),
        layers: Vec::new(),
        subject: None,
        annotations: Default::default(),
        extra: Default::default(),
    };
    (manifest, MEDIA_TYPE_IMAGE_MANIFEST.to_owned(), config, MEDIA_TYPE_IMAGE_CONFIG.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::temp_engine;
    use crate::error::ErrorKind;

    fn write_tree_tar(stream: &mut LayerStream) -> Result<()> {
        let tree = tempfile::tempdir().unwrap();
        std::fs::write(tree.path().join("file"), b"layer content").unwrap();
        crate::stream::tar_dir::write_dir_tar(tree.path(), stream)
    }

    #[test]
    fn append_new_layer_streams_under_a_lease_released_once_the_image_references_the_layer() {
        let (_dir, engine) = temp_engine();
        let options = CompressionOptions::default();
        let (layer, manifest) = engine
            .append_new_layer("app", &options, "test", |stream| {
                assert_eq!(engine.lease_list()?.len(), 1, "the layer is written under a lease");
                write_tree_tar(stream)
            })
            .unwrap();
        assert!(engine.lease_list().unwrap().is_empty());
        assert_eq!(engine.ref_get("app").unwrap().digest, manifest.digest);
        let Document::Manifest(stored) = engine.read_document(&manifest).unwrap() else { panic!("not a manifest") };
        assert_eq!(stored.layers, [layer.descriptor()]);
    }

    #[test]
    fn append_new_layer_that_fails_to_stream_tags_nothing_and_keeps_no_lease() {
        let (_dir, engine) = temp_engine();
        let failed = engine.append_new_layer("app", &CompressionOptions::default(), "test", |stream| {
            stream.write(b"half a tar")?;
            Err(invalid_argument("the input failed"))
        });
        assert_eq!(failed.unwrap_err().kind(), ErrorKind::InvalidArgument);
        assert!(engine.lease_list().unwrap().is_empty());
        assert_eq!(engine.ref_get("app").unwrap_err().kind(), ErrorKind::NotFound);
    }
}
