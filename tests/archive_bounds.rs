//! A docker-archive import is bounded on hostile input: the metadata it holds in memory, the
//! bytes it writes (from a tiny compressed archive too), the work per distinct member; members
//! no image references are not left stored; errors quote input only as a short escaped excerpt.
//! The crafted archives are generated here, streamed, never held whole.

mod archive_common;
mod common;

use std::io::Write;

use archive_common::{
    Member, image_parts, leftovers, manifest_json, run_watched, tar, tar_header, tar_padding, write_filled_member,
};
use common::cli::ocicas_output;
use common::fixture::store;
use common::rng::Rng;
use ocicas::archive::ImportOptions;
use ocicas::{Algorithm, Digest, Engine, ErrorKind, Limits, OpenOptions};

/// A zstd file of a tar whose members `write` writes (followed by the end blocks).
fn zstd_archive(path: &std::path::Path, write: impl FnOnce(&mut dyn Write)) -> u64 {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = zstd::Encoder::new(std::io::BufWriter::new(file), 3).unwrap();
    write(&mut encoder);
    encoder.write_all(&[0u8; 1024]).unwrap();
    encoder.finish().unwrap().flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn json_members_held_in_memory_are_bounded_all_together() {
    // 400 members `N/json`, each 4 MiB of whitespace (under the per-document limit): 1.6 GB
    // of JSON from a ~58 KB file.
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    Engine::create(&layout).unwrap();
    let archive = dir.path().join("json-bomb.tar.zst");
    let size = zstd_archive(&archive, |out| {
        for n in 0..400 {
            write_filled_member(out, &format!("{n}/json"), 4 << 20, b' ');
        }
    });
    for args in [
        vec!["docker-archive", "import", layout.to_str().unwrap(), archive.to_str().unwrap()],
        vec!["docker-archive", "ls", archive.to_str().unwrap()],
    ] {
        let watched = run_watched(&args, &layout);
        assert!(
            watched.peak_rss_kib <= 160 << 10,
            "{args:?}: peak RSS {} MiB from a {size}-byte archive",
            watched.peak_rss_kib >> 10
        );
        let stderr = String::from_utf8_lossy(&watched.output.stderr);
        assert!(!watched.output.status.success());
        assert!(stderr.contains("archive_json_total"), "{args:?}: {stderr}");
        println!("{}: refused a {size}-byte archive at a peak RSS of {} MiB", args[1], watched.peak_rss_kib >> 10);
    }
}

#[test]
fn a_tiny_compressed_archive_cannot_fill_the_disk() {
    // One member of 1.4 GB of zeros and no manifest.json, in a ~90 KB zstd file.
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    Engine::create(&layout).unwrap();
    let archive = dir.path().join("disk-bomb.tar.zst");
    let size = zstd_archive(&archive, |out| write_filled_member(out, "blob", 1_400_000_000, 0));
    let watched =
        run_watched(&["docker-archive", "import", layout.to_str().unwrap(), archive.to_str().unwrap()], &layout);
    // What the decompression limit lets a file this small expand to (read ahead a buffer at
    // most), and no more.
    let allowed = Limits::default().archive_expansion * (size + (128 << 10));
    assert!(
        watched.peak_dir_bytes <= allowed,
        "a {size}-byte archive made the layout grow to {} MB",
        watched.peak_dir_bytes / 1_000_000
    );
    let stderr = String::from_utf8_lossy(&watched.output.stderr);
    assert!(!watched.output.status.success());
    assert!(stderr.contains("archive_expansion"), "{stderr}");
    println!("refused a {size}-byte archive; the layout peaked at {} MB", watched.peak_dir_bytes / 1_000_000);
    let engine = Engine::open(&layout, &OpenOptions::default()).unwrap();
    assert_eq!(leftovers(&engine), (vec![], 0, 0), "a refused import left something behind");
}

/// A one-image archive, with `extra` members before manifest.json.
fn archive_with_extra(extra: Vec<Member>) -> (Vec<u8>, Vec<Digest>) {
    let (layer, config, config_hex) = image_parts();
    let expected = vec![Digest::of_bytes(Algorithm::Sha256, &config), Digest::of_bytes(Algorithm::Sha256, &layer)];
    let config_name = format!("{config_hex}.json");
    let mut members = vec![Member::File(&config_name, config.clone()), Member::File("abc/layer.tar", layer)];
    members.extend(extra);
    members.push(Member::File("manifest.json", manifest_json(&config_name, &["abc/layer.tar"])));
    (tar(&members), expected)
}

#[test]
fn members_no_image_references_are_not_left_stored() {
    let junk = vec![7u8; 1 << 20];
    let (archive, expected) =
        archive_with_extra(vec![Member::File("junk/layer.tar", junk.clone()), Member::File("small", b"x".to_vec())]);
    let mut gzipped = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzipped.write_all(&archive).unwrap();
    let gzipped = gzipped.finish().unwrap();
    for bytes in [&archive, &gzipped] {
        let (dir, engine) = store();
        let images = engine.import_docker_archive(&bytes[..], &ImportOptions::default()).unwrap();
        let path = dir.path().join("archive");
        std::fs::write(&path, bytes).unwrap();
        let again = engine.import_docker_archive_file(&path, &ImportOptions::default()).unwrap();
        assert_eq!(images, again);
        let mut wanted = expected.clone();
        wanted.push(images[0].manifest.digest.clone());
        wanted.sort();
        // No GC: what the import stored is exactly the image.
        assert_eq!(leftovers(&engine), (wanted, 0, 0));
    }
}

#[test]
fn an_import_writes_no_more_than_archive_import_size() {
    let (archive, _) = archive_with_extra(vec![Member::File("big", vec![1u8; 2 << 20])]);
    let limits = Limits { archive_import_size: 1 << 20, ..Limits::default() };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archive.tar");
    std::fs::write(&path, &archive).unwrap();
    for from_file in [false, true] {
        let engine =
            Engine::open(dir.path().join(format!("layout-{from_file}")), &OpenOptions { create: true, limits })
                .unwrap();
        let result = match from_file {
            true => engine.import_docker_archive_file(&path, &ImportOptions::default()),
            false => engine.import_docker_archive(&archive[..], &ImportOptions::default()),
        };
        // From a file only the image is written, which fits; from a stream every member is.
        if from_file {
            result.unwrap();
            continue;
        }
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
        assert!(err.message().contains("archive_import_size"), "{err}");
        assert_eq!(leftovers(&engine), (vec![], 0, 0));
    }
    // A layer larger than the limit is refused from a file too.
    let big_layer = tar(&[Member::File("big.bin", vec![3u8; 2 << 20])]);
    let diff_id = Digest::of_bytes(Algorithm::Sha256, &big_layer);
    let config =
        format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#);
    let archive = tar(&[
        Member::File("c.json", config.into_bytes()),
        Member::File("l.tar", big_layer),
        Member::File("manifest.json", manifest_json("c.json", &["l.tar"])),
    ]);
    std::fs::write(&path, &archive).unwrap();
    let engine = Engine::open(dir.path().join("layout-big"), &OpenOptions { create: true, limits }).unwrap();
    let err = engine.import_docker_archive_file(&path, &ImportOptions::default()).unwrap_err();
    assert!(err.kind() == ErrorKind::TooLarge && err.message().contains("archive_import_size"), "{err}");
    assert_eq!(leftovers(&engine), (vec![], 0, 0));
}

#[test]
fn a_layer_that_every_layer_of_an_image_names_is_read_and_verified_once() {
    // One gzip layer of 1 MiB of incompressible bytes, listed 1,000 times.
    const REFERENCES: usize = 1000;
    let content = Rng(1).bytes(1 << 20);
    let layer = tar(&[Member::File("random.bin", content)]);
    let diff_id = Digest::of_bytes(Algorithm::Sha256, &layer);
    let mut gzipped = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzipped.write_all(&layer).unwrap();
    let gzipped = gzipped.finish().unwrap();
    let diff_ids = vec![diff_id.to_string(); REFERENCES];
    let config =
        serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let layers = vec!["l/layer.tar"; REFERENCES];
    let archive = tar(&[
        Member::File("c.json", serde_json::to_vec(&config).unwrap()),
        Member::File("l/layer.tar", gzipped),
        Member::File("manifest.json", manifest_json("c.json", &layers)),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    Engine::create(&layout).unwrap();
    let path = dir.path().join("archive.tar");
    std::fs::write(&path, &archive).unwrap();
    let watched = run_watched(&["docker-archive", "import", layout.to_str().unwrap(), path.to_str().unwrap()], &layout);
    assert!(watched.output.status.success(), "{}", String::from_utf8_lossy(&watched.output.stderr));
    assert!(
        watched.read_bytes < 16 * archive.len() as u64,
        "the import read {} MB for a {} MB archive",
        watched.read_bytes >> 20,
        archive.len() >> 20
    );
    println!("imported {REFERENCES} references to one layer reading {} MB", watched.read_bytes / 1_000_000);
}

#[test]
fn errors_quote_input_only_as_a_short_escaped_excerpt() {
    let secret = "the-last-line-holds-a-secret";
    let mut passwd = String::new();
    for n in 0..60 {
        passwd.push_str(&format!("user{n}:x:{n}:{n}:User \x1b[31m{n}:/home/user{n}:/bin/sh\n"));
    }
    passwd.push_str(secret);
    let (dir, engine) = store();
    let path = dir.path().join("passwd");
    std::fs::write(&path, &passwd).unwrap();
    let check = |message: &str| {
        assert!(!message.contains(secret) && !message.contains("user5:"), "quotes too much: {message}");
        assert!(!message.contains('\n') && !message.contains('\x1b'), "quotes raw bytes: {message:?}");
    };
    for result in [
        engine.import_docker_archive_file(&path, &ImportOptions::default()),
        engine.import_docker_archive(passwd.as_bytes(), &ImportOptions::default()),
    ] {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidImage);
        check(err.message());
    }
    let output =
        ocicas_output(&["docker-archive", "import", engine.root().to_str().unwrap(), path.to_str().unwrap()], b"");
    check(String::from_utf8_lossy(&output.stderr).trim_end());

    // Names and JSON from the archive are quoted the same way.
    let long_name = format!("{}\n{secret}", "n".repeat(200));
    let manifest = format!(r#"[{{"Config":"{}","Layers":[]}}]"#, long_name.replace('\n', "\\n"));
    let header = tar_header("manifest.json", manifest.len() as u64);
    let mut archive = header.to_vec();
    archive.extend_from_slice(manifest.as_bytes());
    archive.extend(tar_padding(manifest.len() as u64));
    archive.extend_from_slice(&[0u8; 1024]);
    let err = engine.import_docker_archive(&archive[..], &ImportOptions::default()).unwrap_err();
    check(err.message());
    let bad_json = format!(r#"[{{"Config":"c","RepoTags":"{}","Layers":[]}}]"#, "x".repeat(300) + secret);
    let archive = tar(&[Member::File("manifest.json", bad_json.into_bytes())]);
    let err = engine.import_docker_archive(&archive[..], &ImportOptions::default()).unwrap_err();
    check(err.message());
    // A RepoTag that is no reference name, in an image that is otherwise sound.
    let (layer, config, config_hex) = archive_common::image_parts();
    let config_name = format!("{config_hex}.json");
    let bad_tag = format!("{} {secret}:1", "x".repeat(300));
    let manifest =
        serde_json::json!([{"Config": config_name, "RepoTags": [bad_tag], "Layers": ["abc/layer.tar"]}]).to_string();
    let archive = tar(&[
        Member::File(&config_name, config),
        Member::File("abc/layer.tar", layer),
        Member::File("manifest.json", manifest.into_bytes()),
    ]);
    let err = engine.import_docker_archive(&archive[..], &ImportOptions::default()).unwrap_err();
    check(err.message());
}
