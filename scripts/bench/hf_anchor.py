#!/usr/bin/env python3
"""HF transformers on the CPU as a speed anchor: the same SmolVLM checkpoint and inputs as our
CLI's harness cases, timed in float32 and/or bfloat16, one JSON object on stdout.

    HF_PYTHON=/work/torch-venv/bin/python
    $HF_PYTHON scripts/bench/hf_anchor.py --model target/bench/smolvlm-256m --image examples/sample.png \
        --text-prompt "$(printf 'word %.0s' $(seq 28))" --dtypes f32,bf16 --threads 2 [--runs 1]
    $HF_PYTHON scripts/bench/hf_anchor.py --model models/smollm2-135m-instruct --text-only ...

Needs torch, transformers (Idefics3) and pillow; run.py calls it through $HF_PYTHON and reports
"not run" when that is unset. Per dtype it measures, after one untimed warm-up of each kind:
  - load_ms: from_pretrained (weights and config; the processor is loaded beforehand);
  - vision_tile_ms: get_image_features (vision encoder + connector) on one tile, no splitting;
  - prefill: per --text-prompt (formatted with the chat template, as our CLI does), one forward
    pass over the prompt with a KV cache and the last position's logits (as generate's first step);
  - ttft_ms: image prompt (one image + "Describe."), from the PIL image to the first greedy token:
    processor + vision + prefill, without (no_split) and with (split) image splitting;
  - decode_tok_s: --decode-tokens single-token steps with the KV cache after a short text prompt.
With --text-only (a plain Llama checkpoint, AutoModelForCausalLM + its tokenizer's chat template)
only load, prefill and decode are measured. `--runs N` repeats each timing N times (medians and
samples are reported). Threads: --threads (torch.set_num_threads; the OMP/MKL/OpenBLAS thread
variables are set before torch is imported).
"""
import argparse
import json
import os
import statistics
import sys
import time


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--image")
    ap.add_argument("--text-prompt", action="append", default=[], help="repeatable")
    ap.add_argument("--image-prompt", default="Describe.")
    ap.add_argument("--decode-prompt", default="Tell me a story.")
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--no-split-ttft", action="store_true", help="skip the split-image time to first token")
    ap.add_argument("--text-only", action="store_true",
                    help="a plain causal LM (AutoModelForCausalLM): text prefill, decode and load only")
    return ap.parse_args()


a = parse()
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(a.threads)

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import (AutoModelForCausalLM, AutoTokenizer, Idefics3ForConditionalGeneration,  # noqa: E402
                          Idefics3Processor)

torch.set_num_threads(a.threads)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:
    pass


def ms(f):
    t = time.perf_counter()
    out = f()
    return (time.perf_counter() - t) * 1e3, out


def chat(processor, text, image=False):
    if a.text_only:
        return processor.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                             tokenize=False)
    content = ([{"type": "image"}] if image else []) + [{"type": "text", "text": text}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)


def measure(dtype_name, processor, pil):
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    cls = AutoModelForCausalLM if a.text_only else Idefics3ForConditionalGeneration
    load_ms, model = ms(lambda: cls.from_pretrained(a.model, dtype=dtype).eval())
    res = {"dtype": dtype_name, "load_ms": load_ms, "threads": torch.get_num_threads()}

    def tokens(text):
        return processor(text=chat(processor, text), return_tensors="pt")["input_ids"]

    def image_inputs(split):
        inputs = processor(text=chat(processor, a.image_prompt, True), images=[[pil]], return_tensors="pt",
                           do_image_splitting=split)
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
        return inputs

    def vision(inputs):
        return model.model.get_image_features(pixel_values=inputs["pixel_values"],
                                              pixel_attention_mask=inputs.get("pixel_attention_mask"))

    def prefill(ids):
        return model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True, logits_to_keep=1)

    def first_token(split):
        inputs = image_inputs(split)
        out = model(**inputs, use_cache=True, logits_to_keep=1)
        return int(out.logits[0, -1].argmax()), inputs["input_ids"].shape[1]

    def decode(ids):
        out = prefill(ids)
        cache, tok = out.past_key_values, out.logits[0, -1].argmax().view(1, 1)
        mask = torch.ones_like(ids)
        t = time.perf_counter()
        for _ in range(a.decode_tokens):
            mask = torch.cat([mask, torch.ones((1, 1), dtype=mask.dtype)], dim=1)
            out = model(input_ids=tok, attention_mask=mask, past_key_values=cache, use_cache=True,
                        logits_to_keep=1)
            cache, tok = out.past_key_values, out.logits[0, -1].argmax().view(1, 1)
        return (time.perf_counter() - t) * 1e3

    texts = [tokens(p) for p in a.text_prompt]
    story = tokens(a.decode_prompt)
    samples = {"vision_tile_ms": [], "ttft_no_split_ms": [], "ttft_split_ms": [], "decode_tok_s": []}
    samples.update({f"prefill_{i}_tok_s": [] for i in range(len(texts))})
    with torch.inference_mode():
        one_tile = None if a.text_only else image_inputs(False)
        if one_tile is not None:
            res["vision_tiles"] = int(one_tile["pixel_values"].shape[1])
            vision(one_tile)  # warm-up: oneDNN/BLAS primitive creation, first touch of the weights
        prefill(texts[0] if texts else story)
        for _ in range(a.runs):
            if one_tile is not None:
                samples["vision_tile_ms"].append(ms(lambda: vision(one_tile))[0])
            for i, ids in enumerate(texts):
                samples[f"prefill_{i}_tok_s"].append(ids.shape[1] / ms(lambda: prefill(ids))[0] * 1e3)
            if one_tile is not None:
                t, (_, n) = ms(lambda: first_token(False))
                samples["ttft_no_split_ms"].append(t)
                res["ttft_no_split_tokens"] = n
                if not a.no_split_ttft:
                    t, (_, n) = ms(lambda: first_token(True))
                    samples["ttft_split_ms"].append(t)
                    res["ttft_split_tokens"] = n
            if a.decode_tokens > 0:
                samples["decode_tok_s"].append(a.decode_tokens / decode(story) * 1e3)
    res["prefill_tokens"] = [int(ids.shape[1]) for ids in texts]
    res["samples"] = {k: v for k, v in samples.items() if v}
    res.update({k: statistics.median(v) for k, v in samples.items() if v})
    return res


def main():
    if a.text_only:
        processor, pil = AutoTokenizer.from_pretrained(a.model), None
    else:
        if not a.image:
            sys.exit("--image is needed for an image model (or --text-only)")
        processor = Idefics3Processor.from_pretrained(a.model, backend="pil")
        pil = Image.open(a.image).convert("RGB")
    out = {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
           "image": a.image, "results": []}
    for d in [d for d in a.dtypes.split(",") if d]:
        out["results"].append(measure(d, processor, pil))
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
