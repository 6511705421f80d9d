//! Export of images from the store to a docker-archive that `docker load` and `skopeo copy
//! docker-archive:` read, through the archive writer: configs, uncompressed layer tars (each
//! written once however many images share it), then `manifest.json` and `repositories`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::writer::{ArchiveBlob, ArchiveWriter, ExportFormat};
use crate::error::{Error, ErrorKind, Result, invalid_argument};
use crate::layout::Engine;
use crate::spec::{Descriptor, Document};

#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    pub format: ExportFormat,
}

impl Engine {
    /// Writes the images `refs` point at as one docker-archive to `out`. `tags[i]` are the
    /// RepoTags of `refs[i]` (when empty, the reference name is used if it looks like
    /// `repo:tag`).
    pub fn export_docker_archive<W: Write>(
        &self,
        refs: &[&str],
        tags: &[Vec<String>],
        out: W,
        options: &ExportOptions,
    ) -> Result<W> {
        if refs.is_empty() {
            return Err(invalid_argument("name at least one reference to export"));
        }
        let mut writer = ArchiveWriter::new(out, options.format);
        for (i, name) in refs.iter().enumerate() {
            self.export_image(&mut writer, name, tags.get(i).cloned().unwrap_or_default())?;
        }
        writer.commit()
    }

    /// `export_docker_archive` into the file at `path`, which appears only when the archive is
    /// complete (written beside it, then renamed); nothing is left on failure.
    pub fn export_docker_archive_file(
        &self,
        refs: &[&str],
        tags: &[Vec<String>],
        path: &Path,
        options: &ExportOptions,
    ) -> Result<()> {
        let file_name =
            path.file_name().ok_or_else(|| invalid_argument(format!("{} names no file", path.display())))?;
        let partial = path.with_file_name(format!(".{}.partial-{}", file_name.to_string_lossy(), std::process::id()));
        let result = (|| {
            let file = File::create(&partial).map_err(|e| Error::io("cannot create", &partial, e))?;
            let file = self.export_docker_archive(refs, tags, io::BufWriter::new(file), options)?;
            let file = file.into_inner().map_err(|e| Error::io("cannot write", &partial, e.into_error()))?;
            file.sync_all().map_err(|e| Error::io("cannot fsync", &partial, e))?;
            fs::rename(&partial, path).map_err(|e| Error::io("cannot rename the archive to", path, e))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&partial);
        }
        result
    }

    fn export_image<W: Write>(&self, writer: &mut ArchiveWriter<W>, name: &str, repo_tags: Vec<String>) -> Result<()> {
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
        if !writer.has_blob(&manifest.config.digest) {
            let reader = self.open_blob(&manifest.config.digest)?;
            writer.put_blob(ArchiveBlob::Config, &manifest.config.digest, manifest.config.size, reader)?;
        }
        for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            if !writer.has_blob(diff_id) {
                // A tar member needs its size first: a compressed layer is counted in a first pass.
                let size = match is_compressed(layer) {
                    true => io::copy(&mut self.uncompressed_layer(layer)?, &mut io::sink())
                        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read layer {}: {e}", layer.digest)))?,
                    false => layer.size,
                };
                writer.put_blob(ArchiveBlob::Layer, diff_id, size, self.uncompressed_layer(layer)?)?;
            }
        }
        let repo_tags = if repo_tags.is_empty() && name.contains(':') { vec![name.to_owned()] } else { repo_tags };
        writer.add_image(&manifest.config.digest, &config.rootfs.diff_ids, &repo_tags)
    }
}

fn is_compressed(layer: &Descriptor) -> bool {
    layer.media_type.ends_with("gzip") || layer.media_type.ends_with("zstd")
}
