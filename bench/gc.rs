//! GC throughput. Builds a layout of N small blobs (default 1,000,000), half of them reachable
//! from tagged manifests and half garbage, then times `Engine::gc`; with OCICAS_BENCH_UMOCI=1 it
//! also builds a 20,000-blob layout and times `umoci gc` and `ocicas gc` on identical copies,
//! and, on a third copy, bare unlinks of the same garbage (32 threads, nothing else): the floor
//! that the file system sets for any sweep.
//! Run: `cargo bench --bench gc` (OCICAS_BENCH_BLOBS sets N, OCICAS_BENCH_DIR the directory).

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ocicas::spec::{ImageManifest, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_MANIFEST};
use ocicas::{Algorithm, Descriptor, Digest, Engine, GcOptions};

const LAYERS_PER_MANIFEST: usize = 5000;

fn main() {
    let blobs: usize = std::env::var("OCICAS_BENCH_BLOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let base = std::env::var("OCICAS_BENCH_DIR").unwrap_or_else(|_| "target".to_owned());
    let dir = tempfile::tempdir_in(&base).expect("bench dir");
    if let Ok(keep) = std::env::var("OCICAS_BENCH_BUILD_ONLY") {
        build_layout(Path::new(&keep), blobs);
        return;
    }

    let layout = dir.path().join("big");
    let start = Instant::now();
    build_layout(&layout, blobs);
    sync_to_disk();
    println!("built {blobs} blobs in {:.1}s", start.elapsed().as_secs_f64());
    let (seconds, removed) = time_ocicas_gc(&layout);
    println!("ocicas gc, {blobs} blobs (half unreachable): {seconds:.2}s, removed {removed}");

    if std::env::var("OCICAS_BENCH_UMOCI").as_deref() == Ok("1") {
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        let mut floor = Vec::new();
        for round in 0..3 {
            let small = dir.path().join(format!("small-{round}"));
            build_layout(&small, 20_000);
            let copy = dir.path().join(format!("small-umoci-{round}"));
            let bare = dir.path().join(format!("small-unlink-{round}"));
            for target in [&copy, &bare] {
                assert!(Command::new("cp").args(["-a"]).arg(&small).arg(target).status().unwrap().success());
            }
            sync_to_disk();
            let start = Instant::now();
            assert!(Command::new("umoci").args(["gc", "--layout"]).arg(&copy).status().unwrap().success());
            theirs.push(start.elapsed().as_secs_f64());
            ours.push(time_ocicas_gc(&small).0);
            let left = |p: &Path| -> HashSet<_> {
                fs::read_dir(p.join("blobs/sha256")).unwrap().map(|entry| entry.unwrap().file_name()).collect()
            };
            let kept = left(&copy);
            assert_eq!(left(&small), kept, "ocicas and umoci kept different blobs");
            let garbage: Vec<_> =
                left(&bare).difference(&kept).map(|name| bare.join("blobs/sha256").join(name)).collect();
            floor.push(time_bare_unlinks(&garbage));
        }
        let (ours, theirs, floor) = (median(ours), median(theirs), median(floor));
        println!(
            "20,000 blobs, median of 3: umoci gc {theirs:.3}s, ocicas gc {ours:.3}s ({:.1}x faster); \
             bare unlinks of the same garbage {floor:.3}s (umoci / bare unlinks: {:.1}x)",
            theirs / ours,
            theirs / floor
        );
    }
}

/// Writes the new layouts out before timing: a store's blobs have been on disk for a while, and
/// removing a file whose blocks were never allocated costs far less than removing a real one
/// (20,000 blobs: umoci gc 0.35 s just after building, 1.1 s once synced).
fn sync_to_disk() {
    assert!(Command::new("sync").status().unwrap().success());
}

/// Unlinks `paths` with 32 threads, as the sweep does, and nothing else.
fn time_bare_unlinks(paths: &[PathBuf]) -> f64 {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for batch in paths.chunks(paths.len().div_ceil(32).max(1)) {
            scope.spawn(move || batch.iter().for_each(|path| fs::remove_file(path).unwrap()));
        }
    });
    start.elapsed().as_secs_f64()
}

fn time_ocicas_gc(layout: &Path) -> (f64, u64) {
    let engine = Engine::open(layout, &Default::default()).unwrap();
    let start = Instant::now();
    let report = engine.gc(&GcOptions::default()).unwrap();
    (start.elapsed().as_secs_f64(), report.blobs_removed)
}

/// Writes blob files directly (64 bytes each, named by their sha256, an hour old so GC's
/// commit grace does not apply), then manifests listing the reachable half, tagged.
fn build_layout(layout: &Path, blobs: usize) {
    let engine = Engine::create(layout).unwrap();
    let dir = layout.join("blobs/sha256");
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    let mut reachable = Vec::new();
    for i in 0..blobs {
        let bytes = format!("{i:064}");
        let digest = Digest::of_bytes(Algorithm::Sha256, bytes.as_bytes());
        let path = dir.join(digest.hex());
        fs::write(&path, &bytes).unwrap();
        fs::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        if i % 2 == 0 {
            reachable.push(Descriptor::new("application/vnd.oci.image.layer.v1.tar", digest, 64));
        }
    }
    let config = engine
        .put_json(
            MEDIA_TYPE_IMAGE_CONFIG,
            &serde_json::json!({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}),
        )
        .unwrap();
    for (n, layers) in reachable.chunks(LAYERS_PER_MANIFEST).enumerate() {
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_owned()),
            artifact_type: None,
            config: config.clone(),
            layers: layers.to_vec(),
            subject: None,
            annotations: Default::default(),
            extra: Default::default(),
        };
        let manifest = engine.put_json(MEDIA_TYPE_IMAGE_MANIFEST, &manifest).unwrap();
        engine.ref_put(&format!("image-{n}"), &manifest, true).unwrap();
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}
