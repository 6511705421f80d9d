#!/usr/bin/env bash
# Streaming-layer throughput beside its peers, in one run on the same tar of real files:
# ocicas layer (gzip 1/2/3/6, zstd 3), umoci insert, pigz -p2 -6, gzip -6, zstd -3 -T2 and
# go-containerregistry's stream.Layer (default level and 6). Median of 3 runs each.
# Usage: bench/stream/run.sh [SIZE_MB] (default 500). Needs umoci, pigz, zstd, go.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
size_mb=${1:-500}
work=${OCICAS_BENCH_DIR:-$repo/target}/bench-stream
rm -rf "$work" && mkdir -p "$work"

cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
ocicas="$repo/target/release/ocicas"
(cd "$repo/bench/peers/ggcr-stream" && go build -o "$work/ggcr-stream" .)

# A tree of real files of about SIZE_MB (the start of /usr/lib), and its tar.
tree="$work/tree"
mkdir -p "$tree"
tar -cf - -C /usr lib 2>/dev/null | head -c $((size_mb * 1024 * 1024)) | tar -xf - -C "$tree" 2>/dev/null || true
tar -cf "$work/input.tar" -C "$tree" .
input="$work/input.tar"
in_bytes=$(stat -c %s "$input")
echo "input: $input, $((in_bytes / 1000000)) MB of real files"

time_of() { local start end; start=$(date +%s.%N); "$@" > "$work/out.txt"; end=$(date +%s.%N); echo "$end - $start" | bc; }
# Untimed, before each run: a fresh output layout, and no writeback left from the run before
# (removing a 200 MB blob took 48 ms here, on a disk mounted with online discard).
fresh_layouts() {
  rm -rf "$work/layout" "$work/umoci"
  "$ocicas" init "$work/layout" >/dev/null
  umoci init --layout "$work/umoci" && umoci new --image "$work/umoci:t"
  sync
}
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
declare -A speed ratio bytes

measure() {  # measure NAME OUTPUT_SIZE_COMMAND -- COMMAND...
  local name=$1; shift
  local times=() out=0
  for _ in 1 2 3; do
    fresh_layouts
    times+=("$(time_of "$@")")
    out=$(cat "$work/size.txt" 2>/dev/null || echo 0)
  done
  local t; t=$(median "${times[@]}")
  speed[$name]=$(echo "scale=1; $in_bytes / 1000000 / $t" | bc)
  ratio[$name]=$(echo "scale=3; $out / $in_bytes" | bc)
  bytes[$name]=$out
  printf '%-28s %8s MB/s   size %s\n' "$name" "${speed[$name]}" "${ratio[$name]}"
}

ocicas_layer() {  # level or zstd
  "$ocicas" layer "$work/layout" "$input" "$@" | sed 's/.*"size":\([0-9]*\).*/\1/' > "$work/size.txt"
}
umoci_insert() {
  umoci insert --image "$work/umoci:t" "$tree" / >/dev/null
  find "$work/umoci/blobs/sha256" -type f -size +1M -printf '%s\n' | sort -n | tail -1 > "$work/size.txt"
}
pipe_size() { "$@" < "$input" | wc -c > "$work/size.txt"; }
ggcr() { "$work/ggcr-stream" "$input" "$@" | cut -d' ' -f1 > "$work/size.txt"; }

echo "tool                          throughput   compressed/input"
measure "ocicas gzip -1" ocicas_layer --level 1
measure "ocicas gzip -2" ocicas_layer --level 2
measure "ocicas gzip -3" ocicas_layer --level 3
measure "ocicas gzip -6" ocicas_layer --level 6
measure "ocicas zstd -3" ocicas_layer --zstd --level 3
measure "umoci insert" umoci_insert
measure "pigz -p2 -6" pipe_size pigz -p2 -6 -c
measure "gzip -6" pipe_size gzip -6 -c
measure "zstd -3 -T2" pipe_size zstd -3 -T2 -c
measure "ggcr stream default" ggcr
measure "ggcr stream -6" ggcr 6

r() { echo "scale=2; ${speed[$1]} / ${speed[$2]}" | bc; }
# The umoci target is for the fastest level whose output is no larger than umoci's, in bytes.
fastest=""
for level in 1 2 3 6; do
  name="ocicas gzip -$level"
  if [ "${bytes[$name]}" -le "${bytes[umoci insert]}" ] &&
    { [ -z "$fastest" ] || [ "$(echo "${speed[$name]} > ${speed[$fastest]}" | bc)" = 1 ]; }; then
    fastest=$name
  fi
done
echo
echo "targets (ratios in this run):"
if [ -n "$fastest" ]; then
  echo "  $fastest / umoci insert      $(r "$fastest" 'umoci insert')x  (>= 1.3, the fastest level no larger than umoci: ${bytes[$fastest]} vs ${bytes[umoci insert]} bytes)"
else
  echo "  no ocicas gzip level was as small as umoci's output (${bytes[umoci insert]} bytes)"
fi
echo "  ocicas gzip -6 / pigz -p2 -6       $(r 'ocicas gzip -6' 'pigz -p2 -6')x  (>= 2.0; sizes ${ratio[ocicas gzip -6]} vs ${ratio[pigz -p2 -6]})"
echo "  ocicas zstd -3 / zstd -3 -T2       $(r 'ocicas zstd -3' 'zstd -3 -T2')x  (>= 0.9)"
echo "  ocicas gzip -6 / ggcr stream -6    $(r 'ocicas gzip -6' 'ggcr stream -6')x  (>= 3)"
