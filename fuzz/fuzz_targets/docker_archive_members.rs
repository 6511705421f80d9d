#![no_main]
//! A docker-archive built from fuzzer-chosen members, so the fuzzer gets past the tar and
//! manifest.json checks: layers (plain, gzip or zstd) under legacy or blob names, configs whose
//! DiffIDs are right unless the fuzzer spoils one, a manifest.json naming them (directly or
//! through links), extra files, links and directories, and the `repositories` and `<id>/json`
//! of pre-1.10 archives (read when there is no manifest.json). The archive is imported (every
//! image, or one chosen by a tag matched as docker normalizes it, or by index) from a stream
//! (and from a file when plain) into a fresh layout: on error nothing is tagged or stored, on
//! success every tagged image verifies and nothing else is stored (see `check_import`).

use std::io::Write;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ocicas::archive::{ImageChoice, ImportOptions, ManifestItem};
use ocicas_fuzz::{check_import, fresh_store, sha256};

#[derive(Arbitrary, Debug)]
struct ArchiveSpec {
    layers: Vec<LayerSpec>,
    images: Vec<ImageSpec>,
    extras: Vec<Extra>,
    manifest_first: bool,
    compression: Codec,
    choice: Choice,
}

#[derive(Arbitrary, Debug)]
enum Choice {
    All,
    Tag(Tag),
    Index(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Codec {
    Plain,
    Gzip,
    Zstd,
}

#[derive(Arbitrary, Debug)]
struct LayerSpec {
    name: LayerName,
    /// Uncompressed bytes (the reader hashes them; it does not need a real tar).
    content: Vec<u8>,
    compression: Codec,
}

#[derive(Arbitrary, Debug)]
enum LayerName {
    /// `<id>/layer.tar`, as `docker save` before 25 writes it.
    Legacy(u8),
    /// `blobs/sha256/<hex>`, as docker 25 writes it.
    Blob,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
struct ImageSpec {
    /// Indexes into the archive's layers.
    layers: Vec<u8>,
    /// Replaces this DiffID of the config with a wrong one.
    wrong_diff_id: Option<u8>,
    /// Refer to each layer through a symlink instead of its own name.
    layers_through_links: bool,
    config_name: ConfigName,
    architecture: String,
    os: String,
    repo_tags: Vec<Tag>,
}

#[derive(Arbitrary, Debug)]
enum ConfigName {
    /// `<hex>.json`, legacy.
    Legacy,
    Blob,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Tag {
    Valid(u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Extra {
    File(String, Vec<u8>),
    Symlink(String, String),
    Hardlink(String, String),
    Directory(String),
    /// `repositories` of a pre-1.10 archive: (repository, tag, id of the top layer).
    Repositories(Vec<(String, String, u8)>),
    /// `<id>/json` of a pre-1.10 archive, naming its parent layer.
    V1Json { id: u8, parent: Option<u8> },
}

/// One tar member.
enum Member {
    File(String, Vec<u8>),
    Symlink(String, String),
    Hardlink(String, String),
    Directory(String),
}

fuzz_target!(|spec: ArchiveSpec| {
    let archive = wrap(spec.compression, &tar(&members(&spec)));
    let choice = match &spec.choice {
        Choice::All => ImageChoice::All,
        Choice::Tag(tag) => ImageChoice::Tag(tag_text(tag)),
        Choice::Index(index) => ImageChoice::Index(usize::from(*index)),
    };
    let options = ImportOptions { choice, ..ImportOptions::default() };

    let (_dir, engine) = fresh_store();
    let result = engine.import_docker_archive(&archive[..], &options);
    check_import(&engine, &result);

    if let Codec::Plain = spec.compression {
        let (dir, engine) = fresh_store();
        let path = dir.path().join("archive.tar");
        std::fs::write(&path, &archive).expect("the archive file is writable");
        let result = engine.import_docker_archive_file(&path, &options);
        check_import(&engine, &result);
    }
});

fn members(spec: &ArchiveSpec) -> Vec<Member> {
    let mut members = Vec::new();
    let mut layer_names = Vec::new();
    for layer in &spec.layers {
        let bytes = wrap(layer.compression, &layer.content);
        let name = match &layer.name {
            LayerName::Legacy(id) => format!("{id:02x}/layer.tar"),
            LayerName::Blob => format!("blobs/sha256/{}", sha256(&bytes).hex()),
            LayerName::Raw(name) => name.clone(),
        };
        layer_names.push(name.clone());
        members.push(Member::File(name, bytes));
    }
    let mut items = Vec::new();
    for (number, image) in spec.images.iter().enumerate() {
        let chosen: Vec<usize> = if spec.layers.is_empty() {
            Vec::new()
        } else {
            image.layers.iter().map(|i| usize::from(*i) % spec.layers.len()).collect()
        };
        let mut diff_ids: Vec<String> = chosen.iter().map(|i| sha256(&spec.layers[*i].content).to_string()).collect();
        if let Some(wrong) = image.wrong_diff_id
            && !diff_ids.is_empty()
        {
            let index = usize::from(wrong) % diff_ids.len();
            diff_ids[index] = sha256(diff_ids[index].as_bytes()).to_string();
        }
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": image.architecture,
            "os": image.os,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .expect("a config serializes");
        let config_name = match &image.config_name {
            ConfigName::Legacy => format!("{}.json", sha256(&config).hex()),
            ConfigName::Blob => format!("blobs/sha256/{}", sha256(&config).hex()),
            ConfigName::Raw(name) => name.clone(),
        };
        members.push(Member::File(config_name.clone(), config));
        let mut layers = Vec::new();
        for (position, layer) in chosen.iter().enumerate() {
            let name = layer_names[*layer].clone();
            if image.layers_through_links {
                let link = format!("links/{number}/{position}.tar");
                members.push(Member::Symlink(link.clone(), format!("../../{name}")));
                layers.push(link);
            } else {
                layers.push(name);
            }
        }
        let repo_tags = image.repo_tags.iter().map(tag_text).collect();
        items.push(ManifestItem {
            config: config_name,
            repo_tags,
            layers,
            parent: String::new(),
            layer_sources: Default::default(),
        });
    }
    for extra in &spec.extras {
        members.push(match extra {
            Extra::File(name, bytes) => Member::File(name.clone(), bytes.clone()),
            Extra::Symlink(name, target) => Member::Symlink(name.clone(), target.clone()),
            Extra::Hardlink(name, target) => Member::Hardlink(name.clone(), target.clone()),
            Extra::Directory(name) => Member::Directory(name.clone()),
            Extra::Repositories(tags) => {
                let mut repositories = serde_json::Map::new();
                for (repository, tag, id) in tags {
                    let entry = repositories.entry(repository.clone()).or_insert_with(|| serde_json::json!({}));
                    entry[tag.as_str()] = serde_json::Value::String(format!("{id:02x}"));
                }
                let bytes = serde_json::to_vec(&repositories).expect("repositories serialize");
                Member::File("repositories".to_owned(), bytes)
            }
            Extra::V1Json { id, parent } => {
                let mut json = serde_json::json!({"id": format!("{id:02x}"), "os": "linux", "architecture": "amd64"});
                if let Some(parent) = parent {
                    json["parent"] = serde_json::Value::String(format!("{parent:02x}"));
                }
                let bytes = serde_json::to_vec(&json).expect("a v1 json serializes");
                Member::File(format!("{id:02x}/json"), bytes)
            }
        });
    }
    if !spec.images.is_empty() {
        let manifest = Member::File("manifest.json".to_owned(), serde_json::to_vec(&items).expect("items serialize"));
        if spec.manifest_first {
            members.insert(0, manifest);
        } else {
            members.push(manifest);
        }
    }
    members
}

fn tag_text(tag: &Tag) -> String {
    match tag {
        Tag::Valid(n) => format!("example/app:{n}"),
        Tag::Raw(tag) => tag.clone(),
    }
}

/// A tar of `members`, names and link targets written raw (cut to the 100 bytes a header
/// holds), so that `../x` and `/abs` reach the reader as the fuzzer chose them.
fn tar(members: &[Member]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for member in members {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_mtime(0);
        let (name, target, kind, data): (&str, &str, _, &[u8]) = match member {
            Member::File(name, data) => (name, "", tar::EntryType::Regular, data),
            Member::Symlink(name, target) => (name, target, tar::EntryType::Symlink, &[]),
            Member::Hardlink(name, target) => (name, target, tar::EntryType::Link, &[]),
            Member::Directory(name) => (name, "", tar::EntryType::Directory, &[]),
        };
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        let gnu = header.as_gnu_mut().expect("a GNU header");
        copy_truncated(&mut gnu.name, name);
        copy_truncated(&mut gnu.linkname, target);
        header.set_cksum();
        builder.append(&header, data).expect("a tar into memory");
    }
    builder.into_inner().expect("a tar into memory")
}

fn copy_truncated(field: &mut [u8; 100], text: &str) {
    let len = text.len().min(field.len());
    field[..len].copy_from_slice(&text.as_bytes()[..len]);
}

fn wrap(codec: Codec, bytes: &[u8]) -> Vec<u8> {
    match codec {
        Codec::Plain => bytes.to_vec(),
        Codec::Gzip => {
            let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gzip.write_all(bytes).expect("gzip into memory");
            gzip.finish().expect("gzip into memory")
        }
        Codec::Zstd => zstd::encode_all(bytes, 1).expect("zstd into memory"),
    }
}
