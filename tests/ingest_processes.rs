//! Ingests across processes: a ref held by a writer in another process is LOCKED until that
//! process dies, and a writer killed with SIGKILL at random points never leaves a partial or
//! corrupt blob. Children are this test binary re-executed in a role chosen by an env var.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::child::{child, child_engine, role};
use common::fixture::bytes;
use common::rng::Rng;
use ocicas::{Algorithm, Digest, Engine, ErrorKind, Labels, WriterOptions};

const HOLD: &str = "a_ref_held_in_another_process_is_locked_until_it_is_killed";
const KILLED: &str = "writers_killed_at_random_points_never_leave_a_partial_blob";

#[test]
fn a_ref_held_in_another_process_is_locked_until_it_is_killed() {
    if role().is_some() {
        let engine = child_engine();
        // Child: hold the ref with some data written, then wait to be killed.
        let mut writer = engine.writer("shared-ref", &WriterOptions::default()).unwrap();
        writer.write(&bytes(10_000, 1)).unwrap();
        println!("ready");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let engine = Engine::create(&layout).unwrap();
    let mut holder = child(HOLD, "hold", &layout).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(holder.stdout.take().unwrap());
    while !line.contains("ready") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the child ended before holding the ref");
    }
    assert_eq!(engine.writer("shared-ref", &WriterOptions::default()).unwrap_err().kind(), ErrorKind::Locked);
    assert_eq!(engine.ingest_abort("shared-ref").unwrap_err().kind(), ErrorKind::Locked);
    holder.kill().unwrap(); // SIGKILL
    holder.wait().unwrap();

    let mut writer = engine.writer("shared-ref", &WriterOptions::default()).unwrap();
    let offset = writer.status().offset as usize;
    let all = bytes(20_000, 1);
    assert!(offset <= 10_000);
    assert_eq!(&all[..offset], &bytes(10_000, 1)[..offset]);
    writer.write(&all[offset..]).unwrap();
    let digest = Digest::of_bytes(Algorithm::Sha256, &all);
    assert_eq!(writer.commit(Some(20_000), Some(&digest), &Labels::new()).unwrap(), digest);
}

#[test]
fn writers_killed_at_random_points_never_leave_a_partial_blob() {
    if role().is_some() {
        let engine = child_engine();
        // Child: ingest, resume and commit blobs forever, until killed.
        let mut round = 0u32;
        loop {
            round += 1;
            let size = 1000 + (round as usize * 7919) % 3_000_000;
            let data = bytes(size, round as u8);
            let ref_name = format!("loop-{}", round % 4);
            let mut writer = match engine.writer(&ref_name, &WriterOptions::default()) {
                Ok(writer) => writer,
                Err(err) if err.kind() == ErrorKind::Locked => continue,
                Err(err) => panic!("{err}"),
            };
            writer.truncate(0).unwrap();
            for chunk in data.chunks(64 << 10) {
                writer.write(chunk).unwrap();
            }
            let digest = Digest::of_bytes(Algorithm::Sha256, &data);
            match writer.commit(Some(size as u64), Some(&digest), &Labels::new()) {
                Ok(_) => {}
                Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
                Err(err) => panic!("{err}"),
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let engine = Engine::create(&layout).unwrap();
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut rounds = 0;
    let mut rng = Rng(1);
    while rounds < 40 && Instant::now() < deadline {
        rounds += 1;
        let mut writer = child(KILLED, "loop", &layout).stdout(Stdio::piped()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(20 + rng.below(300)));
        writer.kill().unwrap();
        writer.wait().unwrap();

        let report = engine.fsck().unwrap();
        assert!(report.is_sound(), "after kill {rounds}: {:?}", report.problems);
        // Every ingest left behind resumes: it either commits what it holds or is aborted.
        for status in engine.ingest_list(&ocicas::Filters::parse::<&str>(&[]).unwrap()).unwrap() {
            let writer = engine.writer(&status.ref_name, &WriterOptions::default()).unwrap();
            assert_eq!(writer.status().offset, status.offset);
            writer.close().unwrap();
        }
    }
    assert!(rounds >= 5, "only {rounds} rounds ran");
    println!("{rounds} kills, {} blobs committed, fsck sound after each", engine.list_blobs().unwrap().len());
}
