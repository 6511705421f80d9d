//! The bounds on what input (a layout, a document, an archive, a registry, a caller) can make one
//! operation use: memory, disk, threads, time. Each has a default, a name (the CLI's
//! `--limit NAME=VALUE`, Go's `Engine.SetLimit`) and a C constant (`ocicas_engine_set_limit`);
//! `Limit::ALL` is the one table README.md and the header repeat (a test keeps them in step).
//! Input over a limit is `TooLarge` with a message from `Limits::exceeded`, which names the
//! limit and how to raise it.

use std::io::Read;

use crate::error::{Error, ErrorKind, Result, invalid_argument};

/// The most worker threads any setting of `Limit::Threads` allows: past this a thread's stack
/// reservations alone run into gigabytes.
pub const MAX_THREADS: u64 = 1024;

/// Every limit an engine enforces, with its current value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest JSON document read from the layout or an archive (index.json, manifests,
    /// configs, labels, leases), in bytes. Documents are never written larger.
    pub json_size: u64,
    /// Largest `manifest.json` (and `repositories`) of a docker-archive, in bytes.
    pub archive_manifest_size: u64,
    /// Most bytes the tar reader may read to reach one archive member: its header blocks,
    /// GNU long names and PAX records, which it holds in memory whole.
    pub archive_header_size: u64,
    /// Most members one docker-archive may have.
    pub archive_members: u64,
    /// Largest label: its key and value together, in bytes.
    pub label_size: u64,
    /// How many levels of nested indexes and manifests fsck, GC, push and pull follow from a
    /// root (see `Limits::follows_children_at`).
    pub walk_depth: u64,
    /// Largest private metadata file of the layout (an ingest's `ref`, `total`, `expected`,
    /// times and saved hash state), in bytes.
    pub metadata_size: u64,
    /// Most bytes one docker-archive read may hold in memory at once, all together: member
    /// names, the JSON members (`manifest.json`, `repositories`, `<id>/json`, configs) and the
    /// small members of a stream.
    pub archive_json_total: u64,
    /// Most bytes one docker-archive import may write into the store (staged members included).
    pub archive_import_size: u64,
    /// Most worker threads one operation may start (compression, GC sweep, registry jobs).
    pub threads: u64,
    /// Deadline of one registry request for a document (a manifest, a token, a HEAD), in
    /// seconds, from its start to its last byte.
    pub registry_timeout: u64,
    /// Slowest a registry blob transfer may be, in bytes per second averaged over
    /// `registry_timeout` seconds, before it is given up.
    pub registry_min_rate: u64,
    /// Most bytes one compressed byte of a docker-archive (or of a compressed layer in it) may
    /// decompress to, counted over everything read so far. Twice deflate's ceiling (about 1032,
    /// reached by runs of zeros), so no gzip input is ever refused by it; zstd's ratio has no
    /// ceiling.
    pub archive_expansion: u64,
    /// Longest wait for the store lock (held by a GC sweep, an index.json update, a commit), in
    /// seconds.
    pub lock_timeout: u64,
}

/// One limit: the name of a field of `Limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    JsonSize,
    ArchiveManifestSize,
    ArchiveHeaderSize,
    ArchiveMembers,
    LabelSize,
    WalkDepth,
    MetadataSize,
    ArchiveJsonTotal,
    ArchiveImportSize,
    Threads,
    RegistryTimeout,
    RegistryMinRate,
    ArchiveExpansion,
    LockTimeout,
}

impl Limit {
    /// The table, in the order of the C constants.
    pub const ALL: [Limit; 14] = [
        Limit::JsonSize,
        Limit::ArchiveManifestSize,
        Limit::ArchiveHeaderSize,
        Limit::ArchiveMembers,
        Limit::LabelSize,
        Limit::WalkDepth,
        Limit::MetadataSize,
        Limit::ArchiveJsonTotal,
        Limit::ArchiveImportSize,
        Limit::Threads,
        Limit::RegistryTimeout,
        Limit::RegistryMinRate,
        Limit::ArchiveExpansion,
        Limit::LockTimeout,
    ];

    /// The name used by the CLI, Go and messages: the field's name.
    pub fn name(self) -> &'static str {
        match self {
            Limit::JsonSize => "json_size",
            Limit::ArchiveManifestSize => "archive_manifest_size",
            Limit::ArchiveHeaderSize => "archive_header_size",
            Limit::ArchiveMembers => "archive_members",
            Limit::LabelSize => "label_size",
            Limit::WalkDepth => "walk_depth",
            Limit::MetadataSize => "metadata_size",
            Limit::ArchiveJsonTotal => "archive_json_total",
            Limit::ArchiveImportSize => "archive_import_size",
            Limit::Threads => "threads",
            Limit::RegistryTimeout => "registry_timeout",
            Limit::RegistryMinRate => "registry_min_rate",
            Limit::ArchiveExpansion => "archive_expansion",
            Limit::LockTimeout => "lock_timeout",
        }
    }

    /// What it bounds, as messages say it: "over the {what} limit (NAME) of VALUE".
    pub fn what(self) -> &'static str {
        match self {
            Limit::JsonSize => "JSON document",
            Limit::ArchiveManifestSize => "manifest.json",
            Limit::ArchiveHeaderSize => "archive member header",
            Limit::ArchiveMembers => "archive member count",
            Limit::LabelSize => "label",
            Limit::WalkDepth => "walk depth",
            Limit::MetadataSize => "metadata file",
            Limit::ArchiveJsonTotal => "archive memory",
            Limit::ArchiveImportSize => "archive import size",
            Limit::Threads => "thread",
            Limit::RegistryTimeout => "registry request time",
            Limit::RegistryMinRate => "registry transfer rate",
            Limit::ArchiveExpansion => "archive decompression",
            Limit::LockTimeout => "lock wait",
        }
    }

    /// The unit of its value, as messages print it after the number.
    fn unit(self) -> &'static str {
        match self {
            Limit::ArchiveMembers => " members",
            Limit::WalkDepth => " levels",
            Limit::Threads => " threads",
            Limit::RegistryTimeout | Limit::LockTimeout => " seconds",
            Limit::RegistryMinRate => " bytes/s",
            Limit::ArchiveExpansion => " bytes per compressed byte",
            _ => " bytes",
        }
    }

    pub fn from_name(name: &str) -> Option<Limit> {
        Limit::ALL.into_iter().find(|limit| limit.name() == name)
    }

    /// The values a setting may take: at least 1 (a walk depth of 0 checks roots only);
    /// threads at most `MAX_THREADS`.
    fn valid_range(self) -> std::ops::RangeInclusive<u64> {
        match self {
            Limit::WalkDepth => 0..=u64::MAX,
            Limit::Threads => 1..=MAX_THREADS,
            _ => 1..=u64::MAX,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            json_size: 4 << 20,
            archive_manifest_size: 1 << 20,
            archive_header_size: 1 << 20,
            archive_members: 100_000,
            label_size: 4096,
            walk_depth: 16,
            metadata_size: 64 << 10,
            archive_json_total: 64 << 20,
            archive_import_size: 1 << 40,
            threads: default_threads(),
            registry_timeout: 300,
            registry_min_rate: 16 << 10,
            archive_expansion: 2048,
            lock_timeout: 300,
        }
    }
}

/// Four threads per core, at least 32 (GC's sweep, whose threads wait on the disk, needs 32 to
/// unlink as fast as the file system allows), at most 256.
fn default_threads() -> u64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    cores.saturating_mul(4).clamp(32, 256)
}

impl Limits {
    pub fn get(&self, limit: Limit) -> u64 {
        *self.field(limit)
    }

    /// Sets `limit` to `value`; `InvalidArgument` outside its range (0 is never valid).
    pub fn set(&mut self, limit: Limit, value: u64) -> Result<()> {
        let range = limit.valid_range();
        if !range.contains(&value) {
            return Err(invalid_argument(format!(
                "limit {} must be between {} and {}, not {value}",
                limit.name(),
                range.start(),
                range.end()
            )));
        }
        *self.field_mut(limit) = value;
        Ok(())
    }

    /// Parses `NAME=VALUE` (the CLI's `--limit`) and sets it.
    pub fn set_from_text(&mut self, setting: &str) -> Result<()> {
        let (name, value) =
            setting.split_once('=').ok_or_else(|| invalid_argument(format!("limit {setting:?} is not NAME=VALUE")))?;
        let limit = Limit::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = Limit::ALL.iter().map(|l| l.name()).collect();
            invalid_argument(format!("unknown limit {name:?}; the limits are {}", names.join(", ")))
        })?;
        let value = value
            .parse::<u64>()
            .map_err(|_| invalid_argument(format!("limit {name}: {value:?} is not a whole number")))?;
        self.set(limit, value)
    }

    /// The error for `what` (e.g. "blob sha256:… is 5000000 bytes") going over `limit`: names
    /// the limit, its value and how to raise it.
    pub fn exceeded(&self, limit: Limit, what: impl std::fmt::Display) -> Error {
        self.outside(limit, what, "over the", "raise")
    }

    /// The error for `what` falling short of `limit`, a minimum (a transfer rate): names the
    /// limit, its value and how to lower it.
    pub fn fell_short(&self, limit: Limit, what: impl std::fmt::Display) -> Error {
        self.outside(limit, what, "under the minimum", "lower")
    }

    /// The error for a wait for a lock `what` over `limit`: `Locked` (someone holds it), naming
    /// the limit and how to raise it.
    pub fn waited_too_long(&self, limit: Limit, what: impl std::fmt::Display) -> Error {
        let err = self.outside(limit, what, "over the", "raise");
        Error::new(ErrorKind::Locked, err.message())
    }

    fn outside(&self, limit: Limit, what: impl std::fmt::Display, relation: &str, change: &str) -> Error {
        let name = limit.name();
        Error::new(
            ErrorKind::TooLarge,
            format!(
                "{what}: {relation} {} limit ({name}) of {}{}; {change} it with `--limit {name}=N` \
                 (ocicas_engine_set_limit in C, Engine.SetLimit in Go)",
                limit.what(),
                self.get(limit),
                limit.unit()
            ),
        )
    }

    /// Whether the children of an index or manifest at `depth` (a root is at 0) are followed:
    /// only below `walk_depth`. Configs and layers have none, so no depth is too deep for them.
    pub fn follows_children_at(&self, depth: u64) -> bool {
        depth < self.walk_depth
    }

    /// Reads all of `reader` as long as it holds at most the value of `limit` bytes; else
    /// `TooLarge` naming `what` and the limit, with no more than one byte over the limit read.
    pub(crate) fn read_capped(&self, reader: impl Read, limit: Limit, what: &str) -> Result<Vec<u8>> {
        let max = self.get(limit);
        let mut bytes = Vec::new();
        reader
            .take(max.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read {what}: {e}")))?;
        if bytes.len() as u64 > max {
            return Err(self.exceeded(limit, format!("{what} is larger")));
        }
        Ok(bytes)
    }

    fn field(&self, limit: Limit) -> &u64 {
        match limit {
            Limit::JsonSize => &self.json_size,
            Limit::ArchiveManifestSize => &self.archive_manifest_size,
            Limit::ArchiveHeaderSize => &self.archive_header_size,
            Limit::ArchiveMembers => &self.archive_members,
            Limit::LabelSize => &self.label_size,
            Limit::WalkDepth => &self.walk_depth,
            Limit::MetadataSize => &self.metadata_size,
            Limit::ArchiveJsonTotal => &self.archive_json_total,
            Limit::ArchiveImportSize => &self.archive_import_size,
            Limit::Threads => &self.threads,
            Limit::RegistryTimeout => &self.registry_timeout,
            Limit::RegistryMinRate => &self.registry_min_rate,
            Limit::ArchiveExpansion => &self.archive_expansion,
            Limit::LockTimeout => &self.lock_timeout,
        }
    }

    fn field_mut(&mut self, limit: Limit) -> &mut u64 {
        match limit {
            Limit::JsonSize => &mut self.json_size,
            Limit::ArchiveManifestSize => &mut self.archive_manifest_size,
            Limit::ArchiveHeaderSize => &mut self.archive_header_size,
            Limit::ArchiveMembers => &mut self.archive_members,
            Limit::LabelSize => &mut self.label_size,
            Limit::WalkDepth => &mut self.walk_depth,
            Limit::MetadataSize => &mut self.metadata_size,
            Limit::ArchiveJsonTotal => &mut self.archive_json_total,
            Limit::ArchiveImportSize => &mut self.archive_import_size,
            Limit::Threads => &mut self.threads,
            Limit::RegistryTimeout => &mut self.registry_timeout,
            Limit::RegistryMinRate => &mut self.registry_min_rate,
            Limit::ArchiveExpansion => &mut self.archive_expansion,
            Limit::LockTimeout => &mut self.lock_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_thread_limit_lets_the_gc_sweep_run_32_threads() {
        let threads = Limits::default().threads;
        assert!((32..=256).contains(&threads), "{threads}");
    }

    #[test]
    fn every_limit_round_trips_by_name_and_zero_is_refused_but_for_walk_depth() {
        let mut limits = Limits::default();
        for (i, limit) in Limit::ALL.into_iter().enumerate() {
            assert_eq!(Limit::from_name(limit.name()), Some(limit));
            limits.set_from_text(&format!("{}={}", limit.name(), i + 1)).unwrap();
            assert_eq!(limits.get(limit), i as u64 + 1);
            if limit != Limit::WalkDepth {
                assert_eq!(limits.set(limit, 0).unwrap_err().kind(), ErrorKind::InvalidArgument);
            }
        }
    }

    #[test]
    fn bad_settings_are_invalid_arguments() {
        let mut limits = Limits::default();
        for setting in ["json_size", "nope=1", "json_size=-1", "json_size=1e6", "threads=1025"] {
            let err = limits.set_from_text(setting).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{setting}: {err}");
        }
        assert_eq!(limits, Limits::default());
    }

    #[test]
    fn the_message_names_the_limit_and_how_to_raise_it() {
        let limits = Limits::default();
        let err = limits.read_capped(&[0u8; 10][..], Limit::LabelSize, "x").map(|_| ());
        assert!(err.is_ok());
        let limits = Limits { label_size: 9, ..limits };
        let err = limits.read_capped(&[0u8; 10][..], Limit::LabelSize, "label file").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        assert!(err.message().contains("label_size") && err.message().contains("--limit label_size=N"), "{err}");
    }
}
