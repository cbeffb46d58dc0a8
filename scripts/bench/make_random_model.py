#!/usr/bin/env python3
"""A SmolVLM checkpoint with random bf16 weights and the exact full-size shapes, for speed
measurements (speed depends on shapes, not values). Configs, tokenizer and chat template come
from the tiny fixture of the same layout (the real SmolLM2 tokenizer with that layout's added
tokens); dimensions are the published models'. Needs numpy only.

    python3 scripts/bench/make_random_model.py --layout 256m --out target/bench/smolvlm-256m
    python3 scripts/bench/make_random_model.py --layout instruct --out target/bench/smolvlm-instruct
"""
import argparse
import json
import os
import shutil

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "models")

# Published dimensions (SmolVLM-256M-Instruct, SmolVLM-Instruct): vision, connector, decoder.
LAYOUTS = {
    "256m": dict(fixture="tiny-256m", tile=512, longest=2048, scale=4,
                 vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                             num_attention_heads=12, image_size=512, patch_size=16),
                 text=dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                           num_attention_heads=9, num_key_value_heads=3, head_dim=64,
                           rope_theta=100000.0, max_position_embeddings=8192)),
    "instruct": dict(fixture="tiny-instruct", tile=384, longest=1536, scale=3,
                     vision=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                                 num_attention_heads=16, image_size=384, patch_size=14),
                     text=dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
                               num_attention_heads=32, num_key_value_heads=32, head_dim=64,
                               rope_theta=273768.0, max_position_embeddings=16384)),
}


def tensors(cfg, vocab):
    """(name, shape, kind) of every tensor, with transformers' Idefics3 names."""
    v, t, s = cfg["vision"], cfg["text"], cfg["scale"]
    d, i, p = v["hidden_size"], v["intermediate_size"], v["patch_size"]
    side = v["image_size"] // p
    out = [("model.vision_model.embeddings.patch_embedding.weight", [d, 3, p, p], "w"),
           ("model.vision_model.embeddings.patch_embedding.bias", [d], "b"),
           ("model.vision_model.embeddings.position_embedding.weight", [side * side, d], "w")]
    for l in range(v["num_hidden_layers"]):
        pre = f"model.vision_model.encoder.layers.{l}"
        for n in ["layer_norm1", "layer_norm2"]:
            out += [(f"{pre}.{n}.weight", [d], "one"), (f"{pre}.{n}.bias", [d], "b")]
        for n in ["q_proj", "k_proj", "v_proj", "out_proj"]:
            out += [(f"{pre}.self_attn.{n}.weight", [d, d], "w"), (f"{pre}.self_attn.{n}.bias", [d], "b")]
        out += [(f"{pre}.mlp.fc1.weight", [i, d], "w"), (f"{pre}.mlp.fc1.bias", [i], "b"),
                (f"{pre}.mlp.fc2.weight", [d, i], "w"), (f"{pre}.mlp.fc2.bias", [d], "b")]
    out += [("model.vision_model.post_layernorm.weight", [d], "one"),
            ("model.vision_model.post_layernorm.bias", [d], "b")]
    h, ti = t["hidden_size"], t["intermediate_size"]
    q, kv = t["num_attention_heads"] * t["head_dim"], t["num_key_value_heads"] * t["head_dim"]
    out.append(("model.connector.modality_projection.proj.weight", [h, d * s * s], "w"))
    out.append(("model.text_model.embed_tokens.weight", [vocab, h], "w"))
    for l in range(t["num_hidden_layers"]):
        pre = f"model.text_model.layers.{l}"
        out += [(f"{pre}.input_layernorm.weight", [h], "one"),
                (f"{pre}.post_attention_layernorm.weight", [h], "one"),
                (f"{pre}.self_attn.q_proj.weight", [q, h], "w"), (f"{pre}.self_attn.k_proj.weight", [kv, h], "w"),
                (f"{pre}.self_attn.v_proj.weight", [kv, h], "w"), (f"{pre}.self_attn.o_proj.weight", [h, q], "w"),
                (f"{pre}.mlp.gate_proj.weight", [ti, h], "w"), (f"{pre}.mlp.up_proj.weight", [ti, h], "w"),
                (f"{pre}.mlp.down_proj.weight", [h, ti], "w")]
    out += [("model.text_model.norm.weight", [h], "one"), ("lm_head.weight", [vocab, h], "w")]
    return out


def bf16_bytes(a):
    """float32 → bf16 (round to nearest even) as little-endian bytes."""
    u = a.astype(np.float32).view(np.uint32)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype("<u2").tobytes()


def write_safetensors(path, specs, rng):
    header, offset = {}, 0
    for name, shape, _ in specs:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for name, shape, kind in specs:
            n = int(np.prod(shape))
            if kind == "one":
                a = np.ones(n, np.float32)
            elif kind == "b":
                a = np.zeros(n, np.float32)
            else:
                # std 1/sqrt(fan-in): activations stay finite through every layer.
                fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
                a = rng.standard_normal(n, dtype=np.float32) * np.float32(fan_in ** -0.5)
            f.write(bf16_bytes(a))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layout", choices=sorted(LAYOUTS), required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    cfg = LAYOUTS[args.layout]
    src = os.path.join(FIXTURES, cfg["fixture"])
    os.makedirs(args.out, exist_ok=True)
    for f in os.listdir(src):
        if f not in ("model.safetensors", "config.json", "preprocessor_config.json", "processor_config.json"):
            shutil.copy(os.path.join(src, f), os.path.join(args.out, f))
    config = json.load(open(os.path.join(src, "config.json")))
    config["vision_config"].update(cfg["vision"])
    config["text_config"].update(cfg["text"])
    config["text_config"].pop("rope_theta", None)
    config["text_config"]["rope_parameters"] = {"rope_theta": cfg["text"]["rope_theta"], "rope_type": "default"}
    config["scale_factor"] = cfg["scale"]
    config["tie_word_embeddings"] = False
    config["text_config"]["tie_word_embeddings"] = False
    vocab = config["text_config"]["vocab_size"]
    json.dump(config, open(os.path.join(args.out, "config.json"), "w"), indent=1)
    pre = {"do_convert_rgb": True, "do_image_splitting": True, "do_normalize": True, "do_pad": True,
           "do_rescale": True, "do_resize": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3,
           "image_processor_type": "Idefics3ImageProcessor", "max_image_size": {"longest_edge": cfg["tile"]},
           "processor_class": "Idefics3Processor", "resample": 1, "rescale_factor": 1 / 255,
           "size": {"longest_edge": cfg["longest"]}}
    json.dump(pre, open(os.path.join(args.out, "preprocessor_config.json"), "w"), indent=1)
    side = cfg["vision"]["image_size"] // cfg["vision"]["patch_size"]
    proc = {"image_seq_len": (side // cfg["scale"]) ** 2, "processor_class": "Idefics3Processor"}
    json.dump(proc, open(os.path.join(args.out, "processor_config.json"), "w"), indent=1)
    specs = tensors(cfg, vocab)
    write_safetensors(os.path.join(args.out, "model.safetensors"), specs, np.random.default_rng(0))
    params = sum(int(np.prod(s)) for _, s, _ in specs)
    print(f"{args.out}: {args.layout}, {params / 1e6:.1f} M parameters (bf16)")


if __name__ == "__main__":
    main()
