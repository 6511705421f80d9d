//! Interop with the real peers from Debian (umoci, skopeo, oci-image-tool): layouts they write
//! open here, images we write unpack there, and GC keeps what umoci keeps (and more, for Docker
//! images). A missing peer fails the test unless OCICAS_SKIP_PEERS=1.

use crate::common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::cli::{OCICAS, assert_succeeded, ocicas, ocicas_output, output, run, s};
use common::fixture::{age_blobs, blob_files, copy_layout};
use common::peers::{assert_same_tree, peers_available};

/// A small tree with the things layers must carry: nested files, a symlink, a hardlink, a
/// setuid file, an empty directory.
fn source_tree(root: &Path) -> PathBuf {
    let tree = root.join("tree");
    fs::create_dir_all(tree.join("etc/conf.d")).unwrap();
    fs::create_dir_all(tree.join("usr/bin")).unwrap();
    fs::create_dir_all(tree.join("var/empty")).unwrap();
    for i in 0..50 {
        fs::write(tree.join(format!("etc/conf.d/file{i}.conf")), format!("setting {i}\n").repeat(i + 1)).unwrap();
    }
    fs::write(tree.join("usr/bin/tool"), b"#!/bin/sh\necho tool\n").unwrap();
    fs::set_permissions(tree.join("usr/bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(tree.join("usr/bin/tool"), tree.join("usr/bin/tool-link")).unwrap();
    std::os::unix::fs::symlink("../usr/bin/tool", tree.join("etc/tool")).unwrap();
    tree
}

#[test]
fn a_umoci_layout_opens_lists_checks_and_serves_its_blobs() {
    if !peers_available(&["umoci"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = source_tree(dir.path());
    let layout = dir.path().join("layout");
    run("umoci", &["init", "--layout", s(&layout)]);
    run("umoci", &["new", "--image", &format!("{}:base", s(&layout))]);
    run("umoci", &["insert", "--image", &format!("{}:base", s(&layout)), s(&tree), "/"]);
    run("umoci", &["new", "--image", &format!("{}:other", s(&layout))]);

    let refs = ocicas(&["ref", "ls", s(&layout)]);
    let names: BTreeSet<&str> = refs.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(names, BTreeSet::from(["base", "other"]));
    assert!(ocicas(&["fsck", s(&layout)]).starts_with("sound"));
    for name in blob_files(&layout) {
        let got = ocicas_output(&["blob", "get", s(&layout), &format!("sha256:{name}")], b"");
        assert!(got.status.success());
        assert_eq!(got.stdout, fs::read(layout.join("blobs/sha256").join(&name)).unwrap(), "blob {name}");
    }

    // After we write into it, umoci still reads it.
    let blob = ocicas(&["blob", "put", s(&layout), s(&tree.join("usr/bin/tool"))]);
    assert!(blob.starts_with("sha256:"));
    let base = ocicas(&["ref", "get", s(&layout), "base"]);
    let digest = base.split("\"digest\":\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    ocicas(&["ref", "put", s(&layout), "copy", &digest]);
    assert!(run("umoci", &["ls", "--layout", s(&layout)]).lines().any(|l| l == "copy"));
    let bundle = dir.path().join("bundle");
    run("umoci", &["unpack", "--image", &format!("{}:copy", s(&layout)), s(&bundle)]);
    assert_same_tree(&tree, &bundle.join("rootfs"));
}

#[test]
fn an_appended_image_unpacks_validates_and_exports_with_the_peers() {
    if !peers_available(&["umoci", "oci-image-tool", "skopeo"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = source_tree(dir.path());
    let layout = dir.path().join("layout");
    ocicas(&["init", s(&layout)]);
    let manifest = ocicas(&["append", s(&layout), "app", "--dir", s(&tree)]);
    assert!(manifest.contains("application/vnd.oci.image.manifest.v1+json"));

    let bundle = dir.path().join("bundle");
    run("umoci", &["unpack", "--image", &format!("{}:app", s(&layout)), s(&bundle)]);
    assert_same_tree(&tree, &bundle.join("rootfs"));
    run("oci-image-tool", &["validate", "--type", "image", "--ref", "name=app", s(&layout)]);

    let archive = dir.path().join("app.tar");
    run(
        "skopeo",
        &["copy", &format!("oci:{}:app", s(&layout)), &format!("docker-archive:{}:example/app:1", s(&archive))],
    );
    run("skopeo", &["inspect", &format!("docker-archive:{}:example/app:1", s(&archive))]);
}

#[test]
fn skopeo_archives_import_from_a_path_and_from_a_gzip_pipe_and_our_export_reads_back() {
    if !peers_available(&["umoci", "skopeo", "gzip"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = source_tree(dir.path());
    let source = dir.path().join("source");
    ocicas(&["init", s(&source)]);
    ocicas(&["append", s(&source), "app", "--dir", s(&tree)]);
    // skopeo writes <id>/layer.tar as symlinks to top-level <hex>.tar files.
    let archive = dir.path().join("skopeo.tar");
    run(
        "skopeo",
        &["copy", &format!("oci:{}:app", s(&source)), &format!("docker-archive:{}:example/app:1", s(&archive))],
    );

    let layout = dir.path().join("layout");
    ocicas(&["init", s(&layout)]);
    ocicas(&["docker-archive", "import", s(&layout), s(&archive), "--ref", "from-path"]);
    let gzipped = run("sh", &["-c", &format!("gzip -c {} > {}.gz && echo ok", s(&archive), s(&archive))]);
    assert_eq!(gzipped.trim(), "ok");
    let gzip = fs::read(format!("{}.gz", s(&archive))).unwrap();
    let from_pipe = ocicas_output(&["docker-archive", "import", s(&layout), "-", "--ref", "from-pipe"], &gzip);
    assert_succeeded("the import from a pipe", &from_pipe);
    for name in ["from-path", "from-pipe"] {
        let bundle = dir.path().join(format!("bundle-{name}"));
        run("umoci", &["unpack", "--image", &format!("{}:{name}", s(&layout)), s(&bundle)]);
        assert_same_tree(&tree, &bundle.join("rootfs"));
    }

    // Both forms: skopeo finds the image by its RepoTag, copies it out, and it unpacks the same.
    for format in ["legacy", "oci"] {
        let exported = dir.path().join(format!("exported-{format}.tar"));
        ocicas(&[
            "docker-archive",
            "export",
            s(&layout),
            "from-path",
            "-o",
            s(&exported),
            "--tag",
            "example/out:2",
            "--format",
            format,
        ]);
        run("skopeo", &["inspect", &format!("docker-archive:{}:example/out:2", s(&exported))]);
        let back = dir.path().join(format!("back-{format}"));
        run(
            "skopeo",
            &["copy", &format!("docker-archive:{}:example/out:2", s(&exported)), &format!("oci:{}:back", s(&back))],
        );
        let bundle = dir.path().join(format!("bundle-back-{format}"));
        run("umoci", &["unpack", "--image", &format!("{}:back", s(&back)), s(&bundle)]);
        assert_same_tree(&tree, &bundle.join("rootfs"));
    }
}

#[test]
fn gc_keeps_exactly_what_umoci_gc_keeps_whatever_the_order_of_removals() {
    if !peers_available(&["umoci"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = source_tree(dir.path());
    let base = dir.path().join("base");
    let l = |tag: &str| format!("{}:{tag}", s(&base));
    run("umoci", &["init", "--layout", s(&base)]);
    run("umoci", &["new", "--image", &l("a")]);
    run("umoci", &["insert", "--image", &l("a"), s(&tree.join("etc")), "/etc"]);
    run("umoci", &["insert", "--image", &l("a"), "--tag", "b", s(&tree.join("usr")), "/usr"]);
    run("umoci", &["new", "--image", &l("c")]);
    run("umoci", &["insert", "--image", &l("c"), s(&tree.join("etc")), "/etc"]);
    let orders: [&[&str]; 6] = [&["a"], &["b"], &["c"], &["a", "b"], &["b", "c"], &["a", "b", "c"]];
    for (i, removed) in orders.iter().enumerate() {
        let ours = dir.path().join(format!("ours-{i}"));
        let theirs = dir.path().join(format!("theirs-{i}"));
        copy_layout(&base, &ours);
        copy_layout(&base, &theirs);
        for tag in *removed {
            run("umoci", &["rm", "--image", &format!("{}:{tag}", s(&theirs))]);
            ocicas(&["ref", "rm", s(&ours), tag]);
        }
        age_blobs(&ours);
        run("umoci", &["gc", "--layout", s(&theirs)]);
        ocicas(&["gc", s(&ours)]);
        assert_eq!(blob_files(&ours), blob_files(&theirs), "after removing {removed:?}");
        assert!(ocicas(&["fsck", s(&ours)]).starts_with("sound"));
    }
}

#[test]
fn docker_schema2_images_keep_their_blobs_through_gc_unlike_umoci() {
    if !peers_available(&["umoci", "skopeo"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = source_tree(dir.path());
    let source = dir.path().join("source");
    ocicas(&["init", s(&source)]);
    ocicas(&["append", s(&source), "app", "--dir", s(&tree)]);
    let docker = dir.path().join("docker");
    run("skopeo", &["copy", "--format", "v2s2", &format!("oci:{}:app", s(&source)), &format!("oci:{}:d", s(&docker))]);
    let theirs = dir.path().join("theirs");
    copy_layout(&docker, &theirs);
    let before = blob_files(&docker);
    assert_eq!(before.len(), 3);

    age_blobs(&docker);
    ocicas(&["gc", s(&docker)]);
    assert_eq!(blob_files(&docker), before);
    assert!(ocicas(&["fsck", s(&docker)]).starts_with("sound"));

    run("umoci", &["gc", "--layout", s(&theirs)]);
    assert_eq!(blob_files(&theirs).len(), 1, "umoci gc was expected to drop the Docker image's children");
}

/// What a tool says of a layout: whether it accepts image "a" in it.
fn accepts(program: &str, args: &[&str]) -> bool {
    output(program, args).status.success()
}

/// Changes the JSON documents of the layout at this path as another tool could.
struct Edit<'a>(&'a Path);

impl Edit<'_> {
    fn json(&self, path: &Path) -> serde_json::Value {
        serde_json::from_slice(&fs::read(self.0.join(path)).unwrap()).unwrap()
    }

    fn index(&self, change: impl FnOnce(&mut serde_json::Value)) {
        let mut index = self.json(Path::new("index.json"));
        change(&mut index);
        fs::write(self.0.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    }

    /// Changes the document that index.json's first entry leads to through `path` (JSON
    /// pointers to a descriptor in each document on the way), storing it as a new blob and
    /// pointing each descriptor on the way at the new bytes.
    fn blob(&self, path: &[&str], change: impl FnOnce(&mut serde_json::Value)) {
        let mut index = self.json(Path::new("index.json"));
        self.rewrite(index.pointer_mut("/manifests/0").unwrap(), path, change);
        fs::write(self.0.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    }

    fn rewrite(&self, descriptor: &mut serde_json::Value, path: &[&str], change: impl FnOnce(&mut serde_json::Value)) {
        let digest = descriptor["digest"].as_str().unwrap().to_owned();
        let mut document = self.json(&Path::new("blobs/sha256").join(&digest["sha256:".len()..]));
        match path.split_first() {
            Some((pointer, rest)) => self.rewrite(document.pointer_mut(pointer).unwrap(), rest, change),
            None => change(&mut document),
        }
        let bytes = serde_json::to_vec(&document).unwrap();
        let digest = ocicas::Digest::of_bytes(ocicas::Algorithm::Sha256, &bytes);
        fs::write(self.0.join("blobs/sha256").join(digest.hex()), &bytes).unwrap();
        descriptor["digest"] = serde_json::json!(digest);
        descriptor["size"] = serde_json::json!(bytes.len());
    }
}

#[test]
fn fsck_verdicts_agree_with_umoci_and_oci_image_tool_where_they_have_one() {
    if !peers_available(&["umoci", "oci-image-tool"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    let tree = dir.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("file"), b"content\n").unwrap();
    run("umoci", &["init", "--layout", s(&base)]);
    run("umoci", &["new", "--image", &format!("{}:a", s(&base))]);
    run("umoci", &["insert", "--image", &format!("{}:a", s(&base)), s(&tree), "/"]);
    let other_bytes = base64_of(b"other bytes");
    // (case, change, ocicas sound, umoci unpacks "a", oci-image-tool validates "a"). Where
    // ocicas differs, the comment says why.
    type Change = Box<dyn Fn(&Edit)>;
    let cases: Vec<(&str, Change, [bool; 3])> = vec![
        ("as umoci wrote it", Box::new(|_| {}), [true, true, true]),
        (
            "tag on two entries",
            Box::new(|edit| {
                edit.index(|index| {
                    let first = index["manifests"][0].clone();
                    index["manifests"].as_array_mut().unwrap().push(first);
                })
            }),
            [false, false, false],
        ),
        (
            "data not base64",
            Box::new(|edit| edit.index(|index| index["manifests"][0]["data"] = "!!".into())),
            [false, false, false],
        ),
        // The image-spec says data MUST match the digest; the Go tools do not look.
        (
            "data of other bytes",
            Box::new(move |edit| edit.index(|index| index["manifests"][0]["data"] = other_bytes.clone().into())),
            [false, true, true],
        ),
        (
            "config with a layer media type",
            Box::new(|edit| {
                edit.blob(&[], |m| m["config"]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip".into())
            }),
            [false, false, false],
        ),
        (
            "layer of an unknown media type",
            Box::new(|edit| edit.blob(&[], |m| m["layers"][0]["mediaType"] = "application/x-foo".into())),
            [false, false, false],
        ),
        // containerd and docker refuse an image whose DiffIDs do not pair with its layers.
        (
            "a DiffID more than layers",
            Box::new(|edit| {
                edit.blob(&["/config"], |c| {
                    let first = c["rootfs"]["diff_ids"][0].clone();
                    c["rootfs"]["diff_ids"].as_array_mut().unwrap().push(first);
                })
            }),
            [false, true, true],
        ),
        (
            "rootfs.type foo",
            Box::new(|edit| edit.blob(&["/config"], |c| c["rootfs"]["type"] = "foo".into())),
            [false, false, true],
        ),
        (
            "imageLayoutVersion 1.1.0",
            Box::new(|edit| fs::write(edit.0.join("oci-layout"), br#"{"imageLayoutVersion":"1.1.0"}"#).unwrap()),
            [false, false, false],
        ),
        // Notes, not problems: the other entries are not images, "a" is untouched.
        (
            "another entry of digest algorithm sha384",
            Box::new(|edit| {
                edit.index(|index| {
                    let mut odd = index["manifests"][0].clone();
                    odd["digest"] = format!("sha384:{}", "a".repeat(96)).into();
                    odd["annotations"]["org.opencontainers.image.ref.name"] = "odd".into();
                    index["manifests"].as_array_mut().unwrap().push(odd);
                })
            }),
            [true, true, true],
        ),
        (
            "another entry of media type application/x-foo",
            Box::new(|edit| {
                edit.index(|index| {
                    let mut odd = index["manifests"][0].clone();
                    odd["mediaType"] = "application/x-foo".into();
                    odd["annotations"]["org.opencontainers.image.ref.name"] = "odd".into();
                    index["manifests"].as_array_mut().unwrap().push(odd);
                })
            }),
            [true, true, true],
        ),
    ];
    for (case, change, expected) in cases {
        let layout = dir.path().join("layout");
        copy_layout(&base, &layout);
        change(&Edit(&layout));
        let bundle = dir.path().join("bundle");
        let _ = fs::remove_dir_all(&bundle);
        let verdicts = [
            accepts(OCICAS, &["fsck", s(&layout)]),
            accepts("umoci", &["unpack", "--image", &format!("{}:a", s(&layout)), s(&bundle)]),
            accepts("oci-image-tool", &["validate", "--type", "image", "--ref", "name=a", s(&layout)]),
        ];
        assert_eq!(verdicts, expected, "{case}: [ocicas fsck, umoci unpack, oci-image-tool validate]");
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
