//! `ocicas demo`: the quick start's main job. Turns a small directory tree made here into a
//! gzip layer and an image, tags it, reads it back verified, runs GC (which takes the previous
//! run's image) and checks the layout, saying what it does at each step.

use std::io::Write;
use std::path::Path;

use ocicas::gc::GcOptions;
use ocicas::{CompressionOptions, Document, Error, ErrorKind, Result};

const TAG: &str = "demo";

pub fn run(layout: &Path, out: &mut impl Write) -> Result<()> {
    let mut say = |line: String| writeln!(out, "{line}").map_err(|e| Error::new(ErrorKind::Io, e.to_string()));

    let engine = crate::open_with(layout, true)?;
    say(format!("layout      {}", engine.root().display()))?;

    let tree = DemoTree::create()?;
    say(format!("directory   {} (3 files, a symlink, a setuid file)", tree.0.path().display()))?;

    // A fresh image each run: the previous run's blobs become garbage for GC below.
    engine.ref_delete(TAG)?;
    let input = crate::layer::LayerInput::Dir(tree.0.path().to_owned());
    let (layer, manifest) = crate::layer::append(&engine, TAG, &input, &CompressionOptions::default(), "ocicas demo")?;
    say(format!("layer       {} ({} bytes gzip, DiffID {})", layer.digest, layer.size, layer.diff_id))?;
    say(format!("image       {TAG} -> manifest {} ({} bytes)", manifest.digest, manifest.size))?;

    let tagged = engine.ref_get(TAG)?;
    let Document::Manifest(read_back) = engine.read_document(&tagged)? else {
        return Err(Error::new(ErrorKind::InvalidImage, "the tagged blob is not a manifest"));
    };
    say(format!(
        "read back   manifest with {} layer(s), config {}, verified",
        read_back.layers.len(),
        read_back.config.digest
    ))?;

    let gc = engine.gc(&GcOptions::default())?;
    say(format!(
        "gc          removed {} blobs ({} bytes), kept {} (blobs of the last second are kept as in-flight)",
        gc.blobs_removed, gc.bytes_removed, gc.blobs_kept
    ))?;

    let report = engine.fsck()?;
    for problem in &report.problems {
        say(format!("problem     {problem}"))?;
    }
    say(format!(
        "fsck        {}: {} blobs checked, {} reachable from index.json",
        if report.is_sound() { "sound" } else { "NOT sound" },
        report.blobs_checked,
        report.reachable
    ))?;
    if !report.is_sound() {
        return Err(Error::new(ErrorKind::InvalidImage, "the demo layout failed fsck"));
    }
    say(format!("try         umoci unpack --image {}:{TAG} bundle", layout.display()))
}

/// A small directory tree in a new, unpredictably named temp dir, removed when dropped.
struct DemoTree(tempfile::TempDir);

impl DemoTree {
    fn create() -> Result<DemoTree> {
        let dir = tempfile::Builder::new()
            .prefix("ocicas-demo-")
            .tempdir()
            .map_err(|e| Error::io("cannot create a temp dir in", &std::env::temp_dir(), e))?;
        let root = dir.path();
        let io = |e: std::io::Error| Error::io("cannot build the demo tree in", root, e);
        std::fs::create_dir_all(root.join("etc")).map_err(io)?;
        std::fs::create_dir_all(root.join("usr/bin")).map_err(io)?;
        std::fs::write(root.join("etc/motd"), "Hello from an ocicas demo image.\n").map_err(io)?;
        std::fs::write(root.join("README"), "This layer was built by ocicas demo.\n").map_err(io)?;
        std::fs::write(root.join("usr/bin/hello"), "#!/bin/sh\necho hello\n").map_err(io)?;
        std::os::unix::fs::symlink("usr/bin/hello", root.join("hello")).map_err(io)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("usr/bin/hello"), std::fs::Permissions::from_mode(0o4755)).map_err(io)?;
        Ok(DemoTree(dir))
    }
}
