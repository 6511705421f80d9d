//! libdeflate's compressor, the only C in the library (third_party/libdeflate, built by build.rs).
//! It is vendored for one addition, `libdeflate_deflate_compress_part`: it compresses one part of
//! a longer stream, primed with the 32 KiB before it and ended the way zlib's sync flush ends a
//! part, so that parts compressed independently join into one stream (pigz's method).

use std::ffi::{c_int, c_void};
use std::ptr::NonNull;

use crate::error::{Error, ErrorKind, Result, invalid_argument};

/// libdeflate's `struct libdeflate_compressor`, only ever behind a pointer.
#[repr(C)]
struct RawCompressor {
    _opaque: [u8; 0],
}

// build.rs gives libdeflate's symbols our prefix (see LIBDEFLATE_SYMBOLS there).
unsafe extern "C" {
    #[link_name = "ocicas_libdeflate_alloc_compressor"]
    fn libdeflate_alloc_compressor(level: c_int) -> *mut RawCompressor;
    #[link_name = "ocicas_libdeflate_free_compressor"]
    fn libdeflate_free_compressor(compressor: *mut RawCompressor);
    #[link_name = "ocicas_libdeflate_deflate_compress_bound"]
    fn libdeflate_deflate_compress_bound(compressor: *mut RawCompressor, in_len: usize) -> usize;
    #[link_name = "ocicas_libdeflate_deflate_compress_part"]
    fn libdeflate_deflate_compress_part(
        compressor: *mut RawCompressor,
        buf: *const c_void,
        dict_len: usize,
        in_len: usize,
        out: *mut c_void,
        out_avail: usize,
        leave_open: c_int,
    ) -> usize;
}

/// The most history a part can be primed with: deflate's window.
pub(super) const MAX_HISTORY: usize = 32 << 10;
/// What an open stream's end (the empty stored block) may add to libdeflate's bound.
const OPEN_END_BYTES: usize = 6;

/// One libdeflate compressor at a fixed level. It keeps nothing from one call to the next.
pub(super) struct Compressor {
    raw: NonNull<RawCompressor>,
}

// libdeflate's compressor is plain memory with no thread affinity; `&mut self` on every call
// keeps it to one thread at a time.
unsafe impl Send for Compressor {}

impl Compressor {
    /// A compressor at `level`, 0–9 (libdeflate's 10–12 would ignore the history).
    pub(super) fn new(level: u32) -> Result<Compressor> {
        let raw = match level {
            // SAFETY: plain call; NULL is returned when there is no memory.
            0..=9 => unsafe { libdeflate_alloc_compressor(level as c_int) },
            _ => std::ptr::null_mut(),
        };
        let raw = NonNull::new(raw)
            .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, format!("libdeflate refused gzip level {level}")))?;
        Ok(Compressor { raw })
    }

    /// Compresses `buf[history..]` as one part of a raw DEFLATE stream whose preceding bytes are
    /// `buf[..history]` (at most `MAX_HISTORY`): matches may reach back into them, as after
    /// zlib's `deflateSetDictionary`. With `leave_open` the part ends as a sync flush ends it (no
    /// final block, an empty stored block last, byte-aligned), so the next part can follow;
    /// without, it ends the stream.
    pub(super) fn compress(&mut self, buf: &[u8], history: usize, leave_open: bool) -> Result<Vec<u8>> {
        if history > MAX_HISTORY || history > buf.len() {
            return Err(invalid_argument(format!("a deflate history of {history} bytes (at most {MAX_HISTORY})")));
        }
        let in_len = buf.len() - history;
        // SAFETY: the compressor is live; the bound only reads it.
        let capacity = unsafe { libdeflate_deflate_compress_bound(self.raw.as_ptr(), in_len) } + OPEN_END_BYTES;
        let mut out = Vec::<u8>::with_capacity(capacity);
        // SAFETY: `buf` is readable for its length and `out` writable for its capacity; libdeflate
        // writes at most `capacity` bytes and returns how many (0: did not fit).
        let len = unsafe {
            libdeflate_deflate_compress_part(
                self.raw.as_ptr(),
                buf.as_ptr().cast(),
                history,
                in_len,
                out.as_mut_ptr().cast(),
                capacity,
                c_int::from(leave_open),
            )
        };
        if len == 0 {
            return Err(Error::new(ErrorKind::Io, "libdeflate's output exceeded its own bound"));
        }
        // SAFETY: libdeflate initialised the first `len` (<= capacity) bytes.
        unsafe { out.set_len(len) };
        Ok(out)
    }
}

impl Drop for Compressor {
    fn drop(&mut self) {
        // SAFETY: allocated by libdeflate_alloc_compressor and freed only here.
        unsafe { libdeflate_free_compressor(self.raw.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::xorshift;
    use flate2::{Decompress, FlushDecompress, Status};

    /// Stored, fixed and dynamic blocks in one input: random bytes, runs, and text.
    fn mixed(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        for state in xorshift(0x2545_f491_4f6c_dd1d) {
            if out.len() >= len {
                break;
            }
            match (out.len() / 5000) % 3 {
                0 => out.extend_from_slice(&state.to_le_bytes()),
                1 => out.extend_from_slice(b"aaaaaaaa"),
                _ => out.extend_from_slice(format!("line {} of some text\n", state % 1000).as_bytes()),
            }
        }
        out.truncate(len);
        out
    }

    /// Inflates raw deflate; returns the bytes and whether a final block ended the stream.
    fn inflate(stream: &[u8], expected_len: usize) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(expected_len + 1);
        let status = Decompress::new(false).decompress_vec(stream, &mut out, FlushDecompress::Sync).unwrap();
        (out, status == Status::StreamEnd)
    }

    /// Compresses `whole` in parts ending at `ends`, each primed with up to 32 KiB before it.
    fn compress_in_parts(compressor: &mut Compressor, whole: &[u8], ends: &[usize]) -> Vec<u8> {
        let mut joined = Vec::new();
        let mut start = 0;
        for (i, &end) in ends.iter().enumerate() {
            let history = start.min(MAX_HISTORY);
            joined.extend(compressor.compress(&whole[start - history..end], history, i + 1 < ends.len()).unwrap());
            start = end;
        }
        joined
    }

    #[test]
    fn an_open_part_has_no_final_block_and_ends_in_an_empty_stored_block() {
        for level in 0..=9 {
            let mut compressor = Compressor::new(level).unwrap();
            for len in [0, 1, 30, 300, 70_000, 700_000] {
                let input = mixed(len);
                let open = compressor.compress(&input, 0, true).unwrap();
                assert!(open.ends_with(&[0, 0, 0xff, 0xff]), "level {level}, {len} bytes");
                let (inflated, ended) = inflate(&open, len);
                assert!(inflated == input && !ended, "level {level}, {len} bytes");
                let (inflated, ended) = inflate(&compressor.compress(&input, 0, false).unwrap(), len);
                assert!(inflated == input && ended, "level {level}, {len} bytes, closed");
            }
        }
    }

    /// Parts of every size, from empty to beyond the window, primed with what precedes them.
    #[test]
    fn parts_join_into_one_stream_of_the_whole() {
        let whole = mixed(900_000);
        let ends = [700_000, 700_000, 700_001, 700_300, 710_000, 900_000];
        for level in [0, 1, 2, 6, 9] {
            let joined = compress_in_parts(&mut Compressor::new(level).unwrap(), &whole, &ends);
            let (inflated, ended) = inflate(&joined, whole.len());
            assert!(inflated == whole && ended, "level {level}");
        }
    }

    /// Random bytes do not compress, unless the history holds them: then the part is all matches.
    #[test]
    fn matches_reach_back_into_the_history() {
        let random = mixed(5_000);
        let twice = [&random[..], &random[..]].concat();
        for level in 1..=9 {
            let mut compressor = Compressor::new(level).unwrap();
            let unprimed = compressor.compress(&random, 0, false).unwrap();
            let primed = compressor.compress(&twice, random.len(), false).unwrap();
            assert!(unprimed.len() > 4_000 && primed.len() < 100, "level {level}: {} {}", unprimed.len(), primed.len());
            let mut joined = compressor.compress(&random, 0, true).unwrap();
            joined.extend(primed);
            assert_eq!(inflate(&joined, twice.len()), (twice.clone(), true), "level {level}");
        }
    }

    /// Whether the empty stored block's 3-bit header fits in the part's last byte depends on
    /// where in that byte the part ended: 400 lengths reach every one of the 8 bit offsets.
    #[test]
    fn the_empty_stored_block_is_placed_right_wherever_the_part_ends_in_its_byte() {
        for level in [1, 6, 9] {
            let mut compressor = Compressor::new(level).unwrap();
            for len in 1000..1400 {
                // Text, past the random bytes that would make stored (byte-aligned) blocks.
                let whole = mixed(10_000 + len + 100).split_off(10_000);
                let joined = compress_in_parts(&mut compressor, &whole, &[len, whole.len()]);
                assert_eq!(inflate(&joined, whole.len()), (whole, true), "level {level}, {len} bytes");
            }
        }
    }

    #[test]
    fn a_level_over_9_or_a_history_over_32_kib_is_an_invalid_argument() {
        for level in [10, 12, 13, u32::MAX] {
            let err = Compressor::new(level).err().unwrap();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert!(err.to_string().contains(&format!("level {level}")), "{err}");
        }
        let mut compressor = Compressor::new(6).unwrap();
        let buf = mixed(MAX_HISTORY + 10);
        for history in [MAX_HISTORY + 1, buf.len() + 1] {
            let err = compressor.compress(&buf, history, true).err().unwrap();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        }
        assert!(compressor.compress(&buf, MAX_HISTORY, true).is_ok());
    }
}
