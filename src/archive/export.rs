//! Export of images to a docker-archive that `docker load` and `skopeo copy docker-archive:`
//! read: configs, uncompressed layer tars in `<id>/layer.tar` (each written once however many
//! images share it), then `manifest.json` and `repositories`. Streams to any writer.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};

use super::ManifestItem;
use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, ErrorKind, Result, invalid_argument};
use crate::layout::Engine;
use crate::spec::{Descriptor, Document};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExportFormat {
    /// `<id>/layer.tar` directories, as docker save wrote before version 25.
    #[default]
    Legacy,
}

#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    pub format: ExportFormat,
}

/// One image to export: a reference and the RepoTags to give it.
struct ExportImage {
    config: Descriptor,
    layers: Vec<(Descriptor, Digest)>,
    repo_tags: Vec<String>,
}

impl Engine {
    /// Writes the images `refs` point at as one docker-archive to `out`. `tags[i]` are the
    /// RepoTags of `refs[i]` (when empty, the reference name is used if it looks like
    /// `repo:tag`).
    pub fn export_docker_archive(
        &self,
        refs: &[&str],
        tags: &[Vec<String>],
        out: impl Write,
        _options: &ExportOptions,
    ) -> Result<()> {
        if refs.is_empty() {
            return Err(invalid_argument("name at least one reference to export"));
        }
        let images = refs
            .iter()
            .enumerate()
            .map(|(i, name)| self.export_image(name, tags.get(i).cloned().unwrap_or_default()))
            .collect::<Result<Vec<_>>>()?;
        let mut builder = tar::Builder::new(out);
        let mut written = HashSet::new();
        let mut items = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for image in &images {
            let config_name = format!("{}.json", image.config.digest.hex());
            if written.insert(config_name.clone()) {
                let bytes = self.read_blob(&image.config.digest, self.max_json_size())?;
                append_file(&mut builder, &config_name, &bytes[..], bytes.len() as u64)?;
            }
            let mut layer_paths = Vec::new();
            for (layer, diff_id) in &image.layers {
                let path = format!("{}/layer.tar", diff_id.hex());
                if written.insert(path.clone()) {
                    // A tar entry needs its size first: count the uncompressed bytes, then copy.
                    let size = self.uncompressed_size(layer, diff_id)?;
                    append_file(&mut builder, &path, self.uncompressed_layer(layer)?, size)?;
                    append_file(&mut builder, &format!("{}/VERSION", diff_id.hex()), &b"1.0"[..], 3)?;
                }
                layer_paths.push(path);
            }
            if let Some((_, top)) = image.layers.last() {
                for tag in &image.repo_tags {
                    if let Some((repo, tag)) = tag.rsplit_once(':').filter(|(repo, _)| !repo.is_empty()) {
                        repositories.entry(repo.to_owned()).or_default().insert(tag.to_owned(), top.hex().to_owned());
                    }
                }
            }
            items.push(ManifestItem {
                config: config_name,
                repo_tags: image.repo_tags.clone(),
                layers: layer_paths,
                parent: String::new(),
                layer_sources: Default::default(),
            });
        }
        let manifest = serde_json::to_vec(&items).map_err(|e| invalid_argument(e.to_string()))?;
        append_file(&mut builder, "manifest.json", &manifest[..], manifest.len() as u64)?;
        let repositories = serde_json::to_vec(&repositories).map_err(|e| invalid_argument(e.to_string()))?;
        append_file(&mut builder, "repositories", &repositories[..], repositories.len() as u64)?;
        builder.into_inner().map_err(write_error)?.flush().map_err(write_error)
    }

    fn export_image(&self, name: &str, repo_tags: Vec<String>) -> Result<ExportImage> {
        let descriptor = self.ref_get(name)?;
        let Document::Manifest(manifest) = self.read_document(&descriptor)? else {
            return Err(invalid_argument(format!(
                "reference {name:?} is a {}, not an image manifest",
                descriptor.media_type
            )));
        };
        let Document::Config(config) = self.read_document(&manifest.config)? else {
            return Err(invalid_argument(format!("the config of {name:?} is not an image config")));
        };
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(crate::error::invalid_image(format!(
                "image {name:?} has {} layers but {} diff_ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let repo_tags = if repo_tags.is_empty() && name.contains(':') { vec![name.to_owned()] } else { repo_tags };
        Ok(ExportImage {
            config: manifest.config,
            layers: manifest.layers.into_iter().zip(config.rootfs.diff_ids).collect(),
            repo_tags,
        })
    }

    /// The layer's uncompressed tar bytes.
    fn uncompressed_layer(&self, layer: &Descriptor) -> Result<Box<dyn Read>> {
        let reader = self.open_blob(&layer.digest)?;
        Ok(if layer.media_type.ends_with("gzip") {
            Box::new(flate2::read::MultiGzDecoder::new(reader))
        } else if layer.media_type.ends_with("zstd") {
            Box::new(zstd::Decoder::new(reader).map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?)
        } else {
            Box::new(reader)
        })
    }

    /// Size of the uncompressed layer, checked against its DiffID on the way.
    fn uncompressed_size(&self, layer: &Descriptor, diff_id: &Digest) -> Result<u64> {
        let mut reader = self.uncompressed_layer(layer)?;
        let mut hasher = Hasher::new(Algorithm::Sha256);
        let mut buf = vec![0u8; crate::content::IO_CHUNK];
        let mut size = 0u64;
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read layer {}: {e}", layer.digest)))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        let actual = hasher.finish();
        if actual != *diff_id {
            return Err(Error::new(
                ErrorKind::DigestMismatch,
                format!("layer {} uncompresses to {actual}, but its DiffID is {diff_id}", layer.digest),
            ));
        }
        Ok(size)
    }
}

fn append_file<W: Write>(builder: &mut tar::Builder<W>, path: &str, data: impl Read, size: u64) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, path, data).map_err(write_error)
}

fn write_error(err: io::Error) -> Error {
    Error::new(ErrorKind::Io, format!("cannot write the docker archive: {err}"))
}
