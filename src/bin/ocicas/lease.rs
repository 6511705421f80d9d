//! `ocicas lease`: leases that keep blobs and ingests from GC.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use ocicas::LeaseResource;

use crate::{open, stdout_error};

#[derive(Subcommand)]
pub enum LeaseCommand {
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

pub fn run(command: LeaseCommand, out: &mut impl Write) -> ocicas::Result<()> {
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
