//! The layout is untrusted: links and files planted in it never lead a command outside it, and
//! what the writer wrote is what gets committed. Each test is one reproduction of issue 17,
//! driven through the CLI (as it was found) with a sentinel directory beside the layout that
//! must come out byte for byte unchanged.

use crate::common;
use crate::layout_common;

use std::os::unix::fs::symlink;
use std::path::Path;

use common::cli::{FSCK_PROBLEMS, assert_refused, ocicas_output, stderr};
use common::fixture::ingest_dir;
use layout_common::{Sentinel, new_layout, put};
use ocicas::{Algorithm, Digest, Engine, ErrorKind, OpenOptions, WriterOptions};

/// Replaces the directory `path` by a symlink to `target`.
fn replace_with_link(path: &Path, target: &Path) {
    if path.exists() {
        std::fs::remove_dir_all(path).unwrap();
    }
    symlink(target, path).unwrap();
}

/// Reproduction 1: `.ocicas/tmp`, `.ocicas/ingest` or `.ocicas` replaced by a symlink to another
/// directory made `ocicas gc` delete old files and whole subdirectories there, and create `lock`.
#[test]
fn gc_neither_deletes_nor_creates_through_a_private_directory_replaced_by_a_symlink() {
    for private in [".ocicas/tmp", ".ocicas/ingest", ".ocicas"] {
        let dir = tempfile::tempdir().unwrap();
        let sentinel = Sentinel::new(dir.path());
        let layout = new_layout(dir.path(), "layout");
        put(&layout, b"garbage");
        replace_with_link(&layout.join(private), &sentinel.path);
        let before = sentinel.snapshot();
        let gc = ocicas_output(&["gc", layout.to_str().unwrap(), "--ingest-expiry", "0s"], b"");
        assert_refused(&gc, "symlink");
        assert!(stderr(&gc).contains(private), "{private}: {}", stderr(&gc));
        assert_eq!(sentinel.snapshot(), before, "{private}: gc changed the directory the link points at");
        assert!(!sentinel.path.join("lock").exists(), "{private}: gc created a lock through the link");
        let fsck = ocicas_output(&["fsck", layout.to_str().unwrap()], b"");
        assert_eq!(fsck.status.code(), Some(FSCK_PROBLEMS), "{private}: {fsck:?}");
        assert!(String::from_utf8_lossy(&fsck.stdout).contains("symlink"), "{private}: {fsck:?}");
        assert_eq!(sentinel.snapshot(), before, "{private}: fsck changed the directory the link points at");
    }
}

/// Reproduction 2: a symlink planted as an ingest's `data` made `blob put --ref` overwrite the
/// file it points at, chmod it 0444 and commit the symlink into `blobs/`; fsck called it sound.
/// fsck reports the link; a writer starts the ingest afresh, removing the link itself.
#[test]
fn an_ingest_data_symlink_is_never_written_through_nor_committed() {
    let dir = tempfile::tempdir().unwrap();
    let sentinel = Sentinel::new(dir.path());
    let layout = new_layout(dir.path(), "layout");
    let ingest = ingest_dir(&layout, "myref");
    std::fs::create_dir_all(&ingest).unwrap();
    std::fs::write(ingest.join("ingest.json"), br#"{"ref":"myref","startedAt":1}"#).unwrap();
    symlink(sentinel.path.join("file"), ingest.join("data")).unwrap();
    let before = sentinel.snapshot();
    let fsck = ocicas_output(&["fsck", layout.to_str().unwrap()], b"");
    assert_eq!(fsck.status.code(), Some(FSCK_PROBLEMS), "{fsck:?}");
    assert!(String::from_utf8_lossy(&fsck.stdout).contains("data is a symlink"), "{fsck:?}");

    let put = ocicas_output(&["blob", "put", layout.to_str().unwrap(), "-", "--ref", "myref"], b"hello\n");
    assert!(put.status.success(), "{put:?}");
    assert_eq!(sentinel.snapshot(), before);
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let meta = std::fs::symlink_metadata(entry.unwrap().path()).unwrap();
        assert!(meta.is_file(), "a non-file was committed into blobs/");
    }
    let engine = Engine::open(&layout, &OpenOptions::default()).unwrap();
    engine.verify_blob(&Digest::of_bytes(Algorithm::Sha256, b"hello\n")).unwrap();
    assert!(ocicas_output(&["fsck", layout.to_str().unwrap()], b"").status.success());
}

/// Reproduction 3: a dangling `.ocicas/lock` symlink made any write create its target outside.
#[test]
fn a_dangling_lock_symlink_creates_nothing_outside() {
    let dir = tempfile::tempdir().unwrap();
    let sentinel = Sentinel::new(dir.path());
    let layout = new_layout(dir.path(), "layout");
    let digest = put(&layout, b"tagged");
    let target = sentinel.path.join("created-by-lock");
    std::fs::remove_file(layout.join(".ocicas/lock")).ok();
    symlink(&target, layout.join(".ocicas/lock")).unwrap();
    let before = sentinel.snapshot();
    let l = layout.to_str().unwrap();
    let digest = digest.to_string();
    for args in [
        vec!["blob", "put", l, "-"],
        vec!["blob", "put", l, "-", "--ref", "r"],
        vec!["ref", "put", l, "name", &digest, "--media-type", "application/octet-stream"],
        vec!["blob", "rm", l, &digest],
        vec!["gc", l],
        vec!["lease", "new", l],
    ] {
        let out = ocicas_output(&args, b"new bytes");
        assert_refused(&out, "lock is a symlink");
        assert!(!target.exists(), "{args:?} created the lock's target");
    }
    assert_eq!(sentinel.snapshot(), before);
}

/// Reproduction 4: `blobs/sha256` a symlink to a directory another layout uses made GC delete
/// the digest-named files there.
#[test]
fn gc_never_deletes_another_layouts_blobs_through_a_symlinked_blob_directory() {
    let dir = tempfile::tempdir().unwrap();
    let layout = new_layout(dir.path(), "layout");
    let other = new_layout(dir.path(), "other");
    let theirs: Vec<Digest> = (0..5).map(|i| put(&other, format!("their blob {i}").as_bytes())).collect();
    replace_with_link(&layout.join("blobs/sha256"), &other.join("blobs/sha256"));
    let gc = ocicas_output(&["gc", layout.to_str().unwrap()], b"");
    assert_refused(&gc, "blobs/sha256");
    let engine = Engine::open(&other, &OpenOptions::default()).unwrap();
    for digest in &theirs {
        engine.verify_blob(digest).unwrap();
    }
    let fsck = ocicas_output(&["fsck", layout.to_str().unwrap()], b"");
    assert_eq!(fsck.status.code(), Some(FSCK_PROBLEMS), "{fsck:?}");
}

/// Reproduction 6: a resumed ingest trusted its saved hash state, so 4 bytes overwritten in its
/// data were committed under the right digest. The state is bound to the data it describes: the
/// prefix is hashed again, the copy notices the difference and starts over from the file.
#[test]
fn a_resumed_ingest_whose_data_was_changed_is_hashed_again_and_never_committed_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let layout = new_layout(dir.path(), "layout");
    let content: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let digest = Digest::of_bytes(Algorithm::Sha256, &content);
    let file = dir.path().join("content");
    std::fs::write(&file, &content).unwrap();
    let tamper = |ref_name: &str| {
        let engine = Engine::open(&layout, &OpenOptions::default()).unwrap();
        let mut writer = engine.writer(ref_name, &WriterOptions::default()).unwrap();
        writer.write(&content[..10_000]).unwrap();
        writer.close().unwrap();
        use std::os::unix::fs::FileExt;
        let data = std::fs::File::options().write(true).open(ingest_dir(&layout, ref_name).join("data")).unwrap();
        data.write_all_at(b"XXXX", 100).unwrap();
    };

    // Through the CLI with the file and --expect, as found: the right bytes are committed.
    tamper("cli");
    let l = layout.to_str().unwrap();
    let put = ocicas_output(
        &["blob", "put", l, file.to_str().unwrap(), "--ref", "cli", "--expect", &digest.to_string()],
        b"",
    );
    assert!(put.status.success(), "{put:?}");
    let fsck = ocicas_output(&["fsck", l], b"");
    assert!(fsck.status.success(), "{fsck:?}");

    // Through the writer: the rest written and committed expecting the digest is a mismatch.
    let engine = Engine::open(&layout, &OpenOptions::default()).unwrap();
    engine.delete_blob(&digest).unwrap();
    tamper("api");
    let mut writer = engine.writer("api", &WriterOptions::default()).unwrap();
    assert_eq!(writer.status().offset, 10_000);
    writer.write(&content[10_000..]).unwrap();
    let err = writer.commit(Some(content.len() as u64), Some(&digest), &Default::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DigestMismatch, "{err}");
    assert!(!engine.has_blob(&digest).unwrap());
    assert!(engine.fsck().unwrap().is_sound());
}

/// Reproduction 8: 40 `ref put` with 120 KB names made index.json larger than the JSON limit, and
/// every later command failed, the `ref rm` that would mend it included. A write that would
/// pass the limit fails and changes nothing; an index.json already over it can be listed and
/// mended.
#[test]
fn no_write_makes_index_json_larger_than_the_reader_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let layout = new_layout(dir.path(), "layout");
    let l = layout.to_str().unwrap();
    let digest = put(&layout, b"tagged").to_string();
    let name = |i: usize| format!("n{i}-{}", "x".repeat(120_000));
    let mut refused_at = None;
    for i in 0..40 {
        let before = std::fs::read(layout.join("index.json")).unwrap();
        let out = ocicas_output(&["ref", "put", l, &name(i), &digest, "--media-type", "application/octet-stream"], b"");
        if !out.status.success() {
            assert_refused(&out, "json_size");
            assert_eq!(std::fs::read(layout.join("index.json")).unwrap(), before, "a refused put changed index.json");
            refused_at = Some(i);
            break;
        }
    }
    let refused_at = refused_at.expect("40 names of 120 KB fit in index.json");
    assert!(refused_at > 30, "refused after only {refused_at} names");
    let ls = ocicas_output(&["ref", "ls", l], b"");
    assert!(ls.status.success(), "{ls:?}");
    assert_eq!(String::from_utf8_lossy(&ls.stdout).lines().count(), refused_at);

    // Made too large by hand (another tool, or a lower limit): still listed and mended.
    let limit = format!("json_size={}", std::fs::metadata(layout.join("index.json")).unwrap().len() / 2);
    let ls = ocicas_output(&["ref", "ls", l, "--limit", &limit], b"");
    assert!(ls.status.success(), "{ls:?}");
    for i in 0..refused_at {
        let rm = ocicas_output(&["ref", "rm", l, &name(i), "--limit", &limit], b"");
        assert!(rm.status.success(), "ref rm of name {i}: {rm:?}");
    }
    assert!(ocicas_output(&["fsck", l, "--limit", &limit], b"").status.success());
}
