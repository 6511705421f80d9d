//! `ocicas layer` and `ocicas append`: streaming layers from the command line, with a progress
//! bar on stderr when it is a terminal.

use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use ocicas::stream::tar_dir::write_dir_tar;
use ocicas::{
    Compression, CompressionKind, CompressionOptions, Engine, LayerDescriptor, LayerStream, MediaTypeStyle,
    StorageOptions,
};

use crate::{open, stdout_error};

/// How to compress a layer.
#[derive(Args, Clone, Debug)]
pub struct CompressionArgs {
    /// Compression level (gzip 0-9, default 6; zstd 1-19, default 3).
    #[arg(long)]
    level: Option<i32>,
    /// zstd instead of gzip.
    #[arg(long)]
    zstd: bool,
    /// No compression.
    #[arg(long, conflicts_with = "zstd")]
    uncompressed: bool,
    /// Compression threads (default: every core). More than the `threads` limit (4 per core,
    /// at least 32, at most 256; `--limit threads=N` raises it) is refused.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Docker media types instead of OCI ones.
    #[arg(long)]
    docker: bool,
}

impl CompressionArgs {
    pub fn options(&self) -> ocicas::Result<CompressionOptions> {
        let kind = match (self.uncompressed, self.zstd) {
            (true, _) => CompressionKind::None,
            (false, true) => CompressionKind::Zstd,
            (false, false) => CompressionKind::Gzip,
        };
        let compression = Compression::from_level(kind, self.level)?;
        let style = if self.docker { MediaTypeStyle::Docker } else { MediaTypeStyle::Oci };
        Ok(CompressionOptions { compression, style, threads: self.threads, ..Default::default() })
    }
}

/// Where an appended layer comes from.
pub enum LayerInput {
    Dir(PathBuf),
    /// A tar file, or stdin for `-`.
    Tar(PathBuf),
}

/// `ocicas layer`: compresses the tar FILE (or stdin) into a layer blob and prints its
/// descriptor.
pub fn run_layer(
    layout: &Path,
    file: PathBuf,
    compression: &CompressionArgs,
    out: &mut impl Write,
) -> ocicas::Result<()> {
    let engine = open(layout)?;
    let layer = build_layer(&engine, &LayerInput::Tar(file), &compression.options()?)?;
    writeln!(out, "{}", layer.to_json()).map_err(stdout_error)
}

/// `ocicas append`: appends a layer made from `dir` or `tar` to image `ref_name` and prints the
/// new manifest's descriptor.
pub fn run_append(
    layout: &Path,
    ref_name: &str,
    dir: Option<PathBuf>,
    tar: Option<PathBuf>,
    compression: &CompressionArgs,
    out: &mut impl Write,
) -> ocicas::Result<()> {
    let engine = open(layout)?;
    let input = match (dir, tar) {
        (Some(dir), _) => LayerInput::Dir(dir),
        (None, Some(tar)) => LayerInput::Tar(tar),
        (None, None) => return Err(ocicas::error::invalid_argument("give --dir DIR or --tar FILE")),
    };
    let (_, manifest) = append(&engine, ref_name, &input, &compression.options()?, "ocicas append")?;
    writeln!(out, "{}", ocicas::spec::canonical_json_string(&manifest)?).map_err(stdout_error)
}

/// Streams `input` into a new layer and appends it to image `ref_name` (the core leases the
/// layer until the image references it). Returns the layer and the new manifest.
pub fn append(
    engine: &Engine,
    ref_name: &str,
    input: &LayerInput,
    options: &CompressionOptions,
    created_by: &str,
) -> ocicas::Result<(LayerDescriptor, ocicas::Descriptor)> {
    engine.append_new_layer(ref_name, options, created_by, |stream| write_input(input, stream))
}

/// Streams `input` into a new layer blob and returns its descriptor.
pub fn build_layer(
    engine: &Engine,
    input: &LayerInput,
    options: &CompressionOptions,
) -> ocicas::Result<LayerDescriptor> {
    let mut stream = LayerStream::new(engine, options, &StorageOptions::default())?;
    write_input(input, &mut stream)?;
    stream.finish()
}

/// Writes the uncompressed tar of `input` into `stream`, showing progress on a terminal.
fn write_input(input: &LayerInput, stream: &mut LayerStream) -> ocicas::Result<()> {
    let mut stream = Progress::new(stream);
    match input {
        LayerInput::Dir(dir) => write_dir_tar(dir, &mut stream)?,
        LayerInput::Tar(file) if file == Path::new("-") => copy_into(io::stdin().lock(), &mut stream)?,
        LayerInput::Tar(file) => {
            let tar = std::fs::File::open(file).map_err(|e| ocicas::Error::io("cannot open", file, e))?;
            copy_into(tar, &mut stream)?;
        }
    }
    stream.finish();
    Ok(())
}

fn copy_into(input: impl Read, stream: &mut Progress<'_>) -> ocicas::Result<()> {
    // Large reads: io::copy's 8 KiB pieces would cost a call through every stage per 8 KiB.
    io::copy(&mut io::BufReader::with_capacity(1 << 20, input), stream)
        .map(|_| ())
        .map_err(|e| ocicas::Error::new(ocicas::ErrorKind::Io, format!("cannot stream the layer: {e}")))
}

/// A layer stream that shows bytes in and MB/s on a terminal.
struct Progress<'a> {
    stream: &'a mut LayerStream,
    bar: Option<ProgressBar>,
}

impl<'a> Progress<'a> {
    fn new(stream: &'a mut LayerStream) -> Progress<'a> {
        let bar = io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {bytes} in, {bytes_per_sec}, {elapsed}") {
                bar.set_style(style);
            }
            bar
        });
        Progress { stream, bar }
    }

    fn finish(self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Write for Progress<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.stream.write(buf).map_err(io::Error::other).map(|()| buf.len())?;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
