#!/usr/bin/env bash
# C ABI tests: the header is what cbindgen makes; the libraries export exactly the header's
# smolvlm_* functions; a drop-in C program linked against the shared and the static library
# prints what the Rust CLI prints; a program written for the original engine (its common_kernels.h
# controls and ctx->perf_* fields, through include/smol-vision) against the CLI; the extended API tests (tests/c/test_api.c, including JSON
# chats against the CLI's --messages); a 3-turn conversation on one context whose prompt cache
# must give each fresh context's answer (tests/c/test_chat.c); 4 threads × 20 load → generate → free cycles with a bound
# on resident-memory growth and two concurrent contexts (tests/c/test_cycles.c); a C++ TU; an
# install with pkg-config; 100 load → generate → free cycles (tests/c/dropin_repeat.c, which checks
# its own output) natively with a resident-memory bound and under valgrind; the C tests under
# AddressSanitizer + UBSan. Needs `cargo build --release` first.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/c-tests
mkdir -p "$OUT"
MODEL=tests/fixtures/models/tiny-256m
IMAGE=tests/fixtures/images/square.png
CFLAGS=(-std=c99 -Wall -Wextra -Werror -pedantic -Iinclude)

# 1. The committed header is exactly what the pinned cbindgen generates.
CBINDGEN_VERSION=0.29.2
CBINDGEN="${CARGO_HOME:-$HOME/.cargo}/bin/cbindgen"
if ! "$CBINDGEN" --version 2>/dev/null | grep -q "$CBINDGEN_VERSION"; then
  cargo install cbindgen --version "$CBINDGEN_VERSION" --locked -q
fi
"$CBINDGEN" --quiet --config cbindgen.toml --crate smolvlm --output "$OUT/smolvlm.h" .
if ! diff -u include/smolvlm.h "$OUT/smolvlm.h"; then
  echo "c-tests: include/smolvlm.h is stale; regenerate it with cbindgen $CBINDGEN_VERSION" >&2
  exit 1
fi

# 2. Version macros agree with Cargo.toml.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
IFS=. read -r maj min pat <<<"$version"
grep -q "#define SMOLVLM_VERSION_MAJOR $maj$" include/smolvlm.h
grep -q "#define SMOLVLM_VERSION_MINOR $min$" include/smolvlm.h
grep -q "#define SMOLVLM_VERSION_PATCH $pat$" include/smolvlm.h
grep -q "#define SMOLVLM_VERSION_STRING \"$version\"" include/smolvlm.h

# 3. Build the C programs against the shared and the static library.
static_libs=$(cargo rustc -q --release --lib --crate-type staticlib -- --print native-static-libs 2>&1 \
  | sed -n 's/.*native-static-libs: //p' | tail -1)
cc "${CFLAGS[@]}" examples/c/dropin_cli.c -Ltarget/release -lsmolvlm -Wl,-rpath,"$PWD/target/release" -o "$OUT/dropin_shared"
cc "${CFLAGS[@]}" examples/c/dropin_cli.c target/release/libsmolvlm.a $static_libs -o "$OUT/dropin_static"
cc "${CFLAGS[@]}" -D_POSIX_C_SOURCE=200809L tests/c/test_api.c -Ltarget/release -lsmolvlm -lpthread -lm \
  -Wl,-rpath,"$PWD/target/release" -o "$OUT/test_api"
cc "${CFLAGS[@]}" -D_POSIX_C_SOURCE=200809L tests/c/test_chat.c -Ltarget/release -lsmolvlm -lpthread \
  -Wl,-rpath,"$PWD/target/release" -o "$OUT/test_chat"
cc "${CFLAGS[@]}" -D_POSIX_C_SOURCE=200809L tests/c/test_cycles.c -Ltarget/release -lsmolvlm -lpthread \
  -Wl,-rpath,"$PWD/target/release" -o "$OUT/test_cycles"
cc "${CFLAGS[@]}" tests/c/dropin_repeat.c -Ltarget/release -lsmolvlm -Wl,-rpath,"$PWD/target/release" -o "$OUT/dropin_repeat"
g++ -std=c++17 -Wall -Wextra -Werror -Iinclude tests/c/header_cxx.cpp -Ltarget/release -lsmolvlm \
  -Wl,-rpath,"$PWD/target/release" -o "$OUT/header_cxx"
"$OUT/header_cxx" >/dev/null

# 3b. The library exports exactly the smolvlm_* functions the header declares: the shared
#     library's dynamic symbols and the static library's defined text symbols, against the
#     `smolvlm_name(` declarations of the preprocessed header (comments, which name functions
#     in examples, are gone; function-pointer typedefs read `(*smolvlm_name)(` and do not match).
header_decls() { # the function names declared by include/smolvlm.h itself (not the system headers)
  cc -E -Iinclude include/smolvlm.h | awk '/^# [0-9]+ "/ { mine = ($3 ~ /smolvlm\.h"$/); next } mine' \
    | grep -oE '\b[A-Za-z_][A-Za-z0-9_]*[[:space:]]*\(\*?' | grep -v '\*$' | sed 's/[[:space:]]*($//' | sort -u
}
header_decls | grep '^smolvlm_' > "$OUT/header_functions.txt" || true
nm -D --defined-only target/release/libsmolvlm.so | awk '$3 ~ /^smolvlm_/ {sub(/@.*/, "", $3); print $3}' \
  | sort -u > "$OUT/exports.txt"
nm --defined-only target/release/libsmolvlm.a 2>/dev/null | awk 'NF == 3 && $2 == "T" && $3 ~ /^smolvlm_/ {print $3}' \
  | sort -u > "$OUT/exports_static.txt"
symbols_ok=1
for lib in libsmolvlm.so:exports.txt libsmolvlm.a:exports_static.txt; do
  name=${lib%%:*} file="$OUT/${lib#*:}"
  extra=$(comm -13 "$OUT/header_functions.txt" "$file" | tr '\n' ' ')
  missing=$(comm -23 "$OUT/header_functions.txt" "$file" | tr '\n' ' ')
  if [ -n "$extra" ]; then
    echo "c-tests: $name defines smolvlm_* symbols that include/smolvlm.h does not declare: $extra" >&2
    symbols_ok=0
  fi
  if [ -n "$missing" ]; then
    echo "c-tests: include/smolvlm.h declares functions that $name does not define: $missing" >&2
    symbols_ok=0
  fi
done
[ "$symbols_ok" = 1 ] || exit 1
others=$(header_decls | grep -v '^smolvlm_' | tr '\n' ' ' || true)
if [ -n "$others" ]; then
  echo "c-tests: include/smolvlm.h declares functions outside the smolvlm_ namespace: $others" >&2
  exit 1
fi

# 4. The drop-in program prints exactly what the Rust CLI prints, for an image and text-only.
check_same() { # label, cli args..., -- , c args...
  local label=$1; shift
  local cli=() c=()
  while [ "$1" != "--" ]; do cli+=("$1"); shift; done; shift
  c=("$@")
  target/release/smolvlm --silent "${cli[@]}" > "$OUT/$label.rust.txt"
  for kind in shared static; do
    "$OUT/dropin_$kind" "${c[@]}" > "$OUT/$label.$kind.txt"
    if ! cmp -s "$OUT/$label.rust.txt" "$OUT/$label.$kind.txt"; then
      echo "c-tests: $label: the $kind drop-in output differs from the Rust CLI" >&2
      diff "$OUT/$label.rust.txt" "$OUT/$label.$kind.txt" >&2 || true
      exit 1
    fi
  done
}
check_same image -d $MODEL -i $IMAGE -p "What is in the image?" --max-tokens 16 -- $MODEL $IMAGE "What is in the image?" 16
check_same text -d $MODEL -p "Tell me a story." --max-tokens 16 --system-prompt "Be brief." -- $MODEL - "Tell me a story." 16 "Be brief."

# 4b. A program written for the original engine (its four functions, common_kernels.h's thread
#     and verbosity controls, the ctx->perf_* fields) builds with the migration guide's command
#     line, shared and static, and as C++; its text equals the CLI's, its "Inference:" line holds
#     the CLI's token count and real timings, and -t reaches the library.
SV=examples/c/smol_vision_cli.c
cc -Iinclude/smol-vision -Iinclude $SV -Ltarget/release -lsmolvlm -o "$OUT/sv_shared"
cc -Iinclude/smol-vision -Iinclude $SV -Ltarget/release -Wl,-Bstatic -lsmolvlm -Wl,-Bdynamic $static_libs \
  -o "$OUT/sv_static"
cc -std=c99 -Wall -Wextra -Werror -pedantic -Iinclude/smol-vision -Iinclude -fsyntax-only $SV
g++ -std=c++17 -Wall -Wextra -Werror -x c++ -Iinclude/smol-vision -Iinclude $SV -Ltarget/release -lsmolvlm \
  -o "$OUT/sv_cxx"
if ldd "$OUT/sv_static" | grep -q libsmolvlm; then
  echo "c-tests: sv_static is linked against the shared library" >&2; exit 1
fi
sv_args=(-d $MODEL -i $IMAGE -p "What is in the image?" --max-tokens 9)
target/release/smolvlm --silent "${sv_args[@]}" > "$OUT/sv.rust.txt"
cli_tokens=$(target/release/smolvlm --json "${sv_args[@]}" 2>/dev/null \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["decode_tokens"])')
for kind in shared static cxx; do
  for t in 1 2; do
    LD_LIBRARY_PATH="$PWD/target/release" "$OUT/sv_$kind" "${sv_args[@]}" -t $t --debug \
      > "$OUT/sv.$kind.$t.txt" 2> "$OUT/sv.$kind.$t.err"
    if ! cmp -s "$OUT/sv.rust.txt" "$OUT/sv.$kind.$t.txt"; then
      echo "c-tests: smol_vision_cli ($kind, -t $t) printed other text than the CLI" >&2
      diff "$OUT/sv.rust.txt" "$OUT/sv.$kind.$t.txt" >&2 || true; exit 1
    fi
    # qwen_verbose = 2 turns on the library's debug lines, which name the threads used.
    grep -q " $t threads," "$OUT/sv.$kind.$t.err" || {
      echo "c-tests: smol_vision_cli ($kind): -t $t did not reach the library:" >&2
      cat "$OUT/sv.$kind.$t.err" >&2; exit 1; }
    python3 - "$OUT/sv.$kind.$t.err" "$cli_tokens" <<'PY'
import re, sys
err, want = open(sys.argv[1]).read(), int(sys.argv[2])
m = re.search(r"^Inference: (\d+) ms, (\d+) tokens \(([\d.]+) tok/s, encoding: (\d+)ms, decoding: (\d+)ms\)$",
              err, re.M)
if not m:
    sys.exit(f"c-tests: no Inference line from the perf_* fields in {sys.argv[1]}:\n{err}")
total, tokens, tps, enc, dec = int(m[1]), int(m[2]), float(m[3]), int(m[4]), int(m[5])
ok = tokens == want and total > 0 and dec > 0 and enc + dec <= total + 2 and tps > 0
if not ok:
    sys.exit(f"c-tests: implausible perf_* fields (CLI generated {want} tokens): {m[0]}")
PY
  done
done
# Silent (qwen_verbose = 0): the text alone, nothing on stderr.
LD_LIBRARY_PATH="$PWD/target/release" "$OUT/sv_shared" "${sv_args[@]}" --silent > "$OUT/sv.silent.txt" 2> "$OUT/sv.silent.err"
cmp "$OUT/sv.rust.txt" "$OUT/sv.silent.txt"
if [ -s "$OUT/sv.silent.err" ]; then
  echo "c-tests: smol_vision_cli --silent wrote to stderr:" >&2; cat "$OUT/sv.silent.err" >&2; exit 1
fi

# 5. The extended API tests (a corrupt copy of the model for the error path; the CLI's output for
#    two multi-turn JSON chats, which smolvlm_ctx_generate_chat must reproduce).
rm -rf "$OUT/corrupt" && cp -r $MODEL "$OUT/corrupt"
head -c 1000 $MODEL/model.safetensors > "$OUT/corrupt/model.safetensors"
PPM=tests/fixtures/images/square.ppm
CHATS=tests/c/chats
target/release/smolvlm --silent -d $MODEL -i $PPM --messages $CHATS/image_multiturn.json --max-tokens 12 \
  > "$OUT/image_multiturn.cli.txt"
target/release/smolvlm --silent -d $MODEL --messages $CHATS/text_multiturn.json --max-tokens 12 \
  > "$OUT/text_multiturn.cli.txt"
"$OUT/test_api" $MODEL $PPM "$OUT/corrupt" $CHATS/image_multiturn.json "$OUT/image_multiturn.cli.txt" \
  $CHATS/text_multiturn.json "$OUT/text_multiturn.cli.txt"

# 5a. A 3-turn conversation on one context (prompt cache) equals fresh contexts turn by turn.
"$OUT/test_chat" $MODEL $PPM

# 5b. 4 threads × 20 load → generate → free cycles (resident memory must not grow), and two
#     contexts on one model at once with n_threads 1 and 2 (same text as serial runs).
"$OUT/test_cycles" $MODEL $IMAGE

# 6. An install with its pkg-config file gives a working build line.
rm -rf "$OUT/prefix"
bash scripts/install.sh "$OUT/prefix" >/dev/null
export PKG_CONFIG_PATH="$PWD/$OUT/prefix/lib/pkgconfig"
cc "${CFLAGS[@]}" examples/c/dropin_cli.c $(pkg-config --cflags --libs smolvlm) \
  -Wl,-rpath,"$PWD/$OUT/prefix/lib" -o "$OUT/dropin_pkgconfig"
"$OUT/dropin_pkgconfig" $MODEL - "Tell me a story." 16 "Be brief." > "$OUT/text.pkgconfig.txt"
cmp "$OUT/text.rust.txt" "$OUT/text.pkgconfig.txt"
# The installed library is versioned: soname libsmolvlm.so.0, which is what programs record.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
readelf -d "$OUT/prefix/lib/libsmolvlm.so.$version" | grep -q 'SONAME.*\[libsmolvlm\.so\.0\]'
[ "$(readlink "$OUT/prefix/lib/libsmolvlm.so")" = "libsmolvlm.so.$version" ]
[ "$(readlink "$OUT/prefix/lib/libsmolvlm.so.0")" = "libsmolvlm.so.$version" ]
readelf -d "$OUT/dropin_pkgconfig" | grep -q 'NEEDED.*\[libsmolvlm\.so\.0\]'
cc -I"$(pkg-config --variable=includedir smolvlm)/smol-vision" $SV $(pkg-config --cflags --libs smolvlm) \
  -Wl,-rpath,"$PWD/$OUT/prefix/lib" -o "$OUT/sv_pkgconfig"
"$OUT/sv_pkgconfig" "${sv_args[@]}" --silent | cmp - "$OUT/sv.rust.txt"
pkg_static=$(pkg-config --static --libs-only-l smolvlm | sed 's/-lsmolvlm//')
cc "${CFLAGS[@]}" examples/c/dropin_cli.c $(pkg-config --cflags smolvlm) "$OUT/prefix/lib/libsmolvlm.a" $pkg_static \
  -o "$OUT/dropin_pkgconfig_static"
"$OUT/dropin_pkgconfig_static" $MODEL - "Tell me a story." 16 "Be brief." | cmp - "$OUT/text.rust.txt"

# 7. valgrind on dropin_repeat (100 × load → generate → free; it checks its own output: text
#    returned, pieces = text, same text each run): no errors, nothing definitely lost. Natively,
#    the same 100 cycles must not keep growing the allocator's bytes in use or resident memory
#    after run 20 (the rule is in tests/c/dropin_repeat.c); and the same check must fail when
#    16 KiB are kept each cycle (glibc only: elsewhere the in-use count is unknown).
"$OUT/dropin_repeat" $MODEL $IMAGE 100
if ldd --version 2>&1 | grep -qi glibc; then
  if "$OUT/dropin_repeat" $MODEL $IMAGE 100 --leak-kib 16 > "$OUT/leak.out" 2>&1 \
    || ! grep -q "bytes in use grew" "$OUT/leak.out"; then
    cat "$OUT/leak.out" >&2
    echo "c-tests: dropin_repeat's growth check did not catch a 16 KiB-per-cycle leak" >&2
    exit 1
  fi
  echo "dropin_repeat: a 16 KiB-per-cycle leak is caught ($(grep -o 'grew.*' "$OUT/leak.out"))"
else
  echo "dropin_repeat: leak-injection check NOT RUN (not glibc: no allocator in-use count)"
fi
if command -v valgrind >/dev/null 2>&1; then
  rc=0
  valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
    "$OUT/dropin_repeat" $MODEL $IMAGE 100 --no-rss > "$OUT/valgrind.out" 2> "$OUT/valgrind.log" || rc=$?
  cat "$OUT/valgrind.out"
  if [ "$rc" -ne 0 ]; then
    tail -40 "$OUT/valgrind.log" >&2
    if [ "$rc" -eq 9 ]; then echo "c-tests: valgrind found errors" >&2
    else echo "c-tests: dropin_repeat failed (exit $rc) under valgrind" >&2; fi
    exit 1
  fi
  grep -E "ERROR SUMMARY|definitely lost|in use at exit" "$OUT/valgrind.log" | sed 's/^==[0-9]*== /valgrind: /'
else
  echo "c-tests: valgrind is not installed" >&2
  exit 1
fi

# 8. AddressSanitizer + UBSan, with gcc's runtime and with clang's (compiler-rt, Debian's
#    libclang-rt-*-dev; installed here when missing): the C API tests, the conversation and cycle
#    tests, 100 drop-in cycles and the program written for the original engine, instrumented; any
#    report (a bad access, a leak at exit, undefined behaviour) fails.
clang_sanitizes() {
  command -v clang >/dev/null 2>&1 &&
    echo 'int main(void) { return 0; }' | clang -x c -fsanitize=address,undefined - -o "$OUT/clang_probe" 2>/dev/null
}
if ! clang_sanitizes && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "c-tests: installing clang and its sanitizer runtime" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang >/dev/null
  ver=$(clang --version | sed -n 's/.*clang version \([0-9]*\)\..*/\1/p' | head -1)
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "libclang-rt-$ver-dev" >/dev/null 2>&1 || true
fi
sanitizers=(gcc:cc)
if clang_sanitizes; then
  sanitizers+=(clang:clang)
else
  echo "c-tests: no clang with its sanitizer runtime here: ASan + UBSan run with gcc's runtime only" >&2
fi
SAN=(-g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
SANRUN=(env ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23 UBSAN_OPTIONS=print_stacktrace=1)
for entry in "${sanitizers[@]}"; do
  name=${entry%%:*} SCC=${entry#*:} S="$OUT/asan_$name"
  "$SCC" "${CFLAGS[@]}" "${SAN[@]}" -D_POSIX_C_SOURCE=200809L tests/c/test_api.c -Ltarget/release -lsmolvlm -lpthread -lm \
    -Wl,-rpath,"$PWD/target/release" -o "${S}_test_api"
  "$SCC" "${CFLAGS[@]}" "${SAN[@]}" -D_POSIX_C_SOURCE=200809L tests/c/test_chat.c -Ltarget/release -lsmolvlm -lpthread \
    -Wl,-rpath,"$PWD/target/release" -o "${S}_test_chat"
  "$SCC" "${CFLAGS[@]}" "${SAN[@]}" -D_POSIX_C_SOURCE=200809L tests/c/test_cycles.c -Ltarget/release -lsmolvlm -lpthread \
    -Wl,-rpath,"$PWD/target/release" -o "${S}_test_cycles"
  "$SCC" "${CFLAGS[@]}" "${SAN[@]}" tests/c/dropin_repeat.c -Ltarget/release -lsmolvlm -Wl,-rpath,"$PWD/target/release" \
    -o "${S}_dropin_repeat"
  "$SCC" "${SAN[@]}" -Iinclude/smol-vision -Iinclude $SV -Ltarget/release -lsmolvlm -Wl,-rpath,"$PWD/target/release" \
    -o "${S}_sv"
  "${SANRUN[@]}" "${S}_test_api" $MODEL $PPM "$OUT/corrupt" $CHATS/image_multiturn.json \
    "$OUT/image_multiturn.cli.txt" $CHATS/text_multiturn.json "$OUT/text_multiturn.cli.txt" > "${S}_api.out"
  "${SANRUN[@]}" "${S}_test_chat" $MODEL $PPM > "${S}_chat.out"
  "${SANRUN[@]}" "${S}_test_cycles" $MODEL $IMAGE --no-rss > "${S}_cycles.out"
  "${SANRUN[@]}" "${S}_dropin_repeat" $MODEL $IMAGE 100 --no-rss
  "${SANRUN[@]}" "${S}_sv" "${sv_args[@]}" --silent | cmp - "$OUT/sv.rust.txt"
  echo "c-tests: ASan + UBSan ($name runtime): test_api ($(tail -1 "${S}_api.out")), test_chat, test_cycles, 100 drop-in cycles and smol_vision_cli ran clean"
done
echo "c-tests: the $(wc -l < "$OUT/header_functions.txt") functions of include/smolvlm.h are exactly the smolvlm_* symbols of libsmolvlm.so and libsmolvlm.a; all C checks passed"
