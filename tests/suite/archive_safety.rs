//! docker-archive import against crafted archives: each unsafe or broken one is refused with a
//! clear error, and nothing is tagged or stored. Also a
//! hand-built docker 25+ archive (an OCI layout inside) imports.

use crate::archive_common;
use crate::common;

use std::io::{Read, Write};

use archive_common::{Member, image_parts, leftovers, manifest_json, tar};
use common::fixture::store;
use flate2::Compression as GzLevel;
use flate2::write::GzEncoder;
use ocicas::archive::{ImageChoice, ImportOptions};
use ocicas::{Algorithm, Digest, ErrorKind};

/// Imports `archive`, from a stream and from a file (read in place when plain), expecting
/// `kind` with a message containing `culprit`; checks nothing was tagged and GC leaves no blob
/// behind.
fn refused(archive: &[u8], kind: ErrorKind, culprit: &str) {
    let (dir, engine) = store();
    let path = dir.path().join("archive.tar");
    std::fs::write(&path, archive).unwrap();
    let from_stream = engine.import_docker_archive(archive, &ImportOptions::default());
    let from_file = engine.import_docker_archive_file(&path, &ImportOptions::default());
    for (how, result) in [("stream", from_stream), ("file", from_file)] {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), kind, "from a {how}: {err}");
        assert!(err.message().contains(culprit), "from a {how}: message {:?} does not name {culprit:?}", err.message());
    }
    assert!(engine.ref_list().unwrap().is_empty());
    // Nothing was stored: no blob, no ingest, no lease (no GC needed).
    assert_eq!(leftovers(&engine), (vec![], 0, 0), "a refused import left something behind");
}

#[test]
fn a_valid_legacy_archive_imports_plain_gzip_and_zstd() {
    let (layer, config, config_hex) = image_parts();
    let archive = tar(&[
        Member::File(&format!("{config_hex}.json"), config.clone()),
        Member::File("abc/layer.tar", layer.clone()),
        Member::File("manifest.json", manifest_json(&format!("{config_hex}.json"), &["abc/layer.tar"])),
    ]);
    let mut gzipped = GzEncoder::new(Vec::new(), GzLevel::default());
    gzipped.write_all(&archive).unwrap();
    let gzipped = gzipped.finish().unwrap();
    let zstded = zstd::encode_all(&archive[..], 3).unwrap();
    for bytes in [&archive, &gzipped, &zstded] {
        let (_dir, engine) = store();
        let images = engine.import_docker_archive(&bytes[..], &ImportOptions::default()).unwrap();
        assert_eq!(images[0].refs, vec!["example/app:1".to_owned()]);
        assert!(engine.fsck().unwrap().is_sound());
    }
}

#[test]
fn a_docker_25_archive_with_an_oci_layout_inside_imports() {
    let (layer, config, config_hex) = image_parts();
    let layer_hex = Digest::of_bytes(Algorithm::Sha256, &layer).hex().to_owned();
    let archive = tar(&[
        Member::File("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        Member::File("index.json", br#"{"schemaVersion":2,"manifests":[]}"#.to_vec()),
        Member::File(&format!("blobs/sha256/{config_hex}"), config),
        Member::File(&format!("blobs/sha256/{layer_hex}"), layer),
        Member::File(
            "manifest.json",
            manifest_json(&format!("blobs/sha256/{config_hex}"), &[&format!("blobs/sha256/{layer_hex}")]),
        ),
        Member::File("repositories", br#"{"example/app":{"1":"x"}}"#.to_vec()),
    ]);
    let (_dir, engine) = store();
    let images = engine.import_docker_archive(&archive[..], &ImportOptions::default()).unwrap();
    assert_eq!(images.len(), 1);
    assert!(engine.fsck().unwrap().is_sound());
}

#[test]
fn paths_that_leave_the_archive_are_refused() {
    let (layer, config, config_hex) = image_parts();
    let config_name = format!("{config_hex}.json");
    refused(&tar(&[Member::File("../escape.tar", layer.clone())]), ErrorKind::InvalidImage, "../escape.tar");
    refused(
        &tar(&[
            Member::File(&config_name, config.clone()),
            Member::File("manifest.json", manifest_json(&config_name, &["../../etc/passwd"])),
        ]),
        ErrorKind::InvalidImage,
        "../../etc/passwd",
    );
    // A symlink to a host file: resolved inside the archive, where there is no such member.
    refused(
        &tar(&[
            Member::File(&config_name, config.clone()),
            Member::Symlink("abc/layer.tar", "/etc/passwd"),
            Member::File("manifest.json", manifest_json(&config_name, &["abc/layer.tar"])),
        ]),
        ErrorKind::InvalidImage,
        "abc/layer.tar",
    );
    refused(
        &tar(&[Member::Symlink("abc/layer.tar", "../../../etc/passwd")]),
        ErrorKind::InvalidImage,
        "leaves the archive",
    );
}

#[test]
fn link_loops_and_links_to_nothing_are_refused() {
    let (_, config, config_hex) = image_parts();
    let config_name = format!("{config_hex}.json");
    refused(
        &tar(&[
            Member::File(&config_name, config.clone()),
            Member::Symlink("a.tar", "b.tar"),
            Member::Symlink("b.tar", "a.tar"),
            Member::File("manifest.json", manifest_json(&config_name, &["a.tar"])),
        ]),
        ErrorKind::InvalidImage,
        "loop",
    );
    refused(
        &tar(&[
            Member::File(&config_name, config),
            Member::Hardlink("a.tar", "missing.tar"),
            Member::File("manifest.json", manifest_json(&config_name, &["a.tar"])),
        ]),
        ErrorKind::InvalidImage,
        "a.tar",
    );
}

#[test]
fn duplicate_members_are_refused() {
    refused(
        &tar(&[Member::File("x.json", b"{}".to_vec()), Member::File("./x.json", b"[]".to_vec())]),
        ErrorKind::InvalidImage,
        "x.json",
    );
}

#[test]
fn truncated_garbage_and_trailing_garbage_are_refused() {
    let (layer, config, config_hex) = image_parts();
    let archive = tar(&[
        Member::File(&format!("{config_hex}.json"), config),
        Member::File("abc/layer.tar", layer),
        Member::File("manifest.json", manifest_json(&format!("{config_hex}.json"), &["abc/layer.tar"])),
    ]);
    let mut gz = GzEncoder::new(Vec::new(), GzLevel::default());
    gz.write_all(&archive).unwrap();
    let gz = gz.finish().unwrap();
    refused(&gz[..gz.len() - 20], ErrorKind::InvalidImage, "invalid docker archive");
    let mut trailing = gz.clone();
    trailing.extend_from_slice(b"garbage after the gzip member");
    refused(&trailing, ErrorKind::InvalidImage, "invalid docker archive");
    refused(
        b"this is not an archive at all, just some text that is long enough to look at",
        ErrorKind::InvalidImage,
        "not a tar archive",
    );
    refused(&[], ErrorKind::InvalidImage, "empty");
}

#[test]
fn oversized_json_is_refused_before_parsing() {
    let big = vec![b' '; (1 << 20) + 10];
    refused(&tar(&[Member::File("manifest.json", big)]), ErrorKind::TooLarge, "manifest.json");
    let (layer, _, _) = image_parts();
    let mut config = b"{\"architecture\":\"amd64\",\"os\":\"linux\",\"pad\":\"".to_vec();
    config.extend(std::iter::repeat_n(b'x', 5 << 20));
    config.extend_from_slice(b"\"}");
    let config_hex = Digest::of_bytes(Algorithm::Sha256, &config).hex().to_owned();
    let config_name = format!("{config_hex}.json");
    refused(
        &tar(&[
            Member::File(&config_name, config),
            Member::File("abc/layer.tar", layer),
            Member::File("manifest.json", manifest_json(&config_name, &["abc/layer.tar"])),
        ]),
        ErrorKind::TooLarge,
        &config_hex,
    );
}

#[test]
fn a_layer_that_does_not_match_its_diff_id_is_refused() {
    let (_, config, config_hex) = image_parts();
    let other_layer = tar(&[Member::File("other.txt", b"not the layer the config names\n".to_vec())]);
    let config_name = format!("{config_hex}.json");
    refused(
        &tar(&[
            Member::File(&config_name, config.clone()),
            Member::File("abc/layer.tar", other_layer),
            Member::File("manifest.json", manifest_json(&config_name, &["abc/layer.tar"])),
        ]),
        ErrorKind::DigestMismatch,
        "abc/layer.tar",
    );
    // More layers than diff_ids.
    let (layer, _, _) = image_parts();
    refused(
        &tar(&[
            Member::File(&config_name, config),
            Member::File("abc/layer.tar", layer),
            Member::File("manifest.json", manifest_json(&config_name, &["abc/layer.tar", "abc/layer.tar"])),
        ]),
        ErrorKind::InvalidImage,
        "diff_ids",
    );
}

/// A tar whose first member carries a GNU long name (or a PAX record) of `len` bytes.
fn tar_with_long_header(kind: tar::EntryType, len: usize) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_path("././@LongLink").unwrap();
    header.set_size(len as u64);
    header.set_entry_type(kind);
    header.set_cksum();
    let mut value = vec![b'a'; len];
    if kind == tar::EntryType::XHeader {
        // One PAX record, "LEN path=aaa…\n", its length counting itself.
        let body = format!(" path={}\n", "a".repeat(len - 20));
        value = format!("{}{body}", body.len() + (body.len() + 8).to_string().len()).into_bytes();
        header.set_size(value.len() as u64);
        header.set_cksum();
    }
    builder.append(&header, &value[..]).unwrap();
    let mut file = tar::Header::new_gnu();
    file.set_path("short").unwrap();
    file.set_size(1);
    file.set_entry_type(tar::EntryType::Regular);
    file.set_cksum();
    builder.append(&file, &b"x"[..]).unwrap();
    builder.into_inner().unwrap()
}

#[test]
fn long_names_and_pax_records_over_1_mib_are_refused_before_they_are_read_whole() {
    for kind in [tar::EntryType::GNULongName, tar::EntryType::XHeader] {
        refused(&tar_with_long_header(kind, 3 << 20), ErrorKind::TooLarge, "PAX");
        // Under the limit they are only names: this archive fails later, for want of manifest.json.
        refused(&tar_with_long_header(kind, 4000), ErrorKind::InvalidImage, "manifest.json");
    }
}

#[test]
fn an_invalid_repo_tag_among_valid_ones_tags_nothing() {
    // Found by reading the import after the docker_archive fuzz target's check: the valid tag
    // was written before the invalid one failed.
    let (layer, config, config_hex) = image_parts();
    let config_name = format!("{config_hex}.json");
    let manifest = serde_json::to_vec(&serde_json::json!([{ "Config": config_name,
        "RepoTags": ["example/app:1", "not a valid tag"], "Layers": ["abc/layer.tar"] }]))
    .unwrap();
    let archive = tar(&[
        Member::File(&config_name, config),
        Member::File("abc/layer.tar", layer),
        Member::File("manifest.json", manifest),
    ]);
    refused(&archive, ErrorKind::InvalidArgument, "not a valid tag");
}

/// Imports `archive` from a stream and from a file into fresh stores; returns each store's
/// refs (sorted) and each image's reported refs, after checking fsck finds the store sound.
fn imported_refs(archive: &[u8]) -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    let mut outcomes = Vec::new();
    for from_file in [false, true] {
        let (dir, engine) = store();
        let images = if from_file {
            let path = dir.path().join("archive.tar");
            std::fs::write(&path, archive).unwrap();
            engine.import_docker_archive_file(&path, &ImportOptions::default()).unwrap()
        } else {
            engine.import_docker_archive(archive, &ImportOptions::default()).unwrap()
        };
        let report = engine.fsck().unwrap();
        assert!(report.is_sound(), "from a {}: {:?}", if from_file { "file" } else { "stream" }, report.problems);
        let mut refs: Vec<String> = engine.ref_list().unwrap().into_iter().map(|(name, _)| name).collect();
        refs.sort();
        outcomes.push((refs, images.into_iter().map(|image| image.refs).collect()));
    }
    outcomes
}

#[test]
fn a_name_two_images_share_is_tagged_once() {
    // Found by the docker_archive_members fuzz target: two identical untagged images (one
    // config under two names) were both tagged with their manifest's hex, which put that name
    // on two entries of index.json, and fsck (like umoci) refused the store as ambiguous.
    let (layer, config, config_hex) = image_parts();
    let legacy = format!("{config_hex}.json");
    let blob = format!("blobs/sha256/{config_hex}");
    let manifest = serde_json::to_vec(&serde_json::json!([
        { "Config": legacy, "RepoTags": [], "Layers": ["abc/layer.tar"] },
        { "Config": blob, "RepoTags": [], "Layers": ["abc/layer.tar"] },
        { "Config": legacy, "RepoTags": ["example/app:1", "example/app:1"], "Layers": ["abc/layer.tar"] },
    ]))
    .unwrap();
    let archive = tar(&[
        Member::File(&legacy, config.clone()),
        Member::File(&blob, config),
        Member::File("abc/layer.tar", layer),
        Member::File("manifest.json", manifest),
    ]);
    for (refs, reported) in imported_refs(&archive) {
        assert_eq!(refs.len(), 2, "{refs:?}");
        let hex = refs.iter().find(|name| *name != "example/app:1").unwrap();
        assert_eq!(reported, vec![vec![hex.clone()], vec![hex.clone()], vec!["example/app:1".to_owned()]]);
    }
}

/// An archive of two different images (their configs differ in architecture), sharing one
/// layer, with these RepoTags.
fn two_images_tagged(first: &[&str], second: &[&str]) -> Vec<u8> {
    let (layer, config, config_hex) = image_parts();
    let other = String::from_utf8(config.clone()).unwrap().replace("amd64", "arm64").into_bytes();
    let other_hex = Digest::of_bytes(Algorithm::Sha256, &other).hex().to_owned();
    let (config_name, other_name) = (format!("{config_hex}.json"), format!("{other_hex}.json"));
    let manifest = serde_json::to_vec(&serde_json::json!([
        { "Config": config_name, "RepoTags": first, "Layers": ["abc/layer.tar"] },
        { "Config": other_name, "RepoTags": second, "Layers": ["abc/layer.tar"] },
    ]))
    .unwrap();
    tar(&[
        Member::File(&config_name, config),
        Member::File(&other_name, other),
        Member::File("abc/layer.tar", layer),
        Member::File("manifest.json", manifest),
    ])
}

#[test]
fn a_repo_tag_on_two_different_images_is_refused() {
    let archive = two_images_tagged(&["example/app:1"], &["example/app:2", "example/app:1"]);
    refused(&archive, ErrorKind::InvalidImage, "\"example/app:1\" names two different images");
}

/// The same name spelled two ways (`busybox:latest` is `docker.io/library/busybox:latest`) on
/// two different images is one name on two images.
#[test]
fn a_name_spelled_two_ways_on_two_different_images_is_refused() {
    let archive = two_images_tagged(&["busybox:latest"], &["docker.io/library/busybox:latest"]);
    refused(&archive, ErrorKind::InvalidImage, "names two different images");
}

/// The reader's lease lasts while the reader is used: a use renews it once a quarter of its
/// hour has passed; a lease that expired (a reader left unused for an hour, when GC may have
/// taken what it held) fails the next use with NotFound instead of reading what may be gone.
#[test]
fn an_archive_readers_lease_is_renewed_while_it_is_used() {
    // Over 64 KiB, so that a stream's layer is staged in the store, not kept in memory.
    let layer = tar(&[Member::File("big.bin", vec![7u8; 200_000])]);
    let diff_id = Digest::of_bytes(Algorithm::Sha256, &layer);
    let config =
        format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#);
    let config_hex = Digest::of_bytes(Algorithm::Sha256, config.as_bytes()).hex().to_owned();
    let archive = tar(&[
        Member::File(&format!("{config_hex}.json"), config.into_bytes()),
        Member::File("abc/layer.tar", layer.clone()),
        Member::File("manifest.json", manifest_json(&format!("{config_hex}.json"), &["abc/layer.tar"])),
    ]);
    let (_dir, engine) = store();
    let reader = engine.read_docker_archive(&archive[..]).unwrap();
    let image = reader.choose(&ImageChoice::All).unwrap().remove(0);
    let leases = engine.lease_list().unwrap();
    assert_eq!(leases.len(), 1, "the reader holds one lease");
    let lease_file = engine.root().join(".ocicas/leases").join(&leases[0].id);
    let expire_in = |seconds: i64| {
        let mut lease: serde_json::Value = serde_json::from_slice(&std::fs::read(&lease_file).unwrap()).unwrap();
        let at = if seconds >= 0 {
            std::time::SystemTime::now() + std::time::Duration::from_secs(seconds as u64)
        } else {
            std::time::SystemTime::now() - std::time::Duration::from_secs(seconds.unsigned_abs())
        };
        lease["expiresAt"] = humantime::format_rfc3339_nanos(at).to_string().into();
        std::fs::write(&lease_file, serde_json::to_vec(&lease).unwrap()).unwrap();
    };
    let read_layer = || -> ocicas::Result<Vec<u8>> {
        let (mut blob, _) = reader.open_blob(&image, &diff_id)?;
        let mut bytes = Vec::new();
        blob.read_to_end(&mut bytes).map_err(|e| ocicas::Error::new(ErrorKind::Io, e.to_string()))?;
        Ok(bytes)
    };

    expire_in(10 * 60);
    assert_eq!(read_layer().unwrap(), layer);
    let expires = engine.lease_get(&leases[0].id).unwrap().expires_at.unwrap();
    let left = expires.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(left > std::time::Duration::from_secs(50 * 60), "the lease was not renewed: {left:?} left");

    expire_in(-1);
    let err = read_layer().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("expired"), "{err}");
}

/// An archive whose RepoTags would make index.json larger than the JSON limit the reader
/// enforces is refused with TooLarge, and index.json is left as it was: no tag, no lease, no
/// ingest. The blobs published before the tagging failed are unreferenced: the next GC takes them.
#[test]
fn repo_tags_that_would_grow_index_json_past_the_json_limit_are_refused() {
    let (layer, config, config_hex) = image_parts();
    let tags: Vec<String> = (0..400).map(|i| format!("example/app:tag-{i:04}")).collect();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": format!("{config_hex}.json"), "RepoTags": tags, "Layers": ["abc/layer.tar"]
    }]))
    .unwrap();
    let archive = tar(&[
        Member::File(&format!("{config_hex}.json"), config),
        Member::File("abc/layer.tar", layer),
        Member::File("manifest.json", manifest),
    ]);
    let (_dir, mut engine) = store();
    // 400 entries of about 300 bytes each pass 64 KiB; the archive's own JSON stays under it.
    engine.set_limits(ocicas::Limits { json_size: 64 << 10, ..*engine.limits() });
    let index_before = std::fs::read(engine.root().join("index.json")).unwrap();
    let err = engine.import_docker_archive(&archive[..], &ImportOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert!(err.to_string().contains("json_size"), "the error names the limit: {err}");
    assert_eq!(std::fs::read(engine.root().join("index.json")).unwrap(), index_before);
    let (_, ingests, leases) = leftovers(&engine);
    assert_eq!((ingests, leases), (0, 0));
    assert!(engine.fsck().unwrap().is_sound());
    // GC keeps blobs committed within its grace (a second) of its start.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    engine.gc(&ocicas::GcOptions::default()).unwrap();
    assert_eq!(leftovers(&engine), (vec![], 0, 0));
}
