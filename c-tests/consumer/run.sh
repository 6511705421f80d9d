#!/bin/sh
# Builds programs against the *installed* ocicas package, as its users do.
# usage: run.sh MODE BUILD_DIR PREFIX [GO_DIR]
# MODE install: cmake --install BUILD_DIR into PREFIX (the fixture the others need)
#      find_package: build consumer.c and consumer.cpp against PREFIX with CMake and run them
#      pkg_config: build consumer.c against PREFIX with pkg-config and run it
#      relocated: copy PREFIX elsewhere and build against the copy only (the image consumers
#      too when UMOCI is set)
#      image: build image_consumer.c and .cpp (image-cmake/) against PREFIX and run them on an image
#      umoci builds (two layers, Env and Cmd), against `umoci unpack`'s tree
#      go_module: gofmt check, go vet and go test -race in the Go module at GO_DIR (an adapter
#      module beside the core binding, which it replaces with ../)
#      go: the same for the core binding at GO_DIR, then the README's steps for a module outside
#      this repository
# Environment (from ctest): CMAKE, CC, OCICAS_VERSION; TMPDIR for the consumer's layout.
set -eu
mode="$1"; build="$2"; prefix="$3"
cmake="${CMAKE:-cmake}"; cc="${CC:-cc}"; version="${OCICAS_VERSION:-0.1}"
here=$(cd "$(dirname "$0")" && pwd)
# Per Go module too: ctest may run two go_module tests at once, each clearing its own dir.
work="$build/consumer-$mode${4:+-$(basename "$4")}"
rm -rf "$work" && mkdir -p "$work/tmp"
export TMPDIR="$work/tmp"

cmake_build() {  # $1: the project in $here, built in $work/$1-build; $2: the prefix to find the package in
  "$cmake" -S "$here/$1" -B "$work/$1-build" -DCMAKE_PREFIX_PATH="$2" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release -DOCICAS_EXPECTED_VERSION="$version"
  "$cmake" --build "$work/$1-build"
}

build_with_cmake() {  # $1: the prefix to find the package in
  cmake_build cmake "$1"
  "$work/cmake-build/consumer_shared"
  "$work/cmake-build/consumer_static"
  "$work/cmake-build/consumer_cpp" "$TMPDIR/cpp-layout"
}

# Builds image_consumer.c and .cpp against $1 and runs them on an image umoci builds (two
# layers, Env and Cmd), checking the C one's tars against `umoci unpack`'s tree.
run_image_consumers() {  # $1: the prefix to find the package in
  cmake_build image-cmake "$1"
  umoci="${UMOCI:-umoci}"
  images="$work/umoci"
  rm -rf "$images" "$work/scratch-c" "$work/scratch-cpp"
  mkdir -p "$images/layer1/etc" "$images/layer1/usr/bin" "$images/layer2"
  echo hello > "$images/layer1/etc/greeting"
  ln -s greeting "$images/layer1/etc/link"
  head -c 300000 /dev/urandom > "$images/layer1/usr/bin/tool"
  echo second > "$images/layer2/second.txt"
  "$umoci" init --layout "$images/layout"
  "$umoci" new --image "$images/layout:app"
  "$umoci" config --image "$images/layout:app" --config.env FOO=bar --config.cmd /bin/sh
  "$umoci" insert --rootless --image "$images/layout:app" "$images/layer1" /
  "$umoci" insert --rootless --image "$images/layout:app" "$images/layer2" /opt
  "$umoci" unpack --rootless --image "$images/layout:app" "$images/bundle"
  # umoci names the platform as Go does.
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
  "$work/image-cmake-build/image_consumer" "$images/layout" app linux "$arch" "$images/bundle/rootfs" "$work/scratch-c"
  "$work/image-cmake-build/image_consumer_cpp" "$images/layout" app linux "$arch" "$work/scratch-cpp"
  check_loads_from "$work/image-cmake-build/image_consumer" "$1/lib"
}

# Prints the README's ```sh block that contains $1.
readme_block() {
  awk -v want="$1" '/^```sh$/ {on=1; block=""; next}
    /^```$/ {if (on && index(block, want)) {printf "%s", block; exit} on=0; next}
    on {block = block $0 "\n"}' "$here/../../README.md"
}

build_with_pkg_config() {  # $1: the prefix; runs the README's pkg-config lines against it
  app="$work/pkg-config-app"
  rm -rf "$app" && mkdir -p "$app/bin"
  cp "$here/consumer.c" "$app/app.c"
  # The README's `cc`, with the warnings the other consumers are built with.
  printf '#!/bin/sh\nexec "%s" -std=c11 -Wall -Wextra -Werror "$@"\n' "$cc" > "$app/bin/cc"
  chmod +x "$app/bin/cc"
  readme_block 'pkg-config --cflags --libs ocicas' | sed "s#/opt/ocicas#$1#g" > "$app/steps.sh"
  [ -s "$app/steps.sh" ] || { echo "README.md has no pkg-config example"; exit 1; }
  cat "$app/steps.sh"
  (cd "$app" && PATH="$app/bin:$PATH" sh -eu steps.sh)
  [ "$(PKG_CONFIG_PATH="$1/lib/pkgconfig" pkg-config --modversion ocicas)" = "$version" ] ||
    { echo "pkg-config reports another version than $version"; exit 1; }
}

# The library a program loads must come from under $2.
check_loads_from() {  # $1: program, $2: directory
  loaded=$(ldd "$1" | awk '/libocicas\.so/ {print $3}')
  case "$loaded" in
  "$2"/*) echo "$1 loads $loaded" ;;
  *) echo "$1 loads libocicas from '$loaded', not from $2"; exit 1 ;;
  esac
}

check_no_debug_info() {  # $1: an installed ELF file or archive (.debug_gdb_scripts is not debug info)
  if readelf -SW "$1" | grep -Eq '\.debug_(info|line|abbrev|str|ranges|rnglists|loclists|aranges) '; then
    echo "$1 has debug sections"; exit 1
  fi
}

test_go_module() {  # gofmt, vet and the race-enabled tests of the module at $godir
  export PKG_CONFIG_PATH="$prefix/lib/pkgconfig" LD_LIBRARY_PATH="$prefix/lib" CGO_ENABLED=1
  # Go's build cache keys a cgo package on CGO_LDFLAGS but not on PKG_CONFIG_PATH: without the
  # prefix in CGO_LDFLAGS it would reuse the link flags pkg-config gave it for another prefix
  # (another build directory's, maybe gone). The shared cache stays warm for everything else.
  export CGO_LDFLAGS="-L$prefix/lib${CGO_LDFLAGS:+ $CGO_LDFLAGS}"
  # The go (and gofmt) that CMake found, first on PATH.
  PATH="$(dirname "${GO:-$(command -v go)}"):$PATH"; export PATH
  (
    cd "$godir"
    test -z "$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }
    go vet ./...
    go test -race -count=1 ./...
  )
}

case "$mode" in
install)
  # The consumers are built against a `--strip` install, as a distribution would ship it.
  rm -rf "$prefix"
  "$cmake" --install "$build" --prefix "$prefix" --strip
  lib="$prefix/lib"
  for file in "libocicas.so.$version" libocicas.a bin/ocicas; do
    case "$file" in bin/*) file="$prefix/$file" ;; *) file="$lib/$file" ;; esac
    [ -f "$file" ] && [ ! -L "$file" ] || { echo "missing $file"; exit 1; }
  done
  # While the version is 0.x the SONAME carries the minor.
  case "$version" in
  0.*) soname="libocicas.so.$(echo "$version" | cut -d. -f1-2)" ;;
  *) soname="libocicas.so.$(echo "$version" | cut -d. -f1)" ;;
  esac
  for link in "$soname" libocicas.so; do
    [ -L "$lib/$link" ] || { echo "$lib/$link is not a symlink"; exit 1; }
    [ "$(readlink -f "$lib/$link")" = "$(readlink -f "$lib/libocicas.so.$version")" ] ||
      { echo "$lib/$link does not lead to libocicas.so.$version"; exit 1; }
  done
  found=$(readelf -d "$lib/libocicas.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
  [ "$found" = "$soname" ] || { echo "unexpected SONAME: '$found', expected $soname"; exit 1; }
  for file in include/ocicas.h lib/cmake/ocicas/ocicasConfig.cmake lib/cmake/ocicas/ocicasConfigVersion.cmake \
              lib/pkgconfig/ocicas.pc; do
    [ -f "$prefix/$file" ] || { echo "missing $prefix/$file"; exit 1; }
  done
  for file in "$lib/libocicas.so.$version" "$prefix/bin/ocicas" "$lib/libocicas.a"; do
    check_no_debug_info "$file"
  done
  [ ! -e "$lib/.debug" ] && [ ! -e "$prefix/bin/.debug" ] || { echo "--strip left .debug files"; exit 1; }
  # A plain install carries no debug info either: that of the library and the CLI is split into
  # .debug/ beside them (into a second prefix; the tests use the first).
  plain="$build/test-prefix-plain"
  rm -rf "$plain"
  "$cmake" --install "$build" --prefix "$plain"
  for file in "$plain/lib/libocicas.so.$version" "$plain/bin/ocicas"; do
    check_no_debug_info "$file"
    debug="$(dirname "$file")/.debug/$(basename "$file").debug"
    readelf -S "$debug" | grep -q '\.debug_line' || { echo "$debug has no debug info"; exit 1; }
    [ "$(readelf --string-dump=.gnu_debuglink "$file" | awk '/\[/ {print $3; exit}')" = "$(basename "$debug")" ] ||
      { echo "$file does not link to $debug"; exit 1; }
  done
  check_no_debug_info "$plain/lib/libocicas.a"
  du -b "$lib/libocicas.so.$version" "$lib/libocicas.a" "$prefix/bin/ocicas" \
    "$plain/lib/libocicas.so.$version" "$plain/bin/ocicas"
  rm -rf "$plain"
  ;;
find_package)
  build_with_cmake "$prefix"
  check_loads_from "$work/cmake-build/consumer_shared" "$prefix/lib"
  ;;
pkg_config)
  build_with_pkg_config "$prefix"
  check_loads_from "$work/pkg-config-app/app" "$prefix/lib"
  ;;
relocated)
  # A moved tree must not name the place it was installed to; then build against the copy alone.
  moved="$work/elsewhere/ocicas"
  mkdir -p "$work/elsewhere"
  cp -a "$prefix" "$moved"
  if grep -rlF "$prefix" "$moved"; then
    echo "the files above name the install prefix $prefix: the package is not relocatable"; exit 1
  fi
  build_with_cmake "$moved"
  check_loads_from "$work/cmake-build/consumer_shared" "$moved/lib"
  build_with_pkg_config "$moved"
  check_loads_from "$work/pkg-config-app/app" "$moved/lib"
  # With umoci (ctest sets UMOCI when it finds it), the image consumers against the copy too.
  if [ -n "${UMOCI:-}" ]; then run_image_consumers "$moved"; fi
  ;;
image)
  run_image_consumers "$prefix"
  ;;
go | go_module)
  godir="$4"
  test_go_module
  [ "$mode" = go ] || { echo "consumer $mode: ok"; exit 0; }
  # The README's steps for a module outside this repository, with its example as main.go.
  app="$work/go-app"
  mkdir -p "$app" && cp "$godir/examples/readme/main.go" "$app/"
  readme_block 'go mod edit -require' |
    sed "s#/opt/ocicas#$prefix#g; s#/path/to/ocicas#$(cd "$godir/../.." && pwd)#g" > "$work/go-steps.sh"
  [ -s "$work/go-steps.sh" ] || { echo "README.md has no Go module example"; exit 1; }
  cat "$work/go-steps.sh"
  (cd "$app" && env -u LD_LIBRARY_PATH -u CGO_LDFLAGS sh -eu "$work/go-steps.sh")
  check_loads_from "$app/app" "$prefix/lib"
  ;;
*)
  echo "unknown mode $mode"; exit 2
  ;;
esac
echo "consumer $mode: ok"
