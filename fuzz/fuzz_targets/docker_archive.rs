#![no_main]
//! Any bytes as a docker-archive, imported from a stream and from a file (read in place when
//! it is a plain tar), each into a fresh layout: an error or images, never a panic; on error
//! nothing is tagged, on success every tagged image verifies (see `check_import`).

use libfuzzer_sys::fuzz_target;
use ocicas::archive::ImportOptions;
use ocicas_fuzz::{check_import, fresh_store};

fuzz_target!(|data: &[u8]| {
    let (_dir, engine) = fresh_store();
    let result = engine.import_docker_archive(data, &ImportOptions::default());
    check_import(&engine, &result);

    let (dir, engine) = fresh_store();
    let path = dir.path().join("archive.tar");
    std::fs::write(&path, data).expect("the archive file is writable");
    let result = engine.import_docker_archive_file(&path, &ImportOptions::default());
    check_import(&engine, &result);
});
