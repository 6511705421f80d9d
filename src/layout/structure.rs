//! The shape of a layout: which of its paths are directories and which are files, so that what
//! was planted in it (a symlink, a FIFO, a file where a directory belongs) is found before GC
//! removes anything, and reported by fsck.

use std::path::{Path, PathBuf};

use super::{EntryKind, Layout};
use crate::digest::Algorithm;
use crate::error::{Result, invalid_image};

pub(crate) const BLOBS_DIR: &str = "blobs";
pub(crate) const PRIVATE_DIR: &str = ".ocicas";
pub(crate) const TEMP_DIR: &str = ".ocicas/tmp";
pub(crate) const INGEST_DIR: &str = ".ocicas/ingest";
pub(crate) const LABELS_DIR: &str = ".ocicas/labels";
pub(crate) const CREATED_DIR: &str = ".ocicas/created";
pub(crate) const LEASES_DIR: &str = ".ocicas/leases";
pub(crate) const LOCK_FILE: &str = ".ocicas/lock";

/// How deep fsck looks for planted entries: `.ocicas/ingest/<hex>/<file>` is the deepest path
/// ocicas makes.
const SCAN_DEPTH: usize = 4;

/// Every directory of a layout, parents before children. Each is a real directory or absent.
fn directories() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = vec![BLOBS_DIR.into()];
    dirs.extend(Algorithm::ALL.iter().map(|a| Path::new(BLOBS_DIR).join(a.name())));
    dirs.extend([PRIVATE_DIR, TEMP_DIR, INGEST_DIR, LABELS_DIR, CREATED_DIR, LEASES_DIR].map(PathBuf::from));
    for per_blob in [LABELS_DIR, CREATED_DIR] {
        dirs.extend(Algorithm::ALL.iter().map(|a| Path::new(per_blob).join(a.name())));
    }
    dirs
}

/// The files of a layout that are regular files or absent.
const FILES: [&str; 3] = ["oci-layout", "index.json", LOCK_FILE];

impl Layout {
    /// `InvalidImage` naming the first of the layout's directories that is something else (a
    /// symlink above all): GC checks this before it removes anything.
    pub(crate) fn check_structure(&self) -> Result<()> {
        match self.misplaced_entries()?.into_iter().next() {
            Some(problem) => Err(invalid_image(format!("{problem}; GC removed nothing"))),
            None => Ok(()),
        }
    }

    /// One line for each entry of the layout that ocicas does not follow or open: a symlink,
    /// FIFO, socket or device anywhere (as deep as ocicas makes paths), and a file or directory
    /// where the other belongs.
    pub(crate) fn odd_entries(&self) -> Result<Vec<String>> {
        let mut problems = self.misplaced_entries()?;
        self.scan_for_links(Path::new(""), 0, &mut problems);
        problems.sort();
        problems.dedup();
        Ok(problems)
    }

    fn misplaced_entries(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let wanted = directories()
            .into_iter()
            .map(|dir| (dir, EntryKind::Dir))
            .chain(FILES.iter().map(|file| (PathBuf::from(file), EntryKind::File)));
        for (path, kind) in wanted {
            // A parent that is not a directory was reported already; its children cannot be looked at.
            let Ok(found) = self.dir().kind(&path) else { continue };
            if let Some(found) = found.filter(|found| *found != kind) {
                problems.push(format!(
                    "{} is {} where {} belongs",
                    self.display(&path).display(),
                    found.describe(),
                    kind.describe()
                ));
            }
        }
        Ok(problems)
    }

    fn scan_for_links(&self, dir: &Path, depth: usize, problems: &mut Vec<String>) {
        let mut subdirs = Vec::new();
        let listed = self.dir().for_each_entry(dir, |name, kind| {
            let path = dir.join(name);
            match kind {
                EntryKind::Symlink | EntryKind::Special => problems.push(format!(
                    "{} is {} (ocicas follows and opens neither; remove it)",
                    self.display(&path).display(),
                    kind.describe()
                )),
                EntryKind::Dir if depth + 1 < SCAN_DEPTH => subdirs.push(path),
                EntryKind::Dir | EntryKind::File => {}
            }
            Ok(())
        });
        if let Err(err) = listed {
            problems.push(self.io_error("cannot list", dir, err).message().to_owned());
        }
        for subdir in subdirs {
            self.scan_for_links(&subdir, depth + 1, problems);
        }
    }
}
