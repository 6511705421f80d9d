//! Generates include/ocicas.h from src/ffi with cbindgen, gives the shared library its SONAME,
//! and compiles libdeflate's compressor. The header is committed; CI regenerates it and fails
//! when it differs.

use std::path::Path;

fn main() {
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");

    // Only the compressor and its allocator: the rest of libdeflate is not vendored.
    println!("cargo:rerun-if-changed=third_party/libdeflate");
    cc::Build::new()
        .files(["third_party/libdeflate/lib/deflate_compress.c", "third_party/libdeflate/lib/utils.c"])
        .include("third_party/libdeflate")
        // Upstream's code is clean under -Wall, not under -Wextra.
        .extra_warnings(false)
        .compile("deflate");

    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libocicas.so.{major}");

    let config =
        cbindgen::Config::from_file(Path::new(&crate_dir).join("cbindgen.toml")).expect("cbindgen.toml is valid");
    // Only src/ffi is the C ABI: cbindgen reads its mod.rs and follows the `mod` lines from
    // there, never the core's public Rust items.
    let builder = cbindgen::Builder::new().with_config(config).with_src(Path::new(&crate_dir).join("src/ffi/mod.rs"));
    let bindings = builder.generate().expect("cbindgen can parse src/ffi");
    let header = Path::new(&crate_dir).join("include").join("ocicas.h");
    // Write only on change, so an unchanged header keeps its mtime and does not rebuild C tests.
    bindings.write_to_file(header);
}
