#!/usr/bin/env python3
"""bfloat16 goldens for the tiny models: the cases of make_tiny.py, computed by transformers in bf16.

    python3 tests/reference/bf16_goldens.py

Needs torch + transformers + pillow (requirements-goldens.txt) and the committed
tests/fixtures/models/tiny-{instruct,256m} and tests/fixtures/goldens/tiny-{instruct,256m}.json
(made by make_tiny.py). Writes tests/fixtures/goldens/tiny-{instruct,256m}-bf16.json.

The model is loaded with dtype=torch.bfloat16, so transformers computes every op in bf16 (norm
outputs, attention, the residual stream, the logits), and pixel_values are cast to bf16. The
processor is loaded from the saved directory with the PIL backend, as make_tiny.py builds it.
Each case records the first-step logits (the f32 golden's sample indices), the greedy tokens and,
for calibration, `f32_vs_bf16` against the float32 golden. Deterministic (one thread, greedy).
"""
import json
import os
import sys

import torch
import transformers
from PIL import Image
from transformers import Idefics3ForConditionalGeneration, Idefics3Processor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_tiny  # noqa: E402

FIX = make_tiny.FIX


def load(name):
    d = os.path.join(FIX, "models", name)
    model = Idefics3ForConditionalGeneration.from_pretrained(d, dtype=torch.bfloat16).eval()
    processor = Idefics3Processor.from_pretrained(d, backend="pil")
    assert type(processor.image_processor).__name__ == "Idefics3ImageProcessorPil", type(processor.image_processor)
    return model, processor


def inputs_for(processor, case):
    # The same preprocessing as make_tiny.run_case.
    _, messages, images, split = case
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    pil = [Image.open(os.path.join(FIX, "images", p)) for p in images]
    kwargs = {} if split is None else {"do_image_splitting": split}
    inputs = processor(text=text, images=[pil] if pil else None, return_tensors="pt", **kwargs)
    return text, inputs


def run_case(model, processor, case, ref):
    name = case[0]
    assert ref["name"] == name, (ref["name"], name)
    text, inputs = inputs_for(processor, case)
    assert text == ref["prompt_text"], name
    ids = inputs["input_ids"][0].tolist()
    assert ids == ref["input_ids"], f"{name}: input_ids differ from the f32 golden"
    if "pixel_values" in inputs:
        # Same preprocessed pixels as the f32 golden (checked before the bf16 cast).
        pv = inputs["pixel_values"][0]
        assert list(pv.shape) == ref["pixel_values"]["shape"], name
        assert float(pv.double().sum()) == ref["pixel_values"]["sum"], name
        inputs["pixel_values"] = inputs["pixel_values"].to(torch.bfloat16)

    with torch.no_grad():
        logits = model(**inputs).logits[0, -1]
    assert logits.dtype == torch.bfloat16, logits.dtype
    logits = logits.double()  # bf16 values are exact in float64
    with torch.no_grad():
        gen = model.generate(**inputs, max_new_tokens=make_tiny.MAX_NEW, do_sample=False, output_logits=True,
                             return_dict_in_generate=True)
    new = gen.sequences[0, inputs["input_ids"].shape[1]:].tolist()
    eos = model.generation_config.eos_token_id
    stopped = bool(new) and new[-1] == eos
    margins = []
    for s in gen.logits:
        v = torch.topk(s[0].double(), 2).values
        margins.append(float(v[0] - v[1]))
    tokens = new[:-1] if stopped else new

    # The f32 golden's sample indices (make_tiny.samples(logits, 64, 7) on the same vocabulary size).
    ref_samples = ref["first_logits"]["samples"]
    idx = [i for i, _ in ref_samples]
    assert idx == [i for i, _ in make_tiny.samples(logits, 64, 7)], f"{name}: sample indices differ"
    samples = [[i, float(logits[i])] for i in idx]
    top = torch.topk(logits, 10)

    # Calibration against the f32 golden. Greedy sequences are compared with the EOS included.
    rg = ref["greedy"]
    ref_seq = rg["tokens"] + ([eos] if rg["stopped_on_eos"] else [])
    seq = tokens + ([eos] if stopped else [])
    agree = 0
    for a, b in zip(seq, ref_seq):
        if a != b:
            break
        agree += 1
    assert rg["max_new_tokens"] == make_tiny.MAX_NEW

    return {
        "name": name,
        "input_ids": ids,
        "first_logits": {"argmax": int(logits.argmax()),
                         "top": [[int(i), float(v)] for v, i in zip(top.values, top.indices)],
                         "samples": samples, "sum": float(logits.sum()), "abs_sum": float(logits.abs().sum())},
        "greedy": {"max_new_tokens": make_tiny.MAX_NEW, "tokens": tokens, "stopped_on_eos": stopped,
                   "margins": margins},
        "f32_vs_bf16": {"max_abs_diff_samples": max(abs(v - r) for (_, v), (_, r) in zip(samples, ref_samples)),
                        "max_abs_logit": max(abs(r) for _, r in ref_samples),
                        "greedy_agree": agree},
    }


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for name in make_tiny.MODELS:
        with open(os.path.join(FIX, "goldens", f"{name}.json"), encoding="utf-8") as f:
            ref = json.load(f)
        assert [c["name"] for c in ref["cases"]] == [c[0] for c in make_tiny.CASES], name
        model, processor = load(name)
        cases = []
        for case, rc in zip(make_tiny.CASES, ref["cases"]):
            g = run_case(model, processor, case, rc)
            cases.append(g)
            c = g["f32_vs_bf16"]
            print(f"{name}/{g['name']}: max |bf16-f32| {c['max_abs_diff_samples']:.4f} (max |logit| "
                  f"{c['max_abs_logit']:.2f}), greedy agree {c['greedy_agree']}/{len(rc['greedy']['tokens'])}, "
                  f"tokens {'equal' if g['greedy']['tokens'] == rc['greedy']['tokens'] else 'differ'}", flush=True)
        meta = {"model": name, "transformers_version": transformers.__version__, "torch_version": torch.__version__,
                "image_processor_class": type(processor.image_processor).__name__,
                "attn_implementation": model.config._attn_implementation, "dtype": "bfloat16"}
        with open(os.path.join(FIX, "goldens", f"{name}-bf16.json"), "w", encoding="utf-8") as f:
            json.dump({**meta, "cases": cases}, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
