//! Crafted docker-archives for the archive tests.
#![allow(dead_code)] // each test file uses its own part

use ocicas::{Algorithm, Digest, Engine};

use crate::common::cli::{OCICAS, proc_value};

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

/// A tar header block of a regular member.
pub fn tar_header(name: &str, size: u64) -> [u8; 512] {
    let mut header = tar::Header::new_gnu();
    header.set_path(name).unwrap();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    *header.as_bytes()
}

/// Zeros that pad `size` bytes of a member to a whole block.
pub fn tar_padding(size: u64) -> Vec<u8> {
    vec![0; ((512 - size % 512) % 512) as usize]
}

/// Writes a member of `size` bytes, all `byte`, without holding it in memory.
pub fn write_filled_member(out: &mut (impl std::io::Write + ?Sized), name: &str, size: u64, byte: u8) {
    out.write_all(&tar_header(name, size)).unwrap();
    let chunk = vec![byte; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        out.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    out.write_all(&tar_padding(size)).unwrap();
}

/// What `run_watched` saw of one run of the `ocicas` binary.
pub struct Watched {
    pub output: std::process::Output,
    /// Peak resident memory (VmHWM), KiB.
    pub peak_rss_kib: u64,
    /// Bytes the process read through read(2) and pread(2) (rchar of /proc/PID/io).
    pub read_bytes: u64,
    /// Largest total size of the files under the watched directory while it ran.
    pub peak_dir_bytes: u64,
}

/// Runs `ocicas ARGS` and samples its memory, what it read and the size of `dir` until it exits.
pub fn run_watched(args: &[&str], dir: &std::path::Path) -> Watched {
    use std::process::{Command, Stdio};
    let mut child = Command::new(OCICAS).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let (mut peak_rss_kib, mut read_bytes, mut peak_dir_bytes) = (0, 0, 0);
    while child.try_wait().unwrap().is_none() {
        peak_rss_kib = peak_rss_kib.max(proc_value(pid, "status", "VmHWM:").unwrap_or(0));
        read_bytes = read_bytes.max(proc_value(pid, "io", "rchar:").unwrap_or(0));
        peak_dir_bytes = peak_dir_bytes.max(dir_bytes(dir));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    assert!(peak_rss_kib > 0, "could not read the child's memory use");
    Watched { output, peak_rss_kib, read_bytes, peak_dir_bytes }
}

/// Total size of the regular files under `dir`.
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    file_sizes(dir).iter().sum()
}

/// The sizes of the regular files under `dir` (links not followed; vanishing files skipped).
pub fn file_sizes(dir: &std::path::Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(|e| e.ok())
        .flat_map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => file_sizes(&entry.path()),
            Ok(kind) if kind.is_file() => vec![entry.metadata().map_or(0, |m| m.len())],
            _ => Vec::new(),
        })
        .collect()
}

/// The blobs, ingests and leases a layout holds: what a refused or finished import left.
pub fn leftovers(engine: &Engine) -> (Vec<Digest>, usize, usize) {
    let ingests = engine.ingest_list(&ocicas::Filters::parse::<&str>(&[]).unwrap()).unwrap().len();
    (engine.list_blobs().unwrap(), ingests, engine.lease_list().unwrap().len())
}

/// A pre-1.10 `docker save` archive: no manifest.json, only `repositories` and per-layer
/// `<id>/json` files chained by `parent`.
pub fn pre_1_10_archive(base_parent: Option<&str>) -> Vec<u8> {
    let (base_id, top_id) = ("a".repeat(64), "b".repeat(64));
    let mut base_json = serde_json::json!({"id": base_id, "created": "2015-01-01T00:00:00Z",
        "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ADD file"]}, "os": "linux"});
    if let Some(parent) = base_parent {
        base_json["parent"] = parent.into();
    }
    let top_json = serde_json::json!({"id": top_id, "parent": base_id, "created": "2015-01-02T00:00:00Z",
        "config": {"Cmd": ["/app"]}, "architecture": "amd64", "os": "linux", "Size": 5});
    tar(&[
        Member::File(&format!("{base_id}/VERSION"), b"1.0".to_vec()),
        Member::File(&format!("{base_id}/json"), serde_json::to_vec(&base_json).unwrap()),
        Member::File(&format!("{base_id}/layer.tar"), tar(&[Member::File("base.txt", b"base\n".to_vec())])),
        Member::File(&format!("{top_id}/json"), serde_json::to_vec(&top_json).unwrap()),
        Member::File(&format!("{top_id}/layer.tar"), tar(&[Member::File("app", b"app\n".to_vec())])),
        Member::File(
            "repositories",
            format!(r#"{{"example/old":{{"1":"{top_id}","latest":"{top_id}"}}}}"#).into_bytes(),
        ),
    ])
}
