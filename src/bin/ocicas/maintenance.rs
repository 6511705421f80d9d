//! `ocicas fsck` and `ocicas gc`: checking the store and collecting its garbage.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use ocicas::{FsckOptions, GcOptions, GcReport};

use crate::{open, stdout_error};

/// Prints the problems (exit status 1 when there are any), or that the store is sound, then
/// the notes.
pub fn fsck(layout: &Path, deep: bool, out: &mut impl Write) -> ocicas::Result<ExitCode> {
    let report = open(layout)?.fsck_with(&FsckOptions { deep })?;
    for problem in &report.problems {
        writeln!(out, "{problem}").map_err(stdout_error)?;
    }
    if report.is_sound() {
        writeln!(out, "sound: {} blobs, {} reachable", report.blobs_checked, report.reachable).map_err(stdout_error)?;
    }
    for note in &report.notes {
        writeln!(out, "note: {note}").map_err(stdout_error)?;
    }
    Ok(if report.is_sound() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Runs GC and prints its report, as JSON with `json`.
pub fn gc(
    layout: &Path,
    dry_run: bool,
    ingest_expiry: Duration,
    json: bool,
    out: &mut impl Write,
) -> ocicas::Result<()> {
    let report = open(layout)?.gc(&GcOptions { dry_run, ingest_expiry, ..Default::default() })?;
    if json {
        writeln!(out, "{}", report.to_json()).map_err(stdout_error)
    } else {
        print_gc_report(&report, out).map_err(stdout_error)
    }
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
