//! Export of images from the store to a docker-archive that `docker load` and `skopeo copy
//! docker-archive:` read, through the archive writer: configs, uncompressed layer tars (each
//! written once however many images share it), then `manifest.json` and `repositories`.

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

use super::ArchiveProgress;
use super::writer::{ArchiveBlob, ArchiveWriter, ExportFormat};
use crate::cancel::{Cancel, CancelRead};
use crate::content::IO_CHUNK;
use crate::engine::Engine;
use crate::error::{Error, Result, invalid_argument};
use crate::spec::Document;
use crate::stream::LayerDescriptor;

#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    pub format: ExportFormat,
    /// Told the bytes of the archive written so far.
    pub progress: Option<ArchiveProgress>,
    /// Stops the export (`Cancelled`) at its next chunk read or written; an archive file is
    /// then removed, a stream is left cut short.
    pub cancel: Cancel,
}

/// What a cancelled export says was cancelled.
const EXPORT: &str = "the docker archive export";

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
        let exported = self.export_with(refs, tags, out, options, |writer, layer| {
            // A tar member needs its size first: a compressed layer is counted (and so checked,
            // before any of it is written) in a first pass.
            let reader = self.open_layer(layer)?;
            let size = match reader.known_size() {
                Some(size) => size,
                None => {
                    let mut counted = CancelRead::new(reader, options.cancel.clone(), EXPORT);
                    io::copy(&mut counted, &mut io::sink())
                        .map_err(|e| Error::from_read(e, &format!("cannot read layer {}", layer.digest)))?
                }
            };
            writer.put_blob(ArchiveBlob::Layer, &layer.diff_id, size, self.open_layer(layer)?)
        });
        options.cancel.explain(EXPORT, exported)
    }

    /// The export, with `put_layer` putting each layer not put yet, uncompressed.
    fn export_with<W: Write>(
        &self,
        refs: &[&str],
        tags: &[Vec<String>],
        out: W,
        options: &ExportOptions,
        mut put_layer: impl FnMut(&mut ArchiveWriter<CountedWriter<W>>, &LayerDescriptor) -> Result<()>,
    ) -> Result<W> {
        if refs.is_empty() {
            return Err(invalid_argument("name at least one reference to export"));
        }
        let out = CountedWriter {
            inner: out,
            written: 0,
            progress: options.progress.clone(),
            cancel: options.cancel.clone(),
        };
        let mut writer = ArchiveWriter::with_limits(out, options.format, self.limits());
        for (i, name) in refs.iter().enumerate() {
            options.cancel.check(EXPORT)?;
            let repo_tags = tags.get(i).cloned().unwrap_or_default();
            self.export_image(&mut writer, name, repo_tags, &mut put_layer)?;
        }
        Ok(writer.commit()?.inner)
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
            let out = io::BufWriter::with_capacity(IO_CHUNK, file);
            let file = self.export_with(refs, tags, out, options, |writer, layer| {
                // The file seeks: a layer is read once, its size filled in after.
                writer.put_layer_unsized(&layer.diff_id, self.open_layer(layer)?)
            })?;
            let file = file.into_inner().map_err(|e| Error::io("cannot write", &partial, e.into_error()))?;
            file.sync_all().map_err(|e| Error::io("cannot fsync", &partial, e))?;
            fs::rename(&partial, path).map_err(|e| Error::io("cannot rename the archive to", path, e))
        })();
        let result = options.cancel.explain(EXPORT, result);
        if result.is_err() {
            let _ = fs::remove_file(&partial);
        }
        result
    }

    fn export_image<W: Write>(
        &self,
        writer: &mut ArchiveWriter<W>,
        name: &str,
        repo_tags: Vec<String>,
        put_layer: &mut impl FnMut(&mut ArchiveWriter<W>, &LayerDescriptor) -> Result<()>,
    ) -> Result<()> {
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
            if writer.has_blob(diff_id) {
                continue;
            }
            let layer = LayerDescriptor {
                media_type: layer.media_type.clone(),
                digest: layer.digest.clone(),
                size: layer.size,
                diff_id: diff_id.clone(),
            };
            // The stored layer, decompressed as its media type says and checked against its
            // digest, size and DiffID, or the export fails.
            put_layer(writer, &layer)
                .map_err(|err| err.with_context(&format!("cannot export layer {} of {name:?}", layer.digest)))?;
        }
        let repo_tags = if repo_tags.is_empty() && name.contains(':') { vec![name.to_owned()] } else { repo_tags };
        writer.add_image(&manifest.config.digest, &config.rootfs.diff_ids, &repo_tags)
    }
}

/// The archive's output, counted for the progress callback, until the export is cancelled.
struct CountedWriter<W> {
    inner: W,
    written: u64,
    progress: Option<ArchiveProgress>,
    cancel: Cancel,
}

impl<W: Write> Write for CountedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.cancel.check(EXPORT).map_err(io::Error::other)?;
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        if let Some(progress) = &self.progress {
            (progress.0)(self.written);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Seek> Seek for CountedWriter<W> {
    fn seek(&mut self, position: SeekFrom) -> io::Result<u64> {
        self.inner.seek(position)
    }
}
