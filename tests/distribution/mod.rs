//! Test harness for the registry tests: a real `docker-registry` (Debian's distribution 2.8) on
//! a free loopback port, optionally behind htpasswd Basic auth, and a fault-injecting proxy in
//! front of it that records requests and can cut, corrupt, slow down, hold or put Bearer-token
//! auth in front of the answers. Everything listens on 127.0.0.1 only.

#![allow(dead_code)] // each test binary uses part of the harness

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::cli::{run, s};
use crate::common::rng::Rng;

/// A docker-registry serving from a temp dir, killed on drop.
pub struct Registry {
    child: Child,
    host: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry; with `auth`, htpasswd Basic auth for that user and password.
    pub fn start(auth: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let mut config = format!(
            "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = auth {
            let htpasswd = dir.path().join("htpasswd");
            let entry = run("htpasswd", &["-Bbn", user, password]);
            std::fs::write(&htpasswd, entry.trim()).unwrap();
            config += &format!("auth: {{htpasswd: {{realm: ocicas-test, path: {}}}}}\n", htpasswd.display());
        }
        for _ in 0..10 {
            let host = free_loopback_address();
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, format!("{config}http: {{addr: {host}}}\n")).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config_path)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if http_status(&host, "GET", "/v2/").is_some_and(|status| status == 200 || status == 401) {
                    return Registry { child, host, _dir: dir };
                }
                if child.try_wait().unwrap().is_some() {
                    break; // the port was taken meanwhile: try another
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start");
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_loopback_address() -> String {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()
}

/// The status of a bodiless request, or None when nothing answers.
pub fn http_status(host: &str, method: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(host).ok()?;
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.split(' ').nth(1)?.parse().ok()
}

/// GETs `path` and returns the body; fails unless the answer is 200.
pub fn http_get(host: &str, path: &str) -> Vec<u8> {
    let (status, body) = http_get_with(host, path, &[]);
    assert_eq!(status, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
    body
}

/// GETs `path` with extra headers; returns the status and the body (the registry answers
/// with Content-Length and closes).
pub fn http_get_with(host: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(host).unwrap();
    let extra: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let split = find(&answer, b"\r\n\r\n").expect("an HTTP answer");
    let status = String::from_utf8_lossy(&answer[..split]).split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer[split + 4..].to_vec())
}

/// One request the proxy forwarded.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    /// Whether the request carried an `Authorization` header.
    pub authorized: bool,
}

impl Recorded {
    pub fn is_blob_get(&self) -> bool {
        self.method == "GET" && self.path.contains("/blobs/sha256:")
    }
}

/// What the proxy does to answers.
#[derive(Default)]
pub struct Faults {
    /// Cut the connection after this many body bytes of the first GET of a blob.
    pub cut_first_blob_get_after: Option<u64>,
    /// Flip the last body byte of manifest GETs (the registry's headers are kept).
    pub corrupt_manifests: bool,
    /// Flip the last body byte of blob GETs.
    pub corrupt_blobs: bool,
    /// Blob GET answers declare and send one byte less than the registry sent (a clean but
    /// short body).
    pub short_blob_bodies: bool,
    /// The first PATCH reaches the registry, but its answer is lost (the connection closes).
    pub drop_first_patch_answer: bool,
    /// After a lost PATCH answer, the upload-status GET goes to the upload's current state, as
    /// a registry that keeps the upload would answer it (docker-registry cancels an upload
    /// asked about with a stale `_state`).
    pub status_with_current_state: bool,
    /// `Location` headers name this host instead of the proxy (an upload sent elsewhere).
    pub location_host: Option<String>,
    /// Sleep this long per 64 KiB of blob bodies.
    pub throttle_blobs: Option<Duration>,
    /// Send manifest GET bodies one byte per this long.
    pub trickle_manifests: Option<Duration>,
    /// Send a blob GET body longer than this many bytes up to there, then hold the connection
    /// open sending nothing (`Proxy::wait_until_holding`) until `Proxy::release_held`.
    pub hold_blob_gets_after: Option<u64>,
    /// Read PATCH bodies this many bytes per 100 ms (a registry that takes uploads slowly).
    pub slow_upload_reads: Option<usize>,
    /// Answer like a registry with token auth: 401 with a Bearer challenge unless a token it
    /// handed out (at /token, for Basic `user:password`) is sent; each token is good for this
    /// many requests, so a client must fetch another on 401.
    pub bearer: Option<(String, String, u64)>,
}

/// A proxy on a free loopback port in front of `upstream`, one request per connection.
pub struct Proxy {
    host: String,
    pub faults: Arc<Mutex<Faults>>,
    log: Arc<Mutex<Vec<Recorded>>>,
    stopped: Arc<AtomicBool>,
    holding: Arc<AtomicU64>,
    released: Arc<AtomicBool>,
}

struct Shared {
    upstream: String,
    host: String,
    faults: Arc<Mutex<Faults>>,
    log: Arc<Mutex<Vec<Recorded>>>,
    blob_gets: AtomicU64,
    patches: AtomicU64,
    /// The path of the `Location` of the PATCH answer that was dropped.
    dropped_location: Mutex<Option<String>>,
    tokens: Mutex<Vec<(String, u64)>>,
    tokens_issued: AtomicU64,
    /// Blob GETs held (`Faults::hold_blob_gets_after`) right now.
    holding: Arc<AtomicU64>,
    released: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: &str, faults: Faults) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let proxy = Proxy {
            host: host.clone(),
            faults: Arc::new(Mutex::new(faults)),
            log: Arc::new(Mutex::new(Vec::new())),
            stopped: Arc::new(AtomicBool::new(false)),
            holding: Arc::new(AtomicU64::new(0)),
            released: Arc::new(AtomicBool::new(false)),
        };
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            host,
            faults: proxy.faults.clone(),
            log: proxy.log.clone(),
            blob_gets: AtomicU64::new(0),
            patches: AtomicU64::new(0),
            dropped_location: Mutex::new(None),
            tokens: Mutex::new(Vec::new()),
            tokens_issued: AtomicU64::new(0),
            holding: proxy.holding.clone(),
            released: proxy.released.clone(),
        });
        let stopped = proxy.stopped.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(client, &shared);
                });
            }
        });
        proxy
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    /// Waits (30 s at most) until a blob GET is held after `Faults::hold_blob_gets_after` bytes.
    pub fn wait_until_holding(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.holding.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "no blob GET was held: {:?}", self.requests());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Lets held blob GETs (and any later ones) send the rest of their bodies.
    pub fn release_held(&self) {
        self.faults.lock().unwrap().hold_blob_gets_after = None;
        self.released.store(true, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.released.store(true, Ordering::Relaxed);
        self.stopped.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.host); // wakes the accept loop
    }
}

/// Serves one request: reads it whole, answers itself (token auth) or forwards it with
/// `Connection: close` and relays the answer, applying the faults.
fn serve(mut client: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let slow_upload_reads = shared.faults.lock().unwrap().slow_upload_reads;
    let (head, body) = read_message(&mut client, slow_upload_reads)?;
    let head_text = String::from_utf8_lossy(&head).into_owned();
    let mut request_line = head_text.lines().next().unwrap_or_default().split(' ');
    let (method, path) =
        (request_line.next().unwrap_or_default().to_string(), request_line.next().unwrap_or_default().to_string());
    let header = |name: &str| {
        head_text.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_string())
        })
    };
    let recorded = Recorded {
        method: method.clone(),
        path: path.clone(),
        range: header("range"),
        authorized: header("authorization").is_some(),
    };
    shared.log.lock().unwrap().push(recorded.clone());

    if let Some((user, password, uses)) = shared.faults.lock().unwrap().bearer.clone() {
        if path.starts_with("/token") {
            let expected = format!("Basic {}", base64_encode(&format!("{user}:{password}")));
            if header("authorization").as_deref() != Some(expected.as_str()) {
                return respond(&mut client, "401 Unauthorized", "{}");
            }
            let token = format!("token-{}", shared.tokens_issued.fetch_add(1, Ordering::Relaxed));
            shared.tokens.lock().unwrap().push((token.clone(), uses));
            return respond(&mut client, "200 OK", &format!("{{\"token\":\"{token}\"}}"));
        }
        let presented = header("authorization").and_then(|value| value.strip_prefix("Bearer ").map(str::to_string));
        let mut tokens = shared.tokens.lock().unwrap();
        let valid = tokens.iter_mut().find(|(token, left)| Some(token) == presented.as_ref() && *left > 0);
        match valid {
            Some((_, left)) => *left -= 1,
            None => {
                drop(tokens);
                let challenge = format!(
                    "Bearer realm=\"http://{}/token\",service=\"ocicas-test\",scope=\"repository:x:pull\"",
                    shared.host
                );
                let answer = format!(
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {challenge}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
                );
                return client.write_all(answer.as_bytes());
            }
        }
    }

    let mut head = head;
    let current = shared.dropped_location.lock().unwrap().clone();
    let status_request = method == "GET" && path.contains("/blobs/uploads/");
    if let Some(current) = current.filter(|_| status_request && shared.faults.lock().unwrap().status_with_current_state)
    {
        head = head_text.replacen(&path, &current, 1).into_bytes();
    }
    let mut upstream = TcpStream::connect(&shared.upstream)?;
    upstream.write_all(&rewrite_connection(&head))?;
    upstream.write_all(&body)?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer)?;
    let Some(split) = find(&answer, b"\r\n\r\n") else { return client.write_all(&answer) };
    let (mut answer_head, mut answer_body) = (rewrite_connection(&answer[..split + 4]), answer[split + 4..].to_vec());
    let ok = answer.starts_with(b"HTTP/1.1 2");
    let faults = shared.faults.lock().unwrap();
    if method == "PATCH" && faults.drop_first_patch_answer && shared.patches.fetch_add(1, Ordering::Relaxed) == 0 {
        let location = String::from_utf8_lossy(&answer_head).lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            let value = value.trim();
            let path = value.find("/v2/").map(|start| value[start..].to_string());
            path.filter(|_| key.eq_ignore_ascii_case("location"))
        });
        *shared.dropped_location.lock().unwrap() = location;
        return client.shutdown(Shutdown::Both);
    }
    if let Some(other) = &faults.location_host {
        answer_head = set_header(&answer_head, "Location", |value| value.replace(&shared.host, other));
    }
    let (throttle, cut, hold) = (faults.throttle_blobs, faults.cut_first_blob_get_after, faults.hold_blob_gets_after);
    let manifest_get = ok && method == "GET" && path.contains("/manifests/");
    if manifest_get && faults.corrupt_manifests {
        flip_last_byte(&mut answer_body);
    }
    let trickle = faults.trickle_manifests.filter(|_| manifest_get);
    let blob_get = ok && recorded.is_blob_get();
    if blob_get && faults.corrupt_blobs {
        flip_last_byte(&mut answer_body);
    }
    if blob_get && faults.short_blob_bodies {
        answer_body.pop();
        answer_head = set_header(&answer_head, "Content-Length", |_| answer_body.len().to_string());
    }
    drop(faults);
    client.write_all(&answer_head)?;
    if let Some(pause) = trickle {
        for byte in answer_body.chunks(1) {
            client.write_all(byte)?;
            std::thread::sleep(pause);
        }
        return Ok(());
    }
    if !blob_get {
        return client.write_all(&answer_body);
    }
    if let Some(hold) = hold.map(|hold| hold as usize).filter(|&hold| hold < answer_body.len()) {
        client.write_all(&answer_body[..hold])?;
        shared.holding.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !shared.released.load(Ordering::Relaxed) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        shared.holding.fetch_sub(1, Ordering::Relaxed);
        return client.write_all(&answer_body[hold..]);
    }
    let first = shared.blob_gets.fetch_add(1, Ordering::Relaxed) == 0;
    let limit = match cut {
        Some(cut) if first => (cut as usize).min(answer_body.len()),
        _ => answer_body.len(),
    };
    for piece in answer_body[..limit].chunks(64 * 1024) {
        client.write_all(piece)?;
        if let Some(pause) = throttle {
            std::thread::sleep(pause);
        }
    }
    if limit < answer_body.len() {
        client.shutdown(Shutdown::Both)?;
    }
    Ok(())
}

fn respond(client: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(answer.as_bytes())
}

/// Reads one request: its head, and its body by Content-Length or chunked encoding (kept
/// encoded, as it is forwarded unchanged); a PATCH body `slow_upload_reads` bytes per 100 ms.
fn read_message(stream: &mut TcpStream, slow_upload_reads: Option<usize>) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut byte = [0u8; 8192];
    let split = loop {
        if let Some(split) = find(&buffer, b"\r\n\r\n") {
            break split;
        }
        let n = stream.read(&mut byte)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&byte[..n]);
    };
    let head = buffer[..split + 4].to_vec();
    let mut body = buffer[split + 4..].to_vec();
    let (mut piece, pause) = match slow_upload_reads.filter(|_| head.starts_with(b"PATCH ")) {
        Some(size) => (vec![0u8; size], Some(Duration::from_millis(100))),
        None => (vec![0u8; 8192], None),
    };
    // Reads one piece more of the body; false at its end.
    let mut read_piece = |body: &mut Vec<u8>| -> std::io::Result<bool> {
        let n = stream.read(&mut piece)?;
        body.extend_from_slice(&piece[..n]);
        if let Some(pause) = pause {
            std::thread::sleep(pause);
        }
        Ok(n > 0)
    };
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length = text
        .lines()
        .find_map(|line| line.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)));
    if let Some(length) = length {
        while body.len() < length && read_piece(&mut body)? {}
    } else if text.contains("transfer-encoding: chunked") {
        while !body.ends_with(b"0\r\n\r\n") && read_piece(&mut body)? {}
    }
    Ok((head, body))
}

/// The head with `Connection: close` (one request per connection keeps the proxy simple).
fn rewrite_connection(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut lines: Vec<&str> = text
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:") && !line.is_empty())
        .collect();
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n")).into_bytes()
}

/// The head with the value of header `name` (if present) replaced by `value(old)`.
fn set_header(head: &[u8], name: &str, value: impl Fn(&str) -> String) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let lines = text.split("\r\n").map(|line| match line.split_once(':') {
        Some((key, old)) if key.trim().eq_ignore_ascii_case(name) => format!("{name}: {}", value(old.trim())),
        _ => line.to_string(),
    });
    lines.collect::<Vec<_>>().join("\r\n").into_bytes()
}

fn flip_last_byte(body: &mut [u8]) {
    if let Some(last) = body.last_mut() {
        *last ^= 0x01;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn base64_encode(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A tree of files for an image: nested text files, a few MB of pseudo-random bytes (so the
/// layer is big enough to cut midway), a symlink and an empty directory.
pub fn source_tree(root: &Path) -> PathBuf {
    let tree = root.join("tree");
    std::fs::create_dir_all(tree.join("etc/conf.d")).unwrap();
    std::fs::create_dir_all(tree.join("var/empty")).unwrap();
    for i in 0..20 {
        std::fs::write(tree.join(format!("etc/conf.d/file{i}.conf")), format!("setting {i}\n").repeat(i + 1)).unwrap();
    }
    std::fs::write(tree.join("noise.bin"), Rng(1).bytes(3 << 20)).unwrap();
    std::os::unix::fs::symlink("etc/conf.d/file1.conf", tree.join("link")).unwrap();
    tree
}

/// `umoci unpack`s `layout:tag` into `bundle` and returns its rootfs.
pub fn unpack(layout: &Path, tag: &str, bundle: &Path) -> PathBuf {
    run("umoci", &["unpack", "--rootless", "--image", &format!("{}:{tag}", s(layout)), s(bundle)]);
    bundle.join("rootfs")
}

/// The JSON the CLI printed.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
