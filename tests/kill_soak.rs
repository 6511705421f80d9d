//! Kill -9 soak: a child process ingests blobs, streams layers, appends them to images, tags,
//! untags and runs GC in a loop, printing each tag as soon as it is acknowledged; it is
//! SIGKILLed at random points, round after round. After each kill the store is sound (fsck),
//! and every acknowledged tag resolves to a complete image. Children are this test binary
//! re-executed in a role chosen by an env var.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::child::{child, child_engine, role};
use common::rng::Rng;
use ocicas::{
    CompressionOptions, Descriptor, Digest, Document, Engine, ErrorKind, GcOptions, Labels, LayerStream,
    StorageOptions, WriterOptions,
};

const TEST: &str = "acknowledged_tags_survive_sigkill_at_random_points";
const SOAK_FOR: Duration = Duration::from_secs(15);

fn bytes(n: usize, seed: u32) -> Vec<u8> {
    (0..n).map(|i| (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed).to_le_bytes()[1]).collect()
}

/// One round of the child's work; prints `tagged NAME DIGEST` once a tag is acknowledged.
fn child_round(engine: &Engine, round: u32, out: &mut impl Write) -> ocicas::Result<()> {
    // A resumable ingest, sometimes left half-written for the next round (or GC) to find.
    let ref_name = format!("ingest-{}", round % 3);
    match engine.writer(&ref_name, &WriterOptions::default()) {
        Ok(mut writer) => {
            writer.truncate(0)?;
            writer.write(&bytes(50_000 + (round as usize % 7) * 10_000, round))?;
            if round % 2 == 0 {
                writer.commit(None, None, &Labels::new()).map(|_| ()).or_else(ignore_exists)?;
            } else {
                writer.close()?;
            }
        }
        Err(err) if err.kind() == ErrorKind::Locked => {}
        Err(err) => return Err(err),
    }
    // A streamed layer appended to a fresh image, tagged by the append.
    let mut stream = LayerStream::new(engine, &CompressionOptions::default(), &StorageOptions::default())?;
    stream.write(&bytes(200_000, round ^ 0x5555))?;
    let layer = stream.finish()?;
    let name = format!("image-{round}");
    let manifest = engine.append_layer(&name, &layer, "soak")?;
    writeln!(out, "tagged {name} {}", manifest.digest).unwrap();
    out.flush().unwrap();
    // Some images are untagged again, and GC runs now and then.
    if round % 4 == 0 {
        // From here until "untagged" is printed, the tag may or may not be there.
        writeln!(out, "untagging {name}").unwrap();
        out.flush().unwrap();
        engine.ref_delete(&name)?;
        writeln!(out, "untagged {name}").unwrap();
        out.flush().unwrap();
    }
    if round % 5 == 0 {
        engine.gc(&GcOptions { dry_run: false, ingest_expiry: Duration::ZERO, ..GcOptions::default() })?;
    }
    Ok(())
}

/// What the parent knows of a name from the child's acknowledgements.
#[derive(Debug, Clone)]
enum Tag {
    Tagged(Digest),
    /// The child said it is untagging it: tagged as before, or gone.
    BeingUntagged(Digest),
    Untagged,
}

fn ignore_exists(err: ocicas::Error) -> ocicas::Result<()> {
    if err.kind() == ErrorKind::AlreadyExists { Ok(()) } else { Err(err) }
}

/// Every blob of the image `descriptor` names is stored and verifies.
fn assert_complete(engine: &Engine, name: &str, descriptor: &Descriptor) {
    let Document::Manifest(manifest) = engine.read_document(descriptor).unwrap() else {
        panic!("{name} is not a manifest");
    };
    for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
        engine.verify_blob(&blob.digest).unwrap_or_else(|e| panic!("{name}: blob {}: {e}", blob.digest));
    }
}

#[test]
fn acknowledged_tags_survive_sigkill_at_random_points() {
    if let Some(role) = role() {
        let engine = child_engine();
        let start: u32 = role.parse().unwrap();
        let mut out = std::io::stdout().lock();
        for round in start.. {
            child_round(&engine, round, &mut out).unwrap();
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let engine = Engine::create(&layout).unwrap();
    // The latest acknowledged state of each name.
    let mut acknowledged: BTreeMap<String, Tag> = BTreeMap::new();
    let deadline = Instant::now() + SOAK_FOR;
    let (mut kills, mut next_round, mut rng) = (0u32, 0u32, Rng(1));
    while Instant::now() < deadline {
        let mut child = child(TEST, &next_round.to_string(), &layout).stdout(Stdio::piped()).spawn().unwrap();
        // Lines are read on a thread, so that the kill lands wherever the child is.
        let (lines_tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        std::thread::sleep(Duration::from_millis(30 + rng.below(400)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        kills += 1;
        for line in lines.try_iter() {
            // libtest may print "test NAME ... " before the child's first line.
            let line = line.rsplit("... ").next().unwrap_or(&line).to_owned();
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next()) {
                (Some("tagged"), Some(name), Some(digest)) => {
                    acknowledged.insert(name.to_owned(), Tag::Tagged(digest.parse().unwrap()));
                }
                (Some("untagging"), Some(name), None) => {
                    if let Some(Tag::Tagged(digest)) = acknowledged.get(name).cloned() {
                        acknowledged.insert(name.to_owned(), Tag::BeingUntagged(digest));
                    }
                }
                (Some("untagged"), Some(name), None) => {
                    acknowledged.insert(name.to_owned(), Tag::Untagged);
                }
                _ => {}
            }
        }
        next_round += 100; // each child starts on names no earlier child used

        let report = engine.fsck().unwrap();
        assert!(report.is_sound(), "after kill {kills}: {:?}", report.problems);
        for (name, tag) in &acknowledged {
            match (engine.ref_get(name), tag) {
                (Ok(descriptor), Tag::Tagged(digest) | Tag::BeingUntagged(digest)) => {
                    assert_eq!(&descriptor.digest, digest, "after kill {kills}: {name} moved");
                    assert_complete(&engine, name, &descriptor);
                }
                (Err(err), Tag::Untagged | Tag::BeingUntagged(_)) => assert_eq!(err.kind(), ErrorKind::NotFound),
                (result, expected) => panic!("after kill {kills}: {name} is {result:?}, acknowledged {expected:?}"),
            }
        }
    }
    let tagged = acknowledged.values().filter(|t| matches!(t, Tag::Tagged(_))).count();
    assert!(kills >= 5 && tagged >= 5, "only {kills} kills and {tagged} acknowledged tags");
    // The store stays usable: GC past the commit grace, then fsck again.
    std::thread::sleep(Duration::from_millis(1100));
    engine.gc(&GcOptions { dry_run: false, ingest_expiry: Duration::ZERO, ..GcOptions::default() }).unwrap();
    assert!(engine.fsck().unwrap().is_sound());
    println!("{kills} kills, {tagged} acknowledged tags whole, {} blobs", engine.list_blobs().unwrap().len());
}
