//! `ocicas ref`: the references (tags) in index.json.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use ocicas::Digest;
use ocicas::spec::{Descriptor, detect_media_type};

use crate::{open, stdout_error};

#[derive(Subcommand)]
pub enum RefCommand {
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
