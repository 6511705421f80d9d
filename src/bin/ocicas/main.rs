//! The `ocicas` command-line tool: the Rust API for people and scripts.

mod archive;
mod demo;
mod layer;
mod registry;

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{Parser, Subcommand};
use ocicas::spec::{Descriptor, detect_media_type};
use ocicas::{
    Algorithm, CopySource, Digest, Engine, Filters, FsckOptions, GcOptions, GcReport, Labels, LeaseResource, Limits,
    OpenOptions,
};

/// An OCI content-addressable blob store over a standard OCI image layout.
#[derive(Parser)]
#[command(name = "ocicas", version)]
struct Cli {
    /// Set a limit for this run, NAME=VALUE (repeatable; the names and defaults are in the
    /// README's limits table, e.g. json_size=8388608, threads=4).
    #[arg(long = "limit", value_name = "NAME=VALUE", global = true)]
    limits: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new, empty OCI image layout.
    Init { layout: PathBuf },
    /// Blobs: put, get, ls, rm.
    #[command(subcommand)]
    Blob(BlobCommand),
    /// References (tags) in index.json: put, get, ls, rm.
    #[command(subcommand)]
    Ref(RefCommand),
    /// Ingests in progress: ls, abort.
    #[command(subcommand)]
    Ingest(IngestCommand),
    /// Check every blob's hash and every descriptor reachable from index.json; exit 1 when
    /// there are problems.
    Fsck {
        layout: PathBuf,
        /// Also decompress every layer of every image and check it against its DiffID.
        #[arg(long)]
        deep: bool,
    },
    /// Remove blobs no reference, lease or GC label keeps, expired ingests and leases.
    Gc {
        layout: PathBuf,
        /// Report what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Remove ingests not updated for this long (e.g. 24h, 30m, 0s = every idle ingest).
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ingest_expiry: std::time::Duration,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compress an uncompressed tar (FILE or stdin) into a layer blob; prints
    /// {"mediaType","digest","size","diffID"}.
    Layer {
        layout: PathBuf,
        #[arg(default_value = "-")]
        file: PathBuf,
        #[command(flatten)]
        compression: layer::CompressionArgs,
    },
    /// Append a layer made from a directory or a tar to image REF (created when missing);
    /// prints the new manifest's descriptor.
    Append {
        layout: PathBuf,
        #[arg(value_name = "REF")]
        ref_name: String,
        /// Build the layer from this directory tree.
        #[arg(long, conflicts_with = "tar", required_unless_present = "tar")]
        dir: Option<PathBuf>,
        /// Use this uncompressed tar (or - for stdin) as the layer.
        #[arg(long)]
        tar: Option<PathBuf>,
        #[command(flatten)]
        compression: layer::CompressionArgs,
    },
    /// Leases keep blobs and ingests from GC: new, add, rm, ls.
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// docker-archive (docker save) tarballs: import, export, ls.
    #[command(subcommand, name = "docker-archive")]
    DockerArchive(archive::ArchiveCommand),
    /// Push image REF of the layout to HOST/REPO[:TAG] (without a tag: by digest); prints
    /// {"descriptor", "blobs": {"transferred","bytes","skipped","mounted"}}.
    Push {
        layout: PathBuf,
        #[arg(value_name = "REF")]
        ref_name: String,
        #[arg(value_name = "HOST/REPO[:TAG]")]
        target: String,
        /// Mount blobs from this repository of the same registry instead of uploading them.
        #[arg(long, value_name = "REPO")]
        mount_from: Option<String>,
        #[command(flatten)]
        registry: registry::RegistryArgs,
    },
    /// Pull HOST/REPO[:TAG|@DIGEST] into the layout and tag it REF (default: the tag); an
    /// interrupted pull resumes where it stopped. Prints the same report as push.
    Pull {
        #[arg(value_name = "HOST/REPO[:TAG|@DIGEST]")]
        source: String,
        layout: PathBuf,
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
    },
    /// Compress an uncompressed tar (FILE or stdin) and upload it to HOST/REPO while it is
    /// compressed, nothing written to disk; prints {"mediaType","digest","size","diffID"}.
    PushLayer {
        #[arg(value_name = "HOST/REPO")]
        target: String,
        #[arg(default_value = "-")]
        file: PathBuf,
        #[command(flatten)]
        compression: layer::CompressionArgs,
        #[command(flatten)]
        registry: registry::RegistryArgs,
    },
    /// Build a small image in a layout, tag it and check it, printing each step.
    Demo {
        #[arg(default_value = "demo-layout")]
        layout: PathBuf,
    },
}

#[derive(Subcommand)]
enum BlobCommand {
    /// Store a file (or stdin with `-`) and print its digest. With --ref the upload is an
    /// ingest: killed and run again, it continues where it stopped.
    Put {
        layout: PathBuf,
        #[arg(default_value = "-")]
        file: PathBuf,
        /// Digest algorithm: sha256 or sha512 (without --ref).
        #[arg(long, default_value = "sha256")]
        algorithm: String,
        /// Ingest ref: makes the put resumable.
        #[arg(long = "ref")]
        ref_name: Option<String>,
        /// Digest the content must have; returns at once when it is already stored.
        #[arg(long)]
        expect: Option<String>,
        /// Labels to set on the committed blob, KEY=VALUE.
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// Print a blob's info (digest, size, times, labels) as JSON.
    Info { layout: PathBuf, digest: String },
    /// Set labels (KEY=VALUE) or remove them (KEY=) on a blob; with none, remove all.
    Label { layout: PathBuf, digest: String, labels: Vec<String> },
    /// Write a blob's bytes to stdout, after checking they hash to its digest.
    Get { layout: PathBuf, digest: String },
    /// List the digests of all blobs, or of those matching a filter (containerd syntax:
    /// `labels.k==v,size==5`; several --filter are alternatives).
    Ls {
        layout: PathBuf,
        #[arg(long = "filter")]
        filters: Vec<String>,
    },
    /// Remove a blob (no error when it is absent).
    Rm { layout: PathBuf, digest: String },
}

#[derive(Subcommand)]
enum RefCommand {
    /// Point NAME at the blob DIGEST (media type and size read from the blob).
    Put {
        layout: PathBuf,
        name: String,
        digest: String,
        /// Move the reference even when it points elsewhere.
        #[arg(long)]
        force: bool,
        /// Media type of the blob, when it cannot be read from the blob itself.
        #[arg(long)]
        media_type: Option<String>,
    },
    /// Print the descriptor NAME points at, as JSON.
    Get { layout: PathBuf, name: String },
    /// List references, one `NAME<TAB>DIGEST` line each.
    Ls { layout: PathBuf },
    /// Remove a reference (no error when it is absent).
    Rm { layout: PathBuf, name: String },
}

#[derive(Subcommand)]
enum IngestCommand {
    /// List ingests in progress as JSON lines (ref, offset, total, expected, times).
    Ls {
        layout: PathBuf,
        /// containerd filter over ref, expected, total, offset.
        #[arg(long = "filter")]
        filters: Vec<String>,
    },
    /// Remove an ingest.
    Abort { layout: PathBuf, ref_name: String },
}

#[derive(Subcommand)]
enum LeaseCommand {
    /// Create a lease and print its id.
    New {
        layout: PathBuf,
        #[arg(long)]
        id: Option<String>,
        /// Expire after this long (e.g. 1h; at most until the end of year 9999); never when
        /// absent.
        #[arg(long, value_parser = humantime::parse_duration)]
        expiry: Option<std::time::Duration>,
    },
    /// Add a blob (DIGEST) or an ingest (--ingest REF) to a lease.
    Add {
        layout: PathBuf,
        id: String,
        digest: Option<String>,
        #[arg(long = "ingest", conflicts_with = "digest")]
        ingest_ref: Option<String>,
    },
    /// Release a lease.
    Rm { layout: PathBuf, id: String },
    /// List leases as JSON lines.
    Ls { layout: PathBuf },
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
        Ok(code) => code,
        Err(err) => {
            eprintln!("ocicas: {err}");
            ExitCode::from(2)
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

fn run(command: Command) -> ocicas::Result<ExitCode> {
    let mut out = io::stdout().lock();
    match command {
        Command::Init { layout } => {
            let mut engine = Engine::create(&layout)?;
            engine.set_limits(limits());
            writeln!(out, "created OCI image layout {}", engine.root().display()).map_err(stdout_error)?;
        }
        Command::Blob(command) => run_blob(command, &mut out)?,
        Command::Ref(command) => run_ref(command, &mut out)?,
        Command::Ingest(command) => run_ingest(command, &mut out)?,
        Command::Fsck { layout, deep } => {
            let report = open(&layout)?.fsck_with(&FsckOptions { deep })?;
            for problem in &report.problems {
                writeln!(out, "{problem}").map_err(stdout_error)?;
            }
            if report.is_sound() {
                writeln!(out, "sound: {} blobs, {} reachable", report.blobs_checked, report.reachable)
                    .map_err(stdout_error)?;
            }
            for note in &report.notes {
                writeln!(out, "note: {note}").map_err(stdout_error)?;
            }
            if !report.is_sound() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Gc { layout, dry_run, ingest_expiry, json } => {
            let report = open(&layout)?.gc(&GcOptions { dry_run, ingest_expiry })?;
            if json {
                writeln!(out, "{}", report.to_json()).map_err(stdout_error)?;
            } else {
                print_gc_report(&report, &mut out).map_err(stdout_error)?;
            }
        }
        Command::Lease(command) => run_lease(command, &mut out)?,
        Command::DockerArchive(command) => archive::run(command, &mut out)?,
        Command::Layer { layout, file, compression } => {
            let engine = open(&layout)?;
            let layer = layer::build_layer(&engine, &layer::LayerInput::Tar(file), &compression.options()?)?;
            writeln!(out, "{}", layer.to_json()).map_err(stdout_error)?;
        }
        Command::Append { layout, ref_name, dir, tar, compression } => {
            let engine = open(&layout)?;
            let input = match (dir, tar) {
                (Some(dir), _) => layer::LayerInput::Dir(dir),
                (None, Some(tar)) => layer::LayerInput::Tar(tar),
                (None, None) => return Err(ocicas::error::invalid_argument("give --dir DIR or --tar FILE")),
            };
            let (_, manifest) = layer::append(&engine, &ref_name, &input, &compression.options()?, "ocicas append")?;
            writeln!(out, "{}", ocicas::spec::canonical_json_string(&manifest)?).map_err(stdout_error)?;
        }
        Command::Push { layout, ref_name, target, mount_from, registry } => {
            registry::push(&layout, &ref_name, &target, mount_from, &registry, &mut out)?
        }
        Command::Pull { source, layout, ref_name, platforms, force, registry } => {
            registry::pull(&source, &layout, ref_name.as_deref(), platforms, force, &registry, &mut out)?
        }
        Command::PushLayer { target, file, compression, registry } => {
            registry::push_layer_file(&target, &file, &compression, &registry, &mut out)?
        }
        Command::Demo { layout } => demo::run(&layout, &mut out)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn run_blob(command: BlobCommand, out: &mut impl Write) -> ocicas::Result<()> {
    match command {
        BlobCommand::Put { layout, file, algorithm, ref_name, expect, labels } => {
            let engine = open(&layout)?;
            let expect = expect.map(|d| d.parse::<Digest>()).transpose()?;
            let labels = parse_labels(&labels)?;
            let mut stdin = io::stdin().lock();
            let mut opened_file = if file == Path::new("-") {
                None
            } else {
                Some(std::fs::File::open(&file).map_err(|e| ocicas::Error::io("cannot open", &file, e))?)
            };
            let digest = match ref_name {
                Some(ref_name) => {
                    // A regular file is skipped ahead by seeking; stdin, a pipe or a FIFO by
                    // reading and discarding.
                    let seekable = opened_file.as_ref().is_some_and(|f| f.metadata().is_ok_and(|m| m.is_file()));
                    let source = match opened_file.as_mut() {
                        Some(f) if seekable => CopySource::Seeker(f),
                        Some(f) => CopySource::Reader(f),
                        None => CopySource::Reader(&mut stdin),
                    };
                    engine.write_blob(&ref_name, source, None, expect.as_ref(), &labels)?
                }
                None => {
                    let input: &mut dyn Read = match opened_file.as_mut() {
                        Some(f) => f,
                        None => &mut stdin,
                    };
                    match expect {
                        Some(expect) => engine.put_blob_expected(input, &expect, &labels)?,
                        None => {
                            let blob = engine.put_blob_from(Algorithm::from_name(&algorithm)?, input)?;
                            if !labels.is_empty() {
                                engine.update_labels(&blob.digest, &labels, &[])?;
                            }
                            blob.digest
                        }
                    }
                }
            };
            writeln!(out, "{digest}").map_err(stdout_error)?;
        }
        BlobCommand::Info { layout, digest } => {
            let info = open(&layout)?.info(&digest.parse()?)?;
            writeln!(out, "{}", info.to_json()).map_err(stdout_error)?;
        }
        BlobCommand::Label { layout, digest, labels } => {
            let engine = open(&layout)?;
            let parsed = parse_labels(&labels)?;
            let set: Labels = parsed.into_iter().filter(|(_, v)| !v.is_empty()).collect();
            let paths: Vec<String> =
                labels.iter().map(|l| format!("labels.{}", l.split('=').next().unwrap_or(l))).collect();
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
            let info = engine.update_labels(&digest.parse()?, &set, &paths)?;
            writeln!(out, "{}", info.to_json()).map_err(stdout_error)?;
        }
        BlobCommand::Get { layout, digest } => {
            let engine = open(&layout)?;
            let digest: Digest = digest.parse()?;
            // Check first, then copy: nothing unverified reaches stdout.
            engine.verify_blob(&digest)?;
            let mut reader = engine.open_blob(&digest)?;
            io::copy(&mut reader, out).map_err(stdout_error)?;
        }
        BlobCommand::Ls { layout, filters } => {
            let filters = Filters::parse(&filters)?;
            open(&layout)?.walk(&filters, |info| {
                writeln!(out, "{}", info.digest).map_err(stdout_error)?;
                Ok(true)
            })?;
        }
        BlobCommand::Rm { layout, digest } => open(&layout)?.delete_blob(&digest.parse()?)?,
    }
    Ok(())
}

fn run_ref(command: RefCommand, out: &mut impl Write) -> ocicas::Result<()> {
    match command {
        RefCommand::Put { layout, name, digest, force, media_type } => {
            let engine = open(&layout)?;
            let digest: Digest = digest.parse()?;
            let size = engine.blob_size(&digest)?;
            let media_type = match media_type {
                Some(media_type) => media_type,
                None => {
                    let bytes = engine.read_blob(&digest, engine.max_json_size())?;
                    detect_media_type(&bytes).ok_or_else(|| {
                        ocicas::error::invalid_argument(format!(
                            "cannot tell the media type of blob {digest}; pass --media-type"
                        ))
                    })?
                }
            };
            engine.ref_put(&name, &Descriptor::new(media_type, digest, size), force)?;
        }
        RefCommand::Get { layout, name } => {
            let descriptor = open(&layout)?.ref_get(&name)?;
            writeln!(out, "{}", ocicas::spec::canonical_json_string(&descriptor)?).map_err(stdout_error)?;
        }
        RefCommand::Ls { layout } => {
            for (name, descriptor) in open(&layout)?.ref_list()? {
                writeln!(out, "{name}\t{}", descriptor.digest).map_err(stdout_error)?;
            }
        }
        RefCommand::Rm { layout, name } => open(&layout)?.ref_delete(&name)?,
    }
    Ok(())
}

fn print_gc_report(report: &GcReport, out: &mut impl Write) -> io::Result<()> {
    let verb = if report.dry_run { "would remove" } else { "removed" };
    writeln!(
        out,
        "{verb} {} blobs ({} bytes); kept {} blobs ({} bytes)",
        report.blobs_removed, report.bytes_removed, report.blobs_kept, report.bytes_kept
    )?;
    writeln!(
        out,
        "{verb} {} ingests, {} expired leases, {} temp files, {} orphan label files",
        report.ingests_removed.len(),
        report.leases_removed,
        report.temp_files_removed,
        report.labels_removed
    )?;
    for missing in &report.missing {
        writeln!(out, "missing: {missing}")?;
    }
    for not_removed in &report.not_removed {
        writeln!(out, "not removed: {not_removed}")?;
    }
    Ok(())
}

fn run_lease(command: LeaseCommand, out: &mut impl Write) -> ocicas::Result<()> {
    match command {
        LeaseCommand::New { layout, id, expiry } => {
            let lease = open(&layout)?.lease_new(id.as_deref(), expiry)?;
            writeln!(out, "{}", lease.id).map_err(stdout_error)?;
        }
        LeaseCommand::Add { layout, id, digest, ingest_ref } => {
            let resource = match (digest, ingest_ref) {
                (Some(digest), None) => LeaseResource::Blob(digest.parse()?),
                (None, Some(ingest_ref)) => LeaseResource::Ingest(ingest_ref),
                _ => return Err(ocicas::error::invalid_argument("give a DIGEST or --ingest REF")),
            };
            open(&layout)?.lease_add(&id, resource)?;
        }
        LeaseCommand::Rm { layout, id } => open(&layout)?.lease_release(&id)?,
        LeaseCommand::Ls { layout } => {
            for lease in open(&layout)?.lease_list()? {
                writeln!(out, "{}", lease.to_json()).map_err(stdout_error)?;
            }
        }
    }
    Ok(())
}

fn run_ingest(command: IngestCommand, out: &mut impl Write) -> ocicas::Result<()> {
    match command {
        IngestCommand::Ls { layout, filters } => {
            for status in open(&layout)?.ingest_list(&Filters::parse(&filters)?)? {
                writeln!(out, "{}", status.to_json()).map_err(stdout_error)?;
            }
        }
        IngestCommand::Abort { layout, ref_name } => open(&layout)?.ingest_abort(&ref_name)?,
    }
    Ok(())
}

/// KEY=VALUE arguments; an empty VALUE stands for removal where the command allows it.
fn parse_labels(args: &[String]) -> ocicas::Result<Labels> {
    args.iter()
        .map(|arg| match arg.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => Err(ocicas::error::invalid_argument(format!("label {arg:?} is not KEY=VALUE"))),
        })
        .collect()
}

pub(crate) fn stdout_error(err: io::Error) -> ocicas::Error {
    ocicas::Error::new(ocicas::ErrorKind::Io, format!("cannot write to stdout: {err}"))
}
