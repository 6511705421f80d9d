//! `ocicas ref`: the references (tags) in index.json.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use ocicas::Digest;
use ocicas::spec::{Descriptor, detect_media_type};

use crate::text::escape_controls;
use crate::{Json, open, print_json, stdout_error};

#[derive(Subcommand)]
pub enum RefCommand {
    /// Point NAME at the blob DIGEST (media type and size read from the blob).
    Put {
        /// The OCI image layout whose index.json holds the reference.
        layout: PathBuf,
        /// The reference name (org.opencontainers.image.ref.name), e.g. app:1.0.
        name: String,
        /// The digest of the stored blob (a manifest or index) to point at, ALGORITHM:HEX.
        digest: String,
        /// Move the reference even when it points elsewhere.
        #[arg(long)]
        force: bool,
        /// Media type of the blob, when it cannot be read from the blob itself.
        #[arg(long)]
        media_type: Option<String>,
    },
    /// Print the descriptor NAME points at (JSON with or without --json).
    Get {
        /// The OCI image layout whose index.json holds the reference.
        layout: PathBuf,
        /// The reference name.
        name: String,
        #[command(flatten)]
        format: Json,
    },
    /// List references, one `NAME<TAB>DIGEST` line each; with --json, one
    /// {"name","descriptor"} each.
    #[command(visible_alias = "ls")]
    List {
        /// The OCI image layout whose references to list.
        layout: PathBuf,
        #[command(flatten)]
        format: Json,
    },
    /// Remove a reference (no error when it is absent).
    #[command(visible_alias = "rm")]
    Delete {
        /// The OCI image layout whose index.json holds the reference.
        layout: PathBuf,
        /// The reference name.
        name: String,
    },
}

pub fn run(command: RefCommand, out: &mut impl Write) -> ocicas::Result<()> {
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
        RefCommand::Get { layout, name, .. } => {
            let descriptor = open(&layout)?.ref_get(&name)?;
            writeln!(out, "{}", ocicas::spec::canonical_json_string(&descriptor)?).map_err(stdout_error)?;
        }
        RefCommand::List { layout, format } => {
            for (name, descriptor) in open(&layout)?.ref_list()? {
                if format.json {
                    print_json(&serde_json::json!({ "name": name, "descriptor": descriptor }), out)?;
                } else {
                    writeln!(out, "{}\t{}", escape_controls(&name), descriptor.digest).map_err(stdout_error)?;
                }
            }
        }
        RefCommand::Delete { layout, name } => open(&layout)?.ref_delete(&name)?,
    }
    Ok(())
}
