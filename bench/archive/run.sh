#!/usr/bin/env bash
# docker-archive throughput beside skopeo, in one run on one archive of real files made by
# skopeo (issue 20): import as is, import recompressing with gzip, export. Median of 3 runs
# each, the tools alternating run by run; the machine's load is printed before and after, as
# the figures are only comparable within one run.
# Usage: bench/archive/run.sh. Needs skopeo and umoci. The image is built once in
# $OCICAS_BENCH_DIR/bench-archive (default target/) from /usr/bin, /usr/share and /usr/libexec
# (about 1 GB): one layer each, by umoci, then copied to a docker-archive by skopeo.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${OCICAS_BENCH_DIR:-$repo/target}/bench-archive
mkdir -p "$work"

cargo build --release --quiet --bin ocicas --manifest-path "$repo/Cargo.toml"
ocicas="$repo/target/release/ocicas"

archive="$work/image.tar"
if [ ! -s "$archive" ]; then
  rm -rf "$work/source"
  umoci init --layout "$work/source" && umoci new --image "$work/source:bench"
  for dir in /usr/bin /usr/share /usr/libexec; do
    umoci insert --image "$work/source:bench" "$dir" "$dir" >/dev/null 2>&1
  done
  skopeo copy --quiet "oci:$work/source:bench" "docker-archive:$archive:bench/archive:1"
fi
in_bytes=$(stat -c %s "$archive")
echo "archive: $archive, $((in_bytes / 1000000)) MB, made by skopeo $(skopeo --version | cut -d' ' -f3)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"

# time_of COMMAND...: "WALL CPU" in seconds (CPU: user + system, the whole process tree).
time_of() {
  /usr/bin/time -f '%e %U %S' -o "$work/time.txt" "$@" >/dev/null 2>"$work/stderr.txt"
  awk '{printf "%s %.2f\n", $1, $2 + $3}' "$work/time.txt"
}
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
# Untimed, before each run: fresh outputs, the archive in the page cache, no writeback pending.
fresh() {
  rm -rf "$work/out" && mkdir -p "$work/out"
  "$ocicas" init "$work/out/ocicas" >/dev/null
  cat "$archive" >/dev/null
  sync
}
# Sum of the layer blobs an OCI layout holds (blobs over 1 MB), in bytes.
layers_size() {
  [ -d "$1/blobs/sha256" ] || { echo 0; return; }
  find "$1/blobs/sha256" -type f -size +1M -printf '%s\n' | awk '{s += $1} END {print s + 0}'
}

declare -A seconds cpu sizes
# compare A_NAME A_COMMAND B_NAME B_COMMAND: three rounds, A then B then B then A then A then B.
compare() {
  local a=$1 a_cmd=$2 b=$3 b_cmd=$4 ta=() tb=()
  for order in ab ba ab; do
    for tool in $(echo "$order" | fold -w1); do
      fresh
      if [ "$tool" = a ]; then ta+=("$(time_of bash -c "$a_cmd")"); sizes[$a]=$(layers_size "$work/out/$a")
      else tb+=("$(time_of bash -c "$b_cmd")"); sizes[$b]=$(layers_size "$work/out/$b"); fi
    done
  done
  seconds[$a]=$(median "${ta[@]%% *}")
  seconds[$b]=$(median "${tb[@]%% *}")
  cpu[$a]=$(median "${ta[@]##* }")
  cpu[$b]=$(median "${tb[@]##* }")
}
row() {  # row NAME: seconds, MB/s of the archive, CPU seconds, and the layers stored if any
  local layers=""
  [ "${sizes[$1]:-0}" -gt 0 ] && layers="   layers $(( sizes[$1] / 1000000 )) MB"
  printf '%-44s %7.2f s %8.1f MB/s   cpu %6.2f s%s\n' "$1" "${seconds[$1]}" \
    "$(echo "scale=1; $in_bytes / 1000000 / ${seconds[$1]}" | bc)" "${cpu[$1]:-0}" "$layers"
}

# Import, layers kept as they are: skopeo into an OCI layout that accepts uncompressed layers.
compare ocicas "'$ocicas' docker-archive import '$work/out/ocicas' '$archive'" \
  skopeo "skopeo copy --quiet --dest-oci-accept-uncompressed-layers docker-archive:'$archive' oci:'$work/out/skopeo':x"
floor=$( (fresh; time_of "$ocicas" blob put "$work/out/ocicas" "$archive") )
seconds[floor]=${floor%% *}
echo
echo "import, layers as they are"
row ocicas; row skopeo
printf '%-44s %7.2f s %8.1f MB/s\n' "floor: ocicas blob put of the archive" "${seconds[floor]}" \
  "$(echo "scale=1; $in_bytes / 1000000 / ${seconds[floor]}" | bc)"
import_ratio=$(echo "scale=2; ${seconds[skopeo]} / ${seconds[ocicas]}" | bc)
import_cpu=$(echo "scale=2; ${cpu[skopeo]} / ${cpu[ocicas]}" | bc)

# Import recompressing with gzip, at the lowest level whose output is no larger than skopeo's
# (which compresses with pgzip's default level): 2 on this archive (393 MB; level 1 is 407 MB,
# skopeo 400 MB). The sizes are checked below.
level=${OCICAS_BENCH_GZIP_LEVEL:-2}
compare ocicas "'$ocicas' docker-archive import --compress gzip --level $level '$work/out/ocicas' '$archive'" \
  skopeo "skopeo copy --quiet docker-archive:'$archive' oci:'$work/out/skopeo':x"
echo
echo "import --compress gzip (level $level) vs skopeo copy to oci: (pgzip)"
row ocicas; row skopeo
gzip_ratio=$(echo "scale=2; ${seconds[skopeo]} / ${seconds[ocicas]}" | bc)
gzip_cpu=$(echo "scale=2; ${cpu[skopeo]} / ${cpu[ocicas]}" | bc)
[ "${sizes[ocicas]}" -le "${sizes[skopeo]}" ] || echo "NOTE: ocicas's gzip layers are larger than skopeo's"

# Export from one OCI layout with gzip layers (skopeo's, from the run above), to a docker-archive.
rm -rf "$work/gzip-source"
skopeo copy --quiet docker-archive:"$archive" oci:"$work/gzip-source":x
compare ocicas "'$ocicas' docker-archive export '$work/gzip-source' x --tag bench/archive:1 -o '$work/out/ocicas.tar'" \
  skopeo "skopeo copy --quiet oci:'$work/gzip-source':x docker-archive:'$work/out/skopeo.tar':bench/archive:1"
echo
echo "export from gzip layers to a docker-archive"
row ocicas; row skopeo
export_ratio=$(echo "scale=2; ${seconds[skopeo]} / ${seconds[ocicas]}" | bc)
export_cpu=$(echo "scale=2; ${cpu[skopeo]} / ${cpu[ocicas]}" | bc)

echo
echo "ocicas / skopeo throughput: import ${import_ratio}x, import --compress gzip ${gzip_ratio}x (want >= 1.5), export ${export_ratio}x (want >= 1.5)"
echo "skopeo / ocicas CPU seconds: import ${import_cpu}x, import --compress gzip ${gzip_cpu}x, export ${export_cpu}x"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
