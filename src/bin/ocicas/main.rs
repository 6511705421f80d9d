//! The `ocicas` command-line tool: the Rust API for people and scripts.

mod demo;

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ocicas::spec::{Descriptor, detect_media_type};
use ocicas::{Algorithm, Digest, Engine, OpenOptions};

/// An OCI content-addressable blob store over a standard OCI image layout.
#[derive(Parser)]
#[command(name = "ocicas", version)]
struct Cli {
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
    /// Check every blob's hash and every descriptor reachable from index.json.
    Fsck { layout: PathBuf },
    /// Build a small image in a layout, tag it and check it, printing each step.
    Demo {
        #[arg(default_value = "demo-layout")]
        layout: PathBuf,
    },
}

#[derive(Subcommand)]
enum BlobCommand {
    /// Store a file (or stdin with `-`) and print its digest.
    Put {
        layout: PathBuf,
        #[arg(default_value = "-")]
        file: PathBuf,
        /// Digest algorithm: sha256 or sha512.
        #[arg(long, default_value = "sha256")]
        algorithm: String,
    },
    /// Write a blob's bytes to stdout, after checking they hash to its digest.
    Get { layout: PathBuf, digest: String },
    /// List the digests of all blobs.
    Ls { layout: PathBuf },
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

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ocicas: {err}");
            ExitCode::from(2)
        }
    }
}

fn open(layout: &Path) -> ocicas::Result<Engine> {
    Engine::open(layout, &OpenOptions::default())
}

fn run(command: Command) -> ocicas::Result<ExitCode> {
    let mut out = io::stdout().lock();
    match command {
        Command::Init { layout } => {
            let engine = Engine::create(&layout)?;
            writeln!(out, "created OCI image layout {}", engine.root().display()).map_err(stdout_error)?;
        }
        Command::Blob(command) => run_blob(command, &mut out)?,
        Command::Ref(command) => run_ref(command, &mut out)?,
        Command::Fsck { layout } => {
            let report = open(&layout)?.fsck()?;
            for problem in &report.problems {
                writeln!(out, "{problem}").map_err(stdout_error)?;
            }
            if !report.is_sound() {
                return Ok(ExitCode::from(1));
            }
            writeln!(out, "sound: {} blobs, {} reachable", report.blobs_checked, report.reachable)
                .map_err(stdout_error)?;
        }
        Command::Demo { layout } => demo::run(&layout, &mut out)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn run_blob(command: BlobCommand, out: &mut impl Write) -> ocicas::Result<()> {
    match command {
        BlobCommand::Put { layout, file, algorithm } => {
            let engine = open(&layout)?;
            let algorithm = Algorithm::from_name(&algorithm)?;
            let input: Box<dyn Read> = if file == Path::new("-") {
                Box::new(io::stdin().lock())
            } else {
                Box::new(std::fs::File::open(&file).map_err(|e| ocicas::Error::io("cannot open", &file, e))?)
            };
            let blob = engine.put_blob_from(algorithm, input)?;
            writeln!(out, "{}", blob.digest).map_err(stdout_error)?;
        }
        BlobCommand::Get { layout, digest } => {
            let engine = open(&layout)?;
            let digest: Digest = digest.parse()?;
            // Check first, then copy: nothing unverified reaches stdout.
            engine.verify_blob(&digest)?;
            let mut reader = engine.open_blob(&digest)?;
            io::copy(&mut reader, out).map_err(stdout_error)?;
        }
        BlobCommand::Ls { layout } => {
            for digest in open(&layout)?.list_blobs()? {
                writeln!(out, "{digest}").map_err(stdout_error)?;
            }
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

fn stdout_error(err: io::Error) -> ocicas::Error {
    ocicas::Error::new(ocicas::ErrorKind::Io, format!("cannot write to stdout: {err}"))
}
