//! `Engine::open_layer`: a stored layer read as its uncompressed tar. Layers made by our own
//! stream, by umoci (gzip) and by the `zstd` program read back as exactly their tar, which for
//! umoci's image is the tree `umoci unpack` makes. Then the attacks: a blob tampered with,
//! truncated, or with bytes after its stream, a wrong DiffID, gzip and zstd bombs, a zstd frame
//! asking for a huge window, media types that are not layers', and a blob path planted as a
//! symlink or a FIFO. None of them ever ends cleanly.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use common::child::{child, child_engine, role};
use common::cli::{proc_value, run, s};
use common::fixture::store;
use common::peers::peers_available;
use common::rng::Rng;
use ocicas::stream::{Compression, CompressionOptions, LayerStream, MediaTypeStyle, StorageOptions};
use ocicas::{Algorithm, Digest, Document, Engine, ErrorKind, LayerDescriptor, UncompressedLayerReader};

const OCI_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// A tar of a small tree: a directory, text, random bytes past a few read buffers, an empty
/// file and a symlink.
fn sample_tar() -> Vec<u8> {
    let mut rng = Rng(21);
    let mut builder = tar::Builder::new(Vec::new());
    let mut append = |path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(if kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
        header.set_mtime(1_700_000_000);
        if let Some(target) = link {
            header.set_link_name(target).unwrap();
        }
        builder.append_data(&mut header, path, data).unwrap();
    };
    append("etc/", tar::EntryType::Directory, b"", None);
    append("etc/hostname", tar::EntryType::Regular, b"layer-reader\n", None);
    append("etc/random.bin", tar::EntryType::Regular, &rng.bytes(700 << 10), None);
    append("etc/empty", tar::EntryType::Regular, b"", None);
    append("etc/link", tar::EntryType::Symlink, b"", Some("hostname"));
    builder.into_inner().unwrap()
}

fn sha256(bytes: &[u8]) -> Digest {
    Digest::of_bytes(Algorithm::Sha256, bytes)
}

/// Streams `tar` into the store as a layer with `compression` in `style`.
fn stream_layer(engine: &Engine, tar: &[u8], compression: Compression, style: MediaTypeStyle) -> LayerDescriptor {
    let options = CompressionOptions { compression, style, threads: 2, ..CompressionOptions::default() };
    let mut stream = LayerStream::new(engine, &options, &StorageOptions::default()).unwrap();
    stream.write(tar).unwrap();
    stream.finish().unwrap()
}

/// Stores `blob` as it is and describes it as a layer of `media_type` whose tar is `tar`.
fn stored_layer(engine: &Engine, media_type: &str, blob: &[u8], tar: &[u8]) -> LayerDescriptor {
    let stored = engine.put_blob(blob).unwrap();
    LayerDescriptor {
        media_type: media_type.to_owned(),
        digest: stored.digest,
        size: stored.size,
        diff_id: sha256(tar),
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// `bytes` compressed by the `zstd` program.
fn zstd_program(bytes: &[u8], dir: &Path) -> Vec<u8> {
    let input = dir.join("input.tar");
    std::fs::write(&input, bytes).unwrap();
    let output = dir.join("input.tar.zst");
    run("zstd", &["-q", "-3", "-f", s(&input), "-o", s(&output)]);
    std::fs::read(&output).unwrap()
}

/// Reads the layer to its end with reads of `chunk` bytes: the bytes, or the first error with
/// the bytes before it. Panics when anything follows an error or the end but the same again.
fn read_all(reader: &mut UncompressedLayerReader, chunk: usize) -> (Vec<u8>, Option<ocicas::Error>) {
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        match reader.read_chunk(&mut buf) {
            Ok(0) => {
                assert_eq!(reader.read_chunk(&mut buf).unwrap(), 0, "the end is given again");
                return (bytes, None);
            }
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(err) => {
                let again = reader.read_chunk(&mut buf).expect_err("a failed reader stays failed");
                assert_eq!((again.kind(), again.message()), (err.kind(), err.message()));
                return (bytes, Some(err));
            }
        }
    }
}

/// Reads the whole layer, which must succeed, and checks it is `tar`.
fn assert_reads_as(engine: &Engine, layer: &LayerDescriptor, tar: &[u8]) {
    for chunk in [1 << 20, 4093] {
        let mut reader = engine.open_layer(layer).unwrap();
        let (bytes, failure) = read_all(&mut reader, chunk);
        assert!(failure.is_none(), "{}: {failure:?}", layer.media_type);
        assert_eq!(Digest::of_bytes(layer.diff_id.algorithm(), &bytes), layer.diff_id, "{}", layer.media_type);
        assert!(bytes == tar, "{}: the bytes are not the tar", layer.media_type);
    }
}

/// Reads the layer, which must fail with `kind` and never reach a clean end.
fn assert_fails_with(engine: &Engine, layer: &LayerDescriptor, kind: ErrorKind) -> ocicas::Error {
    let mut reader = engine.open_layer(layer).unwrap();
    let (_, failure) = read_all(&mut reader, 64 << 10);
    let err = failure.unwrap_or_else(|| panic!("{}: read to a clean end", layer.media_type));
    assert_eq!(err.kind(), kind, "{}: {}", layer.media_type, err.message());
    err
}

fn blob_file(engine: &Engine, digest: &Digest) -> std::path::PathBuf {
    engine.root().join("blobs").join(digest.algorithm().name()).join(digest.hex())
}

#[test]
fn layers_streamed_by_ocicas_read_back_as_their_tar_in_every_compression_and_style() {
    let (_dir, engine) = store();
    let tar = sample_tar();
    for (compression, style) in [
        (Compression::Gzip(6), MediaTypeStyle::Oci),
        (Compression::Gzip(0), MediaTypeStyle::Oci),
        (Compression::Zstd(3), MediaTypeStyle::Oci),
        (Compression::None, MediaTypeStyle::Oci),
        (Compression::Gzip(6), MediaTypeStyle::Docker),
        (Compression::None, MediaTypeStyle::Docker),
    ] {
        let layer = stream_layer(&engine, &tar, compression, style);
        assert_reads_as(&engine, &layer, &tar);
    }
}

#[test]
fn nondistributable_and_foreign_media_types_are_read_as_their_compression() {
    let (dir, engine) = store();
    let tar = sample_tar();
    let cases = [
        ("application/vnd.oci.image.layer.nondistributable.v1.tar", tar.clone()),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", gzip(&tar)),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", zstd_program(&tar, dir.path())),
        ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", gzip(&tar)),
    ];
    for (media_type, blob) in cases {
        assert_reads_as(&engine, &stored_layer(&engine, media_type, &blob, &tar), &tar);
    }
}

#[test]
fn a_zstd_layer_made_by_the_zstd_program_reads_back_as_its_tar() {
    if !peers_available(&["zstd"]) {
        return;
    }
    let (dir, engine) = store();
    let tar = sample_tar();
    assert_reads_as(&engine, &stored_layer(&engine, OCI_ZSTD, &zstd_program(&tar, dir.path()), &tar), &tar);
}

#[test]
fn concatenated_gzip_members_and_zstd_frames_read_as_one_tar() {
    let (dir, engine) = store();
    let tar = sample_tar();
    let (head, tail) = tar.split_at(300 << 10);
    let members = [gzip(head), gzip(tail)].concat();
    assert_reads_as(&engine, &stored_layer(&engine, OCI_GZIP, &members, &tar), &tar);
    let frames = [zstd_program(head, dir.path()), zstd_program(tail, dir.path())].concat();
    assert_reads_as(&engine, &stored_layer(&engine, OCI_ZSTD, &frames, &tar), &tar);
}

#[test]
fn a_diff_id_in_sha512_is_checked_in_sha512() {
    let (_dir, engine) = store();
    let tar = sample_tar();
    let mut layer = stored_layer(&engine, OCI_GZIP, &gzip(&tar), &tar);
    layer.diff_id = Digest::of_bytes(Algorithm::Sha512, &tar);
    assert_reads_as(&engine, &layer, &tar);
}

/// A regular file's size and content, or another entry's kind, by path relative to the root.
type Tree = BTreeMap<String, String>;

fn entry_summary(kind: &str, content: &[u8]) -> String {
    format!("{kind} {} {}", content.len(), sha256(content))
}

/// The entries of the tars of `layers`, in order (later layers replace earlier entries).
fn tree_of_layers(engine: &Engine, layers: &[LayerDescriptor]) -> Tree {
    let mut tree = Tree::new();
    for layer in layers {
        let mut reader = engine.open_layer(layer).unwrap();
        let mut tar = Vec::new();
        reader.read_to_end(&mut tar).unwrap();
        assert_eq!(sha256(&tar), layer.diff_id);
        // umoci 0.4.7 ends its tars after the last file's bytes, without their padding and the
        // two zero blocks (GNU tar says "Unexpected EOF in archive"); its DiffID is of those
        // bytes. Completed here so the tar crate lists the last entry.
        tar.resize(tar.len().next_multiple_of(512) + 1024, 0);
        let mut archive = tar::Archive::new(&tar[..]);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path =
                entry.path().unwrap().to_string_lossy().trim_start_matches("./").trim_end_matches('/').to_owned();
            if path.is_empty() || path == "." {
                continue;
            }
            assert!(!path.rsplit('/').next().unwrap().starts_with(".wh."), "no whiteouts expected: {path}");
            let summary = match entry.header().entry_type() {
                tar::EntryType::Regular => {
                    let mut content = Vec::new();
                    entry.read_to_end(&mut content).unwrap();
                    entry_summary("file", &content)
                }
                tar::EntryType::Directory => "dir".to_owned(),
                tar::EntryType::Symlink => format!("symlink {}", entry.link_name().unwrap().unwrap().display()),
                other => format!("{other:?}"),
            };
            tree.insert(path, summary);
        }
    }
    tree
}

/// The tree under `root`, as `tree_of_layers` describes entries.
fn tree_on_disk(root: &Path) -> Tree {
    let mut tree = Tree::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let summary = if meta.is_dir() {
                dirs.push(path.clone());
                "dir".to_owned()
            } else if meta.file_type().is_symlink() {
                format!("symlink {}", std::fs::read_link(&path).unwrap().display())
            } else {
                entry_summary("file", &std::fs::read(&path).unwrap())
            };
            tree.insert(name, summary);
        }
    }
    tree
}

#[test]
fn the_layers_of_an_image_umoci_made_are_the_tree_umoci_unpacks() {
    if !peers_available(&["umoci"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let image = format!("{}:app", s(&layout));
    let mut rng = Rng(7);
    let first = dir.path().join("first");
    std::fs::create_dir_all(first.join("bin/sub")).unwrap();
    std::fs::write(first.join("bin/tool"), rng.bytes(300 << 10)).unwrap();
    std::fs::write(first.join("bin/sub/readme"), b"umoci layer one\n").unwrap();
    std::fs::write(first.join("bin/empty"), b"").unwrap();
    std::os::unix::fs::symlink("tool", first.join("bin/alias")).unwrap();
    let second = dir.path().join("second");
    std::fs::create_dir_all(&second).unwrap();
    std::fs::write(second.join("config.json"), br#"{"layer": 2}"#).unwrap();
    run("umoci", &["init", "--layout", s(&layout)]);
    run("umoci", &["new", "--image", &image]);
    run("umoci", &["insert", "--image", &image, s(&first), "/opt"]);
    run("umoci", &["insert", "--image", &image, s(&second), "/etc/app"]);
    // A third layer by `umoci repack`: a file added to an unpacked tree.
    let work = dir.path().join("work");
    run("umoci", &["unpack", "--rootless", "--image", &image, s(&work)]);
    std::fs::create_dir_all(work.join("rootfs/srv")).unwrap();
    std::fs::write(work.join("rootfs/srv/added"), rng.bytes(70 << 10)).unwrap();
    run("umoci", &["repack", "--image", &image, s(&work)]);
    let bundle = dir.path().join("bundle");
    run("umoci", &["unpack", "--rootless", "--image", &image, s(&bundle)]);

    let engine = Engine::open(&layout, &ocicas::OpenOptions::default()).unwrap();
    let Document::Manifest(manifest) = engine.read_document(&engine.ref_get("app").unwrap()).unwrap() else {
        panic!("app is not a manifest")
    };
    let Document::Config(config) = engine.read_document(&manifest.config).unwrap() else { panic!("not a config") };
    assert_eq!(manifest.layers.len(), 3);
    let layers: Vec<LayerDescriptor> = manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .map(|(layer, diff_id)| {
            assert_eq!(layer.media_type, OCI_GZIP, "umoci writes gzip layers");
            LayerDescriptor {
                media_type: layer.media_type.clone(),
                digest: layer.digest.clone(),
                size: layer.size,
                diff_id: diff_id.clone(),
            }
        })
        .collect();
    let from_layers = tree_of_layers(&engine, &layers);
    let unpacked = tree_on_disk(&bundle.join("rootfs"));
    for path in ["opt/bin/tool", "etc/app/config.json", "srv/added"] {
        assert!(from_layers.contains_key(path), "{path} is in no layer");
    }
    // umoci makes the parents of an inserted path without putting them in the layer (`etc`).
    let implied: Vec<&String> = unpacked.keys().filter(|path| !from_layers.contains_key(*path)).collect();
    for path in &implied {
        assert_eq!(unpacked[*path], "dir", "{path} is unpacked but in no layer");
        assert!(from_layers.keys().any(|entry| entry.starts_with(&format!("{path}/"))), "{path} is implied by nothing");
    }
    assert_eq!(implied, ["etc"]);
    let unpacked_from_layers: Tree = unpacked.into_iter().filter(|(path, _)| from_layers.contains_key(path)).collect();
    assert_eq!(from_layers, unpacked_from_layers);
}

#[test]
fn a_tampered_byte_in_the_blob_is_a_digest_mismatch_never_a_clean_end() {
    let (dir, engine) = store();
    let tar = sample_tar();
    let layers = [
        stream_layer(&engine, &tar, Compression::Gzip(6), MediaTypeStyle::Oci),
        stream_layer(&engine, &tar, Compression::Zstd(3), MediaTypeStyle::Oci),
        stream_layer(&engine, &tar, Compression::None, MediaTypeStyle::Oci),
        // Stored blocks: the flipped byte is a byte of the tar, which inflates without error.
        stream_layer(&engine, &tar, Compression::Gzip(0), MediaTypeStyle::Oci),
        stored_layer(&engine, OCI_ZSTD, &zstd_program(&tar, dir.path()), &tar),
    ];
    for layer in layers {
        let path = blob_file(&engine, &layer.digest);
        let mut bytes = std::fs::read(&path).unwrap();
        for offset in [layer.size as usize / 2, layer.size as usize - 1] {
            bytes[offset] ^= 0x40;
            std::fs::remove_file(&path).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            let err = assert_fails_with(&engine, &layer, ErrorKind::DigestMismatch);
            assert!(err.message().contains(&layer.digest.to_string()), "{}", err.message());
            bytes[offset] ^= 0x40;
        }
    }
}

#[test]
fn a_blob_truncated_in_the_store_is_refused_at_open() {
    let (_dir, engine) = store();
    let tar = sample_tar();
    let layer = stream_layer(&engine, &tar, Compression::Gzip(6), MediaTypeStyle::Oci);
    let path = blob_file(&engine, &layer.digest);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    assert_eq!(engine.open_layer(&layer).err().unwrap().kind(), ErrorKind::SizeMismatch);
    let mut longer = layer.clone();
    longer.size += 1;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(engine.open_layer(&longer).err().unwrap().kind(), ErrorKind::SizeMismatch);
}

#[test]
fn a_truncated_compressed_stream_stored_under_its_own_digest_never_ends_cleanly() {
    let (dir, engine) = store();
    let tar = sample_tar();
    let gzipped = gzip(&tar);
    let zstded = zstd_program(&tar, dir.path());
    for cut in [1, 8, 100, gzipped.len() / 2] {
        let layer = stored_layer(&engine, OCI_GZIP, &gzipped[..gzipped.len() - cut], &tar);
        assert_fails_with(&engine, &layer, ErrorKind::InvalidImage);
    }
    for cut in [1, 4, 100, zstded.len() / 2] {
        let layer = stored_layer(&engine, OCI_ZSTD, &zstded[..zstded.len() - cut], &tar);
        assert_fails_with(&engine, &layer, ErrorKind::InvalidImage);
    }
    let layer = stored_layer(&engine, OCI_TAR, &tar[..tar.len() - 512], &tar);
    assert_fails_with(&engine, &layer, ErrorKind::DigestMismatch);
    for empty in [OCI_GZIP, OCI_ZSTD] {
        assert_fails_with(&engine, &stored_layer(&engine, empty, b"", &tar), ErrorKind::InvalidImage);
    }
}

#[test]
fn a_wrong_diff_id_fails_the_read_that_reaches_the_end_and_no_read_before_it() {
    let (_dir, engine) = store();
    let tar = sample_tar();
    for compression in [Compression::Gzip(6), Compression::Zstd(3), Compression::None] {
        let mut layer = stream_layer(&engine, &tar, compression, MediaTypeStyle::Oci);
        layer.diff_id = sha256(b"another tar");
        let mut reader = engine.open_layer(&layer).unwrap();
        let (bytes, failure) = read_all(&mut reader, 4096);
        assert!(bytes == tar, "every byte of the tar came before the failure");
        let err = failure.expect("a wrong DiffID never ends cleanly");
        assert_eq!(err.kind(), ErrorKind::DigestMismatch, "{}", err.message());
        assert!(err.message().contains(&layer.diff_id.to_string()), "{}", err.message());
        // Through std's Read, the error is carried whole.
        let mut reader = engine.open_layer(&layer).unwrap();
        let err = reader.read_to_end(&mut Vec::new()).unwrap_err();
        let inner = err.into_inner().unwrap().downcast::<ocicas::Error>().unwrap();
        assert_eq!(inner.kind(), ErrorKind::DigestMismatch);
    }
}

#[test]
fn bytes_after_the_compressed_stream_are_refused_even_under_the_blobs_own_digest() {
    let (dir, engine) = store();
    let tar = sample_tar();
    for (media_type, compressed) in [(OCI_GZIP, gzip(&tar)), (OCI_ZSTD, zstd_program(&tar, dir.path()))] {
        for trailing in [&b"garbage"[..], &[0u8; 1024][..], &[0x1f, 0x8b][..], &[0x28, 0xb5, 0x2f, 0xfd][..]] {
            let layer = stored_layer(&engine, media_type, &[&compressed[..], trailing].concat(), &tar);
            assert_fails_with(&engine, &layer, ErrorKind::InvalidImage);
        }
    }
}

#[test]
fn the_media_type_decides_the_decompression_not_the_bytes() {
    let (dir, engine) = store();
    let tar = sample_tar();
    assert_fails_with(
        &engine,
        &stored_layer(&engine, OCI_GZIP, &zstd_program(&tar, dir.path()), &tar),
        ErrorKind::InvalidImage,
    );
    assert_fails_with(&engine, &stored_layer(&engine, OCI_ZSTD, &gzip(&tar), &tar), ErrorKind::InvalidImage);
    // A gzip blob read as a plain tar is the gzip bytes: not the tar's DiffID.
    assert_fails_with(&engine, &stored_layer(&engine, OCI_TAR, &gzip(&tar), &tar), ErrorKind::DigestMismatch);
}

#[test]
fn media_types_that_are_not_layers_are_unsupported_at_open() {
    let (_dir, engine) = store();
    let tar = sample_tar();
    let layer = stream_layer(&engine, &tar, Compression::Gzip(6), MediaTypeStyle::Oci);
    for media_type in [
        "application/vnd.oci.image.config.v1+json",
        "application/octet-stream",
        "application/vnd.oci.image.layer.v1.tar+bzip2",
        "application/vnd.oci.image.layer.v1.tar+gzip ",
        "APPLICATION/VND.OCI.IMAGE.LAYER.V1.TAR+GZIP",
        "",
    ] {
        let layer = LayerDescriptor { media_type: media_type.to_owned(), ..layer.clone() };
        let err = engine.open_layer(&layer).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::UnsupportedMediaType, "{media_type:?}: {}", err.message());
    }
}

#[test]
fn a_layer_not_stored_is_not_found() {
    let (_dir, engine) = store();
    let tar = sample_tar();
    let layer =
        LayerDescriptor { media_type: OCI_GZIP.to_owned(), digest: sha256(b"absent"), size: 6, diff_id: sha256(&tar) };
    assert_eq!(engine.open_layer(&layer).err().unwrap().kind(), ErrorKind::NotFound);
}

/// A zstd frame header asking for a 2^31-byte window (Window_Descriptor exponent 21), then one
/// raw block of 4 bytes.
fn zstd_frame_with_window_log_31() -> Vec<u8> {
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 21 << 3];
    frame.extend_from_slice(&[1 | (4 << 3), 0, 0]);
    frame.extend_from_slice(b"abcd");
    frame
}

#[test]
fn a_zstd_frame_asking_for_a_window_over_128_mib_is_refused() {
    let (_dir, engine) = store();
    let layer = stored_layer(&engine, OCI_ZSTD, &zstd_frame_with_window_log_31(), b"abcd");
    let err = assert_fails_with(&engine, &layer, ErrorKind::InvalidImage);
    assert!(err.message().contains("memory"), "{}", err.message());
    // The same frame asking for 128 MiB (exponent 17) is read.
    let mut within = zstd_frame_with_window_log_31();
    within[5] = 17 << 3;
    let layer = stored_layer(&engine, OCI_ZSTD, &within, b"abcd");
    assert_reads_as(&engine, &layer, b"abcd");
}

#[test]
fn a_blob_path_planted_as_a_symlink_or_fifo_is_refused_without_following_or_waiting() {
    let (dir, engine) = store();
    let tar = sample_tar();
    let layer = stream_layer(&engine, &tar, Compression::Gzip(6), MediaTypeStyle::Oci);
    let path = blob_file(&engine, &layer.digest);
    // The symlink leads to the very bytes of the layer: following it would read fine.
    let outside = dir.path().join("outside.gz");
    std::fs::copy(&path, &outside).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&outside, &path).unwrap();
    let err = engine.open_layer(&layer).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidImage, "{}", err.message());

    std::fs::remove_file(&path).unwrap();
    rustix::fs::mknodat(rustix::fs::CWD, &path, rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o644), 0)
        .unwrap();
    // No writer ever opens the FIFO: an open that waited for one would hang here.
    let err = engine.open_layer(&layer).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidImage, "{}", err.message());
}

#[test]
fn an_empty_buffer_reads_nothing_and_does_not_end_the_layer() {
    let (_dir, engine) = store();
    let tar = sample_tar();
    let layer = stream_layer(&engine, &tar, Compression::Zstd(3), MediaTypeStyle::Oci);
    let mut reader = engine.open_layer(&layer).unwrap();
    assert_eq!(reader.read_chunk(&mut []).unwrap(), 0);
    let (bytes, failure) = read_all(&mut reader, 1 << 16);
    assert!(failure.is_none() && bytes == tar);
}

/// Uncompressed bytes of a bomb: 4 GiB of zeros, 64 gzip members or zstd frames of 64 MiB.
const BOMB_MEMBER: usize = 64 << 20;
const BOMB_MEMBERS: usize = 64;
/// What a child reading a bomb may use at its peak, test harness included.
const BOMB_MEMORY_LIMIT_KIB: u64 = 64 << 10;

/// In the child started by `reads_bomb_in_bounded_memory`: reads the layer to its verified end
/// and prints how many bytes it gave and the peak memory. Returns whether this is that child.
fn read_bomb_if_child() -> bool {
    if role().as_deref() != Some("read-bomb") {
        return false;
    }
    let engine = child_engine();
    let layer: LayerDescriptor = serde_json::from_str(&std::env::var("OCICAS_TEST_LAYER").unwrap()).unwrap();
    let mut reader = engine.open_layer(&layer).unwrap();
    let mut buf = vec![0u8; 128 << 10];
    let mut total = 0u64;
    loop {
        match reader.read_chunk(&mut buf).unwrap() {
            0 => break,
            n => total += n as u64,
        }
    }
    let peak = proc_value(std::process::id(), "status", "VmHWM:").unwrap();
    println!("bomb-read {total} peak-kib {peak}");
    true
}

/// Stores `member` (64 MiB of zeros, compressed) 64 times over as a `media_type` layer, has
/// test `test` read it in a child, and checks the child's report.
fn reads_bomb_in_bounded_memory(test: &str, media_type: &str, member: &[u8]) {
    let (_dir, engine) = store();
    let zeros = vec![0u8; BOMB_MEMBER];
    let mut diff_id = ocicas::digest::Hasher::new(Algorithm::Sha256);
    for _ in 0..BOMB_MEMBERS {
        diff_id.update(&zeros);
    }
    let bomb = member.repeat(BOMB_MEMBERS);
    let stored = engine.put_blob(&bomb).unwrap();
    let layer = LayerDescriptor {
        media_type: media_type.to_owned(),
        digest: stored.digest,
        size: stored.size,
        diff_id: diff_id.finish(),
    };
    let output = child(test, "read-bomb", engine.root())
        .env("OCICAS_TEST_LAYER", serde_json::to_string(&layer).unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    // The harness's "test NAME ... " starts the report's line.
    let report = stdout.lines().find_map(|line| line.split("bomb-read ").nth(1)).expect("the child's report");
    let fields: Vec<&str> = report.split_whitespace().collect();
    let (total, peak): (u64, u64) = (fields[0].parse().unwrap(), fields[2].parse().unwrap());
    assert_eq!(total, (BOMB_MEMBER * BOMB_MEMBERS) as u64);
    assert!(peak <= BOMB_MEMORY_LIMIT_KIB, "peak RSS {peak} KiB over {BOMB_MEMORY_LIMIT_KIB} KiB");
    println!("{} bytes of {media_type} read as 4 GiB, peak RSS {} MiB", bomb.len(), peak / 1024);
}

#[test]
fn a_gzip_bomb_of_4_gib_reads_to_its_verified_end_in_bounded_memory() {
    if read_bomb_if_child() {
        return;
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![0u8; BOMB_MEMBER]).unwrap();
    let member = encoder.finish().unwrap();
    reads_bomb_in_bounded_memory("a_gzip_bomb_of_4_gib_reads_to_its_verified_end_in_bounded_memory", OCI_GZIP, &member);
}

#[test]
fn a_zstd_bomb_of_4_gib_reads_to_its_verified_end_in_bounded_memory() {
    if read_bomb_if_child() {
        return;
    }
    let member = zstd::encode_all(&vec![0u8; BOMB_MEMBER][..], 19).unwrap();
    reads_bomb_in_bounded_memory("a_zstd_bomb_of_4_gib_reads_to_its_verified_end_in_bounded_memory", OCI_ZSTD, &member);
}
