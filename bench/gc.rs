//! GC throughput. Builds a layout of N small blobs (default 1,000,000), half of them reachable
//! from tagged manifests and half garbage, then times `Engine::gc` and, on a copy, bare unlinks
//! of the same garbage (32 threads, nothing else): the floor that the file system sets for any
//! sweep. With OCICAS_BENCH_UMOCI=1 it also builds five 20,000-blob layouts and times `umoci gc`,
//! `ocicas gc` and bare unlinks on identical copies of each (medians). Peak memory: run
//! `ocicas gc` under `/usr/bin/time -v` on a layout made with OCICAS_BENCH_BUILD_ONLY=DIR.
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

    let start = Instant::now();
    let big = Round::new(dir.path(), "big", blobs, false);
    println!("built {blobs} blobs and a copy in {:.1}s", start.elapsed().as_secs_f64());
    let (ours, _, floor) = big.run();
    println!(
        "{blobs} blobs (half unreachable): ocicas gc {ours:.2}s; bare unlinks of the same garbage {floor:.2}s \
         (ocicas / bare unlinks: {:.2}x)",
        ours / floor
    );

    if std::env::var("OCICAS_BENCH_UMOCI").as_deref() == Ok("1") {
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        let mut floor = Vec::new();
        for round in 0..5 {
            let (o, t, f) = Round::new(dir.path(), &format!("small-{round}"), 20_000, true).run();
            ours.push(o);
            theirs.push(t.expect("umoci timed"));
            floor.push(f);
        }
        let (ours, theirs, floor) = (median(ours), median(theirs), median(floor));
        println!(
            "20,000 blobs, median of 5: umoci gc {theirs:.3}s, ocicas gc {ours:.3}s ({:.1}x faster); \
             bare unlinks of the same garbage {floor:.3}s (ocicas / bare unlinks: {:.2}x, umoci / bare unlinks: {:.1}x)",
            theirs / ours,
            ours / floor,
            theirs / floor
        );
    }
}

/// Identical copies of one layout: for ocicas gc, for bare unlinks and, maybe, for umoci gc.
struct Round {
    ours: PathBuf,
    bare: PathBuf,
    umoci: Option<PathBuf>,
}

impl Round {
    fn new(dir: &Path, name: &str, blobs: usize, with_umoci: bool) -> Round {
        let ours = dir.join(name);
        build_layout(&ours, blobs);
        let bare = dir.join(format!("{name}-unlink"));
        let umoci = with_umoci.then(|| dir.join(format!("{name}-umoci")));
        for target in std::iter::once(&bare).chain(&umoci) {
            assert!(Command::new("cp").args(["-a"]).arg(&ours).arg(target).status().unwrap().success());
        }
        Round { ours, bare, umoci }
    }

    /// Seconds of ocicas gc, umoci gc and bare unlinks of the garbage ocicas removed. Each
    /// starts with nothing left for the disk to write (the one before leaves its unlinks in the
    /// journal), so the order of the three does not favour the later ones.
    fn run(&self) -> (f64, Option<f64>, f64) {
        let theirs = self.umoci.as_ref().map(|copy| {
            sync_to_disk();
            let start = Instant::now();
            assert!(Command::new("umoci").args(["gc", "--layout"]).arg(copy).status().unwrap().success());
            start.elapsed().as_secs_f64()
        });
        sync_to_disk();
        let ours = time_ocicas_gc(&self.ours);
        let left = |p: &Path| -> HashSet<_> {
            fs::read_dir(p.join("blobs/sha256")).unwrap().map(|entry| entry.unwrap().file_name()).collect()
        };
        let kept = left(&self.ours);
        if let Some(copy) = &self.umoci {
            assert_eq!(left(copy), kept, "ocicas and umoci kept different blobs");
        }
        let garbage: Vec<_> =
            left(&self.bare).difference(&kept).map(|name| self.bare.join("blobs/sha256").join(name)).collect();
        sync_to_disk();
        (ours, theirs, time_bare_unlinks(&garbage))
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

fn time_ocicas_gc(layout: &Path) -> f64 {
    let engine = Engine::open(layout, &Default::default()).unwrap();
    let start = Instant::now();
    engine.gc(&GcOptions::default()).unwrap();
    start.elapsed().as_secs_f64()
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
