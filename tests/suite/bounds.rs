//! What a caller's numbers can make the `ocicas` command do (issue 18 items 4 and 8): a thread
//! count, a duration or an offset out of range is an argument error (exit 2, a message naming
//! what to change), never a panic, an abort or the OOM killer; a thread the system refuses is
//! an error too.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::cli::{OCICAS, assert_refused, ocicas_output};

/// Runs `ocicas ARGS` through `wrapper` (a program and its arguments).
fn run_wrapped(wrapper: &[&str], args: &[&str]) -> Output {
    let (program, wrapper_args) = wrapper.split_first().unwrap();
    Command::new(program).args(wrapper_args).arg(OCICAS).args(args).output().unwrap()
}

/// A new layout in `dir`, and a tar of one small file beside it.
fn layout_and_tar(dir: &Path) -> (String, String) {
    let layout = dir.join("layout");
    ocicas::Engine::create(&layout).unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(5);
    header.set_mode(0o644);
    builder.append_data(&mut header, "hello", &b"hello"[..]).unwrap();
    let tar = dir.join("layer.tar");
    std::fs::write(&tar, builder.into_inner().unwrap()).unwrap();
    (layout.to_str().unwrap().to_owned(), tar.to_str().unwrap().to_owned())
}

#[test]
fn a_thread_count_over_the_limit_is_an_argument_error_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, tar) = layout_and_tar(dir.path());
    for threads in ["100000", "18446744073709551615"] {
        for compression in ["--level=6", "--zstd"] {
            let output = ocicas_output(&["layer", &layout, &tar, "--threads", threads, compression], b"");
            assert_refused(&output, "thread limit (threads)");
            assert!(String::from_utf8_lossy(&output.stderr).contains("--limit threads=N"));
        }
    }
    assert_refused(
        &ocicas_output(&["layer", &layout, &tar, "--threads", "9", "--limit", "threads=8"], b""),
        "of 8 threads",
    );
    let raised = ocicas_output(&["layer", &layout, &tar, "--threads", "9", "--limit", "threads=9"], b"");
    assert!(raised.status.success(), "{}", String::from_utf8_lossy(&raised.stderr));
}

/// RLIMIT_NPROC at 1 makes the kernel refuse every new thread of the process's user (root is
/// exempt: as root the command runs as nobody).
fn no_threads_allowed() -> Vec<&'static str> {
    let mut wrapper = Vec::new();
    // SAFETY: a plain system call.
    if unsafe { libc::geteuid() } == 0 {
        wrapper.extend(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]);
    }
    wrapper.extend(["prlimit", "--nproc=1", "--"]);
    wrapper
}

#[test]
fn a_thread_the_system_refuses_is_an_error_for_compression_and_gc() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, tar) = layout_and_tar(dir.path());
    let engine = ocicas::Engine::open(Path::new(&layout), &Default::default()).unwrap();
    engine.put_blob(b"garbage for the sweep").unwrap();
    // Everything readable and writable by whoever the command runs as.
    let status = Command::new("chmod").args(["-R", "a+rwX", dir.path().to_str().unwrap()]).status().unwrap();
    assert!(status.success());
    let output = run_wrapped(&no_threads_allowed(), &["layer", &layout, &tar, "--threads", "2"]);
    assert_refused(&output, "the system refused a thread (gzip worker)");
    assert!(engine.list_blobs().unwrap().len() == 1, "the failed layer left a blob");
    // An old blob, so that GC would sweep it: the first thread GC starts (its listing, beside
    // the marking) is refused, and nothing is removed.
    let blob_dir = Path::new(&layout).join("blobs/sha256");
    for entry in std::fs::read_dir(&blob_dir).unwrap() {
        let file = std::fs::File::open(entry.unwrap().path()).unwrap();
        file.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1 << 30)).unwrap();
    }
    let output = run_wrapped(&no_threads_allowed(), &["gc", &layout]);
    assert_refused(&output, "the system refused a thread (gc list)");
    assert_eq!(engine.list_blobs().unwrap().len(), 1, "the failed GC removed a blob");
}

#[test]
fn a_lease_expiry_past_the_year_9999_is_an_argument_error() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = layout_and_tar(dir.path());
    for expiry in ["500000000years", "584542046090years"] {
        assert_refused(&ocicas_output(&["lease", "new", &layout, "--expiry", expiry], b""), "lease expiry of");
    }
    let output = ocicas_output(&["lease", "new", &layout, "--id", "long", "--expiry", "1000years"], b"");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let listed = ocicas_output(&["lease", "ls", &layout], b"");
    assert!(String::from_utf8_lossy(&listed.stdout).contains(r#""id":"long""#));
}
