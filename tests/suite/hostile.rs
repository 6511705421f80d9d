//! Hostile input (issue #8 item 2): malformed digests on every API that takes one, junk under
//! `blobs/`, absurd sizes, documents that contradict their media type, malformed and oversized
//! JSON, invalid reference names, broken layouts and a read-only one. Each case checks the exact
//! `ErrorKind`, that the message names the culprit, and that the store is unchanged afterwards.
//! (Changing the working directory is in tests/hostile_cwd.rs: the cwd is process-global.)

use crate::common;

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_char};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use common::fixture::{age, copy_layout, store};
use ocicas::spec::{
    ANNOTATION_REF_NAME, ImageManifest, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST,
};
use ocicas::{
    Algorithm, Descriptor, Digest, Engine, ErrorKind, Filters, GcOptions, Labels, LeaseResource, OpenOptions,
    WriterOptions,
};

// The C ABI, linked from the library itself, so the digest cases run through every C entry point
// that takes a digest as a string.
#[allow(non_camel_case_types)]
type ocicas_status = u32;
const OCICAS_ERR_INVALID_ARGUMENT: ocicas_status = 1;
unsafe extern "C" {
    fn ocicas_engine_open(path: *const c_char, flags: u32, out: *mut *mut std::ffi::c_void) -> ocicas_status;
    fn ocicas_engine_close(engine: *mut std::ffi::c_void);
    fn ocicas_last_error_message() -> *const c_char;
    fn ocicas_string_free(text: *mut c_char);
    fn ocicas_blob_open(e: *const std::ffi::c_void, d: *const c_char, out: *mut *mut std::ffi::c_void)
    -> ocicas_status;
    fn ocicas_blob_read(
        e: *const std::ffi::c_void,
        d: *const c_char,
        limit: u64,
        out: *mut *mut u8,
        len: *mut usize,
    ) -> ocicas_status;
    fn ocicas_blob_size(e: *const std::ffi::c_void, d: *const c_char, out: *mut u64) -> ocicas_status;
    fn ocicas_blob_delete(e: *const std::ffi::c_void, d: *const c_char) -> ocicas_status;
    fn ocicas_blob_info_get(
        e: *const std::ffi::c_void,
        d: *const c_char,
        out: *mut *mut std::ffi::c_void,
    ) -> ocicas_status;
    fn ocicas_blob_update_labels(
        e: *const std::ffi::c_void,
        d: *const c_char,
        labels: *const c_char,
        paths: *const *const c_char,
        n: usize,
        out: *mut *mut std::ffi::c_void,
    ) -> ocicas_status;
    fn ocicas_writer_open(
        e: *const std::ffi::c_void,
        r: *const c_char,
        size: i64,
        expected: *const c_char,
        out: *mut *mut std::ffi::c_void,
    ) -> ocicas_status;
    fn ocicas_writer_write(w: *mut std::ffi::c_void, data: *const u8, len: usize) -> ocicas_status;
    fn ocicas_writer_commit(
        w: *mut std::ffi::c_void,
        size: i64,
        expected: *const c_char,
        labels: *const c_char,
        out: *mut *mut c_char,
    ) -> ocicas_status;
    fn ocicas_writer_close(w: *mut std::ffi::c_void) -> ocicas_status;
    fn ocicas_ref_put_json(
        e: *const std::ffi::c_void,
        name: *const c_char,
        desc: *const c_char,
        force: bool,
    ) -> ocicas_status;
    fn ocicas_lease_add_blob(e: *const std::ffi::c_void, id: *const c_char, d: *const c_char) -> ocicas_status;
}

const HEX_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Everything in a layout that an operation could change: every path with its type, mode, size
/// and content (the lock file and the temp directory, which reads may create, left out).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    fn visit(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().to_path_buf();
            if relative == Path::new(".ocicas/lock") || relative == Path::new(".ocicas/tmp") {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let kind = meta.file_type();
            let mode = meta.permissions().mode();
            let value = if kind.is_dir() {
                visit(root, &path, out);
                format!("dir {mode:o}")
            } else if kind.is_symlink() {
                format!("symlink -> {}", std::fs::read_link(&path).unwrap().display())
            } else if kind.is_file() {
                let digest = Digest::of_bytes(Algorithm::Sha256, &std::fs::read(&path).unwrap());
                format!("file {mode:o} {} {digest}", meta.len())
            } else {
                format!("special {mode:o}")
            };
            out.insert(relative, value);
        }
    }
    let mut out = BTreeMap::new();
    visit(root, root, &mut out);
    out
}

/// Asserts `result` failed with `kind` and a message naming `culprit`.
#[track_caller]
fn refused<T: std::fmt::Debug>(result: ocicas::Result<T>, kind: ErrorKind, culprit: &str) {
    let err = result.unwrap_err();
    assert_eq!(err.kind(), kind, "{err}");
    assert!(err.message().contains(culprit), "message {:?} does not name {culprit:?}", err.message());
}

#[track_caller]
fn assert_sound(engine: &Engine) {
    let report = engine.fsck().unwrap();
    assert!(report.is_sound(), "{:?}", report.problems);
}

/// A stored one-layer image tagged "app": (manifest descriptor, config, layer).
fn tagged_image(engine: &Engine) -> (Descriptor, Descriptor, Descriptor) {
    let layer = engine.put_blob(b"layer bytes").unwrap();
    let layer = Descriptor::new("application/vnd.oci.image.layer.v1.tar", layer.digest, layer.size);
    // A plain layer's DiffID is its digest.
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        layer.digest
    );
    let config = engine.put_blob(config.as_bytes()).unwrap();
    let config = Descriptor::new(MEDIA_TYPE_IMAGE_CONFIG, config.digest, config.size);
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_owned()),
        artifact_type: None,
        config: config.clone(),
        layers: vec![layer.clone()],
        subject: None,
        annotations: BTreeMap::new(),
        extra: Default::default(),
    };
    let manifest = engine.put_json(MEDIA_TYPE_IMAGE_MANIFEST, &manifest).unwrap();
    engine.ref_put("app", &manifest, false).unwrap();
    (manifest, config, layer)
}

/// The malformed digests of the issue, each with the text a message must show to name it.
fn malformed_digests() -> Vec<(String, String)> {
    let cases = [
        format!("sha256:{}", &HEX_A[..63]),
        format!("sha256:{HEX_A}a"),
        format!("sha256:{}", HEX_A.to_uppercase()),
        format!("SHA256:{HEX_A}"),
        "sha256:../x".to_owned(),
        "sha256:../../../../etc/passwd".to_owned(),
        format!("sha256:{}\0", &HEX_A[..63]),
        format!("sha256:{HEX_A}\n"),
        format!("md5:{}", &HEX_A[..32]),
        format!("sha512:{HEX_A}"),
        HEX_A.to_owned(),
        "sha256:".to_owned(),
        String::new(),
    ];
    cases
        .into_iter()
        .map(|digest| {
            let shown = format!("{digest:?}");
            (digest, shown[1..shown.len() - 1].to_owned())
        })
        .collect()
}

fn last_error() -> String {
    unsafe { CStr::from_ptr(ocicas_last_error_message()) }.to_string_lossy().into_owned()
}

#[test]
fn malformed_digests_are_refused_by_every_api_naming_the_digest_and_change_nothing() {
    let (dir, engine) = store();
    let (manifest, _, _) = tagged_image(&engine);
    let lease = engine.lease_new(Some("held"), None).unwrap();
    let root = engine.root().to_owned();
    let c_root = CString::new(root.to_str().unwrap()).unwrap();
    let mut c_engine = std::ptr::null_mut();
    assert_eq!(unsafe { ocicas_engine_open(c_root.as_ptr(), 0, &mut c_engine) }, 0);
    // A writer with its bytes written, to commit with a malformed expected digest.
    let mut c_writer = std::ptr::null_mut();
    let c_ref = CString::new("pending").unwrap();
    assert_eq!(unsafe { ocicas_writer_open(c_engine, c_ref.as_ptr(), -1, std::ptr::null(), &mut c_writer) }, 0);
    assert_eq!(unsafe { ocicas_writer_write(c_writer, b"pending".as_ptr(), 7) }, 0);
    let before = snapshot(&root);
    let index_before = std::fs::read(root.join("index.json")).unwrap();

    for (digest, shown) in malformed_digests() {
        // Rust: parsing, and every document that carries a digest.
        refused(digest.parse::<Digest>(), ErrorKind::InvalidArgument, &shown);
        let json = serde_json::to_string(&digest).unwrap();
        let descriptor = format!(r#"{{"mediaType":"{MEDIA_TYPE_IMAGE_MANIFEST}","digest":{json},"size":1}}"#);
        let err = serde_json::from_str::<Descriptor>(&descriptor).unwrap_err().to_string();
        assert!(err.contains(&shown), "descriptor error {err:?} does not name {shown:?}");

        // C: every entry point that takes a digest string. A NUL ends a C string, so that
        // case reaches C as the 63 characters before it (too short).
        let c_digest = CString::new(digest.split('\0').next().unwrap()).unwrap();
        let c_shown = format!("{:?}", c_digest.to_str().unwrap());
        let c_shown = &c_shown[1..c_shown.len() - 1];
        let d = c_digest.as_ptr();
        let mut handle = std::ptr::null_mut();
        let mut text = std::ptr::null_mut();
        let (mut data, mut len, mut size) = (std::ptr::null_mut(), 0usize, 0u64);
        let descriptor = CString::new(format!(
            r#"{{"mediaType":"{MEDIA_TYPE_IMAGE_MANIFEST}","digest":{},"size":1}}"#,
            serde_json::to_string(c_digest.to_str().unwrap()).unwrap()
        ))
        .unwrap();
        let held = CString::new("held").unwrap();
        let calls: Vec<(&str, ocicas_status)> = unsafe {
            vec![
                ("ocicas_blob_open", ocicas_blob_open(c_engine, d, &mut handle)),
                ("ocicas_blob_read", ocicas_blob_read(c_engine, d, 1 << 20, &mut data, &mut len)),
                ("ocicas_blob_size", ocicas_blob_size(c_engine, d, &mut size)),
                ("ocicas_blob_delete", ocicas_blob_delete(c_engine, d)),
                ("ocicas_blob_info_get", ocicas_blob_info_get(c_engine, d, &mut handle)),
                (
                    "ocicas_blob_update_labels",
                    ocicas_blob_update_labels(c_engine, d, std::ptr::null(), std::ptr::null(), 0, &mut handle),
                ),
                ("ocicas_writer_open", ocicas_writer_open(c_engine, c_ref.as_ptr(), -1, d, &mut handle)),
                ("ocicas_writer_commit", ocicas_writer_commit(c_writer, -1, d, std::ptr::null(), &mut text)),
                ("ocicas_ref_put_json", ocicas_ref_put_json(c_engine, c_ref.as_ptr(), descriptor.as_ptr(), true)),
                ("ocicas_lease_add_blob", ocicas_lease_add_blob(c_engine, held.as_ptr(), d)),
            ]
        };
        for (function, status) in calls {
            assert_eq!(status, OCICAS_ERR_INVALID_ARGUMENT, "{function}({digest:?}): {}", last_error());
            assert!(last_error().contains(c_shown), "{function}: {:?} does not name {c_shown:?}", last_error());
        }
        assert!(handle.is_null() && text.is_null() && data.is_null(), "an output was written on failure");

        // A malformed digest in an index.json entry does not make the layout unreadable (Go
        // tools read it too): fsck names it, as a problem, or as a note for a well-formed
        // digest of an algorithm ocicas does not support.
        let index = String::from_utf8(index_before.clone())
            .unwrap()
            .replace(&format!("\"{}\"", manifest.digest), &serde_json::to_string(&digest).unwrap());
        let other = dir.path().join("copy");
        copy_layout(&root, &other);
        std::fs::write(other.join("index.json"), &index).unwrap();
        let report = Engine::open(&other, &OpenOptions::default()).unwrap().fsck().unwrap();
        let named = |lines: &[String]| lines.iter().any(|line| line.contains(&shown));
        assert!(named(&report.problems) || digest.starts_with("md5:") && named(&report.notes), "{shown}: {report:?}");
        std::fs::remove_dir_all(&other).unwrap();
    }
    assert_eq!(snapshot(&root), before);
    assert_eq!(std::fs::read(root.join("index.json")).unwrap(), index_before);
    // The refused commit left the writer usable.
    let mut committed = std::ptr::null_mut();
    assert_eq!(unsafe { ocicas_writer_commit(c_writer, 7, std::ptr::null(), std::ptr::null(), &mut committed) }, 0);
    assert!(!committed.is_null());
    unsafe { ocicas_string_free(committed) };
    assert_eq!(unsafe { ocicas_writer_close(c_writer) }, 0);
    unsafe { ocicas_engine_close(c_engine) };
    assert_eq!(engine.lease_list().unwrap()[0].digests, lease.digests);
    assert_sound(&engine);
}

/// Runs `f` on another thread; a hang (a FIFO opened blocking, a symlink loop) fails the test.
fn within_seconds<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || send.send(f()));
    receive.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("{what} hung or panicked"))
}

#[test]
fn junk_under_blobs_is_never_followed_opened_blocking_or_deleted_and_fsck_reports_corrupt_blobs() {
    let (dir, engine) = store();
    let (manifest, _, layer) = tagged_image(&engine);
    let blobs = engine.root().join("blobs/sha256");
    // A foreign file outside the layout, and a symlink to it named by its digest.
    let foreign = dir.path().join("foreign");
    std::fs::write(&foreign, b"not yours").unwrap();
    let foreign_digest = Digest::of_bytes(Algorithm::Sha256, b"not yours");
    std::os::unix::fs::symlink(&foreign, blobs.join(foreign_digest.hex())).unwrap();
    // A FIFO, a directory, and a dangling symlink, each named like a blob.
    let fifo = Digest::of_bytes(Algorithm::Sha256, b"fifo");
    let fifo_path = CString::new(blobs.join(fifo.hex()).to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo_path.as_ptr(), 0o644) }, 0);
    let directory = Digest::of_bytes(Algorithm::Sha256, b"directory");
    std::fs::create_dir(blobs.join(directory.hex())).unwrap();
    std::fs::write(blobs.join(directory.hex()).join("inside"), b"x").unwrap();
    let dangling = Digest::of_bytes(Algorithm::Sha256, b"dangling");
    std::os::unix::fs::symlink("/nonexistent/ocicas", blobs.join(dangling.hex())).unwrap();
    // Names that are not digests, and other algorithms' directories.
    std::fs::write(blobs.join("not-hex"), b"junk").unwrap();
    std::fs::write(blobs.join(HEX_A.to_uppercase()), b"junk").unwrap();
    std::fs::write(blobs.join(format!("{HEX_A}.tmp")), b"junk").unwrap();
    std::fs::create_dir_all(engine.root().join("blobs/md5")).unwrap();
    std::fs::write(engine.root().join("blobs/md5/d41d8cd98f00b204e9800998ecf8427e"), b"").unwrap();
    // A zero-byte file named as a non-empty blob, and a blob whose bytes do not match its name
    // (the tagged layer, overwritten).
    let zero = Digest::of_bytes(Algorithm::Sha256, b"zero");
    std::fs::write(blobs.join(zero.hex()), b"").unwrap();
    let layer_path = blobs.join(layer.digest.hex());
    std::fs::set_permissions(&layer_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&layer_path, b"LAYER BYTES").unwrap();
    let junk: Vec<PathBuf> = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let named = Digest::from_parts(Algorithm::Sha256, p.file_name().unwrap().to_str().unwrap()).is_ok();
            !named || !std::fs::symlink_metadata(p).unwrap().is_file()
        })
        .collect();

    let engine2 = engine.clone();
    let listed = within_seconds("list_blobs", move || engine2.list_blobs().unwrap());
    // Only regular files named by a digest are blobs.
    assert!(listed.contains(&zero) && listed.contains(&layer.digest) && listed.contains(&manifest.digest));
    for odd in [&foreign_digest, &fifo, &directory, &dangling] {
        assert!(!listed.contains(odd), "{odd} is not a regular file but was listed");
    }
    let engine2 = engine.clone();
    let walked = within_seconds("walk", move || {
        let mut walked = Vec::new();
        engine2
            .walk(&Filters::parse::<&str>(&[]).unwrap(), |info| {
                walked.push(info.digest.clone());
                Ok(true)
            })
            .unwrap();
        walked
    });
    assert_eq!(walked, listed);
    for (odd, culprit) in
        [(&foreign_digest, "symlink"), (&fifo, "not a regular file"), (&directory, "not a regular file")]
    {
        let engine2 = engine.clone();
        let odd2 = odd.clone();
        let result = within_seconds("open_blob", move || engine2.open_blob(&odd2).map(|_| ()));
        refused(result, ErrorKind::InvalidImage, odd.hex());
        refused(engine.open_blob(odd), ErrorKind::InvalidImage, culprit);
        refused(engine.info(odd), ErrorKind::InvalidImage, odd.hex());
        refused(engine.read_blob(odd, 1 << 20), ErrorKind::InvalidImage, odd.hex());
    }
    refused(engine.open_blob(&dangling), ErrorKind::InvalidImage, "symlink");
    refused(engine.read_blob(&layer.digest, 1 << 20), ErrorKind::DigestMismatch, &layer.digest.to_string());
    refused(engine.verify_blob(&zero), ErrorKind::DigestMismatch, &zero.to_string());

    let engine2 = engine.clone();
    let report = within_seconds("fsck", move || engine2.fsck().unwrap());
    let mut problems = report.problems.clone();
    problems.sort();
    // The two corrupt blobs, and the two symlinks and the FIFO, which fsck names by path.
    assert_eq!(problems.len(), 5, "{problems:?}");
    assert!(problems.iter().any(|p| p.contains(&layer.digest.to_string()) && p.contains("corrupt")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains(&zero.to_string()) && p.contains("corrupt")), "{problems:?}");
    for (odd, what) in [(&foreign_digest, "a symlink"), (&dangling, "a symlink"), (&fifo, "a FIFO")] {
        assert!(problems.iter().any(|p| p.contains(odd.hex()) && p.contains(what)), "{odd}: {problems:?}");
    }

    // GC, everything aged: it may remove the unreferenced zero-byte file (a blob by its name),
    // never what is not a blob, never through a symlink.
    for digest in &listed {
        age(&blobs.join(digest.hex()));
    }
    let engine2 = engine.clone();
    within_seconds("gc", move || engine2.gc(&GcOptions::default()).unwrap());
    assert!(!blobs.join(zero.hex()).exists());
    for path in &junk {
        assert!(std::fs::symlink_metadata(path).is_ok(), "GC removed {}", path.display());
    }
    assert_eq!(std::fs::read(&foreign).unwrap(), b"not yours");
    assert!(blobs.join(directory.hex()).join("inside").exists());
    assert!(std::fs::symlink_metadata(blobs.join(fifo.hex())).unwrap().file_type().is_fifo());
    assert!(engine.root().join("blobs/md5/d41d8cd98f00b204e9800998ecf8427e").exists());

    // Committing the foreign bytes replaces the symlink with a blob; the file it pointed at
    // is untouched.
    engine.put_blob(b"not yours").unwrap();
    assert!(std::fs::symlink_metadata(blobs.join(foreign_digest.hex())).unwrap().is_file());
    assert_eq!(std::fs::read(&foreign).unwrap(), b"not yours");
    assert_eq!(std::fs::metadata(&foreign).unwrap().permissions().mode() & 0o777, 0o644);
}

/// Writes `document` as a blob described by `descriptor_media_type` and tags it "doc" in
/// index.json as another tool would (`ref_put` refuses a document that does not parse).
fn tag_raw(engine: &Engine, media_type: &str, document: &[u8]) -> Descriptor {
    let blob = engine.put_blob(document).unwrap();
    let mut descriptor = Descriptor::new(media_type, blob.digest, blob.size);
    let path = engine.root().join("index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let entries = index["manifests"].as_array_mut().unwrap();
    entries.retain(|entry| entry["annotations"][ANNOTATION_REF_NAME] != "doc");
    descriptor.annotations.insert(ANNOTATION_REF_NAME.to_owned(), "doc".to_owned());
    entries.push(serde_json::to_value(&descriptor).unwrap());
    std::fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
    descriptor
}

/// `document` is refused by `read_document` with `kind` naming its digest and `culprit`, fsck
/// reports it, and neither changes the store.
#[track_caller]
fn document_refused(engine: &Engine, media_type: &str, document: &[u8], kind: ErrorKind, culprit: &str) {
    let descriptor = tag_raw(engine, media_type, document);
    let before = snapshot(engine.root());
    let err = engine.read_document(&descriptor).unwrap_err();
    assert_eq!(err.kind(), kind, "{err}");
    assert!(err.message().contains(&descriptor.digest.to_string()), "{err} does not name the blob");
    assert!(err.message().contains(culprit), "{err} does not name {culprit:?}");
    let report = engine.fsck().unwrap();
    assert!(report.problems.iter().any(|p| p.contains(&descriptor.digest.to_string())), "{:?}", report.problems);
    assert_eq!(snapshot(engine.root()), before);
}

#[test]
fn documents_whose_fields_contradict_their_media_type_are_refused() {
    let (_dir, engine) = store();
    let (manifest, _, _) = tagged_image(&engine);
    let manifest_json = String::from_utf8(engine.read_blob(&manifest.digest, 1 << 20).unwrap()).unwrap();
    let body = &manifest_json[1..manifest_json.len() - 1];
    // CVE-2021-41190: a manifest with `manifests`, an index with `layers` or `config`.
    let with_manifests = format!(r#"{{{body},"manifests":[]}}"#);
    document_refused(
        &engine,
        MEDIA_TYPE_IMAGE_MANIFEST,
        with_manifests.as_bytes(),
        ErrorKind::InvalidImage,
        "manifests",
    );
    let index_with_layers = format!(r#"{{"schemaVersion":2,"manifests":[],"layers":[]}}"#);
    document_refused(&engine, MEDIA_TYPE_IMAGE_INDEX, index_with_layers.as_bytes(), ErrorKind::InvalidImage, "layers");
    let config = r#"{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0}"#;
    let index_with_config = format!(r#"{{"schemaVersion":2,"manifests":[],"config":{config}}}"#);
    document_refused(&engine, MEDIA_TYPE_IMAGE_INDEX, index_with_config.as_bytes(), ErrorKind::InvalidImage, "config");
    // Its own mediaType differs from the descriptor's.
    let docker = body.replace(MEDIA_TYPE_IMAGE_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json");
    let docker = format!("{{{docker}}}");
    document_refused(&engine, MEDIA_TYPE_IMAGE_MANIFEST, docker.as_bytes(), ErrorKind::InvalidImage, "contradicts");
    // A manifest described as an index: no `manifests` (and, had it one, its mediaType).
    document_refused(&engine, MEDIA_TYPE_IMAGE_INDEX, manifest_json.as_bytes(), ErrorKind::InvalidImage, "manifests");
    let with_both = format!(r#"{{{body},"manifests":[]}}"#);
    document_refused(&engine, MEDIA_TYPE_IMAGE_INDEX, with_both.as_bytes(), ErrorKind::InvalidImage, "contradicts");
}

#[test]
fn duplicate_keys_trailing_bytes_and_invalid_utf8_are_refused() {
    let (_dir, engine) = store();
    let (manifest, _, _) = tagged_image(&engine);
    let manifest_json = String::from_utf8(engine.read_blob(&manifest.digest, 1 << 20).unwrap()).unwrap();
    let body = &manifest_json[1..manifest_json.len() - 1];
    let duplicate_layers = format!(r#"{{{body},"layers":[]}}"#);
    document_refused(
        &engine,
        MEDIA_TYPE_IMAGE_MANIFEST,
        duplicate_layers.as_bytes(),
        ErrorKind::InvalidImage,
        "duplicate field `layers`",
    );
    let duplicate_digest = manifest_json.replacen(
        r#""digest":"#,
        r#""digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","digest":"#,
        1,
    );
    document_refused(
        &engine,
        MEDIA_TYPE_IMAGE_MANIFEST,
        duplicate_digest.as_bytes(),
        ErrorKind::InvalidImage,
        "duplicate field `digest`",
    );
    let trailing = format!("{manifest_json}{{}}");
    document_refused(
        &engine,
        MEDIA_TYPE_IMAGE_MANIFEST,
        trailing.as_bytes(),
        ErrorKind::InvalidImage,
        "trailing characters",
    );
    let mut invalid_utf8 =
        manifest_json.replacen(r#""schemaVersion":2"#, r#""schemaVersion":2,"x":"?""#, 1).into_bytes();
    let question = invalid_utf8.iter().position(|&b| b == b'?').unwrap();
    invalid_utf8[question] = 0xff;
    document_refused(&engine, MEDIA_TYPE_IMAGE_MANIFEST, &invalid_utf8, ErrorKind::InvalidImage, "unicode");

    // The same in index.json: the layout does not open, and opening changes nothing.
    let root = engine.root().to_owned();
    let index = std::fs::read_to_string(root.join("index.json")).unwrap();
    let index_body = &index[1..index.len() - 1];
    for (bad, culprit) in [
        (format!(r#"{{{index_body},"schemaVersion":2}}"#).into_bytes(), "duplicate field `schemaVersion`"),
        (format!("{index}x").into_bytes(), "trailing characters"),
        (
            index.replacen(r#""digest":"#, r#""digest":"sha384:00","digest":"#, 1).into_bytes(),
            "duplicate field `digest`",
        ),
        (
            format!(r#"{{"x":"{}",{index_body}}}"#, '\u{fffd}').replace('\u{fffd}', "\u{1}").into_bytes(),
            "control character",
        ),
        ([&b"{\"x\":\"\xc3\x28\","[..], index_body.as_bytes(), b"}"].concat(), "unicode"),
    ] {
        std::fs::write(root.join("index.json"), &bad).unwrap();
        let before = snapshot(&root);
        refused(Engine::open(&root, &OpenOptions::default()), ErrorKind::InvalidImage, "index.json");
        refused(Engine::open(&root, &OpenOptions::default()), ErrorKind::InvalidImage, culprit);
        refused(engine.ref_list(), ErrorKind::InvalidImage, culprit);
        refused(engine.ref_put("other", &manifest, false), ErrorKind::InvalidImage, "index.json");
        assert_eq!(snapshot(&root), before);
    }
    std::fs::write(root.join("index.json"), &index).unwrap();

    // Duplicate keys of a map (annotations, unknown fields) are not a parse error: the last
    // one counts, as in Go's encoding/json, so ocicas and Go tools read the same reference.
    let doubled = index.replacen(
        r#""org.opencontainers.image.ref.name":"app""#,
        r#""org.opencontainers.image.ref.name":"shadow","org.opencontainers.image.ref.name":"app""#,
        1,
    );
    assert_ne!(doubled, index);
    std::fs::write(root.join("index.json"), &doubled).unwrap();
    let names: Vec<String> = engine.ref_list().unwrap().into_iter().map(|(name, _)| name).collect();
    assert!(names.contains(&"app".to_owned()) && !names.contains(&"shadow".to_owned()), "{names:?}");
    refused(engine.ref_get("shadow"), ErrorKind::NotFound, "shadow");
}

#[test]
fn absurd_descriptor_sizes_are_refused_or_reported_without_allocating_them() {
    let (_dir, engine) = store();
    let (manifest, _, layer) = tagged_image(&engine);
    let root = engine.root().to_owned();
    let index = std::fs::read_to_string(root.join("index.json")).unwrap();
    let declared = format!(r#""size":{}"#, manifest.size);
    assert!(index.contains(&declared));
    // Sizes that are not a u64 make index.json invalid, naming the value.
    for (size, culprit) in [
        ("-1", "-1"),
        ("18446744073709551616", "18446744073709551616"),
        ("1.5", "1.5"),
        ("\"1\"", "\"1\""),
        ("1e30", "1e30"),
    ] {
        std::fs::write(root.join("index.json"), index.replace(&declared, &format!(r#""size":{size}"#))).unwrap();
        let before = snapshot(&root);
        refused(Engine::open(&root, &OpenOptions::default()), ErrorKind::InvalidImage, "index.json");
        let err = Engine::open(&root, &OpenOptions::default()).unwrap_err();
        assert!(err.message().contains(culprit.trim_matches('"')) || err.message().contains("invalid type"), "{err}");
        assert_eq!(snapshot(&root), before);
    }
    // 2^63 and u64::MAX are u64s: they parse, are never allocated, and fsck reports them.
    for size in [1u64 << 63, u64::MAX] {
        std::fs::write(root.join("index.json"), index.replace(&declared, &format!(r#""size":{size}"#))).unwrap();
        let before = snapshot(&root);
        let engine = Engine::open(&root, &OpenOptions::default()).unwrap();
        let (_, tagged) = engine.ref_list().unwrap().remove(0);
        assert_eq!(tagged.size, size);
        refused(engine.read_document(&tagged), ErrorKind::TooLarge, &size.to_string());
        let report = engine.fsck().unwrap();
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(
            report.problems[0].contains(&manifest.digest.to_string()) && report.problems[0].contains(&size.to_string())
        );
        // A tag cannot be made with a size the blob does not have.
        let mut lying = manifest.clone();
        lying.size = size;
        refused(engine.ref_put("lying", &lying, false), ErrorKind::SizeMismatch, &size.to_string());
        let mut lying_layer = layer.clone();
        lying_layer.size = size;
        refused(engine.ref_put("lying", &lying_layer, false), ErrorKind::SizeMismatch, &layer.digest.to_string());
        assert_eq!(snapshot(&root), before);
    }
    // The same sizes inside a manifest: parsed (u64) or refused (not u64), never allocated.
    std::fs::write(root.join("index.json"), &index).unwrap();
    let manifest_json = String::from_utf8(engine.read_blob(&manifest.digest, 1 << 20).unwrap()).unwrap();
    let layer_size = format!(r#""size":{}"#, layer.size);
    let negative = manifest_json.replace(&layer_size, r#""size":-1"#);
    document_refused(&engine, MEDIA_TYPE_IMAGE_MANIFEST, negative.as_bytes(), ErrorKind::InvalidImage, "-1");
    let huge = manifest_json.replace(&layer_size, &format!(r#""size":{}"#, 1u64 << 63));
    let descriptor = tag_raw(&engine, MEDIA_TYPE_IMAGE_MANIFEST, huge.as_bytes());
    engine.read_document(&descriptor).unwrap();
    let report = engine.fsck().unwrap();
    assert!(
        report.problems.iter().any(|p| p.contains(&layer.digest.to_string()) && p.contains(&(1u64 << 63).to_string())),
        "{:?}",
        report.problems
    );
}

#[test]
fn json_over_the_limit_is_refused_before_it_is_parsed() {
    let (_dir, engine) = store();
    let (manifest, _, _) = tagged_image(&engine);
    let root = engine.root().to_owned();
    let limit = engine.max_json_size() as usize;
    // A manifest blob past the limit, tagged with its true size.
    let manifest_json = String::from_utf8(engine.read_blob(&manifest.digest, 1 << 20).unwrap()).unwrap();
    let padded = manifest_json.replacen('{', &format!(r#"{{"annotations":{{"pad":"{}"}},"#, "x".repeat(limit)), 1);
    let descriptor = tag_raw(&engine, MEDIA_TYPE_IMAGE_MANIFEST, padded.as_bytes());
    let before = snapshot(&root);
    refused(engine.read_document(&descriptor), ErrorKind::TooLarge, &descriptor.digest.to_string());
    refused(engine.read_document(&descriptor), ErrorKind::TooLarge, "json_size");
    let report = engine.fsck().unwrap();
    assert!(
        report.problems.iter().any(|p| p.contains(&descriptor.digest.to_string()) && p.contains("json_size")),
        "{:?}",
        report.problems
    );
    assert_eq!(snapshot(&root), before);
    // index.json past the limit (whitespace is valid JSON): the layout opens and its references
    // can be listed (to be mended), but nothing else reads it; past 16 times the limit the
    // layout does not open.
    let index = std::fs::read_to_string(root.join("index.json")).unwrap();
    std::fs::write(root.join("index.json"), format!("{index}{}", " ".repeat(16 * limit))).unwrap();
    refused(Engine::open(&root, &OpenOptions::default()), ErrorKind::TooLarge, "index.json");
    std::fs::write(root.join("index.json"), format!("{index}{}", " ".repeat(limit))).unwrap();
    let before = snapshot(&root);
    let over = Engine::open(&root, &OpenOptions::default()).unwrap();
    assert_eq!(over.ref_list().unwrap().len(), 2);
    refused(over.ref_get("doc"), ErrorKind::TooLarge, "json_size");
    refused(engine.ref_put("other", &manifest, false), ErrorKind::TooLarge, "json_size");
    assert_eq!(snapshot(&root), before);
    // A labels file past the limit.
    std::fs::write(root.join("index.json"), &index).unwrap();
    let labels = root.join(".ocicas/labels/sha256").join(manifest.digest.hex());
    std::fs::create_dir_all(labels.parent().unwrap()).unwrap();
    std::fs::write(&labels, format!(r#"{{"k":"{}"}}"#, "v".repeat(limit))).unwrap();
    let before = snapshot(&root);
    refused(engine.info(&manifest.digest), ErrorKind::TooLarge, manifest.digest.hex());
    assert_eq!(snapshot(&root), before);
}

#[test]
fn invalid_reference_names_are_refused_and_foreign_ones_in_index_json_are_kept() {
    let (_dir, engine) = store();
    let (manifest, _, _) = tagged_image(&engine);
    let root = engine.root().to_owned();
    let before = snapshot(&root);
    let long = "a".repeat(300) + "/";
    for name in [
        "",
        " ",
        "a b",
        "../x",
        "/abs",
        "a/",
        "a//b",
        ".hidden",
        "a..b",
        "a---b",
        "tag\n",
        "a\0b",
        "é",
        "a\\b",
        long.as_str(),
    ] {
        let shown = format!("{name:?}");
        refused(engine.ref_put(name, &manifest, true), ErrorKind::InvalidArgument, &shown);
        refused(engine.ref_get(name), ErrorKind::InvalidArgument, &shown);
        refused(engine.ref_delete(name), ErrorKind::InvalidArgument, &shown);
        refused(
            engine.ref_put_all(&[("ok".to_owned(), manifest.clone()), (name.to_owned(), manifest.clone())]),
            ErrorKind::InvalidArgument,
            &shown,
        );
    }
    // A name given twice would be on two entries of index.json, which umoci refuses as ambiguous.
    refused(
        engine.ref_put_all(&[("ok".to_owned(), manifest.clone()), ("ok".to_owned(), manifest.clone())]),
        ErrorKind::InvalidArgument,
        "\"ok\" is given twice",
    );
    assert_eq!(snapshot(&root), before);
    // Names other tools wrote into index.json are listed as they are and kept by our updates.
    let index = std::fs::read_to_string(root.join("index.json")).unwrap();
    let foreign = index.replace(
        r#""org.opencontainers.image.ref.name":"app""#,
        r#""org.opencontainers.image.ref.name":"../not a name""#,
    );
    std::fs::write(root.join("index.json"), &foreign).unwrap();
    assert_eq!(engine.ref_list().unwrap()[0].0, "../not a name");
    engine.ref_put("app", &manifest, false).unwrap();
    engine.ref_delete("app").unwrap();
    assert_eq!(engine.ref_list().unwrap()[0].0, "../not a name");
    assert_sound(&engine);
}

#[test]
fn broken_oci_layout_and_index_json_are_refused_naming_the_file_and_never_repaired() {
    let (_dir, engine) = store();
    tagged_image(&engine);
    let root = engine.root().to_owned();
    let oci_layout = std::fs::read(root.join("oci-layout")).unwrap();
    let index = std::fs::read(root.join("index.json")).unwrap();
    let cases: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        ("oci-layout", None, "oci-layout is missing"),
        ("oci-layout", Some(br#"{"imageLayoutVersion":"2.0.0"}"#.to_vec()), "2.0.0"),
        ("oci-layout", Some(br#"{"imageLayoutVersion":1}"#.to_vec()), "imageLayoutVersion"),
        ("oci-layout", Some(b"not json".to_vec()), "oci-layout is not valid JSON"),
        ("oci-layout", Some(Vec::new()), "oci-layout is not valid JSON"),
        ("index.json", None, "index.json is missing"),
        ("index.json", Some(index[..index.len() / 2].to_vec()), "index.json is not an OCI image index"),
        ("index.json", Some(br#"{"schemaVersion":1,"manifests":[]}"#.to_vec()), "schemaVersion is 1"),
        ("index.json", Some(br#"{"manifests":[]}"#.to_vec()), "schemaVersion"),
        ("index.json", Some(br#"{"schemaVersion":2}"#.to_vec()), "manifests"),
        ("index.json", Some(b"[]".to_vec()), "index.json"),
        (
            "index.json",
            Some(
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[]}"#
                    .to_vec(),
            ),
            "mediaType",
        ),
    ];
    for (file, content, culprit) in cases {
        match &content {
            Some(bytes) => std::fs::write(root.join(file), bytes).unwrap(),
            None => std::fs::remove_file(root.join(file)).unwrap(),
        }
        let before = snapshot(&root);
        for create in [false, true] {
            let result = Engine::open(&root, &OpenOptions { create, ..OpenOptions::default() });
            refused(result, ErrorKind::InvalidImage, culprit);
        }
        if file == "index.json" {
            refused(engine.ref_list(), ErrorKind::InvalidImage, "index.json");
            refused(engine.fsck(), ErrorKind::InvalidImage, "index.json");
            refused(engine.gc(&GcOptions::default()), ErrorKind::InvalidImage, "index.json");
        }
        assert_eq!(snapshot(&root), before, "{file}: {culprit}");
        std::fs::write(root.join("oci-layout"), &oci_layout).unwrap();
        std::fs::write(root.join("index.json"), &index).unwrap();
    }
    assert_sound(&Engine::open(&root, &OpenOptions::default()).unwrap());
}

/// Makes `root` read-only even for root: a read-only bind mount, else the immutable attribute.
/// Returns how, or None (with the reason printed) when neither works here.
fn make_read_only(root: &Path) -> Option<&'static str> {
    let run = |program: &str, args: &[&std::ffi::OsStr]| {
        std::process::Command::new(program).args(args).output().is_ok_and(|o| o.status.success())
    };
    let path = root.as_os_str();
    if run("mount", &["--bind".as_ref(), path, path])
        && run("mount", &["-o".as_ref(), "remount,ro,bind".as_ref(), path])
    {
        return Some("mount");
    }
    let _ = run("umount", &[path]);
    if run("chattr", &["-R".as_ref(), "+i".as_ref(), path]) {
        return Some("chattr");
    }
    let _ = run("chattr", &["-R".as_ref(), "-i".as_ref(), path]);
    None
}

fn make_writable(root: &Path, how: &str) {
    let path = root.as_os_str();
    let status = match how {
        "mount" => std::process::Command::new("umount").arg(path).status(),
        "chattr" => std::process::Command::new("chattr").args(["-R".as_ref(), "-i".as_ref(), path]).status(),
        _ => std::process::Command::new("chmod").args(["-R".as_ref(), "u+w".as_ref(), path]).status(),
    };
    assert!(status.unwrap().success());
}

#[test]
fn a_read_only_layout_serves_reads_and_refuses_writes_changing_nothing() {
    let (_dir, engine) = store();
    let (manifest, _, layer) = tagged_image(&engine);
    engine.update_labels(&layer.digest, &Labels::from([("k".into(), "v".into())]), &[]).unwrap();
    let root = engine.root().to_owned();
    // Create the lock file and temp dir now, as any writer would have.
    engine.put_blob(b"warm").unwrap();
    if unsafe { libc::geteuid() } != 0 {
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let how = if unsafe { libc::geteuid() } == 0 {
        println!("running as root: making the layout read-only by a bind mount or chattr +i");
        match make_read_only(&root) {
            Some(how) => how,
            None => {
                println!("skipped: running as root and neither a read-only bind mount nor chattr +i works here");
                return;
            }
        }
    } else {
        let status = std::process::Command::new("chmod").args(["-R", "a-w"]).arg(&root).status().unwrap();
        assert!(status.success());
        "chmod"
    };
    println!("read-only by {how}");
    let before = snapshot(&root);
    let result = std::panic::catch_unwind(|| {
        let engine = Engine::open(&root, &OpenOptions::default()).unwrap();
        // Reads work.
        assert_eq!(engine.ref_get("app").unwrap().digest, manifest.digest);
        assert_eq!(engine.read_blob(&layer.digest, 1 << 20).unwrap(), b"layer bytes");
        assert_eq!(engine.info(&layer.digest).unwrap().labels.len(), 1);
        engine.read_document(&manifest).unwrap();
        assert_eq!(engine.list_blobs().unwrap().len(), 4);
        // fsck reads without the store lock it cannot take here, and says so.
        let report = engine.fsck().unwrap();
        assert!(report.is_sound(), "{report:?}");
        assert!(report.notes.iter().any(|n| n.contains("store lock")), "{report:?}");
        // Writes fail with an I/O error naming the path, and change nothing.
        let path = root.display().to_string();
        refused(engine.put_blob(b"new"), ErrorKind::Io, &path);
        refused(engine.ref_put("other", &manifest, false), ErrorKind::Io, &path);
        refused(engine.ref_delete("app"), ErrorKind::Io, &path);
        refused(engine.update_labels(&layer.digest, &Labels::new(), &[]), ErrorKind::Io, &path);
        refused(engine.delete_blob(&layer.digest), ErrorKind::Io, &path);
        refused(engine.writer("ref", &WriterOptions::default()).map(|_| ()), ErrorKind::Io, &path);
        refused(engine.lease_new(None, None), ErrorKind::Io, &path);
        refused(engine.lease_add("any", LeaseResource::Blob(layer.digest.clone())), ErrorKind::Io, &path);
        refused(engine.gc(&GcOptions::default()), ErrorKind::Io, &path);
        refused(Engine::create(root.join("inner")), ErrorKind::Io, &path);
    });
    let after = snapshot(&root);
    make_writable(&root, how);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(after, before);
    assert_sound(&engine);
}
