//! Points in time that are written as RFC 3339 text (a lease's expiry, blob and ingest times):
//! humantime, like RFC 3339 itself, writes years up to 9999, so a time computed from what a
//! caller gives (now + an expiry) is checked against that end before it is used.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Result, invalid_argument};

/// The last instant RFC 3339 can write: 9999-12-31T23:59:59.999999999Z.
pub fn latest() -> SystemTime {
    UNIX_EPOCH + Duration::new(253_402_300_799, 999_999_999)
}

/// `start + duration`, or `InvalidArgument` naming `what` when that is past `latest()` (or
/// past what `SystemTime` holds).
pub fn checked_after(start: SystemTime, duration: Duration, what: &str) -> Result<SystemTime> {
    start.checked_add(duration).filter(|end| *end <= latest()).ok_or_else(|| {
        invalid_argument(format!(
            "{what} of {} ends after the year 9999, the last an RFC 3339 time can name",
            humantime::format_duration(duration)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_rfc_3339_cannot_write_is_an_invalid_argument() {
        let now = SystemTime::now();
        let years = |n: u64| Duration::from_secs(n * 31_557_600);
        assert!(checked_after(now, years(1000), "expiry").is_ok());
        for too_long in [years(500_000_000), years(584_542_046_090), Duration::MAX] {
            let err = checked_after(now, too_long, "lease expiry").unwrap_err();
            assert!(err.message().starts_with("lease expiry of "), "{err}");
        }
        let last = checked_after(UNIX_EPOCH, latest().duration_since(UNIX_EPOCH).unwrap(), "x").unwrap();
        assert_eq!(humantime::format_rfc3339_nanos(last).to_string(), "9999-12-31T23:59:59.999999999Z");
        assert!(checked_after(last, Duration::from_nanos(1), "x").is_err());
    }
}
