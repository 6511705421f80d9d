//! Children that are the test binary itself, re-executed to run one test in a role (a writer to
//! kill, a process holding a lock) on a layout; both are passed in the environment.

use std::path::Path;
use std::process::Command;

use ocicas::{Engine, OpenOptions};

const ROLE: &str = "OCICAS_TEST_ROLE";
const LAYOUT: &str = "OCICAS_TEST_LAYOUT";

/// This test binary again, running only `test`, in `role`, on `layout`.
pub fn child(test: &str, role: &str, layout: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", test, "--nocapture", "--test-threads=1"]).env(ROLE, role).env(LAYOUT, layout);
    command
}

/// The role this process was started in by `child`; None in the test itself.
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// In a child, its layout.
pub fn child_engine() -> Engine {
    Engine::open(std::env::var(LAYOUT).unwrap(), &OpenOptions::default()).unwrap()
}
