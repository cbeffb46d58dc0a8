#!/usr/bin/env python3
"""Goldens for ggml's K-quant block formats (Q4_K, Q5_K, Q6_K), made by ggml's own C reference
functions, so that our Rust quantizer can be checked byte for byte.

    target/test-venv/bin/python tests/reference/kquant_goldens.py > tests/fixtures/goldens/quant-kquants.json

The `gguf` package can dequantize K-quants but not quantize them, so the bytes come from C:
the script fetches the llama-cpp-python sdist from PyPI (or takes the .tar.gz named by the env
var LLAMA_CPP_SDIST), compiles vendor/llama.cpp/ggml/src/ggml-quants.c alone with a small driver
of stubs into a temporary shared library, and calls quantize_row_{q4_K,q5_K,q6_K}_ref and
dequantize_row_{q4_K,q5_K,q6_K} through ctypes. It also records Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1,
and checks that ggml's dequantized values equal gguf.quants.dequantize and that its bytes for
those five equal gguf.quants.quantize (as quant-ggml.json has them), so a mismatch between this
C build and the Python reference shows up here rather than in the Rust tests.
Needs numpy + gguf, pip, network access to PyPI and a C compiler `cc`.
"""
import ctypes
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

VERSION = "0.3.36"
# Pinned so a re-uploaded or locally substituted archive cannot silently change the goldens.
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
GGML = "vendor/llama.cpp/ggml"

# Compiled together with ggml-quants.c instead of ggml.c, which would drag in the whole of
# ggml-base. ggml-quants.c needs only these four symbols; the type-size helpers are reached
# solely from the imatrix/validation paths, never from the _ref functions used here.
DRIVER_C = r"""
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "ggml.h"
#include "ggml-quants.h"

void ggml_abort(const char * file, int line, const char * fmt, ...) {
    va_list ap;
    fprintf(stderr, "ggml_abort at %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

static void unreachable_stub(const char * name) {
    fprintf(stderr, "kquant driver: stub %s called\n", name);
    abort();
}

size_t ggml_type_size(enum ggml_type type) { (void) type; unreachable_stub("ggml_type_size"); return 0; }
size_t ggml_row_size(enum ggml_type type, int64_t ne) { (void) type; (void) ne; unreachable_stub("ggml_row_size"); return 0; }
const char * ggml_type_name(enum ggml_type type) { (void) type; unreachable_stub("ggml_type_name"); return 0; }

/* Lets Python check its byte counts against the C structs. */
size_t kq_sizeof(int which) {
    switch (which) {
        case 0: return sizeof(block_q4_K);
        case 1: return sizeof(block_q5_K);
        case 2: return sizeof(block_q6_K);
        case 3: return sizeof(block_q5_0);
        case 4: return sizeof(block_q5_1);
        case 5: return sizeof(block_q8_0);
        case 6: return sizeof(block_q4_0);
        case 7: return sizeof(block_q4_1);
    }
    return 0;
}
"""

# -ffp-contract=off / -fno-fast-math keep every multiply-add rounded as written (what the Rust
# port reproduces); no -march so only the portable scalar code and software fp16 are compiled.
CFLAGS = ["-O2", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared", "-std=c11"]

# (json key, kq_sizeof index, elements per block, gguf type, ggml quantizer, ggml dequantizer).
# The 32-element formats are here because tests/quantized.rs checks every QuantType in this file.
FORMATS = [
    ("q4_k", 0, 256, T.Q4_K, "quantize_row_q4_K_ref", "dequantize_row_q4_K"),
    ("q5_k", 1, 256, T.Q5_K, "quantize_row_q5_K_ref", "dequantize_row_q5_K"),
    ("q6_k", 2, 256, T.Q6_K, "quantize_row_q6_K_ref", "dequantize_row_q6_K"),
    ("q5_0", 3, 32, T.Q5_0, "quantize_row_q5_0_ref", None),
    ("q5_1", 4, 32, T.Q5_1, "quantize_row_q5_1_ref", None),
    ("q8_0", 5, 32, T.Q8_0, "quantize_row_q8_0_ref", None),
    ("q4_0", 6, 32, T.Q4_0, "quantize_row_q4_0_ref", None),
    ("q4_1", 7, 32, T.Q4_1, "quantize_row_q4_1_ref", None),
]


def sdist(tmp):
    path = os.environ.get("LLAMA_CPP_SDIST")
    if not path:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             f"llama-cpp-python=={VERSION}", "-d", tmp],
            check=True, stdout=sys.stderr)
        path = os.path.join(tmp, f"llama_cpp_python-{VERSION}.tar.gz")
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert digest == SDIST_SHA256, f"{path}: sha256 {digest}, expected {SDIST_SHA256}"
    return path


def build(tmp):
    src = os.path.join(tmp, "ggml")
    prefix = f"llama_cpp_python-{VERSION}/{GGML}/"
    with tarfile.open(sdist(tmp)) as tar:
        # Only ggml-quants.c and the headers it includes: the rest of the tree is never compiled.
        wanted = ("src/ggml-quants.c", "src/ggml-quants.h", "src/ggml-common.h", "src/ggml-impl.h",
                  "src/ggml-cpu/ggml-cpu-impl.h")
        members = [m for m in tar.getmembers()
                   if m.isfile() and m.name.startswith(prefix)
                   and (m.name[len(prefix):] in wanted
                        or (m.name.startswith(prefix + "include/") and m.name.endswith(".h")))]
        for m in members:
            m.name = m.name[len(prefix):]
        tar.extractall(src, members=members, filter="data")
    driver = os.path.join(tmp, "kquant_driver.c")
    with open(driver, "w") as f:
        f.write(DRIVER_C)
    lib = os.path.join(tmp, "libkquant.so")
    cmd = ["cc", *CFLAGS, "-I", os.path.join(src, "src"), "-I", os.path.join(src, "include"),
           os.path.join(src, "src", "ggml-quants.c"), driver, "-o", lib, "-lm"]
    print("+ " + " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    return ctypes.CDLL(lib)


def main():
    rng = np.random.RandomState(11)
    rows = [
        rng.randn(512),                                  # typical weights, two super-blocks
        rng.uniform(-1e-3, 1e-3, 256),                   # small magnitudes
        rng.uniform(-300.0, 40.0, 256),                  # large, negative-dominant
        np.zeros(256),                                   # all-zero (d = 0 paths)
        np.full(256, 0.75),                              # constant (max = min)
        np.tile(np.arange(-16, 16) / 2.0, 8),            # exact halves: rounding ties
        np.concatenate([np.full(255, 1e-8), [1.0]]),     # one dominant value
        rng.standard_cauchy(512).clip(-1e4, 1e4),        # heavy tails
        rng.randn(256) * 0.02,                           # typical LLM weight scale
    ]
    rows = [np.ascontiguousarray(r, dtype=np.float32) for r in rows]

    with tempfile.TemporaryDirectory(prefix="kquant-goldens-") as tmp:
        lib = build(tmp)
        lib.kq_sizeof.restype = ctypes.c_size_t
        f32p = ctypes.POINTER(ctypes.c_float)
        for _, _, _, _, q, dq in FORMATS:
            for name in (q, dq):
                if name:
                    getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
                    getattr(lib, name).restype = None

        out = {"ggml_source": f"llama-cpp-python=={VERSION}", "rows": []}
        checked_deq = checked_bytes = 0
        for r in rows:
            entry = {"x": [float(v) for v in r]}
            deqs = {}
            for key, which, qk, gt, q, dq in FORMATS:
                nbytes = len(r) // qk * lib.kq_sizeof(which)
                buf = (ctypes.c_uint8 * nbytes)()
                getattr(lib, q)(r.ctypes.data_as(f32p), buf, len(r))
                blob = bytes(buf)
                entry[key] = blob.hex()
                packed = np.frombuffer(blob, dtype=np.uint8).reshape(1, -1)
                if dq:
                    y = np.empty(len(r), dtype=np.float32)
                    getattr(lib, dq)(buf, y.ctypes.data_as(f32p), len(r))
                    # Compared as bits: both sides must agree even on -0.0.
                    py = dequantize(packed, gt).reshape(-1).astype(np.float32)
                    assert np.array_equal(y.view(np.uint32), py.view(np.uint32)), f"{key} dequant differs from gguf"
                    checked_deq += 1
                    deqs[key + "_deq"] = [float(v) for v in y]
                else:
                    py = quantize(r.reshape(1, -1), gt).tobytes()
                    assert py == blob, f"{key} bytes differ from gguf.quants.quantize"
                    checked_bytes += 1
            entry.update(deqs)
            out["rows"].append(entry)

    print(json.dumps(out))
    print(f"{len(rows)} rows from llama-cpp-python=={VERSION} ggml: {checked_deq} K-quant dequantizations "
          f"equal gguf.quants.dequantize, {checked_bytes} Q8_0/Q4_0/Q4_1/Q5_0/Q5_1 byte strings equal "
          f"gguf.quants.quantize", file=sys.stderr)


if __name__ == "__main__":
    main()
