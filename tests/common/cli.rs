//! Running the `ocicas` CLI, and other programs, from a test.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The CLI these tests were built with.
pub const OCICAS: &str = env!("CARGO_BIN_EXE_ocicas");

/// Exit statuses of the CLI (docs/CLI.md): fsck found problems; an error over a limit.
pub const FSCK_PROBLEMS: i32 = 3;
pub const TOO_LARGE: i32 = 10;

/// Whether `code` is one of the CLI's error statuses (docs/CLI.md): a failure it reports, not
/// success, usage (2), fsck's problems (3), a signal or a panic (101).
pub fn is_error_status(code: Option<i32>) -> bool {
    matches!(code, Some(1 | 4..=16))
}

/// Whether the CLI ended by itself: success, an error, usage or fsck's problems; not a signal
/// or a panic.
pub fn ended_normally(code: Option<i32>) -> bool {
    matches!(code, Some(0..=16))
}

/// No command on a test's small layout takes this long; one that does is hung.
const DEADLINE: Duration = Duration::from_secs(20);

/// A path as a command-line argument.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs `program ARGS` with no input, to its end, whatever its exit.
pub fn output(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// Runs `program ARGS` with no input, panicking with its output when it fails; returns stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = output(program, args);
    assert_succeeded(&format!("{program} {args:?}"), &output);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Fails, showing what `what` printed, unless it succeeded.
pub fn assert_succeeded(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `ocicas ARGS`, which must succeed; returns stdout.
pub fn ocicas(args: &[&str]) -> String {
    run(OCICAS, args)
}

/// Runs `ocicas ARGS`, which must fail with exit status `code`; returns stderr.
pub fn ocicas_fails(code: i32, args: &[&str]) -> String {
    let output = output(OCICAS, args);
    assert_eq!(
        output.status.code(),
        Some(code),
        "ocicas {args:?} should fail with {code}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    stderr(&output)
}

/// Runs `ocicas ARGS` with `stdin`, to its end, whatever its exit.
pub fn ocicas_output(args: &[&str], stdin: &[u8]) -> Output {
    spawn_ocicas(args, stdin).wait_with_output().unwrap()
}

/// The CLI started with `args`, its input written and closed, its output piped.
pub fn spawn_ocicas(args: &[&str], stdin: &[u8]) -> Child {
    spawn(args, stdin, Stdio::piped())
}

fn spawn(args: &[&str], stdin: &[u8], stdout: Stdio) -> Child {
    let mut child =
        Command::new(OCICAS).args(args).stdin(Stdio::piped()).stdout(stdout).stderr(Stdio::piped()).spawn().unwrap();
    // A command that does not read its input may end before it is written.
    match child.stdin.take().unwrap().write_all(stdin) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {}
        result => result.unwrap(),
    }
    child
}

/// What `output` printed on stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Fails unless `output` is the CLI's refusal: an error status, stderr naming `named`, no
/// panic.
pub fn assert_refused(output: &Output, named: &str) {
    let stderr = stderr(output);
    assert!(is_error_status(output.status.code()), "{output:?}");
    assert!(stderr.contains(named), "stderr does not name {named:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// How a run of `ocicas_watched` ended.
pub struct Finished {
    pub code: Option<i32>,
    pub stderr: String,
    /// `ru_maxrss` of the child, in KiB. It includes the memory of this test process when the
    /// child was spawned (a spawned child shares it until exec), so it bounds the child's use
    /// only in a test binary that runs one test at a time.
    pub peak_rss_kib: i64,
}

/// Runs `ocicas ARGS` with `stdin` (its stdout dropped) within `DEADLINE`, a hang failing the
/// test, and reports its exit code, stderr and peak memory.
pub fn ocicas_watched(args: &[&str], stdin: &[u8]) -> Finished {
    let mut child = spawn(args, stdin, Stdio::null());
    let mut pipe = child.stderr.take().unwrap();
    let (status, peak_rss_kib) = reap_within_deadline(child, &format!("ocicas {}", args.join(" ")));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
    Finished { code: status.code(), stderr, peak_rss_kib }
}

/// Reaps `child`, killing it at `DEADLINE` (a hang of `command` fails the test): its exit
/// status and peak memory (`ru_maxrss`, KiB).
fn reap_within_deadline(mut child: Child, command: &str) -> (ExitStatus, i64) {
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + DEADLINE;
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills in; the pid is our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            return (ExitStatus::from_raw(status), usage.ru_maxrss);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("`{command}` hung");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Peak resident memory (VmHWM) of a running process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    proc_value(pid, "status", "VmHWM:")
}

/// The number after `field` in `/proc/PID/FILE`.
pub fn proc_value(pid: u32, file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
