//! `ocicas fsck` and `ocicas gc`: checking the store and collecting its garbage.

use std::io::{self, Write};
use std::path::Path;

use ocicas::{FsckOptions, GcOptions, GcReport};

use crate::text::escape_controls;
use crate::{Json, exit, open, print_json, stdout_error};

/// Prints the problems, or that the store is sound, then the notes (or the report as JSON);
/// returns the exit status: `FSCK_PROBLEMS` when there are problems.
pub fn fsck(layout: &Path, options: &FsckOptions, format: Json, out: &mut impl Write) -> ocicas::Result<u8> {
    let report = open(layout)?.fsck_with(options)?;
    let status = if report.is_sound() { exit::OK } else { exit::FSCK_PROBLEMS };
    if format.json {
        print_json(&report.to_json(), out)?;
        return Ok(status);
    }
    for problem in &report.problems {
        writeln!(out, "{}", escape_controls(problem)).map_err(stdout_error)?;
    }
    if report.is_sound() && options.no_hash {
        writeln!(out, "sound in structure (no blob hashed): {} reachable", report.reachable).map_err(stdout_error)?;
    } else if report.is_sound() {
        writeln!(out, "sound: {} blobs, {} reachable", report.blobs_checked, report.reachable).map_err(stdout_error)?;
    }
    for note in &report.notes {
        writeln!(out, "note: {}", escape_controls(note)).map_err(stdout_error)?;
    }
    Ok(status)
}

/// Runs GC and prints its report (as JSON with --json).
pub fn gc(layout: &Path, options: &GcOptions, format: Json, out: &mut impl Write) -> ocicas::Result<()> {
    let report = open(layout)?.gc(options)?;
    if format.json { print_json(&report.to_json(), out) } else { print_gc_report(&report, out).map_err(stdout_error) }
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
        writeln!(out, "missing: {}", escape_controls(missing))?;
    }
    for not_removed in &report.not_removed {
        writeln!(out, "not removed: {}", escape_controls(not_removed))?;
    }
    Ok(())
}
