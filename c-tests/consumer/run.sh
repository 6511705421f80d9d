#!/bin/sh
# Builds programs against the *installed* ocicas package, as its users do.
# usage: run.sh MODE BUILD_DIR PREFIX [GO_DIR]
set -eu
mode="$1"; build="$2"; prefix="$3"
here=$(cd "$(dirname "$0")" && pwd)
work="$build/consumer-$mode"
rm -rf "$work" && mkdir -p "$work"

build_with_cmake() {  # $1: the install prefix to find the package in
  cmake -S "$here/cmake" -B "$work/build" -DCMAKE_PREFIX_PATH="$1" >/dev/null
  cmake --build "$work/build" >/dev/null
  (cd "$work" && ./build/consumer && ./build/consumer_static)
}

case "$mode" in
install)
  rm -rf "$prefix"
  cmake --install "$build" --prefix "$prefix"
  soname=$(readelf -d "$prefix/lib/libocicas.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
  [ "$soname" = "libocicas.so.0" ] || { echo "unexpected SONAME: $soname"; exit 1; }
  ;;
find_package)
  build_with_cmake "$prefix"
  ;;
pkg_config)
  export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
  libdir=$(pkg-config --variable=libdir ocicas)
  cc -std=c11 -Wall -Wextra -Werror "$here/consumer.c" $(pkg-config --cflags --libs ocicas) \
    -Wl,-rpath,"$libdir" -o "$work/consumer"
  (cd "$work" && ./consumer)
  ;;
relocated)
  moved="$work/moved-prefix"
  cp -a "$prefix" "$moved"
  build_with_cmake "$moved"
  ;;
go)
  godir="$4"
  export PKG_CONFIG_PATH="$prefix/lib/pkgconfig" LD_LIBRARY_PATH="$prefix/lib" CGO_ENABLED=1
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
