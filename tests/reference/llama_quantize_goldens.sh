#!/usr/bin/env bash
# Goldens for `smolvlm quantize`: the random Llama of tests/gguf_export.rs (untied and tied),
# written as BF16 GGUF by this library, then quantized by llama.cpp's own llama-quantize to each
# file type; records (name, ggml type, SHA-256 of the data) of every tensor.
#
#   LLAMA_QUANTIZE=/path/to/llama-quantize bash tests/reference/llama_quantize_goldens.sh
#
# llama-quantize comes from the llama.cpp tree of the llama-cpp-python 0.3.36 sdist (its
# vendor/llama.cpp; cmake -DCMAKE_BUILD_TYPE=Release, target llama-quantize). Writes
# tests/fixtures/goldens/llama-quantize.json. Needs the venv of scripts/venv.sh (gguf).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${LLAMA_QUANTIZE:?set LLAMA_QUANTIZE to the llama-quantize binary of llama.cpp}"
PY=$(bash scripts/venv.sh)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
SMOLVLM_TINY_TEXT_OUT="$work" cargo test -q --release --test gguf_export -- --exact write_tiny_text_models >&2
# Our names → llama-quantize's (q4_k and q5_k are its Q4_K_S and Q5_K_S).
types="f32:F32 f16:F16 bf16:BF16 q8_0:Q8_0 q4_0:Q4_0 q4_1:Q4_1 q5_0:Q5_0 q5_1:Q5_1 q4_k:Q4_K_S q5_k:Q5_K_S q6_k:Q6_K q4_k_m:Q4_K_M q5_k_m:Q5_K_M"
for variant in untied tied; do
  for t in $types; do
    "$LLAMA_QUANTIZE" "$work/$variant/model-bf16.gguf" "$work/$variant/${t%%:*}.gguf" "${t##*:}" > "$work/log" 2>&1 \
      || { cat "$work/log" >&2; exit 1; }
  done
done
"$PY" - "$work" "$types" > tests/fixtures/goldens/llama-quantize.json <<'PYEOF'
import hashlib, json, sys
from gguf import GGUFReader
work, types = sys.argv[1], sys.argv[2].split()
out = {"llama_cpp": "llama-cpp-python==0.3.36 (vendor/llama.cpp), llama-quantize without imatrix"}
for variant in ("untied", "tied"):
    out[variant] = {}
    for t in types:
        ours = t.split(":")[0]
        r = GGUFReader(f"{work}/{variant}/{ours}.gguf")
        out[variant][ours] = [[x.name, int(x.tensor_type), hashlib.sha256(x.data.tobytes()).hexdigest()]
                              for x in r.tensors]
print(json.dumps(out, indent=0))
PYEOF
echo "wrote tests/fixtures/goldens/llama-quantize.json" >&2
