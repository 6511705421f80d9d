//! docker-archive (`docker save`) tarballs: import into the store in one pass, export back out.
//!
//! The reader (`ArchiveReader`) reads a plain archive file in place, or a stream (plain, gzip
//! or zstd, told by magic bytes) once (`scan`), holding small members in memory and staging
//! the others in ingests of its own (`stage`), never spooled whole into a temp dir; paths and
//! links resolve only inside the archive. Import builds OCI images from a reader, publishing
//! only what the images use and only once all of them checked out. The writer
//! (`ArchiveWriter`) streams an archive out blob by blob; export feeds it from the store.

mod export;
mod import;
mod reader;
mod reference;
mod scan;
mod stage;
mod writer;

use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

pub use export::ExportOptions;
pub use import::{ImportOptions, ImportedImage};
pub use reader::{ArchiveImage, ArchiveReader, ManifestFormat};
pub use scan::{list_docker_archive, read_manifest_items, read_manifest_items_with};
pub use writer::{ArchiveBlob, ArchiveWriter, ExportFormat};

use reference::Reference;
use stage::Staged;

pub(crate) const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Most characters of input text an error message quotes.
const EXCERPT_CHARS: usize = 80;
/// What a cancelled import says was cancelled.
const IMPORT: &str = "the docker archive import";
/// Most links followed to resolve one path.
const MAX_LINK_HOPS: usize = 16;

/// Told the bytes done so far, as an import stages them into the store or an export writes the
/// archive: what a progress bar shows.
#[derive(Clone)]
pub struct ArchiveProgress(pub Arc<dyn Fn(u64) + Send + Sync>);

impl std::fmt::Debug for ArchiveProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArchiveProgress")
    }
}

/// One image of `manifest.json` (containers/image's `ManifestItem`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManifestItem {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Vec<String>,
    pub layers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parent: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub layer_sources: HashMap<String, serde_json::Value>,
}

/// Which images of an archive to import (containers/image's `ChooseManifestItem`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ImageChoice {
    /// Every image of the archive.
    #[default]
    All,
    /// The first image one of whose RepoTags is this tag, both normalized as docker does
    /// (`busybox` is `docker.io/library/busybox:latest`).
    Tag(String),
    /// The image at this position in manifest.json.
    Index(usize),
    /// Exactly one image must exist.
    Single,
}

/// The images `choice` picks, as containers/image's `ChooseManifestItem` does.
pub(crate) fn choose_items(items: &[ManifestItem], choice: &ImageChoice) -> Result<Vec<ManifestItem>> {
    let chosen: Vec<ManifestItem> = match choice {
        ImageChoice::All => items.to_vec(),
        ImageChoice::Tag(tag) => item_tagged(items, tag)?.into_iter().collect(),
        ImageChoice::Index(index) => items.get(*index).cloned().into_iter().collect(),
        ImageChoice::Single if items.len() == 1 => items.to_vec(),
        ImageChoice::Single => {
            return Err(crate::error::invalid_argument(format!(
                "the archive holds {} images: choose one by tag or index",
                items.len()
            )));
        }
    };
    match (chosen.is_empty(), choice) {
        (true, ImageChoice::Tag(tag)) => {
            Err(crate::error::not_found(format!("no image tagged {} in the archive", excerpt(tag))))
        }
        (true, ImageChoice::Index(index)) => {
            Err(crate::error::not_found(format!("the archive has no image #{index} (it holds {})", items.len())))
        }
        (true, _) => Err(invalid_archive("manifest.json lists no images")),
        (false, _) => Ok(chosen),
    }
}

/// The first image with RepoTag `tag`, compared normalized; an invalid RepoTag met on the way
/// is an error, as in containers/image.
fn item_tagged(items: &[ManifestItem], tag: &str) -> Result<Option<ManifestItem>> {
    let wanted = Reference::parse_tagged(tag)?.to_string();
    for (index, item) in items.iter().enumerate() {
        for repo_tag in &item.repo_tags {
            let normalized = Reference::parse_normalized(repo_tag).map_err(|err| {
                invalid_archive(format!("RepoTag {} of image #{index}: {}", excerpt(repo_tag), err.message()))
            })?;
            if normalized.to_string() == wanted {
                return Ok(Some(item.clone()));
            }
        }
    }
    Ok(None)
}

pub(crate) fn invalid_archive(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidImage, format!("invalid docker archive: {}", message.into()))
}

/// Text from the input (a member name, a tag, a parser's message about the bytes) as an error
/// quotes it: in quotes, escaped, so no control character reaches a terminal, and cut to
/// `EXCERPT_CHARS` characters, so a message never carries the input's bytes at length.
pub(crate) fn excerpt(text: &str) -> String {
    let mut escaped = text.chars().flat_map(char::escape_debug);
    let quoted: String = escaped.by_ref().take(EXCERPT_CHARS).collect();
    match escaped.next() {
        Some(_) => format!("\"{quoted}…\""),
        None => format!("\"{quoted}\""),
    }
}

/// Feeds everything `reader` yields to `each`, `IO_CHUNK` bytes at a time; returns how many
/// bytes. A failure to read is `read_error`'s error; one of `each` is returned as it is.
pub(crate) fn for_each_chunk(
    mut reader: impl Read,
    read_error: impl Fn(std::io::Error) -> Error,
    mut each: impl FnMut(&[u8]) -> Result<()>,
) -> Result<u64> {
    let mut buf = vec![0u8; crate::content::IO_CHUNK];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                each(&buf[..n])?;
                total += n as u64;
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(read_error(err)),
        }
    }
}

/// The compressions a layer or an archive may come in, told by their magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    Gzip,
    Zstd,
}

impl Codec {
    pub(crate) fn detect(head: &[u8]) -> Option<Codec> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Codec::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Codec::Zstd)
        } else {
            None
        }
    }

    /// The decompressed bytes of `input`; gzip across all its members, as `gunzip` reads.
    pub(crate) fn decoder<'a>(self, input: impl BufRead + 'a) -> Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
            Codec::Zstd => Box::new(
                zstd::Decoder::with_buffer(input)
                    .map_err(|e| Error::new(ErrorKind::Io, format!("cannot start zstd: {e}")))?,
            ),
        })
    }

    fn layer_media_type(self) -> &'static str {
        match self {
            Codec::Gzip => LAYER_TAR_GZIP,
            Codec::Zstd => LAYER_TAR_ZSTD,
        }
    }
}

/// Normalizes a member name or link target to a path relative to the archive's root (empty
/// for the root itself), or `None` when it would leave the archive. `base` is the directory a
/// relative link is in.
pub(crate) fn clean_path(base: &str, path: &str) -> Option<String> {
    let mut parts: Vec<&str> =
        if path.starts_with('/') { Vec::new() } else { base.split('/').filter(|p| !p.is_empty()).collect() };
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// The full image name containerd and docker 25 use for a RepoTag (`busybox:latest` →
/// `docker.io/library/busybox:latest`); a name that is no docker reference is kept as it is.
pub(crate) fn normalized_image_name(repo_tag: &str) -> String {
    Reference::parse_normalized(repo_tag).map_or_else(|_| repo_tag.to_owned(), |reference| reference.to_string())
}

/// What the reader learned about one member.
#[derive(Debug, Clone)]
pub(crate) enum Member {
    /// A regular file read in place: its bytes are at `offset` in the archive file.
    InPlace { offset: u64, size: u64 },
    /// A regular file held in memory (a small member of a stream, a synthesized config).
    Memory(Arc<[u8]>),
    /// A regular file of a stream, staged in an ingest of the reader's.
    Staged(Staged),
    /// A symlink or hard link, target relative to the archive root (already cleaned).
    Link(String),
}

impl Member {
    /// The size of a regular member.
    fn size(&self) -> u64 {
        match self {
            Member::InPlace { size, .. } => *size,
            Member::Memory(bytes) => bytes.len() as u64,
            Member::Staged(staged) => staged.size,
            Member::Link(_) => 0,
        }
    }
}

/// Follows links from `name` to a regular member, a bounded number of hops; returns its name.
pub(crate) fn resolve(members: &HashMap<String, Member>, name: &str) -> Result<String> {
    let mut current =
        clean_path("", name).ok_or_else(|| invalid_archive(format!("path {} leaves the archive", excerpt(name))))?;
    for _ in 0..=MAX_LINK_HOPS {
        match members.get(&current) {
            Some(Member::Link(target)) => current = target.clone(),
            Some(_) => return Ok(current),
            None => {
                return Err(invalid_archive(format!(
                    "{} is not in the archive (resolved to {})",
                    excerpt(name),
                    excerpt(&current)
                )));
            }
        }
    }
    Err(invalid_archive(format!("{}: more than {MAX_LINK_HOPS} links, or a link loop", excerpt(name))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_inside_the_archive() {
        assert_eq!(clean_path("", "./a/b/../c").as_deref(), Some("a/c"));
        assert_eq!(clean_path("dir", "../x.tar").as_deref(), Some("x.tar"));
        assert_eq!(clean_path("dir", "/abs/y").as_deref(), Some("abs/y"));
        assert_eq!(clean_path("", "../../etc/passwd"), None);
        assert_eq!(clean_path("a", "../../b"), None);
        assert_eq!(clean_path("", "./").as_deref(), Some(""));
        assert_eq!(clean_path("", "./x").as_deref(), clean_path("", "x").as_deref());
    }

    #[test]
    fn repo_tags_normalize_like_docker() {
        assert_eq!(normalized_image_name("busybox:latest"), "docker.io/library/busybox:latest");
        assert_eq!(normalized_image_name("me/app:1"), "docker.io/me/app:1");
        assert_eq!(normalized_image_name("quay.io/me/app:1"), "quay.io/me/app:1");
        assert_eq!(normalized_image_name("localhost/app:1"), "localhost/app:1");
    }

    #[test]
    fn excerpts_are_escaped_and_short() {
        assert_eq!(excerpt("a\nb\u{1b}[0m\""), r#""a\nb\u{1b}[0m\"""#);
        let long = excerpt(&"x".repeat(500));
        assert_eq!(long.chars().count(), EXCERPT_CHARS + 3);
        assert!(long.ends_with("…\""));
    }

    #[test]
    fn link_loops_and_dangling_links_are_errors() {
        let mut members = HashMap::new();
        members.insert("a".to_owned(), Member::Link("b".to_owned()));
        members.insert("b".to_owned(), Member::Link("a".to_owned()));
        members.insert("c".to_owned(), Member::Link("nowhere".to_owned()));
        assert!(resolve(&members, "a").unwrap_err().message().contains("loop"));
        assert!(resolve(&members, "c").unwrap_err().message().contains("not in the archive"));
    }
}
