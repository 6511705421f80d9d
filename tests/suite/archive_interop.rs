//! docker-archive as containers/image reads and writes it (issue 20): archives made by skopeo,
//! by `tar` and by ocicas itself list and import; pipes are streams; tags match as docker
//! normalizes them; a recompressed import never stores the plain layer; the legacy export
//! carries the v1 metadata of pre-1.10 loaders; progress shows on a terminal only.

use crate::archive_common;
use crate::common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use archive_common::{Member, pre_1_10_archive, tar};
use common::cli::{OCICAS, ocicas, output, run, s};
use common::rng::Rng;
use ocicas::archive::{ExportOptions, ImageChoice, ImportOptions, read_manifest_items};
use ocicas::spec::Document;
use ocicas::{Algorithm, Compression, CompressionOptions, Digest, Engine};

/// A layout holding `app`: one layer with a 2 MiB file of random bytes (past the 1 MiB header
/// limit, so that a reader counting skipped bodies as headers fails) and a small one.
fn layout_with_image(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("random.bin"), Rng(1).bytes(2 << 20)).unwrap();
    std::fs::write(tree.join("hello.txt"), b"hello\n").unwrap();
    let layout = dir.join("layout");
    ocicas(&["init", s(&layout)]);
    ocicas(&["append", s(&layout), "app", "--dir", s(&tree)]);
    layout
}

/// `app` exported by ocicas (legacy form) as `example/app:1`.
fn exported_archive(dir: &Path) -> PathBuf {
    let layout = layout_with_image(dir);
    let archive = dir.join("ocicas.tar");
    ocicas(&["docker-archive", "export", s(&layout), "app", "--tag", "example/app:1", "-o", s(&archive)]);
    archive
}

/// `app` copied to a docker-archive by skopeo as `example/app:1`.
fn skopeo_archive(dir: &Path) -> PathBuf {
    let layout = layout_with_image(dir);
    let archive = dir.join("skopeo.tar");
    run(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &format!("oci:{}:app", s(&layout)),
            &format!("docker-archive:{}:example/app:1", s(&archive)),
        ],
    );
    archive
}

fn repo_tags_listed(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .flat_map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["RepoTags"]
                .clone()
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn archives_whose_large_layers_precede_manifest_json_list_and_import() {
    let dir = tempfile::tempdir().unwrap();
    // containers/image writes RepoTags with the full name.
    for (archive, tag) in [
        (exported_archive(&dir.path().join("ocicas")), "example/app:1"),
        (skopeo_archive(&dir.path().join("skopeo")), "docker.io/example/app:1"),
    ] {
        assert_eq!(repo_tags_listed(&ocicas(&["docker-archive", "ls", s(&archive)])), [tag]);
        let bytes = std::fs::read(&archive).unwrap();
        assert_eq!(read_manifest_items(&bytes[..]).unwrap()[0].repo_tags, [tag]);
        // The reader (what C's ocicas_archive_reader_open is) reads the same file.
        let target = Engine::create(archive.with_extension("layout")).unwrap();
        let reader = target.open_docker_archive(&archive).unwrap();
        assert_eq!(reader.items()[0].repo_tags, [tag]);
        let images = target.import_from_reader(&reader, &ImportOptions::default()).unwrap();
        assert_eq!(images[0].refs, [tag]);
        assert!(target.fsck().unwrap().is_sound());
    }
}

#[test]
fn members_named_from_dot_slash_are_the_same_members() {
    // What people do to repack an archive: extract it, then `tar -C dir -cf a.tar .`.
    let dir = tempfile::tempdir().unwrap();
    let archive = exported_archive(dir.path());
    let extracted = dir.path().join("extracted");
    std::fs::create_dir(&extracted).unwrap();
    run("tar", &["-xf", s(&archive), "-C", s(&extracted)]);
    let repacked = dir.path().join("repacked.tar");
    run("tar", &["-C", s(&extracted), "-cf", s(&repacked), "."]);
    let listing = run("tar", &["-tf", s(&repacked)]);
    assert!(listing.lines().any(|l| l == "./") && listing.lines().any(|l| l == "./manifest.json"), "{listing}");
    // skopeo reads it; so do we, in place and as a stream.
    run("skopeo", &["inspect", &format!("docker-archive:{}", s(&repacked))]);
    let engine = Engine::create(dir.path().join("target")).unwrap();
    let from_file = engine.import_docker_archive_file(&repacked, &ImportOptions::default()).unwrap();
    let bytes = std::fs::read(&repacked).unwrap();
    let from_stream = engine.import_docker_archive(&bytes[..], &ImportOptions::default()).unwrap();
    assert_eq!(from_file, from_stream);
    assert_eq!(from_file[0].refs, ["example/app:1"]);
    // `./` names the root; a member cannot be the root itself unless it is a directory.
    let root_file = tar(&[Member::File("./", b"x".to_vec())]);
    let err = engine.import_docker_archive(&root_file[..], &ImportOptions::default()).unwrap_err();
    assert!(err.message().contains("root"), "{err}");
}

#[test]
fn ls_lists_a_pre_1_10_archive_by_its_repositories() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("old.tar");
    std::fs::write(&archive, pre_1_10_archive(None)).unwrap();
    let listed = ocicas(&["docker-archive", "ls", s(&archive)]);
    assert_eq!(repo_tags_listed(&listed), ["example/old:1", "example/old:latest"]);
    let item: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(item["Layers"].as_array().unwrap().len(), 2, "{item}");
}

#[test]
fn a_pipe_or_a_fifo_given_as_a_path_is_read_as_a_stream() {
    let dir = tempfile::tempdir().unwrap();
    let archive = exported_archive(dir.path());
    let target = dir.path().join("target");
    ocicas(&["init", s(&target)]);
    let substituted = |command: &str| run("bash", &["-c", command]);
    let imported = substituted(&format!("{OCICAS} docker-archive import {} <(cat {})", s(&target), s(&archive)));
    assert!(imported.contains("example/app:1"), "{imported}");
    let listed = substituted(&format!("{OCICAS} docker-archive ls <(cat {})", s(&archive)));
    assert_eq!(repo_tags_listed(&listed), ["example/app:1"]);
    let digest = Digest::of_bytes(Algorithm::Sha256, &std::fs::read(&archive).unwrap());
    let put = substituted(&format!("{OCICAS} blob put {} <(cat {}) --ref piped", s(&target), s(&archive)));
    assert_eq!(put.trim(), digest.to_string());

    // A FIFO, written by another thread while ocicas reads it.
    let fifo = dir.path().join("fifo");
    run("mkfifo", &[s(&fifo)]);
    for args in [
        vec!["docker-archive", "import", s(&target), s(&fifo), "--ref", "from-fifo"],
        vec!["blob", "put", s(&target), s(&fifo), "--ref", "fifo-blob"],
    ] {
        let writer = {
            let (fifo, archive) = (fifo.clone(), archive.clone());
            std::thread::spawn(move || {
                let mut out = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
                out.write_all(&std::fs::read(archive).unwrap()).unwrap();
            })
        };
        let output = ocicas(&args);
        writer.join().unwrap();
        assert!(output.contains("from-fifo") || output.trim() == digest.to_string(), "{args:?}: {output}");
    }
}

#[test]
fn tags_match_as_docker_normalizes_them_and_images_are_chosen_by_index() {
    let (layer, config, config_hex) = archive_common::image_parts();
    let config_name = format!("{config_hex}.json");
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": config_name, "RepoTags": ["busybox:latest"], "Layers": ["l/layer.tar"]},
        {"Config": config_name, "RepoTags": ["quay.io/me/app:2"], "Layers": ["l/layer.tar"]},
    ]))
    .unwrap();
    let archive = tar(&[
        Member::File(&config_name, config),
        Member::File("l/layer.tar", layer),
        Member::File("manifest.json", manifest),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bb.tar");
    std::fs::write(&path, &archive).unwrap();
    let target = dir.path().join("target");
    ocicas(&["init", s(&target)]);
    for (tag, expected) in [
        ("docker.io/library/busybox:latest", "busybox:latest"),
        ("busybox", "busybox:latest"),
        ("index.docker.io/library/busybox", "busybox:latest"),
        ("quay.io/me/app:2", "quay.io/me/app:2"),
    ] {
        let out = ocicas(&["docker-archive", "import", s(&target), s(&path), "--tag", tag]);
        assert!(out.contains(&format!("\"refs\":[\"{expected}\"]")), "{tag}: {out}");
    }
    let out = ocicas(&["docker-archive", "import", s(&target), s(&path), "--index", "1", "--ref", "second"]);
    assert!(out.contains("\"repoTags\":[\"quay.io/me/app:2\"]"), "{out}");
    let engine = Engine::open(&target, &Default::default()).unwrap();
    let reader = engine.open_docker_archive(&path).unwrap();
    for (tag, found) in [("busybox:1", false), ("library/busybox", true), ("quay.io/me/app", false)] {
        assert_eq!(reader.choose(&ImageChoice::Tag(tag.to_owned())).is_ok(), found, "{tag}");
    }
    let err = reader.choose(&ImageChoice::Tag(format!("busybox@sha256:{}", "a".repeat(64)))).unwrap_err();
    assert!(err.message().contains("digest"), "{err}");
}

#[test]
fn a_recompressed_import_never_stores_the_plain_layer() {
    let dir = tempfile::tempdir().unwrap();
    let archive = exported_archive(dir.path());
    let bytes = std::fs::read(&archive).unwrap();
    let options = ImportOptions {
        compression: Some(CompressionOptions { compression: Compression::Gzip(6), ..CompressionOptions::default() }),
        ..ImportOptions::default()
    };
    for from_file in [true, false] {
        let engine = Engine::create(dir.path().join(format!("target-{from_file}"))).unwrap();
        let images = match from_file {
            true => engine.import_docker_archive_file(&archive, &options).unwrap(),
            false => engine.import_docker_archive(&bytes[..], &options).unwrap(),
        };
        let Document::Manifest(manifest) = engine.read_document(&images[0].manifest).unwrap() else { panic!() };
        assert!(manifest.layers[0].media_type.ends_with("tar+gzip"));
        let mut expected = vec![images[0].manifest.digest.clone(), manifest.config.digest.clone()];
        expected.push(manifest.layers[0].digest.clone());
        expected.sort();
        // No GC: the store holds the image and nothing else (no plain layer, no ingest).
        assert_eq!(archive_common::leftovers(&engine), (expected, 0, 0), "from a file: {from_file}");
        assert!(engine.fsck().unwrap().is_sound());
    }
}

#[test]
fn the_legacy_export_carries_the_v1_json_that_pre_1_10_loaders_read() {
    let dir = tempfile::tempdir().unwrap();
    let layout = layout_with_image(dir.path());
    ocicas(&["append", s(&layout), "app", "--dir", s(&dir.path().join("tree"))]);
    let engine = Engine::open(&layout, &Default::default()).unwrap();
    let mut out = Vec::new();
    out = engine
        .export_docker_archive(&["app"], &[vec!["example/app:1".to_owned()]], out, &ExportOptions::default())
        .unwrap();
    let mut members = Vec::new();
    let mut archive = tar::Archive::new(&out[..]);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut body = Vec::new();
        entry.read_to_end(&mut body).unwrap();
        members.push((name, entry.header().entry_type(), body));
    }
    let v1: Vec<serde_json::Value> = members
        .iter()
        .filter(|(name, _, _)| name.ends_with("/json"))
        .map(|(_, _, body)| serde_json::from_slice(body).unwrap())
        .collect();
    assert_eq!(v1.len(), 2, "one v1 json per layer");
    assert!(v1[0].get("parent").is_none() && v1[1]["parent"] == v1[0]["id"], "{v1:?}");
    assert_eq!(v1[1]["os"], "linux");
    assert!(v1[1].get("config").is_some() && v1[1].get("architecture").is_some(), "{:?}", v1[1]);
    // The top layer's `created` is the image config's, as docker writes it.
    let config: serde_json::Value = serde_json::from_slice(
        &members
            .iter()
            .find(|(name, _, _)| !name.contains('/') && name.ends_with(".json") && name != "manifest.json")
            .unwrap()
            .2,
    )
    .unwrap();
    assert!(config["created"].is_string(), "the appended image's config has a creation time: {config}");
    assert_eq!(v1[1]["created"], config["created"]);
    for json in &v1 {
        let id = json["id"].as_str().unwrap();
        let link = members.iter().find(|(name, _, _)| *name == format!("{id}/layer.tar")).unwrap();
        assert_eq!(link.1, tar::EntryType::Symlink);
        assert!(members.iter().any(|(name, _, body)| *name == format!("{id}/VERSION") && body == b"1.0"));
    }
    let repositories: serde_json::Value =
        serde_json::from_slice(&members.iter().find(|(n, _, _)| n == "repositories").unwrap().2).unwrap();
    assert_eq!(repositories["example/app"]["1"], v1[1]["id"]);

    // A loader that knows only `repositories` and the v1 files gets the same image.
    let mut old = tar::Builder::new(Vec::new());
    for entry in tar::Archive::new(&out[..]).entries().unwrap() {
        let entry = entry.unwrap();
        if entry.path().unwrap().to_str() != Some("manifest.json") {
            let header = entry.header().clone();
            old.append(&header, entry).unwrap();
        }
    }
    let old = old.into_inner().unwrap();
    let target = Engine::create(dir.path().join("old-target")).unwrap();
    let images = target.import_docker_archive(&old[..], &ImportOptions::default()).unwrap();
    let Document::Manifest(manifest) = target.read_document(&images[0].manifest).unwrap() else { panic!() };
    let Document::Config(config) = target.read_document(&manifest.config).unwrap() else { panic!() };
    let descriptor = engine.ref_get("app").unwrap();
    let Document::Manifest(original) = engine.read_document(&descriptor).unwrap() else { panic!() };
    let Document::Config(original) = engine.read_document(&original.config).unwrap() else { panic!() };
    assert_eq!(config.rootfs.diff_ids, original.rootfs.diff_ids);
    assert_eq!(images[0].refs, ["example/app:1"]);
    // skopeo reads the export.
    let path = dir.path().join("export.tar");
    std::fs::write(&path, &out).unwrap();
    run("skopeo", &["inspect", &format!("docker-archive:{}:example/app:1", s(&path))]);
}

#[test]
fn progress_shows_on_a_terminal_and_nowhere_else() {
    let dir = tempfile::tempdir().unwrap();
    let archive = exported_archive(dir.path());
    let target = dir.path().join("target");
    ocicas(&["init", s(&target)]);
    let layout = dir.path().join("layout");
    let export = dir.path().join("again.tar");
    let commands = [
        (format!("{OCICAS} docker-archive import {} {}", s(&target), s(&archive)), "stored"),
        (format!("{OCICAS} docker-archive export {} app -o {}", s(&layout), s(&export)), "written"),
    ];
    for (command, word) in &commands {
        // Not a terminal: nothing on stderr.
        let output = output("bash", &["-c", command]);
        assert!(output.status.success() && output.stderr.is_empty(), "{command}: {:?}", output);
        // A terminal (script gives the command a pseudo-terminal): bytes and rate.
        let shown = run("script", &["-qec", command, "/dev/null"]);
        assert!(shown.contains(word) && shown.contains("/s"), "{command}: {shown:?}");
    }
}
