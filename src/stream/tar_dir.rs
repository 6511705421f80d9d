//! A layer's uncompressed tar, built from a directory tree while it is streamed: regular files,
//! directories, symlinks, hardlinks, devices and FIFOs, with modes (setuid included), owners,
//! mtimes and xattrs. Entries are sorted by name, so the same tree always gives the same bytes.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
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
            let file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
            self.builder.append_data(&mut header, relative, file).map_err(failed)
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
