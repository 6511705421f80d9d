//! `ocicas docker-archive`: import, export and list docker-archive tarballs.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use ocicas::archive::{
    ArchiveProgress, ExportFormat, ExportOptions, ImageChoice, ImportOptions, list_docker_archive,
    read_manifest_items_with,
};
use ocicas::{Compression, CompressionKind, CompressionOptions};

use crate::{Json, print_json, stdout_error};

#[derive(Subcommand)]
pub enum ArchiveCommand {
    /// Import the images of a docker-archive (a file, or - for stdin; plain, gzip or zstd).
    /// Prints one {"manifest","refs","repoTags"} line per image imported (JSON with or without
    /// --json).
    Import {
        /// The OCI image layout to import into.
        layout: PathBuf,
        /// The docker-archive tarball, or - for stdin.
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
        /// Recompress uncompressed layers (the plain layers are then never stored).
        #[arg(long, value_enum)]
        compress: Option<CompressKind>,
        /// Compression level (gzip 0-9, default 6; zstd 1-19, default 3).
        #[arg(long, requires = "compress")]
        level: Option<i32>,
        #[command(flatten)]
        format: Json,
    },
    /// Export images to a docker-archive that docker load and skopeo read.
    Export {
        /// The OCI image layout that holds the images.
        layout: PathBuf,
        /// The references (tags) of the images to export.
        #[arg(required = true, value_name = "REF")]
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
    /// List the images of a docker-archive: its manifest.json items, one
    /// {"Config","RepoTags","Layers"} per line (JSON with or without --json).
    #[command(visible_alias = "ls")]
    List {
        /// The docker-archive tarball, or - for stdin.
        archive: PathBuf,
        #[command(flatten)]
        format: Json,
    },
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
    match command {
        ArchiveCommand::Import { layout, archive, refs, tag, index, compress, level, .. } => {
            let engine = crate::open(&layout)?;
            let choice = match (tag, index) {
                (Some(tag), _) => ImageChoice::Tag(tag),
                (None, Some(index)) => ImageChoice::Index(index),
                (None, None) => ImageChoice::All,
            };
            let compression = compress
                .map(|kind| -> ocicas::Result<CompressionOptions> {
                    let kind = match kind {
                        CompressKind::Gzip => CompressionKind::Gzip,
                        CompressKind::Zstd => CompressionKind::Zstd,
                    };
                    let compression = Compression::from_level(kind, level)?;
                    Ok(CompressionOptions { compression, ..CompressionOptions::default() })
                })
                .transpose()?;
            let bar = progress_bar("stored");
            let options =
                ImportOptions { choice, ref_names: refs, compression, progress: reporter(&bar), ..Default::default() };
            let images = if archive == Path::new("-") {
                engine.import_docker_archive(io::stdin().lock(), &options)
            } else {
                engine.import_docker_archive_file(&archive, &options)
            };
            finish(bar);
            let images = images?;
            for image in images {
                print_json(&image.to_json(), out)?;
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
            let bar = progress_bar("written");
            let options = ExportOptions { format, progress: reporter(&bar), ..Default::default() };
            let exported = if output == Path::new("-") {
                engine
                    .export_docker_archive(&refs, &tags, io::stdout().lock(), &options)
                    .and_then(|mut out| out.flush().map_err(stdout_error))
            } else {
                engine.export_docker_archive_file(&refs, &tags, &output, &options)
            };
            finish(bar);
            exported?;
        }
        ArchiveCommand::List { archive, .. } => {
            let items = if archive == Path::new("-") {
                read_manifest_items_with(io::stdin().lock(), &crate::limits())?
            } else {
                list_docker_archive(&archive, &crate::limits())?
            };
            for item in items {
                print_json(&serde_json::to_value(&item).unwrap_or_default(), out)?;
            }
        }
    }
    Ok(())
}

/// A spinner with the bytes done and the rate, as `layer` shows, on stderr when it is a
/// terminal; nothing otherwise.
fn progress_bar(what: &str) -> Option<ProgressBar> {
    io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new_spinner();
        let template = format!("{{spinner}} {{bytes}} {what}, {{bytes_per_sec}}, {{elapsed}}");
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style);
        }
        bar
    })
}

fn reporter(bar: &Option<ProgressBar>) -> Option<ArchiveProgress> {
    bar.clone().map(|bar| ArchiveProgress(Arc::new(move |done| bar.set_position(done))))
}

fn finish(bar: Option<ProgressBar>) {
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
