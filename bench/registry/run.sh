#!/usr/bin/env bash
# Push and pull throughput against a loopback docker-registry, beside skopeo copy of the same
# image in the same run, and push-layer beside the local streaming layer (ocicas layer) on the
# same tar: is the upload the bottleneck? Rounds alternate the tools; median of 3 each.
# Usage: bench/registry/run.sh [SIZE_MB of files] (default 800: about 450 MB of gzip blobs). Needs docker-registry, skopeo, curl.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
size_mb=${1:-800}
work=${OCICAS_BENCH_DIR:-$repo/target}/bench-registry
rm -rf "$work" && mkdir -p "$work"
cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
ocicas="$repo/target/release/ocicas"

# An image of four gzip layers (level 1) made of real files (the start of /usr/lib).
tree="$work/tree"
mkdir -p "$tree"
tar -cf - -C /usr lib 2>/dev/null | head -c $((size_mb * 1024 * 1024)) | tar -xf - -C "$tree" 2>/dev/null || true
tar -cf "$work/input.tar" -C "$tree" .
"$ocicas" init "$work/layout" >/dev/null
i=0
for n in 0 1 2 3; do
  mkdir -p "$work/part$n/lib"
done
for entry in "$tree"/lib/*; do
  mv "$entry" "$work/part$((i % 4))/lib/"; i=$((i + 1))
done
for n in 0 1 2 3; do
  "$ocicas" append "$work/layout" app --dir "$work/part$n" --level 1 >/dev/null
done
image_bytes=$(du -cb "$work/layout/blobs/sha256"/* | tail -1 | cut -f1)
echo "image: 4 layers, $((image_bytes / 1000000)) MB of blobs"

# The registry, on a free loopback port. Every push goes to an empty registry: skopeo remembers
# where it pushed blobs before (its blob-info cache) and would mount them instead of uploading.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
host="127.0.0.1:$port"
printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}, delete: {enabled: true}}\nhttp: {addr: %s}\n' \
  "$work/registry" "$host" > "$work/registry.yml"
registry_pid=
stop_registry() { [ -z "$registry_pid" ] || { kill "$registry_pid"; wait "$registry_pid" 2>/dev/null || true; }; }
trap stop_registry EXIT
empty_registry() {
  stop_registry
  rm -rf "$work/registry"
  docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
  registry_pid=$!
  until curl -sf "http://$host/v2/" >/dev/null; do sleep 0.1; done
}

time_of() { local start end; start=$(date +%s.%N); "$@" > /dev/null 2>&1; end=$(date +%s.%N); echo "$end - $start" | bc; }
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
mbps() { echo "scale=1; $1 / 1000000 / $2" | bc; }

ocicas_push() { "$ocicas" push "$work/layout" app "$host/ocicas/app:v1" --insecure; }
skopeo_push() { skopeo copy -q --dest-tls-verify=false "oci:$work/layout:app" "docker://$host/skopeo/app:v1"; }
ocicas_pull() { rm -rf "$work/pulled" && "$ocicas" init "$work/pulled" && "$ocicas" pull "$work/pulled" "$host/ocicas/app:v1" --insecure; }
skopeo_pull() { rm -rf "$work/pulled" && skopeo copy -q --src-tls-verify=false "docker://$host/ocicas/app:v1" "oci:$work/pulled:v1"; }
local_layer() { rm -rf "$work/l" && "$ocicas" init "$work/l" && "$ocicas" layer "$work/l" "$work/input.tar"; }
push_layer() { "$ocicas" push-layer "$host/stream" "$work/input.tar" --insecure; }
timed_push() { empty_registry; time_of "$@"; }

declare -a op sp ol sl ll pl
for round in 1 2 3; do
  if [ $((round % 2)) = 1 ]; then
    sp+=("$(timed_push skopeo_push)"); op+=("$(timed_push ocicas_push)")
    ol+=("$(time_of ocicas_pull)"); sl+=("$(time_of skopeo_pull)")
    ll+=("$(time_of local_layer)"); pl+=("$(time_of push_layer)")
  else
    op+=("$(timed_push ocicas_push)"); sp+=("$(timed_push skopeo_push)")
    sl+=("$(time_of skopeo_pull)"); ol+=("$(time_of ocicas_pull)")
    pl+=("$(time_of push_layer)"); ll+=("$(time_of local_layer)")
  fi
done
tar_bytes=$(stat -c %s "$work/input.tar")
t_op=$(median "${op[@]}"); t_sp=$(median "${sp[@]}"); t_ol=$(median "${ol[@]}"); t_sl=$(median "${sl[@]}")
t_ll=$(median "${ll[@]}"); t_pl=$(median "${pl[@]}")
printf '%-34s %8s MB/s\n' "push   ocicas push" "$(mbps "$image_bytes" "$t_op")" "push   skopeo copy oci: -> docker:" "$(mbps "$image_bytes" "$t_sp")"
printf '%-34s %8s MB/s\n' "pull   ocicas pull" "$(mbps "$image_bytes" "$t_ol")" "pull   skopeo copy docker: -> oci:" "$(mbps "$image_bytes" "$t_sl")"
printf '%-34s %8s MB/s of tar\n' "layer  ocicas layer (local)" "$(mbps "$tar_bytes" "$t_ll")" "layer  ocicas push-layer" "$(mbps "$tar_bytes" "$t_pl")"
echo "ratios: push $(echo "scale=2; $t_sp / $t_op" | bc)x skopeo, pull $(echo "scale=2; $t_sl / $t_ol" | bc)x skopeo, push-layer $(echo "scale=2; $t_ll / $t_pl" | bc)x the local layer (targets 1.5, 1.5, ~1)"
