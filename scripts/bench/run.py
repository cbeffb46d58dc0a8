#!/usr/bin/env python3
"""Drives the `smolvlm` CLI on random full-size models and prints a markdown table of medians.

    python3 scripts/bench/run.py --model target/bench/smolvlm-256m [--runs 3] [--threads 2]

Each measurement is its own process (`--json` stats): vision per tile (one 512/384 tile,
`--no-split`), prefill tok/s for text prompts of about 37 and 100 tokens and for an image prompt
with splitting, decode tok/s (decode time only, prefill excluded), load time and peak RSS.
Anchors (llama.cpp, the original C engine, transformers) are not run yet.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.path.join(ROOT, "target", "release", "smolvlm")
IMAGE = os.path.join(ROOT, "examples", "sample.png")


def run(args, threads):
    """One CLI run: (stats, peak RSS in MiB of that process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run([CLI, *args, "-t", str(threads), "--json", "--silent"], check=True,
                         capture_output=True, text=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest so far; a run that is not the largest reports the old max.
    return json.loads(out.stdout)["stats"], max(peak, before) / 1024


def cpu_line():
    model, flags = platform.processor() or "?", set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = [f for f in ["avx2", "fma", "f16c", "avx512f", "avx512_bf16", "amx_bf16"] if f in flags]
    return f"{model}; {os.cpu_count()} CPUs; {' '.join(isa)}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decode-tokens", type=int, default=64)
    a = ap.parse_args()
    d, t = a.model, a.threads
    cases = {
        "vision, 1 tile (ms)": (["-d", d, "-i", IMAGE, "--no-split", "-p", "Describe.", "--max-tokens", "1"],
                                lambda s: s["encode_ms"] / max(s["tiles"], 1)),
        "prefill, ~37-token text (tok/s)": (["-d", d, "-p", "word " * 28, "--max-tokens", "1"],
                                            lambda s: s["prefill_tokens"] / s["prefill_ms"] * 1e3),
        "prefill, ~100-token text (tok/s)": (["-d", d, "-p", "word " * 91, "--max-tokens", "1"],
                                             lambda s: s["prefill_tokens"] / s["prefill_ms"] * 1e3),
        "prefill, split image prompt (tok/s)": (["-d", d, "-i", IMAGE, "--split", "-p", "Describe.",
                                                 "--max-tokens", "1"],
                                                lambda s: s["prefill_tokens"] / s["prefill_ms"] * 1e3),
        f"decode, {a.decode_tokens} tokens after a short prompt (tok/s)": (
            ["-d", d, "-p", "Tell me a story.", "--max-tokens", str(a.decode_tokens)],
            lambda s: s["decode_tokens"] / s["decode_ms"] * 1e3 if s["decode_ms"] > 0 else 0.0),
        "load (ms)": (["-d", d, "-p", "hi", "--max-tokens", "1"], lambda s: s["load_ms"]),
    }
    values = {k: [] for k in cases}
    extra = {}
    rss = []
    for _ in range(a.runs):  # alternate the cases within each round
        for name, (args, metric) in cases.items():
            s, peak = run(args, t)
            values[name].append(metric(s))
            rss.append(peak)
            if name.startswith("prefill"):
                extra[name.split(" (")[0]] = f"{s['prefill_tokens']} prompt tokens, {s['tiles']} tiles"
    info = subprocess.run([CLI, "-d", d, "-p", "hi", "--max-tokens", "1", "--debug", "-t", str(t)],
                          capture_output=True, text=True).stderr
    sysinfo = next((l.strip() for l in info.splitlines() if "simd:" in l), "?")
    print(f"Model: {d}; threads: {t}; {a.runs} runs each, median (min–max)")
    print(f"Machine: {cpu_line()}")
    print(f"Library: {sysinfo}")
    print()
    print("| stage | ours |")
    print("|---|---|")
    for name, v in values.items():
        print(f"| {name} | {statistics.median(v):.1f} ({min(v):.1f}–{max(v):.1f}) |")
    print(f"| peak RSS of the largest run (MiB) | {max(rss):.0f} |")
    print()
    for k, v in extra.items():
        print(f"- {k}: {v}")


if __name__ == "__main__":
    sys.exit(main())
