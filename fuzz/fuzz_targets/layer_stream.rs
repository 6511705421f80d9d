#![no_main]
//! The stream layer: fuzzer bytes as a layer's uncompressed tar, written in fuzzer-chosen
//! pieces through the push stream (into a store) or read through the pull stream. The bytes
//! decompress (with decoders of our own) to the input, the DiffID is sha256 of the input, and
//! the digest and size are those of the compressed bytes. An optional length repeats the input
//! past gzip's block size, so block boundaries and dictionaries are reached too.

use std::io::Read;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ocicas::stream::GZIP_BLOCK_SIZE;
use ocicas::{Compression, CompressionOptions, Engine, LayerReader, LayerStream, MediaTypeStyle, StorageOptions};
use ocicas_fuzz::{decompress, fresh_store, sha256};

#[derive(Arbitrary, Debug)]
enum Codec {
    Gzip(u8),
    Zstd(u8),
    None,
}

#[derive(Arbitrary, Debug)]
struct Input {
    codec: Codec,
    push: bool,
    two_threads: bool,
    /// Bytes per write (push) or per read of the source (pull); 0 is one piece.
    piece: u16,
    /// Repeat `data` to this many bytes (modulo three gzip blocks).
    repeat_to: Option<u32>,
    data: Vec<u8>,
}

/// One store for the whole run; each committed layer is deleted once checked.
fn store() -> &'static Engine {
    static STORE: OnceLock<(tempfile::TempDir, Engine)> = OnceLock::new();
    &STORE.get_or_init(fresh_store).1
}

fuzz_target!(|input: Input| {
    let data: Vec<u8> = match input.repeat_to {
        Some(len) if !input.data.is_empty() => {
            input.data.iter().copied().cycle().take(len as usize % (3 * GZIP_BLOCK_SIZE)).collect()
        }
        _ => input.data.clone(),
    };
    let compression = match input.codec {
        Codec::Gzip(level) => Compression::Gzip(u32::from(level % 10)),
        Codec::Zstd(level) => Compression::Zstd(i32::from(level % 19) + 1),
        Codec::None => Compression::None,
    };
    let options = CompressionOptions {
        compression,
        style: MediaTypeStyle::Oci,
        threads: if input.two_threads { 2 } else { 1 },
        ..CompressionOptions::default()
    };
    let piece = if input.piece == 0 { data.len().max(1) } else { usize::from(input.piece) };
    let (layer, compressed) = if input.push {
        let engine = store();
        let mut stream = LayerStream::new(engine, &options, &StorageOptions::default()).expect("a push stream");
        for chunk in data.chunks(piece) {
            stream.write(chunk).expect("a write to a push stream");
        }
        let layer = stream.finish().expect("a push stream commits");
        let compressed = engine.read_blob(&layer.digest, u64::MAX).expect("the committed layer reads back");
        engine.delete_blob(&layer.digest).expect("the checked layer is deleted");
        (layer, compressed)
    } else {
        let mut reader = LayerReader::new(Pieces { data: &data, piece }, &options).expect("a pull stream");
        let mut compressed = Vec::new();
        reader.read_to_end(&mut compressed).expect("a pull stream reads to its end");
        (reader.layer_descriptor().expect("computed at the end"), compressed)
    };
    assert_eq!(layer.media_type, options.media_type().expect("an OCI media type"));
    assert_eq!(layer.diff_id, sha256(&data), "the DiffID is not sha256 of the input");
    assert_eq!(layer.digest, sha256(&compressed), "the digest is not sha256 of the compressed bytes");
    assert_eq!(layer.size, compressed.len() as u64);
    assert!(decompress(&layer.media_type, &compressed) == data, "{compression:?} does not decompress to the input");
});

/// A source that yields at most `piece` bytes per read.
struct Pieces<'a> {
    data: &'a [u8],
    piece: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.piece.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}
