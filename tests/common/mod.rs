//! What several test files share: running the `ocicas` CLI under a deadline.
// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// No command on a test's small layout takes this long; one that does is hung.
const DEADLINE: Duration = Duration::from_secs(20);

pub struct Finished {
    pub code: Option<i32>,
    pub stderr: String,
    /// `ru_maxrss` of the child, in KiB. It includes the memory of this test process when the
    /// child was spawned (a spawned child shares it until exec), so it bounds the child's use
    /// only in a test binary that runs one test at a time.
    pub peak_rss_kib: i64,
}

/// Runs `ocicas ARGS` with `stdin` within `DEADLINE` (a hang fails the test) and reports its
/// exit code, stderr and peak memory.
pub fn ocicas(args: &[&str], stdin: &[u8]) -> Finished {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ocicas"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + DEADLINE;
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills in; the pid is our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            break;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("`ocicas {}` hung", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let status = std::process::ExitStatus::from_raw(status);
    Finished { code: status.code(), stderr, peak_rss_kib: usage.ru_maxrss }
}
