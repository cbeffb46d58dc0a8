#!/usr/bin/env bash
# Builds smolvlm, fetches a SmolVLM checkpoint from the Hugging Face hub when it is not already
# under models/, and describes the bundled sample image.
#   MODEL=HuggingFaceTB/SmolVLM-500M-Instruct scripts/demo.sh      # another checkpoint
#   IMAGE=path/to/photo.jpg PROMPT="What is in the picture?" scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${MODEL:-HuggingFaceTB/SmolVLM-256M-Instruct}"
IMAGE="${IMAGE:-examples/sample.png}"
PROMPT="${PROMPT:-Describe this image.}"
DIR="models/$(basename "$MODEL")"
HUB="${HF_ENDPOINT:-https://huggingface.co}"

bash scripts/setup-system.sh
cargo build -j"${JOBS:-2}" --release --locked --bin smolvlm

fetch() { # fetch FILE [optional]
  local url="$HUB/$MODEL/resolve/main/$1"
  if curl -fsSL --retry 2 --connect-timeout 15 -o "$DIR/$1.part" "$url"; then
    mv "$DIR/$1.part" "$DIR/$1"
  else
    rm -f "$DIR/$1.part"
    [ "${2:-}" = optional ] && return 0
    echo "demo: could not download $url" >&2
    echo "demo: the model hub is unreachable (offline?). Put a SmolVLM checkpoint directory at $DIR" >&2
    echo "      (config.json, model.safetensors, tokenizer.json, ...) and run this again." >&2
    exit 1
  fi
}

if [ ! -f "$DIR/config.json" ] || ! ls "$DIR"/*.safetensors >/dev/null 2>&1; then
  command -v curl >/dev/null 2>&1 || { echo "demo: curl is needed to download $MODEL" >&2; exit 1; }
  mkdir -p "$DIR"
  echo "demo: downloading $MODEL into $DIR" >&2
  fetch config.json
  for f in generation_config.json preprocessor_config.json processor_config.json tokenizer_config.json \
           special_tokens_map.json chat_template.json chat_template.jinja added_tokens.json; do
    fetch "$f" optional
  done
  fetch tokenizer.json
  fetch model.safetensors.index.json optional
  if [ -f "$DIR/model.safetensors.index.json" ]; then
    for shard in $(grep -o '"[^"]*\.safetensors"' "$DIR/model.safetensors.index.json" | tr -d '"' | sort -u); do
      fetch "$shard"
    done
  else
    fetch model.safetensors
  fi
fi

exec target/release/smolvlm -d "$DIR" -i "$IMAGE" -p "$PROMPT" "$@"
