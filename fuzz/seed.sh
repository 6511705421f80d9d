#!/usr/bin/env bash
# Regenerates fuzz/seeds/ from files real tools wrote: an OCI layout built by umoci, the same
# image copied by skopeo into a Docker schema2 layout and into a docker-archive, and the JSON
# documents of both. Needs umoci, skopeo, jq, gzip and zstd (Debian: apt-get install -y umoci
# skopeo jq zstd). The structured targets (filters, layer_stream, docker_archive_members) take
# fuzzer-built values, not files: they have no seeds.
set -euo pipefail

fuzz_dir=$(cd "$(dirname "$0")" && pwd)
seeds="$fuzz_dir/seeds"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A small image: two layers, a file, a directory, a symlink.
mkdir -p "$work/rootfs1/etc" "$work/rootfs2/usr/bin"
echo "seed image" > "$work/rootfs1/etc/motd"
echo '#!/bin/sh' > "$work/rootfs2/usr/bin/hello"
chmod 755 "$work/rootfs2/usr/bin/hello"
ln -s hello "$work/rootfs2/usr/bin/hi"

oci="$work/oci"
umoci init --layout "$oci"
umoci new --image "$oci:seed"
umoci insert --image "$oci:seed" "$work/rootfs1" /
umoci insert --image "$oci:seed" "$work/rootfs2" /
# umoci leaves the previous manifests and configs unreferenced; they are seeds all the same.

docker_oci="$work/docker-oci"
skopeo copy --quiet --format v2s2 "oci:$oci:seed" "oci:$docker_oci:seed"
skopeo copy --quiet "oci:$oci:seed" "docker-archive:$work/archive.tar:example/seed:1"

rm -rf "$seeds"
mkdir -p "$seeds"/{digest,document,index_json,docker_archive,archive_decompress}

# Documents: every JSON blob of both layouts (manifests, configs), index.json, one descriptor,
# and a Docker manifest list made from the schema2 manifest.
for layout in "$oci" "$docker_oci"; do
    for blob in "$layout"/blobs/sha256/*; do
        if jq -e 'type == "object"' "$blob" > /dev/null 2>&1; then
            cp "$blob" "$seeds/document/$(basename "$layout")-$(basename "$blob" | cut -c1-16).json"
        fi
    done
    cp "$layout/index.json" "$seeds/index_json/$(basename "$layout").json"
    cp "$layout/index.json" "$seeds/document/$(basename "$layout")-index.json"
    jq -c '.manifests[0]' "$layout/index.json" > "$seeds/document/$(basename "$layout")-descriptor.json"
done
jq -c '{schemaVersion: 2, mediaType: "application/vnd.docker.distribution.manifest.list.v2+json",
        manifests: [.manifests[0] + {platform: {architecture: "amd64", os: "linux"}}]}' \
    "$docker_oci/index.json" > "$seeds/document/docker-manifest-list.json"

# Digests: every digest the layouts name, and a sha512.
jq -r '.. | .digest? // empty' "$oci"/index.json "$docker_oci"/index.json "$seeds"/document/*.json 2>/dev/null |
    sort -u | head -8 | while read -r digest; do
    printf '%s' "$digest" > "$seeds/digest/$(echo "$digest" | cut -c8-23)"
done
printf 'sha512:%s' "$(printf 'seed' | sha512sum | cut -d' ' -f1)" > "$seeds/digest/sha512"

# The docker-archive, plain, gzip and zstd.
for dir in docker_archive archive_decompress; do
    cp "$work/archive.tar" "$seeds/$dir/archive.tar"
    gzip -9 -n -c "$work/archive.tar" > "$seeds/$dir/archive.tar.gz"
    zstd -q -19 -c "$work/archive.tar" > "$seeds/$dir/archive.tar.zst"
done

du -sh "$seeds"
