//! Resolving a ref to one runnable image: through indexes (OCI index, Docker manifest list) to
//! the manifest for a platform, then its config, layers and runtime config, all typed, so a
//! runtime never parses a document itself (containerd's `images.Manifest`, umoci's casext).

use crate::digest::Digest;
use crate::engine::Engine;
use crate::error::{Result, invalid_image, not_found};
use crate::limits::Limit;
use crate::spec::{Descriptor, Document, ImageConfig, Platform, RuntimeConfig, host_platform};

/// An image resolved for one platform.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedImage {
    /// The image manifest chosen (with its platform when an index gave one).
    pub manifest: Descriptor,
    pub config_descriptor: Descriptor,
    /// The layers, base first; `layers[i]` unpacks to `config.rootfs.diff_ids[i]`.
    pub layers: Vec<Descriptor>,
    pub config: ImageConfig,
    /// `config`'s runtime config, parsed.
    pub runtime: RuntimeConfig,
}

impl ResolvedImage {
    /// The DiffID of each layer, in the order of `layers`.
    pub fn diff_ids(&self) -> &[Digest] {
        &self.config.rootfs.diff_ids
    }
}

impl Engine {
    /// Resolves ref `ref_name` to the image for `platform`. An index leads to its manifest for
    /// `platform` (OS and architecture equal, variant too when `platform` names one); without
    /// a platform, to its only manifest, else to the one for this host. `NotFound` when the
    /// ref does not exist, no manifest is for the platform (the message lists those there
    /// are) or the config of the manifest reached is for another; `InvalidImage` when a
    /// document is not what its descriptor says or layers and DiffIDs do not pair up;
    /// `TooLarge` for indexes nested deeper than `Limits::walk_depth`.
    pub fn image_resolve(&self, ref_name: &str, platform: Option<&Platform>) -> Result<ResolvedImage> {
        let mut descriptor = self.ref_get(ref_name)?;
        let mut depth = 0;
        let manifest = loop {
            if !self.limits().follows_children_at(depth) {
                return Err(self.limits().exceeded(
                    Limit::WalkDepth,
                    format!("reference {ref_name:?} nests indexes deeper than the walk depth"),
                ));
            }
            match self.read_document(&descriptor)? {
                Document::Index(index) => descriptor = choose_manifest(ref_name, &index.manifests, platform)?,
                Document::Manifest(manifest) => break manifest,
                _ => {
                    return Err(invalid_image(format!(
                        "reference {ref_name:?} leads to {} {}, not an image index or manifest",
                        descriptor.media_type, descriptor.digest
                    )));
                }
            }
            depth += 1;
        };
        let Document::Config(config) = self.read_document(&manifest.config)? else {
            return Err(invalid_image(format!(
                "the config {} of image {ref_name:?} is a {}, not an image config",
                manifest.config.digest, manifest.config.media_type
            )));
        };
        if let Some(wanted) = platform.filter(|w| !is_for(w, &config.os, &config.architecture, config.variant())) {
            return Err(not_found(format!(
                "image {ref_name:?} is for {}, not {}",
                platform_name(&config.os, &config.architecture, config.variant()),
                describe(wanted)
            )));
        }
        if manifest.layers.len() != config.rootfs.diff_ids.len() {
            return Err(invalid_image(format!(
                "image {ref_name:?} has {} layers but its config lists {} DiffIDs",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let runtime = config.runtime()?;
        Ok(ResolvedImage {
            manifest: descriptor,
            config_descriptor: manifest.config,
            layers: manifest.layers,
            config,
            runtime,
        })
    }
}

/// The entry of an index to follow: the one for `platform`; without one, the only entry, else
/// the one for this host. The first wins when several match, as in containerd. An only entry
/// that names no platform is followed too: its config says which it is for.
fn choose_manifest(ref_name: &str, entries: &[Descriptor], platform: Option<&Platform>) -> Result<Descriptor> {
    if let [only] = entries
        && (platform.is_none() || only.platform.is_none())
    {
        return Ok(only.clone());
    }
    let host;
    let (wanted, wanted_name) = match platform {
        Some(wanted) => (wanted, describe(wanted)),
        None => {
            let (os, architecture) = host_platform();
            host = Platform::new(os, architecture, None);
            (&host, format!("this host ({})", describe(&host)))
        }
    };
    let entry_is_for = |d: &&Descriptor| {
        d.platform.as_ref().is_some_and(|p| is_for(wanted, &p.os, &p.architecture, p.variant.as_deref()))
    };
    if let Some(descriptor) = entries.iter().find(entry_is_for) {
        return Ok(descriptor.clone());
    }
    let available: Vec<String> =
        entries.iter().map(|d| d.platform.as_ref().map_or_else(|| "no platform".to_owned(), describe)).collect();
    Err(not_found(format!(
        "image {ref_name:?} has no manifest for {wanted_name}; it has: {}",
        if available.is_empty() { "none".to_owned() } else { available.join(", ") }
    )))
}

/// Whether `os/architecture/variant` is the platform asked for: OS and architecture equal, and
/// the variant when one is asked for.
fn is_for(wanted: &Platform, os: &str, architecture: &str, variant: Option<&str>) -> bool {
    os == wanted.os
        && architecture == wanted.architecture
        && (wanted.variant.is_none() || variant == wanted.variant.as_deref())
}

fn describe(platform: &Platform) -> String {
    platform_name(&platform.os, &platform.architecture, platform.variant.as_deref())
}

/// `os/architecture[/variant]`, as Docker and containerd write a platform.
fn platform_name(os: &str, architecture: &str, variant: Option<&str>) -> String {
    match variant {
        Some(variant) => format!("{os}/{architecture}/{variant}"),
        None => format!("{os}/{architecture}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::temp_engine;
    use crate::error::ErrorKind;
    use crate::spec::{
        ImageIndex, ImageManifest, MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_INDEX,
        MEDIA_TYPE_IMAGE_MANIFEST,
    };

    fn platform(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform::new(os, architecture, variant.map(Into::into))
    }

    /// Stores a one-layer image for `os/architecture` with a runtime config; returns its manifest.
    fn store_image(engine: &Engine, os: &str, architecture: &str) -> Descriptor {
        let layer = engine.put_blob(format!("layer for {architecture}").as_bytes()).unwrap();
        let config = serde_json::json!({
            "architecture": architecture, "os": os,
            "rootfs": {"type": "layers", "diff_ids": [layer.digest.to_string()]},
            "config": {"Env": ["PATH=/bin", "FOO=bar"], "Cmd": ["/bin/sh"], "Entrypoint": null,
                       "WorkingDir": "/work", "Labels": {"a": "b"},
                       "ExposedPorts": {"80/tcp": {}, "443/tcp": {}}, "Volumes": null, "StopSignal": "SIGTERM"}
        });
        let config = engine.put_json(MEDIA_TYPE_IMAGE_CONFIG, &config).unwrap();
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
            artifact_type: None,
            config,
            layers: vec![Descriptor::new("application/vnd.oci.image.layer.v1.tar", layer.digest, layer.size)],
            subject: None,
            annotations: Default::default(),
            extra: Default::default(),
        };
        engine.put_json(MEDIA_TYPE_IMAGE_MANIFEST, &manifest).unwrap()
    }

    /// Tags an index of `media_type` over one image per platform.
    fn store_index(engine: &Engine, media_type: &str, platforms: &[(&str, &str)]) -> Vec<Descriptor> {
        let manifests: Vec<Descriptor> = platforms
            .iter()
            .map(|(os, architecture)| Descriptor {
                platform: Some(platform(os, architecture, None)),
                ..store_image(engine, os, architecture)
            })
            .collect();
        let index =
            ImageIndex { media_type: Some(media_type.into()), manifests: manifests.clone(), ..ImageIndex::empty() };
        let index = engine.put_json(media_type, &index).unwrap();
        engine.ref_put("multi", &index, false).unwrap();
        manifests
    }

    #[test]
    fn resolves_a_single_manifest_with_its_runtime_config() {
        let (_dir, engine) = temp_engine();
        let manifest = store_image(&engine, "linux", "amd64");
        engine.ref_put("app", &manifest, false).unwrap();
        let image = engine.image_resolve("app", None).unwrap();
        assert_eq!(image.manifest.digest, manifest.digest);
        assert_eq!(image.layers.len(), 1);
        assert_eq!(image.diff_ids().len(), 1);
        assert_eq!((image.config.os.as_str(), image.config.architecture.as_str()), ("linux", "amd64"));
        assert_eq!(image.runtime.env, ["PATH=/bin", "FOO=bar"]);
        assert_eq!(image.runtime.cmd, ["/bin/sh"]);
        assert!(image.runtime.entrypoint.is_empty(), "null reads as empty");
        assert_eq!((image.runtime.working_dir.as_str(), image.runtime.user.as_str()), ("/work", ""));
        assert_eq!(image.runtime.labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(image.runtime.exposed_ports, ["443/tcp", "80/tcp"]);
        assert!(image.runtime.volumes.is_empty(), "null reads as empty");
        assert_eq!(image.runtime.stop_signal, "SIGTERM");
    }

    #[test]
    fn single_manifest_for_another_platform_is_not_found() {
        let (_dir, engine) = temp_engine();
        engine.ref_put("app", &store_image(&engine, "linux", "amd64"), false).unwrap();
        let err = engine.image_resolve("app", Some(&platform("linux", "arm64", None))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.message().contains("linux/amd64"), "{err}");
    }

    #[test]
    fn index_and_manifest_list_lead_to_the_manifest_for_the_platform() {
        for media_type in [MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_DOCKER_MANIFEST_LIST] {
            let (_dir, engine) = temp_engine();
            let manifests = store_index(&engine, media_type, &[("linux", "amd64"), ("linux", "arm64")]);
            let image = engine.image_resolve("multi", Some(&platform("linux", "arm64", None))).unwrap();
            assert_eq!(image.manifest, manifests[1]);
            assert_eq!(image.config.architecture, "arm64");
        }
    }

    #[test]
    fn index_without_the_platform_names_those_it_has() {
        let (_dir, engine) = temp_engine();
        store_index(&engine, MEDIA_TYPE_IMAGE_INDEX, &[("linux", "amd64"), ("linux", "arm64")]);
        let err = engine.image_resolve("multi", Some(&platform("linux", "s390x", None))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.message().contains("linux/amd64, linux/arm64"), "{err}");
        let err = engine.image_resolve("multi", Some(&platform("linux", "arm64", Some("v8")))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "the entry names no variant, so it is not v8");
    }

    #[test]
    fn only_entry_without_a_platform_is_checked_by_its_config() {
        let (_dir, engine) = temp_engine();
        let index = ImageIndex { manifests: vec![store_image(&engine, "linux", "arm64")], ..ImageIndex::empty() };
        engine.ref_put("one", &engine.put_json(MEDIA_TYPE_IMAGE_INDEX, &index).unwrap(), false).unwrap();
        let image = engine.image_resolve("one", Some(&platform("linux", "arm64", None))).unwrap();
        assert_eq!(image.config.architecture, "arm64");
        let err = engine.image_resolve("one", Some(&platform("linux", "amd64", None))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.message().contains("is for linux/arm64"), "{err}");
    }

    #[test]
    fn index_without_a_platform_asked_leads_to_the_host_manifest() {
        let (_dir, engine) = temp_engine();
        let (os, architecture) = host_platform();
        let manifests = store_index(&engine, MEDIA_TYPE_IMAGE_INDEX, &[("plan9", "mips"), (os, architecture)]);
        assert_eq!(engine.image_resolve("multi", None).unwrap().manifest, manifests[1]);
        let (_dir, engine) = temp_engine();
        store_index(&engine, MEDIA_TYPE_IMAGE_INDEX, &[("plan9", "mips"), ("plan9", "386")]);
        let err = engine.image_resolve("multi", None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.message().contains("this host"), "{err}");
    }

    #[test]
    fn unknown_ref_is_not_found_and_a_config_ref_is_invalid() {
        let (_dir, engine) = temp_engine();
        assert_eq!(engine.image_resolve("nothing", None).unwrap_err().kind(), ErrorKind::NotFound);
        let manifest = store_image(&engine, "linux", "amd64");
        let Document::Manifest(stored) = engine.read_document(&manifest).unwrap() else { panic!("not a manifest") };
        engine.ref_put("config", &stored.config, false).unwrap();
        assert_eq!(engine.image_resolve("config", None).unwrap_err().kind(), ErrorKind::InvalidImage);
    }
}
