//! C ABI of `archive`: docker-archive import and export.

use std::ffi::{c_char, c_void};
use std::io::{self, Write};

use super::engine::ocicas_engine;
use super::stream::{CallbackReader, ocicas_read_cb};
use super::{arg_out, arg_ref, arg_str, arg_str_array, boundary, into_c_string, ocicas_status};
use crate::archive::{ExportFormat, ExportOptions, ImageChoice, ImportOptions};
use crate::error::invalid_argument;

/// `ocicas_archive_export` format: `<id>/layer.tar` directories, as docker save wrote before 25.
pub const OCICAS_ARCHIVE_LEGACY: u32 = 0;
/// `ocicas_archive_export` format: the docker 25+ form (an OCI layout inside).
pub const OCICAS_ARCHIVE_OCI: u32 = 1;

/// Writes `len` bytes of the archive being exported. Returns 0 on success, non-zero on failure
/// (the export then stops with `OCICAS_ERR_IO`).
pub type ocicas_write_cb = Option<unsafe extern "C" fn(data: *const u8, len: usize, user_data: *mut c_void) -> i32>;

struct CallbackWriter {
    callback: unsafe extern "C" fn(*const u8, usize, *mut c_void) -> i32,
    user_data: *mut c_void,
}

impl Write for CallbackWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match unsafe { (self.callback)(buf.as_ptr(), buf.len(), self.user_data) } {
            0 => Ok(buf.len()),
            code => Err(io::Error::other(format!("the write callback failed with {code}"))),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Imports the images of a docker-archive (`docker save` output: legacy or docker 25+; plain,
/// gzip or zstd) from the file at `path`, or, when `path` is NULL, from `read_cb` (read once,
/// never spooled). `tag` selects the image with that RepoTag (NULL: every image); `ref_name`
/// (NULL: the RepoTags) names the reference of the single image imported. `*out_result`
/// receives a JSON array of `{"manifest":descriptor,"refs":[…],"repoTags":[…]}` (free with
/// `ocicas_string_free`). `OCICAS_ERR_INVALID_IMAGE` for a malformed or unsafe archive (a path
/// or link leaving it, a duplicate member, a truncated stream, …), `OCICAS_ERR_DIGEST_MISMATCH`
/// when a layer does not hash to its DiffID, `OCICAS_ERR_TOO_LARGE` past a size limit. On
/// failure nothing is tagged.
///
/// # Safety
/// `engine` is a live engine; strings NULL or NUL-terminated; `read_cb`/`user_data` valid for
/// the call; `out_result` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_archive_import(
    engine: *const ocicas_engine,
    path: *const c_char,
    read_cb: ocicas_read_cb,
    user_data: *mut c_void,
    tag: *const c_char,
    ref_name: *const c_char,
    out_result: *mut *mut c_char,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let out_result = unsafe { arg_out(out_result, "out_result") }?;
        let choice =
            if tag.is_null() { ImageChoice::All } else { ImageChoice::Tag(unsafe { arg_str(tag, "tag") }?.to_owned()) };
        let ref_names =
            if ref_name.is_null() { Vec::new() } else { vec![unsafe { arg_str(ref_name, "ref_name") }?.to_owned()] };
        let options = ImportOptions { choice, ref_names, compression: None };
        let images = if path.is_null() {
            let callback = read_cb.ok_or_else(|| invalid_argument("give a path or a read_cb"))?;
            engine.engine.import_docker_archive(CallbackReader { callback, user_data }, &options)?
        } else {
            let path = unsafe { arg_str(path, "path") }?;
            engine.engine.import_docker_archive_file(path.as_ref(), &options)?
        };
        let json: Vec<serde_json::Value> = images.iter().map(|i| i.to_json()).collect();
        *out_result = into_c_string(serde_json::Value::from(json).to_string());
        Ok(())
    })
}

/// Exports the images `refs[0..n_refs]` point at as one docker-archive (what `docker load` and
/// `skopeo copy docker-archive:` read), in the legacy form or, with `OCICAS_ARCHIVE_OCI` (`format`), the
/// docker 25+ form (an OCI layout inside), written through `write_cb`. `repo_tags` is
/// NULL (each image's RepoTags is its reference name when that is `repo:tag`) or
/// `n_refs` strings, each the RepoTag of the matching image. Shared layers are written once.
///
/// # Safety
/// `engine` is a live engine; `refs` (and `repo_tags` unless NULL) point at `n_refs` strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_archive_export(
    engine: *const ocicas_engine,
    refs: *const *const c_char,
    repo_tags: *const *const c_char,
    n_refs: usize,
    format: u32,
    write_cb: ocicas_write_cb,
    user_data: *mut c_void,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let callback = write_cb.ok_or_else(|| invalid_argument("argument write_cb is NULL"))?;
        let names = unsafe { arg_str_array(refs, n_refs, "refs") }?;
        let tags: Vec<Vec<String>> = if repo_tags.is_null() {
            Vec::new()
        } else {
            unsafe { arg_str_array(repo_tags, n_refs, "repo_tags") }?.into_iter().map(|t| vec![t.to_owned()]).collect()
        };
        let format = match format {
            OCICAS_ARCHIVE_LEGACY => ExportFormat::Legacy,
            OCICAS_ARCHIVE_OCI => ExportFormat::Oci,
            other => return Err(invalid_argument(format!("unknown archive format {other}"))),
        };
        engine.engine.export_docker_archive(
            &names,
            &tags,
            CallbackWriter { callback, user_data },
            &ExportOptions { format },
        )?;
        Ok(())
    })
}
