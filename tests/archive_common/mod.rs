//! Crafted docker-archives for the archive tests.
#![allow(dead_code)] // each test file uses its own part

use ocicas::{Algorithm, Digest, Engine};

/// Builds a tar from (name, kind) members.
pub enum Member<'a> {
    File(&'a str, Vec<u8>),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

pub fn tar(members: &[Member]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for member in members {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_mtime(0);
        match member {
            Member::File(name, data) => {
                header.set_size(data.len() as u64);
                header.set_entry_type(tar::EntryType::Regular);
                // Raw names, so "../x" and "/abs" reach the archive as written.
                header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
                header.set_cksum();
                builder.append(&header, &data[..]).unwrap();
            }
            Member::Symlink(name, target) | Member::Hardlink(name, target) => {
                header.set_size(0);
                let kind =
                    if matches!(member, Member::Symlink(..)) { tar::EntryType::Symlink } else { tar::EntryType::Link };
                header.set_entry_type(kind);
                header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
                header.as_gnu_mut().unwrap().linkname[..target.len()].copy_from_slice(target.as_bytes());
                header.set_cksum();
                builder.append(&header, std::io::empty()).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

/// A valid one-image legacy archive's parts: (layer tar, config JSON, its digest hex).
pub fn image_parts() -> (Vec<u8>, Vec<u8>, String) {
    let layer = tar(&[Member::File("hello.txt", b"hello\n".to_vec())]);
    let diff_id = Digest::of_bytes(Algorithm::Sha256, &layer);
    let config =
        format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#)
            .into_bytes();
    let config_hex = Digest::of_bytes(Algorithm::Sha256, &config).hex().to_owned();
    (layer, config, config_hex)
}

pub fn manifest_json(config: &str, layers: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!([{ "Config": config, "RepoTags": ["example/app:1"], "Layers": layers }]))
        .unwrap()
}

pub fn store() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::create(dir.path().join("layout")).unwrap();
    (dir, engine)
}
