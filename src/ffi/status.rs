//! Names and descriptions of the status codes, for logs and messages: one table, which the
//! tests hold to the enum and to the generated header.

use std::ffi::{CStr, c_char};

use super::ocicas_status::{self, *};

/// One status: its identifier in the header and a short description of its kind.
struct StatusText {
    status: ocicas_status,
    name: &'static CStr,
    message: &'static CStr,
}

const fn row(status: ocicas_status, name: &'static CStr, message: &'static CStr) -> StatusText {
    StatusText { status, name, message }
}

static STATUS_TEXTS: &[StatusText] = &[
    row(OCICAS_OK, c"OCICAS_OK", c"success"),
    row(OCICAS_ERR_INVALID_ARGUMENT, c"OCICAS_ERR_INVALID_ARGUMENT", c"invalid argument"),
    row(OCICAS_ERR_NOT_FOUND, c"OCICAS_ERR_NOT_FOUND", c"not found"),
    row(OCICAS_ERR_ALREADY_EXISTS, c"OCICAS_ERR_ALREADY_EXISTS", c"already exists"),
    row(OCICAS_ERR_INVALID_IMAGE, c"OCICAS_ERR_INVALID_IMAGE", c"invalid image layout or document"),
    row(OCICAS_ERR_DIGEST_MISMATCH, c"OCICAS_ERR_DIGEST_MISMATCH", c"content does not match its digest"),
    row(OCICAS_ERR_SIZE_MISMATCH, c"OCICAS_ERR_SIZE_MISMATCH", c"content does not match its size"),
    row(OCICAS_ERR_CLOBBER, c"OCICAS_ERR_CLOBBER", c"reference points elsewhere and force was not given"),
    row(OCICAS_ERR_LOCKED, c"OCICAS_ERR_LOCKED", c"locked by another writer"),
    row(OCICAS_ERR_IO, c"OCICAS_ERR_IO", c"I/O error"),
    row(OCICAS_ERR_TOO_LARGE, c"OCICAS_ERR_TOO_LARGE", c"over a configured limit"),
    row(OCICAS_ERR_UNSUPPORTED_MEDIA_TYPE, c"OCICAS_ERR_UNSUPPORTED_MEDIA_TYPE", c"unsupported media type"),
    row(OCICAS_ERR_NOT_IMPLEMENTED, c"OCICAS_ERR_NOT_IMPLEMENTED", c"not implemented"),
    row(OCICAS_ERR_PANIC, c"OCICAS_ERR_PANIC", c"internal error (panic) in ocicas"),
    row(OCICAS_ERR_NOT_COMPUTED, c"OCICAS_ERR_NOT_COMPUTED", c"not computed until the stream has ended"),
    row(OCICAS_ERR_CONSUMED, c"OCICAS_ERR_CONSUMED", c"stream already consumed"),
    row(OCICAS_ERR_UNAUTHORIZED, c"OCICAS_ERR_UNAUTHORIZED", c"unauthorized by the registry"),
    row(OCICAS_ERR_REMOTE, c"OCICAS_ERR_REMOTE", c"registry unreachable or failing"),
    row(OCICAS_ERR_CANCELLED, c"OCICAS_ERR_CANCELLED", c"cancelled by the caller"),
];

/// What a number that is no status gets, so that neither function ever returns NULL.
static UNKNOWN_NAME: &CStr = c"OCICAS_ERR_UNKNOWN";
static UNKNOWN_MESSAGE: &CStr = c"unknown status";

fn status_text(status: u32) -> Option<&'static StatusText> {
    STATUS_TEXTS.iter().find(|text| text.status as u32 == status)
}

/// The identifier of `status` in this header, e.g. "OCICAS_ERR_NOT_FOUND"; "OCICAS_ERR_UNKNOWN"
/// for a number that is no status. Never NULL; static storage, do not free.
#[unsafe(no_mangle)]
pub extern "C" fn ocicas_status_name(status: u32) -> *const c_char {
    status_text(status).map_or(UNKNOWN_NAME, |text| text.name).as_ptr()
}

/// A short English description of the kind of `status`, e.g. "not found"; "unknown status"
/// for a number that is no status. It does not name what failed: ocicas_last_error_message()
/// does. Never NULL; static storage, do not free.
#[unsafe(no_mangle)]
pub extern "C" fn ocicas_status_message(status: u32) -> *const c_char {
    status_text(status).map_or(UNKNOWN_MESSAGE, |text| text.message).as_ptr()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn name(status: u32) -> &'static str {
        unsafe { CStr::from_ptr(ocicas_status_name(status)) }.to_str().unwrap()
    }

    fn message(status: u32) -> &'static str {
        unsafe { CStr::from_ptr(ocicas_status_message(status)) }.to_str().unwrap()
    }

    #[test]
    fn every_row_is_named_as_its_enum_variant() {
        for text in STATUS_TEXTS {
            assert_eq!(text.name.to_str().unwrap(), format!("{:?}", text.status));
            assert_eq!(name(text.status as u32), format!("{:?}", text.status));
            assert!(!text.message.is_empty(), "{:?} has no message", text.status);
        }
    }

    /// The enum's variants as the generated header spells them: a status added to the enum
    /// without a row, or a row that is no enumerator, fails here.
    #[test]
    fn the_table_has_exactly_the_headers_enumerators() {
        let header = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/ocicas.h")).unwrap();
        let start = header.find("enum ocicas_status\n").expect("the header has enum ocicas_status");
        let body = &header[start..start + header[start..].find("};").unwrap()];
        let enumerators: BTreeMap<u32, &str> = body
            .lines()
            .filter_map(|line| line.trim().strip_suffix(',')?.split_once(" = "))
            .map(|(name, number)| (number.parse().unwrap(), name))
            .collect();
        let table: BTreeMap<u32, &str> =
            STATUS_TEXTS.iter().map(|text| (text.status as u32, name(text.status as u32))).collect();
        assert_eq!(table.len(), STATUS_TEXTS.len(), "a status has two rows");
        assert_eq!(enumerators, table);
    }

    #[test]
    fn names_and_messages_are_distinct() {
        let names: BTreeSet<_> = STATUS_TEXTS.iter().map(|text| text.name).collect();
        let messages: BTreeSet<_> = STATUS_TEXTS.iter().map(|text| text.message).collect();
        assert_eq!(names.len(), STATUS_TEXTS.len());
        assert_eq!(messages.len(), STATUS_TEXTS.len());
        assert!(!names.contains(UNKNOWN_NAME) && !messages.contains(UNKNOWN_MESSAGE));
    }

    #[test]
    fn a_number_that_is_no_status_has_the_unknown_name_and_message() {
        let past_the_last = STATUS_TEXTS.iter().map(|text| text.status as u32).max().unwrap() + 1;
        for number in [past_the_last, 99, u32::MAX] {
            assert_eq!(name(number), "OCICAS_ERR_UNKNOWN");
            assert_eq!(message(number), "unknown status");
        }
        assert_eq!(name(2), "OCICAS_ERR_NOT_FOUND");
        assert_eq!(message(2), "not found");
    }
}
