//! The `ocicas` command-line tool: the Rust API for people and scripts. This file parses the
//! arguments and hands each command to the module of its concept.

mod archive;
mod content;
mod demo;
mod exit;
mod layer;
mod lease;
mod maintenance;
mod refs;
mod registry;
mod text;
mod walk;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{ArgGroup, Args, Parser, Subcommand};
use ocicas::{Engine, FsckOptions, Limits, OpenOptions};

/// An OCI content-addressable blob store over a standard OCI image layout.
#[derive(Parser)]
#[command(name = "ocicas", version, after_help = exit::help())]
struct Cli {
    /// Set a limit for this run, NAME=VALUE (repeatable; the names and defaults are in the
    /// README's limits table, e.g. json_size=8388608, threads=64).
    #[arg(long = "limit", value_name = "NAME=VALUE", global = true)]
    limits: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

/// `--json`, on every command that prints a value.
#[derive(Args, Clone, Copy, Debug)]
pub struct Json {
    /// Print JSON: one value per line, each in the library's JSON form (docs/CLI.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new, empty OCI image layout.
    Init {
        /// The directory to create the layout in (created when missing; must be empty).
        layout: PathBuf,
    },
    /// Blobs: put, read (get), info, update-labels (label), list (ls), delete (rm).
    #[command(subcommand)]
    Blob(content::BlobCommand),
    /// References (tags) in index.json: put, get, list (ls), delete (rm).
    #[command(subcommand)]
    Ref(refs::RefCommand),
    /// Ingests in progress: list (ls), abort.
    #[command(subcommand)]
    Ingest(content::IngestCommand),
    /// Check every blob's hash and every descriptor reachable from index.json; print the
    /// problems and exit 3 when there are any.
    Fsck {
        /// The OCI image layout to check.
        layout: PathBuf,
        /// Also decompress every layer of every image and check it against its DiffID.
        #[arg(long)]
        deep: bool,
        /// Check the structure only (the graph, each reachable blob's presence and size): hash
        /// no blob, so a blob changed in place goes unnoticed.
        #[arg(long)]
        no_hash: bool,
        #[command(flatten)]
        format: Json,
    },
    /// Remove blobs no reference, lease or GC label keeps, expired ingests and leases; blobs
    /// committed while it runs, or in the second before, are kept with what they reference.
    Gc {
        /// The OCI image layout to collect.
        layout: PathBuf,
        /// Report what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Remove ingests not updated for this long (e.g. 24h, 30m, 0s = every idle ingest).
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ingest_expiry: std::time::Duration,
        /// Keep, with what they reference, blobs committed within this long before the run (e.g.
        /// 10m). Blobs committed during the run, or in the second before it, are always kept.
        #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
        min_age: std::time::Duration,
        #[command(flatten)]
        format: Json,
    },
    /// Compress an uncompressed tar (FILE or stdin) into a layer blob; prints
    /// {"mediaType","digest","size","diffID"} (JSON with or without --json).
    Layer {
        /// The OCI image layout to store the layer in.
        layout: PathBuf,
        /// The uncompressed tar, or - for stdin.
        #[arg(default_value = "-")]
        file: PathBuf,
        #[command(flatten)]
        compression: layer::CompressionArgs,
        #[command(flatten)]
        format: Json,
    },
    /// Append a layer made from a directory or a tar to image REF (created when missing);
    /// prints the new manifest's descriptor (JSON with or without --json).
    #[command(group(ArgGroup::new("input").required(true).args(["dir", "tar"])))]
    Append {
        /// The OCI image layout that holds (or will hold) the image.
        layout: PathBuf,
        /// The reference (tag) of the image in index.json; it is moved to the new manifest.
        #[arg(value_name = "REF")]
        ref_name: String,
        /// Build the layer from this directory tree.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Use this uncompressed tar (or - for stdin) as the layer.
        #[arg(long)]
        tar: Option<PathBuf>,
        #[command(flatten)]
        compression: layer::CompressionArgs,
        #[command(flatten)]
        format: Json,
    },
    /// Print the graph of image REF as GC and fsck walk it: each blob once, indented by its
    /// depth, as `DIGEST<TAB>MEDIA TYPE<TAB>SIZE` (with `<TAB>error: MESSAGE` for a blob the
    /// walk could not go into); with --json, one walk step each. Exits with the status of the
    /// first such error, after printing every step.
    Walk {
        /// The OCI image layout that holds the image.
        layout: PathBuf,
        /// The reference (tag) of the image in index.json.
        #[arg(value_name = "REF")]
        ref_name: String,
        #[command(flatten)]
        format: Json,
    },
    /// Leases keep blobs and ingests from GC: new, add, release (rm), list (ls).
    #[command(subcommand)]
    Lease(lease::LeaseCommand),
    /// docker-archive (docker save) tarballs: import, export, list (ls).
    #[command(subcommand, name = "docker-archive")]
    DockerArchive(archive::ArchiveCommand),
    /// Push image REF of the layout to HOST/REPO[:TAG] (without a tag: by digest); prints
    /// {"descriptor", "blobs": {"transferred","bytes","skipped","mounted"}} (JSON with or
    /// without --json).
    Push {
        /// The OCI image layout that holds the image.
        layout: PathBuf,
        /// The reference (tag) of the image in the layout's index.json.
        #[arg(value_name = "REF")]
        ref_name: String,
        /// Where to push: registry host, repository and optional tag.
        #[arg(value_name = "HOST/REPO[:TAG]")]
        target: String,
        /// Mount blobs from this repository of the same registry instead of uploading them.
        #[arg(long, value_name = "REPO")]
        mount_from: Option<String>,
        #[command(flatten)]
        registry: registry::RegistryArgs,
        #[command(flatten)]
        format: Json,
    },
    /// Pull HOST/REPO[:TAG|@DIGEST] into the layout and tag it REF (default: the tag); an
    /// interrupted pull resumes where it stopped. Prints the same report as push. The old order
    /// `pull SOURCE LAYOUT` still works, with a warning, when SOURCE is not a directory and
    /// LAYOUT is an OCI image layout.
    Pull {
        /// The OCI image layout to pull into (it must exist: `ocicas init`).
        layout: PathBuf,
        /// What to pull: registry host, repository, and a tag or a digest.
        #[arg(value_name = "HOST/REPO[:TAG|@DIGEST]")]
        source: String,
        /// The reference (tag) to give the image in the layout (default: the source's tag).
        #[arg(value_name = "REF")]
        ref_name: Option<String>,
        /// Of an index, pull only this platform (os/arch[/variant]); repeatable.
        #[arg(long = "platform")]
        platforms: Vec<String>,
        /// Move REF when it points to another image.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        registry: registry::RegistryArgs,
        #[command(flatten)]
        format: Json,
    },
    /// Compress an uncompressed tar (FILE or stdin) and upload it to HOST/REPO while it is
    /// compressed, nothing written to disk; prints {"mediaType","digest","size","diffID"}
    /// (JSON with or without --json).
    PushLayer {
        /// The registry host and repository to upload the layer blob to.
        #[arg(value_name = "HOST/REPO")]
        target: String,
        /// The uncompressed tar, or - for stdin.
        #[arg(default_value = "-")]
        file: PathBuf,
        #[command(flatten)]
        compression: layer::CompressionArgs,
        #[command(flatten)]
        registry: registry::RegistryArgs,
        #[command(flatten)]
        format: Json,
    },
    /// Build a small image in a layout, tag it and check it, printing each step.
    Demo {
        /// The OCI image layout to build the image in (created when missing).
        #[arg(default_value = "demo-layout")]
        layout: PathBuf,
    },
}

/// The limits of this run: the defaults with every `--limit` applied.
static LIMITS: OnceLock<Limits> = OnceLock::new();

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = parse_limits(&cli.limits).and_then(|limits| {
        LIMITS.get_or_init(|| limits);
        run(cli.command)
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("ocicas: {}", text::escape_controls(&err.to_string()));
            ExitCode::from(exit::of_error(err.kind()))
        }
    }
}

fn parse_limits(settings: &[String]) -> ocicas::Result<Limits> {
    let mut limits = Limits::default();
    for setting in settings {
        limits.set_from_text(setting)?;
    }
    Ok(limits)
}

pub(crate) fn limits() -> Limits {
    LIMITS.get().copied().unwrap_or_default()
}

/// Opens a layout with this run's limits (creating it when `create` and nothing is there).
pub(crate) fn open_with(layout: &Path, create: bool) -> ocicas::Result<Engine> {
    Engine::open(layout, &OpenOptions { create, limits: limits() })
}

pub(crate) fn open(layout: &Path) -> ocicas::Result<Engine> {
    open_with(layout, false)
}

/// Runs `command`; its exit status when it succeeds.
fn run(command: Command) -> ocicas::Result<u8> {
    let mut out = io::stdout().lock();
    match command {
        Command::Init { layout } => {
            let mut engine = Engine::create(&layout)?;
            engine.set_limits(limits());
            writeln!(out, "created OCI image layout {}", engine.root().display()).map_err(stdout_error)?;
        }
        Command::Blob(command) => content::run_blob(command, &mut out)?,
        Command::Ref(command) => refs::run(command, &mut out)?,
        Command::Ingest(command) => content::run_ingest(command, &mut out)?,
        Command::Fsck { layout, deep, no_hash, format } => {
            return maintenance::fsck(&layout, &FsckOptions { deep, no_hash }, format, &mut out);
        }
        Command::Gc { layout, dry_run, ingest_expiry, min_age, format } => {
            let options = ocicas::GcOptions { dry_run, ingest_expiry, min_age, ..Default::default() };
            maintenance::gc(&layout, &options, format, &mut out)?
        }
        Command::Walk { layout, ref_name, format } => walk::run(&layout, &ref_name, format, &mut out)?,
        Command::Lease(command) => lease::run(command, &mut out)?,
        Command::DockerArchive(command) => archive::run(command, &mut out)?,
        Command::Layer { layout, file, compression, .. } => layer::run_layer(&layout, file, &compression, &mut out)?,
        Command::Append { layout, ref_name, dir, tar, compression, .. } => {
            layer::run_append(&layout, &ref_name, dir, tar, &compression, &mut out)?
        }
        Command::Push { layout, ref_name, target, mount_from, registry, .. } => {
            registry::push(&layout, &ref_name, &target, mount_from, &registry, &mut out)?
        }
        Command::Pull { layout, source, ref_name, platforms, force, registry, .. } => {
            let (layout, source) = pull_order(layout, source)?;
            registry::pull(&source, &layout, ref_name.as_deref(), platforms, force, &registry, &mut out)?
        }
        Command::PushLayer { target, file, compression, registry, .. } => {
            registry::push_layer_file(&target, &file, &compression, &registry, &mut out)?
        }
        Command::Demo { layout } => demo::run(&layout, &mut out)?,
    }
    Ok(exit::OK)
}

/// The layout and the source of `pull FIRST SECOND`: `pull LAYOUT SOURCE`, or the old order
/// `pull SOURCE LAYOUT` (with a warning) when it cannot be the new one: FIRST is not a
/// directory and SECOND is an OCI image layout.
fn pull_order(first: PathBuf, second: String) -> ocicas::Result<(PathBuf, String)> {
    if first.is_dir() || !Path::new(&second).join("oci-layout").is_file() {
        return Ok((first, second));
    }
    let source = first
        .into_os_string()
        .into_string()
        .map_err(|source| ocicas::error::invalid_argument(format!("the registry reference {source:?} is not UTF-8")))?;
    eprintln!("ocicas: warning: `pull SOURCE LAYOUT` is the old order; write `ocicas pull {second} {source}`");
    Ok((PathBuf::from(second), source))
}

/// Writes `value` as one line of JSON.
pub(crate) fn print_json(value: &serde_json::Value, out: &mut impl Write) -> ocicas::Result<()> {
    writeln!(out, "{value}").map_err(stdout_error)
}

pub(crate) fn stdout_error(err: io::Error) -> ocicas::Error {
    ocicas::Error::new(ocicas::ErrorKind::Io, format!("cannot write to stdout: {err}"))
}
