//! `ocicas blob` and `ocicas ingest`: the content store, its blobs and the ingests that become
//! blobs.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use clap::Subcommand;
use ocicas::{Algorithm, CopySource, Digest, Filters, Labels};

use crate::{Json, open, print_json, stdout_error};

#[derive(Subcommand)]
pub enum BlobCommand {
    /// Store a file (or stdin with `-`) and print its digest. With --ref the upload is an
    /// ingest: killed and run again, it continues where it stopped.
    Put {
        /// The OCI image layout to store the blob in.
        layout: PathBuf,
        /// The file to store, or - for stdin.
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
    /// Print a blob's info {"digest","size","createdAt","updatedAt","labels"} (JSON with or
    /// without --json).
    Info {
        /// The OCI image layout that holds the blob.
        layout: PathBuf,
        /// The blob's digest, ALGORITHM:HEX.
        digest: String,
        #[command(flatten)]
        format: Json,
    },
    /// Set labels (KEY=VALUE) or remove them (KEY=) on a blob; with none, remove all. Prints
    /// the blob's info as `info` does.
    #[command(visible_alias = "label")]
    UpdateLabels {
        /// The OCI image layout that holds the blob.
        layout: PathBuf,
        /// The blob's digest, ALGORITHM:HEX.
        digest: String,
        /// KEY=VALUE sets a label, KEY= removes it.
        labels: Vec<String>,
        #[command(flatten)]
        format: Json,
    },
    /// Write a blob's bytes to stdout, after checking they hash to its digest.
    #[command(visible_alias = "get")]
    Read {
        /// The OCI image layout that holds the blob.
        layout: PathBuf,
        /// The blob's digest, ALGORITHM:HEX.
        digest: String,
    },
    /// List the digests of all blobs, or of those matching a filter (containerd syntax:
    /// `labels.k==v,size==5`; several --filter are alternatives). With --json, each blob's
    /// info as `info` prints it.
    #[command(visible_alias = "ls")]
    List {
        /// The OCI image layout whose blobs to list.
        layout: PathBuf,
        #[arg(long = "filter")]
        filters: Vec<String>,
        #[command(flatten)]
        format: Json,
    },
    /// Remove a blob (no error when it is absent).
    #[command(visible_alias = "rm")]
    Delete {
        /// The OCI image layout that holds the blob.
        layout: PathBuf,
        /// The blob's digest, ALGORITHM:HEX.
        digest: String,
    },
}

#[derive(Subcommand)]
pub enum IngestCommand {
    /// List ingests in progress, one {"ref","offset","total","expected","startedAt","updatedAt"}
    /// per line (JSON with or without --json).
    #[command(visible_alias = "ls")]
    List {
        /// The OCI image layout whose ingests to list.
        layout: PathBuf,
        /// containerd filter over ref, expected, total, offset.
        #[arg(long = "filter")]
        filters: Vec<String>,
        #[command(flatten)]
        format: Json,
    },
    /// Remove an ingest.
    Abort {
        /// The OCI image layout that holds the ingest.
        layout: PathBuf,
        /// The ingest's ref, as given to `blob put --ref`.
        #[arg(value_name = "REF")]
        ref_name: String,
    },
}

pub fn run_blob(command: BlobCommand, out: &mut impl Write) -> ocicas::Result<()> {
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
        BlobCommand::Info { layout, digest, .. } => print_json(&open(&layout)?.info(&digest.parse()?)?.to_json(), out)?,
        BlobCommand::UpdateLabels { layout, digest, labels, .. } => {
            let engine = open(&layout)?;
            let parsed = parse_labels(&labels)?;
            let set: Labels = parsed.into_iter().filter(|(_, v)| !v.is_empty()).collect();
            let paths: Vec<String> =
                labels.iter().map(|l| format!("labels.{}", l.split('=').next().unwrap_or(l))).collect();
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
            print_json(&engine.update_labels(&digest.parse()?, &set, &paths)?.to_json(), out)?;
        }
        BlobCommand::Read { layout, digest } => {
            let engine = open(&layout)?;
            let digest: Digest = digest.parse()?;
            // Check first, then copy: nothing unverified reaches stdout.
            engine.verify_blob(&digest)?;
            let mut reader = engine.open_blob(&digest)?;
            io::copy(&mut reader, out).map_err(stdout_error)?;
        }
        BlobCommand::List { layout, filters, format } => {
            let filters = Filters::parse(&filters)?;
            open(&layout)?.walk(&filters, |info| {
                if format.json {
                    print_json(&info.to_json(), out)?;
                } else {
                    writeln!(out, "{}", info.digest).map_err(stdout_error)?;
                }
                Ok(true)
            })?;
        }
        BlobCommand::Delete { layout, digest } => open(&layout)?.delete_blob(&digest.parse()?)?,
    }
    Ok(())
}

pub fn run_ingest(command: IngestCommand, out: &mut impl Write) -> ocicas::Result<()> {
    match command {
        IngestCommand::List { layout, filters, .. } => {
            for status in open(&layout)?.ingest_list(&Filters::parse(&filters)?)? {
                print_json(&status.to_json(), out)?;
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
