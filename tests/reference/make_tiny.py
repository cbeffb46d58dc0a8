#!/usr/bin/env python3
"""Tiny random-weight SmolVLM models built with transformers' own classes and processor, and the
goldens the Rust tests compare against (tests/fixtures/{models,images,goldens}).

    python3 tests/reference/make_tiny.py                       # regenerate everything
    python3 tests/reference/make_tiny.py --dump MODEL CASE DIR # every intermediate as .npy

Needs torch + transformers + pillow (requirements-goldens.txt). Deterministic (fixed seeds).
The image processor is transformers' PIL backend (Idefics3ImageProcessorPil): the classic
behaviour the engine reproduces. Weights are rounded to their storage dtype before the goldens
are computed in float32, so the goldens are exactly what f32 compute gives on the stored weights.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from PIL import Image, ImageDraw
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(ROOT, "tests", "fixtures")
sys.path.insert(0, HERE)
import smollm2_gguf  # noqa: E402

# The chat template of SmolVLM-Instruct / SmolVLM-256M-Instruct, verbatim.
TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == 'image' %}"
    "{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

MODELS = {
    # SmolVLM-Instruct-like: patch 14 on a 132 tile (132 % 14 = 6 pixels dropped, as 384 % 14),
    # scale 3, MHA, untied head, only 3 added tokens.
    "tiny-instruct": dict(
        vision=dict(hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    image_size=132, patch_size=14),
        text=dict(hidden_size=32, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=4, head_dim=8, rope_theta=273768.0, max_position_embeddings=16384,
                  rms_norm_eps=1e-5),
        scale=3, longest=528, tile=132, vocab=49155, image_token="<image>", eos=49154, seed=1,
        added=["<fake_token_around_image>", "<image>", "<end_of_utterance>"],
        dtypes=dict(vision=torch.bfloat16, connector=torch.bfloat16, text=torch.bfloat16),
        published_layout=False,
    ),
    # SmolVLM-256M-like: patch 16 on a 128 tile, scale 4, GQA, untied head, the 256M added tokens.
    "tiny-256m": dict(
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                    image_size=128, patch_size=16),
        text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=8, rope_theta=100000.0, max_position_embeddings=8192,
                  rms_norm_eps=1e-5),
        scale=4, longest=512, tile=128, vocab=49280, image_token="<image>", eos=49279, seed=2,
        added=(["<global-img>"] + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
               + ["<fake_token_around_image>", "<image>"]
               + [f"<|reserved_special_token_{i}|>" for i in range(88)] + ["<end_of_utterance>"]),
        dtypes=dict(vision=torch.float32, connector=torch.float16, text=torch.bfloat16),
        published_layout=True,
    ),
}

T = lambda s: {"type": "text", "text": s}
I = {"type": "image"}
CASES = [
    ("square_split", [{"role": "user", "content": [I, T("Describe this image.")]}], ["square.png"], None),
    ("wide_jpeg", [{"role": "user", "content": [I, T("What is in this photo?")]}], ["wide.jpg"], None),
    ("tall", [{"role": "user", "content": [I, T("What do you see?")]}], ["tall.png"], None),
    ("tiny_upscaled", [{"role": "user", "content": [I, T("Describe it.")]}], ["tiny.png"], None),
    ("rgba", [{"role": "user", "content": [I, T("What shape is this?")]}], ["rgba.png"], None),
    ("gray", [{"role": "user", "content": [I, T("Describe this image.")]}], ["gray.png"], None),
    ("gif", [{"role": "user", "content": [I, T("Describe this image.")]}], ["palette.gif"], None),
    ("bmp", [{"role": "user", "content": [I, T("Describe this image.")]}], ["image.bmp"], None),
    ("webp", [{"role": "user", "content": [I, T("Describe this image.")]}], ["image.webp"], None),
    ("square_nosplit", [{"role": "user", "content": [I, T("Describe this image.")]}], ["square.png"], False),
    ("wide_nosplit", [{"role": "user", "content": [I, T("What is in this photo?")]}], ["wide.jpg"], False),
    ("system_image", [{"role": "system", "content": [T("Answer briefly.")]},
                      {"role": "user", "content": [I, T("What is this?")]}], ["square.png"], None),
    ("text_only", [{"role": "user", "content": [T("Write a short poem about the sea.")]}], [], None),
    ("text_before_image", [{"role": "user", "content": [T("Look:"), I, T("What is it?")]}], ["tall.png"], None),
    ("two_images", [{"role": "user", "content": [I, I, T("Compare these two images.")]}],
     ["square.png", "tiny.png"], None),
    ("multi_turn", [{"role": "user", "content": [I, T("What is this?")]},
                    {"role": "assistant", "content": [T("A small picture with shapes.")]},
                    {"role": "user", "content": [T("What colors are in it?")]}], ["square.png"], None),
]
MAX_NEW = 24


def make_images(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.RandomState(0)

    def scene(w, h, seed):
        r = np.random.RandomState(seed)
        y, x = np.mgrid[0:h, 0:w]
        a = np.stack([(x * 255 / max(w - 1, 1)), (y * 255 / max(h - 1, 1)), ((x + y) * 127 / max(w + h, 1))], -1)
        a = a + r.normal(0, 18, a.shape)
        im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")
        d = ImageDraw.Draw(im)
        for _ in range(4):
            x0, y0 = r.randint(0, w), r.randint(0, h)
            d.ellipse([x0, y0, x0 + r.randint(3, w // 2 + 4), y0 + r.randint(3, h // 2 + 4)],
                      fill=tuple(int(v) for v in r.randint(0, 256, 3)))
        d.rectangle([w // 4, h // 3, w // 2, h // 2], outline=(255, 255, 255), width=2)
        return im

    scene(96, 96, 1).save(os.path.join(out, "square.png"))
    for ext in ("ppm", "tga", "tiff"):  # the same pixels in other lossless formats
        scene(96, 96, 1).save(os.path.join(out, f"square.{ext}"))
    scene(200, 90, 2).save(os.path.join(out, "wide.jpg"), quality=90)
    scene(70, 150, 3).save(os.path.join(out, "tall.png"))
    scene(20, 13, 4).save(os.path.join(out, "tiny.png"))
    rgba = np.array(scene(64, 48, 5).convert("RGBA"))
    yy, xx = np.mgrid[0:48, 0:64]
    rgba[..., 3] = np.clip(xx * 4 + rng.randint(0, 40, xx.shape), 0, 255)
    rgba[:10, :10, 3] = 0
    Image.fromarray(rgba, "RGBA").save(os.path.join(out, "rgba.png"))
    scene(80, 60, 6).convert("L").save(os.path.join(out, "gray.png"))
    pal = scene(60, 40, 7).convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    pal.save(os.path.join(out, "palette.gif"), transparency=3)
    scene(50, 70, 8).save(os.path.join(out, "image.bmp"))
    scene(90, 64, 9).save(os.path.join(out, "image.webp"), lossless=True)


def make_tokenizer(spec, out):
    reader = smollm2_gguf.GGUFReader(smollm2_gguf.find_gguf())
    tok, cfg = smollm2_gguf.build_tokenizer(reader)
    base = len(tok["model"]["vocab"])
    for i, content in enumerate(spec["added"]):
        entry = {"id": base + i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": False, "special": True}
        tok["added_tokens"].append(entry)
        cfg["added_tokens_decoder"][str(base + i)] = {k: v for k, v in entry.items() if k != "id"}
    cfg["additional_special_tokens"] = ["<fake_token_around_image>", "<image>", "<end_of_utterance>"]
    cfg["chat_template"] = TEMPLATE
    cfg["processor_class"] = "Idefics3Processor"
    cfg["vocab_size"] = base + len(spec["added"])
    assert cfg["vocab_size"] == spec["vocab"], cfg["vocab_size"]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)
    return AutoTokenizer.from_pretrained(out)


def part_of(name):
    if ".vision_model." in name:
        return "vision"
    if ".connector." in name:
        return "connector"
    return "text"


def build(name, spec):
    torch.manual_seed(spec["seed"])
    out = os.path.join(FIX, "models", name)
    shutil.rmtree(out, ignore_errors=True)
    tokenizer = make_tokenizer(spec, out)
    image_token_id = tokenizer.convert_tokens_to_ids(spec["image_token"])
    config = Idefics3Config(
        vision_config=dict(spec["vision"], hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6),
        text_config=dict(spec["text"], model_type="llama", vocab_size=spec["vocab"], hidden_act="silu",
                         bos_token_id=1, eos_token_id=2, pad_token_id=2, tie_word_embeddings=False),
        scale_factor=spec["scale"], image_token_id=image_token_id, tie_word_embeddings=False,
    )
    model = Idefics3ForConditionalGeneration(config).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("bias"):
                p.copy_(torch.randn_like(p) * 0.1)
            elif "norm" in pname:
                p.copy_(1.0 + torch.randn_like(p) * 0.1)
            elif pname.startswith("lm_head"):
                p.copy_(torch.randn_like(p) * 1.0)
            else:
                p.copy_(torch.randn_like(p) * 0.3)
            p.copy_(p.to(spec["dtypes"][part_of(pname)]).float())
    model.generation_config.eos_token_id = spec["eos"]
    model.generation_config.bos_token_id = 0 if name == "tiny-instruct" else 1
    model.generation_config.pad_token_id = 2
    model.save_pretrained(out)
    # Rewrite the weights in their storage dtypes (the names are the ones transformers wrote).
    path = os.path.join(out, "model.safetensors")
    sd = load_file(path)
    save_file({k: v.to(spec["dtypes"][part_of(k)]).contiguous() for k, v in sd.items()}, path, metadata={"format": "pt"})

    image_processor = Idefics3ImageProcessorPil(
        do_convert_rgb=True, do_resize=True, size={"longest_edge": spec["longest"]}, resample=1,
        do_image_splitting=True, max_image_size={"longest_edge": spec["tile"]}, do_rescale=True,
        rescale_factor=1 / 255, do_normalize=True, image_mean=[0.5] * 3, image_std=[0.5] * 3, do_pad=True,
    )
    seq = (spec["vision"]["image_size"] // spec["vision"]["patch_size"]) ** 2 // spec["scale"] ** 2
    processor = Idefics3Processor(image_processor, tokenizer, image_seq_len=seq, chat_template=TEMPLATE)
    if spec["published_layout"]:
        # The file layout of the published SmolVLM-256M-Instruct repository.
        pre = {"do_convert_rgb": True, "do_image_splitting": True, "do_normalize": True, "do_pad": True,
               "do_rescale": True, "do_resize": True, "image_mean": [0.5] * 3,
               "image_processor_type": "Idefics3ImageProcessor", "image_std": [0.5] * 3,
               "max_image_size": {"longest_edge": spec["tile"]}, "processor_class": "Idefics3Processor",
               "resample": 1, "rescale_factor": 0.00392156862745098, "size": {"longest_edge": spec["longest"]}}
        json.dump(pre, open(os.path.join(out, "preprocessor_config.json"), "w"), indent=2)
        json.dump({"image_seq_len": seq, "processor_class": "Idefics3Processor"},
                  open(os.path.join(out, "processor_config.json"), "w"), indent=2)
        json.dump({"chat_template": TEMPLATE}, open(os.path.join(out, "chat_template.json"), "w"), indent=2)
        json.dump({"additional_special_tokens": ["<fake_token_around_image>", "<image>", "<end_of_utterance>"],
                   "bos_token": "<|im_start|>", "eos_token": "<end_of_utterance>", "pad_token": "<|im_end|>",
                   "unk_token": "<|endoftext|>"},
                  open(os.path.join(out, "special_tokens_map.json"), "w"), indent=2)
    else:
        processor.save_pretrained(out)
    # Reloading the saved directory must give the same logits.
    again = Idefics3ForConditionalGeneration.from_pretrained(out, dtype=torch.float32).eval()
    ids = torch.tensor([[1, 100, 200, 300]])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, again(input_ids=ids).logits), "reload changed logits"
    return model, processor


def samples(t, n, seed):
    flat = t.detach().reshape(-1).double()
    idx = np.random.RandomState(seed).choice(flat.numel(), size=min(n, flat.numel()), replace=False)
    return [[int(i), float(flat[i])] for i in sorted(idx)]


def stats(t, seed):
    return {"shape": list(t.shape), "sum": float(t.double().sum()), "abs_sum": float(t.double().abs().sum()),
            "samples": samples(t, 64, seed)}


def run_case(model, processor, case):
    name, messages, images, split = case
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    pil = [Image.open(os.path.join(FIX, "images", p)) for p in images]
    kwargs = {} if split is None else {"do_image_splitting": split}
    inputs = processor(text=text, images=[pil] if pil else None, return_tensors="pt", **kwargs)
    captured = {}
    hooks = [
        model.model.vision_model.register_forward_hook(lambda m, i, o: captured.__setitem__("vision", o.last_hidden_state)),
        model.model.connector.register_forward_hook(lambda m, i, o: captured.__setitem__("connector", o)),
    ]
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1]
    for h in hooks:
        h.remove()
    with torch.no_grad():
        gen = model.generate(**inputs, max_new_tokens=MAX_NEW, do_sample=False, output_logits=True,
                             return_dict_in_generate=True)
    new = gen.sequences[0, inputs["input_ids"].shape[1]:].tolist()
    eos = model.generation_config.eos_token_id
    stopped = bool(new) and new[-1] == eos
    margins = [float(torch.topk(s[0], 2).values[0] - torch.topk(s[0], 2).values[1]) for s in gen.logits]
    top = torch.topk(logits, 10)
    g = {
        "name": name, "messages": messages, "images": images, "do_image_splitting": split, "prompt_text": text,
        "input_ids": inputs["input_ids"][0].tolist(), "pixel_values": None, "vision_output": None,
        "connector_output": None,
        "first_logits": {"argmax": int(logits.argmax()), "top": [[int(i), float(v)] for v, i in zip(top.values, top.indices)],
                         "samples": samples(logits, 64, 7), "sum": float(logits.double().sum()),
                         "abs_sum": float(logits.double().abs().sum())},
        "greedy": {"max_new_tokens": MAX_NEW, "tokens": new[:-1] if stopped else new, "stopped_on_eos": stopped,
                   "margins": margins},
    }
    if pil:
        pv = inputs["pixel_values"][0]
        u8 = torch.round((pv.double() + 1) * 127.5).to(torch.uint8).numpy()
        g["pixel_values"] = {"shape": list(pv.shape), "sum": float(pv.double().sum()),
                             "tile_u8_sha256": [hashlib.sha256(np.ascontiguousarray(t).tobytes()).hexdigest() for t in u8]}
        g["vision_output"] = stats(captured["vision"], 3)
        g["connector_output"] = stats(captured["connector"], 5)
    return g, inputs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", nargs=3, metavar=("MODEL", "CASE", "DIR"))
    a = ap.parse_args()
    torch.set_num_threads(2)
    make_images(os.path.join(FIX, "images"))
    os.makedirs(os.path.join(FIX, "goldens"), exist_ok=True)
    for name, spec in MODELS.items():
        if a.dump and a.dump[0] != name:
            continue
        model, processor = build(name, spec)
        cases = []
        for case in CASES:
            if a.dump and a.dump[1] != case[0]:
                continue
            g, inputs = run_case(model, processor, case)
            cases.append(g)
            n_img = sum(1 for t in g["input_ids"] if t == model.config.image_token_id)
            print(f"{name}/{g['name']}: tiles {g['pixel_values']['shape'][0] if g['pixel_values'] else 0}, "
                  f"prompt {len(g['input_ids'])} tokens ({n_img} image), min margin "
                  f"{min(g['greedy']['margins']):.4f}, tokens {g['greedy']['tokens'][:8]}")
            if a.dump:
                dump(model, inputs, a.dump[2])
        if not a.dump:
            meta = {"model": name, "transformers_version": transformers.__version__, "torch_version": torch.__version__,
                    "image_processor_class": type(processor.image_processor).__name__}
            with open(os.path.join(FIX, "goldens", f"{name}.json"), "w", encoding="utf-8") as f:
                json.dump({**meta, "cases": cases}, f, ensure_ascii=False, indent=1)


def dump(model, inputs, out):
    os.makedirs(out, exist_ok=True)
    with torch.no_grad():
        o = model(**inputs, output_hidden_states=True)
    np.save(os.path.join(out, "input_ids.npy"), inputs["input_ids"][0].numpy())
    if "pixel_values" in inputs:
        pv = inputs["pixel_values"][0]
        np.save(os.path.join(out, "pixel_values.npy"), pv.numpy())
        with torch.no_grad():
            v = model.model.vision_model(pixel_values=pv, output_hidden_states=True)
            for i, h in enumerate(v.hidden_states):
                np.save(os.path.join(out, f"vision_hidden_{i}.npy"), h.numpy())
            np.save(os.path.join(out, "vision_out.npy"), v.last_hidden_state.numpy())
            np.save(os.path.join(out, "connector_out.npy"), model.model.connector(v.last_hidden_state).numpy())
    for i, h in enumerate(o.hidden_states):
        np.save(os.path.join(out, f"text_hidden_{i}.npy"), h[0].numpy())
    np.save(os.path.join(out, "logits.npy"), o.logits[0].numpy())
    print(f"dumped to {out}")


if __name__ == "__main__":
    main()
