#!/usr/bin/env bash
# Speed harness, first slice: builds the CLI, writes random-weight models with the exact
# full-size SmolVLM shapes into target/bench/, and prints our medians per stage as a markdown
# table with the machine and the kernels used. Anchors (llama.cpp, the original C engine,
# transformers) and the machine's floors come next.
#   scripts/bench.sh                 # SmolVLM-256M shapes, 2 threads, 3 runs
#   LAYOUTS="256m instruct" RUNS=5 THREADS=2 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
LAYOUTS="${LAYOUTS:-256m}"
RUNS="${RUNS:-3}"
THREADS="${THREADS:-2}"
bash scripts/setup-system.sh
cargo build -j2 --release --locked --bin smolvlm
VENV=target/test-venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" 2>/dev/null || { rm -rf "$VENV"; python3 -m venv --without-pip "$VENV"; }
fi
"$VENV/bin/python" -m pip --version >/dev/null 2>&1 || "$VENV/bin/python" -m ensurepip -q
"$VENV/bin/python" -c "import numpy" 2>/dev/null \
  || "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/reference/requirements-ci.txt
for layout in $LAYOUTS; do
  dir="target/bench/smolvlm-$layout"
  [ -f "$dir/model.safetensors" ] || "$VENV/bin/python" scripts/bench/make_random_model.py --layout "$layout" --out "$dir"
  "$VENV/bin/python" scripts/bench/run.py --model "$dir" --runs "$RUNS" --threads "$THREADS"
  echo
done
