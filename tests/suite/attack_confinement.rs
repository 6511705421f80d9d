//! An outside reviewer's attacks on the promise of issues 17 and 18: the layout is untrusted
//! input, yet nothing outside it is touched, no command hangs or panics because of what is
//! planted in it, and nothing reachable is lost. Each test is one way found to break the
//! promise, with a sentinel directory beside the layout wherever something outside could change.
//!
//! Planting devices and mounting needs root (as CI runs); without it those tests say so and
//! check nothing.

use crate::common;
use crate::layout_common;

use std::mem::MaybeUninit;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::cli::{OCICAS, ocicas_output, peak_rss_kib, spawn_ocicas, stderr};
use common::fixture::{BeforeFirstLock, age, age_blob, closed_ingest, ingest_dir};
use layout_common::{Sentinel, new_layout, put};
use ocicas::{Algorithm, Digest, Engine, GcOptions, Labels, OpenOptions, WriterOptions};

/// No command on a layout this small takes long; one that does is hung.
const COMMAND_DEADLINE: Duration = Duration::from_secs(10);

/// Sparse files planted as ingest data or blobs: nothing on disk, hours of hashing.
const SPARSE_SIZE: u64 = 1 << 40;

/// Whether the test runs as root; when not, it says that `needs_root` cannot be done.
fn is_root_for(needs_root: &str) -> bool {
    // /proc/self belongs to the effective user.
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    if !root {
        eprintln!("not root: {needs_root} cannot be done, nothing checked");
    }
    root
}

/// Runs the CLI like `ocicas`, but kills it at `COMMAND_DEADLINE`: None when it hung.
fn ocicas_within_deadline(args: &[&str], stdin: &[u8]) -> Option<Output> {
    let mut child = spawn_ocicas(args, stdin);
    let deadline = Instant::now() + COMMAND_DEADLINE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(child.wait_with_output().unwrap())
}

/// Runs the shell `script` with `args` ($1, $2, ...) in a mount namespace of its own, so that
/// what it mounts is gone when it ends. The script exits 97 when it cannot mount.
fn in_private_mount_namespace(script: &str, args: &[&str]) -> Output {
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-euc", script, "sh"])
        .args(args)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(97), "cannot mount as root: {}", stderr(&out));
    out
}

/// Runs the shell `commands` with `$layout` a new layout on a tmpfs of its own and `$ocicas`
/// the CLI; None when not root (nothing can be mounted).
fn on_a_tmpfs_layout(commands: &str) -> Option<Output> {
    if !is_root_for("mounting a tmpfs") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        r#"mount -t tmpfs none "$1" || exit 97
        layout="$1/layout" ocicas="$2"
        "$ocicas" init "$layout" >/dev/null
        {commands}"#
    );
    Some(in_private_mount_namespace(&script, &[dir.path().to_str().unwrap(), OCICAS]))
}

fn assert_no_panic(out: &Output, what: &str) {
    assert!(out.status.code() != Some(101) && !stderr(out).contains("panicked"), "{what} panicked: {}", stderr(out));
}

fn now_text() -> String {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos().to_string()
}

/// A hard link is another name of the same file: planted as an ingest's `data` (a tarball's
/// link entry extracted without care, a user sharing the layout, a layout cloned with
/// `cp -al`), it names a file outside the layout that no symlink check sees. `blob put --ref`
/// truncated that file (damaged metadata resets the ingest), overwrote it, chmodded it 0444 and
/// renamed it into `blobs/`; with complete metadata it appended to it instead.
#[test]
fn a_hard_link_planted_as_ingest_data_is_never_truncated_written_or_chmodded() {
    let mut changed = Vec::new();
    for resumable in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let sentinel = Sentinel::new(dir.path());
        let layout = new_layout(dir.path(), "layout");
        let ingest = ingest_dir(&layout, "myref");
        std::fs::create_dir_all(&ingest).unwrap();
        if resumable {
            std::fs::write(ingest.join("ref"), b"myref").unwrap();
            std::fs::write(ingest.join("startedat"), now_text()).unwrap();
            std::fs::write(ingest.join("updatedat"), now_text()).unwrap();
        }
        std::fs::hard_link(sentinel.path.join("file"), ingest.join("data")).unwrap();
        let before = sentinel.snapshot();

        // The input starts with the linked file's bytes, so a resume goes on after them.
        let put = ocicas_output(
            &["blob", "put", layout.to_str().unwrap(), "-", "--ref", "myref"],
            b"outside bytes, and more",
        );
        let after = sentinel.snapshot();
        if after != before {
            let file = &sentinel.path.join("file");
            changed.push(format!("resumable: {resumable}: {:?} became {:?} ({put:?})", before[file], after[file]));
        }
    }
    assert!(
        changed.is_empty(),
        "blob put --ref changed a file outside the layout through a hard link:\n{}",
        changed.join("\n")
    );
}

/// A blob that is a hard link to a file outside the layout, of the size its name says: a commit
/// of the same digest finds it intact and sets its mtime (the commit grace), so the outside
/// file's time changes.
#[test]
fn a_hard_link_planted_as_a_blob_keeps_the_time_of_the_file_outside() {
    let dir = tempfile::tempdir().unwrap();
    let sentinel = Sentinel::new(dir.path());
    let layout = new_layout(dir.path(), "layout");
    let content = b"twelve bytes";
    assert_eq!(content.len() as u64, std::fs::metadata(sentinel.path.join("old")).unwrap().len());
    let digest = Digest::of_bytes(Algorithm::Sha256, content);
    std::fs::hard_link(sentinel.path.join("old"), layout.join("blobs/sha256").join(digest.hex())).unwrap();
    let before = sentinel.snapshot();
    let l = layout.to_str().unwrap();
    let digest = digest.to_string();
    let mut changed = Vec::new();
    for args in [vec!["blob", "put", l, "-"], vec!["blob", "put", l, "-", "--ref", "r", "--expect", &digest]] {
        let out = ocicas_output(&args, content);
        if sentinel.snapshot() != before {
            changed.push(format!("`ocicas {}` ({})", args.join(" "), stderr(&out).trim()));
        }
    }
    assert!(changed.is_empty(), "changed a file outside the layout through a hard link: {}", changed.join(", "));
}

/// A device node planted in the layout is refused, but only after it was opened: its driver's
/// open ran (a watchdog arms, a tape rewinds, a modem line rises), which is the device outside
/// the layout touched. Seen here as the IN_OPEN inotify event of a node with /dev/null's numbers.
#[test]
fn a_device_planted_in_the_layout_is_never_opened() {
    use rustix::fs::inotify;
    if !is_root_for("planting a device") {
        return;
    }
    let tagged = b"tagged";
    let digest = Digest::of_bytes(Algorithm::Sha256, tagged);
    let labels = format!(".ocicas/labels/sha256/{}", digest.hex());
    let blob = format!("blobs/sha256/{}", digest.hex());
    let data = Path::new(".ocicas/ingest").join(Digest::of_bytes(Algorithm::Sha256, b"myref").hex()).join("data");
    let data = data.to_str().unwrap();
    let digest = digest.to_string();
    let cases: [(&str, &[&str]); 7] = [
        ("index.json", &["ref", "ls"]),
        ("oci-layout", &["ref", "ls"]),
        (".ocicas/lock", &["blob", "put", "-"]),
        (&blob, &["blob", "get", &digest]),
        (&labels, &["blob", "info", &digest]),
        (".ocicas/leases/held", &["lease", "ls"]),
        (data, &["blob", "put", "-", "--ref", "myref"]),
    ];
    let mut opened = Vec::new();
    for (site, command) in cases {
        let dir = tempfile::tempdir().unwrap();
        let layout = new_layout(dir.path(), "layout");
        put(&layout, tagged);
        closed_ingest(&layout, "myref", b"partial");
        let site = layout.join(site);
        std::fs::create_dir_all(site.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&site);
        let null = rustix::fs::makedev(1, 3);
        let mode = rustix::fs::Mode::from_raw_mode(0o666);
        rustix::fs::mknodat(rustix::fs::CWD, &site, rustix::fs::FileType::CharacterDevice, mode, null).unwrap();
        let watch = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC).unwrap();
        inotify::add_watch(&watch, &site, inotify::WatchFlags::OPEN).unwrap();

        // Every command is two words, then the layout, then its arguments.
        let (verb, rest) = command.split_at(2);
        let mut args: Vec<&str> = verb.to_vec();
        args.push(layout.to_str().unwrap());
        args.extend_from_slice(rest);
        let out = ocicas_output(&args, b"input");
        let mut buf = [MaybeUninit::uninit(); 1024];
        let mut reader = inotify::Reader::new(&watch, &mut buf);
        // Only IN_OPEN counts: removing the node (an ingest started afresh) ends the watch with
        // IN_IGNORED, which is delivered whatever the mask.
        loop {
            match reader.next() {
                Ok(event) if event.events().contains(inotify::ReadFlags::OPEN) => {
                    let message =
                        format!("`ocicas {}` opened {} ({})", args.join(" "), site.display(), stderr(&out).trim());
                    opened.push(message);
                    break;
                }
                Ok(_) => {}
                Err(rustix::io::Errno::AGAIN) => break,
                Err(err) => panic!("inotify: {err}"),
            }
        }
    }
    assert!(opened.is_empty(), "devices planted in the layout were opened:\n{}", opened.join("\n"));
}

/// A mount point inside the layout (root's bind mount, or a user's FUSE mount on a directory
/// of a shared layout) is crossed by every path lookup: GC swept the temp files, the ingest
/// trees and the digest-named files of whatever file system is mounted there. Lookups could
/// refuse to cross (RESOLVE_NO_XDEV, or the walk comparing devices) as they refuse symlinks.
#[test]
fn gc_removes_nothing_beyond_a_mount_point_inside_the_layout() {
    if !is_root_for("a bind mount") {
        return;
    }
    let ingest_mount = Path::new(".ocicas/ingest").join(Digest::of_bytes(Algorithm::Sha256, b"r").hex()).join("m");
    let mut changed = Vec::new();
    for mount_point in [Path::new(".ocicas/tmp"), ingest_mount.as_path(), Path::new("blobs/sha256")] {
        let dir = tempfile::tempdir().unwrap();
        let sentinel = Sentinel::new(dir.path());
        // A file named like a blob, as another layout's blobs/sha256 holds them.
        let theirs = sentinel.path.join(Digest::of_bytes(Algorithm::Sha256, b"theirs").hex());
        std::fs::write(&theirs, b"theirs").unwrap();
        age(&theirs);
        let layout = new_layout(dir.path(), "layout");
        std::fs::create_dir_all(layout.join(mount_point)).unwrap();
        let before = sentinel.snapshot();

        let script = r#"mount --bind "$1" "$2" || exit 97; exec "$3" gc "$4" --ingest-expiry 0s"#;
        let target = layout.join(mount_point);
        let gc = in_private_mount_namespace(
            script,
            &[sentinel.path.to_str().unwrap(), target.to_str().unwrap(), OCICAS, layout.to_str().unwrap()],
        );
        let after = sentinel.snapshot();
        if after != before {
            let gone: Vec<_> = before.keys().filter(|path| !after.contains_key(*path)).collect();
            changed.push(format!("{} mounted: removed {gone:?} ({})", mount_point.display(), stderr(&gc).trim()));
        }
    }
    assert!(changed.is_empty(), "gc changed the directory mounted:\n{}", changed.join("\n"));
}

/// GC marks without the lock, then marks again under it from the roots read again. A label
/// edge (`ocicas.gc.ref.*`) added meanwhile to a blob the first mark already visited is never
/// followed, since the second mark skips visited blobs: its target, kept by that label when GC
/// sweeps, was removed.
#[test]
fn a_gc_ref_label_added_while_gc_marks_keeps_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layout");
    let engine = Engine::create(&path).unwrap();
    let root = engine.put_blob(b"a root by its label").unwrap();
    let child = engine.put_blob(b"kept by a label of the root").unwrap();
    let root_label = |extra: Option<&Digest>| -> Labels {
        let mut labels: Labels = [("ocicas.gc.root".to_owned(), "true".to_owned())].into();
        if let Some(child) = extra {
            labels.insert("ocicas.gc.ref.content".to_owned(), child.to_string());
        }
        labels
    };
    engine.update_labels(&root.digest, &root_label(None), &[]).unwrap();
    for digest in [&root.digest, &child.digest] {
        age_blob(&engine, digest);
    }

    let labeller = engine.clone();
    let (root_digest, child_digest) = (root.digest.clone(), child.digest.clone());
    let storage = BeforeFirstLock::new(move || {
        labeller.update_labels(&root_digest, &root_label(Some(&child_digest)), &[]).unwrap();
    });
    let gc_engine = Engine::open_with(&path, &OpenOptions::default(), Arc::new(storage)).unwrap();
    let report = gc_engine.gc(&GcOptions::default()).unwrap();
    assert!(
        engine.has_blob(&child.digest).unwrap(),
        "GC removed {} while a gc.ref label of the root {} named it: {report:?}",
        child.digest,
        root.digest
    );
}

/// A commit checks that the ingest's `data` is still the file its writer holds, then renames
/// `data` by name into `blobs/`: whatever stands there at the rename is published. Replaced by
/// a symlink in between (by anyone who can write the ingest), the symlink became the blob, the
/// commit reported success, and the bytes written were removed with the ingest. Readers refuse
/// the link, but other OCI tools reading the layout follow it outside.
#[test]
fn ingest_data_replaced_by_a_symlink_during_commit_is_never_published() {
    let dir = tempfile::tempdir().unwrap();
    let sentinel = Sentinel::new(dir.path());
    let layout = dir.path().join("layout");
    Engine::create(&layout).unwrap();
    let data = ingest_dir(&layout, "r").join("data");
    let outside = sentinel.path.join("file");
    let swap = move || {
        std::fs::rename(&data, data.with_extension("moved")).unwrap();
        std::os::unix::fs::symlink(&outside, &data).unwrap();
    };
    let storage = BeforeFirstLock::new(swap);
    let engine = Engine::open_with(&layout, &OpenOptions::default(), Arc::new(storage)).unwrap();
    let mut writer = engine.writer("r", &WriterOptions::default()).unwrap();
    writer.write(b"the writer's bytes").unwrap();
    let committed = writer.commit(None, None, &Labels::new());

    let digest = Digest::of_bytes(Algorithm::Sha256, b"the writer's bytes");
    let blob = layout.join("blobs/sha256").join(digest.hex());
    let published_link = std::fs::symlink_metadata(&blob).is_ok_and(|meta| meta.file_type().is_symlink());
    assert!(!published_link, "a symlink was published as {digest}");
    if committed.is_ok() {
        let verified = engine.verify_blob(&digest);
        assert!(verified.is_ok(), "the commit succeeded, but the blob is not there: {}", verified.unwrap_err());
    }
}

/// A saved hash state is trusted when the data file's device, inode, size and times match the
/// ones written beside it, but those are only the output of a stat that anyone who can write
/// the ingest can read: a `hashstate` with them and another prefix's hash (here one ocicas saved
/// for another ingest) is restored, and the commit stores bytes that do not hash to its digest.
#[test]
fn a_forged_hash_state_never_commits_bytes_that_do_not_hash_to_the_digest() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let engine = Engine::create(&layout).unwrap();
    let good = vec![b'g'; 1000];
    let evil = vec![b'e'; 1000];
    let tail = b"the rest of the blob";

    closed_ingest(&layout, "donor", &good);
    let donor = std::fs::read(ingest_dir(&layout, "donor").join("hashstate")).expect("a closed writer saves its state");
    let state = donor.splitn(4, |&b| b == b'\n').nth(3).unwrap();

    closed_ingest(&layout, "victim", &evil);
    let victim = ingest_dir(&layout, "victim");
    let meta = std::fs::metadata(victim.join("data")).unwrap();
    let identity = format!(
        "{} {} {} {} {} {} {}",
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    );
    let mut forged = format!("ocicas-hashstate-v2\nsha256\n{identity}\n").into_bytes();
    forged.extend_from_slice(state);
    std::fs::write(victim.join("hashstate"), forged).unwrap();

    let digest = Digest::of_bytes(Algorithm::Sha256, &[&good[..], &tail[..]].concat());
    let mut writer = engine.writer("victim", &WriterOptions::default()).unwrap();
    writer.write(tail).unwrap();
    if writer.commit(None, Some(&digest), &Labels::new()).is_ok() {
        let verified = engine.verify_blob(&digest);
        assert!(verified.is_ok(), "a corrupt blob was committed: {}", verified.unwrap_err());
    }
}

/// An ingest whose `data` is a sparse 1 TiB file (no disk used) is hashed from its start when
/// a writer opens it, before any input is read: `blob put --ref` hashes for hours.
#[test]
fn resuming_an_ingest_whose_planted_data_is_sparse_does_not_hash_for_hours() {
    let dir = tempfile::tempdir().unwrap();
    let layout = new_layout(dir.path(), "layout");
    closed_ingest(&layout, "myref", b"partial");
    let ingest = ingest_dir(&layout, "myref");
    let _ = std::fs::remove_file(ingest.join("hashstate"));
    std::fs::File::options().write(true).open(ingest.join("data")).unwrap().set_len(SPARSE_SIZE).unwrap();
    let put = ocicas_within_deadline(&["blob", "put", layout.to_str().unwrap(), "-", "--ref", "myref"], b"hello");
    let put = put.expect("`blob put --ref` of an ingest with sparse data hung");
    assert_no_panic(&put, "blob put --ref");
}

/// A sparse 1 TiB file planted under a digest's name in `blobs/`: fsck hashes it for hours.
#[test]
fn fsck_of_a_planted_sparse_blob_does_not_hash_for_hours() {
    let dir = tempfile::tempdir().unwrap();
    let layout = new_layout(dir.path(), "layout");
    let name = layout.join("blobs/sha256").join(Digest::of_bytes(Algorithm::Sha256, b"sparse").hex());
    std::fs::File::create(&name).unwrap().set_len(SPARSE_SIZE).unwrap();
    let fsck = ocicas_within_deadline(&["fsck", layout.to_str().unwrap()], b"").expect("fsck of a sparse blob hung");
    assert_no_panic(&fsck, "fsck");
}

/// File times past the year 9999 (tmpfs and btrfs store them; a layout on /dev/shm is
/// ordinary) make the RFC 3339 formatting of blob info and ingest status fail, and
/// `to_string` panics on it: `blob info` and `ingest ls` exit 101 (OCICAS_ERR_PANIC from C).
#[test]
fn file_times_past_the_year_9999_do_not_panic_blob_info_or_ingest_ls() {
    let Some(out) = on_a_tmpfs_layout(
        r#"digest=$(printf abc | "$ocicas" blob put "$layout" -)
        touch -d @300000000000 "$layout/blobs/sha256/${digest#sha256:}"
        "$ocicas" blob info "$layout" "$digest" >/dev/null || echo "blob info: $?" >&2
        ! printf abc | "$ocicas" blob put "$layout" - --ref r --expect "sha256:$(printf '0%.0s' $(seq 64))" 2>/dev/null
        touch -d @300000000000 "$layout/.ocicas/ingest/"*/data
        "$ocicas" ingest ls "$layout" >/dev/null || echo "ingest ls: $?" >&2"#,
    ) else {
        return;
    };
    assert!(out.status.success(), "{out:?}");
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

/// GC adds up the sizes of the blobs it keeps and removes, as reported by stat. Three sparse
/// files of 2^63 - 1 bytes (tmpfs allows them) named as digests overflow the sum: a panic in
/// a debug build, a wrapped report in a release build.
#[test]
fn gc_of_blobs_whose_sizes_add_up_past_u64_does_not_overflow() {
    let Some(gc) = on_a_tmpfs_layout(
        r#"for n in 1 2 3; do
            truncate -s 9223372036854775807 "$layout/blobs/sha256/$(printf $n | sha256sum | cut -c1-64)"
        done
        exec "$ocicas" gc "$layout""#,
    ) else {
        return;
    };
    assert_no_panic(&gc, "gc");
}

/// An ingest directory planted deeper than GC removes (or holding a file it cannot unlink)
/// made GC fail halfway: after it had removed blobs, before it removed expired leases and temp
/// files, and without a report of what it had removed. Every later GC does the same. GC either
/// refuses before it removes anything, or finishes every sweep.
#[test]
fn an_ingest_gc_cannot_remove_does_not_stop_gc_halfway() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let engine = Engine::create(&layout).unwrap();
    let garbage = engine.put_blob(b"garbage").unwrap();
    age_blob(&engine, &garbage.digest);
    let expired = engine.lease_new(Some("expired"), Some(Duration::from_millis(1))).unwrap();
    std::fs::create_dir_all(ingest_dir(&layout, "planted").join("1/2/3/4/5/6/7/8/9/10")).unwrap();
    std::thread::sleep(Duration::from_millis(5));

    let result = engine.gc(&GcOptions { ingest_expiry: Duration::ZERO, ..GcOptions::default() });
    let garbage_removed = !engine.has_blob(&garbage.digest).unwrap();
    let lease_removed = engine.lease_get(&expired.id).is_err();
    assert!(
        garbage_removed == lease_removed,
        "GC stopped halfway (blob removed: {garbage_removed}, expired lease removed: {lease_removed}): {result:?}"
    );
}

/// Peak memory a command may reach here: an ocicas GC of a small layout needs a few tens of MiB.
const MEMORY_BOUND_KIB: u64 = 256 << 10;

/// Every labels file is read and kept whole until GC has them all: memory grows with their
/// number times their size, and hard links make that size free. 150 names of one 4 MiB labels
/// file (4 MiB on disk) took GC past 600 MiB; 1,000 of them took 4.2 GB and 2 minutes
/// (`gc --dry-run`, debug build). Leases do the same: 101 names of one 4 MiB lease of 54,000
/// digests took 5.6 GB and 7.5 minutes.
#[test]
fn gc_memory_does_not_grow_with_hard_linked_labels_files() {
    let dir = tempfile::tempdir().unwrap();
    let layout = new_layout(dir.path(), "layout");
    let labels_dir = layout.join(".ocicas/labels/sha256");
    std::fs::create_dir_all(&labels_dir).unwrap();
    let labels: Labels = (0..1000).map(|i| (format!("key{i:04}"), "v".repeat(4000))).collect();
    let first = labels_dir.join(Digest::of_bytes(Algorithm::Sha256, b"0").hex());
    std::fs::write(&first, serde_json::to_vec(&labels).unwrap()).unwrap();
    for i in 1..150 {
        std::fs::hard_link(
            &first,
            labels_dir.join(Digest::of_bytes(Algorithm::Sha256, i.to_string().as_bytes()).hex()),
        )
        .unwrap();
    }

    let mut child = spawn_ocicas(&["gc", layout.to_str().unwrap(), "--dry-run"], b"");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(peak_rss_kib(child.id()).unwrap_or(0));
        if peak > MEMORY_BOUND_KIB || Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(peak <= MEMORY_BOUND_KIB, "gc of 4 MiB of labels on disk passed {} MiB", MEMORY_BOUND_KIB >> 10);
    assert!(Instant::now() <= deadline, "gc of 150 names of one labels file hung");
}

/// GC stops at a lease or labels file it cannot use (a directory in its place, or not the JSON
/// it should be), and at an ingest it cannot remove; every later GC stops there too, yet fsck
/// called each of these layouts sound, so nothing says what to remove.
#[test]
fn whatever_stops_gc_is_a_problem_fsck_reports() {
    type Plant = fn(&Path, &Digest);
    let plants: [(&str, Plant); 5] = [
        ("a directory as a lease", |layout, _| std::fs::create_dir_all(layout.join(".ocicas/leases/held")).unwrap()),
        ("a directory as a labels file", |layout, digest| {
            std::fs::create_dir_all(layout.join(".ocicas/labels/sha256").join(digest.hex())).unwrap()
        }),
        ("a lease that is not JSON", |layout, _| {
            std::fs::create_dir_all(layout.join(".ocicas/leases")).unwrap();
            std::fs::write(layout.join(".ocicas/leases/held"), b"{not json").unwrap();
        }),
        ("a labels file that is not a label map", |layout, digest| {
            std::fs::create_dir_all(layout.join(".ocicas/labels/sha256")).unwrap();
            std::fs::write(layout.join(".ocicas/labels/sha256").join(digest.hex()), b"[1, 2]").unwrap();
        }),
        ("an ingest nested deeper than GC removes", |layout, _| {
            std::fs::create_dir_all(ingest_dir(layout, "planted").join("1/2/3/4/5/6/7/8/9/10")).unwrap();
        }),
    ];
    let mut unreported = Vec::new();
    for (what, plant) in plants {
        let dir = tempfile::tempdir().unwrap();
        let layout = new_layout(dir.path(), "layout");
        let digest = put(&layout, b"labelled");
        plant(&layout, &digest);
        let l = layout.to_str().unwrap();
        let gc = ocicas_output(&["gc", l, "--ingest-expiry", "0s"], b"");
        let fsck = ocicas_output(&["fsck", l], b"");
        if !gc.status.success() && fsck.status.success() {
            unreported.push(format!("{what}: gc says {:?}, fsck says it is sound", stderr(&gc).trim()));
        }
    }
    assert!(unreported.is_empty(), "{}", unreported.join("\n"));
}

/// The store lock is taken with a plain flock and no deadline, and `.ocicas/lock` is mode 0644:
/// any local user who can read the layout can hold it, and every commit, tag and GC of the
/// layout's owner (root here) then waits forever.
#[test]
fn a_user_who_can_only_read_the_layout_cannot_stall_its_writers() {
    use std::io::BufRead;
    use std::os::unix::fs::PermissionsExt;
    if !is_root_for("running as another user") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let layout = new_layout(dir.path(), "layout");
    put(&layout, b"first");
    let lock = layout.join(".ocicas/lock");
    let mut holder = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "flock", "--exclusive"])
        .arg(&lock)
        .args(["-c", "echo held; exec sleep 60"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Either the user holds the lock now, or could not take it and has ended.
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line).unwrap();

    let put = ocicas_within_deadline(&["blob", "put", layout.to_str().unwrap(), "-"], b"second");
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(put.is_some(), "blob put waited on a lock held by a user who can only read the layout ({line:?})");
}

/// A lease is read from the file of its name, but written (`lease_add`) and removed (GC's sweep
/// of expired leases) under the id written inside it. A lease file of another name that says
/// `"id":"victim"` (a copy kept by hand, one planted) made `lease add other` overwrite the live
/// lease `victim` without the blobs it held, and made GC, when it is expired, remove `victim`;
/// the next GC removed the blob `victim` kept, then every GC failed ("no lease \"victim\"").
#[test]
fn a_lease_file_is_written_and_removed_only_under_its_own_name() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let engine = Engine::create(&layout).unwrap();
    let leased = engine.put_blob(b"kept by a live lease").unwrap();
    engine.lease_new(Some("victim"), None).unwrap();
    engine.lease_add("victim", ocicas::LeaseResource::Blob(leased.digest.clone())).unwrap();
    age_blob(&engine, &leased.digest);
    let leases = layout.join(".ocicas/leases");
    std::fs::write(leases.join("other"), br#"{"id":"victim","createdAt":"2020-01-01T00:00:00Z"}"#).unwrap();
    std::fs::write(
        leases.join("stale"),
        br#"{"id":"victim","createdAt":"2020-01-01T00:00:00Z","expiresAt":"2020-01-02T00:00:00Z"}"#,
    )
    .unwrap();

    let added = engine.lease_add("other", ocicas::LeaseResource::Blob(Digest::of_bytes(Algorithm::Sha256, b"x")));
    let victim = std::fs::read_to_string(leases.join("victim")).unwrap();
    assert!(victim.contains(&leased.digest.to_string()), "lease add other ({added:?}) rewrote victim: {victim}");
    let runs: Vec<_> = (0..2).map(|_| engine.gc(&GcOptions::default())).collect();
    assert!(
        leases.join("victim").exists() && engine.has_blob(&leased.digest).unwrap(),
        "GC removed the live lease victim or the blob it keeps: {runs:?}"
    );
}
