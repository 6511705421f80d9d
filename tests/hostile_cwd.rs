//! A layout opened by a relative path keeps acting on that layout after the process changes its
//! working directory, even when the new directory holds another layout of the same relative name
//! (issue #8 item 2). Its own test binary, with one test: the working directory is process-global.

use std::ffi::{CString, c_void};
use std::path::Path;

use ocicas::{Engine, GcOptions, OpenOptions, WriterOptions};

unsafe extern "C" {
    fn ocicas_engine_open(path: *const std::ffi::c_char, flags: u32, out: *mut *mut c_void) -> u32;
    fn ocicas_engine_close(engine: *mut c_void);
    fn ocicas_blob_put(e: *const c_void, data: *const u8, len: usize, out: *mut *mut std::ffi::c_char) -> u32;
    fn ocicas_string_free(text: *mut std::ffi::c_char);
}

fn files(root: &Path) -> Vec<String> {
    let output = std::process::Command::new("find").arg(root).arg("-type").arg("f").output().unwrap();
    let mut files: Vec<String> = String::from_utf8(output.stdout).unwrap().lines().map(str::to_owned).collect();
    files.retain(|f| !f.contains("/.ocicas/tmp/") && !f.ends_with("/.ocicas/lock"));
    files.sort();
    files
}

#[test]
fn operations_act_on_the_layout_opened_by_a_relative_path_after_a_chdir() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    // A decoy layout of the same relative name in the directory the process moves to.
    let decoy = Engine::create(second.join("layout")).unwrap();
    decoy.put_blob(b"decoy").unwrap();
    let decoy_before = files(decoy.root());

    std::env::set_current_dir(&first).unwrap();
    let engine = Engine::open("layout", &OpenOptions { create: true, ..OpenOptions::default() }).unwrap();
    let mut c_engine = std::ptr::null_mut();
    let relative = CString::new("layout").unwrap();
    assert_eq!(unsafe { ocicas_engine_open(relative.as_ptr(), 0, &mut c_engine) }, 0);
    let mut writer = engine.writer("started-before", &WriterOptions::default()).unwrap();
    writer.write(b"half ").unwrap();

    std::env::set_current_dir(&second).unwrap();
    writer.write(b"and half").unwrap();
    let from_writer = writer.commit(None, None, &Default::default()).unwrap();
    let blob = engine.put_blob(b"after the chdir").unwrap();
    let manifest =
        engine.put_json("application/vnd.oci.image.index.v1+json", &ocicas::spec::ImageIndex::empty()).unwrap();
    engine.ref_put("tag", &manifest, false).unwrap();
    let mut digest = std::ptr::null_mut();
    assert_eq!(unsafe { ocicas_blob_put(c_engine, b"from C".as_ptr(), 6, &mut digest) }, 0);
    unsafe { ocicas_string_free(digest) };
    unsafe { ocicas_engine_close(c_engine) };
    engine.gc(&GcOptions { dry_run: true, ..GcOptions::default() }).unwrap();
    assert!(engine.fsck().unwrap().is_sound());

    let layout = first.join("layout");
    assert_eq!(engine.root(), layout);
    let from_c = ocicas::Digest::of_bytes(ocicas::Algorithm::Sha256, b"from C");
    for digest in [&from_writer, &blob.digest, &manifest.digest, &from_c] {
        assert!(layout.join("blobs/sha256").join(digest.hex()).is_file(), "{digest} is not in the first layout");
    }
    assert_eq!(files(decoy.root()), decoy_before, "the decoy layout in the new working directory changed");
    assert!(Engine::open(&layout, &OpenOptions::default()).unwrap().ref_get("tag").is_ok());
}
