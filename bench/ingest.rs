//! Ingest throughput: a 1 GiB blob committed through `IngestWriter::write` in 64 KiB calls,
//! beside the floor measured in the same run (sha256 of the same bytes with the same crate,
//! plus writing them to a file and one fsync). Run: `cargo bench --bench ingest`
//! (OCICAS_BENCH_MIB sets the size, OCICAS_BENCH_DIR the directory; default: ./target).

use std::fs::File;
use std::io::Write;
use std::time::Instant;

use ocicas::{Algorithm, Engine, Labels, WriterOptions};
use sha2::{Digest as _, Sha256};

const CHUNK: usize = 64 << 10;
const ROUNDS: usize = 5;

fn main() {
    let mib: usize = std::env::var("OCICAS_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let base = std::env::var("OCICAS_BENCH_DIR").unwrap_or_else(|_| "target".to_owned());
    let data = pseudo_random(mib << 20);
    let mut floor = Vec::new();
    let mut ours = Vec::new();
    // Each run starts from a settled file system (the previous run's files removed and synced),
    // and the order alternates: whichever runs second in a pair otherwise pays for the first.
    for round in 0..ROUNDS {
        for ocicas_first in [round % 2 == 0, round % 2 == 1] {
            let dir = tempfile::tempdir_in(&base).expect("bench dir");
            match ocicas_first {
                true => ours.push(run_ocicas(&data, &dir.path().join("layout"))),
                false => floor.push(run_floor(&data, &dir.path().join("floor.bin"))),
            }
            drop(dir);
            // SAFETY: sync(2) takes no arguments and cannot fail.
            unsafe { libc::sync() };
        }
    }
    let (floor, ours) = (median(floor), median(ours));
    println!("ingest {mib} MiB in {} KiB writes, median of {ROUNDS}:", CHUNK >> 10);
    println!("  floor (sha256 + write + fsync)  {floor:8.1} MB/s");
    println!("  ocicas IngestWriter             {ours:8.1} MB/s   ({:.2}x the floor)", ours / floor);
}

fn run_floor(data: &[u8], path: &std::path::Path) -> f64 {
    let start = Instant::now();
    let mut file = File::create(path).unwrap();
    let mut hasher = Sha256::new();
    for chunk in data.chunks(CHUNK) {
        hasher.update(chunk);
        file.write_all(chunk).unwrap();
    }
    file.sync_all().unwrap();
    std::hint::black_box(hasher.finalize());
    mb_per_s(data.len(), start)
}

fn run_ocicas(data: &[u8], layout: &std::path::Path) -> f64 {
    let engine = Engine::create(layout).unwrap();
    let start = Instant::now();
    let mut writer = engine.writer("bench", &WriterOptions::default()).unwrap();
    for chunk in data.chunks(CHUNK) {
        writer.write(chunk).unwrap();
    }
    let written = start.elapsed();
    let digest = writer.commit(Some(data.len() as u64), None, &Labels::new()).unwrap();
    if std::env::var("OCICAS_BENCH_VERBOSE").is_ok() {
        eprintln!(
            "  open+write {:.2}s, commit {:.2}s",
            written.as_secs_f64(),
            (start.elapsed() - written).as_secs_f64()
        );
    }
    let speed = mb_per_s(data.len(), start);
    assert_eq!(digest.algorithm(), Algorithm::Sha256);
    speed
}

fn mb_per_s(bytes: usize, start: Instant) -> f64 {
    bytes as f64 / 1e6 / start.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state = 0x9E3779B97F4A7C15u64;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}
