//! One registry, one set of repository scopes: the HTTP agents, the `/v2/` ping, and the
//! `Authorization` header, fetched from the challenge and refreshed when a request gets 401.
//! Every request has a deadline from the engine's limits: a document exchange (manifest,
//! token, HEAD, upload start and end) must end within `registry_timeout`; a blob transfer must
//! move at least `registry_min_rate` bytes per second averaged over each `registry_timeout`.

use std::io::{self, Read};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::http::{Response, StatusCode};
use ureq::tls::{RootCerts, TlsConfig};
use ureq::{Agent, Body};

use super::auth::{Challenge, Credentials, docker_config_credentials};
use super::{RegistryOptions, RemoteRef};
use crate::cancel::Cancel;
use crate::error::{Error, ErrorKind, Result};
use crate::limits::{Limit, Limits};

/// Error bodies are short JSON; more than this is not read.
const MAX_ERROR_BODY: u64 = 64 * 1024;
/// A token response is a small JSON object.
const MAX_TOKEN_BODY: u64 = 1024 * 1024;

pub(crate) struct Client {
    /// For documents: each request ends within `registry_timeout`, body included.
    documents: Agent,
    /// For blobs: no overall deadline (a blob may be large), but no read, write or wait for an
    /// answer may take `registry_timeout`, and bodies are read through `Paced`.
    blobs: Agent,
    limits: Limits,
    /// `https://host` (or `http://` for an insecure registry).
    base_url: String,
    insecure: bool,
    host: String,
    credentials: Option<Credentials>,
    /// `repository:NAME:ACTIONS` scopes asked of a token server.
    scopes: Vec<String>,
    /// What every request sends as `Authorization` (none until a challenge asked for it).
    authorization: Mutex<Option<String>>,
    /// Looked at before every request and every read of a blob body.
    cancel: Cancel,
}

/// What a request gets back: the status and headers are read, the body is still to read.
pub(crate) type HttpResponse = Response<Body>;

/// Which deadline a request has (see `Client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exchange {
    Document,
    Blob,
}

impl Client {
    /// Connects to the registry of `remote` for `actions` (`"pull"` or `"pull,push"`) on its
    /// repository and `extra_pull_repositories` (the source of a cross-repository mount), with
    /// the deadlines of `limits`.
    pub(crate) fn connect(
        remote: &RemoteRef,
        actions: &str,
        extra_pull_repositories: &[&str],
        options: &RegistryOptions,
        limits: &Limits,
    ) -> Result<Client> {
        let scheme = if options.insecure { "http" } else { "https" };
        let credentials = match &options.credentials {
            Some(credentials) => Some(credentials.clone()),
            None => docker_config_credentials(&remote.host)?,
        };
        let mut scopes = vec![format!("repository:{}:{actions}", remote.repository)];
        scopes.extend(extra_pull_repositories.iter().map(|repository| format!("repository:{repository}:pull")));
        let timeout = Duration::from_secs(limits.registry_timeout);
        let client = Client {
            documents: agent(timeout, Some(timeout)),
            blobs: agent(timeout, None),
            limits: *limits,
            base_url: format!("{scheme}://{}", remote.api_host()),
            insecure: options.insecure,
            host: remote.host.clone(),
            credentials,
            scopes,
            authorization: Mutex::new(None),
            cancel: options.cancel.clone(),
        };
        client.ping()?;
        Ok(client)
    }

    /// `GET /v2/`: proves the registry speaks the API, and learns its challenge up front so
    /// that no request with a body has to be sent twice.
    fn ping(&self) -> Result<()> {
        self.check_cancel()?;
        let url = self.url("/v2/");
        let what = format!("GET {url}");
        let response =
            self.documents.get(&url).call().map_err(|err| self.transport_error(Exchange::Document, &what, err))?;
        match response.status() {
            status if status.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => {
                let header = self.authorize(&response)?;
                *self.lock_authorization() = Some(header);
                Ok(())
            }
            _ => Err(self.error_from_response(&what, response)),
        }
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// `Cancelled` once the transfer's caller asked it to stop.
    pub(crate) fn check_cancel(&self) -> Result<()> {
        self.cancel.check(&format!("the transfer with registry {}", self.host))
    }

    /// The URL of an API path (`/v2/...`).
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The absolute URL the `Location` header of the answer to `request_url` names.
    pub(crate) fn resolve_location(&self, request_url: &str, response: &HttpResponse, what: &str) -> Result<String> {
        let location = header(response, "location")
            .ok_or_else(|| Error::new(ErrorKind::Remote, format!("{what}: the registry sent no Location")))?;
        location_url(request_url, location, self.insecure)
            .map_err(|problem| Error::new(ErrorKind::Remote, format!("{what}: {problem}")))
    }

    /// Sends a request to `url` built by `send`, with the current `Authorization` when `url` is
    /// on the registry itself (never to another host an upload `Location` may name). On 401 it
    /// authenticates again from the new challenge (a token may have expired) and sends once
    /// more; a second 401 is `Unauthorized`. Any other status is returned for the caller.
    /// `exchange` says which deadline the request has.
    pub(crate) fn send(
        &self,
        exchange: Exchange,
        url: &str,
        what: &str,
        mut send: impl FnMut(&Agent, Option<&str>) -> Result<HttpResponse, ureq::Error>,
    ) -> Result<HttpResponse> {
        self.check_cancel()?;
        let agent = match exchange {
            Exchange::Document => &self.documents,
            Exchange::Blob => &self.blobs,
        };
        let on_registry = origin(url).is_some_and(|origin_of_url| Some(origin_of_url) == origin(&self.base_url));
        let authorization = if on_registry { self.lock_authorization().clone() } else { None };
        let response =
            send(agent, authorization.as_deref()).map_err(|err| self.transport_error(exchange, what, err))?;
        if response.status() != StatusCode::UNAUTHORIZED || !on_registry {
            return Ok(response);
        }
        let refreshed = self.authorize(&response)?;
        *self.lock_authorization() = Some(refreshed.clone());
        let response = send(agent, Some(&refreshed)).map_err(|err| self.transport_error(exchange, what, err))?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(self.unauthorized(what));
        }
        Ok(response)
    }

    /// The `Authorization` header that answers the challenge of a 401 `response`.
    fn authorize(&self, response: &HttpResponse) -> Result<String> {
        let challenge = header(response, "www-authenticate").and_then(Challenge::parse).ok_or_else(|| {
            Error::new(
                ErrorKind::Unauthorized,
                format!("registry {} answered 401 without a usable challenge", self.host),
            )
        })?;
        match challenge {
            Challenge::Basic => match &self.credentials {
                Some(credentials) => Ok(credentials.basic_header()),
                None => Err(self.unauthorized("Basic authentication")),
            },
            Challenge::Bearer { realm, service, scope } => {
                self.fetch_token(&realm, service.as_deref(), scope.as_deref())
            }
        }
    }

    /// A Bearer token from the token server `realm`, for our scopes and any the challenge named.
    fn fetch_token(&self, realm: &str, service: Option<&str>, challenge_scope: Option<&str>) -> Result<String> {
        let what = format!("token request to {realm}");
        let mut request = self.documents.get(realm);
        if let Some(service) = service {
            request = request.query("service", service);
        }
        for scope in self.scopes.iter().map(String::as_str).chain(challenge_scope) {
            request = request.query("scope", scope);
        }
        if let Some(credentials) = &self.credentials {
            // A challenge must not lure credentials onto plain HTTP from a registry reached by TLS.
            if !self.insecure && !is_https(realm) {
                return Err(Error::new(
                    ErrorKind::Remote,
                    format!("{what}: the token realm is not HTTPS; credentials go there only for an insecure registry"),
                ));
            }
            request = request.header("Authorization", credentials.basic_header());
        }
        let mut response = request.call().map_err(|err| self.transport_error(Exchange::Document, &what, err))?;
        match response.status() {
            status if status.is_success() => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(self.unauthorized(&what)),
            _ => return Err(self.error_from_response(&what, response)),
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_TOKEN_BODY)
            .read_to_vec()
            .map_err(|err| self.transport_error(Exchange::Document, &what, err))?;
        let body: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|err| Error::new(ErrorKind::Remote, format!("{what}: the answer is not JSON: {err}")))?;
        let token = body.get("token").or_else(|| body.get("access_token")).and_then(|t| t.as_str());
        match token {
            Some(token) if !token.is_empty() => Ok(format!("Bearer {token}")),
            _ => Err(Error::new(ErrorKind::Remote, format!("{what}: the answer holds no token"))),
        }
    }

    fn unauthorized(&self, what: &str) -> Error {
        let who = match &self.credentials {
            Some(credentials) => format!("refused the credentials of user {:?}", credentials.username),
            None => "asks for credentials and none were given (--user, or an auths entry in the Docker config)".into(),
        };
        Error::new(ErrorKind::Unauthorized, format!("{what}: registry {} {who}: unauthorized", self.host))
    }

    fn lock_authorization(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.authorization.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A failure to reach the registry or to finish an exchange with it: a deadline passed is
    /// `TooLarge` naming the limit, anything else `Remote`.
    pub(crate) fn transport_error(&self, exchange: Exchange, what: &str, err: ureq::Error) -> Error {
        // rustls's word for a first byte that starts no TLS record, such as the `H` of `HTTP/1.1`.
        if !self.insecure && err.to_string().contains("InvalidContentType") {
            return Error::new(
                ErrorKind::Remote,
                format!(
                    "{what}: registry {} answered in plain HTTP, not HTTPS ({err}); to allow plain HTTP, \
                     pass --insecure (the insecure field of ocicas_registry_options in C, \
                     RegistryOptions.Insecure in Go, RegistryOptions::insecure in Rust)",
                    self.host
                ),
            );
        }
        match err {
            ureq::Error::Io(err) => self.body_error(exchange, what, err),
            ureq::Error::Timeout(_) => match exchange {
                Exchange::Document => self.limits.exceeded(
                    Limit::RegistryTimeout,
                    format!("{what}: registry {} did not finish answering in time", self.host),
                ),
                Exchange::Blob => self.too_slow(0).with_context(what),
            },
            err => Error::new(ErrorKind::Remote, format!("{what}: {err}")),
        }
    }

    /// A failure while reading or sending a body: ours (a transfer too slow, a blob that
    /// cannot be read) as it is, the transport's as `transport_error` says.
    pub(crate) fn body_error(&self, exchange: Exchange, what: &str, err: io::Error) -> Error {
        if let Some(ours) = err.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
            return Error::new(ours.kind(), format!("{what}: {}", ours.message()));
        }
        match ureq::Error::from(err) {
            ureq::Error::Io(err) => Error::new(ErrorKind::Remote, format!("{what}: {err}")),
            err => self.transport_error(exchange, what, err),
        }
    }

    /// The error of a blob transfer that moved `moved` bytes in a whole `registry_timeout`,
    /// fewer than `registry_min_rate` asks.
    pub(crate) fn too_slow(&self, moved: u64) -> Error {
        let timeout = self.limits.registry_timeout;
        self.limits.fell_short(
            Limit::RegistryMinRate,
            format!(
                "registry {} moved {moved} bytes in {timeout} seconds (registry_timeout, over which the rate is \
                 averaged)",
                self.host
            ),
        )
    }

    /// The error a registry answered with: its `errors[]` codes and messages when the body is
    /// the distribution spec's JSON, the kind chosen by status and code.
    pub(crate) fn error_from_response(&self, what: &str, mut response: HttpResponse) -> Error {
        let status = response.status();
        let mut body = String::new();
        let reader = Paced::new(response.body_mut().as_reader(), self);
        let _ = reader.take(MAX_ERROR_BODY).read_to_string(&mut body);
        let errors: Vec<(String, String)> = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|value| value.get("errors").and_then(|e| e.as_array()).cloned())
            .unwrap_or_default()
            .iter()
            .map(|error| {
                let field = |name: &str| error.get(name).and_then(|v| v.as_str()).unwrap_or_default().to_string();
                (field("code"), field("message"))
            })
            .collect();
        let codes: Vec<&str> = errors.iter().map(|(code, _)| code.as_str()).collect();
        let kind = if codes.iter().any(|c| matches!(*c, "DIGEST_INVALID" | "SIZE_INVALID")) {
            ErrorKind::DigestMismatch
        } else if status == StatusCode::NOT_FOUND
            || codes.iter().any(|c| matches!(*c, "BLOB_UNKNOWN" | "MANIFEST_UNKNOWN" | "NAME_UNKNOWN"))
        {
            ErrorKind::NotFound
        } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            ErrorKind::Unauthorized
        } else {
            ErrorKind::Remote
        };
        let detail = if errors.is_empty() {
            body.chars().take(200).collect::<String>().trim().to_string()
        } else {
            errors.iter().map(|(code, message)| format!("{code}: {message}")).collect::<Vec<_>>().join("; ")
        };
        let detail = if detail.is_empty() { String::new() } else { format!(" ({detail})") };
        Error::new(kind, format!("{what}: the registry answered {status}{detail}"))
    }
}

/// An HTTP agent whose name lookups, connects, reads, writes and waits for an answer each end
/// within `timeout`, and whose requests end within `overall` when it is set.
fn agent(timeout: Duration, overall: Option<Duration>) -> Agent {
    let tls = TlsConfig::builder().root_certs(RootCerts::PlatformVerifier).build();
    Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls)
        .user_agent(concat!("ocicas/", env!("CARGO_PKG_VERSION")))
        .timeout_global(overall)
        .timeout_resolve(Some(timeout))
        .timeout_connect(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .timeout_per_read(Some(timeout))
        .timeout_per_write(Some(timeout))
        .build()
        .into()
}

/// Bytes moved in the current window of `registry_timeout`: a transfer that moves fewer than
/// `registry_min_rate` times that in a whole window is too slow.
pub(crate) struct RateWindow {
    length: Duration,
    min_bytes: u64,
    start: Instant,
    moved: u64,
}

impl RateWindow {
    pub(crate) fn new(limits: &Limits) -> RateWindow {
        RateWindow {
            length: Duration::from_secs(limits.registry_timeout),
            min_bytes: limits.registry_min_rate.saturating_mul(limits.registry_timeout),
            start: Instant::now(),
            moved: 0,
        }
    }

    /// Counts `n` more bytes. Once the window is over, `Err(bytes it moved)` when they are too
    /// few, else a new window starts.
    pub(crate) fn record(&mut self, n: u64) -> std::result::Result<(), u64> {
        self.moved = self.moved.saturating_add(n);
        if self.start.elapsed() < self.length {
            return Ok(());
        }
        if self.moved < self.min_bytes {
            return Err(self.moved);
        }
        self.start = Instant::now();
        self.moved = 0;
        Ok(())
    }
}

/// A body of a blob exchange, read no slower than the registry limits allow (each read of the
/// transport is bounded by the agent; this bounds a trickle of bytes).
pub(crate) struct Paced<'c, R> {
    inner: R,
    client: &'c Client,
    window: RateWindow,
}

impl<'c, R> Paced<'c, R> {
    pub(crate) fn new(inner: R, client: &'c Client) -> Self {
        Paced { inner, client, window: RateWindow::new(&client.limits) }
    }
}

impl<R: Read> Read for Paced<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.client.check_cancel().map_err(io::Error::other)?;
        let n = self.inner.read(buf)?;
        match self.window.record(n as u64) {
            Ok(()) => Ok(n),
            Err(moved) => Err(io::Error::other(self.client.too_slow(moved))),
        }
    }
}

/// The absolute URL `location` names when read at `request_url` (RFC 3986 reference
/// resolution). A registry reached by HTTPS may not send the client to plain HTTP.
fn location_url(request_url: &str, location: &str, insecure: bool) -> std::result::Result<String, String> {
    let resolved = resolve_reference(request_url, location)
        .ok_or_else(|| format!("the registry sent an unusable Location {location:?}"))?;
    if !insecure && !is_https(&resolved) {
        return Err(format!("the registry sent a Location off HTTPS ({location:?}); refused"));
    }
    Ok(resolved)
}

fn is_https(url: &str) -> bool {
    url.get(..8).is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

/// `scheme://host[:port]` of an absolute http(s) URL, lower-cased, the default port dropped.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}"))
}

/// The absolute URL that `reference` (absolute, `//host/...`, `/path`, `?query` or a relative
/// path) names when read at `base` (RFC 3986 section 5.2, with dot segments removed).
fn resolve_reference(base: &str, reference: &str) -> Option<String> {
    // A fragment never reaches the server.
    let reference = reference.trim().split('#').next().unwrap_or_default();
    if reference.is_empty() {
        return None;
    }
    let scheme_end = reference.find(':').filter(|&colon| !reference[..colon].contains(['/', '?']));
    if let Some(colon) = scheme_end {
        // Absolute: only `http(s)://...` is a URL we can use (`https:foo` is not).
        return (reference[colon..].starts_with("://") && origin(reference).is_some()).then(|| reference.to_string());
    }
    let (scheme, rest) = base.split_once("://")?;
    if let Some(network_path) = reference.strip_prefix("//") {
        return Some(format!("{scheme}://{network_path}"));
    }
    let path_start = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, base_path) = rest.split_at(path_start);
    let base_path = base_path.split(['?', '#']).next().unwrap_or_default();
    let (path, query) = match reference.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (reference, None),
    };
    let merged = if path.is_empty() {
        base_path.to_string()
    } else if path.starts_with('/') {
        path.to_string()
    } else {
        let directory = base_path.rfind('/').map_or("/", |last| &base_path[..=last]);
        format!("{directory}{path}")
    };
    let query = query.map(|query| format!("?{query}")).unwrap_or_default();
    Some(format!("{scheme}://{authority}{}{query}", remove_dot_segments(&merged)))
}

/// `/a/b/../c/./d` is `/a/c/d`; `/a/b/..` is `/a/`.
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    if path.ends_with("/.") || path.ends_with("/..") {
        segments.push("");
    }
    format!("/{}", segments.join("/"))
}

/// A header's value as text, if present and text.
pub(crate) fn header<'r>(response: &'r HttpResponse, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPLOAD: &str = "https://r.io/v2/app/blobs/uploads/abc?_state=x";

    #[test]
    fn locations_resolve_like_rfc_3986() {
        let resolve = |location| location_url(UPLOAD, location, false);
        assert_eq!(resolve("https://other.io/up/1?a=b").unwrap(), "https://other.io/up/1?a=b");
        assert_eq!(resolve("//cdn.io/up/1").unwrap(), "https://cdn.io/up/1");
        assert_eq!(
            resolve("/v2/app/blobs/uploads/def?_state=y").unwrap(),
            "https://r.io/v2/app/blobs/uploads/def?_state=y"
        );
        assert_eq!(resolve("def?_state=y").unwrap(), "https://r.io/v2/app/blobs/uploads/def?_state=y");
        assert_eq!(resolve("../uploads/./def").unwrap(), "https://r.io/v2/app/blobs/uploads/def");
        assert_eq!(resolve("?_state=z").unwrap(), "https://r.io/v2/app/blobs/uploads/abc?_state=z");
        assert_eq!(resolve("../../../../../x").unwrap(), "https://r.io/x");
        assert_eq!(resolve("up/..").unwrap(), "https://r.io/v2/app/blobs/uploads/");
        assert!(resolve("ftp://r.io/x").unwrap_err().contains("unusable"));
        assert!(resolve("https:foo").unwrap_err().contains("unusable"));
        assert!(resolve("").unwrap_err().contains("unusable"));
        assert_eq!(resolve("def#frag/../x").unwrap(), "https://r.io/v2/app/blobs/uploads/def");
        assert_eq!(resolve("/v2/x:y").unwrap(), "https://r.io/v2/x:y");
    }

    #[test]
    fn a_location_off_https_is_refused_unless_the_registry_is_insecure() {
        let refused = location_url(UPLOAD, "http://r.io/v2/app/blobs/uploads/def", false).unwrap_err();
        assert!(refused.contains("off HTTPS"), "{refused}");
        let plain = "http://127.0.0.1:5000/v2/app/blobs/uploads/abc";
        assert_eq!(location_url(plain, "/v2/x", true).unwrap(), "http://127.0.0.1:5000/v2/x");
        assert_eq!(location_url(plain, "HTTPS://r.io/y", false).unwrap(), "HTTPS://r.io/y");
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert_eq!(origin("https://R.io:443/v2/"), origin("https://r.io/v2/x"));
        assert_eq!(origin("http://r.io:80?x"), Some("http://r.io".to_string()));
        assert_ne!(origin("https://r.io:5000/v2/"), origin("https://r.io/v2/"));
        assert_ne!(origin("http://r.io/v2/"), origin("https://r.io/v2/"));
        assert_ne!(origin("https://r.io.evil.com/v2/"), origin("https://r.io/v2/"));
        assert_eq!(origin("ftp://r.io/"), None);
        assert_eq!(origin("/v2/"), None);
        assert_ne!(origin("https://r.io@evil.com/v2/"), origin("https://r.io/v2/"));
        assert_ne!(origin("https://r.io#@evil.com/"), origin("https://evil.com/"));
        assert_eq!(origin("https://[::1]:443/v2/"), origin("https://[::1]/v2/"));
        assert_ne!(origin("https://[::1]:5000/v2/"), origin("https://[::1]/v2/"));
    }
}
