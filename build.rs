//! Generates include/ocicas.h from src/ffi with cbindgen, gives the shared library its SONAME,
//! and compiles libdeflate's compressor. The header is committed; CI regenerates it and fails
//! when it differs.

use std::path::Path;

/// The global symbols of the vendored libdeflate files; `src/stream/libdeflate.rs` links the
/// four it calls by their prefixed names.
const LIBDEFLATE_SYMBOLS: [&str; 12] = [
    "libdeflate_aligned_free",
    "libdeflate_aligned_malloc",
    "libdeflate_alloc_compressor",
    "libdeflate_alloc_compressor_ex",
    "libdeflate_default_free_func",
    "libdeflate_default_malloc_func",
    "libdeflate_deflate_compress",
    "libdeflate_deflate_compress_bound",
    "libdeflate_deflate_compress_part",
    "libdeflate_free_compressor",
    "libdeflate_get_compression_level",
    "libdeflate_set_memory_allocator",
];

fn main() {
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");

    // Only the compressor and its allocator: the rest of libdeflate is not vendored.
    println!("cargo:rerun-if-changed=third_party/libdeflate");
    let mut libdeflate = cc::Build::new();
    libdeflate
        .files(["third_party/libdeflate/lib/deflate_compress.c", "third_party/libdeflate/lib/utils.c"])
        .include("third_party/libdeflate")
        // Upstream's code is clean under -Wall, not under -Wextra.
        .extra_warnings(false);
    // Every global symbol gets our prefix: libocicas.a must not define `libdeflate_*` (with our
    // changed compressor) in a program that also links the real libdeflate. c-tests/check.sh's
    // `static` check fails when a symbol is missing here.
    for symbol in LIBDEFLATE_SYMBOLS {
        libdeflate.define(symbol, Some(format!("ocicas_{symbol}").as_str()));
    }
    libdeflate.compile("deflate");

    // While the version is 0.x a minor release may break the ABI, so the SONAME carries the minor
    // (libocicas.so.0.1); from 1.0 on, the major alone. CMakeLists.txt names the same file.
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version");
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").expect("cargo sets the version");
    let soname_version = if major == "0" { format!("0.{minor}") } else { major };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libocicas.so.{soname_version}");

    let config =
        cbindgen::Config::from_file(Path::new(&crate_dir).join("cbindgen.toml")).expect("cbindgen.toml is valid");
    // Only src/ffi is the C ABI: cbindgen reads its mod.rs and follows the `mod` lines from
    // there, never the core's public Rust items.
    let builder = cbindgen::Builder::new().with_config(config).with_src(Path::new(&crate_dir).join("src/ffi/mod.rs"));
    let bindings = builder.generate().expect("cbindgen can parse src/ffi");
    let header = Path::new(&crate_dir).join("include").join("ocicas.h");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    // Rust's lints want a "# Safety" section on each unsafe function; a C reader looks for the
    // caller's preconditions.
    let text =
        String::from_utf8(generated).expect("cbindgen writes UTF-8").replace(" * # Safety\n", " * Preconditions:\n");
    // Write only on change, so an unchanged header keeps its mtime and does not rebuild C tests.
    if std::fs::read_to_string(&header).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&header, text).expect("include/ocicas.h is writable");
    }
}
