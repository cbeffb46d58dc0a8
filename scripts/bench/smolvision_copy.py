#!/usr/bin/env python3
"""A copy of a HF SmolVLM checkpoint laid out the way the original C engine (chitindotsh/smol-vision)
reads it, for the harness's C-engine anchor. Stdlib only.

    python3 scripts/bench/smolvision_copy.py --model target/bench/smolvlm-256m --out target/bench/smolvlm-256m-smolvision

What differs from the HF layout, and what this changes:
  - decoder names: the C engine reads `model.text_model.model.<X>` and
    `model.text_model.lm_head.weight` where transformers writes `model.text_model.<X>` and
    `lm_head.weight`. Only the safetensors header is rewritten; the data bytes are copied as
    they are. Tied embeddings (no lm_head) get an lm_head entry over the embedding's bytes.
  - tokenizer.json: BPE merges as "a b" strings (newer tokenizers write [a, b] pairs).
  - config.json: a top-level image_seq_len ((image_size / patch_size)^2 / scale_factor^2) when
    missing.
The decoder matrices must be BF16 (the engine loads nothing else); a warning says otherwise.
"""
import argparse
import json
import os
import shutil
import struct


def new_name(name):
    if name == "lm_head.weight":
        return "model.text_model.lm_head.weight"
    if name.startswith("model.text_model.") and not name.startswith("model.text_model.model."):
        return "model.text_model.model." + name[len("model.text_model."):]
    return name


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return n, json.loads(f.read(n))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    files = sorted(f for f in os.listdir(a.model) if f.endswith(".safetensors"))
    if not files:
        raise SystemExit(f"no *.safetensors in {a.model}")
    headers = {f: read_header(os.path.join(a.model, f)) for f in files}
    tied = not any("lm_head.weight" in h for _, h in headers.values())
    os.makedirs(a.out, exist_ok=True)
    for f, (n, header) in headers.items():
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                out[name] = info
                continue
            out[new_name(name)] = info
            if (name.startswith("model.text_model.") and info["dtype"] != "BF16"
                    and not name.endswith("norm.weight")):
                print(f"warning: {name} is {info['dtype']}; the C engine loads BF16 decoder matrices only")
        if tied and "model.text_model.model.embed_tokens.weight" in out:
            out["model.text_model.lm_head.weight"] = dict(out["model.text_model.model.embed_tokens.weight"])
        raw = json.dumps(out, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        tmp = os.path.join(a.out, f + ".part")
        with open(os.path.join(a.model, f), "rb") as src, open(tmp, "wb") as dst:
            src.seek(8 + n)
            dst.write(struct.pack("<Q", len(raw)))
            dst.write(raw)
            shutil.copyfileobj(src, dst, 1 << 24)
        os.replace(tmp, os.path.join(a.out, f))

    tok = json.load(open(os.path.join(a.model, "tokenizer.json"), encoding="utf-8"))
    merges = tok.get("model", {}).get("merges") or []
    tok["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in merges]
    with open(os.path.join(a.out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)

    cfg = json.load(open(os.path.join(a.model, "config.json")))
    if "image_seq_len" not in cfg:
        v = cfg.get("vision_config", {})
        side = v.get("image_size", 384) // v.get("patch_size", 14)
        cfg["image_seq_len"] = side * side // cfg.get("scale_factor", 3) ** 2
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=1)
    print(f"{a.out}: {len(files)} safetensors file(s), {'tied' if tied else 'untied'} output")


if __name__ == "__main__":
    main()
