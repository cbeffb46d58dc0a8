#!/usr/bin/env python3
"""Copy of a checkpoint directory with every BF16/F16 tensor widened to F32 (same names, same
values), for timing engines on f32 weights: our f32-checkpoint column against llama.cpp on an F32
GGUF of the same decoder.

    python3 scripts/bench/f32_copy.py --model target/bench/smolvlm-256m --out target/bench/smolvlm-256m-f32

Every other file of the directory is copied unchanged. Needs numpy.
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np


def widen(raw, dtype):
    if dtype == "BF16":
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    if dtype == "F16":
        return raw.view(np.float16).astype(np.float32)
    if dtype == "F32":
        return raw.view(np.float32)
    sys.exit(f"unsupported dtype {dtype}")


def convert(src, dst):
    with open(src, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
    data = np.memmap(src, dtype=np.uint8, mode="r", offset=8 + n)
    names = [k for k in header if k != "__metadata__"]
    names.sort(key=lambda k: header[k]["data_offsets"][0])
    out_header, offset = {}, 0
    if "__metadata__" in header:
        out_header["__metadata__"] = header["__metadata__"]
    for k in names:
        count = int(np.prod(header[k]["shape"], dtype=np.int64))
        out_header[k] = {"dtype": "F32" if header[k]["dtype"] in ("BF16", "F16", "F32") else header[k]["dtype"],
                         "shape": header[k]["shape"], "data_offsets": [offset, offset + 4 * count]}
        offset += 4 * count
    blob = json.dumps(out_header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    tmp = dst + ".part"
    with open(tmp, "wb") as out:
        out.write(struct.pack("<Q", len(blob)))
        out.write(blob)
        for k in names:
            a, b = header[k]["data_offsets"]
            out.write(widen(np.asarray(data[a:b]), header[k]["dtype"]).tobytes())
    os.replace(tmp, dst)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for f in sorted(os.listdir(a.model)):
        src, dst = os.path.join(a.model, f), os.path.join(a.out, f)
        if f.endswith(".safetensors"):
            convert(src, dst)
        elif os.path.isfile(src) and f != "config.json":
            shutil.copyfile(src, dst)
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    for c in (cfg, cfg.get("text_config", {}), cfg.get("vision_config", {})):
        if "torch_dtype" in c:
            c["torch_dtype"] = "float32"
    # config.json last: its presence marks a finished copy
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=2)


if __name__ == "__main__":
    main()
