#!/usr/bin/env bash
# Fuzzing with cargo fuzz (libFuzzer + AddressSanitizer): builds the six targets of fuzz/ —
# safetensors and GGUF files, the config files, chat templates, chat messages as JSON, image files (with
# preprocessing) — and runs each from its committed seeds (fuzz/corpus/<target>; new inputs go to
# target/fuzz-corpus/<target>, so the committed corpus only changes on purpose).
#   FUZZ_SECONDS=60 (default): that long per target (CI);  FUZZ_RUNS=N: N executions per target.
# Needs a nightly toolchain; where there is none it says so and fuzzes nothing. A crash, a leak,
# a timeout (10 s) or a run over 4 GiB fails, with the input saved under fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: SKIPPED: no nightly Rust toolchain here (cargo fuzz needs one: rustup toolchain install nightly)"
  exit 0
fi
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked -q
fi
targets=(safetensors gguf config template messages image)
CARGO_BUILD_JOBS=${JOBS:-2} cargo +nightly fuzz build
if [ -n "${FUZZ_RUNS:-}" ]; then limit=(-runs="$FUZZ_RUNS"); else limit=(-max_total_time="${FUZZ_SECONDS:-60}"); fi
for t in "${targets[@]}"; do
  mkdir -p "target/fuzz-corpus/$t" target/fuzz-logs
  log="target/fuzz-logs/$t.log"
  if ! cargo +nightly fuzz run "$t" "target/fuzz-corpus/$t" "fuzz/corpus/$t" -- "${limit[@]}" \
      -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 > "$log" 2>&1; then
    # The cause (a panic's message, a sanitizer's report) comes first in the log; the tail
    # holds the input and the stack.
    grep -m5 -A3 -E "panicked at|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)" "$log" >&2 || true
    tail -60 "$log" >&2
    echo "fuzz: $t FAILED (the input is under fuzz/artifacts/$t/; add it to the tests as a regression)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
  echo "fuzz: $t: ${runs:-?} executions, $cov, no crash"
done
