//! Confined file access: every path of a layout is a relative path opened beneath the layout's
//! directory handle, and no symlink is followed and no mount point crossed at any component of
//! it (openat2 with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
//! RESOLVE_NO_XDEV`, or, where a kernel or a seccomp filter refuses openat2, a walk that opens
//! one component at a time with `O_NOFOLLOW` and compares mounts). A file is looked at before it
//! is opened, and opened only when it is a regular file (a device's driver never sees an open),
//! without blocking (`O_NONBLOCK`), and checked again once open. The store's own files under
//! `.ocicas/` must also have one link: a hard link there would make a write, a truncation or a
//! chmod reach a file elsewhere. Changes (create, rename, unlink, set times) happen at the
//! handle of the parent directory, so a planted link can never lead them outside the layout.
//! What is refused comes back as an `io::Error` carrying `error::Refused`, which `Error::io`
//! reports as an invalid layout.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Stat, StatxFlags, Timestamps};

use super::structure::PRIVATE_DIR;
use crate::error::Refused;

fn refused(what: impl Into<String>) -> io::Error {
    Refused(what.into()).into_io()
}

/// What a directory entry is, by its type (`d_type`, or a stat that does not follow it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A FIFO, socket or device.
    Special,
}

impl EntryKind {
    /// What the status `stat` (taken without following a link) describes.
    pub fn of_stat(stat: &Stat) -> EntryKind {
        EntryKind::of(FileType::from_raw_mode(stat.st_mode))
    }

    fn of(file_type: FileType) -> EntryKind {
        match file_type {
            FileType::RegularFile => EntryKind::File,
            FileType::Directory => EntryKind::Dir,
            FileType::Symlink => EntryKind::Symlink,
            _ => EntryKind::Special,
        }
    }

    /// How refusals and fsck name it.
    pub fn describe(self) -> &'static str {
        match self {
            EntryKind::File => "a regular file",
            EntryKind::Dir => "a directory",
            EntryKind::Symlink => "a symlink",
            EntryKind::Special => "a FIFO, socket or device",
        }
    }
}

/// One entry of a directory.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: OsString,
    pub kind: EntryKind,
}

/// How paths are resolved beneath the root, decided once per process.
const RESOLVER_UNKNOWN: u8 = 0;
const RESOLVER_OPENAT2: u8 = 1;
const RESOLVER_WALK: u8 = 2;
static RESOLVER: AtomicU8 = AtomicU8::new(RESOLVER_UNKNOWN);

/// Times `mkdir` tries again when the directory it found vanishes before it looks at it.
const MKDIR_ATTEMPTS: u32 = 100;

/// Directories that `remove_tree` descends into, at most: an ingest directory holds files only,
/// so anything deeper was planted.
const MAX_REMOVE_DEPTH: u32 = 8;

/// The layout's directory, held open. Every path handed to its methods is relative to it.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    /// The mount the layout is on: nothing on another is opened or removed.
    mount: Mount,
    /// For messages only: the path the layout was opened by.
    path: PathBuf,
}

/// Which mount a file is on: the mount id where the kernel tells it (5.8+), else the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mount {
    Id(u64),
    Device(u64),
}

impl Mount {
    fn of(fd: BorrowedFd<'_>) -> io::Result<Mount> {
        let statx = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)?;
        Ok(if StatxFlags::from_bits_retain(statx.stx_mask).contains(StatxFlags::MNT_ID) {
            Mount::Id(statx.stx_mnt_id)
        } else {
            Mount::Device(rustix::fs::makedev(statx.stx_dev_major, statx.stx_dev_minor))
        })
    }
}

impl Root {
    /// Opens the directory at `path` (which the caller chose, so a symlink in it is followed).
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        let mount = Mount::of(fd.as_fd())?;
        Ok(Root { fd, mount, path: path.to_owned() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `rel` as messages show it: the layout's path joined with it.
    pub fn display(&self, rel: &Path) -> PathBuf {
        self.path.join(rel)
    }

    /// Opens `rel` for reading: a regular file only.
    pub fn open_read(&self, rel: &Path) -> io::Result<File> {
        self.open_regular(rel, OFlags::RDONLY, Mode::empty())
    }

    /// Creates `rel`, which must not exist yet (not even as a dangling link), for writing.
    pub fn create_new(&self, rel: &Path, mode: u32) -> io::Result<File> {
        self.open_regular(rel, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL, Mode::from_raw_mode(mode))
    }

    /// Opens `rel` for reading and appending, creating it when missing.
    pub fn open_append(&self, rel: &Path, mode: u32) -> io::Result<File> {
        self.open_regular(rel, OFlags::RDWR | OFlags::APPEND | OFlags::CREATE, Mode::from_raw_mode(mode))
    }

    /// Opens `rel` for reading and writing, creating it when missing (a lock file).
    pub fn open_read_write(&self, rel: &Path, mode: u32) -> io::Result<File> {
        self.open_regular(rel, OFlags::RDWR | OFlags::CREATE, Mode::from_raw_mode(mode))
    }

    /// Opens the directory `rel` ("" is the root itself), for listing, flock and fsync.
    pub fn open_dir(&self, rel: &Path) -> io::Result<File> {
        Ok(File::from(self.resolve(rel, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?))
    }

    /// The status of `rel` itself (a symlink is reported as one, not followed).
    pub fn stat(&self, rel: &Path) -> io::Result<Stat> {
        if rel.as_os_str().is_empty() {
            return Ok(rustix::fs::fstat(&self.fd)?);
        }
        let (parent, name) = self.parent(rel)?;
        Ok(rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW)?)
    }

    /// What `rel` is, or None when nothing is there.
    pub fn kind(&self, rel: &Path) -> io::Result<Option<EntryKind>> {
        match self.stat(rel) {
            Ok(stat) => Ok(Some(EntryKind::of_stat(&stat))),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The entries of the open directory `dir`, without "." and "..".
    pub fn entries(&self, dir: &File) -> io::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for_each_entry(dir.as_fd(), |name, kind| {
            entries.push(Entry { name: name.to_owned(), kind });
            Ok(())
        })?;
        Ok(entries)
    }

    /// Calls `visit` with each entry of the directory `rel`; nothing when it does not exist.
    pub fn for_each_entry(&self, rel: &Path, visit: impl FnMut(&OsStr, EntryKind) -> io::Result<()>) -> io::Result<()> {
        let dir = match self.open_dir(rel) {
            Ok(dir) => dir,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err),
        };
        for_each_entry(dir.as_fd(), visit)
    }

    /// Creates the directory `rel` (its parent must exist); false when a directory is already
    /// there. Anything else there (a link, a file) is refused.
    pub fn mkdir(&self, rel: &Path) -> io::Result<bool> {
        let (parent, name) = self.parent(rel)?;
        // A directory removed between our mkdir's EEXIST and our look at it is made again.
        for _ in 0..MKDIR_ATTEMPTS {
            match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o755)) {
                Ok(()) => return Ok(true),
                Err(rustix::io::Errno::EXIST) => {}
                Err(err) => return Err(err.into()),
            }
            match self.kind(rel)? {
                Some(EntryKind::Dir) => return Ok(false),
                Some(other) => {
                    return Err(refused(format!(
                        "{} is {} where a directory belongs (remove it)",
                        self.display(rel).display(),
                        other.describe()
                    )));
                }
                None => continue,
            }
        }
        Err(io::Error::from(rustix::io::Errno::EXIST))
    }

    /// Opens the directory `rel`, held for many lookups and unlinks of the entries directly in
    /// it (GC's pass over a blob directory), each one call on its handle with nothing resolved
    /// again: 20,000 opens fewer for 10,000 garbage blobs.
    pub fn open_subdir(&self, rel: &Path) -> io::Result<Subdir> {
        Ok(Subdir { fd: self.resolve(rel, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())? })
    }

    /// Removes the file (or the link itself) at `rel`.
    pub fn unlink(&self, rel: &Path) -> io::Result<()> {
        let (parent, name) = self.parent(rel)?;
        Ok(rustix::fs::unlinkat(&parent, name, AtFlags::empty())?)
    }

    /// Renames `from` to `to`, replacing what is at `to` (a link is replaced, never followed).
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from_parent, from_name) = self.parent(from)?;
        let (to_parent, to_name) = self.parent(to)?;
        Ok(rustix::fs::renameat(&from_parent, from_name, &to_parent, to_name)?)
    }

    /// Gives the open `file` the name `to`, which must be free: a hard link to the very inode that
    /// is open (through `/proc/self/fd`), so no name is resolved between the caller's checks of
    /// the file and its publication. Where procfs is not mounted, `from` (the file's name) is
    /// renamed instead, once it is found to still name the open file.
    pub fn link_open_file(&self, file: &File, from: &Path, to: &Path) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let (to_parent, to_name) = self.parent(to)?;
        let open_file = format!("/proc/self/fd/{}", file.as_raw_fd());
        match rustix::fs::linkat(rustix::fs::CWD, &open_file, &to_parent, to_name, AtFlags::SYMLINK_FOLLOW) {
            Err(rustix::io::Errno::NOENT) if !Path::new("/proc/self/fd").is_dir() => {}
            result => return Ok(result?),
        }
        let (from_parent, from_name) = self.parent(from)?;
        let there = rustix::fs::statat(&from_parent, from_name, AtFlags::SYMLINK_NOFOLLOW)?;
        let held = rustix::fs::fstat(file)?;
        if (there.st_dev, there.st_ino) != (held.st_dev, held.st_ino) {
            return Err(refused(format!("{} was replaced while it was being published", self.display(from).display())));
        }
        Ok(rustix::fs::renameat_with(&from_parent, from_name, &to_parent, to_name, rustix::fs::RenameFlags::NOREPLACE)?)
    }

    /// Sets the modification time of `rel` (not of what a link there points at) to now, read
    /// from the clock rather than the kernel's file-time clock (which lags it by up to a tick), so
    /// a blob's commit time falls between the caller's clock readings around the commit. A file
    /// with more than one link is refused: its time is another file's too.
    pub fn touch(&self, rel: &Path) -> io::Result<()> {
        let (parent, name) = self.parent(rel)?;
        let stat = rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW)?;
        if stat.st_nlink > 1 {
            return Err(refused(format!(
                "{} has {} links, so its time belongs to other files too",
                self.display(rel).display(),
                stat.st_nlink
            )));
        }
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let now =
            rustix::fs::Timespec { tv_sec: since_epoch.as_secs() as i64, tv_nsec: since_epoch.subsec_nanos().into() };
        let times = Timestamps { last_access: now, last_modification: now };
        Ok(rustix::fs::utimensat(&parent, name, &times, AtFlags::SYMLINK_NOFOLLOW)?)
    }

    /// Removes the directory `rel`, whose open handle is `dir`, with everything in it: entries are
    /// removed through the handle (links themselves, never what they point at), subdirectories
    /// through handles opened from it, so nothing is resolved by path again between the caller's
    /// check of `dir` (a lock, say) and the removal.
    pub fn remove_tree(&self, rel: &Path, dir: &File) -> io::Result<()> {
        clear_dir(dir.as_fd(), self.mount, 0)?;
        let (parent, name) = self.parent(rel)?;
        Ok(rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR)?)
    }

    /// Opens `rel` with `flags` when it is a regular file (or, with `O_CREAT`, nothing is there),
    /// and checks again what was opened (it may have been swapped in between). `O_NONBLOCK` keeps
    /// a FIFO swapped in from blocking the open; it changes nothing for a regular file.
    fn open_regular(&self, rel: &Path, flags: OFlags, mode: Mode) -> io::Result<File> {
        let (parent, name) = self.parent(rel)?;
        match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => self.check_regular(rel, &stat)?,
            Err(rustix::io::Errno::NOENT) if flags.contains(OFlags::CREATE) => {}
            Err(err) => return Err(err.into()),
        }
        let fd = self
            .resolve_from(parent.as_fd(), Path::new(name), flags | OFlags::NONBLOCK, mode)
            .map_err(|err| self.explain(rel, err))?;
        self.check_regular(rel, &rustix::fs::fstat(&fd)?)?;
        Ok(File::from(fd))
    }

    /// A regular file, and for the store's own files one with a single link.
    fn check_regular(&self, rel: &Path, stat: &Stat) -> io::Result<()> {
        let kind = EntryKind::of_stat(stat);
        if kind != EntryKind::File {
            return Err(refused(format!("{} is {}, not a regular file", self.display(rel).display(), kind.describe())));
        }
        if stat.st_nlink > 1 && rel.starts_with(PRIVATE_DIR) {
            return Err(refused(format!(
                "{} has {} links: the store's own files are never hard-linked (one may be a file outside \
                 the layout); remove it",
                self.display(rel).display(),
                stat.st_nlink
            )));
        }
        Ok(())
    }

    /// The directory that holds `rel`, and `rel`'s last component. (Not `O_PATH`: with
    /// `O_NOFOLLOW` that would open a symlink itself instead of refusing it.)
    fn parent<'p>(&self, rel: &'p Path) -> io::Result<(OwnedFd, &'p OsStr)> {
        let name = rel.file_name().ok_or_else(|| invalid_path(rel))?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        Ok((self.resolve(parent, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?, name))
    }

    /// Opens `rel` beneath the root without following any symlink or crossing a mount.
    fn resolve(&self, rel: &Path, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        self.resolve_from(self.fd.as_fd(), rel, flags, mode).map_err(|err| self.explain(rel, err))
    }

    /// Opens `rel` beneath `base` (the root, or a directory opened beneath it) the same way.
    fn resolve_from(&self, base: BorrowedFd<'_>, rel: &Path, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        check_relative(rel)?;
        let flags = flags | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY;
        if resolver(self.fd.as_fd()) == RESOLVER_OPENAT2 {
            openat2(base, rel, flags, mode)
        } else {
            walk(base, rel, flags, mode, self.mount)
        }
    }

    /// ELOOP means a symlink was met, and so does ENOTDIR when a link stands where a directory
    /// was asked for (`O_DIRECTORY | O_NOFOLLOW`); EXDEV (RESOLVE_BENEATH) is an escape. All are
    /// refusals, which name the link when it can be found.
    fn explain(&self, rel: &Path, err: io::Error) -> io::Error {
        let link = match err.raw_os_error() {
            Some(libc::ELOOP) => Some(self.first_link(rel).unwrap_or_else(|| rel.to_owned())),
            Some(libc::ENOTDIR) => self.first_link(rel),
            Some(libc::EXDEV) => {
                return refused(format!(
                    "{} crosses a mount point or leads outside the layout",
                    self.display(rel).display()
                ));
            }
            _ => None,
        };
        match link {
            Some(link) => refused(format!(
                "{} is a symlink (ocicas follows no symlinks inside a layout; remove it)",
                self.display(&link).display()
            )),
            None => err,
        }
    }

    /// The first prefix of `rel` that is a symlink. Each prefix is looked at without following
    /// it, after every shorter one was found to be a directory; for messages only.
    fn first_link(&self, rel: &Path) -> Option<PathBuf> {
        let mut prefix = PathBuf::new();
        for component in rel.iter() {
            prefix.push(component);
            let stat = rustix::fs::statat(&self.fd, &prefix, AtFlags::SYMLINK_NOFOLLOW).ok()?;
            match FileType::from_raw_mode(stat.st_mode) {
                FileType::Symlink => return Some(prefix),
                FileType::Directory => {}
                _ => return None,
            }
        }
        None
    }
}

/// A directory beneath the root, held open (`Root::open_subdir`). Its entries are named by one
/// plain component, so a lookup never follows a link nor leaves the directory; were the
/// directory itself moved meanwhile, the handle stays on the one that was checked.
#[derive(Debug)]
pub struct Subdir {
    fd: OwnedFd,
}

impl Subdir {
    /// The status of the entry `name` itself (a symlink is reported as one, not followed).
    pub fn stat(&self, name: &OsStr) -> io::Result<Stat> {
        check_name(name)?;
        Ok(rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)?)
    }

    /// Removes the file (or the link itself) named `name`.
    pub fn unlink(&self, name: &OsStr) -> io::Result<()> {
        check_name(name)?;
        Ok(rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())?)
    }
}

/// One plain component: no separator, not `.` or `..`.
fn check_name(name: &OsStr) -> io::Result<()> {
    let mut components = Path::new(name).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(only)), None) if only == name => Ok(()),
        _ => Err(invalid_path(Path::new(name))),
    }
}

fn invalid_path(rel: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not a path inside a layout", rel.display()))
}

/// Paths inside a layout are built by ocicas from fixed names and validated digests and ids:
/// anything but plain components is a bug, refused rather than resolved.
fn check_relative(rel: &Path) -> io::Result<()> {
    if rel.components().all(|c| matches!(c, Component::Normal(_))) { Ok(()) } else { Err(invalid_path(rel)) }
}

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// Times openat2 is asked again when it reports that a rename raced its lookup (it does so only
/// while resolving `..`, which no path of ours holds).
const OPENAT2_ATTEMPTS: u32 = 16;

/// Which resolver this process uses: openat2, unless a first harmless call of it (opening the
/// root itself) is refused, by an old kernel (ENOSYS) or a seccomp filter (EPERM).
fn resolver(root: BorrowedFd<'_>) -> u8 {
    match RESOLVER.load(Ordering::Relaxed) {
        RESOLVER_UNKNOWN => {
            let probe = rustix::fs::openat2(root, ".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), RESOLVE);
            let chosen = match probe {
                Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => RESOLVER_WALK,
                _ => RESOLVER_OPENAT2,
            };
            RESOLVER.store(chosen, Ordering::Relaxed);
            chosen
        }
        chosen => chosen,
    }
}

fn openat2(base: BorrowedFd<'_>, rel: &Path, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    let mut attempts = 0;
    loop {
        match rustix::fs::openat2(base, rel, flags, mode, RESOLVE) {
            Err(rustix::io::Errno::AGAIN) if attempts < OPENAT2_ATTEMPTS => attempts += 1,
            result => return Ok(result?),
        }
    }
}

/// openat2's guarantees by hand: each directory on the way is opened with `O_NOFOLLOW` from the
/// one before, so a symlink anywhere fails (ELOOP, or ENOTDIR where a directory was expected),
/// and whatever is opened must be on the root's mount (EXDEV otherwise, as openat2 says it).
fn walk(base: BorrowedFd<'_>, rel: &Path, flags: OFlags, mode: Mode, mount: Mount) -> io::Result<OwnedFd> {
    let mut components: Vec<&OsStr> = rel.iter().collect();
    let Some(last) = components.pop() else {
        return Ok(rustix::fs::openat(base, ".", flags, mode)?);
    };
    let mut dir: Option<OwnedFd> = None;
    for component in components {
        let from = dir.as_ref().map_or(base, |fd| fd.as_fd());
        let directory = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        dir = Some(on_mount(rustix::fs::openat(from, component, directory, Mode::empty())?, mount)?);
    }
    let from = dir.as_ref().map_or(base, |fd| fd.as_fd());
    on_mount(rustix::fs::openat(from, last, flags, mode)?, mount)
}

/// `fd` when it is on `mount`; EXDEV when a mount point was crossed to reach it.
fn on_mount(fd: OwnedFd, mount: Mount) -> io::Result<OwnedFd> {
    if Mount::of(fd.as_fd())? != mount {
        return Err(rustix::io::Errno::XDEV.into());
    }
    Ok(fd)
}

fn for_each_entry(dir: BorrowedFd<'_>, mut visit: impl FnMut(&OsStr, EntryKind) -> io::Result<()>) -> io::Result<()> {
    let mut entries = Dir::read_from(dir)?;
    while let Some(entry) = entries.read() {
        let entry = entry?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        let kind = match entry.file_type() {
            // Some file systems leave d_type unset: ask without following.
            FileType::Unknown => EntryKind::of_stat(&rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?),
            file_type => EntryKind::of(file_type),
        };
        visit(name, kind)?;
    }
    Ok(())
}

/// Removes everything in the directory `dir` through its handle; a subdirectory on another
/// mount (a mount point inside the layout) is refused, never descended into.
fn clear_dir(dir: BorrowedFd<'_>, mount: Mount, depth: u32) -> io::Result<()> {
    let mut entries = Vec::new();
    for_each_entry(dir, |name, kind| {
        entries.push((name.to_owned(), kind));
        Ok(())
    })?;
    for (name, kind) in entries {
        if kind == EntryKind::Dir {
            if depth >= MAX_REMOVE_DEPTH {
                return Err(refused(format!("directories nest deeper than {MAX_REMOVE_DEPTH} levels")));
            }
            let sub = rustix::fs::openat(
                dir,
                &name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let sub = on_mount(sub, mount)
                .map_err(|_| refused(format!("{} is a mount point inside the layout", name.to_string_lossy())))?;
            clear_dir(sub.as_fd(), mount, depth + 1)?;
            remove_entry(dir, &name, AtFlags::REMOVEDIR)?;
        } else {
            remove_entry(dir, &name, AtFlags::empty())?;
        }
    }
    Ok(())
}

/// Removes one entry; one that is already gone (a racing remover) is not an error.
fn remove_entry(dir: BorrowedFd<'_>, name: &OsStr, flags: AtFlags) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, flags) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A layout-like root with a sentinel directory beside it, planted links into the sentinel,
    /// and a FIFO.
    struct Planted {
        _dir: tempfile::TempDir,
        root: Root,
        sentinel: PathBuf,
    }

    fn planted() -> Planted {
        let dir = tempfile::tempdir().unwrap();
        let root_path = dir.path().join("root");
        let sentinel = dir.path().join("sentinel");
        std::fs::create_dir_all(root_path.join("real/sub")).unwrap();
        std::fs::create_dir_all(&sentinel).unwrap();
        std::fs::write(sentinel.join("secret"), b"outside").unwrap();
        std::fs::write(root_path.join("real/file"), b"inside").unwrap();
        symlink(&sentinel, root_path.join("dirlink")).unwrap();
        symlink(sentinel.join("secret"), root_path.join("real/filelink")).unwrap();
        symlink(root_path.join("real"), root_path.join("innerlink")).unwrap();
        symlink(sentinel.join("missing"), root_path.join("dangling")).unwrap();
        rustix::fs::mknodat(rustix::fs::CWD, root_path.join("fifo"), FileType::Fifo, Mode::from_raw_mode(0o644), 0)
            .unwrap();
        let root = Root::open(&root_path).unwrap();
        Planted { _dir: dir, root, sentinel }
    }

    fn assert_refused<T: std::fmt::Debug>(result: io::Result<T>, what: &str) {
        match result {
            Err(err) if Refused::is(&err) => {}
            other => panic!("{what}: expected a refusal, got {other:?}"),
        }
    }

    /// Every check runs with each resolver.
    fn with_each_resolver(check: impl Fn(&Planted)) {
        for resolver in [RESOLVER_OPENAT2, RESOLVER_WALK] {
            RESOLVER.store(resolver, Ordering::Relaxed);
            check(&planted());
        }
        RESOLVER.store(RESOLVER_UNKNOWN, Ordering::Relaxed);
    }

    #[test]
    fn links_at_any_component_are_refused_and_nothing_outside_changes() {
        with_each_resolver(|p| {
            let root = &p.root;
            assert_eq!(std::io::read_to_string(root.open_read(Path::new("real/file")).unwrap()).unwrap(), "inside");
            assert_refused(root.open_read(Path::new("dirlink/secret")), "a link as a directory");
            assert_refused(root.open_read(Path::new("real/filelink")), "a link as the file");
            assert_refused(root.open_read(Path::new("innerlink/file")), "a link that stays inside");
            assert_refused(root.create_new(Path::new("dangling"), 0o644), "create through a dangling link");
            assert_refused(root.open_read_write(Path::new("dangling"), 0o644), "a lock file as a dangling link");
            assert_refused(root.open_append(Path::new("dirlink/new"), 0o644), "append beneath a link");
            assert_refused(root.open_dir(Path::new("dirlink")), "a link as a directory to list");
            assert_refused(root.mkdir(Path::new("dirlink/new")), "mkdir beneath a link");
            assert_refused(root.unlink(Path::new("dirlink/secret")), "unlink beneath a link");
            assert_refused(root.rename(Path::new("real/file"), Path::new("dirlink/moved")), "rename into a link");
            assert_refused(root.touch(Path::new("dirlink/secret")), "touch beneath a link");
            assert!(!p.sentinel.join("missing").exists());
            assert!(!p.sentinel.join("new").exists());
            assert!(!p.sentinel.join("moved").exists());
            assert_eq!(std::fs::read(p.sentinel.join("secret")).unwrap(), b"outside");
            assert_eq!(root.kind(Path::new("dirlink")).unwrap(), Some(EntryKind::Symlink));
        });
    }

    #[test]
    fn special_files_are_refused_without_blocking() {
        with_each_resolver(|p| {
            assert_refused(p.root.open_read(Path::new("fifo")), "read a FIFO");
            assert_refused(p.root.open_append(Path::new("fifo"), 0o644), "append to a FIFO");
            assert_refused(p.root.open_read_write(Path::new("fifo"), 0o644), "lock a FIFO");
            assert_eq!(p.root.kind(Path::new("fifo")).unwrap(), Some(EntryKind::Special));
        });
    }

    #[test]
    fn a_link_where_a_directory_belongs_is_refused_by_mkdir() {
        with_each_resolver(|p| {
            assert_refused(p.root.mkdir(Path::new("dirlink")), "mkdir over a link");
            assert!(!p.root.mkdir(Path::new("real")).unwrap());
            assert!(p.root.mkdir(Path::new("real/new")).unwrap());
        });
    }

    #[test]
    fn remove_tree_removes_links_themselves_and_nothing_they_point_at() {
        with_each_resolver(|p| {
            let dir = p.root.open_dir(Path::new("real")).unwrap();
            p.root.remove_tree(Path::new("real"), &dir).unwrap();
            assert_eq!(p.root.kind(Path::new("real")).unwrap(), None);
            assert_eq!(std::fs::read(p.sentinel.join("secret")).unwrap(), b"outside");
            assert_refused(p.root.open_dir(Path::new("dirlink")), "a link to remove through");
        });
    }

    #[test]
    fn the_stores_own_files_are_refused_when_hard_linked_and_blobs_are_not_touched_then() {
        with_each_resolver(|p| {
            let private = p.root.path().join(".ocicas");
            std::fs::create_dir_all(&private).unwrap();
            std::fs::hard_link(p.sentinel.join("secret"), private.join("data")).unwrap();
            std::fs::hard_link(p.sentinel.join("secret"), p.root.path().join("real/linked")).unwrap();
            assert_refused(p.root.open_append(Path::new(".ocicas/data"), 0o644), "append to a hard link");
            assert_refused(p.root.open_read(Path::new(".ocicas/data")), "read a private hard link");
            assert_eq!(
                std::io::read_to_string(p.root.open_read(Path::new("real/linked")).unwrap()).unwrap(),
                "outside"
            );
            let before = std::fs::metadata(p.sentinel.join("secret")).unwrap().modified().unwrap();
            assert_refused(p.root.touch(Path::new("real/linked")), "touch a hard link");
            assert_eq!(std::fs::metadata(p.sentinel.join("secret")).unwrap().modified().unwrap(), before);
        });
    }

    #[test]
    fn a_subdir_is_refused_through_a_link_and_its_entries_are_only_plain_names() {
        with_each_resolver(|p| {
            assert_refused(p.root.open_subdir(Path::new("dirlink")), "a subdir through a link");
            assert_refused(p.root.open_subdir(Path::new("innerlink/sub")), "a subdir under a link");
            let real = p.root.open_subdir(Path::new("real")).unwrap();
            for name in ["../../sentinel/secret", "sub/../file", "..", ".", "", "file/"] {
                let err = real.stat(OsStr::new(name)).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "stat {name:?}");
                let err = real.unlink(OsStr::new(name)).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "unlink {name:?}");
            }
            // A link in it is looked at and removed itself, never followed.
            assert_eq!(EntryKind::of_stat(&real.stat(OsStr::new("filelink")).unwrap()), EntryKind::Symlink);
            real.unlink(OsStr::new("filelink")).unwrap();
            assert_eq!(std::fs::read(p.sentinel.join("secret")).unwrap(), b"outside");
            assert_eq!(EntryKind::of_stat(&real.stat(OsStr::new("file")).unwrap()), EntryKind::File);
            real.unlink(OsStr::new("file")).unwrap();
            assert_eq!(real.stat(OsStr::new("file")).unwrap_err().kind(), io::ErrorKind::NotFound);
        });
    }

    #[test]
    fn paths_that_are_not_plain_components_are_invalid() {
        let p = planted();
        for rel in ["../sentinel/secret", "/etc/passwd", "real/../real/file", "./real/file"] {
            let err = p.root.open_read(Path::new(rel)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{rel}");
        }
    }
}
