//! Property test of confinement: random small layouts with symlinks, FIFOs, sockets and (as
//! root) devices planted at random places inside them, then every CLI command that touches a
//! layout, each under a deadline. A sentinel directory beside the layout, which every link
//! points into, must come out byte for byte unchanged; no command may hang or panic.

use crate::common;
use crate::layout_common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::cli::{ended_normally, ocicas, ocicas_watched};
use common::rng::Rng;
use layout_common::snapshot;
use ocicas::spec::{MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_MANIFEST};
use ocicas::{Descriptor, Engine, LeaseResource, WriterOptions};

/// Layouts tried; each gets one to three plants, drawn from a fixed seed so that a failure
/// names a layout that can be rebuilt.
const LAYOUTS: u64 = 40;

#[derive(Debug, Clone, Copy)]
enum Plant {
    LinkToDir,
    LinkToFile,
    DanglingLink,
    Fifo,
    Socket,
    /// A character device (/dev/null's numbers), when running as root.
    Device,
}

const PLANTS: [Plant; 6] =
    [Plant::LinkToDir, Plant::LinkToFile, Plant::DanglingLink, Plant::Fifo, Plant::Socket, Plant::Device];

/// A tagged one-layer image, garbage, a labelled blob, a closed ingest and a lease.
fn populate(layout: &Path) -> Descriptor {
    let engine = Engine::create(layout).unwrap();
    let layer = engine.put_blob(b"layer bytes").unwrap();
    let layer = Descriptor::new("application/vnd.oci.image.layer.v1.tar", layer.digest, layer.size);
    let config = serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest.to_string()]}});
    let config = engine.put_json(MEDIA_TYPE_IMAGE_CONFIG, &config).unwrap();
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
        "config": config, "layers": [layer]});
    let manifest = engine.put_json(MEDIA_TYPE_IMAGE_MANIFEST, &manifest).unwrap();
    engine.ref_put("app", &manifest, false).unwrap();
    let garbage = engine.put_blob(b"garbage").unwrap();
    engine.update_labels(&garbage.digest, &[("k".to_owned(), "v".to_owned())].into(), &[]).unwrap();
    let mut writer = engine.writer("upload", &WriterOptions::default()).unwrap();
    writer.write(b"partial").unwrap();
    writer.close().unwrap();
    let lease = engine.lease_new(Some("held"), None).unwrap();
    engine.lease_add(&lease.id, LeaseResource::Blob(garbage.digest)).unwrap();
    manifest
}

/// Every path in the layout, and the private paths that may not exist yet.
fn sites(layout: &Path) -> Vec<PathBuf> {
    let mut sites: Vec<PathBuf> =
        [".ocicas/lock", ".ocicas/tmp", ".ocicas/tmp/x", ".ocicas/leases/new"].iter().map(|p| layout.join(p)).collect();
    let mut pending = vec![layout.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                pending.push(path.clone());
            }
            sites.push(path);
        }
    }
    sites.sort();
    sites.dedup();
    sites
}

/// Whether every directory from `layout` down to `site`'s parent that exists is a real one.
fn beneath_real_directories(layout: &Path, site: &Path) -> bool {
    site.ancestors()
        .skip(1)
        .take_while(|dir| dir.starts_with(layout))
        .all(|dir| std::fs::symlink_metadata(dir).map_or(true, |meta| meta.is_dir()))
}

fn plant(site: &Path, plant: Plant, sentinel: &Path) {
    match std::fs::symlink_metadata(site) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(site).unwrap(),
        Ok(_) => std::fs::remove_file(site).unwrap(),
        Err(_) => std::fs::create_dir_all(site.parent().unwrap()).unwrap(),
    }
    match plant {
        Plant::LinkToDir => symlink(sentinel, site).unwrap(),
        Plant::LinkToFile => symlink(sentinel.join("file"), site).unwrap(),
        Plant::DanglingLink => symlink(sentinel.join("missing"), site).unwrap(),
        Plant::Fifo => rustix::fs::mknodat(
            rustix::fs::CWD,
            site,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o666),
            0,
        )
        .unwrap(),
        Plant::Socket => {
            // Bound at a short path (sockets' paths are limited to ~108 bytes), then moved.
            let short = sentinel.parent().unwrap().join("s");
            drop(std::os::unix::net::UnixListener::bind(&short).unwrap());
            std::fs::rename(&short, site).unwrap();
        }
        Plant::Device => {
            let null = rustix::fs::makedev(1, 3);
            let mode = rustix::fs::Mode::from_raw_mode(0o666);
            if rustix::fs::mknodat(rustix::fs::CWD, site, rustix::fs::FileType::CharacterDevice, mode, null).is_err() {
                // Not root: a FIFO instead.
                rustix::fs::mknodat(rustix::fs::CWD, site, rustix::fs::FileType::Fifo, mode, 0).unwrap();
            }
        }
    }
}

/// Runs one command with `input` as stdin; panics when it hangs, dies of a signal or panics.
fn run(args: &[&str], input: &[u8], what: &str) {
    let run = ocicas_watched(args, input);
    assert!(
        ended_normally(run.code) && !run.stderr.contains("panicked"),
        "{what}: `ocicas {}` ended with {:?}: {}",
        args.join(" "),
        run.code,
        run.stderr
    );
}

#[test]
fn planted_links_and_special_files_never_lead_a_command_outside_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let sentinel = dir.path().join("sentinel");
    std::fs::create_dir_all(sentinel.join("sub")).unwrap();
    std::fs::write(sentinel.join("file"), b"outside").unwrap();
    std::fs::write(sentinel.join("sub/data"), b"deep").unwrap();
    std::fs::write(sentinel.join("lock"), b"").unwrap();
    // Inputs for the commands that read one: a tar and a docker-archive.
    let input = dir.path().join("input.tar");
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(5);
    header.set_mode(0o644);
    tar.append_data(&mut header, "hello.txt", &b"hello"[..]).unwrap();
    let input_bytes = tar.into_inner().unwrap();
    std::fs::write(&input, &input_bytes).unwrap();
    let source = dir.path().join("source");
    populate(&source);
    let archive = dir.path().join("archive.tar");
    ocicas(&["docker-archive", "export", source.to_str().unwrap(), "app", "-o", archive.to_str().unwrap()]);
    let before = snapshot(&sentinel);

    let mut rng = Rng(0x0c1c_a5f0_0d15_ea5e);
    for n in 0..LAYOUTS {
        let layout = dir.path().join(format!("layout-{n}"));
        let manifest = populate(&layout);
        let candidates = sites(&layout);
        let mut planted = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let site = rng.pick(&candidates).clone();
            let kind = *rng.pick(&PLANTS);
            // Planting beneath an earlier plant would go through its link into the sentinel.
            if beneath_real_directories(&layout, &site) {
                plant(&site, kind, &sentinel);
                planted.push((site, kind));
            }
        }
        let what = format!("layout {n} with {planted:?}");
        let l = layout.to_str().unwrap();
        let digest = manifest.digest.to_string();
        let commands: Vec<Vec<&str>> = vec![
            vec!["fsck", l],
            vec!["ref", "ls", l],
            vec!["ref", "put", l, "other", &digest],
            vec!["blob", "ls", l],
            vec!["blob", "get", l, &digest],
            vec!["blob", "info", l, &digest],
            vec!["blob", "put", l, "-"],
            vec!["blob", "put", l, "-", "--ref", "upload"],
            vec!["ingest", "ls", l],
            vec!["ingest", "abort", l, "upload"],
            vec!["lease", "ls", l],
            vec!["layer", l, input.to_str().unwrap()],
            vec!["append", l, "app", "--tar", input.to_str().unwrap()],
            vec!["docker-archive", "import", l, archive.to_str().unwrap()],
            vec!["blob", "rm", l, &digest],
            vec!["ref", "rm", l, "app"],
            vec!["gc", l, "--ingest-expiry", "0s"],
            vec!["fsck", l],
        ];
        for args in &commands {
            run(args, &input_bytes, &what);
            assert_eq!(snapshot(&sentinel), before, "{what}: `ocicas {}` changed the sentinel", args.join(" "));
        }
    }
}
