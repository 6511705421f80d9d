//! libdeflate's compressor, the only C in the library (third_party/libdeflate, built by build.rs).
//! It is vendored for one addition: `libdeflate_deflate_compress_open`, which ends a stream the
//! way zlib's sync flush does, so that independently compressed blocks join into one stream.

use std::ffi::{c_int, c_void};
use std::ptr::NonNull;

use crate::error::{Error, ErrorKind, Result};

/// libdeflate's `struct libdeflate_compressor`, only ever behind a pointer.
#[repr(C)]
struct RawCompressor {
    _opaque: [u8; 0],
}

unsafe extern "C" {
    fn libdeflate_alloc_compressor(level: c_int) -> *mut RawCompressor;
    fn libdeflate_free_compressor(compressor: *mut RawCompressor);
    fn libdeflate_deflate_compress_bound(compressor: *mut RawCompressor, in_len: usize) -> usize;
    fn libdeflate_deflate_compress(
        compressor: *mut RawCompressor,
        input: *const c_void,
        in_len: usize,
        out: *mut c_void,
        out_avail: usize,
    ) -> usize;
    fn libdeflate_deflate_compress_open(
        compressor: *mut RawCompressor,
        input: *const c_void,
        in_len: usize,
        out: *mut c_void,
        out_avail: usize,
    ) -> usize;
}

/// What an open stream's end (the empty stored block) may add to libdeflate's bound.
const OPEN_END_BYTES: usize = 6;

/// One libdeflate compressor at a fixed level. It keeps no history from one call to the next.
pub(super) struct Compressor {
    raw: NonNull<RawCompressor>,
}

// libdeflate's compressor is plain memory with no thread affinity; `&mut self` on every call
// keeps it to one thread at a time.
unsafe impl Send for Compressor {}

impl Compressor {
    /// A compressor at `level` (libdeflate takes 0–12).
    pub(super) fn new(level: u32) -> Result<Compressor> {
        let raw = c_int::try_from(level).map_or(std::ptr::null_mut(), |level| {
            // SAFETY: plain call; NULL is returned for a bad level or no memory.
            unsafe { libdeflate_alloc_compressor(level) }
        });
        let raw = NonNull::new(raw)
            .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, format!("libdeflate refused gzip level {level}")))?;
        Ok(Compressor { raw })
    }

    /// Compresses `input` as one raw DEFLATE stream. With `leave_open` the stream is ended as a
    /// sync flush ends it (no final block, an empty stored block last, byte-aligned), so the
    /// blocks of another stream can follow; without, it is a complete stream.
    pub(super) fn compress(&mut self, input: &[u8], leave_open: bool) -> Result<Vec<u8>> {
        // SAFETY: the compressor is live; the bound only reads it.
        let capacity = unsafe { libdeflate_deflate_compress_bound(self.raw.as_ptr(), input.len()) } + OPEN_END_BYTES;
        let mut out = Vec::<u8>::with_capacity(capacity);
        let compress = if leave_open { libdeflate_deflate_compress_open } else { libdeflate_deflate_compress };
        // SAFETY: `input` is readable for its length and `out` writable for its capacity;
        // libdeflate writes at most `capacity` bytes and returns how many (0: did not fit).
        let len = unsafe {
            compress(self.raw.as_ptr(), input.as_ptr().cast(), input.len(), out.as_mut_ptr().cast(), capacity)
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
    use flate2::{Decompress, FlushDecompress, Status};

    /// Stored, fixed and dynamic blocks in one input: random bytes, runs, and text.
    fn mixed(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
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

    #[test]
    fn an_open_stream_has_no_final_block_and_ends_in_an_empty_stored_block() {
        for level in 0..=12 {
            let mut compressor = Compressor::new(level).unwrap();
            for len in [0, 1, 30, 300, 70_000, 700_000] {
                let input = mixed(len);
                let open = compressor.compress(&input, true).unwrap();
                assert!(open.ends_with(&[0, 0, 0xff, 0xff]), "level {level}, {len} bytes");
                let (inflated, ended) = inflate(&open, len);
                assert!(inflated == input && !ended, "level {level}, {len} bytes");
                let (inflated, ended) = inflate(&compressor.compress(&input, false).unwrap(), len);
                assert!(inflated == input && ended, "level {level}, {len} bytes, closed");
            }
        }
    }

    #[test]
    fn open_streams_and_a_closed_one_join_into_one_stream() {
        let parts = [mixed(700_000), Vec::new(), mixed(1), mixed(300), mixed(90_000)];
        for level in [0, 1, 2, 6, 9, 12] {
            let mut compressor = Compressor::new(level).unwrap();
            let mut joined = Vec::new();
            for (i, part) in parts.iter().enumerate() {
                joined.extend(compressor.compress(part, i + 1 < parts.len()).unwrap());
            }
            let (inflated, ended) = inflate(&joined, parts.iter().map(Vec::len).sum());
            assert!(inflated == parts.concat() && ended, "level {level}");
        }
    }

    /// Whether the empty stored block's 3-bit header fits in the stream's last byte depends on
    /// where in that byte the stream ended: 400 lengths reach every one of the 8 bit offsets.
    #[test]
    fn the_empty_stored_block_is_placed_right_wherever_the_stream_ends_in_its_byte() {
        let tail = mixed(100);
        for level in [1, 6, 9] {
            let mut compressor = Compressor::new(level).unwrap();
            for len in 1000..1400 {
                // Text, past the random bytes that would make stored (byte-aligned) blocks.
                let input = mixed(10_000 + len).split_off(10_000);
                let mut joined = compressor.compress(&input, true).unwrap();
                joined.extend(compressor.compress(&tail, false).unwrap());
                let (inflated, ended) = inflate(&joined, len + tail.len());
                assert!(inflated == [&input[..], &tail].concat() && ended, "level {level}, {len} bytes");
            }
        }
    }

    #[test]
    fn a_level_libdeflate_does_not_have_is_an_invalid_argument() {
        for level in [13, u32::MAX] {
            let err = Compressor::new(level).err().unwrap();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert!(err.to_string().contains(&format!("level {level}")), "{err}");
        }
    }
}
