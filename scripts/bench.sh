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
PY=$(bash scripts/venv.sh)
for layout in $LAYOUTS; do
  dir="target/bench/smolvlm-$layout"
  [ -f "$dir/model.safetensors" ] || "$PY" scripts/bench/make_random_model.py --layout "$layout" --out "$dir"
  "$PY" scripts/bench/run.py --model "$dir" --runs "$RUNS" --threads "$THREADS"
  echo
done
