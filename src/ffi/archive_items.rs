//! The typed values of `archive`: the images a docker-archive's `manifest.json` lists (read
//! through an `ocicas_archive_reader`) and the images an import stored, read with accessors.

use std::ffi::{CString, c_char};

use super::c_string;
use super::descriptor::{ocicas_descriptor, ocicas_string_list};
use super::free_handle;
use crate::archive::{ImportedImage, ManifestItem};

/// One image of a docker-archive's `manifest.json` (containers/image's `ManifestItem`), owned
/// by the `ocicas_archive_reader` it came from. Immutable.
pub struct ocicas_archive_item {
    config: CString,
    repo_tags: ocicas_string_list,
    layers: ocicas_string_list,
}

impl ocicas_archive_item {
    pub(super) fn new(item: &ManifestItem) -> Self {
        ocicas_archive_item {
            config: c_string(&item.config),
            repo_tags: ocicas_string_list::new(&item.repo_tags),
            layers: ocicas_string_list::new(&item.layers),
        }
    }
}

/// One image an import stored and tagged, owned by its `ocicas_imported_images`. Immutable.
pub struct ocicas_imported_image {
    manifest: ocicas_descriptor,
    refs: ocicas_string_list,
    repo_tags: ocicas_string_list,
}

/// The images `ocicas_archive_import` stored, in the archive's order; freed with
/// `ocicas_imported_images_free`. Immutable: any number of threads may read one at once.
pub struct ocicas_imported_images {
    images: Vec<ocicas_imported_image>,
}

impl ocicas_imported_images {
    pub(super) fn new(images: &[ImportedImage]) -> Self {
        let images = images
            .iter()
            .map(|image| ocicas_imported_image {
                manifest: ocicas_descriptor::new(&image.manifest),
                refs: ocicas_string_list::new(&image.refs),
                repo_tags: ocicas_string_list::new(&image.repo_tags),
            })
            .collect();
        ocicas_imported_images { images }
    }
}

/// The path of the image's config in the archive (e.g. `<sha256 hex>.json`). NULL for a NULL
/// item.
///
/// # Safety
/// `item` is NULL or one `ocicas_archive_reader_item` returned, its reader not freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_archive_item_config(item: *const ocicas_archive_item) -> *const c_char {
    unsafe { item.as_ref() }.map_or(std::ptr::null(), |item| item.config.as_ptr())
}

/// The image's RepoTags (`name:tag`, empty when untagged), owned by the item. NULL for a NULL
/// item.
///
/// # Safety
/// As `ocicas_archive_item_config`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_archive_item_repo_tags(item: *const ocicas_archive_item) -> *const ocicas_string_list {
    unsafe { item.as_ref() }.map_or(std::ptr::null(), |item| &item.repo_tags)
}

/// The paths of the image's layers in the archive, base layer first, owned by the item. NULL
/// for a NULL item.
///
/// # Safety
/// As `ocicas_archive_item_config`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_archive_item_layers(item: *const ocicas_archive_item) -> *const ocicas_string_list {
    unsafe { item.as_ref() }.map_or(std::ptr::null(), |item| &item.layers)
}

/// Frees the images of an import and everything their accessors returned. NULL is a no-op.
///
/// # Safety
/// `images` is NULL or a list not freed before, that no other thread reads during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_imported_images_free(images: *mut ocicas_imported_images) {
    unsafe { free_handle(images) }
}

/// How many images the import stored. 0 for a NULL list.
///
/// # Safety
/// `images` is NULL or a live list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_imported_images_count(images: *const ocicas_imported_images) -> usize {
    unsafe { images.as_ref() }.map_or(0, |images| images.images.len())
}

/// Image `index` of the list, owned by it; NULL for a NULL list or `index` ≥ the count.
///
/// # Safety
/// `images` is NULL or a live list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_imported_images_get(
    images: *const ocicas_imported_images,
    index: usize,
) -> *const ocicas_imported_image {
    unsafe { images.as_ref() }.and_then(|images| images.images.get(index)).map_or(std::ptr::null(), |image| image)
}

/// The descriptor of the image's stored manifest, owned by the image. NULL for a NULL image.
///
/// # Safety
/// `image` is NULL or one `ocicas_imported_images_get` returned, its list not freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_imported_image_manifest(
    image: *const ocicas_imported_image,
) -> *const ocicas_descriptor {
    unsafe { image.as_ref() }.map_or(std::ptr::null(), |image| &image.manifest)
}

/// The references the image was tagged with, owned by the image. NULL for a NULL image.
///
/// # Safety
/// As `ocicas_imported_image_manifest`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_imported_image_refs(image: *const ocicas_imported_image) -> *const ocicas_string_list {
    unsafe { image.as_ref() }.map_or(std::ptr::null(), |image| &image.refs)
}

/// The image's RepoTags in the archive, owned by the image. NULL for a NULL image.
///
/// # Safety
/// As `ocicas_imported_image_manifest`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ocicas_imported_image_repo_tags(
    image: *const ocicas_imported_image,
) -> *const ocicas_string_list {
    unsafe { image.as_ref() }.map_or(std::ptr::null(), |image| &image.repo_tags)
}
