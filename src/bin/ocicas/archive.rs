//! `ocicas docker-archive`: import, export and list docker-archive tarballs.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use ocicas::archive::{ExportFormat, ExportOptions, ImageChoice, ImportOptions, read_manifest_items};
use ocicas::{Compression, LayerOptions};

#[derive(Subcommand)]
pub enum ArchiveCommand {
    /// Import the images of a docker-archive (a file, or - for stdin; plain, gzip or zstd).
    Import {
        layout: PathBuf,
        archive: PathBuf,
        /// Tag the imported image with this name instead of its RepoTags (repeatable).
        #[arg(long = "ref")]
        refs: Vec<String>,
        /// Import only the image with this RepoTag.
        #[arg(long, conflicts_with = "index")]
        tag: Option<String>,
        /// Import only the image at this position in manifest.json.
        #[arg(long)]
        index: Option<usize>,
        /// Recompress uncompressed layers.
        #[arg(long, value_enum)]
        compress: Option<CompressKind>,
    },
    /// Export images to a docker-archive that docker load and skopeo read.
    Export {
        layout: PathBuf,
        #[arg(required = true)]
        refs: Vec<String>,
        /// Where to write: a file, or - for stdout.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// RepoTags for the exported images (with one image; default: the reference name when
        /// it is repo:tag).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// legacy: <id>/layer.tar directories; oci: the docker 25+ form (an OCI layout inside).
        #[arg(long, value_enum, default_value = "legacy")]
        format: FormatKind,
    },
    /// List the images (manifest.json items) of a docker-archive.
    Ls { archive: PathBuf },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatKind {
    Legacy,
    Oci,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum CompressKind {
    Gzip,
    Zstd,
}

pub fn run(command: ArchiveCommand, out: &mut impl Write) -> ocicas::Result<()> {
    let stdout_error = |e: io::Error| ocicas::Error::new(ocicas::ErrorKind::Io, format!("cannot write to stdout: {e}"));
    match command {
        ArchiveCommand::Import { layout, archive, refs, tag, index, compress } => {
            let engine = crate::open(&layout)?;
            let choice = match (tag, index) {
                (Some(tag), _) => ImageChoice::Tag(tag),
                (None, Some(index)) => ImageChoice::Index(index),
                (None, None) => ImageChoice::All,
            };
            let compression = compress.map(|kind| LayerOptions {
                compression: match kind {
                    CompressKind::Gzip => Compression::Gzip(Compression::DEFAULT_GZIP_LEVEL),
                    CompressKind::Zstd => Compression::Zstd(Compression::DEFAULT_ZSTD_LEVEL),
                },
                ..LayerOptions::default()
            });
            let options = ImportOptions { choice, ref_names: refs, compression };
            let images = if archive == Path::new("-") {
                engine.import_docker_archive(io::stdin().lock(), &options)?
            } else {
                engine.import_docker_archive_file(&archive, &options)?
            };
            for image in images {
                writeln!(out, "{}", image.to_json()).map_err(stdout_error)?;
            }
        }
        ArchiveCommand::Export { layout, refs, output, tags, format } => {
            let engine = crate::open(&layout)?;
            let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
            let tags = if tags.is_empty() {
                Vec::new()
            } else if refs.len() == 1 {
                vec![tags]
            } else {
                return Err(ocicas::error::invalid_argument("--tag goes with exactly one reference"));
            };
            let format = match format {
                FormatKind::Legacy => ExportFormat::Legacy,
                FormatKind::Oci => ExportFormat::Oci,
            };
            let options = ExportOptions { format };
            if output == Path::new("-") {
                engine
                    .export_docker_archive(&refs, &tags, io::stdout().lock(), &options)?
                    .flush()
                    .map_err(stdout_error)?;
            } else {
                engine.export_docker_archive_file(&refs, &tags, &output, &options)?;
            }
        }
        ArchiveCommand::Ls { archive } => {
            let items = if archive == Path::new("-") {
                read_manifest_items(io::stdin().lock())?
            } else {
                read_manifest_items(
                    std::fs::File::open(&archive).map_err(|e| ocicas::Error::io("cannot open", &archive, e))?,
                )?
            };
            for item in items {
                writeln!(out, "{}", serde_json::to_string(&item).unwrap_or_default()).map_err(stdout_error)?;
            }
        }
    }
    Ok(())
}
