#!/usr/bin/env bash
# Builds the C, C++, Go and Python examples (examples/README.md) against the install that
# scripts/c-tests.sh made and checks each: its stdout equals the CLI's text for the same image
# and prompt, its stderr is the statistics line. Needs PY (the venv's python, with the package
# pip-installed) and the f32 mode pinned (SMOLVLM_PRECISION=f32), as scripts/test.sh sets them.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/examples
PREFIX="$PWD/target/c-tests/prefix"
PY=${PY:?set PY to the venv python}
MODEL=tests/fixtures/models/tiny-256m
IMAGE=tests/fixtures/images/square.png
mkdir -p "$OUT"
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" LD_LIBRARY_PATH="$PREFIX/lib"

cc -std=c99 -Wall -Wextra -Werror -pedantic examples/c/describe.c $(pkg-config --cflags --libs smolvlm) \
  -o "$OUT/describe_c"
c++ -std=c++17 -Wall -Wextra -Werror examples/cpp/describe.cpp $(pkg-config --cflags --libs smolvlm) \
  -o "$OUT/describe_cpp"
(cd examples/go && go vet . && go build -o "../../$OUT/describe_go" .)

target/release/smolvlm --silent -d $MODEL -i $IMAGE -p "What is in the image?" > "$OUT/cli.txt"
stats='^[0-9]+ tokens, [0-9.]+ tok/s; vision [0-9]+ ms, prompt [0-9]+ tokens [0-9]+ ms, total [0-9]+ ms$'
for lang in c cpp go python; do
  if [ $lang = python ]; then run=("$PY" examples/python/describe.py); else run=("$OUT/describe_$lang"); fi
  "${run[@]}" $MODEL $IMAGE "What is in the image?" > "$OUT/$lang.txt" 2> "$OUT/$lang.err"
  if ! cmp -s "$OUT/cli.txt" "$OUT/$lang.txt"; then
    echo "examples-test: the $lang example printed other text than the CLI" >&2
    diff "$OUT/cli.txt" "$OUT/$lang.txt" >&2 || true
    exit 1
  fi
  if ! grep -Eq "$stats" "$OUT/$lang.err" || [ "$(wc -l < "$OUT/$lang.err")" -ne 1 ]; then
    echo "examples-test: the $lang example's stderr is not one statistics line:" >&2
    cat "$OUT/$lang.err" >&2
    exit 1
  fi
done
echo "examples-test: the C, C++, Go and Python examples print the CLI's text and a statistics line"
