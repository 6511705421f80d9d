//! `ocicas lease`: leases that keep blobs and ingests from GC.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use ocicas::LeaseResource;

use crate::{Json, open, print_json, stdout_error};

#[derive(Subcommand)]
pub enum LeaseCommand {
    /// Create a lease and print its id.
    New {
        /// The OCI image layout to keep the lease in.
        layout: PathBuf,
        /// The lease's id (default: a new unique one): 1 to 128 of [A-Za-z0-9._-].
        #[arg(long)]
        id: Option<String>,
        /// Expire after this long (e.g. 1h; at most until the end of year 9999); never when
        /// absent.
        #[arg(long, value_parser = humantime::parse_duration)]
        expiry: Option<std::time::Duration>,
    },
    /// Add a blob (DIGEST) or an ingest (--ingest REF) to a lease.
    Add {
        /// The OCI image layout that holds the lease.
        layout: PathBuf,
        /// The lease's id.
        id: String,
        /// The digest of the blob to keep, ALGORITHM:HEX (it need not be stored yet).
        #[arg(required_unless_present = "ingest_ref")]
        digest: Option<String>,
        /// The ref of the ingest to keep.
        #[arg(long = "ingest", value_name = "REF", conflicts_with = "digest")]
        ingest_ref: Option<String>,
    },
    /// Release a lease.
    #[command(visible_alias = "rm")]
    Release {
        /// The OCI image layout that holds the lease.
        layout: PathBuf,
        /// The lease's id.
        id: String,
    },
    /// List leases, one {"id","createdAt","expiresAt","digests","ingests"} per line (JSON
    /// with or without --json; expiresAt absent for a lease that never expires).
    #[command(visible_alias = "ls")]
    List {
        /// The OCI image layout whose leases to list.
        layout: PathBuf,
        #[command(flatten)]
        format: Json,
    },
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
        LeaseCommand::Release { layout, id } => open(&layout)?.lease_release(&id)?,
        LeaseCommand::List { layout, .. } => {
            for lease in open(&layout)?.lease_list()? {
                print_json(&lease.to_json(), out)?;
            }
        }
    }
    Ok(())
}
