//! Push: an image of the layout (manifest or index, with every child, and the manifests in the
//! layout's index that refer to it by `subject`) to a registry; and a streaming layer straight
//! into a registry.

use std::collections::HashSet;
use std::io::Read;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;

use ureq::http::StatusCode;

use super::client::{Client, Exchange};
use super::upload::{Started, UploadSource, check_content_digest, exists, manifest_digest, with_authorization};
use super::{BlobMeter, RegistryOptions, RemoteRef, Tally, TransferReport, api_path, check_depth, for_each_parallel};
use crate::content::BlobReader;
use crate::digest::Digest;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result, invalid_argument};
use crate::limits::Limits;
use crate::spec::{Descriptor, Document, is_document_media_type};
use crate::stream::{CompressionOptions, LayerDescriptor, LayerReader};

/// How often the upload of a stored blob starts over after it failed (a registry may drop an
/// upload whose request failed; the bytes can be read again from the start).
const UPLOAD_RESTARTS: u32 = 2;

/// What a push sends: leaf blobs (any order, in parallel), then documents, children first.
#[derive(Default)]
struct PushPlan {
    blobs: Vec<Descriptor>,
    documents: Vec<(Descriptor, Vec<u8>)>,
    seen: HashSet<Digest>,
}

impl PushPlan {
    /// Adds `descriptor` and everything below it (not its `subject`: that is what it refers to).
    fn add(&mut self, engine: &Engine, descriptor: &Descriptor, depth: usize) -> Result<()> {
        if !self.seen.insert(descriptor.digest.clone()) {
            return Ok(());
        }
        if !is_document_media_type(&descriptor.media_type) {
            self.blobs.push(descriptor.clone());
            return Ok(());
        }
        let document = engine.read_document(descriptor)?;
        let children: Vec<Descriptor> = match &document {
            Document::Index(index) => index.manifests.clone(),
            Document::Manifest(manifest) => {
                std::iter::once(&manifest.config).chain(&manifest.layers).cloned().collect()
            }
            Document::Config(_) | Document::Descriptor(_) => {
                self.blobs.push(descriptor.clone());
                return Ok(());
            }
            Document::ArtifactManifest(_) | Document::Schema1Manifest(_) => {
                return Err(Error::new(
                    ErrorKind::NotImplemented,
                    format!(
                        "cannot push {}: pushing {} documents is not supported",
                        descriptor.digest, descriptor.media_type
                    ),
                ));
            }
        };
        check_depth(engine, descriptor, depth)?;
        for child in &children {
            if matches!(document, Document::Index(_)) && !engine.has_blob(&child.digest)? {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "index {} lists manifest {}, which is not stored (was the index pulled for some platforms only?)",
                        descriptor.digest, child.digest
                    ),
                ));
            }
            self.add(engine, child, depth + 1)?;
        }
        let bytes = engine.read_blob(&descriptor.digest, engine.max_json_size())?;
        self.documents.push((descriptor.clone(), bytes));
        Ok(())
    }

    /// Adds the manifests of the layout's index whose `subject` is a document of the plan.
    fn add_referrers(&mut self, engine: &Engine) -> Result<()> {
        let subjects: HashSet<Digest> = self.documents.iter().map(|(d, _)| d.digest.clone()).collect();
        for entry in engine.read_index()?.manifests {
            if self.seen.contains(&entry.digest) || !is_document_media_type(&entry.media_type) {
                continue;
            }
            let subject = match engine.read_document(&entry)? {
                Document::Manifest(manifest) => manifest.subject,
                Document::Index(index) => index.subject,
                _ => None,
            };
            if subject.is_some_and(|subject| subjects.contains(&subject.digest)) {
                self.add(engine, &entry, 0)?;
            }
        }
        Ok(())
    }
}

impl Engine {
    /// Pushes the image `ref_name` of this layout to `target` (`HOST/REPO[:TAG]`; without a tag,
    /// by digest). Blobs the registry has are skipped (HEAD); with `mount_from`, blobs are mounted
    /// from that repository when the registry can. Manifests go last, children before parents;
    /// manifests of the layout's index that refer to the image (`subject`) go too.
    pub fn push(&self, ref_name: &str, target: &str, options: &RegistryOptions) -> Result<TransferReport> {
        options.cancel.explain("push", self.push_image(ref_name, target, options))
    }

    fn push_image(&self, ref_name: &str, target: &str, options: &RegistryOptions) -> Result<TransferReport> {
        options.check(self.limits())?;
        let remote = RemoteRef::parse(target)?;
        if remote.digest.is_some() {
            return Err(invalid_argument(format!("push target {target:?} names a digest; give HOST/REPO[:TAG]")));
        }
        if let Some(from) = &options.mount_from
            && !super::reference::valid_repository(from)
        {
            return Err(invalid_argument(format!("invalid repository to mount from: {from:?}")));
        }
        let root = self.ref_get(ref_name)?;
        let mut plan = PushPlan::default();
        plan.add(self, &root, 0)?;
        plan.add_referrers(self)?;

        let mount: Vec<&str> = options.mount_from.iter().map(String::as_str).collect();
        let client = Client::connect(&remote, "pull,push", &mount, options, self.limits())?;
        let tally = Tally::default();
        // Largest first, so that the jobs end together rather than one big blob ending alone.
        plan.blobs.sort_by_key(|blob| std::cmp::Reverse(blob.size));
        for_each_parallel(&plan.blobs, options.jobs(self.limits()), |blob| {
            push_blob(self, &client, &remote, blob, options, &tally)
        })?;
        for (descriptor, bytes) in &plan.documents {
            // By tag, the registry may hold the manifest under another tag or the tag elsewhere.
            let tag = remote.tag.as_ref().filter(|_| descriptor.digest == root.digest);
            let reference = tag.cloned().unwrap_or_else(|| descriptor.digest.to_string());
            if manifest_digest(&client, &remote.repository, &reference)?.as_ref() == Some(&descriptor.digest) {
                Tally::count(&tally.skipped, 1);
                continue;
            }
            put_manifest(&client, &remote.repository, &reference, descriptor, bytes)?;
            Tally::count(&tally.transferred, 1);
            Tally::count(&tally.bytes, bytes.len() as u64);
        }
        Ok(tally.report(Descriptor::new(root.media_type, root.digest, root.size)))
    }
}

fn push_blob(
    engine: &Engine,
    client: &Client,
    remote: &RemoteRef,
    blob: &Descriptor,
    options: &RegistryOptions,
    tally: &Tally,
) -> Result<()> {
    if exists(client, &remote.repository, "blobs", &blob.digest)? {
        Tally::count(&tally.skipped, 1);
        options.report_progress(Some(&blob.digest), blob.size, Some(blob.size));
        return Ok(());
    }
    let reader = engine.open_blob(&blob.digest)?;
    if reader.size() != blob.size {
        return Err(Error::new(
            ErrorKind::SizeMismatch,
            format!("blob {} is {} bytes but its descriptor says {}", blob.digest, reader.size(), blob.size),
        ));
    }
    let mut restarts = 0;
    loop {
        match upload_blob(client, remote, blob, &reader, options, tally) {
            Ok(counter) => {
                Tally::count(counter, 1);
                return Ok(());
            }
            Err(err) if err.kind() == ErrorKind::Remote && restarts < UPLOAD_RESTARTS => {
                // Only the answer may have been lost (to the final PUT, say).
                if exists(client, &remote.repository, "blobs", &blob.digest)? {
                    Tally::count(&tally.transferred, 1);
                    return Ok(());
                }
                restarts += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

/// One upload of a stored blob (or its mount); returns the counter of what happened.
fn upload_blob<'t>(
    client: &Client,
    remote: &RemoteRef,
    blob: &Descriptor,
    reader: &BlobReader,
    options: &RegistryOptions,
    tally: &'t Tally,
) -> Result<&'t AtomicU64> {
    let mount = options.mount_from.as_deref().map(|from| (&blob.digest, from));
    let mut session = match client.start_upload(&remote.repository, mount)? {
        Started::Mounted => {
            options.report_progress(Some(&blob.digest), blob.size, Some(blob.size));
            return Ok(&tally.mounted);
        }
        Started::Session(session) => session,
    };
    let meter = BlobMeter { client, options, tally, digest: Some(&blob.digest), total: Some(blob.size) };
    while session.offset() < blob.size {
        let end = blob.size.min(session.offset().saturating_add(options.chunk_size(Some(blob.size))));
        session.send_chunk(reader, end, &meter)?;
    }
    session.finish(&blob.digest)?;
    Ok(&tally.transferred)
}

impl UploadSource for BlobReader {
    fn read_range(&self, offset: u64, end: u64) -> Result<Box<dyn Read + '_>> {
        Ok(Box::new(RangeReader { blob: self, offset, end }))
    }
}

/// Reads `[offset, end)` of a stored blob with pread, so several ranges may be read at once.
struct RangeReader<'b> {
    blob: &'b BlobReader,
    offset: u64,
    end: u64,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf.len().min((self.end - self.offset) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.blob.read_at(&mut buf[..want], self.offset).map_err(std::io::Error::other)?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the blob ended early"));
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// `PUT /v2/<repository>/manifests/<reference>` with the document's exact bytes.
fn put_manifest(
    client: &Client,
    repository: &str,
    reference: &str,
    descriptor: &Descriptor,
    bytes: &[u8],
) -> Result<()> {
    let url = client.url(&api_path(repository, "manifests", reference));
    let what = format!("PUT {url}");
    let response = client.send(Exchange::Document, &url, &what, |agent, authorization| {
        with_authorization(agent.put(&url), authorization)
            .header("Content-Type", descriptor.media_type.as_str())
            .send(bytes)
    })?;
    if response.status() != StatusCode::CREATED {
        return Err(client.error_from_response(&what, response));
    }
    check_content_digest(&response, &descriptor.digest, &what)
}

/// One chunk of a streamed layer, held until the registry took it.
struct HeldChunk {
    start: u64,
    bytes: Vec<u8>,
}

impl UploadSource for HeldChunk {
    fn read_range(&self, offset: u64, end: u64) -> Result<Box<dyn Read + '_>> {
        let held = self.start..=self.start + self.bytes.len() as u64;
        if !held.contains(&offset) || !held.contains(&end) || offset > end {
            return Err(Error::new(
                ErrorKind::Remote,
                format!("the registry asks for bytes {offset}-{end} of a streamed layer, which are no longer held"),
            ));
        }
        Ok(Box::new(&self.bytes[(offset - self.start) as usize..(end - self.start) as usize]))
    }
}

/// Compresses the tar `source` once and uploads it to `target` (`HOST/REPO`) in chunks while it
/// is compressed, nothing written to disk: the digest is only known at the end, so the upload
/// is completed with `PUT ?digest=` after the last chunk. Returns the layer's descriptor and
/// DiffID. Compression runs on the calling thread (which reads `source`), the upload on another.
/// `limits` gives the registry deadlines (`registry_timeout`, `registry_min_rate`) and `threads`.
pub fn push_layer(
    source: impl Read,
    target: &str,
    layer_options: &CompressionOptions,
    options: &RegistryOptions,
    limits: &Limits,
) -> Result<LayerDescriptor> {
    options.cancel.explain("push-layer", push_layer_chunked(source, target, layer_options, options, limits))
}

fn push_layer_chunked(
    source: impl Read,
    target: &str,
    layer_options: &CompressionOptions,
    options: &RegistryOptions,
    limits: &Limits,
) -> Result<LayerDescriptor> {
    options.check(limits)?;
    let remote = RemoteRef::parse(target)?;
    if remote.tag.is_some() || remote.digest.is_some() {
        return Err(invalid_argument(format!("push-layer target {target:?} must be HOST/REPO, without tag or digest")));
    }
    let mut layer = LayerReader::new(source, layer_options)?;
    let client = Client::connect(&remote, "pull,push", &[], options, limits)?;
    let Started::Session(mut session) = client.start_upload(&remote.repository, None)? else {
        return Err(Error::new(ErrorKind::Remote, "the registry mounted a blob it was not asked to mount"));
    };
    let tally = Tally::default();
    let chunk_size = usize::try_from(options.chunk_size(None)).unwrap_or(usize::MAX);
    let (uploaded, next_buffers) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        // Two chunks in memory at most: one being uploaded, one being filled (handed over when
        // the uploader is free). The sender lives in this closure, so that a panic while
        // filling closes the channel and the uploader ends before the scope waits for it.
        let (to_upload, uploads) = mpsc::sync_channel::<HeldChunk>(0);
        let uploader = crate::threads::spawn_scoped(scope, "registry upload", || -> Result<()> {
            let meter = BlobMeter { client: &client, options, tally: &tally, digest: None, total: None };
            for chunk in uploads {
                let end = chunk.start + chunk.bytes.len() as u64;
                session.send_chunk(&chunk, end, &meter)?;
                let _ = uploaded.send(chunk.bytes);
            }
            Ok(())
        })?;
        let compressed = fill_chunks(&mut layer, chunk_size, &to_upload, &next_buffers, &client);
        drop(to_upload);
        let upload =
            uploader.join().unwrap_or_else(|_| Err(Error::new(ErrorKind::Remote, "the upload thread panicked")));
        // An upload failure explains a send failure of the compressing side, so it comes first.
        upload.and(compressed)
    })?;
    let descriptor = layer.layer_descriptor()?;
    session.finish(&descriptor.digest)?;
    options.report_progress(Some(&descriptor.digest), descriptor.size, Some(descriptor.size));
    Ok(descriptor)
}

/// Reads the compressed layer into chunks of `chunk_size` and hands them to the uploader,
/// reusing the buffers it gives back, until the transfer is cancelled.
fn fill_chunks<R: Read>(
    layer: &mut LayerReader<R>,
    chunk_size: usize,
    to_upload: &mpsc::SyncSender<HeldChunk>,
    next_buffers: &mpsc::Receiver<Vec<u8>>,
    client: &Client,
) -> Result<()> {
    let mut start = 0u64;
    loop {
        let mut bytes = next_buffers.try_recv().unwrap_or_default();
        bytes.resize(chunk_size, 0);
        let mut filled = 0;
        while filled < chunk_size {
            client.check_cancel()?;
            let n = layer.read_chunk(&mut bytes[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        bytes.truncate(filled);
        let last = filled < chunk_size;
        if filled > 0 {
            let len = filled as u64;
            if to_upload.send(HeldChunk { start, bytes }).is_err() {
                // The uploader stopped on an error, which push_layer reports instead.
                return Err(Error::new(ErrorKind::Remote, "the upload stopped"));
            }
            start += len;
        }
        if last {
            return Ok(());
        }
    }
}
