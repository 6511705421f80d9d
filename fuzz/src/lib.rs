//! What several fuzz targets share: a fresh store per input, and the checks an import must
//! pass, made with decoders of our own rather than the library's.

use std::collections::BTreeSet;
use std::io::Read;

use ocicas::archive::ImportedImage;
use ocicas::spec::Document;
use ocicas::{Algorithm, Descriptor, Digest, Engine, Result};

/// A new, empty layout in a temp directory (under `$TMPDIR`, which run.sh points at a tmpfs).
pub fn fresh_store() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().expect("a temp directory");
    let engine = Engine::create(dir.path().join("layout")).expect("a new layout");
    (dir, engine)
}

pub fn sha256(bytes: &[u8]) -> Digest {
    Digest::of_bytes(Algorithm::Sha256, bytes)
}

/// The promises of a docker-archive import into a fresh store: on failure nothing is tagged
/// or stored; on success every reference names an image whose blobs are all stored, hash to
/// their names, and whose layers decompress to the DiffIDs of its config, and nothing else is
/// stored. Either way the reader's lease is released and no ingest is left.
pub fn check_import(engine: &Engine, result: &Result<Vec<ImportedImage>>) {
    let refs = engine.ref_list().expect("index.json is readable after an import");
    assert!(engine.lease_list().expect("leases are readable").is_empty(), "the import's lease was not released");
    let ingests = engine.ingest_list(&ocicas::Filters::parse::<&str>(&[]).expect("no filters")).expect("ingests list");
    assert!(ingests.is_empty(), "the import left ingests: {ingests:?}");
    let stored: BTreeSet<Digest> = engine.list_blobs().expect("blobs list").into_iter().collect();
    let images = match result {
        Err(err) => {
            assert!(refs.is_empty(), "a failed import ({err}) left tags: {refs:?}");
            assert!(stored.is_empty(), "a failed import ({err}) left blobs: {stored:?}");
            return;
        }
        Ok(images) => images,
    };
    let mut referenced = BTreeSet::new();
    for (_, descriptor) in &refs {
        referenced.insert(descriptor.digest.clone());
        if let Ok(Document::Manifest(manifest)) = engine.read_document(descriptor) {
            referenced.insert(manifest.config.digest.clone());
            referenced.extend(manifest.layers.iter().map(|layer| layer.digest.clone()));
        }
    }
    assert_eq!(stored, referenced, "the import stored blobs no image references");
    let tagged: BTreeSet<&str> = refs.iter().map(|(name, _)| name.as_str()).collect();
    let reported: BTreeSet<&str> = images.iter().flat_map(|image| &image.refs).map(String::as_str).collect();
    assert_eq!(tagged, reported, "the tags in index.json are not the ones the import reported");
    for (name, descriptor) in &refs {
        verify_image(engine, descriptor).unwrap_or_else(|err| panic!("image {name:?} does not verify: {err}"));
    }
    let report = engine.fsck().expect("fsck runs");
    assert!(report.is_sound(), "fsck after a successful import: {:?}", report.problems);
}

/// Checks one image of the store: its manifest and config parse, every blob hashes to its
/// name, and every layer's uncompressed bytes hash to its DiffID.
fn verify_image(engine: &Engine, manifest: &Descriptor) -> Result<()> {
    engine.verify_blob(&manifest.digest)?;
    let Document::Manifest(manifest) = engine.read_document(manifest)? else {
        panic!("the tag of {} does not point at a manifest", manifest.digest);
    };
    let Document::Config(config) = engine.read_document(&manifest.config)? else {
        panic!("the config of {} is not a config", manifest.config.digest);
    };
    assert_eq!(manifest.layers.len(), config.rootfs.diff_ids.len(), "layers and DiffIDs differ in number");
    for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        let bytes = engine.read_blob(&layer.digest, u64::MAX)?;
        assert_eq!(bytes.len() as u64, layer.size, "layer {} has the wrong size", layer.digest);
        let uncompressed = decompress(&layer.media_type, &bytes);
        assert_eq!(&sha256(&uncompressed), diff_id, "layer {} does not decompress to its DiffID", layer.digest);
    }
    Ok(())
}

/// A layer's uncompressed bytes, by the compression its media type names.
pub fn decompress(media_type: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if media_type.ends_with("gzip") {
        flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).expect("a gzip layer decodes");
    } else if media_type.ends_with("zstd") {
        out = zstd::decode_all(bytes).expect("a zstd layer decodes");
    } else {
        out = bytes.to_vec();
    }
    out
}
