//! The CLI as a tool for scripts (issue 21, part 7): every `--json` output is JSON with the
//! fields docs/CLI.md gives it, each error kind exits with the status `--help` and docs/CLI.md
//! give it, every positional argument is described in `--help`, and `pull` takes the layout
//! first (the old order warns).

use crate::common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{FSCK_PROBLEMS, OCICAS, TOO_LARGE, ocicas, ocicas_output, s, stderr};
use serde_json::Value;

const ZERO_DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
/// Nothing listens on port 1 of loopback: a pull from it fails at once.
const NO_REGISTRY: &str = "127.0.0.1:1/x/y:v1";

/// The exit statuses of `ocicas --help`, by the words before the colon of their meaning
/// ("not found", "clobber", "usage", …).
fn help_statuses() -> BTreeMap<String, i32> {
    let help = ocicas(&["--help"]);
    let table = help.split("Exit status:\n").nth(1).expect("--help has an exit status table");
    let mut statuses = BTreeMap::new();
    for line in table.lines().take_while(|line| !line.is_empty()) {
        let (code, meaning) = line.trim().split_once("  ").unwrap_or_else(|| panic!("a row without a meaning: {line}"));
        let name = meaning.trim().split(':').next().unwrap().to_string();
        assert!(statuses.insert(name, code.parse().unwrap()).is_none(), "two rows for one name: {line}");
    }
    statuses
}

/// The status `--help` gives the error called `name`.
fn status(name: &str) -> i32 {
    *help_statuses().get(name).unwrap_or_else(|| panic!("--help has no exit status for {name:?}"))
}

/// Runs `ocicas ARGS`, which must exit with the status `--help` gives `name` (and not panic);
/// returns stderr.
fn fails_with(name: &str, args: &[&str]) -> String {
    let output = ocicas_output(args, b"");
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(status(name)), "`ocicas {}` is not {name}: {stderr}", args.join(" "));
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// Each line of `text`, which must be one JSON value per line and not empty.
fn json_lines(text: &str) -> Vec<Value> {
    assert!(!text.trim().is_empty(), "no JSON printed");
    text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))).collect()
}

/// The one JSON value `text` holds.
fn json_value(text: &str) -> Value {
    let mut values = json_lines(text);
    assert_eq!(values.len(), 1, "{text}");
    values.remove(0)
}

/// Fails unless `value` is an object with every field of `required` and no field outside
/// `required` and `optional` (docs/CLI.md's schema of its kind).
fn assert_schema(value: &Value, required: &[&str], optional: &[&str]) {
    let object = value.as_object().unwrap_or_else(|| panic!("not an object: {value}"));
    for field in required {
        assert!(object.contains_key(*field), "{field} is missing: {value}");
    }
    for field in object.keys() {
        assert!(
            required.contains(&field.as_str()) || optional.contains(&field.as_str()),
            "{field} is not documented: {value}"
        );
    }
}

const DESCRIPTOR: &[&str] = &["mediaType", "digest", "size"];
const DESCRIPTOR_OPTIONAL: &[&str] = &["annotations", "urls", "data", "platform", "artifactType"];
const BLOB_INFO: &[&str] = &["digest", "size", "createdAt", "updatedAt", "labels"];

/// A layout with image `app` of one layer, made from a small tree; and the tree.
fn layout_with_image(root: &Path) -> (PathBuf, PathBuf) {
    let tree = root.join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("etc/motd"), "hello\n").unwrap();
    let layout = root.join("layout");
    ocicas(&["init", s(&layout)]);
    ocicas(&["append", s(&layout), "app", "--dir", s(&tree)]);
    (layout, tree)
}

#[test]
fn every_json_output_parses_and_has_the_documented_fields() {
    let root = tempfile::tempdir().unwrap();
    let (layout, tree) = layout_with_image(root.path());
    let l = s(&layout);

    let appended = json_value(&ocicas(&["append", l, "second", "--dir", s(&tree), "--json"]));
    assert_schema(&appended, DESCRIPTOR, DESCRIPTOR_OPTIONAL);
    let tar = root.path().join("layer.tar");
    let made = Command::new("tar").args(["-cf", s(&tar), "-C", s(&tree), "."]).status().unwrap();
    assert!(made.success());
    assert_schema(
        &json_value(&ocicas(&["layer", l, s(&tar), "--json"])),
        &["mediaType", "digest", "size", "diffID"],
        &[],
    );

    let file = root.path().join("file");
    std::fs::write(&file, "labelled").unwrap();
    let digest = ocicas(&["blob", "put", l, s(&file), "--label", "k=v"]).trim().to_string();
    let info = json_value(&ocicas(&["blob", "info", l, &digest, "--json"]));
    assert_schema(&info, BLOB_INFO, &[]);
    assert_eq!(
        (info["digest"].as_str(), info["size"].as_u64(), &info["labels"]["k"]),
        (Some(&*digest), Some(8), &Value::from("v"))
    );
    let labelled = json_value(&ocicas(&["blob", "label", l, &digest, "k2=v2", "--json"]));
    assert_schema(&labelled, BLOB_INFO, &[]);
    assert_eq!(labelled["labels"]["k2"], "v2", "{labelled}");
    let blobs = json_lines(&ocicas(&["blob", "ls", l, "--json"]));
    for blob in &blobs {
        assert_schema(blob, BLOB_INFO, &[]);
    }
    let listed: Vec<&str> = blobs.iter().map(|blob| blob["digest"].as_str().unwrap()).collect();
    assert_eq!(listed, ocicas(&["blob", "ls", l]).lines().collect::<Vec<_>>(), "--json lists the same blobs");

    let refs = json_lines(&ocicas(&["ref", "ls", l, "--json"]));
    let names: Vec<&str> = refs.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["app", "second"]);
    for listed in &refs {
        assert_schema(listed, &["name", "descriptor"], &[]);
        assert_schema(&listed["descriptor"], DESCRIPTOR, DESCRIPTOR_OPTIONAL);
    }
    let got = json_value(&ocicas(&["ref", "get", l, "second", "--json"]));
    assert_schema(&got, DESCRIPTOR, DESCRIPTOR_OPTIONAL);
    assert_eq!(got["digest"], appended["digest"]);

    ocicas(&["lease", "new", l, "--id", "kept", "--expiry", "1h"]);
    ocicas(&["lease", "add", l, "kept", &digest]);
    let lease = json_value(&ocicas(&["lease", "ls", l, "--json"]));
    assert_schema(&lease, &["id", "createdAt", "expiresAt", "digests", "ingests"], &[]);
    assert_eq!((&lease["id"], &lease["digests"][0]), (&Value::from("kept"), &Value::from(digest.as_str())));

    let fsck = json_value(&ocicas(&["fsck", l, "--json"]));
    assert_schema(
        &fsck,
        &["sound", "problems", "blobsChecked", "reachable", "unreachable", "unreachableSample", "notes"],
        &[],
    );
    assert_eq!(fsck["sound"], true, "{fsck}");
    let gc = json_value(&ocicas(&["gc", l, "--dry-run", "--json"]));
    let gc_fields = [
        "dryRun",
        "blobsRemoved",
        "bytesRemoved",
        "blobsKept",
        "bytesKept",
        "missing",
        "ingestsRemoved",
        "leasesRemoved",
        "tempFilesRemoved",
        "labelsRemoved",
        "notRemoved",
    ];
    assert_schema(&gc, &gc_fields, &[]);

    let archive = root.path().join("archive.tar");
    ocicas(&["docker-archive", "export", l, "app", "-o", s(&archive), "--tag", "example.com/app:1"]);
    let item = json_value(&ocicas(&["docker-archive", "ls", s(&archive), "--json"]));
    assert_schema(&item, &["Config", "RepoTags", "Layers"], &["Parent", "LayerSources"]);
    assert_eq!(item["RepoTags"][0], "example.com/app:1");
    let other = root.path().join("other");
    ocicas(&["init", s(&other)]);
    let imported = json_value(&ocicas(&["docker-archive", "import", s(&other), s(&archive), "--json"]));
    assert_schema(&imported, &["manifest", "refs", "repoTags"], &[]);
    assert_schema(&imported["manifest"], DESCRIPTOR, DESCRIPTOR_OPTIONAL);
}

#[test]
fn a_held_ingest_is_listed_and_a_second_writer_of_its_ref_exits_locked() {
    let root = tempfile::tempdir().unwrap();
    let (layout, _) = layout_with_image(root.path());
    let l = s(&layout);
    let mut writer = Command::new(OCICAS)
        .args(["blob", "put", l, "-", "--ref", "held"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = writer.stdin.take().unwrap();
    input.write_all(b"partial").unwrap();
    input.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let listed = ocicas(&["ingest", "ls", l, "--json"]);
        if !listed.trim().is_empty() {
            let status = json_value(&listed);
            if status["offset"] == 7 {
                break status;
            }
        }
        assert!(Instant::now() < deadline, "the writer's 7 bytes never showed in `ingest ls`: {listed}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_schema(&status, &["ref", "offset", "total", "expected", "startedAt", "updatedAt"], &[]);
    assert_eq!(status["ref"], "held");

    let file = root.path().join("file");
    std::fs::write(&file, "partial").unwrap();
    let message = fails_with("locked", &["blob", "put", l, s(&file), "--ref", "held"]);
    assert!(message.contains("held"), "{message}");

    drop(input);
    let written = writer.wait_with_output().unwrap();
    assert!(written.status.success());
    let digest = String::from_utf8(written.stdout).unwrap();
    assert_eq!(ocicas(&["blob", "get", l, digest.trim()]), "partial", "the holder finished its blob");
}

#[test]
fn each_error_kind_exits_with_its_own_documented_status_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (layout, tree) = layout_with_image(root.path());
    let l = s(&layout);
    let app = ocicas(&["ref", "get", l, "app"]);

    assert!(fails_with("not found", &["blob", "info", l, ZERO_DIGEST]).contains(ZERO_DIGEST));
    assert!(fails_with("not found", &["ref", "get", l, "nothing"]).contains("nothing"));

    let other = json_value(&ocicas(&["append", l, "other", "--dir", s(&tree.join("etc"))]));
    let other_digest = other["digest"].as_str().unwrap();
    assert!(fails_with("clobber", &["ref", "put", l, "app", other_digest]).contains("force"));
    assert_eq!(ocicas(&["ref", "get", l, "app"]), app, "a clobber moves nothing");

    let file = root.path().join("file");
    std::fs::write(&file, "bytes").unwrap();
    let blobs = ocicas(&["blob", "ls", l]);
    fails_with("digest mismatch", &["blob", "put", l, s(&file), "--expect", ZERO_DIGEST]);
    assert_eq!(ocicas(&["blob", "ls", l]), blobs, "a mismatching put stores nothing");
    assert!(fails_with("invalid input", &["blob", "info", l, "not-a-digest"]).contains("not-a-digest"));
    assert!(fails_with("invalid input", &["--limit", "no_such_limit=1", "ref", "ls", l]).contains("no_such_limit"));
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(fails_with("invalid image", &["fsck", s(&empty)]).contains("not an OCI image layout"));
    assert!(fails_with("too large", &["--limit", "json_size=10", "ref", "ls", l]).contains("json_size"));
    fails_with("remote", &["pull", l, NO_REGISTRY, "--insecure"]);

    assert!(fails_with("usage", &["blob", "info", l]).contains("DIGEST"));
    fails_with("usage", &["fsck", l, "--no-such-option"]);
    fails_with("usage", &["no-such-command"]);
    assert_eq!(ocicas(&["ref", "get", l, "app"]), app);
}

/// The exit statuses as scripts know them: a number, once given, never changes.
const STATUSES: &[(&str, i32)] = &[
    ("success", 0),
    ("an I/O error, or another failure without a status below", 1),
    ("usage", 2),
    ("fsck found problems (printed on stdout)", FSCK_PROBLEMS),
    ("not found", 4),
    ("already exists", 5),
    ("clobber", 6),
    ("locked", 7),
    ("digest mismatch", 8),
    ("size mismatch", 9),
    ("too large", TOO_LARGE),
    ("invalid input", 11),
    ("invalid image", 12),
    ("unsupported media type", 13),
    ("not implemented", 14),
    ("unauthorized", 15),
    ("remote", 16),
    ("a bug in ocicas (a panic); please report it", 101),
];

#[test]
fn the_exit_statuses_keep_their_numbers_and_docs_list_them_as_help_does() {
    let pinned: BTreeMap<String, i32> = STATUSES.iter().map(|(name, code)| (name.to_string(), *code)).collect();
    assert_eq!(help_statuses(), pinned);
    let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/CLI.md")).unwrap();
    let help = ocicas(&["--help"]);
    let table = help.split("Exit status:\n").nth(1).unwrap();
    for line in table.lines().take_while(|line| !line.is_empty()) {
        let (code, meaning) = line.trim().split_once("  ").unwrap();
        let row = format!("| {code} | {} |", meaning.trim());
        assert!(docs.contains(&row), "docs/CLI.md lacks the row {row}");
    }
}

#[test]
fn fsck_problems_exit_with_their_own_status_with_or_without_json() {
    let root = tempfile::tempdir().unwrap();
    let (layout, _) = layout_with_image(root.path());
    let l = s(&layout);
    let manifest = json_value(&ocicas(&["ref", "get", l, "app"]));
    let digest = manifest["digest"].as_str().unwrap();
    let path = layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 1;
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, &bytes).unwrap();

    let text = ocicas_output(&["fsck", l], b"");
    assert_eq!(text.status.code(), Some(FSCK_PROBLEMS), "{text:?}");
    assert!(String::from_utf8_lossy(&text.stdout).contains(digest), "{text:?}");
    let json = ocicas_output(&["fsck", l, "--json"], b"");
    assert_eq!(json.status.code(), Some(FSCK_PROBLEMS), "{json:?}");
    let report = json_value(&String::from_utf8(json.stdout).unwrap());
    assert_eq!(report["sound"], false, "{report}");
    assert!(report["problems"].as_array().unwrap().iter().any(|p| p.as_str().unwrap().contains(digest)), "{report}");
}

/// The paths of every command `ocicas help` lists, subcommands of subcommands included.
fn command_paths(prefix: &[String]) -> Vec<Vec<String>> {
    let mut args: Vec<&str> = prefix.iter().map(String::as_str).collect();
    args.push("--help");
    let help = ocicas(&args);
    let Some(commands) = help.split("Commands:\n").nth(1) else {
        return vec![prefix.to_vec()];
    };
    let mut paths = Vec::new();
    for line in commands.lines().take_while(|line| !line.is_empty()) {
        let name = line.split_whitespace().next().unwrap();
        if name != "help" {
            let mut path = prefix.to_vec();
            path.push(name.to_string());
            paths.extend(command_paths(&path));
        }
    }
    paths
}

#[test]
fn help_describes_every_positional_argument_of_every_command() {
    let paths = command_paths(&[]);
    assert!(paths.len() >= 25, "{paths:?}");
    let mut described = 0;
    for path in &paths {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = ocicas(&args);
        let Some(arguments) = help.split("Arguments:\n").nth(1) else { continue };
        for line in arguments.lines().take_while(|line| !line.is_empty()) {
            let line = line.trim();
            let name_end = line.find(['>', ']']).unwrap_or_else(|| panic!("`{}`: {line}", path.join(" ")));
            let description = line[name_end..].trim_start_matches(['>', ']', '.']).trim();
            assert!(!description.is_empty(), "`ocicas {}` does not describe {line}", path.join(" "));
            described += 1;
        }
    }
    assert!(described >= 45, "only {described} positional arguments seen");
}

#[test]
fn append_without_input_names_both_dir_and_tar() {
    let root = tempfile::tempdir().unwrap();
    let (layout, _) = layout_with_image(root.path());
    let message = fails_with("usage", &["append", s(&layout), "app"]);
    assert!(message.contains("--dir") && message.contains("--tar"), "{message}");
}

#[test]
fn pull_takes_the_layout_first_and_the_old_order_works_with_a_warning() {
    let root = tempfile::tempdir().unwrap();
    let (layout, _) = layout_with_image(root.path());
    let l = s(&layout);
    // The registry cannot be reached: the order shows in the warning and in what failed.
    let new_order = fails_with("remote", &["pull", l, NO_REGISTRY, "--insecure"]);
    assert!(!new_order.contains("warning"), "{new_order}");
    let old_order = fails_with("remote", &["pull", NO_REGISTRY, l, "--insecure"]);
    assert!(
        old_order.contains("warning") && old_order.contains(&format!("ocicas pull {l} {NO_REGISTRY}")),
        "{old_order}"
    );
    // A first argument that is a directory is the layout, whatever the second is.
    let not_a_layout = root.path().join("not-a-layout");
    std::fs::create_dir(&not_a_layout).unwrap();
    let message = fails_with("invalid image", &["pull", s(&not_a_layout), l, "--insecure"]);
    assert!(!message.contains("warning") && message.contains("not-a-layout"), "{message}");
}

/// docs/NAMES.md: each operation's verb is the API's, and the short Unix spelling scripts used
/// before names the same command.
#[test]
fn each_command_answers_to_its_api_verb_and_to_its_old_short_name() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = layout_with_image(dir.path());
    let layout = s(&layout);
    let blob = dir.path().join("blob");
    std::fs::write(&blob, b"named once").unwrap();
    let digest = ocicas(&["blob", "put", layout, s(&blob)]).trim().to_string();
    assert_eq!(ocicas(&["blob", "read", layout, &digest]), "named once");
    assert_eq!(ocicas(&["blob", "get", layout, &digest]), "named once");
    let listed = ocicas(&["blob", "list", layout]);
    assert!(listed.lines().any(|line| line == digest), "{listed}");
    assert_eq!(listed, ocicas(&["blob", "ls", layout]));
    let labelled = json_value(&ocicas(&["blob", "update-labels", layout, &digest, "k=v"]));
    assert_eq!(labelled["labels"]["k"], "v");
    let relabelled = json_value(&ocicas(&["blob", "label", layout, &digest, "k=w"]));
    assert_eq!(relabelled["labels"]["k"], "w");
    assert_eq!(ocicas(&["ref", "list", layout]), ocicas(&["ref", "ls", layout]));
    assert_eq!(ocicas(&["ingest", "list", layout]), ocicas(&["ingest", "ls", layout]));
    let first = ocicas(&["lease", "new", layout]).trim().to_string();
    let second = ocicas(&["lease", "new", layout]).trim().to_string();
    assert_eq!(ocicas(&["lease", "list", layout]), ocicas(&["lease", "ls", layout]));
    ocicas(&["lease", "release", layout, &first]);
    ocicas(&["lease", "rm", layout, &second]);
    assert_eq!(ocicas(&["lease", "list", layout]), "");
    ocicas(&["blob", "delete", layout, &digest]);
    ocicas(&["blob", "rm", layout, &digest]);
    assert!(!ocicas(&["blob", "list", layout]).lines().any(|line| line == digest));
    let help = ocicas(&["blob", "--help"]);
    for verb in ["read", "update-labels", "list", "delete"] {
        assert!(help.contains(verb), "blob --help lacks {verb}: {help}");
    }
}

#[test]
fn walk_prints_each_blob_of_the_image_and_exits_with_the_status_of_a_missing_one() {
    let root = tempfile::tempdir().unwrap();
    let (layout, _) = layout_with_image(root.path());
    let l = s(&layout);
    let manifest = json_value(&ocicas(&["ref", "get", l, "app"]));
    let steps = json_lines(&ocicas(&["walk", l, "app", "--json"]));
    assert_eq!(steps.len(), 3, "the manifest, its layer and its config");
    for step in &steps {
        assert_schema(step, &["depth", "parent", "descriptor", "error"], &[]);
        assert_schema(&step["descriptor"], DESCRIPTOR, DESCRIPTOR_OPTIONAL);
        assert_eq!(step["error"], Value::Null, "{step}");
    }
    assert_eq!((&steps[0]["depth"], &steps[0]["parent"]), (&Value::from(0), &Value::Null));
    assert_eq!(steps[0]["descriptor"]["digest"], manifest["digest"]);
    assert!(steps[1..].iter().all(|step| step["depth"] == 1 && step["parent"] == manifest["digest"]));
    let text = ocicas(&["walk", l, "app"]);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.lines().skip(1).all(|line| line.starts_with("  sha256:")), "{text}");

    let layer = steps.iter().find(|step| step["descriptor"]["mediaType"].as_str().unwrap().contains("layer")).unwrap();
    let digest = layer["descriptor"]["digest"].as_str().unwrap();
    std::fs::remove_file(layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap();
    let broken = ocicas_output(&["walk", l, "app", "--json"], b"");
    assert_eq!(broken.status.code(), Some(status("not found")), "{broken:?}");
    let steps = json_lines(&String::from_utf8_lossy(&broken.stdout));
    assert_eq!(steps.len(), 3, "every step is printed before the exit");
    let missing: Vec<&Value> = steps.iter().filter(|step| step["error"] != Value::Null).collect();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0]["descriptor"]["digest"], digest);
    assert!(stderr(&broken).contains("is missing"), "{}", stderr(&broken));
    fails_with("not found", &["walk", l, "nothing"]);
}
