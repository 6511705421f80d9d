//! `ocicas push`, `ocicas pull` and `ocicas push-layer`: the OCI distribution API from the
//! command line, with a progress bar per blob on stderr when it is a terminal.

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ocicas::registry::{Progress, push_layer};
use ocicas::{Credentials, RegistryOptions};

use crate::layer::CompressionArgs;
use crate::stdout_error;

/// How to reach a registry.
#[derive(Args, Clone, Debug)]
pub struct RegistryArgs {
    /// Plain HTTP instead of HTTPS (a registry on loopback, say).
    #[arg(long)]
    insecure: bool,
    /// USER:PASS; without it, the registry's entry in ~/.docker/config.json (if any).
    #[arg(long, value_name = "USER:PASS")]
    user: Option<String>,
    /// Blobs moved at once, each a thread: at most the threads limit (`--limit threads=N`);
    /// default 4, or that limit when it is lower.
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    jobs: usize,
    /// Bytes per upload request (default: a whole blob; 16 MiB chunks of a streamed layer).
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    chunk_size: u64,
}

impl RegistryArgs {
    fn options(&self) -> ocicas::Result<RegistryOptions> {
        let credentials = self.user.as_deref().map(Credentials::parse).transpose()?;
        Ok(RegistryOptions {
            credentials,
            insecure: self.insecure,
            jobs: self.jobs,
            chunk_size: self.chunk_size,
            progress: progress_bars(),
            ..RegistryOptions::default()
        })
    }
}

pub fn push(
    layout: &Path,
    ref_name: &str,
    target: &str,
    mount_from: Option<String>,
    args: &RegistryArgs,
    out: &mut impl Write,
) -> ocicas::Result<()> {
    let engine = crate::open(layout)?;
    let options = RegistryOptions { mount_from, ..args.options()? };
    let report = engine.push(ref_name, target, &options)?;
    writeln!(out, "{}", report.to_json()).map_err(stdout_error)
}

pub fn pull(
    source: &str,
    layout: &Path,
    ref_name: Option<&str>,
    platforms: Vec<String>,
    force: bool,
    args: &RegistryArgs,
    out: &mut impl Write,
) -> ocicas::Result<()> {
    let engine = crate::open(layout)?;
    let options = RegistryOptions { platforms, force, ..args.options()? };
    let report = engine.pull(source, ref_name, &options)?;
    writeln!(out, "{}", report.to_json()).map_err(stdout_error)
}

pub fn push_layer_file(
    target: &str,
    file: &PathBuf,
    compression: &CompressionArgs,
    args: &RegistryArgs,
    out: &mut impl Write,
) -> ocicas::Result<()> {
    let layer_options = compression.options()?;
    let options = args.options()?;
    let layer = if file == Path::new("-") {
        push_layer(io::stdin().lock(), target, &layer_options, &options, &crate::limits())?
    } else {
        let tar = std::fs::File::open(file).map_err(|e| ocicas::Error::io("cannot open", file, e))?;
        push_layer(tar, target, &layer_options, &options, &crate::limits())?
    };
    writeln!(out, "{}", layer.to_json()).map_err(stdout_error)
}

/// One bar per blob on a terminal (a spinner for a streamed layer, whose size is unknown).
fn progress_bars() -> Option<Arc<Mutex<ocicas::registry::ProgressCallback>>> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let bars = MultiProgress::new();
    let mut by_blob: HashMap<String, ProgressBar> = HashMap::new();
    let callback = move |progress: &Progress<'_>| {
        let name = progress.digest.map_or_else(|| "layer".to_string(), |digest| digest.to_string());
        let bar = by_blob.entry(name.clone()).or_insert_with(|| {
            let bar = bars.add(match progress.total {
                Some(total) => ProgressBar::new(total),
                None => ProgressBar::new_spinner(),
            });
            let template = "{prefix} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec}";
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.set_prefix(name.chars().take(19).collect::<String>());
            bar
        });
        bar.set_position(progress.done);
        if progress.total == Some(progress.done) {
            bar.finish();
        }
    };
    Some(Arc::new(Mutex::new(callback)))
}
