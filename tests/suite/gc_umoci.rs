//! `ocicas gc` against the real `umoci gc` (Debian umoci 0.4.7): on OCI layouts that umoci
//! builds (and that we append to), with no leases, both keep exactly the same blob files, after
//! every step of every order of removing tags and along seeded random histories. Docker
//! schema2 images are where we differ on purpose: we keep their config and layers, umoci
//! deletes them. A missing peer fails the tests unless OCICAS_SKIP_PEERS=1.

use crate::common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use common::cli::{ocicas, run, s};
use common::fixture::{age_blobs, blob_files, copy_layout};
use common::peers::peers_available;
use common::rng::Rng;

/// `LAYOUT:TAG`, the image argument of umoci.
fn image(layout: &Path, tag: &str) -> String {
    format!("{}:{tag}", s(layout))
}

/// `ocicas fsck` passes and, after a GC, reports nothing unreachable.
fn assert_sound_and_tidy(layout: &Path, context: &str) {
    let out = ocicas(&["fsck", s(layout)]);
    assert!(out.starts_with("sound"), "{context}: fsck: {out}");
    assert!(!out.contains("not reachable"), "{context}: GC left unreachable blobs: {out}");
}

/// Copies `layout` twice, collects one copy with `umoci gc` and the other with `ocicas gc`,
/// and asserts they keep the same blob files. Returns the blobs kept.
fn assert_gc_agrees(layout: &Path, scratch: &Path, context: &str) -> BTreeSet<String> {
    let theirs = scratch.join("theirs");
    let ours = scratch.join("ours");
    copy_layout(layout, &theirs);
    copy_layout(layout, &ours);
    age_blobs(&ours);
    run("umoci", &["gc", "--layout", s(&theirs)]);
    let report: serde_json::Value = serde_json::from_str(&ocicas(&["gc", s(&ours), "--json"])).unwrap();
    let (kept_theirs, kept_ours) = (blob_files(&theirs), blob_files(&ours));
    assert_eq!(
        kept_ours,
        kept_theirs,
        "{context}: ocicas gc kept {:?} that umoci gc removed, and removed {:?} that umoci gc kept (report {report})",
        kept_ours.difference(&kept_theirs).collect::<Vec<_>>(),
        kept_theirs.difference(&kept_ours).collect::<Vec<_>>(),
    );
    let before = blob_files(layout).len() as u64;
    assert_eq!(report["blobsRemoved"].as_u64(), Some(before - kept_ours.len() as u64), "{context}: {report}");
    assert_sound_and_tidy(&ours, context);
    kept_ours
}

/// A directory of `files` small files with contents drawn from `rng`.
fn random_tree(root: &Path, name: &str, files: usize, rng: &mut Rng) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir_all(dir.join("sub")).unwrap();
    for i in 0..files {
        let len = 1 + rng.below(3000) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let file = if i % 2 == 0 { dir.join(format!("f{i}")) } else { dir.join(format!("sub/f{i}")) };
        fs::write(file, bytes).unwrap();
    }
    dir
}

/// a = empty base + layer1, b = a + layer2, c = a fresh image with its own layer; every step
/// leaves umoci's previous manifests and configs behind as garbage.
fn three_tag_layout(dir: &Path) -> PathBuf {
    let mut rng = Rng(7);
    let layout = dir.join("base");
    let (layer1, layer2, layer3) = (
        random_tree(dir, "layer1", 6, &mut rng),
        random_tree(dir, "layer2", 4, &mut rng),
        random_tree(dir, "layer3", 5, &mut rng),
    );
    run("umoci", &["init", "--layout", s(&layout)]);
    run("umoci", &["new", "--image", &image(&layout, "a")]);
    run("umoci", &["insert", "--image", &image(&layout, "a"), s(&layer1), "/layer1"]);
    run("umoci", &["insert", "--image", &image(&layout, "a"), "--tag", "b", s(&layer2), "/layer2"]);
    run("umoci", &["new", "--image", &image(&layout, "c")]);
    run("umoci", &["insert", "--image", &image(&layout, "c"), s(&layer3), "/layer3"]);
    layout
}

#[test]
fn gc_keeps_what_umoci_gc_keeps_after_each_removal_in_every_order_of_three_tags() {
    if !peers_available(&["umoci"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = three_tag_layout(dir.path());
    let all = blob_files(&base);
    let kept_untouched = assert_gc_agrees(&base, dir.path(), "no tag removed");
    assert!(kept_untouched.len() < all.len(), "umoci's own garbage was not collected");

    let permutations: [[&str; 3]; 6] =
        [["a", "b", "c"], ["a", "c", "b"], ["b", "a", "c"], ["b", "c", "a"], ["c", "a", "b"], ["c", "b", "a"]];
    for (n, order) in permutations.into_iter().enumerate() {
        let layout = dir.path().join(format!("order-{}", order.concat()));
        copy_layout(&base, &layout);
        let mut previous = kept_untouched.clone();
        for (step, tag) in order.iter().enumerate() {
            // Remove with each tool in turn: their index.json edits must mean the same. The
            // last removal is ours: umoci writes `"manifests": null` for an empty index (see
            // a_layout_whose_index_umoci_left_null_opens_and_collects).
            if step < 2 && (n + step) % 2 == 0 {
                run("umoci", &["rm", "--image", &image(&layout, tag)]);
            } else {
                ocicas(&["ref", "rm", s(&layout), tag]);
            }
            let kept = assert_gc_agrees(&layout, dir.path(), &format!("after removing {:?}", &order[..=step]));
            assert!(kept.is_subset(&previous), "removing a tag brought blobs back");
            previous = kept;
        }
        assert!(previous.is_empty(), "with every tag gone both GCs keep nothing, yet {previous:?} remain");
    }
}

fn index_entries(layout: &Path) -> usize {
    let index: serde_json::Value = serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"].as_array().map_or(0, Vec::len)
}

/// One step of a random history, applied to the master layout.
fn random_step(layout: &Path, work: &Path, step: usize, rng: &mut Rng, trees: &mut Vec<PathBuf>) -> String {
    const TAGS: [&str; 5] = ["t0", "t1", "t2", "t3", "t4"];
    let refs = ocicas(&["ref", "ls", s(layout)]);
    let tags: Vec<&str> = refs.lines().filter_map(|l| l.split('\t').next()).collect();
    let images: Vec<&str> = tags.iter().copied().filter(|t| t.starts_with('t')).collect();
    let target = *rng.pick(&TAGS);
    let roll = if images.is_empty() { 0 } else { rng.below(100) };
    let mut tree = |rng: &mut Rng| -> PathBuf {
        // Now and then the same tree again: the same layer blob shared by unrelated images.
        if !trees.is_empty() && rng.below(4) == 0 {
            return rng.pick(trees).clone();
        }
        let files = 1 + rng.below(5) as usize;
        let new = random_tree(work, &format!("tree{step}"), files, rng);
        trees.push(new.clone());
        new
    };
    match roll {
        0..=9 => {
            run("umoci", &["new", "--image", &image(layout, target)]);
            format!("umoci new {target}")
        }
        10..=34 => {
            let from = *rng.pick(&images);
            let tree = tree(rng);
            let mut args = vec!["insert", "--image"];
            let source = image(layout, from);
            args.push(&source);
            let retag = rng.below(2) == 0;
            if retag {
                args.extend(["--tag", target]);
            }
            args.extend([s(&tree), "/data"]);
            run("umoci", &args);
            format!("umoci insert {from}{}", if retag { format!(" --tag {target}") } else { String::new() })
        }
        35..=44 => {
            let from = *rng.pick(&images);
            let label = format!("step={step}");
            run("umoci", &["config", "--image", &image(layout, from), "--tag", target, "--config.label", &label]);
            format!("umoci config {from} --tag {target}")
        }
        45..=54 => {
            let from = *rng.pick(&images);
            run("umoci", &["tag", "--image", &image(layout, from), target]);
            format!("umoci tag {from} {target}")
        }
        55..=64 => {
            let to = *rng.pick(&images);
            let tree = tree(rng);
            ocicas(&["append", s(layout), to, "--dir", s(&tree)]);
            format!("ocicas append {to}")
        }
        65..=79 => {
            let victim = *rng.pick(&tags);
            let entries = index_entries(layout);
            // umoci empties index.json to `"manifests": null` (see
            // a_layout_whose_index_umoci_left_null_opens_and_collects), so it never removes the last entry.
            if rng.below(2) == 0 && entries > 1 {
                run("umoci", &["rm", "--image", &image(layout, victim)]);
                format!("umoci rm {victim}")
            } else {
                ocicas(&["ref", "rm", s(layout), victim]);
                format!("ocicas ref rm {victim}")
            }
        }
        80..=86 => {
            // An image index over two tagged images, tagged itself.
            let (first, second) = (*rng.pick(&images), *rng.pick(&images));
            let manifests: Vec<serde_json::Value> = [first, second]
                .iter()
                .map(|tag| {
                    let mut d: serde_json::Value =
                        serde_json::from_str(&ocicas(&["ref", "get", s(layout), tag])).unwrap();
                    d.as_object_mut().unwrap().remove("annotations");
                    d
                })
                .collect();
            let index = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": manifests,
            });
            let file = work.join(format!("index{step}.json"));
            fs::write(&file, index.to_string()).unwrap();
            let digest = ocicas(&["blob", "put", s(layout), s(&file)]).trim().to_owned();
            let name = format!("idx{}", rng.below(3));
            ocicas(&["ref", "put", s(layout), &name, &digest, "--force"]);
            format!("index {name} over {first} {second}")
        }
        87..=92 => {
            // Strip the name from one index.json entry: an untagged entry is still a root.
            let path = layout.join("index.json");
            let mut index: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
            let entries = index["manifests"].as_array_mut().unwrap();
            let i = rng.below(entries.len() as u64) as usize;
            entries[i].as_object_mut().unwrap().remove("annotations");
            fs::write(&path, index.to_string()).unwrap();
            format!("untag entry {i}")
        }
        _ => {
            // Collect the master too, so later steps start from a collected layout.
            age_blobs(layout);
            if rng.below(2) == 0 {
                run("umoci", &["gc", "--layout", s(layout)]);
                "umoci gc".to_owned()
            } else {
                ocicas(&["gc", s(layout)]);
                "ocicas gc".to_owned()
            }
        }
    }
}

#[test]
fn gc_keeps_what_umoci_gc_keeps_along_random_histories() {
    if !peers_available(&["umoci"]) {
        return;
    }
    // OCICAS_GC_SEED=N replays one history.
    let seeds: Vec<u64> = match std::env::var("OCICAS_GC_SEED") {
        Ok(seed) => vec![seed.parse().expect("OCICAS_GC_SEED must be a number")],
        Err(_) => vec![1, 2],
    };
    for seed in seeds {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(seed);
        let layout = dir.path().join("master");
        // Not `umoci init`: it writes `"manifests": null` (see a_layout_whose_index_umoci_left_null_opens_and_collects).
        ocicas(&["init", s(&layout)]);
        let mut trees = Vec::new();
        let mut history = Vec::new();
        let mut removed_any = false;
        for step in 0..40 {
            history.push(random_step(&layout, dir.path(), step, &mut rng, &mut trees));
            let before = blob_files(&layout).len();
            let kept = assert_gc_agrees(&layout, dir.path(), &format!("seed {seed}, history {history:?}"));
            removed_any |= kept.len() < before;
        }
        println!("seed {seed}: {history:?}");
        assert!(removed_any, "seed {seed}: no step left garbage to collect, so nothing was compared: {history:?}");
    }
}

#[test]
fn docker_schema2_images_keep_config_and_layers_through_our_gc_which_umoci_gc_deletes() {
    if !peers_available(&["umoci", "skopeo"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(11);
    let oci = dir.path().join("oci");
    let tree = random_tree(dir.path(), "tree", 8, &mut rng);
    run("umoci", &["init", "--layout", s(&oci)]);
    run("umoci", &["new", "--image", &image(&oci, "a")]);
    run("umoci", &["insert", "--image", &image(&oci, "a"), s(&tree), "/tree"]);
    let docker = dir.path().join("docker");
    run(
        "skopeo",
        &["copy", "--format", "v2s2", &format!("oci:{}", image(&oci, "a")), &format!("oci:{}", image(&docker, "d"))],
    );

    // The image is Docker schema2: its manifest, a Docker config and a Docker layer.
    let descriptor: serde_json::Value = serde_json::from_str(&ocicas(&["ref", "get", s(&docker), "d"])).unwrap();
    assert_eq!(descriptor["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    let manifest_digest = descriptor["digest"].as_str().unwrap().to_owned();
    let manifest: serde_json::Value =
        serde_json::from_str(&ocicas(&["blob", "get", s(&docker), &manifest_digest])).unwrap();
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.docker.container.image.v1+json");
    let children: BTreeSet<String> = std::iter::once(&manifest["config"])
        .chain(manifest["layers"].as_array().unwrap())
        .map(|d| d["digest"].as_str().unwrap().trim_start_matches("sha256:").to_owned())
        .collect();
    let image_blobs = blob_files(&docker);
    assert_eq!(image_blobs.len(), 3, "{image_blobs:?}");
    assert!(children.is_subset(&image_blobs));

    // Some garbage beside it, so the GC has something to remove.
    let junk = dir.path().join("junk");
    fs::write(&junk, b"unreferenced").unwrap();
    let junk_digest = ocicas(&["blob", "put", s(&docker), s(&junk)]).trim().to_owned();
    let theirs = dir.path().join("theirs");
    copy_layout(&docker, &theirs);

    age_blobs(&docker);
    let report: serde_json::Value = serde_json::from_str(&ocicas(&["gc", s(&docker), "--json"])).unwrap();
    assert_eq!(report["blobsRemoved"], 1, "{report}");
    assert_eq!(report["missing"], serde_json::json!([]), "{report}");
    assert_eq!(blob_files(&docker), image_blobs, "ocicas gc must keep the Docker image whole");
    assert!(!ocicas(&["blob", "ls", s(&docker)]).contains(&junk_digest));
    assert_sound_and_tidy(&docker, "Docker image after ocicas gc");

    // umoci does not descend Docker manifests: it deletes the config and the layer.
    run("umoci", &["gc", "--layout", s(&theirs)]);
    let left = blob_files(&theirs);
    assert_eq!(
        left,
        BTreeSet::from([manifest_digest.trim_start_matches("sha256:").to_owned()]),
        "umoci gc was expected to keep only the Docker manifest (if this changed, umoci learned Docker schema2)"
    );
    assert!(left.is_disjoint(&children));
}

#[test]
fn a_referrer_keeps_its_subject_as_umoci_gc_does() {
    if !peers_available(&["umoci"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = three_tag_layout(dir.path());
    // An artifact manifest (OCI 1.1 referrer) whose subject is image c, tagged; c's own tag goes.
    let subject: serde_json::Value = serde_json::from_str(&ocicas(&["ref", "get", s(&layout), "c"])).unwrap();
    let empty = dir.path().join("empty.json");
    fs::write(&empty, b"{}").unwrap();
    let empty_digest = ocicas(&["blob", "put", s(&layout), s(&empty)]).trim().to_owned();
    let referrer = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_digest, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_digest, "size": 2}],
        "subject": {"mediaType": subject["mediaType"], "digest": subject["digest"], "size": subject["size"]},
    });
    let file = dir.path().join("referrer.json");
    fs::write(&file, referrer.to_string()).unwrap();
    let digest = ocicas(&["blob", "put", s(&layout), s(&file)]).trim().to_owned();
    ocicas(&["ref", "put", s(&layout), "sig", &digest]);
    ocicas(&["ref", "rm", s(&layout), "c"]);

    let kept = assert_gc_agrees(&layout, dir.path(), "referrer tagged, its subject untagged");
    let subject_hex = subject["digest"].as_str().unwrap().trim_start_matches("sha256:");
    assert!(kept.contains(subject_hex), "the subject image must survive GC");
}

#[test]
fn a_layout_whose_index_umoci_left_null_opens_and_collects() {
    if !peers_available(&["umoci"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    // umoci init writes {"schemaVersion":2,"manifests":null}: a layout with no images.
    run("umoci", &["init", "--layout", s(&layout)]);
    assert_eq!(ocicas(&["ref", "ls", s(&layout)]), "");
    assert_sound_and_tidy(&layout, "a fresh umoci layout");
    // umoci rm of the last tag writes the same; GC must then collect everything, as umoci does.
    let mut rng = Rng(5);
    let tree = random_tree(dir.path(), "tree", 3, &mut rng);
    run("umoci", &["new", "--image", &image(&layout, "a")]);
    run("umoci", &["insert", "--image", &image(&layout, "a"), s(&tree), "/tree"]);
    run("umoci", &["rm", "--image", &image(&layout, "a")]);
    let kept = assert_gc_agrees(&layout, dir.path(), "every tag removed by umoci");
    assert!(kept.is_empty(), "{kept:?}");
}
