//! C ABI of `archive`: docker-archive import and export.

use std::ffi::{c_char, c_void};
use std::io::{self, Write};

use super::archive_items::{ocicas_archive_item, ocicas_imported_images};
use super::cancel::{arg_cancel, ocicas_cancel};
use super::engine::ocicas_engine;
use super::stream::{CallbackReader, ocicas_read_cb};
use super::{
    arg_digest, arg_mut, arg_out, arg_ref, arg_str, arg_str_array, boundary, free_handle, into_c_string, into_handle,
    ocicas_status,
};
use crate::archive::{
    ArchiveBlob, ArchiveImage, ArchiveReader, ArchiveWriter, ExportFormat, ExportOptions, ImageChoice, ImportOptions,
    ManifestFormat,
};
use crate::error::{Result, invalid_argument};

/// `ocicas_archive_export` format: `<id>/layer.tar` directories, as docker save wrote before 25.
pub const OCICAS_ARCHIVE_LEGACY: u32 = 0;
/// `ocicas_archive_export` format: the docker 25+ form (an OCI layout inside).
pub const OCICAS_ARCHIVE_OCI: u32 = 1;

fn export_format(format: u32) -> Result<ExportFormat> {
    match format {
        OCICAS_ARCHIVE_LEGACY => Ok(ExportFormat::Legacy),
        OCICAS_ARCHIVE_OCI => Ok(ExportFormat::Oci),
        other => Err(invalid_argument(format!("unknown archive format {other}"))),
    }
}

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
/// gzip or zstd) from the file at `path` (a pipe or FIFO is read as a stream), or, when `path`
/// is NULL, from `read_cb` (read once, never spooled whole). `tag` selects the first image
/// with that RepoTag, both normalized as docker does (`busybox` matches
/// `docker.io/library/busybox:latest`); else `index` ≥ 0 the image at that position in
/// `manifest.json`; else (NULL, negative) every image is imported. `ref_name` (NULL: the
/// RepoTags) names the reference of the single image imported. `*out_result` receives the
/// images stored (read with `ocicas_imported_images_get`; free with
/// `ocicas_imported_images_free`). `OCICAS_ERR_INVALID_IMAGE` for a malformed or unsafe archive (a path
/// or link leaving it, a duplicate member, a truncated stream, …), `OCICAS_ERR_DIGEST_MISMATCH`
/// when a layer does not hash to its DiffID, `OCICAS_ERR_NOT_FOUND` when no image has the tag
/// or index, `OCICAS_ERR_TOO_LARGE` past a limit (`OCICAS_LIMIT_ARCHIVE_*`). `cancel` (NULL:
/// none) stops the import with `OCICAS_ERR_CANCELLED` when requested, at its next chunk read or
/// staged (once every member checked out, the import publishes and finishes). On failure
/// nothing is tagged, and nothing is stored unless only the final index.json update failed
/// (then the published blobs are unreferenced and the next GC removes them).
///
/// # Safety
/// `engine` is a live engine; strings NULL or NUL-terminated; `read_cb`/`user_data` valid for
/// the call; `cancel` NULL or a live flag; `out_result` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_archive_import(
    engine: *const ocicas_engine,
    path: *const c_char,
    read_cb: ocicas_read_cb,
    user_data: *mut c_void,
    tag: *const c_char,
    index: i64,
    ref_name: *const c_char,
    cancel: *const ocicas_cancel,
    out_result: *mut *mut ocicas_imported_images,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let out_result = unsafe { arg_out(out_result, "out_result") }?;
        let choice = match unsafe { image_choice(tag, index) }? {
            ImageChoice::Single => ImageChoice::All,
            choice => choice,
        };
        let ref_names =
            if ref_name.is_null() { Vec::new() } else { vec![unsafe { arg_str(ref_name, "ref_name") }?.to_owned()] };
        let cancel = unsafe { arg_cancel(cancel) };
        let options = ImportOptions { choice, ref_names, cancel, ..ImportOptions::default() };
        let images = if path.is_null() {
            let callback = read_cb.ok_or_else(|| invalid_argument("give a path or a read_cb"))?;
            engine.engine.import_docker_archive(CallbackReader { callback, user_data }, &options)?
        } else {
            let path = unsafe { arg_str(path, "path") }?;
            engine.engine.import_docker_archive_file(path.as_ref(), &options)?
        };
        *out_result = into_handle(ocicas_imported_images::new(&images));
        Ok(())
    })
}

/// Exports the images `refs[0..n_refs]` point at as one docker-archive (what `docker load` and
/// `skopeo copy docker-archive:` read), in the legacy form or, with `OCICAS_ARCHIVE_OCI`
/// (`format`), the docker 25+ form (an OCI layout inside), written through `write_cb`.
/// `repo_tags` is NULL (each image's RepoTags is its reference name when that is `repo:tag`)
/// or `n_refs` lists, each a NULL-terminated array of the RepoTags (`name:tag`) of the matching
/// image (`{"app:1", "app:latest", NULL}`; an empty list gives the default). Shared layers are
/// written once. `OCICAS_ERR_INVALID_ARGUMENT` for a RepoTag that is not `name:tag`.
/// `cancel` (NULL: none) stops the export with `OCICAS_ERR_CANCELLED` when requested, at its
/// next chunk read or written: what `write_cb` took is then an archive cut short.
///
/// # Safety
/// `engine` is a live engine; `refs` points at `n_refs` strings; `repo_tags` is NULL or points
/// at `n_refs` NULL-terminated arrays of strings; `cancel` NULL or a live flag.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_archive_export(
    engine: *const ocicas_engine,
    refs: *const *const c_char,
    repo_tags: *const *const *const c_char,
    n_refs: usize,
    format: u32,
    write_cb: ocicas_write_cb,
    user_data: *mut c_void,
    cancel: *const ocicas_cancel,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let callback = write_cb.ok_or_else(|| invalid_argument("argument write_cb is NULL"))?;
        let names = unsafe { arg_str_array(refs, n_refs, "refs") }?;
        let tags: Vec<Vec<String>> = if repo_tags.is_null() {
            Vec::new()
        } else {
            (0..n_refs)
                .map(|i| unsafe { null_terminated_strings(*repo_tags.add(i), "repo_tags") })
                .collect::<Result<_>>()?
        };
        let format = export_format(format)?;
        engine.engine.export_docker_archive(
            &names,
            &tags,
            CallbackWriter { callback, user_data },
            &ExportOptions { format, cancel: unsafe { arg_cancel(cancel) }, ..ExportOptions::default() },
        )?;
        Ok(())
    })
}

/// `ocicas_archive_reader_manifest` format: a Docker schema2 manifest.
pub const OCICAS_MANIFEST_DOCKER: u32 = 0;
/// `ocicas_archive_reader_manifest` format: an OCI image manifest.
pub const OCICAS_MANIFEST_OCI: u32 = 1;
/// `ocicas_archive_writer_put_blob` kind: an image config.
pub const OCICAS_ARCHIVE_BLOB_CONFIG: u32 = 0;
/// `ocicas_archive_writer_put_blob` kind: an uncompressed layer tar, named by its DiffID.
pub const OCICAS_ARCHIVE_BLOB_LAYER: u32 = 1;

/// An open docker-archive (containers/image's tarfile Reader and Source).
pub struct ocicas_archive_reader {
    reader: ArchiveReader,
    /// The images of `manifest.json`, as `ocicas_archive_reader_item` gives them.
    items: Vec<ocicas_archive_item>,
}

/// A docker-archive being written (containers/image's tarfile Writer and Destination).
pub struct ocicas_archive_writer {
    /// `None` once committed.
    writer: Option<ArchiveWriter<CallbackWriter>>,
}

/// Opens a docker-archive for reading: the file at `path` (a plain tar is read in place; a
/// gzip or zstd one once), or, when `path` is NULL, `read_cb` read once. Members read once go
/// into the store under the reader's lease, released by `ocicas_archive_reader_free` (GC then
/// takes what was not tagged). The lease lasts an hour past the reader's last read of what it
/// staged (each such read, and staging itself, renews it), so a crashed process keeps nothing
/// for long; a reader that read nothing staged for longer fails its next such read with
/// `OCICAS_ERR_NOT_FOUND` and must be opened again. Errors as
/// `ocicas_archive_import`.
///
/// # Safety
/// `engine` is a live engine that outlives the reader; `path` NULL or NUL-terminated;
/// `read_cb`/`user_data` valid for the call; `out_reader` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_archive_reader_open(
    engine: *const ocicas_engine,
    path: *const c_char,
    read_cb: ocicas_read_cb,
    user_data: *mut c_void,
    out_reader: *mut *mut ocicas_archive_reader,
) -> ocicas_status {
    boundary(|| {
        let engine = unsafe { arg_ref(engine, "engine") }?;
        let out_reader = unsafe { arg_out(out_reader, "out_reader") }?;
        let reader = if path.is_null() {
            let callback = read_cb.ok_or_else(|| invalid_argument("give a path or a read_cb"))?;
            engine.engine.read_docker_archive(CallbackReader { callback, user_data })?
        } else {
            engine.engine.open_docker_archive(unsafe { arg_str(path, "path") }?.as_ref())?
        };
        let items = reader.items().iter().map(ocicas_archive_item::new).collect();
        *out_reader = into_handle(ocicas_archive_reader { reader, items });
        Ok(())
    })
}

/// How many images the archive's `manifest.json` lists. 0 for a NULL reader.
///
/// # Safety
/// `reader` is NULL or a live reader.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_archive_reader_item_count(reader: *const ocicas_archive_reader) -> usize {
    unsafe { reader.as_ref() }.map_or(0, |reader| reader.items.len())
}

/// Image `index` of the archive's `manifest.json`, owned by the reader (read it with the
/// `ocicas_archive_item_*` accessors); NULL for a NULL reader or `index` ≥ the count.
///
/// # Safety
/// `reader` is NULL or a live reader.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_archive_reader_item(
    reader: *const ocicas_archive_reader,
    index: usize,
) -> *const ocicas_archive_item {
    unsafe { reader.as_ref() }.and_then(|reader| reader.items.get(index)).map_or(std::ptr::null(), |item| item)
}

/// The strings of a NULL-terminated array (none when `array` is NULL), at most
/// `MAX_STRING_LIST` of them.
unsafe fn null_terminated_strings(array: *const *const c_char, what: &str) -> Result<Vec<String>> {
    let mut strings = Vec::new();
    if array.is_null() {
        return Ok(strings);
    }
    for i in 0..MAX_STRING_LIST {
        let string = unsafe { *array.add(i) };
        if string.is_null() {
            return Ok(strings);
        }
        strings.push(unsafe { arg_str(string, what) }?.to_owned());
    }
    Err(invalid_argument(format!("{what}: a list has more than {MAX_STRING_LIST} strings or no NULL at its end")))
}

/// Most strings read from one NULL-terminated array.
const MAX_STRING_LIST: usize = 4096;

/// The image choice of `tag` (when not NULL), else `index` (when not negative), else the
/// archive's only image.
unsafe fn image_choice(tag: *const c_char, index: i64) -> Result<ImageChoice> {
    Ok(match (tag.is_null(), usize::try_from(index)) {
        (false, _) => ImageChoice::Tag(unsafe { arg_str(tag, "tag") }?.to_owned()),
        (true, Ok(index)) => ImageChoice::Index(index),
        (true, Err(_)) => ImageChoice::Single,
    })
}

/// The image chosen by `tag` (when not NULL), else by `index` (when not negative), else the
/// archive's only image (`OCICAS_ERR_INVALID_ARGUMENT` when it holds several).
unsafe fn chosen_image(reader: &ArchiveReader, tag: *const c_char, index: i64) -> Result<ArchiveImage> {
    Ok(reader.choose(&unsafe { image_choice(tag, index) }?)?.remove(0))
}

/// `*out_manifest` receives the manifest of the chosen image (see `chosen_image`: `tag`, else
/// `index` ≥ 0, else the only image), synthesized as `OCICAS_MANIFEST_DOCKER` or
/// `OCICAS_MANIFEST_OCI`: its config, and its layers by DiffID, uncompressed. These are the
/// manifest's exact bytes (canonical JSON; its digest is their sha256). `OCICAS_ERR_NOT_FOUND`
/// when no image matches.
///
/// # Safety
/// `reader` is a live reader; `tag` NULL or NUL-terminated; `out_manifest` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_archive_reader_manifest(
    reader: *const ocicas_archive_reader,
    tag: *const c_char,
    index: i64,
    format: u32,
    out_manifest: *mut *mut c_char,
) -> ocicas_status {
    boundary(|| {
        let reader = unsafe { arg_ref(reader, "reader") }?;
        let out_manifest = unsafe { arg_out(out_manifest, "out_manifest") }?;
        let format = match format {
            OCICAS_MANIFEST_DOCKER => ManifestFormat::DockerSchema2,
            OCICAS_MANIFEST_OCI => ManifestFormat::Oci,
            other => return Err(invalid_argument(format!("unknown manifest format {other}"))),
        };
        let image = unsafe { chosen_image(&reader.reader, tag, index) }?;
        let (_, bytes) = reader.reader.manifest(&image, format)?;
        *out_manifest = into_c_string(String::from_utf8(bytes).map_err(|e| invalid_argument(e.to_string()))?);
        Ok(())
    })
}

/// Writes a blob of the chosen image (as in `ocicas_archive_reader_manifest`) through
/// `write_cb`: its config by digest, or a layer by DiffID (uncompressed); then `*out_size`
/// receives its size in bytes. The bytes are verified as they pass: when they do not hash to
/// `digest`, the call fails with `OCICAS_ERR_DIGEST_MISMATCH` after the last of them was
/// written (discard them). `OCICAS_ERR_NOT_FOUND` when the image has no such blob;
/// `OCICAS_ERR_IO` when `write_cb` fails. Reading a staged member renews the reader's lease:
/// `OCICAS_ERR_NOT_FOUND` when it had expired (see `ocicas_archive_reader_open`),
/// `OCICAS_ERR_LOCKED` when the store lock to renew it was not had within `lock_timeout`.
///
/// # Safety
/// `reader` is a live reader; strings NULL or NUL-terminated as documented;
/// `write_cb`/`user_data` valid for the call; `out_size` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_archive_reader_read_blob(
    reader: *const ocicas_archive_reader,
    tag: *const c_char,
    index: i64,
    digest: *const c_char,
    write_cb: ocicas_write_cb,
    user_data: *mut c_void,
    out_size: *mut u64,
) -> ocicas_status {
    boundary(|| {
        let reader = unsafe { arg_ref(reader, "reader") }?;
        let digest = unsafe { arg_digest(digest, "digest") }?;
        let callback = write_cb.ok_or_else(|| invalid_argument("argument write_cb is NULL"))?;
        let out_size = unsafe { arg_out(out_size, "out_size") }?;
        let image = unsafe { chosen_image(&reader.reader, tag, index) }?;
        *out_size = reader.reader.copy_blob(&image, &digest, CallbackWriter { callback, user_data })?;
        Ok(())
    })
}

/// Closes a reader and releases its lease. NULL is a no-op.
///
/// # Safety
/// `reader` is NULL or a reader not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_archive_reader_free(reader: *mut ocicas_archive_reader) {
    unsafe { free_handle(reader) }
}

/// Starts a docker-archive written through `write_cb` in `format` (`OCICAS_ARCHIVE_LEGACY` or
/// `OCICAS_ARCHIVE_OCI`). Blobs are written as they are put; `manifest.json` only by
/// `ocicas_archive_writer_commit`, so an archive abandoned before it is not loadable.
///
/// # Safety
/// `write_cb`/`user_data` valid for the writer's life; `out_writer` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_archive_writer_new(
    format: u32,
    write_cb: ocicas_write_cb,
    user_data: *mut c_void,
    out_writer: *mut *mut ocicas_archive_writer,
) -> ocicas_status {
    boundary(|| {
        let out_writer = unsafe { arg_out(out_writer, "out_writer") }?;
        let callback = write_cb.ok_or_else(|| invalid_argument("argument write_cb is NULL"))?;
        let writer = ArchiveWriter::new(CallbackWriter { callback, user_data }, export_format(format)?);
        *out_writer = into_handle(ocicas_archive_writer { writer: Some(writer) });
        Ok(())
    })
}

fn live_writer(writer: &mut ocicas_archive_writer) -> Result<&mut ArchiveWriter<CallbackWriter>> {
    writer.writer.as_mut().ok_or_else(|| invalid_argument("the archive writer was committed"))
}

/// `*out_has` is whether the archive already holds blob `digest` (TryReusingBlob).
///
/// # Safety
/// `writer` is a live writer; `digest` NUL-terminated; `out_has` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_archive_writer_has_blob(
    writer: *mut ocicas_archive_writer,
    digest: *const c_char,
    out_has: *mut bool,
) -> ocicas_status {
    boundary(|| {
        let writer = live_writer(unsafe { arg_mut(writer, "writer") }?)?;
        let digest = unsafe { arg_digest(digest, "digest") }?;
        let out_has = unsafe { arg_out(out_has, "out_has") }?;
        *out_has = writer.has_blob(&digest);
        Ok(())
    })
}

/// Writes a blob of `size` bytes read from `read_cb`, as `kind` (`OCICAS_ARCHIVE_BLOB_CONFIG`
/// or `_LAYER`), checking that they are exactly `size` bytes hashing to `digest`:
/// `OCICAS_ERR_SIZE_MISMATCH` / `OCICAS_ERR_DIGEST_MISMATCH` otherwise, and the writer is then
/// unusable (`OCICAS_ERR_INVALID_ARGUMENT` from then on). A blob already written is skipped
/// without calling `read_cb`.
///
/// # Safety
/// `writer` is a live writer; `digest` NUL-terminated; `read_cb`/`user_data` valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_archive_writer_put_blob(
    writer: *mut ocicas_archive_writer,
    kind: u32,
    digest: *const c_char,
    size: u64,
    read_cb: ocicas_read_cb,
    user_data: *mut c_void,
) -> ocicas_status {
    boundary(|| {
        let writer = live_writer(unsafe { arg_mut(writer, "writer") }?)?;
        let digest = unsafe { arg_digest(digest, "digest") }?;
        let callback = read_cb.ok_or_else(|| invalid_argument("argument read_cb is NULL"))?;
        let kind = match kind {
            OCICAS_ARCHIVE_BLOB_CONFIG => ArchiveBlob::Config,
            OCICAS_ARCHIVE_BLOB_LAYER => ArchiveBlob::Layer,
            other => return Err(invalid_argument(format!("unknown archive blob kind {other}"))),
        };
        writer.put_blob(kind, &digest, size, CallbackReader { callback, user_data })
    })
}

/// Records an image: its config and its layers by DiffID (all put before), tagged
/// `repo_tags[0..n_tags]`. `OCICAS_ERR_INVALID_ARGUMENT` when a blob was not put.
///
/// # Safety
/// `writer` is a live writer; `config` NUL-terminated; `diff_ids` and `repo_tags` point at
/// `n_layers` and `n_tags` strings (NULL when the count is 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_archive_writer_add_image(
    writer: *mut ocicas_archive_writer,
    config: *const c_char,
    diff_ids: *const *const c_char,
    n_layers: usize,
    repo_tags: *const *const c_char,
    n_tags: usize,
) -> ocicas_status {
    boundary(|| {
        let writer = live_writer(unsafe { arg_mut(writer, "writer") }?)?;
        let config = unsafe { arg_digest(config, "config") }?;
        let diff_ids = unsafe { arg_str_array(diff_ids, n_layers, "diff_ids") }?
            .into_iter()
            .map(str::parse)
            .collect::<Result<Vec<_>>>()?;
        let repo_tags: Vec<String> =
            unsafe { arg_str_array(repo_tags, n_tags, "repo_tags") }?.into_iter().map(str::to_owned).collect();
        writer.add_image(&config, &diff_ids, &repo_tags)
    })
}

/// Writes `manifest.json` (and the rest of the chosen form) and ends the archive. The writer
/// takes nothing more afterwards; free it with `ocicas_archive_writer_free`.
///
/// # Safety
/// `writer` is a live writer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_archive_writer_commit(writer: *mut ocicas_archive_writer) -> ocicas_status {
    boundary(|| {
        let writer = unsafe { arg_mut(writer, "writer") }?;
        let live = writer.writer.take().ok_or_else(|| invalid_argument("the archive writer was committed"))?;
        live.commit().map(|_| ())
    })
}

/// Frees a writer; one not committed is abandoned (its output lacks `manifest.json`, so it is
/// not a loadable archive). NULL is a no-op.
///
/// # Safety
/// `writer` is NULL or a writer not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_archive_writer_free(writer: *mut ocicas_archive_writer) {
    unsafe { free_handle(writer) }
}
