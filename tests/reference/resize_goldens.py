#!/usr/bin/env python3
"""Pillow LANCZOS resize goldens (tests/fixtures/goldens/resize.json): SHA-256 of Pillow's output
for synthetic RGB inputs the Rust test regenerates from the same formula. Needs pillow + numpy.

    python3 tests/reference/resize_goldens.py
"""
import hashlib
import json
import os

import numpy as np
import PIL
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pattern(w, h, seed):
    """Deterministic texture with hard edges and noise-like detail (mirrored in tests/resize.rs)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    chans = [(x * 7 + y * 13 + c * 29 + (x * y * (seed + 3)) % 17 + ((x ^ y) * (seed + 1)) % 61) % 256 for c in range(3)]
    return np.stack(chans, -1).astype(np.uint8)


def main():
    rng = np.random.RandomState(11)
    sizes = [(96, 96, 528, 528), (528, 528, 132, 132), (264, 528, 132, 132), (528, 264, 132, 132),
             (20, 13, 528, 344), (200, 90, 528, 238), (246, 528, 264, 528), (1, 1, 7, 5), (300, 1, 17, 3),
             (2000, 33, 128, 128), (640, 130, 128, 128)]
    while len(sizes) < 48:
        w, h, w2, h2 = (int(v) for v in rng.randint(1, 400, 4))
        sizes.append((w, h, w2, h2))
    # Pillow 13 runs the vertical pass first when the height shrinks by more than twice the width:
    # sizes on both sides of that boundary and on it (dh == 2*dw), where the two orders round apart.
    sizes += [(100, 100, 90, 80), (300, 200, 280, 160), (300, 200, 281, 160), (300, 200, 279, 160),
              (64, 96, 61, 90), (401, 333, 390, 311)]
    cases = []
    for i, (w, h, w2, h2) in enumerate(sizes):
        out = np.array(Image.fromarray(pattern(w, h, i)).resize((w2, h2), Image.Resampling.LANCZOS))
        cases.append({"seed": i, "in": [w, h], "out": [w2, h2], "sha256": hashlib.sha256(out.tobytes()).hexdigest()})
    path = os.path.join(ROOT, "tests", "fixtures", "goldens", "resize.json")
    with open(path, "w") as f:
        json.dump({"pillow_version": PIL.__version__, "cases": cases}, f, indent=1)
    print(f"{path}: {len(cases)} cases (Pillow {PIL.__version__})")


if __name__ == "__main__":
    main()
