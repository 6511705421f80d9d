//! Blob uploads of the distribution API: POST (or a cross-repository mount), one PATCH per
//! chunk with `Content-Range`, PUT `?digest=`. A chunk whose request fails is sent again from
//! the offset the registry reports for the upload.

use std::io::{self, Read};

use ureq::SendBody;
use ureq::http::StatusCode;

use super::client::{Client, Exchange, HttpResponse, header};
use super::{BlobMeter, Metered, api_path};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};

/// How often one chunk is sent again after its request failed.
const CHUNK_RETRIES: u32 = 3;

/// The bytes of a blob being uploaded, readable again from any offset still held (a chunk that
/// failed midway is resent from where the registry says it stopped).
pub(crate) trait UploadSource: Sync {
    /// The bytes `[offset, end)`; an error when they are no longer held.
    fn read_range(&self, offset: u64, end: u64) -> Result<Box<dyn Read + '_>>;
}

pub(crate) enum Started<'c> {
    /// The registry mounted the blob from the other repository: nothing to send.
    Mounted,
    Session(UploadSession<'c>),
}

/// An upload in progress: its current URL and how many bytes the registry holds. Dropped
/// before it finished, it is cancelled (DELETE, best effort), so the registry need not keep the
/// bytes until it purges old uploads.
pub(crate) struct UploadSession<'c> {
    client: &'c Client,
    location: String,
    offset: u64,
    finished: bool,
}

impl Drop for UploadSession<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let url = self.location.clone();
            let _ = self.client.send(Exchange::Document, &url, &format!("DELETE {url}"), |agent, authorization| {
                with_authorization(agent.delete(&url), authorization).call()
            });
        }
    }
}

impl Client {
    /// Starts an upload to `repository`, or mounts `mount = (digest, from_repository)` when the
    /// registry can (it answers 201); otherwise the upload it opened instead is returned.
    pub(crate) fn start_upload(&self, repository: &str, mount: Option<(&Digest, &str)>) -> Result<Started<'_>> {
        let mut url = self.url(&format!("/v2/{repository}/blobs/uploads/"));
        if let Some((digest, from)) = mount {
            url = format!("{url}?mount={digest}&from={from}");
        }
        let what = format!("POST {url}");
        let response = self.send(Exchange::Document, &url, &what, |agent, authorization| {
            with_authorization(agent.post(&url), authorization).header("Content-Length", "0").send_empty()
        })?;
        match response.status() {
            StatusCode::CREATED if mount.is_some() => Ok(Started::Mounted),
            StatusCode::ACCEPTED => {
                let location = self.resolve_location(&url, &response, &what)?;
                Ok(Started::Session(UploadSession { client: self, location, offset: 0, finished: false }))
            }
            _ => Err(self.error_from_response(&what, response)),
        }
    }
}

impl UploadSession<'_> {
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Sends `source`'s bytes from the current offset to `end` as one chunk, sending again from
    /// the registry's offset when a request fails.
    pub(crate) fn send_chunk(&mut self, source: &dyn UploadSource, end: u64, meter: &BlobMeter<'_>) -> Result<()> {
        let mut attempt = 0;
        loop {
            match self.patch(source, end, meter) {
                Ok(()) => return Ok(()),
                Err(err) if err.kind() == ErrorKind::Remote && attempt < CHUNK_RETRIES => {
                    attempt += 1;
                    self.resync().map_err(|lost| {
                        // The distribution registry cancels an upload asked about with a stale
                        // state: only a new upload can go on (`Remote`, which the caller retries).
                        if lost.kind() == ErrorKind::NotFound {
                            Error::new(ErrorKind::Remote, format!("{err}; then the upload was gone: {lost}"))
                        } else {
                            lost
                        }
                    })?;
                    if self.offset == end {
                        // The request reached the registry whole; only its answer was lost.
                        return Ok(());
                    }
                    if self.offset > end {
                        return Err(Error::new(
                            ErrorKind::Remote,
                            format!("{err}; then the registry held {} bytes, more than the {end} sent", self.offset),
                        ));
                    }
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn patch(&mut self, source: &dyn UploadSource, end: u64, meter: &BlobMeter<'_>) -> Result<()> {
        let (start, url) = (self.offset, self.location.clone());
        let what = format!("PATCH {url} (bytes {start}-{})", end.saturating_sub(1));
        let response = self.client.send(Exchange::Blob, &url, &what, |agent, authorization| {
            let range = source.read_range(start, end).map_err(|err| ureq::Error::Io(io::Error::other(err)))?;
            let mut body = Metered::new(range, meter, start);
            with_authorization(agent.patch(&url), authorization)
                .header("Content-Type", "application/octet-stream")
                .header("Content-Range", format!("{start}-{}", end - 1))
                .header("Content-Length", (end - start).to_string())
                .send(SendBody::from_reader(&mut body))
        })?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.client.error_from_response(&what, response));
        }
        self.location = self.client.resolve_location(&url, &response, &what)?;
        let held = held_bytes(&response, end).unwrap_or(end);
        if held != end {
            return Err(Error::new(ErrorKind::Remote, format!("{what}: the registry holds {held} bytes, not {end}")));
        }
        self.offset = end;
        Ok(())
    }

    /// Asks the registry how much of the upload it holds (after a failed request).
    fn resync(&mut self) -> Result<()> {
        let url = self.location.clone();
        let what = format!("GET {url} (upload status)");
        let response = self.client.send(Exchange::Document, &url, &what, |agent, authorization| {
            with_authorization(agent.get(&url), authorization).call()
        })?;
        if response.status() != StatusCode::NO_CONTENT {
            return Err(self.client.error_from_response(&what, response));
        }
        self.location = self.client.resolve_location(&url, &response, &what)?;
        self.offset = held_bytes(&response, self.offset).unwrap_or(0);
        Ok(())
    }

    /// Completes the upload as blob `digest` (the registry checks the bytes against it).
    pub(crate) fn finish(mut self, digest: &Digest) -> Result<()> {
        let separator = if self.location.contains('?') { '&' } else { '?' };
        let url = format!("{}{separator}digest={digest}", self.location);
        let what = format!("PUT {url}");
        let response = self.client.send(Exchange::Document, &url, &what, |agent, authorization| {
            with_authorization(agent.put(&url), authorization).header("Content-Length", "0").send_empty()
        })?;
        if response.status() != StatusCode::CREATED {
            return Err(self.client.error_from_response(&what, response));
        }
        self.finished = true;
        check_content_digest(&response, digest, &what)
    }
}

/// Bytes the registry holds, from its `Range: 0-LAST` header. `0-0` is ambiguous (the
/// distribution registry sends it for an empty upload and for one of one byte): it is read as
/// one byte only when `known` (bytes sent, or confirmed before) is at least 1.
fn held_bytes(response: &HttpResponse, known: u64) -> Option<u64> {
    let range = header(response, "range")?;
    let last: u64 = range.trim().strip_prefix("bytes=").unwrap_or(range.trim()).split_once('-')?.1.parse().ok()?;
    Some(if last == 0 { known.min(1) } else { last.checked_add(1)? })
}

/// A `Docker-Content-Digest` answer that names another digest than the one sent is an error.
pub(crate) fn check_content_digest(response: &HttpResponse, digest: &Digest, what: &str) -> Result<()> {
    match header(response, "docker-content-digest") {
        Some(answered) if answered != digest.to_string() => {
            Err(Error::new(ErrorKind::DigestMismatch, format!("{what}: the registry stored {answered}, not {digest}")))
        }
        _ => Ok(()),
    }
}

/// Adds the `Authorization` header when there is one.
pub(crate) fn with_authorization<B>(
    request: ureq::RequestBuilder<B>,
    authorization: Option<&str>,
) -> ureq::RequestBuilder<B> {
    match authorization {
        Some(value) => request.header("Authorization", value),
        None => request,
    }
}

/// `HEAD /v2/<repository>/<kind>/<digest>`: whether the registry already has it.
pub(crate) fn exists(client: &Client, repository: &str, kind: &str, digest: &Digest) -> Result<bool> {
    let url = client.url(&api_path(repository, kind, &digest.to_string()));
    let what = format!("HEAD {url}");
    let response = client.send(Exchange::Document, &url, &what, |agent, authorization| {
        with_authorization(agent.head(&url), authorization).call()
    })?;
    match response.status() {
        status if status.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => Err(client.error_from_response(&what, response)),
    }
}

/// `HEAD /v2/<repository>/manifests/<reference>`: the digest the registry has under that tag
/// or digest, or None when it has none.
pub(crate) fn manifest_digest(client: &Client, repository: &str, reference: &str) -> Result<Option<Digest>> {
    let url = client.url(&api_path(repository, "manifests", reference));
    let what = format!("HEAD {url}");
    let response = client.send(Exchange::Document, &url, &what, |agent, authorization| {
        with_authorization(agent.head(&url), authorization).header("Accept", MANIFEST_ACCEPT).call()
    })?;
    match response.status() {
        status if status.is_success() => {
            Ok(header(&response, "docker-content-digest").and_then(|digest| digest.parse().ok()))
        }
        StatusCode::NOT_FOUND => Ok(None),
        _ => Err(client.error_from_response(&what, response)),
    }
}

/// The manifest types a registry may answer with, in order of preference.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";
