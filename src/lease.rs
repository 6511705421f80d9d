//! Leases (containerd's idea, across processes): a file under `.ocicas/leases/` naming blobs
//! and ingest refs that GC must keep until the lease is released or expires. Operations that
//! write several blobs before anything references them run inside one.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result, invalid_argument, not_found};
use crate::layout::LEASES_DIR;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub id: String,
    #[serde(with = "rfc3339_time")]
    pub created_at: SystemTime,
    #[serde(default, with = "optional_time", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<SystemTime>,
    #[serde(default)]
    pub digests: Vec<Digest>,
    #[serde(default)]
    pub ingests: Vec<String>,
}

impl Lease {
    pub fn is_live(&self, now: SystemTime) -> bool {
        self.expires_at.is_none_or(|expires| expires > now)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// What a lease can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseResource {
    Blob(Digest),
    Ingest(String),
}

fn validate_lease_id(id: &str) -> Result<()> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !valid {
        return Err(invalid_argument(format!(
            "invalid lease id {id:?}: 1 to 128 of [A-Za-z0-9._-], not starting with '.'"
        )));
    }
    Ok(())
}

impl Engine {
    fn leases_dir(&self) -> PathBuf {
        PathBuf::from(LEASES_DIR)
    }

    /// Creates a lease, with `id` or a generated one, expiring after `expiry` (never when None).
    /// `AlreadyExists` when a lease of that id exists.
    pub fn lease_new(&self, id: Option<&str>, expiry: Option<Duration>) -> Result<Lease> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let now = SystemTime::now();
        let id = match id {
            Some(id) => id.to_owned(),
            None => format!(
                "lease-{}-{}-{}",
                now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos(),
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ),
        };
        validate_lease_id(&id)?;
        let lease = Lease {
            id,
            created_at: now,
            expires_at: expiry.map(|e| crate::timestamp::checked_after(now, e, "lease expiry")).transpose()?,
            digests: Vec::new(),
            ingests: Vec::new(),
        };
        let _lock = self.layout.lock_exclusive()?;
        let path = self.leases_dir().join(&lease.id);
        if self.layout.dir().kind(&path).map_err(|e| self.layout.io_error("cannot stat", &path, e))?.is_some() {
            return Err(Error::new(ErrorKind::AlreadyExists, format!("lease {:?} already exists", lease.id)));
        }
        self.write_lease(&lease)?;
        Ok(lease)
    }

    /// Adds a blob or an ingest ref to a lease (idempotent). `NotFound` for an unknown lease,
    /// and for an expired one (GC no longer keeps what it holds, swept or not).
    pub fn lease_add(&self, id: &str, resource: LeaseResource) -> Result<()> {
        validate_lease_id(id)?;
        if resource == LeaseResource::Ingest(String::new()) {
            return Err(invalid_argument("an ingest ref must not be empty"));
        }
        let _lock = self.layout.lock_exclusive()?;
        let mut lease = self.read_lease(id)?;
        if !lease.is_live(SystemTime::now()) {
            return Err(not_found(format!("lease {id:?} has expired")));
        }
        match resource {
            LeaseResource::Blob(digest) if !lease.digests.contains(&digest) => lease.digests.push(digest),
            LeaseResource::Ingest(ref_name) if !lease.ingests.contains(&ref_name) => lease.ingests.push(ref_name),
            _ => return Ok(()),
        }
        self.write_lease(&lease)
    }

    /// Makes a live lease expire `expiry` from now. `NotFound` for an unknown or expired lease:
    /// what it held may be gone already.
    pub(crate) fn lease_renew(&self, id: &str, expiry: Duration) -> Result<()> {
        let _lock = self.layout.lock_exclusive()?;
        let mut lease = self.read_lease(id)?;
        let now = SystemTime::now();
        if !lease.is_live(now) {
            return Err(not_found(format!("lease {id:?} has expired")));
        }
        lease.expires_at = Some(crate::timestamp::checked_after(now, expiry, "lease expiry")?);
        self.write_lease(&lease)
    }

    /// Ends a lease; what it held is then kept only if something else references it.
    pub fn lease_release(&self, id: &str) -> Result<()> {
        validate_lease_id(id)?;
        let _lock = self.layout.lock_exclusive()?;
        self.remove_lease(id)
    }

    /// Runs `work` under a new lease expiring after `expiry` (so a crashed caller's lease does
    /// not keep its blobs forever) and releases it afterwards, whatever `work` returned. An
    /// error of `work` is returned rather than one of the release.
    pub(crate) fn with_lease<T>(&self, expiry: Duration, work: impl FnOnce(&str) -> Result<T>) -> Result<T> {
        let lease = self.lease_new(None, Some(expiry))?;
        let result = work(&lease.id);
        let released = self.lease_release(&lease.id);
        let value = result?;
        released?;
        Ok(value)
    }

    /// Removes a lease file; the caller holds the exclusive store lock.
    pub(crate) fn remove_lease(&self, id: &str) -> Result<()> {
        let path = self.leases_dir().join(id);
        match self.layout.storage().remove_file(&path) {
            Ok(()) => self.layout.sync_parent(&path),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Err(not_found(format!("no lease {id:?}"))),
            Err(err) => Err(self.layout.io_error("cannot remove lease", &path, err)),
        }
    }

    pub fn lease_get(&self, id: &str) -> Result<Lease> {
        validate_lease_id(id)?;
        self.read_lease(id)
    }

    /// Every lease, live or expired, sorted by id.
    pub fn lease_list(&self) -> Result<Vec<Lease>> {
        let mut leases = Vec::new();
        for id in self.lease_ids()? {
            match self.read_lease(&id) {
                Ok(lease) => leases.push(lease),
                // Released since it was listed.
                Err(err) if err.kind() == ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        leases.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(leases)
    }

    /// The names in the leases directory that are lease ids.
    fn lease_ids(&self) -> Result<Vec<String>> {
        let dir = self.leases_dir();
        let mut ids = Vec::new();
        self.layout
            .dir()
            .for_each_entry(&dir, |name, _| {
                if let Some(id) = name.to_str().filter(|id| validate_lease_id(id).is_ok()) {
                    ids.push(id.to_owned());
                }
                Ok(())
            })
            .map_err(|e| self.layout.io_error("cannot list", &dir, e))?;
        Ok(ids)
    }

    /// fsck's part: every file of the leases directory named as a lease is one GC can read (one
    /// it cannot stops GC).
    pub(crate) fn lease_problems(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        for id in self.lease_ids()? {
            match self.read_lease(&id) {
                Ok(_) => {}
                Err(err) if err.kind() == ErrorKind::NotFound => {}
                Err(err) => problems.push(format!("{} (GC stops at it; remove it)", err.message())),
            }
        }
        Ok(problems)
    }

    fn read_lease(&self, id: &str) -> Result<Lease> {
        let path = self.leases_dir().join(id);
        let bytes = self.layout.read_json_file(&path).map_err(|err| match err.kind() {
            ErrorKind::NotFound => not_found(format!("no lease {id:?}")),
            _ => err,
        })?;
        let shown = self.layout.display(&path);
        let lease: Lease = serde_json::from_slice(&bytes)
            .map_err(|e| crate::error::invalid_image(format!("{} is not a lease: {e}", shown.display())))?;
        // Leases are written and removed by their file's name: one naming another is not ours.
        if lease.id != id {
            return Err(crate::error::invalid_image(format!(
                "{} holds lease {:?}, not {id:?}",
                shown.display(),
                lease.id
            )));
        }
        Ok(lease)
    }

    fn write_lease(&self, lease: &Lease) -> Result<()> {
        self.layout.create_dir(&self.leases_dir())?;
        self.layout.replace_json_file(&self.leases_dir().join(&lease.id), &crate::spec::canonical_json(lease)?)
    }
}

/// Times as RFC 3339 strings in lease files.
mod rfc3339_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_rfc3339_nanos(*time))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

mod optional_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(time: &Option<SystemTime>, serializer: S) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => super::rfc3339_time::serialize(time, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SystemTime>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            Some(text) => humantime::parse_rfc3339(&text).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}
