#!/usr/bin/env python3
"""The tiny reference SmolVLM models as llama.cpp keeps a SmolVLM: a text GGUF and an mmproj GGUF,
both written by llama.cpp's own convert_hf_to_gguf.py (from the llama-cpp-python 0.3.36 sdist,
downloaded from PyPI or named by LLAMA_CPP_SDIST), so that tests/gguf_pairs.rs can run the goldens'
cases through the GGUF path.

    python tests/reference/gguf_pairs.py   # needs torch, transformers, numpy, sentencepiece

Writes tests/fixtures/models/tiny-256m-gguf-f32/{tiny-256m-f32.gguf, mmproj-tiny-256m-f32.gguf}
and tests/fixtures/models/tiny-instruct-gguf-f16/{...f16...}: f32 output for tiny-256m (its vision
tower is stored f32), f16 for tiny-instruct (its weights are bf16, so f16 keeps nearly all of them).

The converter picks the text model's class from text_config.architectures, which the published
SmolVLM checkpoints carry (["VLlama3ForCausalLM"]) and the tiny models do not; the copy that is
converted gets that key and nothing else changes.
"""
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from kquant_goldens import VERSION, sdist  # noqa: E402  (the pinned, checksummed archive)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
CASES = [("tiny-256m", "f32"), ("tiny-instruct", "f16")]


def converter(tmp):
    with tarfile.open(sdist(tmp)) as t:
        prefix = f"llama_cpp_python-{VERSION}/vendor/llama.cpp/"
        members = [m for m in t.getmembers() if m.name.startswith(prefix) and (
            m.name == prefix + "convert_hf_to_gguf.py"
            or m.name.startswith(prefix + "conversion/")
            or m.name.startswith(prefix + "gguf-py/"))]
        t.extractall(tmp, members=members, filter="data")
    return os.path.join(tmp, prefix)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        src = converter(tmp)
        env = dict(os.environ, PYTHONPATH=os.path.join(src, "gguf-py"))
        for name, outtype in CASES:
            model = os.path.join(tmp, name)
            shutil.copytree(os.path.join(MODELS, name), model)
            cfg_path = os.path.join(model, "config.json")
            with open(cfg_path) as f:
                cfg = json.load(f)
            cfg["text_config"]["architectures"] = ["VLlama3ForCausalLM"]
            with open(cfg_path, "w") as f:
                json.dump(cfg, f, indent=2)
            out = os.path.join(MODELS, f"{name}-gguf-{outtype}")
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            for extra, file in [([], f"{name}-{outtype}.gguf"), (["--mmproj"], f"mmproj-{name}-{outtype}.gguf")]:
                subprocess.run([sys.executable, os.path.join(src, "convert_hf_to_gguf.py"), model,
                                "--outtype", outtype, "--outfile", os.path.join(out, file), *extra],
                               check=True, env=env, stdout=sys.stderr)
            print(f"{out}: {sorted(os.listdir(out))}")


if __name__ == "__main__":
    main()
