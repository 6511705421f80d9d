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
    /// at most 256; `--limit threads=N` raises it) is refused.
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
        Ok(CompressionOptions { compression, style, threads: self.threads })
    }
}

/// Where an appended layer comes from.
pub enum LayerInput {
    Dir(PathBuf),
    /// A tar file, or stdin for `-`.
    Tar(PathBuf),
}

/// Streams `input` into a new layer and appends it to image `ref_name`, the layer leased from
/// its commit until the image references it. Returns the layer and the new manifest.
pub fn append(
    engine: &Engine,
    ref_name: &str,
    input: &LayerInput,
    options: &CompressionOptions,
    created_by: &str,
) -> ocicas::Result<(LayerDescriptor, ocicas::Descriptor)> {
    let lease = engine.lease_new(None, Some(std::time::Duration::from_secs(3600)))?;
    let storage = StorageOptions { lease: Some(lease.id.clone()), ..StorageOptions::default() };
    let result = build_layer(engine, input, options, &storage)
        .and_then(|layer| Ok((layer.clone(), engine.append_layer(ref_name, &layer, created_by)?)));
    let released = engine.lease_release(&lease.id);
    let result = result?;
    released?;
    Ok(result)
}

/// Streams `input` into a new layer blob and returns its descriptor.
pub fn build_layer(
    engine: &Engine,
    input: &LayerInput,
    options: &CompressionOptions,
    storage: &StorageOptions,
) -> ocicas::Result<LayerDescriptor> {
    let mut stream = Progress::new(LayerStream::new(engine, options, storage)?);
    match input {
        LayerInput::Dir(dir) => write_dir_tar(dir, &mut stream)?,
        LayerInput::Tar(file) if file == Path::new("-") => copy_into(io::stdin().lock(), &mut stream)?,
        LayerInput::Tar(file) => {
            let tar = std::fs::File::open(file).map_err(|e| ocicas::Error::io("cannot open", file, e))?;
            copy_into(tar, &mut stream)?;
        }
    }
    stream.finish()
}

fn copy_into(input: impl Read, stream: &mut Progress) -> ocicas::Result<()> {
    // Large reads: io::copy's 8 KiB pieces would cost a call through every stage per 8 KiB.
    io::copy(&mut io::BufReader::with_capacity(1 << 20, input), stream)
        .map(|_| ())
        .map_err(|e| ocicas::Error::new(ocicas::ErrorKind::Io, format!("cannot stream the layer: {e}")))
}

/// A layer stream that shows bytes in and MB/s on a terminal.
struct Progress {
    stream: LayerStream,
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(stream: LayerStream) -> Progress {
        let bar = io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {bytes} in, {bytes_per_sec}, {elapsed}") {
                bar.set_style(style);
            }
            bar
        });
        Progress { stream, bar }
    }

    fn finish(self) -> ocicas::Result<LayerDescriptor> {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.stream.finish()
    }
}

impl Write for Progress {
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
