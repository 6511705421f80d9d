//! The docker-archive reader and writer as API: items, choosing, blobs by digest and DiffID,
//! synthesized manifests, verified writing, TryReusingBlob, failure and abort.

use crate::archive_common;
use crate::common;

use std::io::Read;

use archive_common::{Member, image_parts, manifest_json, pre_1_10_archive, tar};
use common::fixture::store;
use ocicas::archive::{ArchiveBlob, ArchiveWriter, ExportFormat, ExportOptions, ImageChoice, ManifestFormat};
use ocicas::spec::parse_document;
use ocicas::{Algorithm, Digest, Document, ErrorKind};

/// A two-image legacy archive: the images share their layer; the second is named by a symlink.
fn two_image_archive() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (layer, config, config_hex) = image_parts();
    let mut items: serde_json::Value =
        serde_json::from_slice(&manifest_json(&format!("{config_hex}.json"), &["abc/layer.tar"])).unwrap();
    let second = serde_json::json!({"Config": format!("{config_hex}.json"), "RepoTags": ["example/other:2"],
        "Layers": ["def/layer.tar"]});
    items.as_array_mut().unwrap().push(second);
    let archive = tar(&[
        Member::File(&format!("{config_hex}.json"), config.clone()),
        Member::File("abc/layer.tar", layer.clone()),
        Member::Symlink("def/layer.tar", "../abc/layer.tar"),
        Member::File("manifest.json", serde_json::to_vec(&items).unwrap()),
    ]);
    (archive, layer, config)
}

fn read_all(mut reader: impl Read) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[test]
fn a_reader_lists_chooses_and_serves_blobs_from_a_file_and_from_a_stream() {
    let (archive, layer, config) = two_image_archive();
    let (dir, engine) = store();
    let path = dir.path().join("two.tar");
    std::fs::write(&path, &archive).unwrap();
    let diff_id = Digest::of_bytes(Algorithm::Sha256, &layer);
    let config_digest = Digest::of_bytes(Algorithm::Sha256, &config);
    for in_place in [true, false] {
        let reader = match in_place {
            true => engine.open_docker_archive(&path).unwrap(),
            false => engine.read_docker_archive(&archive[..]).unwrap(),
        };
        assert_eq!(reader.items().len(), 2);
        assert_eq!(reader.items()[1].repo_tags, ["example/other:2"]);
        // containers/image's ChooseManifestItem: by tag, by index, or the only one.
        let image = reader.choose(&ImageChoice::Tag("example/other:2".into())).unwrap().remove(0);
        assert_eq!(image.config.digest, config_digest);
        assert_eq!(image.diff_ids, [diff_id.clone()]);
        assert_eq!(reader.choose(&ImageChoice::Index(0)).unwrap()[0].item.repo_tags, ["example/app:1"]);
        assert_eq!(reader.choose(&ImageChoice::Single).unwrap_err().kind(), ErrorKind::InvalidArgument);
        assert_eq!(reader.choose(&ImageChoice::Tag("no:such".into())).unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(reader.choose(&ImageChoice::Index(2)).unwrap_err().kind(), ErrorKind::NotFound);

        // Blobs by digest: the config, and the layer by DiffID (through the symlink).
        let (blob, size) = reader.open_blob(&image, &config_digest).unwrap();
        assert_eq!((read_all(blob).unwrap(), size), (config.clone(), config.len() as u64));
        let (blob, size) = reader.open_blob(&image, &diff_id).unwrap();
        assert_eq!((read_all(blob).unwrap(), size), (layer.clone(), layer.len() as u64));
        let stranger = Digest::of_bytes(Algorithm::Sha256, b"not in the image");
        assert_eq!(reader.open_blob(&image, &stranger).err().unwrap().kind(), ErrorKind::NotFound);

        // Synthesized manifests, Docker schema2 and OCI, parse as their media types say.
        for format in [ManifestFormat::DockerSchema2, ManifestFormat::Oci] {
            let (descriptor, bytes) = reader.manifest(&image, format).unwrap();
            assert_eq!(descriptor.digest, Digest::of_bytes(Algorithm::Sha256, &bytes));
            let Document::Manifest(manifest) = parse_document(&descriptor.media_type, &bytes).unwrap() else {
                panic!("not a manifest");
            };
            assert_eq!(manifest.config.digest, config_digest);
            assert_eq!((&manifest.layers[0].digest, manifest.layers[0].size), (&diff_id, layer.len() as u64));
        }
        assert_eq!(engine.lease_list().unwrap().len(), 1, "a reader holds one lease");
    }
    assert!(engine.lease_list().unwrap().is_empty(), "a dropped reader releases its lease");
    assert!(engine.ref_list().unwrap().is_empty(), "reading tags nothing");
}

#[test]
fn a_gzip_layer_is_served_uncompressed_by_diff_id_and_verified() {
    let (layer, config, config_hex) = image_parts();
    let gz_layer = {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, &layer).unwrap();
        encoder.finish().unwrap()
    };
    let archive = tar(&[
        Member::File(&format!("{config_hex}.json"), config),
        Member::File("abc/layer.tar", gz_layer),
        Member::File("manifest.json", manifest_json(&format!("{config_hex}.json"), &["abc/layer.tar"])),
    ]);
    let (_dir, engine) = store();
    let reader = engine.read_docker_archive(&archive[..]).unwrap();
    let image = reader.choose(&ImageChoice::Single).unwrap().remove(0);
    let (blob, size) = reader.open_blob(&image, &image.diff_ids[0]).unwrap();
    assert_eq!((read_all(blob).unwrap(), size), (layer.clone(), layer.len() as u64));

    // A layer whose bytes do not match its DiffID fails at its end, not silently.
    let (bad, _) = mismatched_layer_archive();
    let reader = engine.read_docker_archive(&bad[..]).unwrap();
    let image = reader.choose(&ImageChoice::Single).unwrap().remove(0);
    let (blob, _) = reader.open_blob(&image, &image.diff_ids[0]).unwrap();
    let err = read_all(blob).unwrap_err();
    assert!(err.to_string().contains("hash to"), "{err}");
}

/// An archive whose layer is other bytes than its config's DiffID, and those bytes.
fn mismatched_layer_archive() -> (Vec<u8>, Vec<u8>) {
    let (_, config, _) = image_parts();
    let wrong = tar(&[Member::File("x", b"other bytes".to_vec())]);
    let archive = tar(&[
        Member::File("c.json", config),
        Member::File("abc/layer.tar", wrong.clone()),
        Member::File("manifest.json", manifest_json("c.json", &["abc/layer.tar"])),
    ]);
    (archive, wrong)
}

#[test]
fn copy_blob_writes_verified_bytes_and_fails_on_wrong_ones_after_writing_them() {
    let (archive, layer, config) = two_image_archive();
    let (_dir, engine) = store();
    let reader = engine.read_docker_archive(&archive[..]).unwrap();
    let image = reader.choose(&ImageChoice::Index(0)).unwrap().remove(0);
    for blob in [&config, &layer] {
        let mut out = Vec::new();
        let size = reader.copy_blob(&image, &Digest::of_bytes(Algorithm::Sha256, blob), &mut out).unwrap();
        assert_eq!((&out, size), (blob, blob.len() as u64));
    }
    let stranger = Digest::of_bytes(Algorithm::Sha256, b"not in the image");
    assert_eq!(reader.copy_blob(&image, &stranger, Vec::new()).unwrap_err().kind(), ErrorKind::NotFound);

    struct FullDisk;
    impl std::io::Write for FullDisk {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("no space left"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let err = reader.copy_blob(&image, &image.diff_ids[0], FullDisk).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(err.message().contains("no space left"), "{err}");

    let (bad, wrong) = mismatched_layer_archive();
    let reader = engine.read_docker_archive(&bad[..]).unwrap();
    let image = reader.choose(&ImageChoice::Single).unwrap().remove(0);
    let mut out = Vec::new();
    let err = reader.copy_blob(&image, &image.diff_ids[0], &mut out).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DigestMismatch, "{err}");
    assert!(err.message().contains(&image.diff_ids[0].to_string()), "{err}");
    assert_eq!(out, wrong, "every byte is written before the mismatch is known");
}

#[test]
fn a_writer_copies_an_archive_image_by_image_writing_shared_blobs_once() {
    let (archive, layer, _) = two_image_archive();
    let (_dir, engine) = store();
    let reader = engine.read_docker_archive(&archive[..]).unwrap();
    for format in [ExportFormat::Legacy, ExportFormat::Oci] {
        let mut writer = ArchiveWriter::new(Vec::new(), format);
        for image in reader.choose(&ImageChoice::All).unwrap() {
            for (kind, digest) in std::iter::once((ArchiveBlob::Config, &image.config.digest))
                .chain(image.diff_ids.iter().map(|d| (ArchiveBlob::Layer, d)))
            {
                // TryReusingBlob: the shared config and layer go in once.
                if !writer.has_blob(digest) {
                    let (blob, size) = reader.open_blob(&image, digest).unwrap();
                    writer.put_blob(kind, digest, size, blob).unwrap();
                }
            }
            writer.add_image(&image.config.digest, &image.diff_ids, &image.item.repo_tags).unwrap();
        }
        let copy = writer.commit().unwrap();
        let members = tar::Archive::new(&copy[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect::<Vec<_>>();
        let layer_members = members.iter().filter(|m| m.ends_with(".tar") || m.starts_with("blobs/")).count();
        let expected = match format {
            // the layer's tar, and its v1 directory's link to it
            ExportFormat::Legacy => 2,
            // config, layer, and the manifest (the same for both images)
            ExportFormat::Oci => 3,
        };
        assert_eq!(layer_members, expected, "{format:?}: {members:?}");

        // Both images have the same config: containers/image makes them one image with both tags.
        let copied = engine.read_docker_archive(&copy[..]).unwrap();
        assert_eq!(
            copied.items().iter().map(|i| i.repo_tags.join(",")).collect::<Vec<_>>(),
            ["example/app:1,example/other:2"]
        );
        let image = copied.choose(&ImageChoice::Tag("example/other:2".to_owned())).unwrap().remove(0);
        let (blob, _) = copied.open_blob(&image, &image.diff_ids[0]).unwrap();
        assert_eq!(read_all(blob).unwrap(), layer);
    }
}

#[test]
fn a_writer_refuses_wrong_bytes_and_is_unusable_after_a_failure() {
    let digest = Digest::of_bytes(Algorithm::Sha256, b"the right bytes");
    let mut writer = ArchiveWriter::new(Vec::new(), ExportFormat::Legacy);
    let err = writer.put_blob(ArchiveBlob::Layer, &digest, 15, &b"the wrong bytes"[..]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DigestMismatch, "{err}");
    assert!(err.message().contains(&digest.to_string()));
    let err = writer.put_blob(ArchiveBlob::Layer, &digest, 15, &b"the right bytes"[..]).unwrap_err();
    assert!(err.message().contains("failed earlier"), "{err}");
    assert!(writer.commit().is_err());

    for (bytes, declared) in [(&b"the right bytes, and more"[..], 15), (&b"the right"[..], 15)] {
        let mut writer = ArchiveWriter::new(Vec::new(), ExportFormat::Legacy);
        let err = writer.put_blob(ArchiveBlob::Layer, &digest, declared, bytes).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::SizeMismatch, "{err}");
    }

    let mut writer = ArchiveWriter::new(Vec::new(), ExportFormat::Legacy);
    writer.put_blob(ArchiveBlob::Config, &digest, 15, &b"the right bytes"[..]).unwrap();
    let missing = Digest::of_bytes(Algorithm::Sha256, b"never put");
    let err = writer.add_image(&digest, &[missing.clone()], &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains(&missing.to_string()));
    assert_eq!(
        ArchiveWriter::new(Vec::new(), ExportFormat::Oci).commit().unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn a_failed_export_to_a_file_leaves_nothing() {
    let (dir, engine) = store();
    let path = dir.path().join("out.tar");
    let err = engine.export_docker_archive_file(&["no-such-ref"], &[], &path, &ExportOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only the layout is left");
}

#[test]
fn a_pre_1_10_archive_with_only_repositories_imports_with_its_layer_chain() {
    let archive = pre_1_10_archive(None);
    let (dir, engine) = store();
    let path = dir.path().join("old.tar");
    std::fs::write(&path, &archive).unwrap();
    for images in [
        engine.import_docker_archive(&archive[..], &Default::default()).unwrap(),
        engine.import_docker_archive_file(&path, &Default::default()).unwrap(),
    ] {
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].refs, ["example/old:1", "example/old:latest"]);
        let Document::Manifest(manifest) = engine.read_document(&images[0].manifest).unwrap() else { panic!() };
        assert_eq!(manifest.layers.len(), 2);
        let Document::Config(config) = engine.read_document(&manifest.config).unwrap() else { panic!() };
        // Base first; each DiffID the sha256 of its layer tar; v1-only fields gone; history made.
        let base = tar(&[Member::File("base.txt", b"base\n".to_vec())]);
        assert_eq!(config.rootfs.diff_ids[0], Digest::of_bytes(Algorithm::Sha256, &base));
        assert_eq!(config.architecture, "amd64");
        assert!(!config.extra.contains_key("parent") && !config.extra.contains_key("id"));
        assert_eq!(config.history.len(), 2);
        assert!(engine.fsck().unwrap().is_sound());
    }
}

#[test]
fn a_pre_1_10_archive_whose_parents_loop_is_refused() {
    let archive = pre_1_10_archive(Some(&"b".repeat(64)));
    let (_dir, engine) = store();
    let err = engine.import_docker_archive(&archive[..], &Default::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidImage);
    assert!(err.message().contains("loop"), "{err}");
    assert!(engine.ref_list().unwrap().is_empty());
}

#[test]
fn a_staged_member_locked_a_moment_by_another_holder_still_publishes() {
    // Between fork and exec, a child of another thread holds a copy of every open file
    // description: for a moment it holds the lock of an ingest the reader closed.
    let (layer, config, _) = image_parts();
    let mut padded = layer.clone();
    padded.resize(200_000, 0); // past the size held in memory: staged in an ingest
    let diff_id = Digest::of_bytes(Algorithm::Sha256, &padded);
    let config = String::from_utf8(config)
        .unwrap()
        .replace(&Digest::of_bytes(Algorithm::Sha256, &layer).to_string(), &diff_id.to_string());
    let archive = tar(&[
        Member::File("c.json", config.into_bytes()),
        Member::File("abc/layer.tar", padded),
        Member::File("manifest.json", manifest_json("c.json", &["abc/layer.tar"])),
    ]);
    let (dir, engine) = store();
    let reader = engine.read_docker_archive(&archive[..]).unwrap();
    let ingests: Vec<_> = std::fs::read_dir(dir.path().join("layout/.ocicas/ingest")).unwrap().collect();
    assert_eq!(ingests.len(), 1, "the layer is staged");
    let held = std::fs::File::open(ingests[0].as_ref().unwrap().path()).unwrap();
    held.lock().unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1000));
        drop(held);
    });
    let images = engine.import_from_reader(&reader, &Default::default()).unwrap();
    release.join().unwrap();
    assert_eq!(images[0].refs, ["example/app:1"]);
}

#[test]
fn an_export_to_a_file_is_the_export_to_a_stream_with_compressed_layers_read_once() {
    // Layers stored gzip and zstd: to a file their sizes are filled in after their bytes; to a
    // stream they are counted first. Both give the same archive.
    let (layer, config, _) = image_parts();
    let (dir, engine) = store();
    let gzip = {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, &layer).unwrap();
        encoder.finish().unwrap()
    };
    let zstd = zstd::encode_all(&layer[..], 3).unwrap();
    let config = engine.put_blob(&config).unwrap();
    for (name, bytes, media_type) in [
        ("gzip", gzip, "application/vnd.oci.image.layer.v1.tar+gzip"),
        ("zstd", zstd, "application/vnd.oci.image.layer.v1.tar+zstd"),
    ] {
        let blob = engine.put_blob(&bytes).unwrap();
        let manifest = ocicas::spec::ImageManifest {
            schema_version: 2,
            media_type: Some(ocicas::spec::MEDIA_TYPE_IMAGE_MANIFEST.to_owned()),
            artifact_type: None,
            config: ocicas::Descriptor::new(ocicas::spec::MEDIA_TYPE_IMAGE_CONFIG, config.digest.clone(), config.size),
            layers: vec![ocicas::Descriptor::new(media_type, blob.digest, blob.size)],
            subject: None,
            annotations: Default::default(),
            extra: Default::default(),
        };
        let descriptor = engine.put_json(ocicas::spec::MEDIA_TYPE_IMAGE_MANIFEST, &manifest).unwrap();
        engine.ref_put(name, &descriptor, false).unwrap();
        for format in [ExportFormat::Legacy, ExportFormat::Oci] {
            let options = ExportOptions { format, ..ExportOptions::default() };
            let tags = [vec!["example/app:1".to_owned()]];
            let streamed = engine.export_docker_archive(&[name], &tags, Vec::new(), &options).unwrap();
            let path = dir.path().join(format!("{name}.tar"));
            engine.export_docker_archive_file(&[name], &tags, &path, &options).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), streamed, "{name} {format:?}");
            let reader = engine.read_docker_archive(&streamed[..]).unwrap();
            let image = reader.choose(&ImageChoice::Single).unwrap().remove(0);
            let (blob, size) = reader.open_blob(&image, &image.diff_ids[0]).unwrap();
            assert_eq!((read_all(blob).unwrap(), size), (layer.clone(), layer.len() as u64));
        }
    }
}

/// Tags image `name`: one layer stored as `blob` under `media_type`, and a config giving
/// `diff_id` for it.
fn tag_one_layer_image(
    engine: &ocicas::Engine,
    name: &str,
    media_type: &str,
    blob: &[u8],
    diff_id: &Digest,
) -> ocicas::Descriptor {
    let config =
        format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#);
    let config = engine.put_blob(config.as_bytes()).unwrap();
    let blob = engine.put_blob(blob).unwrap();
    let layer = ocicas::Descriptor::new(media_type, blob.digest, blob.size);
    let manifest = ocicas::spec::ImageManifest {
        schema_version: 2,
        media_type: Some(ocicas::spec::MEDIA_TYPE_IMAGE_MANIFEST.to_owned()),
        artifact_type: None,
        config: ocicas::Descriptor::new(ocicas::spec::MEDIA_TYPE_IMAGE_CONFIG, config.digest, config.size),
        layers: vec![layer.clone()],
        subject: None,
        annotations: Default::default(),
        extra: Default::default(),
    };
    let descriptor = engine.put_json(ocicas::spec::MEDIA_TYPE_IMAGE_MANIFEST, &manifest).unwrap();
    engine.ref_put(name, &descriptor, false).unwrap();
    layer
}

/// Exports `name` to a stream and to a file in an empty directory, both of which must fail with
/// `kind` naming `needle`, the file leaving the directory empty.
fn assert_export_fails(engine: &ocicas::Engine, name: &str, kind: ErrorKind, needle: &str) {
    for format in [ExportFormat::Legacy, ExportFormat::Oci] {
        let options = ExportOptions { format, ..ExportOptions::default() };
        let err = engine.export_docker_archive(&[name], &[], Vec::new(), &options).unwrap_err();
        assert_eq!(err.kind(), kind, "{name} {format:?} to a stream: {}", err.message());
        assert!(err.message().contains(needle), "{needle} not in {}", err.message());
        let out = tempfile::tempdir().unwrap();
        let err = engine.export_docker_archive_file(&[name], &[], &out.path().join("out.tar"), &options).unwrap_err();
        assert_eq!(err.kind(), kind, "{name} {format:?} to a file: {}", err.message());
        assert!(err.message().contains(needle), "{needle} not in {}", err.message());
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0, "{name} {format:?} left a file");
    }
}

#[test]
fn an_export_refuses_a_tampered_layer_or_a_wrong_diff_id_and_leaves_no_file() {
    let (layer, _, _) = image_parts();
    let diff_id = Digest::of_bytes(Algorithm::Sha256, &layer);
    let gzip = {
        // Stored blocks: a flipped byte inflates without error, so only the digest can catch it.
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
        std::io::Write::write_all(&mut encoder, &layer).unwrap();
        encoder.finish().unwrap()
    };
    let zstd = zstd::encode_all(&layer[..], 3).unwrap();
    let (_dir, engine) = store();
    let cases = [
        ("tar", "application/vnd.oci.image.layer.v1.tar", layer.clone()),
        ("gzip", "application/vnd.oci.image.layer.v1.tar+gzip", gzip),
        ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd", zstd.clone()),
        // Types export read before by their suffix, still read.
        ("foreign", "application/vnd.docker.image.rootfs.foreign.diff.tar", layer.clone()),
        ("docker-zstd", "application/vnd.docker.image.rootfs.diff.tar.zstd", zstd),
    ];
    for (name, media_type, blob) in cases {
        let stored = tag_one_layer_image(&engine, name, media_type, &blob, &diff_id);
        let streamed = engine.export_docker_archive(&[name], &[], Vec::new(), &ExportOptions::default()).unwrap();
        let reader = engine.read_docker_archive(&streamed[..]).unwrap();
        let image = reader.choose(&ImageChoice::Single).unwrap().remove(0);
        let (tar, _) = reader.open_blob(&image, &image.diff_ids[0]).unwrap();
        assert_eq!(read_all(tar).unwrap(), layer, "{name}");

        // The config says another DiffID.
        let wrong = Digest::of_bytes(Algorithm::Sha256, b"another tar");
        tag_one_layer_image(&engine, &format!("{name}-liar"), media_type, &blob, &wrong);
        assert_export_fails(&engine, &format!("{name}-liar"), ErrorKind::DigestMismatch, &wrong.to_string());

        // A byte of the stored blob changed.
        let path = engine.root().join("blobs/sha256").join(stored.digest.hex());
        let mut bytes = std::fs::read(&path).unwrap();
        let offset = bytes.len() / 2;
        bytes[offset] ^= 0x01;
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        assert_export_fails(&engine, name, ErrorKind::DigestMismatch, &stored.digest.to_string());
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, &blob).unwrap();
    }

    // A type no decoder is known for: refused, not copied as it is.
    tag_one_layer_image(&engine, "bzip2", "application/vnd.oci.image.layer.v1.tar+bzip2", &layer, &diff_id);
    assert_export_fails(&engine, "bzip2", ErrorKind::UnsupportedMediaType, "tar+bzip2");
}
