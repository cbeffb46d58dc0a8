#!/usr/bin/env python3
"""Goldens for ggml's block formats: rows of f32 values and the bytes the `gguf` package
(llama.cpp's own Python quantizer, written to match ggml's reference functions) makes of them
as Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1. Needs numpy + gguf (tests/reference/requirements-ci.txt).

    python3 tests/reference/quant_goldens.py > tests/fixtures/goldens/quant-ggml.json
"""
import importlib.metadata
import json

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize

rng = np.random.RandomState(7)
rows = [
    rng.randn(256),                                  # typical weights
    rng.uniform(-1e-3, 1e-3, 256),                   # small magnitudes
    rng.uniform(-300.0, 40.0, 256),                  # large, negative-dominant
    np.zeros(64),                                    # all-zero blocks (d = 0)
    np.full(64, 0.75),                               # constant blocks (Q4_1: max = min)
    np.tile(np.arange(-16, 16) / 2.0, 2),            # exact halves: rounding ties
    np.concatenate([np.full(31, 1e-8), [1.0]]),      # one dominant value
    rng.standard_cauchy(128).clip(-1e4, 1e4),        # heavy tails
]
rows = [np.asarray(r, dtype=np.float32) for r in rows]
out = {"gguf_version": importlib.metadata.version("gguf"), "rows": []}
for r in rows:
    entry = {"x": [float(v) for v in r]}
    for t in (T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1):
        entry[t.name.lower()] = quantize(r.reshape(1, -1), t).tobytes().hex()
    out["rows"].append(entry)
print(json.dumps(out))
