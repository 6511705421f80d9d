#![no_main]
//! The decoding front of the docker-archive reader (gzip or zstd told by magic bytes, then
//! tar, then manifest.json): any bytes are an error or a list of images, never a panic; and a
//! tar read plain, gzip-compressed or zstd-compressed gives the same outcome.

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use ocicas::archive::read_manifest_items;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

fuzz_target!(|data: &[u8]| {
    let plain = read_manifest_items(data);
    if data.starts_with(&GZIP_MAGIC) || data.starts_with(&ZSTD_MAGIC) {
        return;
    }
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(data).expect("gzip into memory");
    let gzip = gzip.finish().expect("gzip into memory");
    let zstd = zstd::encode_all(data, 1).expect("zstd into memory");
    for (codec, compressed) in [("gzip", gzip), ("zstd", zstd)] {
        let decoded = read_manifest_items(&compressed[..]);
        match (&plain, &decoded) {
            (Ok(expected), Ok(items)) => assert_eq!(items, expected, "{codec}"),
            (Err(expected), Err(err)) => assert_eq!(err.kind(), expected.kind(), "{codec}: {err} / plain: {expected}"),
            _ => panic!("{codec} gives {decoded:?}, the plain tar {plain:?}"),
        }
    }
});
