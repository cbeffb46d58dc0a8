#!/usr/bin/env python3
"""Goldens for the real SmolLM2-135M-Instruct weights: transformers' greedy tokens and
tokenization (tests/fixtures/goldens/smollm2-135m.json and smollm2-tokenize.json).
Needs torch + transformers (requirements-goldens.txt); CI only reads the committed goldens.

    python3 tests/reference/real_goldens.py
"""
import json
import os
import subprocess
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models", "smollm2-135m-instruct")
OUT = os.path.join(ROOT, "tests", "fixtures", "goldens")
MAX_NEW = 48

LONG = (
    "The lighthouse stood on a narrow spit of rock at the mouth of the harbour. For nearly two hundred "
    "years its keepers had climbed the one hundred and twelve steps each evening to light the lamp, "
    "first with whale oil, later with kerosene, and finally with an electric bulb that needed no one at "
    "all. The last keeper, a woman named Ada Pryce, left in 1987 when the light was automated. She had "
    "lived there for thirty-one years with her husband, who repaired the fishing boats of the village, "
    "and their three children, who rowed across the harbour to school every morning unless the sea was "
    "too rough. In winter storms the waves broke over the gallery and the whole tower trembled, but "
    "the glass never cracked. Ada kept a logbook in which she recorded the weather, the ships that "
    "passed, and the birds that struck the lantern during the autumn migration: mostly thrushes and "
    "starlings, sometimes an owl. When the village council later turned the keeper's cottage into a "
    "small museum, the logbooks were the first things they put on display, and visitors still read "
    "them for hours. Today the light flashes white every ten seconds and can be seen for eighteen "
    "nautical miles. The steps are open to the public on summer weekends, and from the top you can see "
    "the whole coastline, the islands to the south, and on a clear day the mountains far inland."
)

CASES = [
    ("capital", [{"role": "user", "content": "What is the capital of France?"}]),
    ("french_emoji", [{"role": "user", "content": "Écris une phrase sur l'été à Paris 🌞, s'il te plaît."}]),
    ("chinese", [{"role": "user", "content": "请用一句话介绍一下你自己。"}]),
    ("code_digits", [{"role": "user", "content": "Write a Python function that returns 12345 * 678."}]),
    ("long_context", [{"role": "user", "content": LONG + "\n\nQuestion: In which year did the last keeper leave, and what was her name?"}]),
    ("system_multiturn", [
        {"role": "system", "content": "You are a concise assistant. Answer in one sentence."},
        {"role": "user", "content": "Name a fruit that is yellow."},
        {"role": "assistant", "content": "A banana is yellow."},
        {"role": "user", "content": "And one that is red?"},
    ]),
    ("system_user", [
        {"role": "system", "content": "You are a pirate. Speak like one."},
        {"role": "user", "content": "How is the weather today?"},
    ]),
]

TOKENIZE = [
    "Hello, world!", "12345 + 678 = 13023", "   leading and  double  spaces", "tabs\tand\nnewlines\n\n\n",
    "Émile a mangé des crêpes à Noël.", "日本語のテキストと中文文本", "emoji 👍🏽 family 👨‍👩‍👧‍👦 done",
    "مرحبا بالعالم", "नमस्ते दुनिया", "<|im_start|>user\nhi<|im_end|>", "https://example.com/a?b=1&c=2",
    "def f(x):\n    return x ** 2  # square", "CamelCaseWordsAndsnake_case_words", "'quoted' \"double\" `back`",
    "3.14159265358979", "1,000,000 and 1.000.000", "a\u00a0non-breaking space", "zero\u200bwidth",
    "ALL CAPS SENTENCE!!!", "mixed 123abc456 tokens", "   ", "\n", "x" * 40, "The quick brown fox.",
    "naïve café résumé", "Ω≈ç√∫˜µ≤≥÷", "<image>not special here</image>", "line1\r\nline2",
    "SELECT * FROM t WHERE id = 42;", "¿Qué tal? ¡Bien!",
]


def main():
    if not os.path.exists(os.path.join(MODEL, "model.safetensors")):
        subprocess.run([sys.executable, os.path.join(ROOT, "tests/reference/smollm2_gguf.py"), "--out", MODEL], check=True)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(MODEL)
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()
    rng = torch.Generator().manual_seed(1234)
    sample_ids = torch.randint(0, model.config.vocab_size, (32,), generator=rng).tolist()
    cases = []
    for name, messages in CASES:
        text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        enc = tok(text, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=MAX_NEW, do_sample=False, output_logits=True,
                                 return_dict_in_generate=True)
        gen = out.sequences[0, enc["input_ids"].shape[1]:].tolist()
        eos = set([model.generation_config.eos_token_id] if isinstance(model.generation_config.eos_token_id, int)
                  else model.generation_config.eos_token_id)
        stopped = bool(gen) and gen[-1] in eos
        tokens = gen[:-1] if stopped else gen
        margins = []
        for step in out.logits:
            top = torch.topk(step[0].float(), 2).values
            margins.append(float(top[0] - top[1]))
        first = out.logits[0][0].float()
        top10 = torch.topk(first, 10)
        cases.append({
            "name": name, "messages": messages, "prompt_text": text,
            "input_ids": enc["input_ids"][0].tolist(), "tokens": tokens, "stopped_on_eos": stopped,
            "margins": margins,
            "first_logits": {
                "argmax": int(first.argmax()),
                "top": [[int(i), float(v)] for v, i in zip(top10.values, top10.indices)],
                "samples": [[i, float(first[i])] for i in sample_ids],
                "sum": float(first.double().sum()),
            },
            "text": tok.decode(tokens, skip_special_tokens=False),
        })
        print(f"{name}: {enc['input_ids'].shape[1]} prompt tokens, min margin {min(margins):.3f}: {cases[-1]['text']!r}")
    os.makedirs(OUT, exist_ok=True)
    meta = {"model": "smollm2-135m-instruct", "transformers_version": transformers.__version__,
            "torch_version": torch.__version__}
    with open(os.path.join(OUT, "smollm2-135m.json"), "w", encoding="utf-8") as f:
        json.dump({**meta, "cases": cases}, f, ensure_ascii=False, indent=1)
    toks = [{"text": s, "ids": tok(s)["input_ids"]} for s in TOKENIZE]
    with open(os.path.join(OUT, "smollm2-tokenize.json"), "w", encoding="utf-8") as f:
        json.dump({**meta, "cases": toks}, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
