//! Each configurable limit (`ocicas::Limits`, issue #8 item 6): input just under or at the limit
//! passes; just over it is `TooLarge` with a message naming the limit (fsck reports a walk cut
//! at the depth limit as a problem naming it).

use crate::archive_common;
use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use archive_common::{Member, image_parts, manifest_json, tar};
use common::cli::{TOO_LARGE, ocicas_output};
use common::fixture::store;
use ocicas::archive::{ImportOptions, read_manifest_items_with};
use ocicas::spec::{ImageIndex, ImageManifest, MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST};
use ocicas::{Descriptor, Engine, ErrorKind, Labels, Limits, OpenOptions, WriterOptions};

/// The layout of `engine` opened again with other limits.
fn reopen(engine: &Engine, limits: Limits) -> Engine {
    Engine::open(engine.root(), &OpenOptions { create: false, limits }).unwrap()
}

fn assert_too_large<T: std::fmt::Debug>(result: ocicas::Result<T>, limit_name: &str) {
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert!(err.message().contains(limit_name), "message {:?} does not name {limit_name}", err.message());
}

#[test]
fn the_defaults_are_those_of_issue_8() {
    let limits = Limits::default();
    assert_eq!(limits.json_size, 4 << 20);
    assert_eq!(limits.archive_manifest_size, 1 << 20);
    assert_eq!(limits.archive_header_size, 1 << 20);
    assert_eq!(limits.archive_members, 100_000);
    assert_eq!(limits.label_size, 4096);
    assert_eq!(limits.walk_depth, 16);
    assert_eq!(OpenOptions::default().limits, limits);
}

#[test]
fn a_document_at_the_json_limit_is_read_and_one_byte_over_is_too_large() {
    let (_dir, engine) = store();
    // Larger than index.json, which the engine reads when it opens.
    let mut index = ImageIndex::empty();
    index.annotations.insert("padding".to_owned(), "x".repeat(200));
    let descriptor = engine.put_json(MEDIA_TYPE_IMAGE_INDEX, &index).unwrap();
    let at_limit = reopen(&engine, Limits { json_size: descriptor.size, ..Limits::default() });
    at_limit.read_document(&descriptor).unwrap();
    let under = reopen(&engine, Limits { json_size: descriptor.size - 1, ..Limits::default() });
    assert_too_large(under.read_document(&descriptor), "json_size");
    // index.json itself: read at the limit, refused one byte under it, but for opening the
    // layout and listing and removing references, which take up to 16 times the limit.
    engine.ref_put("app", &descriptor, false).unwrap();
    let index_size = std::fs::metadata(engine.root().join("index.json")).unwrap().len();
    let options = |json_size| OpenOptions { create: false, limits: Limits { json_size, ..Limits::default() } };
    Engine::open(engine.root(), &options(index_size)).unwrap().ref_get("app").unwrap();
    let over = Engine::open(engine.root(), &options(index_size - 1)).unwrap();
    assert_too_large(over.ref_get("app"), "json_size");
    assert_eq!(over.ref_list().unwrap().len(), 1);
    assert_too_large(Engine::open(engine.root(), &options(index_size.div_ceil(16) - 1)), "json_size");
}

/// Imports `archive` from a stream and from a file with `limits`.
fn import_both(dir: &Path, limits: Limits, archive: &[u8]) -> Vec<ocicas::Result<()>> {
    let mut results = Vec::new();
    for how in ["stream", "file"] {
        let engine = Engine::open(dir.join(how), &OpenOptions { create: true, limits }).unwrap();
        let path = dir.join(format!("{how}.tar"));
        std::fs::write(&path, archive).unwrap();
        let result = match how {
            "stream" => engine.import_docker_archive(archive, &ImportOptions::default()),
            _ => engine.import_docker_archive_file(&path, &ImportOptions::default()),
        };
        results.push(result.map(|_| ()));
        std::fs::remove_dir_all(dir.join(how)).unwrap();
    }
    results
}

/// A one-image legacy archive whose first member is `extra` (when given).
fn archive_with(extra: Option<Vec<u8>>) -> (Vec<u8>, usize) {
    let (layer, config, config_hex) = image_parts();
    let config_name = format!("{config_hex}.json");
    let manifest = manifest_json(&config_name, &["abc/layer.tar"]);
    let manifest_len = manifest.len();
    let mut archive = extra.unwrap_or_default();
    archive.extend(tar(&[
        Member::File(&config_name, config),
        Member::File("abc/layer.tar", layer),
        Member::File("manifest.json", manifest),
    ]));
    (archive, manifest_len)
}

#[test]
fn a_manifest_json_at_the_limit_imports_and_one_byte_over_is_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, manifest_len) = archive_with(None);
    let limits = |size: usize| Limits { archive_manifest_size: size as u64, ..Limits::default() };
    for result in import_both(dir.path(), limits(manifest_len), &archive) {
        result.unwrap();
    }
    for result in import_both(dir.path(), limits(manifest_len - 1), &archive) {
        assert_too_large(result, "archive_manifest_size");
    }
    assert_too_large(read_manifest_items_with(&archive[..], &limits(manifest_len - 1)), "archive_manifest_size");
    assert_eq!(read_manifest_items_with(&archive[..], &limits(manifest_len)).unwrap().len(), 1);
}

#[test]
fn an_archive_with_as_many_members_as_the_limit_imports_and_one_more_is_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = archive_with(None);
    let limits = |members| Limits { archive_members: members, ..Limits::default() };
    for result in import_both(dir.path(), limits(3), &archive) {
        result.unwrap();
    }
    for result in import_both(dir.path(), limits(2), &archive) {
        assert_too_large(result, "archive_members");
    }
}

/// A member named by a GNU long name of `len` bytes, as raw tar blocks without the end marker.
fn long_named_member(len: usize) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    header.set_size(len as u64);
    header.set_entry_type(tar::EntryType::GNULongName);
    header.set_cksum();
    let mut blocks = header.as_bytes().to_vec();
    blocks.extend(std::iter::repeat_n(b'a', len));
    blocks.resize(blocks.len().div_ceil(512) * 512, 0);
    let mut file = tar::Header::new_gnu();
    file.set_path("short").unwrap();
    file.set_size(1);
    file.set_entry_type(tar::EntryType::Regular);
    file.set_cksum();
    blocks.extend_from_slice(file.as_bytes());
    blocks.push(b'x');
    blocks.resize(blocks.len() + 511, 0);
    blocks
}

#[test]
fn headers_that_fill_the_header_limit_import_and_one_block_more_is_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 16 * 1024;
    let limits = Limits { archive_header_size: limit as u64, ..Limits::default() };
    // The reader reads the long name's header block, the name (padded to a block) and the
    // member's own header block to reach the member: exactly the limit here.
    let (archive, _) = archive_with(Some(long_named_member(limit - 1024)));
    for result in import_both(dir.path(), limits, &archive) {
        result.unwrap();
    }
    let (archive, _) = archive_with(Some(long_named_member(limit - 1023)));
    for result in import_both(dir.path(), limits, &archive) {
        assert_too_large(result, "archive_header_size");
    }
}

#[test]
fn a_label_at_the_label_limit_is_set_and_one_byte_over_is_too_large() {
    let (_dir, engine) = store();
    let engine = reopen(&engine, Limits { label_size: 100, ..Limits::default() });
    let blob = engine.put_blob(b"labelled").unwrap();
    let label = |len: usize| Labels::from([("key".to_owned(), "v".repeat(len - 3))]);
    engine.update_labels(&blob.digest, &label(100), &[]).unwrap();
    assert_too_large(engine.update_labels(&blob.digest, &label(101), &[]), "label_size");
    assert_eq!(engine.info(&blob.digest).unwrap().labels, label(100), "a refused update changed the labels");
    // The same limit on a commit's labels.
    let mut writer = engine.writer("labelled-commit", &WriterOptions::default()).unwrap();
    writer.write(b"other").unwrap();
    assert_too_large(writer.commit(None, None, &label(101)), "label_size");
    writer.commit(None, None, &label(100)).unwrap();
}

/// index.json -> `levels` nested indexes -> a manifest whose config and layer are leaves.
fn nested_image(engine: &Engine, levels: usize) -> Descriptor {
    let config = engine.put_blob(b"{}").unwrap();
    let layer = engine.put_blob(b"layer bytes").unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_owned()),
        artifact_type: None,
        config: Descriptor::new("application/vnd.oci.empty.v1+json", config.digest, config.size),
        layers: vec![Descriptor::new("application/vnd.oci.image.layer.v1.tar", layer.digest, layer.size)],
        subject: None,
        annotations: BTreeMap::new(),
        extra: Default::default(),
    };
    let mut top = engine.put_json(MEDIA_TYPE_IMAGE_MANIFEST, &manifest).unwrap();
    for _ in 0..levels {
        let mut index = ImageIndex::empty();
        index.manifests.push(top);
        top = engine.put_json(MEDIA_TYPE_IMAGE_INDEX, &index).unwrap();
    }
    engine.ref_put("deep", &top, false).unwrap();
    top
}

#[test]
fn a_walk_as_deep_as_the_depth_limit_checks_everything_and_one_level_more_is_reported() {
    let (_dir, engine) = store();
    nested_image(&engine, 5);
    // The manifest is at depth 5 (the tagged index is 0): following its children needs 6.
    let report = reopen(&engine, Limits { walk_depth: 6, ..Limits::default() }).fsck().unwrap();
    assert!(report.is_sound(), "{:?}", report.problems);
    assert_eq!(report.reachable, 8);
    let report = reopen(&engine, Limits { walk_depth: 5, ..Limits::default() }).fsck().unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].contains("walk_depth"), "{:?}", report.problems);
}

#[test]
fn fsck_gc_and_push_draw_the_depth_line_in_the_same_place() {
    let (_dir, engine) = store();
    nested_image(&engine, 5);
    // Push plans the image before it connects: within the limit it gets as far as the
    // (unreachable) registry, one level short it stops at the limit.
    let target = "127.0.0.1:1/deep/image:v1";
    let insecure = ocicas::RegistryOptions { insecure: true, ..Default::default() };
    let within = reopen(&engine, Limits { walk_depth: 6, ..Limits::default() });
    assert!(within.fsck().unwrap().is_sound());
    within.gc(&Default::default()).unwrap();
    assert_eq!(within.push("deep", target, &insecure).unwrap_err().kind(), ErrorKind::Remote);

    let short = reopen(&engine, Limits { walk_depth: 5, ..Limits::default() });
    assert!(!short.fsck().unwrap().is_sound());
    assert_too_large(short.push("deep", target, &insecure), "walk_depth");
    let refused = short.gc(&Default::default()).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidImage, "{refused}");
    assert!(refused.message().contains("walk_depth"), "{refused}");
    assert_eq!(within.fsck().unwrap().reachable, 8, "GC removed nothing");
}

#[test]
fn listing_an_archive_keeps_to_the_header_limit() {
    // Found while making the limits configurable: read_manifest_items read long names whole,
    // however long, where an import refuses them.
    let limits = Limits { archive_header_size: 16 * 1024, ..Limits::default() };
    let (archive, _) = archive_with(Some(long_named_member(1 << 20)));
    assert_too_large(read_manifest_items_with(&archive[..], &limits), "archive_header_size");
    let (archive, _) = archive_with(Some(long_named_member(16 * 1024 - 1024)));
    assert_eq!(read_manifest_items_with(&archive[..], &limits).unwrap().len(), 1);
}

/// The limits table of README.md and the header's constants list every limit with its name and
/// its default, so the one table people read is the one the code enforces.
#[test]
fn readme_and_header_list_every_limit_with_its_default() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let header = std::fs::read_to_string(root.join("include/ocicas.h")).unwrap();
    let defaults = Limits::default();
    for limit in ocicas::Limit::ALL {
        let name = limit.name();
        let constant = format!("OCICAS_LIMIT_{}", name.to_uppercase());
        let row = readme
            .lines()
            .find(|line| line.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("README.md's limits table has no row for {name}"));
        assert!(row.contains(&format!("`{constant}`")), "README row of {name} does not name {constant}: {row}");
        let default = if limit == ocicas::Limit::Threads {
            "4 per core, at least 32, at most 256".to_owned()
        } else {
            defaults.get(limit).to_string()
        };
        let shown = [format!("| {default} |"), format!("({default})"), format!("| {default}")];
        assert!(
            shown.iter().any(|s| row.contains(s.as_str())),
            "README row of {name} does not give its default {default}: {row}"
        );
        assert!(
            header.contains(&format!("limit `{name}`")) && header.contains(&format!("#define {constant} ")),
            "the header does not document {constant} as limit `{name}`"
        );
    }
}

#[test]
fn the_cli_sets_limits_by_name_and_refuses_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let ocicas = |args: &[&str]| ocicas_output(args, b"");
    assert!(ocicas(&["init", layout.to_str().unwrap()]).status.success());
    let index_size = std::fs::metadata(layout.join("index.json")).unwrap().len();
    let under = format!("json_size={}", index_size - 1);
    let out = ocicas(&["gc", layout.to_str().unwrap(), "--limit", &under]);
    assert_eq!(out.status.code(), Some(TOO_LARGE), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("json_size") && stderr.contains("--limit json_size=N"), "{stderr}");
    let at = format!("json_size={index_size}");
    assert!(ocicas(&["--limit", &at, "gc", layout.to_str().unwrap()]).status.success());
    let out = ocicas(&["ref", "ls", layout.to_str().unwrap(), "--limit", "no_such_limit=1"]);
    assert_eq!(out.status.code(), Some(11), "invalid input: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown limit"), "{out:?}");
}
