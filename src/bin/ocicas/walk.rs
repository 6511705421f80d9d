//! `ocicas walk`: the graph of an image, one blob per line, as GC and fsck walk it.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;

use ocicas::{Cancel, Error};

use crate::text::escape_controls;
use crate::{Json, open, print_json, stdout_error};

/// Prints each step of the walk of `ref_name`; then fails with the error of the first blob the
/// walk could not go into, if any, so that the exit status says why.
pub fn run(layout: &Path, ref_name: &str, format: Json, out: &mut impl Write) -> ocicas::Result<()> {
    let mut first_error: Option<Error> = None;
    let mut printed = Ok(());
    open(layout)?.walk_image(ref_name, &Cancel::new(), |step| {
        let message = step.error.as_ref().map(Error::message);
        printed = if format.json {
            let value = serde_json::json!({
                "depth": step.depth,
                "parent": step.parent.as_ref().map(ToString::to_string),
                "descriptor": step.descriptor,
                "error": message,
            });
            print_json(&value, out)
        } else {
            let indent = "  ".repeat(usize::try_from(step.depth).unwrap_or(usize::MAX).min(64));
            let d = &step.descriptor;
            let error = message.map(|message| format!("\terror: {}", escape_controls(message))).unwrap_or_default();
            let media_type = escape_controls(&d.media_type);
            writeln!(out, "{indent}{}\t{media_type}\t{}{error}", d.digest, d.size).map_err(stdout_error)
        };
        if first_error.is_none() {
            first_error = step.error;
        }
        match printed {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    })?;
    printed?;
    first_error.map_or(Ok(()), Err)
}
