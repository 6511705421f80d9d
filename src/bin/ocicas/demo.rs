//! `ocicas demo`: the quick start's main job. Builds a one-layer image from bytes made here,
//! stores it, tags it, reads it back and checks the layout, saying what it does at each step.

use std::io::Write;
use std::path::Path;

use ocicas::spec::{
    ImageConfig, ImageManifest, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_MANIFEST, RootFs, host_platform,
};
use ocicas::{Descriptor, Document, Engine, Error, ErrorKind, OpenOptions, Result};

const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const TAG: &str = "demo";

pub fn run(layout: &Path, out: &mut impl Write) -> Result<()> {
    let mut say = |line: String| writeln!(out, "{line}").map_err(|e| Error::new(ErrorKind::Io, e.to_string()));

    let engine = Engine::open(layout, &OpenOptions { create: true, ..OpenOptions::default() })?;
    say(format!("layout      {}", engine.root().display()))?;

    let layer_bytes = demo_layer_tar()?;
    let layer = engine.put_blob(&layer_bytes)?;
    say(format!("layer       {} ({} bytes, uncompressed tar)", layer.digest, layer.size))?;

    let config = ImageConfig {
        architecture: host_platform().1.to_owned(),
        os: host_platform().0.to_owned(),
        rootfs: RootFs { kind: "layers".to_owned(), diff_ids: vec![layer.digest.clone()] },
        history: Vec::new(),
        extra: Default::default(),
    };
    let config = engine.put_json(MEDIA_TYPE_IMAGE_CONFIG, &config)?;
    say(format!("config      {} ({} bytes)", config.digest, config.size))?;

    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_owned()),
        artifact_type: None,
        config,
        layers: vec![Descriptor::new(LAYER_MEDIA_TYPE, layer.digest, layer.size)],
        subject: None,
        annotations: Default::default(),
        extra: Default::default(),
    };
    let manifest = engine.put_json(MEDIA_TYPE_IMAGE_MANIFEST, &manifest)?;
    say(format!("manifest    {} ({} bytes)", manifest.digest, manifest.size))?;

    engine.ref_put(TAG, &manifest, true)?;
    let tagged = engine.ref_get(TAG)?;
    say(format!("tagged      {TAG} -> {}", tagged.digest))?;

    let Document::Manifest(read_back) = engine.read_document(&tagged)? else {
        return Err(Error::new(ErrorKind::InvalidImage, "the tagged blob is not a manifest"));
    };
    say(format!("read back   manifest with {} layer(s), verified", read_back.layers.len()))?;

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

/// A small, reproducible tar: fixed mtimes, owners and modes, so the layer digest is stable.
fn demo_layer_tar() -> Result<Vec<u8>> {
    let files: [(&str, &[u8]); 2] = [
        ("etc/motd", b"Hello from an ocicas demo image.\n"),
        ("README", b"This layer was stored by ocicas demo.\n"),
    ];
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_mtime(0);
    let tar_error = |e: std::io::Error| Error::new(ErrorKind::Io, format!("cannot build the demo tar: {e}"));
    builder.append_data(&mut dir, "etc/", std::io::empty()).map_err(tar_error)?;
    for (path, content) in files {
        let mut header = tar::Header::new_ustar();
        header.set_mode(0o644);
        header.set_size(content.len() as u64);
        header.set_mtime(0);
        builder.append_data(&mut header, path, content).map_err(tar_error)?;
    }
    builder.into_inner().map_err(tar_error)
}
