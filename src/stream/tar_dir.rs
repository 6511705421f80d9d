//! A layer's uncompressed tar, built from a directory tree while it is streamed: regular files,
//! directories, symlinks, hardlinks, devices and FIFOs, with modes (setuid included), owners,
//! mtimes and xattrs. Entries are sorted by name, so the same tree always gives the same bytes.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// Writes the tar of everything under `root` (not `root` itself) to `out`.
pub fn write_dir_tar(root: &Path, out: impl Write) -> Result<()> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut tar = DirTar { root, builder, hardlinks: HashMap::new() };
    tar.walk(Path::new(""))?;
    tar.builder.into_inner().map_err(|e| tar_error(root, e))?;
    Ok(())
}

struct DirTar<'a, W: Write> {
    root: &'a Path,
    builder: tar::Builder<W>,
    /// First path seen of each multiply-linked file, by (device, inode).
    hardlinks: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> DirTar<'_, W> {
    fn walk(&mut self, relative: &Path) -> Result<()> {
        let dir = self.root.join(relative);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(|e| Error::io("cannot read directory", &dir, e))?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| Error::io("cannot read directory", &dir, e))?;
        names.sort();
        for name in names {
            let child = relative.join(&name);
            let path = self.root.join(&child);
            let meta = fs::symlink_metadata(&path).map_err(|e| Error::io("cannot stat", &path, e))?;
            if meta.file_type().is_socket() {
                continue; // tar cannot hold sockets
            }
            self.append(&child, &path, &meta)?;
            if meta.is_dir() {
                self.walk(&child)?;
            }
        }
        Ok(())
    }

    fn append(&mut self, relative: &Path, path: &Path, meta: &fs::Metadata) -> Result<()> {
        let failed = |e: io::Error| tar_error(path, e);
        let xattrs = read_xattrs(path)?;
        if !xattrs.is_empty() {
            let records = xattrs.iter().map(|(key, value)| (key.as_str(), value.as_slice()));
            self.builder.append_pax_extensions(records).map_err(failed)?;
        }
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
        header.set_mode(meta.mode() & 0o7777);
        header.set_size(0);
        let file_type = meta.file_type();
        if meta.is_file() && meta.nlink() > 1 {
            if let Some(first) = self.hardlinks.get(&(meta.dev(), meta.ino())) {
                header.set_entry_type(tar::EntryType::Link);
                return self.builder.append_link(&mut header, relative, first).map_err(failed);
            }
            self.hardlinks.insert((meta.dev(), meta.ino()), relative.to_path_buf());
        }
        if meta.is_file() {
            header.set_size(meta.len());
            let file = open_regular_file(path, meta)?;
            let data = HeaderSized { file, size: meta.len(), remaining: meta.len() };
            self.builder.append_data(&mut header, relative, data).map_err(failed)
        } else if file_type.is_symlink() {
            let target = fs::read_link(path).map_err(|e| Error::io("cannot read link", path, e))?;
            self.builder.append_link(&mut header, relative, target).map_err(failed)
        } else {
            if file_type.is_char_device() || file_type.is_block_device() {
                let device = meta.rdev();
                header.set_device_major(libc::major(device)).map_err(failed)?;
                header.set_device_minor(libc::minor(device)).map_err(failed)?;
            }
            self.builder.append_data(&mut header, relative, io::empty()).map_err(failed)
        }
    }
}

/// Opens the regular file `meta` describes, without following a symlink or blocking on a FIFO
/// that took its place since.
fn open_regular_file(path: &Path, meta: &fs::Metadata) -> Result<File> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io("cannot open", path, e))?;
    let opened = file.metadata().map_err(|e| Error::io("cannot stat", path, e))?;
    if !opened.is_file() || (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
        return Err(Error::new(
            ErrorKind::Io,
            format!("cannot add {} to the layer tar: it was replaced while the tar was built", path.display()),
        ));
    }
    Ok(file)
}

/// A file's bytes for the tar: exactly the size its header gives. A file that turns out
/// shorter or longer changed while it was read (GNU tar's "file changed as we read it"): that
/// is an error, never a tar whose data disagrees with its header.
struct HeaderSized {
    file: File,
    size: u64,
    remaining: u64,
}

impl Read for HeaderSized {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            // Everything the header promised was read: one byte more means the file grew.
            return match self.file.read(&mut [0u8; 1])? {
                0 => Ok(0),
                _ => Err(self.changed("grew past")),
            };
        }
        let want = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(self.changed("shrank below"));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

impl HeaderSized {
    fn changed(&self, how: &str) -> io::Error {
        io::Error::other(format!("it changed as it was read: it {how} the {} bytes its tar header gives", self.size))
    }
}

/// The file's extended attributes as PAX records (`SCHILY.xattr.<name>`), sorted by name.
fn read_xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        // File systems without xattr support simply have none.
        Err(err) if err.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(err) => return Err(Error::io("cannot list xattrs of", path, err)),
    };
    let mut xattrs = Vec::new();
    for name in names {
        let Some(key) = name.to_str() else { continue };
        if let Some(value) = xattr::get(path, &name).map_err(|e| Error::io("cannot read xattr of", path, e))? {
            xattrs.push((format!("SCHILY.xattr.{key}"), value));
        }
    }
    xattrs.sort();
    Ok(xattrs)
}

fn tar_error(path: &Path, err: io::Error) -> Error {
    // The layer stream's own errors arrive wrapped in io::Error: keep their message.
    Error::new(ErrorKind::Io, format!("cannot add {} to the layer tar: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tar's bytes; `change` runs at the first write, which is the header of the first
    /// entry: made from its stat, written before its data is read.
    struct ChangeAtFirstWrite<F: FnOnce()> {
        tar: Vec<u8>,
        change: Option<F>,
    }

    impl<F: FnOnce()> Write for ChangeAtFirstWrite<F> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Some(change) = self.change.take() {
                change();
            }
            self.tar.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Tars a directory holding one 10,000-byte file that `change` alters once its header is
    /// written.
    fn tar_of_a_file_changed_after_its_header(change: impl FnOnce(&Path)) -> Result<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, vec![7u8; 10_000]).unwrap();
        let mut out = ChangeAtFirstWrite { tar: Vec::new(), change: Some(|| change(&file)) };
        write_dir_tar(dir.path(), &mut out)?;
        Ok(out.tar)
    }

    #[test]
    fn a_file_that_grows_while_it_is_read_fails_the_tar() {
        let err = tar_of_a_file_changed_after_its_header(|file| {
            fs::OpenOptions::new().append(true).open(file).unwrap().write_all(&[8u8; 5_000]).unwrap();
        })
        .unwrap_err();
        assert!(err.message().contains("changed as it was read: it grew past the 10000 bytes"), "{err}");
    }

    #[test]
    fn a_file_that_shrinks_while_it_is_read_fails_the_tar() {
        let err = tar_of_a_file_changed_after_its_header(|file| {
            fs::OpenOptions::new().write(true).open(file).unwrap().set_len(3_000).unwrap();
        })
        .unwrap_err();
        assert!(err.message().contains("changed as it was read: it shrank below the 10000 bytes"), "{err}");
    }

    #[test]
    fn a_file_rewritten_at_its_size_while_it_is_read_gives_a_tar_that_agrees_with_itself() {
        let tar = tar_of_a_file_changed_after_its_header(|file| fs::write(file, vec![9u8; 10_000]).unwrap()).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.header().size().unwrap(), 10_000);
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        assert_eq!(data, vec![9u8; 10_000]);
        drop(entry);
        assert!(entries.next().is_none());
    }
}
