//! `ocicas push`, `pull` and `push-layer` against a real docker-registry on loopback, with
//! skopeo and umoci as the peers that prove interop, and a proxy that cuts, corrupts or slows
//! the registry's answers (issue #9's tests).

use crate::common;
use crate::distribution;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{OCICAS, assert_succeeded, ocicas, ocicas_fails, ocicas_output, run, s};
use common::peers::{assert_same_tree, peers_available};
use distribution::*;
use sha2::{Digest as _, Sha256};

const PEERS: &[&str] = &["docker-registry", "skopeo", "umoci", "htpasswd"];

/// Exit statuses of the CLI (docs/CLI.md).
const NOT_FOUND: i32 = 4;
const DIGEST_MISMATCH: i32 = 8;
const INVALID_INPUT: i32 = 11;
const UNAUTHORIZED: i32 = 15;

/// A layout with image `app` built by `ocicas append --dir` from `source_tree`.
fn built_image(root: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let tree = source_tree(root);
    let layout = root.join("layout");
    ocicas(&["init", s(&layout)]);
    ocicas(&["append", s(&layout), "app", "--dir", s(&tree)]);
    (layout, tree)
}

/// Fails unless `report` has the fields docs/CLI.md gives a transfer report.
fn assert_transfer_report(report: &serde_json::Value) {
    for field in ["mediaType", "digest", "size"] {
        assert!(report["descriptor"].get(field).is_some(), "descriptor.{field} is missing: {report}");
    }
    for field in ["transferred", "bytes", "skipped", "mounted"] {
        assert!(report["blobs"][field].is_u64(), "blobs.{field} is missing: {report}");
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[test]
fn image_pushed_by_ocicas_is_copied_back_by_skopeo_and_unpacks_to_the_same_tree() {
    if !peers_available(PEERS) {
        return;
    }
    let registry = Registry::start(None);
    let root = tempfile::tempdir().unwrap();
    let (layout, tree) = built_image(root.path());
    let target = format!("{}/test/app:v1", registry.host());
    let report = json(&ocicas(&["push", s(&layout), "app", &target, "--insecure", "--json"]));
    assert_transfer_report(&report);
    assert_eq!(report["blobs"]["transferred"], 3, "{report}");
    let copied = root.path().join("copied");
    run(
        "skopeo",
        &["copy", "-q", "--src-tls-verify=false", &format!("docker://{target}"), &format!("oci:{}:v1", s(&copied))],
    );
    let rootfs = unpack(&copied, "v1", &root.path().join("bundle"));
    assert_same_tree(&tree, &rootfs);
}

#[test]
fn image_pushed_by_skopeo_is_pulled_and_a_second_pull_fetches_no_blob() {
    if !peers_available(PEERS) {
        return;
    }
    let registry = Registry::start(None);
    let proxy = Proxy::start(registry.host(), Faults::default());
    let root = tempfile::tempdir().unwrap();
    let (layout, tree) = built_image(root.path());
    let source = format!("{}/skopeo/app:v1", registry.host());
    run(
        "skopeo",
        &["copy", "-q", "--dest-tls-verify=false", &format!("oci:{}:app", s(&layout)), &format!("docker://{source}")],
    );

    let pulled = root.path().join("pulled");
    ocicas(&["init", s(&pulled)]);
    let through_proxy = format!("{}/skopeo/app:v1", proxy.host());
    let first = json(&ocicas(&["pull", s(&pulled), &through_proxy, "--insecure", "--json"]));
    assert_transfer_report(&first);
    assert_eq!(first["blobs"]["transferred"], 3, "{first}");
    assert_same_tree(&tree, &unpack(&pulled, "v1", &root.path().join("bundle")));

    proxy.clear();
    let second = json(&ocicas(&["pull", s(&pulled), &through_proxy, "--insecure"]));
    assert_eq!(
        (second["blobs"]["bytes"].as_u64(), second["blobs"]["transferred"].as_u64()),
        (Some(0), Some(0)),
        "{second}"
    );
    assert!(!proxy.requests().iter().any(|r| r.is_blob_get() || r.method == "GET" && r.path.contains("/manifests/")));
    ocicas(&["fsck", s(&pulled)]);
}

#[test]
fn a_pull_whose_connection_drops_resumes_the_blob_with_a_range_request() {
    if !peers_available(PEERS) {
        return;
    }
    let registry = Registry::start(None);
    let root = tempfile::tempdir().unwrap();
    let (layout, tree) = built_image(root.path());
    ocicas(&["push", s(&layout), "app", &format!("{}/cut/app:v1", registry.host()), "--insecure"]);
    let proxy = Proxy::start(registry.host(), Faults { cut_first_blob_get_after: Some(1 << 20), ..Faults::default() });

    let pulled = root.path().join("pulled");
    ocicas(&["init", s(&pulled)]);
    ocicas(&["pull", s(&pulled), &format!("{}/cut/app:v1", proxy.host()), "--insecure", "--jobs", "1"]);
    let blob_gets: Vec<Recorded> = proxy.requests().into_iter().filter(Recorded::is_blob_get).collect();
    let resumed =
        blob_gets.iter().find(|r| r.range.is_some()).unwrap_or_else(|| panic!("no Range request: {blob_gets:?}"));
    let offset: u64 =
        resumed.range.as_deref().unwrap().trim_start_matches("bytes=").trim_end_matches('-').parse().unwrap();
    assert!(offset >= 1 << 20, "resumed from {offset}, after 1 MiB was received");
    assert_eq!(blob_gets.iter().filter(|r| r.path == resumed.path).count(), 2, "one cut GET, one resumed GET");
    ocicas(&["fsck", s(&pulled)]);
    assert_same_tree(&tree, &unpack(&pulled, "v1", &root.path().join("bundle")));
}

#[test]
fn a_killed_pull_resumes_from_the_ingest_offset_on_the_next_run() {
    if !peers_available(PEERS) {
        return;
    }
    let registry = Registry::start(None);
    let root = tempfile::tempdir().unwrap();
    let (layout, tree) = built_image(root.path());
    ocicas(&["push", s(&layout), "app", &format!("{}/kill/app:v1", registry.host()), "--insecure"]);
    // The layer's GET stops after 1 MiB: the pull is killed once that MiB is in its ingest.
    const HELD: u64 = 1 << 20;
    let proxy = Proxy::start(registry.host(), Faults { hold_blob_gets_after: Some(HELD), ..Faults::default() });
    let pulled = root.path().join("pulled");
    ocicas(&["init", s(&pulled)]);
    let source = format!("{}/kill/app:v1", proxy.host());

    // One job: the layer (the largest blob) goes first, and nothing else starts while it is held.
    let mut child = Command::new(OCICAS)
        .args(["pull", s(&pulled), &source, "--insecure", "--jobs", "1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    proxy.wait_until_holding();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ingests = ocicas(&["ingest", "ls", s(&pulled)]);
        let offsets: Vec<u64> = ingests.lines().map(|line| json(line)["offset"].as_u64().unwrap()).collect();
        if offsets == [HELD] {
            break;
        }
        assert!(Instant::now() < deadline, "the held MiB never reached the ingest: {offsets:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ocicas_fails(NOT_FOUND, &["ref", "get", s(&pulled), "v1"]).contains("v1"), "a killed pull tags nothing");

    proxy.release_held();
    proxy.clear();
    ocicas(&["pull", s(&pulled), &source, "--insecure"]);
    let ranges: Vec<Option<String>> =
        proxy.requests().iter().filter(|r| r.is_blob_get()).map(|r| r.range.clone()).collect();
    assert!(ranges.contains(&Some(format!("bytes={HELD}-"))), "the layer resumed from its ingest's offset: {ranges:?}");
    ocicas(&["fsck", s(&pulled)]);
    assert!(ocicas(&["ingest", "ls", s(&pulled)]).trim().is_empty(), "no ingest left behind");
    assert_same_tree(&tree, &unpack(&pulled, "v1", &root.path().join("bundle")));
}

#[test]
fn jobs_over_the_threads_limit_are_refused_before_anything_is_sent() {
    let root = tempfile::tempdir().unwrap();
    let layout = root.path().join("layout");
    ocicas(&["init", s(&layout)]);
    // Nothing listens on port 1: only a check before connecting explains this error.
    let message = ocicas_fails(
        INVALID_INPUT,
        &["pull", s(&layout), "127.0.0.1:1/x/y:v1", "--insecure", "--jobs", "5", "--limit", "threads=4"],
    );
    assert!(message.contains("jobs 5") && message.contains("--limit threads=N"), "{message}");
}

#[test]
fn push_layer_from_stdin_gives_a_blob_the_registry_serves_with_the_printed_digest() {
    if !peers_available(PEERS) {
        return;
    }
    let registry = Registry::start(None);
    let root = tempfile::tempdir().unwrap();
    let tree = source_tree(root.path());
    let tar = Command::new("tar").args(["-cf", "-", "-C", s(&tree), "."]).output().unwrap().stdout;
    let target = format!("{}/stream/layer", registry.host());
    let output = ocicas_output(&["push-layer", &target, "-", "--insecure", "--chunk-size", "1000000", "--json"], &tar);
    assert_succeeded("push-layer", &output);
    let layer = json(&String::from_utf8(output.stdout).unwrap());
    for field in ["mediaType", "digest", "size", "diffID"] {
        assert!(layer.get(field).is_some(), "docs/CLI.md's field {field} is missing: {layer}");
    }
    let digest = layer["digest"].as_str().unwrap();
    let blob = http_get(registry.host(), &format!("/v2/stream/layer/blobs/{digest}"));
    assert_eq!((sha256_hex(&blob).as_str(), blob.len() as u64), (digest, layer["size"].as_u64().unwrap()));
    let mut tar_again = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&blob[..]), &mut tar_again).unwrap();
    assert_eq!(tar_again, tar);
    assert_eq!(sha256_hex(&tar_again), layer["diffID"].as_str().unwrap());
}

#[test]
fn pushes_in_small_chunks_and_with_any_job_count_give_the_same_image_and_a_second_push_sends_nothing() {
    if !peers_available(PEERS) {
        return;
    }
    let registry = Registry::start(None);
    let root = tempfile::tempdir().unwrap();
    let (layout, _) = built_image(root.path());
    let mut digests = Vec::new();
    for (repo, jobs) in [("one", "1"), ("four", "4")] {
        let target = format!("{}/{repo}/app:v1", registry.host());
        let report =
            json(&ocicas(&["push", s(&layout), "app", &target, "--insecure", "--jobs", jobs, "--chunk-size", "65536"]));
        digests.push(report["descriptor"]["digest"].as_str().unwrap().to_string());
        let inspected =
            json(&run("skopeo", &["inspect", "--tls-verify=false", "--raw", &format!("docker://{target}")]));
        assert_eq!(inspected["layers"].as_array().unwrap().len(), 1);
        let again = json(&ocicas(&["push", s(&layout), "app", &target, "--insecure"]));
        assert_eq!(
            (again["blobs"]["transferred"].as_u64(), again["blobs"]["skipped"].as_u64()),
            (Some(0), Some(3)),
            "{again}"
        );
    }
    assert_eq!(digests[0], digests[1]);
    let mounted = json(&ocicas(&[
        "push",
        s(&layout),
        "app",
        &format!("{}/mounted/app:v1", registry.host()),
        "--insecure",
        "--mount-from",
        "one/app",
    ]));
    assert_eq!(mounted["blobs"]["mounted"], 2, "config and layer mounted from repository one/app: {mounted}");
}

#[test]
fn basic_auth_takes_the_right_credentials_and_refuses_wrong_ones() {
    if !peers_available(PEERS) {
        return;
    }
    let registry = Registry::start(Some(("alice", "s3cret")));
    let root = tempfile::tempdir().unwrap();
    let (layout, _) = built_image(root.path());
    let target = format!("{}/private/app:v1", registry.host());
    let config_dir = root.path().join("docker-config");
    std::fs::create_dir_all(&config_dir).unwrap();
    let with_config =
        |args: &[&str]| Command::new(OCICAS).args(args).env("DOCKER_CONFIG", &config_dir).output().unwrap();
    let refused = with_config(&["push", s(&layout), "app", &target, "--insecure", "--user", "alice:wrong"]);
    assert_eq!(refused.status.code(), Some(UNAUTHORIZED));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("unauthorized") && message.contains("alice"), "{message}");
    let anonymous = with_config(&["push", s(&layout), "app", &target, "--insecure"]);
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("credentials"), "{anonymous:?}");

    assert!(
        with_config(&["push", s(&layout), "app", &target, "--insecure", "--user", "alice:s3cret"]).status.success()
    );
    let pulled = root.path().join("pulled");
    ocicas(&["init", s(&pulled)]);
    let wrong = with_config(&["pull", s(&pulled), &target, "--insecure", "--user", "alice:nope"]);
    assert_eq!(wrong.status.code(), Some(UNAUTHORIZED));
    assert!(ocicas_fails(NOT_FOUND, &["ref", "get", s(&pulled), "v1"]).contains("v1"), "nothing tagged");

    // The Docker config's auths entry is used when --user is not given.
    let auth = base64_user("alice:s3cret");
    std::fs::write(
        config_dir.join("config.json"),
        format!("{{\"auths\":{{\"{}\":{{\"auth\":\"{auth}\"}}}}}}", registry.host()),
    )
    .unwrap();
    assert!(with_config(&["pull", s(&pulled), &target, "--insecure"]).status.success());
    ocicas(&["fsck", s(&pulled)]);
}

fn base64_user(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn bearer_tokens_are_fetched_from_the_challenge_and_refreshed_on_401() {
    if !peers_available(PEERS) {
        return;
    }
    let registry = Registry::start(None);
    // Every token is good for 3 requests: a push and pull of an image take many more.
    let faults = Faults { bearer: Some(("bob".into(), "pw".into(), 3)), ..Faults::default() };
    let proxy = Proxy::start(registry.host(), faults);
    let root = tempfile::tempdir().unwrap();
    let (layout, tree) = built_image(root.path());
    let target = format!("{}/tokens/app:v1", proxy.host());
    let refused =
        ocicas_fails(UNAUTHORIZED, &["push", s(&layout), "app", &target, "--insecure", "--user", "bob:wrong"]);
    assert!(refused.contains("unauthorized"), "{refused}");
    ocicas(&["push", s(&layout), "app", &target, "--insecure", "--user", "bob:pw", "--jobs", "1"]);
    let pulled = root.path().join("pulled");
    ocicas(&["init", s(&pulled)]);
    ocicas(&["pull", s(&pulled), &target, "--insecure", "--user", "bob:pw"]);
    assert_same_tree(&tree, &unpack(&pulled, "v1", &root.path().join("bundle")));
    let token_requests = proxy.requests().iter().filter(|r| r.path.starts_with("/token")).count();
    assert!(token_requests > 3, "tokens were refreshed: {token_requests} token requests");
    let scoped = proxy.requests().iter().any(|r| r.path.contains("scope=repository%3Atokens%2Fapp%3Apull%2Cpush"));
    assert!(
        scoped,
        "the token request names the repository and actions: {:?}",
        proxy.requests().iter().find(|r| r.path.starts_with("/token"))
    );
}

#[test]
fn an_unknown_repository_or_tag_fails_clearly_and_leaves_the_layout_unchanged() {
    if !peers_available(PEERS) {
        return;
    }
    let registry = Registry::start(None);
    let root = tempfile::tempdir().unwrap();
    let layout = root.path().join("layout");
    ocicas(&["init", s(&layout)]);
    let index_before = std::fs::read(layout.join("index.json")).unwrap();
    for source in [format!("{}/nobody/here:v1", registry.host()), format!("{}/nobody/here", registry.host())] {
        let message = ocicas_fails(NOT_FOUND, &["pull", s(&layout), &source, "--insecure"]);
        assert!(message.contains("nobody/here") && message.contains("404"), "{message}");
    }
    assert_eq!(std::fs::read(layout.join("index.json")).unwrap(), index_before);
    assert!(ocicas(&["blob", "ls", s(&layout)]).trim().is_empty());
}

#[test]
fn a_manifest_or_blob_that_does_not_match_its_digest_is_refused_and_nothing_is_tagged() {
    if !peers_available(PEERS) {
        return;
    }
    let registry = Registry::start(None);
    let root = tempfile::tempdir().unwrap();
    let (layout, _) = built_image(root.path());
    ocicas(&["push", s(&layout), "app", &format!("{}/bad/app:v1", registry.host()), "--insecure"]);
    let pulled = root.path().join("pulled");
    ocicas(&["init", s(&pulled)]);
    let index_before = std::fs::read(pulled.join("index.json")).unwrap();

    for faults in
        [Faults { corrupt_manifests: true, ..Faults::default() }, Faults { corrupt_blobs: true, ..Faults::default() }]
    {
        let proxy = Proxy::start(registry.host(), faults);
        let message =
            ocicas_fails(DIGEST_MISMATCH, &["pull", s(&pulled), &format!("{}/bad/app:v1", proxy.host()), "--insecure"]);
        assert!(message.contains("digest mismatch") || message.contains("hashes to"), "{message}");
        assert_eq!(std::fs::read(pulled.join("index.json")).unwrap(), index_before, "nothing tagged");
        ocicas(&["fsck", s(&pulled)]);
        assert!(ocicas(&["ingest", "ls", s(&pulled)]).trim().is_empty(), "a mismatching ingest is not kept to resume");
    }
    // And the same pull without the proxy works.
    ocicas(&["pull", s(&pulled), &format!("{}/bad/app:v1", registry.host()), "--insecure"]);
    ocicas(&["fsck", s(&pulled)]);
}
