#!/bin/sh
# Small checks run by ctest; the first argument says which. Exit 77 is ctest's "skipped".
set -eu
case "$1" in
exports)
  # Only ocicas_-prefixed symbols may be exported, and the entry points must be there.
  lib="$2"
  symbols=$(nm -D --defined-only "$lib" | awk 'NF >= 3 {print $3}')
  echo "$symbols" | grep -qx ocicas_engine_open || { echo "ocicas_engine_open is not exported by $lib"; exit 1; }
  others=$(echo "$symbols" | grep -v '^ocicas_' || true)
  [ -z "$others" ] || { echo "exports without the ocicas_ prefix:"; echo "$others"; exit 1; }
  echo "$(echo "$symbols" | wc -l) exported symbols, all ocicas_-prefixed"
  ;;
static)
  # The static library defines no global C symbol of the vendored libdeflate without our
  # prefix: a program linking the real libdeflate beside it would get ours (build.rs).
  lib="$2"
  unprefixed=$(nm -g --defined-only "$lib" 2>/dev/null | awk 'NF >= 3 {print $3}' | grep '^libdeflate_' | sort -u || true)
  [ -z "$unprefixed" ] || { echo "libdeflate symbols without the ocicas_ prefix in $lib:"; echo "$unprefixed"; exit 1; }
  nm -g --defined-only "$lib" 2>/dev/null | grep -q ' T ocicas_libdeflate_alloc_compressor$' ||
    { echo "ocicas_libdeflate_alloc_compressor is not defined in $lib"; exit 1; }
  echo "libdeflate's symbols in $lib all carry the ocicas_ prefix"
  ;;
header)
  # The header the build generated must be the committed one (HEAD's copy).
  src=$(cd "$2" && pwd -P)
  top=$(git -C "$src" rev-parse --show-toplevel 2>/dev/null || true)
  if [ -z "$top" ] || [ "$(cd "$top" && pwd -P)" != "$src" ]; then
    echo "SKIPPED: $src is not a git checkout, so there is no committed include/ocicas.h to compare with"
    exit 77
  fi
  git -C "$src" diff --exit-code HEAD -- include/ocicas.h ||
    { echo "include/ocicas.h differs from the committed header: rebuild and commit it"; exit 1; }
  echo "include/ocicas.h matches the committed header"
  ;;
readme)
  # The README's C example compiles against the build tree and runs.
  src="$2"; cc="$3"; libdir="$4"; work="$5"
  rm -rf "$work" && mkdir -p "$work"
  awk '/^```c$/{on=1; next} /^```$/{if(on){exit}} on' "$src/README.md" > "$work/example.c"
  [ -s "$work/example.c" ] || { echo "README.md has no C example"; exit 1; }
  "$cc" -std=c11 -Wall -Wextra -Werror -I"$src/include" "$work/example.c" -L"$libdir" -locicas \
    -Wl,-rpath,"$libdir" -o "$work/example"
  (cd "$work" && ./example)
  # The C++ example is the consumer program the installed-package tests build and run.
  # So is the CMake example the consumer project that builds them.
  for block in cpp:c-tests/consumer/consumer.cpp cmake:c-tests/consumer/cmake/CMakeLists.txt; do
    lang=${block%%:*}; file=${block#*:}
    awk -v fence="\`\`\`$lang" '$0 == fence {on=1; next} /^```$/{if(on){exit}} on' "$src/README.md" > "$work/example.$lang"
    cmp -s "$work/example.$lang" "$src/$file" ||
      { echo "README.md's $lang example differs from $file:"; diff "$work/example.$lang" "$src/$file"; exit 1; }
  done
  ;;
*)
  echo "unknown check $1"; exit 2
  ;;
esac
