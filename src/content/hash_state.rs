//! The saved hash state of an ingest (`hashstate`): the hash of `data` up to an offset, so a
//! resume need not read again what was hashed. A state is bound to the bytes it describes by the
//! data file's identity and times (device, inode, size, mtime and ctime in nanoseconds) taken
//! after the fsync that preceded it: if any of them changed, something other than our writer
//! touched the data, and the whole prefix is hashed again (containerd always does that).
//!
//! The file also carries a sha256 of its content, so a state damaged in place (a flipped byte
//! that still parses) is not restored either.
//!
//! File times come from the kernel's coarse clock: a write within the same tick as the state's
//! save would leave them as they were. So a state is saved only once that clock has moved past
//! the data's times: any later write then shows.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use crate::digest::{Algorithm, Digest, Hasher};

const MAGIC: &str = "ocicas-hashstate-v3";

/// How long a save waits for the coarse clock to pass the data's times (one tick is 1 to 10 ms)
/// before it gives up saving a state.
const CLOCK_WAIT: Duration = Duration::from_millis(50);

/// What identifies the data file's bytes at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DataIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl DataIdentity {
    fn of(data: &File) -> Option<DataIdentity> {
        let meta = data.metadata().ok()?;
        Some(DataIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }

    /// The later of the two times: what the coarse clock must pass.
    fn latest_time(&self) -> (i64, i64) {
        self.mtime.max(self.ctime)
    }

    fn to_text(self) -> String {
        let DataIdentity { dev, ino, size, mtime, ctime } = self;
        format!("{dev} {ino} {size} {} {} {} {}", mtime.0, mtime.1, ctime.0, ctime.1)
    }

    fn parse(text: &[u8]) -> Option<DataIdentity> {
        let text = std::str::from_utf8(text).ok()?;
        let fields: Vec<&str> = text.split(' ').collect();
        let [dev, ino, size, mtime_s, mtime_ns, ctime_s, ctime_ns] = fields.as_slice() else { return None };
        Some(DataIdentity {
            dev: dev.parse().ok()?,
            ino: ino.parse().ok()?,
            size: size.parse().ok()?,
            mtime: (mtime_s.parse().ok()?, mtime_ns.parse().ok()?),
            ctime: (ctime_s.parse().ok()?, ctime_ns.parse().ok()?),
        })
    }
}

/// The `hashstate` file for `hasher`, which has hashed all of `data` (fsynced just before).
/// None when the data file cannot be identified, or its times cannot be told from a later
/// write's: then no state is saved.
pub(super) fn save(hasher: &Hasher, data: &File) -> Option<Vec<u8>> {
    let identity = DataIdentity::of(data)?;
    wait_for_clock_past(identity.latest_time())?;
    let mut body = format!("{}\n{}\n", hasher.algorithm().name(), identity.to_text()).into_bytes();
    body.extend_from_slice(&hasher.save_state());
    let mut file = format!("{MAGIC}\n{}\n", Digest::of_bytes(Algorithm::Sha256, &body).hex()).into_bytes();
    file.extend_from_slice(&body);
    Some(file)
}

/// Waits until the coarse clock that stamps file times is past `time`; None after `CLOCK_WAIT`.
fn wait_for_clock_past(time: (i64, i64)) -> Option<()> {
    let deadline = std::time::Instant::now() + CLOCK_WAIT;
    loop {
        if coarse_now() > time {
            return Some(());
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The clock file times are taken from, as (seconds, nanoseconds). (Through libc rather than
/// rustix, whose own vDSO lookup valgrind cannot follow.)
fn coarse_now() -> (i64, i64) {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec; CLOCK_REALTIME_COARSE exists on every Linux
    // this builds for (2.6.32+), so it does not fail.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) };
    (now.tv_sec, now.tv_nsec)
}

/// The hasher `saved` describes, when it is a state of `algorithm` about exactly the bytes
/// `data` holds now; None otherwise (the caller hashes the data from the start).
pub(super) fn restore(saved: &[u8], algorithm: Algorithm, data: &File) -> Option<Hasher> {
    let mut parts = saved.splitn(3, |&b| b == b'\n');
    let (magic, checksum, body) = (parts.next()?, parts.next()?, parts.next()?);
    if magic != MAGIC.as_bytes() || checksum != Digest::of_bytes(Algorithm::Sha256, body).hex().as_bytes() {
        return None;
    }
    let mut parts = body.splitn(3, |&b| b == b'\n');
    let (name, identity, state) = (parts.next()?, parts.next()?, parts.next()?);
    if name != algorithm.name().as_bytes() {
        return None;
    }
    let identity = DataIdentity::parse(identity)?;
    if DataIdentity::of(data)? != identity {
        return None;
    }
    Hasher::restore_state(algorithm, state, identity.size)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    use super::*;

    fn data_file(bytes: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, bytes).unwrap();
        let file = std::fs::OpenOptions::new().read(true).append(true).open(&path).unwrap();
        (dir, file)
    }

    fn hashed(bytes: &[u8]) -> Hasher {
        let mut hasher = Hasher::new(Algorithm::Sha256);
        hasher.update(bytes);
        hasher
    }

    #[test]
    fn a_state_is_restored_only_for_the_bytes_it_was_saved_with() {
        let (_dir, mut data) = data_file(b"hello world");
        let saved = save(&hashed(b"hello world"), &data).unwrap();
        let restored = restore(&saved, Algorithm::Sha256, &data).unwrap();
        assert_eq!(restored.current(), hashed(b"hello world").current());
        assert!(restore(&saved, Algorithm::Sha512, &data).is_none());

        // Same size, one byte changed in place at once: the times tell.
        data.write_all_at(b"J", 0).unwrap();
        assert!(restore(&saved, Algorithm::Sha256, &data).is_none());

        let saved = save(&hashed(b"Jello world"), &data).unwrap();
        data.write_all(b"!").unwrap();
        assert!(restore(&saved, Algorithm::Sha256, &data).is_none(), "grown since");
    }

    #[test]
    fn damaged_states_are_not_restored() {
        let (_dir, data) = data_file(b"abc");
        let saved = save(&hashed(b"abc"), &data).unwrap();
        for cut in 0..saved.len() {
            assert!(restore(&saved[..cut], Algorithm::Sha256, &data).is_none(), "cut at {cut}");
        }
        for flip in 0..saved.len() {
            let mut flipped = saved.clone();
            flipped[flip] ^= 0x01;
            assert!(restore(&flipped, Algorithm::Sha256, &data).is_none(), "byte {flip} flipped");
        }
        assert!(restore(b"ocicas-hashstate-v1\nsha256\n3\n", Algorithm::Sha256, &data).is_none());
    }
}
