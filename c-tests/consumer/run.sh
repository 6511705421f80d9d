#!/bin/sh
# Builds programs against the *installed* ocicas package, as its users do.
# usage: run.sh MODE BUILD_DIR PREFIX [GO_DIR]
# MODE install: cmake --install BUILD_DIR into PREFIX (the fixture the others need)
#      find_package: build consumer.c and consumer.cpp against PREFIX with CMake and run them
#      pkg_config: build consumer.c against PREFIX with pkg-config and run it
#      relocated: copy PREFIX elsewhere and build against the copy only
#      go: gofmt, go vet and go test -race the core Go binding in GO_DIR against PREFIX
#      go_module: the same for an adapter module in GO_DIR (its own go.mod, requiring the core
#                 binding through a replace; its dependencies come from the module proxy or cache)
# Environment (from ctest): CMAKE, CC, OCICAS_VERSION; TMPDIR for the consumer's layout.
set -eu
mode="$1"; build="$2"; prefix="$3"
cmake="${CMAKE:-cmake}"; cc="${CC:-cc}"; version="${OCICAS_VERSION:-0.1}"
here=$(cd "$(dirname "$0")" && pwd)
work="$build/consumer-$mode"
rm -rf "$work" && mkdir -p "$work/tmp"
export TMPDIR="$work/tmp"

build_with_cmake() {  # $1: the prefix to find the package in
  "$cmake" -S "$here/cmake" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$1" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release -DOCICAS_EXPECTED_VERSION="$version"
  "$cmake" --build "$work/cmake-build"
  "$work/cmake-build/consumer_shared"
  "$work/cmake-build/consumer_static"
  "$work/cmake-build/consumer_cpp" "$TMPDIR/cpp-layout"
}

build_with_pkg_config() {  # $1: the prefix whose lib/pkgconfig to use
  PKG_CONFIG_PATH="$1/lib/pkgconfig"; export PKG_CONFIG_PATH
  [ "$(pkg-config --modversion ocicas)" = "$version" ] ||
    { echo "pkg-config reports ocicas $(pkg-config --modversion ocicas), expected $version"; exit 1; }
  libdir=$(pkg-config --variable=libdir ocicas)
  # shellcheck disable=SC2046 # pkg-config's output is meant to be split
  "$cc" -std=c11 -Wall -Wextra -Werror "$here/consumer.c" $(pkg-config --cflags --libs ocicas) \
    -Wl,-rpath,"$libdir" -o "$work/consumer_pkg_config"
  "$work/consumer_pkg_config"
}

# The library a program loads must come from under $2.
check_loads_from() {  # $1: program, $2: directory
  loaded=$(ldd "$1" | awk '/libocicas\.so/ {print $3}')
  case "$loaded" in
  "$2"/*) echo "$1 loads $loaded" ;;
  *) echo "$1 loads libocicas from '$loaded', not from $2"; exit 1 ;;
  esac
}

case "$mode" in
install)
  rm -rf "$prefix"
  "$cmake" --install "$build" --prefix "$prefix"
  lib="$prefix/lib"
  for file in "libocicas.so.$version" libocicas.a; do
    [ -f "$lib/$file" ] && [ ! -L "$lib/$file" ] || { echo "missing $lib/$file"; exit 1; }
  done
  for link in libocicas.so.0 libocicas.so; do
    [ -L "$lib/$link" ] || { echo "$lib/$link is not a symlink"; exit 1; }
    [ "$(readlink -f "$lib/$link")" = "$(readlink -f "$lib/libocicas.so.$version")" ] ||
      { echo "$lib/$link does not lead to libocicas.so.$version"; exit 1; }
  done
  soname=$(readelf -d "$lib/libocicas.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
  [ "$soname" = "libocicas.so.0" ] || { echo "unexpected SONAME: '$soname'"; exit 1; }
  for file in include/ocicas.h lib/cmake/ocicas/ocicasConfig.cmake lib/cmake/ocicas/ocicasConfigVersion.cmake \
              lib/pkgconfig/ocicas.pc; do
    [ -f "$prefix/$file" ] || { echo "missing $prefix/$file"; exit 1; }
  done
  ;;
find_package)
  build_with_cmake "$prefix"
  check_loads_from "$work/cmake-build/consumer_shared" "$prefix/lib"
  ;;
pkg_config)
  build_with_pkg_config "$prefix"
  check_loads_from "$work/consumer_pkg_config" "$prefix/lib"
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
  check_loads_from "$work/consumer_pkg_config" "$moved/lib"
  ;;
go | go_module)
  godir="$4"
  export PKG_CONFIG_PATH="$prefix/lib/pkgconfig" LD_LIBRARY_PATH="$prefix/lib" CGO_ENABLED=1
  # Go's build cache keys a cgo package on CGO_LDFLAGS but not on PKG_CONFIG_PATH: without the
  # prefix in CGO_LDFLAGS it would reuse the link flags pkg-config gave it for another prefix
  # (another build directory's, maybe gone). The shared cache stays warm for everything else.
  export CGO_LDFLAGS="-L$prefix/lib${CGO_LDFLAGS:+ $CGO_LDFLAGS}"
  # The go (and gofmt) that CMake found, first on PATH.
  PATH="$(dirname "${GO:-$(command -v go)}"):$PATH"; export PATH
  cd "$godir"
  test -z "$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }
  go vet ./...
  go test -race -count=1 ./...
  ;;
*)
  echo "unknown mode $mode"; exit 2
  ;;
esac
echo "consumer $mode: ok"
