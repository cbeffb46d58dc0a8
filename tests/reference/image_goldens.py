#!/usr/bin/env python3
"""Odd but valid images (tests/fixtures/images/odd/) and what the HF processor sees of them
(tests/fixtures/goldens/odd_images.json): Pillow opens each file and transformers' convert_to_rgb
makes it RGB (RGB as is; any other mode through RGBA composited onto white). The goldens hold the
size and the SHA-256 of those RGB bytes. Needs pillow, numpy and transformers.

    python3 tests/reference/image_goldens.py
"""
import hashlib
import io
import json
import os

import numpy as np
import PIL
from PIL import Image
from transformers.image_transforms import convert_to_rgb

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "images", "odd")


def scene(w, h, seed):
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    chans = [(x * (5 + c) + y * (3 + 2 * c) + seed * 17 + ((x // 7) ^ (y // 5)) * 23) % 256 for c in range(3)]
    return np.stack(chans, -1).astype(np.uint8)


def write(name, save):
    path = os.path.join(OUT, name)
    buf = io.BytesIO()
    save(buf)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return path


def main():
    os.makedirs(OUT, exist_ok=True)
    rgb = Image.fromarray(scene(48, 32, 1))
    files = {}
    # Adobe CMYK JPEG (Pillow writes the Adobe marker and inverted values, as Photoshop does).
    files["cmyk.jpg"] = write("cmyk.jpg", lambda b: rgb.convert("CMYK").save(b, "JPEG", quality=92))
    files["progressive.jpg"] = write("progressive.jpg", lambda b: rgb.save(b, "JPEG", quality=90, progressive=True))
    files["gray.jpg"] = write("gray.jpg", lambda b: rgb.convert("L").save(b, "JPEG", quality=90))
    # 16-bit RGB and grey PNGs.
    wide = (scene(40, 24, 2).astype(np.uint16) * 257 + np.arange(40, dtype=np.uint16)[None, :, None]).astype(">u2")
    def png16(b):
        import zlib, struct
        h, w = wide.shape[:2]
        raw = b"".join(b"\x00" + wide[y].tobytes() for y in range(h))
        def chunk(t, d):
            return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
        b.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    files["rgb16.png"] = write("rgb16.png", png16)
    gray16 = Image.fromarray(scene(30, 20, 3)[..., 0].astype(np.uint16) * 3)
    files["gray16.png"] = write("gray16.png", lambda b: gray16.save(b, "PNG"))
    # Grey with alpha, and a palette PNG whose tRNS makes some entries translucent.
    la = Image.fromarray(np.dstack([scene(36, 28, 4)[..., 1], scene(36, 28, 5)[..., 2]]), "LA")
    files["la.png"] = write("la.png", lambda b: la.save(b, "PNG"))
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    trns = bytes([0, 64, 128, 200] + [255] * 12)
    files["palette_trns.png"] = write("palette_trns.png", lambda b: pal.save(b, "PNG", transparency=trns))
    # An animated GIF: the first frame is the image (as Pillow's first load gives it).
    frames = [Image.fromarray(scene(32, 24, s)).convert("P", palette=Image.Palette.ADAPTIVE, colors=32) for s in (6, 7, 8)]
    files["animated.gif"] = write("animated.gif", lambda b: frames[0].save(b, "GIF", save_all=True,
                                                                          append_images=frames[1:], duration=100, loop=0))
    # Extreme shapes.
    files["one.png"] = write("one.png", lambda b: Image.new("RGB", (1, 1), (200, 30, 90)).save(b, "PNG"))
    files["thin.png"] = write("thin.png", lambda b: Image.fromarray(scene(1, 20000, 9)).save(b, "PNG"))
    cases = []
    for name, path in sorted(files.items()):
        im = Image.open(path)
        mode = im.mode
        out = convert_to_rgb(im)
        data = np.asarray(out.convert("RGB") if out.mode != "RGB" else out)
        cases.append({"file": name, "pillow_mode": mode, "size": [int(data.shape[1]), int(data.shape[0])],
                      "sha256": hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()})
    golden = {"pillow_version": PIL.__version__, "cases": cases}
    with open(os.path.join(ROOT, "tests", "fixtures", "goldens", "odd_images.json"), "w") as f:
        json.dump(golden, f, indent=1)
    print(json.dumps(golden, indent=1))


if __name__ == "__main__":
    main()
