//! Pull: an image from a registry into the layout, under a lease. Manifests are verified
//! against their digests and parsed by media type; blobs stream into ingest writers (a pull
//! that stopped resumes each blob with `Range` from its ingest's offset) and are verified on
//! commit; documents are stored children first and the ref is moved last.

use std::io::Read;
use std::time::Duration;

use ureq::http::StatusCode;

use super::client::{Client, Exchange, RateWindow, header};
use super::upload::{MANIFEST_ACCEPT, manifest_digest, with_authorization};
use super::{
    BlobMeter, Metered, RegistryOptions, RemoteRef, Tally, TransferReport, api_path, check_depth, for_each_parallel,
};
use crate::content::{IngestWriter, WriterOptions};
use crate::digest::{Algorithm, Digest};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result, invalid_argument};
use crate::lease::LeaseResource;
use crate::spec::{Descriptor, Document, Platform, detect_media_type, is_document_media_type, parse_document};

/// How long a pull's lease protects what it stored if the pull does not finish (a later pull
/// resumes from it).
const PULL_LEASE_EXPIRY: Duration = Duration::from_secs(24 * 3600);
/// How often one blob's download is resumed after its connection failed.
const BLOB_RETRIES: u32 = 3;
/// How often the ingest of a blob that another writer holds is looked at.
const LOCKED_POLL: Duration = Duration::from_millis(200);
const DOWNLOAD_BUFFER: usize = 1024 * 1024;

/// What a pull stores: blobs (fetched in parallel) and documents, children first.
#[derive(Default)]
struct PullPlan {
    blobs: Vec<Descriptor>,
    documents: Vec<(Descriptor, Vec<u8>)>,
}

impl Engine {
    /// Pulls `source` (`HOST/REPO[:TAG][@DIGEST]`; neither means `:latest`) and tags it
    /// `ref_name` (default: the tag). Blobs already stored are not fetched. Everything runs
    /// under a lease; the ref moves last, so a failed pull tags nothing.
    pub fn pull(&self, source: &str, ref_name: Option<&str>, options: &RegistryOptions) -> Result<TransferReport> {
        options.cancel.explain("pull", self.pull_image(source, ref_name, options))
    }

    fn pull_image(&self, source: &str, ref_name: Option<&str>, options: &RegistryOptions) -> Result<TransferReport> {
        options.check(self.limits())?;
        let mut remote = RemoteRef::parse(source)?;
        if remote.tag.is_none() && remote.digest.is_none() {
            remote.tag = Some("latest".to_string());
        }
        let ref_name = match (ref_name, &remote.tag) {
            (Some(name), _) => name.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => {
                return Err(invalid_argument(format!("pull of {source} by digest needs a ref name to tag")));
            }
        };
        crate::refs::validate_ref_name(&ref_name)?;
        let client = Client::connect(&remote, "pull", &[], options, self.limits())?;
        let lease = self.lease_new(None, Some(PULL_LEASE_EXPIRY))?;
        let pulled = self.pull_leased(&client, &remote, &ref_name, options, &lease.id)?;
        // Kept on failure: until it expires, it keeps what was stored for a pull that resumes.
        self.lease_release(&lease.id)?;
        Ok(pulled)
    }

    fn pull_leased(
        &self,
        client: &Client,
        remote: &RemoteRef,
        ref_name: &str,
        options: &RegistryOptions,
        lease: &str,
    ) -> Result<TransferReport> {
        let tally = Tally::default();
        let puller = Puller { engine: self, client, remote, options, lease, tally: &tally };
        let (root, root_bytes) = puller.root_manifest()?;
        if !options.force
            && let Ok(existing) = self.ref_get(ref_name)
            && existing.digest != root.digest
        {
            return Err(Error::new(
                ErrorKind::Clobber,
                format!("ref {ref_name:?} points to {}, not {}; force to move it", existing.digest, root.digest),
            ));
        }
        let mut plan = PullPlan::default();
        puller.plan(root.clone(), root_bytes, 0, &mut plan)?;
        // Largest first, so that the jobs end together rather than one big blob ending alone.
        plan.blobs.sort_by_key(|blob| std::cmp::Reverse(blob.size));
        for_each_parallel(&plan.blobs, options.jobs(self.limits()), |blob| puller.pull_blob(blob))?;
        // Past this point the pull stores its documents and moves the ref, all local and short.
        client.check_cancel()?;
        for (descriptor, bytes) in &plan.documents {
            self.lease_add(lease, LeaseResource::Blob(descriptor.digest.clone()))?;
            let stored = self.put_blob_leased(lease, descriptor.digest.algorithm(), bytes.as_slice())?;
            debug_assert_eq!(stored.digest, descriptor.digest);
        }
        self.ref_put(ref_name, &root, options.force)?;
        Ok(tally.report(Descriptor::new(root.media_type, root.digest, root.size)))
    }
}

struct Puller<'a> {
    engine: &'a Engine,
    client: &'a Client,
    remote: &'a RemoteRef,
    options: &'a RegistryOptions,
    lease: &'a str,
    tally: &'a Tally,
}

impl Puller<'_> {
    /// The manifest the reference names. By tag, a HEAD learns its digest first, so a manifest
    /// already stored is not fetched again, and the GET asks for that digest.
    fn root_manifest(&self) -> Result<(Descriptor, Vec<u8>)> {
        let reference = self.remote.manifest_reference().unwrap_or_default();
        let digest = match &self.remote.digest {
            Some(digest) => Some(digest.clone()),
            None => manifest_digest(self.client, &self.remote.repository, &reference)?,
        };
        if let Some(digest) = &digest
            && let Some(bytes) = self.stored_document(digest)?
        {
            let media_type = detect_media_type(&bytes).unwrap_or_default();
            return Ok((Descriptor::new(media_type, digest.clone(), bytes.len() as u64), bytes));
        }
        match &digest {
            // By digest, so a tag moved since the HEAD does not turn into a digest mismatch.
            Some(digest) => self.fetch_manifest(&digest.to_string(), Some(digest), None),
            None => self.fetch_manifest(&reference, None, None),
        }
    }

    /// A document already in the layout (so nothing is fetched), joined to the lease.
    fn stored_document(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
        self.engine.lease_add(self.lease, LeaseResource::Blob(digest.clone()))?;
        match self.engine.read_blob(digest, self.engine.max_json_size()) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// GETs a manifest, checks it against `digest` (or, by tag, against the registry's
    /// `Docker-Content-Digest`) and against `expected`'s size, and returns its descriptor.
    fn fetch_manifest(
        &self,
        reference: &str,
        digest: Option<&Digest>,
        expected: Option<&Descriptor>,
    ) -> Result<(Descriptor, Vec<u8>)> {
        let url = self.client.url(&api_path(&self.remote.repository, "manifests", reference));
        let what = format!("GET {url}");
        let mut response = self.client.send(Exchange::Document, &url, &what, |agent, authorization| {
            with_authorization(agent.get(&url), authorization).header("Accept", MANIFEST_ACCEPT).call()
        })?;
        if !response.status().is_success() {
            return Err(self
                .client
                .error_from_response(&what, response)
                .with_context(&format!("pull of {}", self.remote)));
        }
        let content_type =
            header(&response, "content-type").map(|t| t.split(';').next().unwrap_or(t).trim().to_string());
        let answered_digest = header(&response, "docker-content-digest").map(str::to_string);
        let limit = self.engine.max_json_size();
        let mut bytes = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|err| self.client.body_error(Exchange::Document, &what, err))?;
        if bytes.len() as u64 > limit {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("{what}: the manifest is over the JSON limit of {limit} bytes"),
            ));
        }
        Tally::count(&self.tally.transferred, 1);
        Tally::count(&self.tally.bytes, bytes.len() as u64);
        let computed = Digest::of_bytes(digest.map_or(Algorithm::Sha256, Digest::algorithm), &bytes);
        let wanted = digest.cloned().or_else(|| answered_digest.as_deref().and_then(|d| d.parse().ok()));
        if let Some(wanted) = wanted.filter(|wanted| *wanted != computed) {
            return Err(Error::new(
                ErrorKind::DigestMismatch,
                format!("{what}: the manifest's bytes hash to {computed}, not {wanted}: digest mismatch"),
            ));
        }
        if let Some(expected) = expected.filter(|e| e.size != bytes.len() as u64) {
            return Err(Error::new(
                ErrorKind::SizeMismatch,
                format!("{what}: the manifest is {} bytes, its descriptor says {}", bytes.len(), expected.size),
            ));
        }
        let media_type = match (expected, content_type) {
            (Some(expected), _) => expected.media_type.clone(),
            (None, Some(content_type)) if is_document_media_type(&content_type) => content_type,
            _ => detect_media_type(&bytes)
                .ok_or_else(|| Error::new(ErrorKind::InvalidImage, format!("{what}: not a manifest or index")))?,
        };
        Ok((Descriptor::new(media_type, computed, bytes.len() as u64), bytes))
    }

    /// Adds the document `descriptor` (whose bytes are `bytes`) and everything below it to the
    /// plan; an index's manifests are limited to the platforms asked for.
    fn plan(&self, descriptor: Descriptor, bytes: Vec<u8>, depth: usize, plan: &mut PullPlan) -> Result<()> {
        check_depth(self.engine, &descriptor, depth)?;
        let document = parse_document(&descriptor.media_type, &bytes)
            .map_err(|err| err.with_context(&format!("manifest {} of {}", descriptor.digest, self.remote)))?;
        match document {
            Document::Index(index) => {
                let selected: Vec<&Descriptor> =
                    index.manifests.iter().filter(|child| self.platform_selected(child.platform.as_ref())).collect();
                if selected.is_empty() {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!(
                            "index {} of {} has no manifest for {:?}",
                            descriptor.digest, self.remote, self.options.platforms
                        ),
                    ));
                }
                for child in selected {
                    if plan.documents.iter().any(|(known, _)| known.digest == child.digest) {
                        continue;
                    }
                    let bytes = match self.stored_document(&child.digest)? {
                        Some(bytes) => bytes,
                        None => self.fetch_manifest(&child.digest.to_string(), Some(&child.digest), Some(child))?.1,
                    };
                    self.plan(child.clone(), bytes, depth + 1, plan)?;
                }
            }
            Document::Manifest(manifest) => {
                for blob in std::iter::once(manifest.config).chain(manifest.layers) {
                    if !plan.blobs.iter().any(|known| known.digest == blob.digest) {
                        plan.blobs.push(blob);
                    }
                }
            }
            Document::ArtifactManifest(_) | Document::Schema1Manifest(_) => {
                return Err(Error::new(
                    ErrorKind::NotImplemented,
                    format!(
                        "cannot pull {} of {}: pulling {} documents is not supported",
                        descriptor.digest, self.remote, descriptor.media_type
                    ),
                ));
            }
            Document::Config(_) | Document::Descriptor(_) => {
                return Err(Error::new(
                    ErrorKind::InvalidImage,
                    format!(
                        "{} of {} is a {}, not a manifest or index",
                        descriptor.digest, self.remote, descriptor.media_type
                    ),
                ));
            }
        }
        plan.documents.push((descriptor, bytes));
        Ok(())
    }

    fn platform_selected(&self, platform: Option<&Platform>) -> bool {
        if self.options.platforms.is_empty() {
            return true;
        }
        let Some(platform) = platform else { return false };
        self.options.platforms.iter().any(|wanted| {
            let mut parts = wanted.split('/');
            parts.next() == Some(platform.os.as_str())
                && parts.next() == Some(platform.architecture.as_str())
                && parts.next().is_none_or(|variant| platform.variant.as_deref() == Some(variant))
        })
    }

    /// Fetches one blob into its ingest (`pull:<digest>:<size>`, so a descriptor that lies about
    /// the size does not meet the ingest of a truthful one), resuming from the ingest's offset,
    /// and commits it, verified. A blob already stored is only joined to the lease (and a
    /// leftover ingest of it removed).
    fn pull_blob(&self, blob: &Descriptor) -> Result<()> {
        let ingest_ref = format!("pull:{}:{}", blob.digest, blob.size);
        self.engine.lease_add(self.lease, LeaseResource::Blob(blob.digest.clone()))?;
        self.engine.lease_add(self.lease, LeaseResource::Ingest(ingest_ref.clone()))?;
        self.fetch_blob(blob, &ingest_ref).map_err(|err| {
            if matches!(err.kind(), ErrorKind::DigestMismatch | ErrorKind::SizeMismatch) {
                // Resuming bytes that do not match would fail the same way every time.
                let _ = self.engine.ingest_abort(&ingest_ref);
            }
            err.with_context(&format!("blob {} of {}", blob.digest, self.remote))
        })
    }

    fn fetch_blob(&self, blob: &Descriptor, ingest_ref: &str) -> Result<()> {
        let Some(mut writer) = self.open_writer(blob, ingest_ref)? else {
            Tally::count(&self.tally.skipped, 1);
            self.options.report_progress(Some(&blob.digest), blob.size, Some(blob.size));
            return Ok(());
        };
        let mut failures = 0;
        while writer.status().offset < blob.size {
            match self.download(blob, &mut writer) {
                Ok(()) => {}
                Err(err) if err.kind() == ErrorKind::Remote && failures < BLOB_RETRIES => failures += 1,
                Err(err) => return Err(err),
            }
        }
        match writer.commit(Some(blob.size), Some(&blob.digest), &Default::default()) {
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
        Tally::count(&self.tally.transferred, 1);
        Ok(())
    }

    /// The writer of the blob's ingest, or None when the blob is stored. While another writer
    /// (a pull of the same blob in another process, say) holds the ingest, waits for it as
    /// long as it moves at least `registry_min_rate`, showing its offset as progress; then
    /// uses the blob it stored, or resumes its ingest when it stopped short.
    fn open_writer(&self, blob: &Descriptor, ingest_ref: &str) -> Result<Option<IngestWriter>> {
        let writer_options =
            WriterOptions { expected_size: Some(blob.size), expected_digest: Some(blob.digest.clone()) };
        let mut window = RateWindow::new(self.client.limits());
        let mut last_offset = None;
        loop {
            match self.engine.writer(ingest_ref, &writer_options) {
                Ok(writer) => return Ok(Some(writer)),
                Err(err) if err.kind() == ErrorKind::AlreadyExists => {
                    self.remove_leftover_ingest(ingest_ref)?;
                    return Ok(None);
                }
                Err(err) if err.kind() == ErrorKind::Locked => {}
                Err(err) => return Err(err),
            }
            self.client.check_cancel()?;
            let offset = self.engine.ingest_status(ingest_ref).map_or(0, |status| status.offset);
            self.options.report_progress(Some(&blob.digest), offset, Some(blob.size));
            let moved = last_offset.map_or(0, |last| offset.saturating_sub(last));
            last_offset = Some(offset);
            if let Err(moved) = window.record(moved) {
                return Err(self.client.too_slow(moved).with_context(&format!(
                    "waiting for the other writer of ingest {ingest_ref:?} (it holds {offset} of {} bytes)",
                    blob.size
                )));
            }
            std::thread::sleep(LOCKED_POLL);
        }
    }

    /// Removes the ingest a pull stopped at the wrong moment left of a blob that is stored
    /// (the blob is there; resuming it could only fail). One a live writer holds is its own.
    fn remove_leftover_ingest(&self, ingest_ref: &str) -> Result<()> {
        match self.engine.ingest_abort(ingest_ref) {
            Ok(()) => Ok(()),
            Err(err) if matches!(err.kind(), ErrorKind::NotFound | ErrorKind::Locked) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// One GET of the blob from the writer's offset (`Range` when it is past 0), into the writer.
    fn download(&self, blob: &Descriptor, writer: &mut IngestWriter) -> Result<()> {
        let offset = writer.status().offset;
        let url = self.client.url(&api_path(&self.remote.repository, "blobs", &blob.digest.to_string()));
        let what = format!("GET {url}");
        let mut response = self.client.send(Exchange::Blob, &url, &what, |agent, authorization| {
            let request = with_authorization(agent.get(&url), authorization);
            if offset > 0 { request.header("Range", format!("bytes={offset}-")).call() } else { request.call() }
        })?;
        match response.status() {
            StatusCode::PARTIAL_CONTENT if content_range_start(&response) == Some(offset) => {}
            StatusCode::PARTIAL_CONTENT => {
                return Err(Error::new(
                    ErrorKind::Remote,
                    format!("{what}: the registry sent a range not starting at {offset}"),
                ));
            }
            StatusCode::OK if offset > 0 => writer.truncate(0)?,
            StatusCode::OK => {}
            _ => {
                let err = self.client.error_from_response(&what, response);
                return Err(err.with_context(&format!("pull of {}", self.remote)));
            }
        }
        let start = writer.status().offset;
        let meter = BlobMeter {
            client: self.client,
            options: self.options,
            tally: self.tally,
            digest: Some(&blob.digest),
            total: Some(blob.size),
        };
        let mut body = Metered::new(response.body_mut().as_reader(), &meter, start);
        let mut buf = vec![0u8; DOWNLOAD_BUFFER];
        loop {
            let n = body.read(&mut buf).map_err(|err| self.client.body_error(Exchange::Blob, &what, err))?;
            if n == 0 {
                let received = writer.status().offset;
                if received < blob.size {
                    // Counted as a failed connection: resumed from here, a limited number of times.
                    return Err(Error::new(
                        ErrorKind::Remote,
                        format!("{what}: the body ended after {received} of {} bytes", blob.size),
                    ));
                }
                return Ok(());
            }
            if writer.status().offset + n as u64 > blob.size {
                return Err(Error::new(
                    ErrorKind::SizeMismatch,
                    format!("{what}: the registry sent more than the {} bytes of blob {}", blob.size, blob.digest),
                ));
            }
            writer.write(&buf[..n])?;
        }
    }
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL` answer.
fn content_range_start(response: &super::client::HttpResponse) -> Option<u64> {
    header(response, "content-range")?.trim().strip_prefix("bytes ")?.split('-').next()?.parse().ok()
}
