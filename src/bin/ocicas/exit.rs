//! The exit statuses of the CLI: one per error kind of the core, so a script can act on why a
//! command failed without reading its message. `STATUSES` is the one table: `of_error` reads
//! it, and `--help` and docs/CLI.md print it.

use ocicas::ErrorKind;

/// Success.
pub const OK: u8 = 0;
/// fsck ran and found problems (printed on stdout).
pub const FSCK_PROBLEMS: u8 = 3;
/// Any failure without a row of its own in `STATUSES`.
const OTHER: u8 = 1;

/// An exit status, the error kind it stands for (None: not an error of the core) and what it
/// means.
pub struct Status {
    pub code: u8,
    pub kind: Option<ErrorKind>,
    pub meaning: &'static str,
}

const fn status(code: u8, kind: Option<ErrorKind>, meaning: &'static str) -> Status {
    Status { code, kind, meaning }
}

/// Numbers are never reused or renumbered.
pub const STATUSES: &[Status] = &[
    status(OK, None, "success"),
    status(OTHER, Some(ErrorKind::Io), "an I/O error, or another failure without a status below"),
    status(2, None, "usage: an unknown command or option, a missing argument (clap)"),
    status(FSCK_PROBLEMS, None, "fsck found problems (printed on stdout)"),
    status(4, Some(ErrorKind::NotFound), "not found: a blob, reference, ingest, lease or file"),
    status(5, Some(ErrorKind::AlreadyExists), "already exists: what was to be created is there"),
    status(6, Some(ErrorKind::Clobber), "clobber: the reference points elsewhere (--force moves it)"),
    status(7, Some(ErrorKind::Locked), "locked: another writer holds the ingest or the lock"),
    status(8, Some(ErrorKind::DigestMismatch), "digest mismatch: bytes do not hash to their digest"),
    status(9, Some(ErrorKind::SizeMismatch), "size mismatch: bytes are not as long as declared"),
    status(10, Some(ErrorKind::TooLarge), "too large: over a limit (--limit NAME=VALUE raises it)"),
    status(11, Some(ErrorKind::InvalidArgument), "invalid input: a malformed digest, name, label or value"),
    status(
        12,
        Some(ErrorKind::InvalidImage),
        "invalid image: no layout there, or it, an archive or a document is not valid",
    ),
    status(13, Some(ErrorKind::UnsupportedMediaType), "unsupported media type"),
    status(14, Some(ErrorKind::NotImplemented), "not implemented: this form of the operation"),
    status(15, Some(ErrorKind::Unauthorized), "unauthorized: the registry refused the credentials"),
    status(16, Some(ErrorKind::Remote), "remote: the registry is unreachable or answered with an error"),
];

/// The exit status of a command that failed with `kind`. The kinds without a row (a stream's
/// `NotComputed` and `Consumed`, and `Cancelled`, which the CLI never requests) are misuses of
/// the library's API the CLI does not make.
pub fn of_error(kind: ErrorKind) -> u8 {
    STATUSES.iter().find(|status| status.kind == Some(kind)).map_or(OTHER, |status| status.code)
}

/// The table for `--help`.
pub fn help() -> String {
    let mut text = String::from("Exit status:\n");
    for status in STATUSES {
        text.push_str(&format!("  {:>3}  {}\n", status.code, status.meaning));
    }
    text.push_str("  101  a bug in ocicas (a panic); please report it\n");
    text.push_str("\nErrors are one line on stderr: `ocicas: MESSAGE`. JSON schemas: docs/CLI.md.");
    text
}
