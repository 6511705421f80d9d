//! Named references: `index.json` entries whose `org.opencontainers.image.ref.name` annotation
//! names them. Updates are read-modify-write under the exclusive store lock with an atomic
//! replace, so concurrent taggers in several processes never lose an update.

use std::collections::HashSet;

use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result, invalid_argument, not_found};
use crate::spec::{ANNOTATION_REF_NAME, Descriptor, ImageIndex, is_document_media_type, unusable_entry_ref_name};

/// Checks a reference name against the grammar of the OCI `ref.name` annotation:
/// `component ("/" component)*`, `component = alphanum (separator alphanum)*`,
/// `separator = [-._:@+] | "--"`.
pub fn validate_ref_name(name: &str) -> Result<()> {
    let valid = !name.is_empty() && name.split('/').all(valid_component);
    if !valid {
        return Err(invalid_argument(format!(
            "invalid reference name {name:?}: components of [A-Za-z0-9] joined by one of -._:@+ or --, separated by /"
        )));
    }
    Ok(())
}

fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let is_separator = |b: u8| matches!(b, b'-' | b'.' | b'_' | b':' | b'@' | b'+');
    let mut i = 0;
    let mut expect_alphanum = true;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphanumeric() {
            expect_alphanum = false;
            i += 1;
        } else if expect_alphanum {
            return false;
        } else if bytes[i..].starts_with(b"--") {
            expect_alphanum = true;
            i += 2;
        } else if is_separator(bytes[i]) {
            expect_alphanum = true;
            i += 1;
        } else {
            return false;
        }
    }
    !bytes.is_empty() && !expect_alphanum
}

/// When a reference may be moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefUpdate<'a> {
    /// Only when absent or already equal.
    NoClobber,
    /// Whatever it points at.
    Force,
    /// Only when it points at this digest now (None: only when absent). Read-modify-write
    /// callers use this so a concurrent move is a `Clobber`, not a lost update.
    IfCurrent(Option<&'a crate::digest::Digest>),
}

impl Engine {
    /// Points `name` at `descriptor`. Idempotent for an equal descriptor; `Clobber` when the
    /// name points elsewhere and `force` is false. The target blob must be stored with the
    /// size the descriptor declares and, for a document media type, parse as that type.
    pub fn ref_put(&self, name: &str, descriptor: &Descriptor, force: bool) -> Result<()> {
        self.ref_update(name, descriptor, if force { RefUpdate::Force } else { RefUpdate::NoClobber })
    }

    /// Points `name` at `descriptor` when `condition` holds (see `RefUpdate`). A name that
    /// other tools left on several entries ends on one: without force, only when they are all
    /// equal to `descriptor`.
    pub fn ref_update(&self, name: &str, descriptor: &Descriptor, condition: RefUpdate<'_>) -> Result<()> {
        validate_ref_name(name)?;
        let _lock = self.layout.lock_exclusive()?;
        let entry = self.index_entry(name, descriptor)?;
        let mut index = self.read_index()?;
        let existing: Vec<&Descriptor> = index.manifests.iter().filter(|d| d.ref_name() == Some(name)).collect();
        let unusable = index.unusable_manifests.iter().filter(|e| unusable_entry_ref_name(e) == Some(name)).count();
        let all_equal = unusable == 0 && !existing.is_empty() && existing.iter().all(|d| **d == entry);
        if all_equal && existing.len() == 1 {
            return Ok(());
        }
        let current = existing.last().map(|d| &d.digest);
        let allowed = all_equal
            || match condition {
                RefUpdate::Force => true,
                RefUpdate::NoClobber => existing.is_empty() && unusable == 0,
                RefUpdate::IfCurrent(expected) => unusable == 0 && current == expected,
            };
        if !allowed {
            let now = current.map_or("nothing".to_owned(), |d| d.to_string());
            let entries = existing.len() + unusable;
            let ambiguous =
                if entries > 1 { format!(" (and is on {entries} entries of index.json)") } else { String::new() };
            return Err(Error::new(
                ErrorKind::Clobber,
                format!(
                    "reference {name:?} points at {now}{ambiguous}, not what this update expected; use force to move it"
                ),
            ));
        }
        remove_ref(&mut index, name);
        index.manifests.push(entry);
        self.layout.write_index(&index)
    }

    /// Points every name at its descriptor (moving names that exist) in one update of
    /// index.json: all of them or, on any error, none. A name may be given once (twice would
    /// put it on two entries, which umoci and oci-image-tool refuse as ambiguous).
    pub fn ref_put_all(&self, refs: &[(String, Descriptor)]) -> Result<()> {
        let mut names = HashSet::new();
        for (name, _) in refs {
            validate_ref_name(name)?;
            if !names.insert(name) {
                return Err(invalid_argument(format!("reference {name:?} is given twice in one update")));
            }
        }
        let _lock = self.layout.lock_exclusive()?;
        let entries = refs.iter().map(|(name, d)| self.index_entry(name, d)).collect::<Result<Vec<_>>>()?;
        let mut index = self.read_index()?;
        for (name, _) in refs {
            remove_ref(&mut index, name);
        }
        index.manifests.extend(entries);
        self.layout.write_index(&index)
    }

    /// The index.json entry of tag `name`: `descriptor` with its ref-name annotation, once the
    /// blob is found stored at the size it declares and, when its media type is a document's,
    /// parsing as one: a tag never names bytes as what they are not (GC and fsck would refuse
    /// the whole store for it). Called under the exclusive lock, the lock a GC sweep holds, so
    /// a tag never points at a blob swept in between.
    fn index_entry(&self, name: &str, descriptor: &Descriptor) -> Result<Descriptor> {
        let stored_size = self.blob_size(&descriptor.digest)?;
        if stored_size != descriptor.size {
            return Err(Error::new(
                ErrorKind::SizeMismatch,
                format!(
                    "cannot tag {name:?}: blob {} is {stored_size} bytes, the descriptor says {}",
                    descriptor.digest, descriptor.size
                ),
            ));
        }
        if is_document_media_type(&descriptor.media_type) {
            self.read_document(descriptor).map_err(|err| err.with_context(&format!("cannot tag {name:?}")))?;
        }
        let mut entry = descriptor.clone();
        entry.annotations.insert(ANNOTATION_REF_NAME.to_owned(), name.to_owned());
        Ok(entry)
    }

    /// The descriptor `name` points at (with its annotations, as stored in index.json).
    pub fn ref_get(&self, name: &str) -> Result<Descriptor> {
        validate_ref_name(name)?;
        self.read_index()?
            .manifests
            .into_iter()
            .rev()
            .find(|d| d.ref_name() == Some(name))
            .ok_or_else(|| not_found(format!("reference {name:?} not found in {}", self.root().display())))
    }

    /// Removes `name`; removing a name that is not there is not an error.
    pub fn ref_delete(&self, name: &str) -> Result<()> {
        validate_ref_name(name)?;
        let _lock = self.layout.lock_exclusive()?;
        let (mut index, read_size) = self.layout.read_index_to_mend()?;
        if !remove_ref(&mut index, name) {
            return Ok(());
        }
        self.layout.write_mended_index(&index, read_size)
    }

    /// Every named reference with its descriptor, in index.json order. (Like `ref_delete`, it
    /// reads an index.json over the JSON limit, so an oversized layout can be mended.)
    pub fn ref_list(&self) -> Result<Vec<(String, Descriptor)>> {
        let (index, _) = self.layout.read_index_to_mend()?;
        Ok(index.manifests.into_iter().filter_map(|d| Some((d.ref_name()?.to_owned(), d))).collect())
    }
}

/// Removes every entry named `name`, unusable ones too; returns whether there was one.
fn remove_ref(index: &mut ImageIndex, name: &str) -> bool {
    let before = index.manifests.len() + index.unusable_manifests.len();
    index.manifests.retain(|d| d.ref_name() != Some(name));
    index.unusable_manifests.retain(|e| unusable_entry_ref_name(e) != Some(name));
    index.manifests.len() + index.unusable_manifests.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_of_the_ref_name_grammar() {
        for name in ["latest", "v1.0", "a/b/c", "example.com/app:1.0", "x--y", "a@b+c", "1"] {
            assert!(validate_ref_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_names_outside_the_grammar() {
        for name in ["", "/", "a/", "/a", "a//b", ".a", "a.", "a..b", "a---b", "a b", "a\nb", "é", "a\0"] {
            let err = validate_ref_name(name).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{name:?}");
        }
    }
}
