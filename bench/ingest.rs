//! Ingest throughput: a 1 GiB blob committed in 64 KiB writes by each contender, beside the floor
//! measured in the same run (sha256 of the same bytes with the same crate, plus writing them to a
//! file and one fsync). Run: `cargo bench --bench ingest` (OCICAS_BENCH_MIB sets the size,
//! OCICAS_BENCH_DIR the directory, default ./target; OCICAS_BENCH_VERBOSE prints every run).
//!
//! Contenders: ocicas from Rust (`IngestWriter::write`), ocicas from C (bench/ingest_c.c, built
//! here with `cc` against libocicas.a), and containerd's local content store from Go through
//! `content.WriteBlob` (bench/peers/containerd-ingest, built here with `go build`). A contender
//! whose compiler is missing is skipped with a line saying so. Every contender times the same
//! section: writer open, the writes, commit done. The floor and ocicas from Rust take the data
//! from memory; the two programs read it from a file in the page cache, 64 KiB at a time, inside
//! their timed section, and the bench times that read alone on its own line. (Loading the whole
//! file first instead made the C program 2-3x slower here: on this microVM a process touching a
//! fresh GiB slows the file writes that follow.)
//!
//! Durability work is not the same, and the figures include the difference:
//! - floor: one fsync of the data file, nothing else.
//! - ocicas: the ingest's metadata (`ingest.json`) is written once, without fsync; the data is
//!   handed to writeback every 8 MiB; every 256 MiB the data is fsynced and the hash state saved
//!   (so a resume need not re-hash); commit fsyncs the data, renames it into blobs/ and fsyncs
//!   that directory.
//! - containerd (v2.4.2): metadata files written without fsync, no hash state (a resume re-hashes
//!   everything); commit fsyncs the data, renames it into blobs/ and fsyncs that directory.
//!   `content.Copy` gathers the 64 KiB reads into 1 MiB writes, so its writer sees 1 MiB calls.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ocicas::{Digest, Engine, Labels, WriterOptions};
use sha2::{Digest as _, Sha256};

const CHUNK: usize = 64 << 10;
const ROUNDS: usize = 5;

enum Contender {
    Floor,
    /// Reading the data file in 64 KiB reads: the part of the programs' figures that the floor
    /// and ocicas from Rust do not do.
    PageCacheRead,
    OcicasRust,
    /// A program run as `PROGRAM DATA_FILE DIR DIGEST` that ingests DATA_FILE into a new store at
    /// DIR and prints "DIGEST SECONDS" for its timed section.
    Program(PathBuf),
}

/// One timed run: its throughput and the digest the contender computed (none for the read).
struct Run {
    mb_per_s: f64,
    digest: Option<String>,
}

fn main() {
    let mib: usize = std::env::var("OCICAS_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let base = PathBuf::from(std::env::var("OCICAS_BENCH_DIR").unwrap_or_else(|_| "target".to_owned()));
    let verbose = std::env::var("OCICAS_BENCH_VERBOSE").is_ok();
    let data = pseudo_random(mib << 20);
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&data)));

    let mut contenders = vec![("floor (sha256 + write + fsync)", Contender::Floor)];
    contenders.push(("ocicas from Rust", Contender::OcicasRust));
    // The rustc run that built the library this bench links also wrote libocicas.a beside it,
    // in deps/ (cargo copies it up to target/release only when the library itself is asked for).
    let deps_dir = std::env::current_exe().expect("bench path").parent().expect("deps dir").to_owned();
    let build_dir = deps_dir.parent().expect("build dir").to_owned();
    match build_c(&deps_dir, &build_dir) {
        Ok(program) => contenders.push(("ocicas from C", Contender::Program(program))),
        Err(reason) => println!("skipped: ocicas from C ({reason})"),
    }
    match build_go(&build_dir) {
        Ok(program) => contenders.push(("containerd local, Go WriteBlob", Contender::Program(program))),
        Err(reason) => println!("skipped: containerd local store ({reason})"),
    }
    let data_file = base.join("ingest-data.bin");
    if contenders.iter().any(|(_, c)| matches!(c, Contender::Program(_))) {
        // Synced, so that the first run does not pay for writing it back.
        let mut file = File::create(&data_file).expect("create the data file");
        file.write_all(&data).and_then(|()| file.sync_all()).expect("write the data file");
        contenders.push(("read of the data file (in C, Go)", Contender::PageCacheRead));
    }

    let mut runs: Vec<Vec<Run>> = contenders.iter().map(|_| Vec::new()).collect();
    for round in 0..ROUNDS {
        // Each run starts from a settled file system (the previous run's files removed and
        // synced), and the order rotates: whoever runs after another otherwise pays for it.
        for i in (0..contenders.len()).map(|i| (i + round) % contenders.len()) {
            let (name, contender) = &contenders[i];
            let dir = tempfile::tempdir_in(&base).expect("bench dir");
            let run = match contender {
                Contender::Floor => run_floor(&data, &dir.path().join("floor.bin")),
                Contender::PageCacheRead => run_read(&data_file, data.len()),
                Contender::OcicasRust => run_ocicas(&data, &digest, &dir.path().join("layout"), verbose),
                Contender::Program(program) => {
                    run_program(program, &data_file, data.len(), &dir.path().join("store"), &digest)
                }
            };
            if let Some(computed) = &run.digest {
                assert_eq!(*computed, digest, "{name} computed another digest");
            }
            if verbose {
                eprintln!("  round {round}: {name} {:.1} MB/s", run.mb_per_s);
            }
            runs[i].push(run);
            drop(dir);
            // SAFETY: sync(2) takes no arguments and cannot fail.
            unsafe { libc::sync() };
        }
    }
    // Best effort: the data file is only an input, and a later run writes it afresh.
    let _ = std::fs::remove_file(&data_file);

    println!("ingest {mib} MiB in {} KiB writes, median of {ROUNDS} (digests all {digest}):", CHUNK >> 10);
    println!("  {:<32} {:>8}  {:>15}  {:>6}", "", "MB/s", "min-max", "floor");
    let speeds: Vec<Vec<f64>> = runs.iter().map(|r| r.iter().map(|run| run.mb_per_s).collect()).collect();
    let floor = median(&speeds[0]);
    for ((name, _), speeds) in contenders.iter().zip(&speeds) {
        let (min, max) = (speeds.iter().copied().fold(f64::MAX, f64::min), speeds.iter().copied().fold(0.0, f64::max));
        let speed = median(speeds);
        println!("  {name:<32} {speed:8.1}  {:>15}  {:5.2}x", format!("{min:.0}-{max:.0}"), speed / floor);
    }
}

fn run_floor(data: &[u8], path: &Path) -> Run {
    let start = Instant::now();
    let mut file = File::create(path).unwrap();
    let mut hasher = Sha256::new();
    for chunk in data.chunks(CHUNK) {
        hasher.update(chunk);
        file.write_all(chunk).unwrap();
    }
    file.sync_all().unwrap();
    let digest = hasher.finalize();
    Run {
        mb_per_s: mb_per_s(data.len(), start.elapsed().as_secs_f64()),
        digest: Some(format!("sha256:{}", hex::encode(digest))),
    }
}

/// Size and digest are given up front, as a pull knows them from the descriptor (and as the
/// other contenders get them).
fn run_ocicas(data: &[u8], digest: &str, layout: &Path, verbose: bool) -> Run {
    let expected: Digest = digest.parse().unwrap();
    let engine = Engine::create(layout).unwrap();
    let options = WriterOptions { expected_size: Some(data.len() as u64), expected_digest: Some(expected.clone()) };
    let start = Instant::now();
    let mut writer = engine.writer("bench", &options).unwrap();
    for chunk in data.chunks(CHUNK) {
        writer.write(chunk).unwrap();
    }
    let written = start.elapsed();
    let committed = writer.commit(Some(data.len() as u64), Some(&expected), &Labels::new()).unwrap();
    let elapsed = start.elapsed();
    if verbose {
        eprintln!(
            "  ocicas from Rust: open+write {:.2}s, commit {:.2}s",
            written.as_secs_f64(),
            (elapsed - written).as_secs_f64()
        );
    }
    Run { mb_per_s: mb_per_s(data.len(), elapsed.as_secs_f64()), digest: Some(committed.to_string()) }
}

fn run_read(data_file: &Path, bytes: usize) -> Run {
    let start = Instant::now();
    let mut file = File::open(data_file).expect("data file");
    let mut buffer = vec![0; CHUNK];
    let mut read = 0;
    while let n @ 1.. = file.read(&mut buffer).expect("read the data file") {
        read += n;
    }
    assert_eq!(read, bytes, "the data file is short");
    Run { mb_per_s: mb_per_s(bytes, start.elapsed().as_secs_f64()), digest: None }
}

fn run_program(program: &Path, data_file: &Path, bytes: usize, dir: &Path, digest: &str) -> Run {
    let output = Command::new(program).arg(data_file).arg(dir).arg(digest).output().expect("run a contender");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{} failed: {}{stdout}",
        program.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let (digest, seconds) = stdout.trim().split_once(' ').expect("DIGEST SECONDS");
    Run { mb_per_s: mb_per_s(bytes, seconds.parse().expect("seconds")), digest: Some(digest.to_owned()) }
}

/// Compiles bench/ingest_c.c against include/ocicas.h and the libocicas.a in `deps_dir`;
/// statically, so no library path or SONAME link is needed to run it.
fn build_c(deps_dir: &Path, build_dir: &Path) -> Result<PathBuf, String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let program = build_dir.join("ingest_c");
    let output = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".to_owned()))
        .args(["-O2", "-Wall", "-Werror", "-I"])
        .arg(repo.join("include"))
        .arg(repo.join("bench/ingest_c.c"))
        .arg(deps_dir.join("libocicas.a"))
        // What Rust's std needs from the system on Linux (CMakeLists.txt asks rustc for the list).
        .args(["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-o"])
        .arg(&program)
        .output();
    match output {
        Err(err) if err.kind() == ErrorKind::NotFound => Err("no C compiler: cc not found".to_owned()),
        Err(err) => panic!("cannot run cc: {err}"),
        Ok(output) if !output.status.success() => {
            panic!("bench/ingest_c.c: {}", String::from_utf8_lossy(&output.stderr))
        }
        Ok(_) => Ok(program),
    }
}

/// Builds the containerd peer with go (from PATH, else /usr/local/go/bin); the first build
/// downloads containerd's module through the Go module proxy.
fn build_go(build_dir: &Path) -> Result<PathBuf, String> {
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/peers/containerd-ingest");
    let program = build_dir.join("containerd-ingest");
    let build = |go: &str| Command::new(go).args(["build", "-o"]).arg(&program).arg(".").current_dir(&peer).output();
    let output = match build("go") {
        Err(err) if err.kind() == ErrorKind::NotFound => build("/usr/local/go/bin/go"),
        other => other,
    };
    match output {
        Err(err) if err.kind() == ErrorKind::NotFound => {
            Err("go not found on PATH nor in /usr/local/go/bin".to_owned())
        }
        Err(err) => Err(format!("cannot run go: {err}")),
        Ok(output) if !output.status.success() => {
            Err(format!("go build failed: {}", String::from_utf8_lossy(&output.stderr).trim()))
        }
        Ok(_) => Ok(program),
    }
}

fn mb_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds
}

fn median(values: &[f64]) -> f64 {
    let mut values = values.to_vec();
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
