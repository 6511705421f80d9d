//! Export of images from the store to a docker-archive that `docker load` and `skopeo copy
//! docker-archive:` read, through the archive writer: configs, uncompressed layer tars (each
//! written once however many images share it), then `manifest.json` and `repositories`.

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

use super::writer::{ArchiveBlob, ArchiveWriter, ExportFormat};
use super::{ArchiveProgress, Codec};
use crate::cancel::{Cancel, CancelRead};
use crate::content::IO_CHUNK;
use crate::digest::Digest;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result, invalid_argument};
use crate::spec::{Descriptor, Document};

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
        let exported = self.export_with(refs, tags, out, options, |writer, layer, diff_id| {
            // A tar member needs its size first: a compressed layer is counted in a first pass.
            let mut counted = CancelRead::new(self.uncompressed_layer(layer)?, options.cancel.clone(), EXPORT);
            let size = io::copy(&mut counted, &mut io::sink())
                .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read layer {}: {e}", layer.digest)))?;
            writer.put_blob(ArchiveBlob::Layer, diff_id, size, self.uncompressed_layer(layer)?)
        });
        options.cancel.explain(EXPORT, exported)
    }

    /// The export, with `put_compressed` putting each compressed layer, uncompressed.
    fn export_with<W: Write>(
        &self,
        refs: &[&str],
        tags: &[Vec<String>],
        out: W,
        options: &ExportOptions,
        mut put_compressed: impl FnMut(&mut ArchiveWriter<CountedWriter<W>>, &Descriptor, &Digest) -> Result<()>,
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
            self.export_image(&mut writer, name, repo_tags, &mut put_compressed)?;
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
            let file = self.export_with(refs, tags, out, options, |writer, layer, diff_id| {
                // The file seeks: a compressed layer is read once, its size filled in after.
                writer.put_layer_unsized(diff_id, self.uncompressed_layer(layer)?)
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
        put_compressed: &mut impl FnMut(&mut ArchiveWriter<W>, &Descriptor, &Digest) -> Result<()>,
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
            match (writer.has_blob(diff_id), layer_codec(layer)) {
                (true, _) => {}
                (false, Some(_)) => put_compressed(writer, layer, diff_id)?,
                (false, None) => {
                    writer.put_blob(ArchiveBlob::Layer, diff_id, layer.size, self.open_blob(&layer.digest)?)?
                }
            }
        }
        let repo_tags = if repo_tags.is_empty() && name.contains(':') { vec![name.to_owned()] } else { repo_tags };
        writer.add_image(&manifest.config.digest, &config.rootfs.diff_ids, &repo_tags)
    }
}

/// How a layer is compressed, told by its media type.
fn layer_codec(layer: &Descriptor) -> Option<Codec> {
    if layer.media_type.ends_with("gzip") {
        Some(Codec::Gzip)
    } else if layer.media_type.ends_with("zstd") {
        Some(Codec::Zstd)
    } else {
        None
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
