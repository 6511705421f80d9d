//! The real programs interop is proven against: umoci, skopeo, oci-image-tool, docker-registry
//! and their helpers, from Debian packages (`.ci/run` installs them).

use std::path::Path;
use std::process::Command;

use super::cli::{run, s};

/// Whether the programs `names` are installed. A missing one fails the test, unless
/// OCICAS_SKIP_PEERS=1: then the test says what it skips and checks nothing.
pub fn peers_available(names: &[&str]) -> bool {
    let missing: Vec<&str> = names.iter().copied().filter(|name| !installed(name)).collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("OCICAS_SKIP_PEERS").as_deref() == Ok("1") {
        eprintln!("skipped: {missing:?} not installed and OCICAS_SKIP_PEERS=1");
        return false;
    }
    let packages: Vec<&str> = missing.iter().map(|name| package_of(name)).collect();
    panic!("{missing:?} not installed: apt-get install -y {} (or set OCICAS_SKIP_PEERS=1 to skip)", packages.join(" "));
}

fn installed(program: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {program}")]).output().is_ok_and(|o| o.status.success())
}

/// The Debian package that installs `program`.
fn package_of(program: &str) -> &str {
    match program {
        "htpasswd" => "apache2-utils",
        other => other,
    }
}

/// Fails unless the two trees are the same (`diff -r --no-dereference`).
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    run("diff", &["-r", "--no-dereference", s(expected), s(actual)]);
}
