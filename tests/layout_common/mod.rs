//! What the confinement tests share: new layouts made by the CLI, and a sentinel directory
//! beside the layout that no command may change.
#![allow(dead_code)] // each test file uses its own part

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ocicas::Digest;

use crate::common::cli::{ocicas, ocicas_output, s};

/// A directory beside the layout with files (one aged two days, one read-only), a
/// subdirectory, and names a layout would use, that no command may change.
pub struct Sentinel {
    pub path: PathBuf,
}

impl Sentinel {
    pub fn new(parent: &Path) -> Sentinel {
        let path = parent.join("sentinel");
        std::fs::create_dir_all(path.join("sub/deeper")).unwrap();
        std::fs::write(path.join("file"), b"outside bytes").unwrap();
        std::fs::write(path.join("old"), b"two days old").unwrap();
        let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
        std::fs::File::options().write(true).open(path.join("old")).unwrap().set_modified(two_days_ago).unwrap();
        std::fs::write(path.join("sub/deeper/data"), b"deep").unwrap();
        std::fs::write(path.join("ref"), b"myref").unwrap();
        std::fs::write(path.join("readonly"), b"ro").unwrap();
        std::fs::set_permissions(path.join("readonly"), std::fs::Permissions::from_mode(0o444)).unwrap();
        Sentinel { path }
    }

    pub fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        snapshot(&self.path)
    }
}

/// Every path under `root` with its type, mode, size, mtime and bytes.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut entries = BTreeMap::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let bytes = if meta.is_file() { std::fs::read(&path).unwrap() } else { Vec::new() };
            if meta.is_dir() {
                pending.push(path.clone());
            }
            let described = format!(
                "{:?} {:o} {} {} {:?}",
                meta.file_type(),
                meta.mode(),
                meta.len(),
                meta.mtime_nsec() + meta.mtime() * 1_000_000_000,
                bytes
            );
            entries.insert(path, described);
        }
    }
    entries
}

pub fn new_layout(parent: &Path, name: &str) -> PathBuf {
    let layout = parent.join(name);
    ocicas(&["init", s(&layout)]);
    layout
}

pub fn put(layout: &Path, bytes: &[u8]) -> Digest {
    let out = ocicas_output(&["blob", "put", layout.to_str().unwrap(), "-"], bytes);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
}
