//! A layer streamed through `ocicas layer` from a pipe stays within 64 MiB of memory, with gzip
//! (4 GiB: past where gzip's 32-bit size field wraps) and with zstd (1 GiB, at more threads than
//! zstd's workers fit in the bound), and the DiffID it reports is the sha256 of what went in. The
//! input is generated on the fly and never held whole.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use common::cli::{OCICAS, peak_rss_kib};
use common::rng::Rng;
use sha2::{Digest as _, Sha256};

const MEMORY_LIMIT_KIB: u64 = 64 << 10;

/// Compressible, deterministic data: words chosen by `rng`. Eight such chunks are made once and
/// sent in an order `rng` picks, so the input never repeats in a pattern a compressor can skip.
fn fill(buf: &mut [u8], rng: &mut Rng) {
    const WORDS: [&[u8]; 8] = [b"usr ", b"lib ", b"share ", b"doc ", b"layer ", b"blob\n", b"tar ", b"oci "];
    let mut i = 0;
    while i < buf.len() {
        let word = rng.pick(&WORDS);
        let n = word.len().min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[..n]);
        i += n;
    }
}

/// Streams `input` bytes through `ocicas layer LAYOUT - ARGS...`; checks the DiffID and the peak
/// memory.
fn streams_in_bounded_memory(input: u64, args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    ocicas::Engine::create(&layout).unwrap();
    let mut child = Command::new(OCICAS)
        .args(["layer", layout.to_str().unwrap(), "-"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let mut hasher = Sha256::new();
    let mut rng = Rng(1);
    let chunks: Vec<Vec<u8>> = (0..8)
        .map(|_| {
            let mut chunk = vec![0u8; 1 << 20];
            fill(&mut chunk, &mut rng);
            chunk
        })
        .collect();
    let mut peak = 0;
    let mut sent = 0u64;
    while sent < input {
        let chunk = rng.pick(&chunks);
        hasher.update(chunk);
        stdin.write_all(chunk).unwrap();
        sent += chunk.len() as u64;
        if sent % (256 << 20) == 0 {
            peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
        }
    }
    drop(stdin);
    // Read the peak before the process is reaped: the descriptor line arrives just before exit.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
    let mut rest = String::new();
    let _ = child.stdout.as_mut().map(|s| s.read_to_string(&mut rest));
    assert!(child.wait().unwrap().success());

    let expected = format!("sha256:{}", hex::encode(hasher.finalize()));
    assert!(line.contains(&format!("\"diffID\":\"{expected}\"")), "{line}");
    assert!(peak > 0, "could not read the child's memory use");
    assert!(peak <= MEMORY_LIMIT_KIB, "{args:?}: peak RSS {peak} KiB over {MEMORY_LIMIT_KIB} KiB");
    println!("{} MiB streamed with {args:?}, peak RSS {} MiB", input >> 20, peak / 1024);
}

#[test]
fn a_4_gib_gzip_layer_streams_in_bounded_memory() {
    streams_in_bounded_memory(4 << 30, &["--level", "1", "--threads", "2"]);
}

/// Sixteen zstd workers at level 6 took 80 MB (with 2 MiB jobs): fewer are started.
#[test]
fn a_1_gib_zstd_layer_streams_in_bounded_memory_at_any_thread_count() {
    streams_in_bounded_memory(1 << 30, &["--zstd", "--level", "6", "--threads", "16", "--limit", "threads=16"]);
}
