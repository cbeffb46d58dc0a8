#!/usr/bin/env python3
"""Drives the `smolvlm` CLI (and, with --anchors, llama.cpp, the original C engine and HF
transformers) on the same checkpoint and prints a markdown table of medians.

    python3 scripts/bench/run.py --model target/bench/smolvlm-256m [--runs 3] [--threads 2]
    python3 scripts/bench/run.py --model target/bench/smolvlm-256m --anchors --precisions auto,f32 \
        --llama-bin DIR --smol-vision-bin PATH --hf-python PATH

Ours: each measurement is its own process (`--json` stats): vision per tile (one tile,
`--no-split`), prefill tok/s for text prompts of about 37 and 100 tokens, for the 1-tile image
prompt and for an image prompt with splitting, decode tok/s (decode time only, prefill excluded)
after a short prompt and after the split image prompt (llama.cpp: tg at that depth, `-d`),
time to first token (the CLI's total time of the one-token image runs: preprocessing, vision,
prefill, first token), the same for a follow-up question in a `--chat` conversation about the
split image (its share of the first turn's is printed below the table), load time and peak RSS. One column per --precisions entry (auto: the CLI's
default; f32: `--precision f32`). A model without a vision tower (plain Llama) gets the text rows.
Each of our rounds starts with one untimed run (transformers is timed after a warm-up too).
--scaling adds ours on 1 thread and the speed-up of --threads over it, per stage.

Anchors (--anchors; each is "not run" with its reason when its path is missing or it fails):
  - llama.cpp: `llama-bench -t T -p <our prompt lengths> -n <decode tokens> -r 1 -o json` on a
    GGUF of the same decoder (scripts/bench/decoder_gguf.py, written once next to the model);
  - llama.cpp F32 (with --f32-weights): llama-bench on an F32 GGUF of that decoder, against ours
    on an F32 copy of the checkpoint (scripts/bench/f32_copy.py; auto mode runs it in f32);
  - llama-mtmd-cli (needs --llama-src and --hf-python): the decoder GGUF plus an mmproj GGUF that
    llama.cpp's own convert_hf_to_gguf.py writes; its time to first token with its default image
    slicing and its vision time per slice;
  - the original C engine (smol-vision): on a renamed copy (scripts/bench/smolvision_copy.py),
    image + "Describe.", at 1 and at <decode tokens> max tokens: its stderr line `Inference: T ms,
    N tokens (..., encoding: E ms, decoding: D ms)` gives vision (E), its decode rate (from the
    difference of the two runs), its prefill and time to first token (T and D of the one-token run
    less one decode step, which that run also does);
  - transformers f32 and bf16: scripts/bench/hf_anchor.py under --hf-python, one process per dtype.
Every round runs every measurement once (ours, each anchor), so slow drifts hit all columns alike;
medians are over the rounds. Machine floors (scripts/bench/floors.py) are measured first.
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLI = os.path.join(ROOT, "target", "release", "smolvlm")
IMAGE = os.path.join(ROOT, "examples", "sample.png")
BENCH = os.path.join(ROOT, "target", "bench")  # generated anchor inputs (GGUFs, renamed copies)
TIMEOUT = 3600

P37, P100 = "word " * 28, "word " * 91  # 37 and 100 prompt tokens with the chat template
IMAGE_PROMPT, DECODE_PROMPT = "Describe.", "Tell me a story."
CHAT_TURNS = "Describe.\nWhat colours do you see?\n"  # --chat: the split image, then a follow-up

RATE, TIME, SIZE = "rate", "time", "size"
# key: (label, kind, needs an image model). The label of "decode" is completed in main().
ROWS = {
    "vision": ("vision, 1 tile (ms)", TIME, True),
    "prefill37": ("prefill, ~37-token text (tok/s)", RATE, False),
    "prefill100": ("prefill, ~100-token text (tok/s)", RATE, False),
    "prefill_split": ("prefill, split image prompt (tok/s)", RATE, True),
    "prefill_tile": ("prefill, 1-tile image prompt (tok/s)", RATE, True),
    "decode": ("decode, {n} tokens after a short prompt (tok/s)", RATE, False),
    "decode_deep": ("decode, {n} tokens after the split image prompt (tok/s)", RATE, True),
    "ttft_tile": ("time to first token, 1-tile image (ms)", TIME, True),
    "ttft_split": ("time to first token, split image (ms)", TIME, True),
    "ttft_followup": ("time to first token, follow-up question in a chat (ms)", TIME, True),
    "load": ("load (ms)", TIME, False),
    "rss": ("peak RSS of the largest run (MiB)", SIZE, False),
}


def run_proc(cmd, env=None, timeout=TIMEOUT, stdin_text=""):
    """(exit code, stdout, stderr, peak RSS of that process in MiB); -9 after a timeout."""
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe, tempfile.TemporaryFile() as fi:
        fi.write(stdin_text.encode())
        fi.seek(0)
        p = subprocess.Popen(cmd, stdin=fi, stdout=fo, stderr=fe, env=env)
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        return (p.returncode, fo.read().decode(errors="replace"), fe.read().decode(errors="replace"),
                usage.ru_maxrss / 1024)


class AnchorError(Exception):
    pass


def checked(cmd, what, env=None):
    rc, out, err, rss = run_proc(cmd, env)
    if rc != 0:
        lines = err.strip().splitlines() or ["no output"]
        # An abort's own message (GGML_ASSERT, error: ...) rather than a debugger's last line.
        said = [l for l in lines if "GGML_ASSERT" in l or "error" in l.lower()]
        tail = (said or lines)[-1][:200]
        raise AnchorError(f"{what} exited with {rc}: {tail}")
    return out, err, rss


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


def stale(target, *sources):
    """True when target is missing or older than any source (the checkpoint, the script making it)."""
    return not os.path.exists(target) or any(os.path.getmtime(target) < os.path.getmtime(s) for s in sources)


def weights_file(d):
    files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
    return os.path.join(d, files[0]) if files else os.path.join(d, "config.json")


class Ours:
    """Our CLI at one precision; yields one sample per row per round."""

    def __init__(self, model, threads, precision, decode_tokens, vision):
        self.name = "ours" if precision == "auto" else f"ours {precision}"
        self.precision, self.model, self.threads = precision, model, threads
        d = model
        cases = [("prefill37", ["-d", d, "-p", P37, "--max-tokens", "1"]),
                 ("prefill100", ["-d", d, "-p", P100, "--max-tokens", "1"]),
                 ("decode", ["-d", d, "-p", DECODE_PROMPT, "--max-tokens", str(decode_tokens)]),
                 ("load", ["-d", d, "-p", "hi", "--max-tokens", "1"])]
        if vision:
            cases = [("vision", ["-d", d, "-i", IMAGE, "--no-split", "-p", IMAGE_PROMPT, "--max-tokens", "1"]),
                     *cases[:2],
                     ("split", ["-d", d, "-i", IMAGE, "--split", "-p", IMAGE_PROMPT, "--max-tokens", "1"]),
                     ("chat", ["-d", d, "-i", IMAGE, "--split", "--chat", "--max-tokens", "1"]),
                     ("deep", ["-d", d, "-i", IMAGE, "--split", "-p", IMAGE_PROMPT,
                               "--max-tokens", str(decode_tokens)]),
                     *cases[2:]]
        self.cases = cases
        self.tokens = {}  # prompt tokens / tiles per case (last round)
        self.chat = []  # (first turn ms, follow-up ms, follow-up positions computed, reused) per round
        self.info = {}

    def cmd(self, args):
        extra = [] if self.precision == "auto" else ["--precision", self.precision]
        return [CLI, *args, *extra, "-t", str(self.threads), "--json", "--silent"]

    def round(self):
        out = {}
        # One untimed run first: the round starts right after other tools, on a CPU that may
        # have idled or run something else (the first run then measured 20-40 % slower here),
        # and transformers is timed after an in-process warm-up too.
        run_proc(self.cmd(self.cases[0][1]))
        for case, args in self.cases:
            chat = case == "chat"
            rc, stdout, stderr, rss = run_proc(self.cmd(args), stdin_text=CHAT_TURNS if chat else "")
            if rc != 0:
                sys.exit(f"{' '.join(self.cmd(args))} failed ({rc}):\n{stderr}")
            if chat:
                first, follow = (json.loads(line)["stats"] for line in stdout.splitlines()[:2])
                out["ttft_followup"] = [follow["total_ms"]]
                self.chat.append((first["total_ms"], follow["total_ms"], follow["prefill_tokens"],
                                  follow["reused_tokens"]))
                out.setdefault("rss", []).append(rss)
                continue
            s = json.loads(stdout)["stats"]
            self.info = {"precision": s.get("precision", "?"), "isa": s.get("isa", "?")}
            out.setdefault("rss", []).append(rss)
            rate = s["prefill_tokens"] / s["prefill_ms"] * 1e3 if s["prefill_ms"] > 0 else 0.0
            self.tokens[case] = (s["prefill_tokens"], s["tiles"])
            if case == "vision":
                out["vision"] = [s["encode_ms"] / max(s["tiles"], 1)]
                out["prefill_tile"] = [rate]
                out["ttft_tile"] = [s["total_ms"]]
            elif case == "split":
                out["prefill_split"] = [rate]
                out["ttft_split"] = [s["total_ms"]]
            elif case.startswith("prefill"):
                out[case] = [rate]
            elif case in ("decode", "deep"):
                key = "decode" if case == "decode" else "decode_deep"
                out[key] = [s["decode_tokens"] / s["decode_ms"] * 1e3 if s["decode_ms"] > 0 else 0.0]
            elif case == "load":
                out["load"] = [s["load_ms"]]
        out["rss"] = [max(out["rss"])]
        return out


class LlamaCpp:
    def __init__(self, bin_dir, model, threads, decode_tokens, python, dtype="bf16", gguf=None):
        self.name = "llama.cpp" if dtype == "bf16" else f"llama.cpp {dtype.upper()}"
        self.text_only = dtype != "bf16"  # the F32 and quantized columns answer text rows only
        self.exe = os.path.join(bin_dir or "", "llama-bench")
        if not bin_dir:
            raise AnchorError("LLAMA_CPP_BIN is not set")
        if not os.access(self.exe, os.X_OK):
            raise AnchorError(f"no llama-bench in {bin_dir}")
        suffix = "-decoder.gguf" if dtype == "bf16" else f"-decoder-{dtype}.gguf"
        self.gguf = gguf or os.path.join(BENCH, os.path.basename(os.path.normpath(model)) + suffix)
        script = os.path.join(HERE, "decoder_gguf.py")
        if gguf is None and stale(self.gguf, weights_file(model), script):
            os.makedirs(BENCH, exist_ok=True)
            checked([python, script, "--model", model, "--out", self.gguf, "--dtype", dtype],
                    "decoder_gguf.py")
        self.threads, self.decode_tokens = threads, decode_tokens
        self.lengths = {}  # row -> prompt length, set from our runs
        self.depth = 0  # context before the deep decode (our split image prompt), set from our runs

    def round(self):
        rows = {}
        for k, length in self.lengths.items():
            rows.setdefault(length, []).append(k)
        cmd = [self.exe, "-m", self.gguf, "-t", str(self.threads), "-p", ",".join(str(n) for n in rows),
               "-n", str(self.decode_tokens), "-r", "1", "-o", "json"]
        self.cmd = " ".join(os.path.basename(c) if c == self.exe else c for c in cmd)
        out, _, _ = checked(cmd, "llama-bench")
        res = {}
        for t in json.loads(out):
            ts = t.get("samples_ts") or [t["avg_ts"]]
            if t["n_gen"] == 0 and t["n_prompt"] in rows:
                for k in rows[t["n_prompt"]]:
                    res[k] = list(ts)
            elif t["n_prompt"] == 0 and t["n_gen"] == self.decode_tokens:
                res["decode"] = list(ts)
        self.build = json.loads(out)[0].get("build_commit", "?") if out.strip() else "?"
        if self.depth:  # tg after a context as long as our split image prompt
            cmd = [self.exe, "-m", self.gguf, "-t", str(self.threads), "-p", "0", "-n", str(self.decode_tokens),
                   "-d", str(self.depth), "-r", "1", "-o", "json"]
            self.cmd_deep = " ".join(os.path.basename(c) if c == self.exe else c for c in cmd)
            out, _, _ = checked(cmd, "llama-bench -d")
            for t in json.loads(out):
                if t["n_gen"] == self.decode_tokens and t.get("n_depth", 0) == self.depth:
                    res["decode_deep"] = list(t.get("samples_ts") or [t["avg_ts"]])
        return res


STAMP = re.compile(r"^(\d+)\.(\d+)\.(\d+)\.(\d+) ")  # llama.cpp log time since start: m.ss.mmm.µµµ
ENCODED = re.compile(r"mtmd batch encoding done in (\d+) ms")


class MtmdCli:
    """llama.cpp's `llama-mtmd-cli` end to end: the same decoder GGUF as llama-bench plus an mmproj
    GGUF of the vision tower and connector written by llama.cpp's own convert_hf_to_gguf.py
    (--mmproj, bf16), the image with llama.cpp's default slicing, one token, greedy."""
    name = "llama-mtmd-cli"

    def __init__(self, bin_dir, src_dir, model, threads, python, hf_python, vision):
        self.exe = os.path.join(bin_dir or "", "llama-mtmd-cli")
        if not bin_dir:
            raise AnchorError("LLAMA_CPP_BIN is not set")
        if not os.access(self.exe, os.X_OK):
            raise AnchorError(f"no llama-mtmd-cli in {bin_dir}")
        if not vision:
            raise AnchorError("needs an image model")
        convert = os.path.join(src_dir or "", "convert_hf_to_gguf.py")
        if not src_dir or not os.path.exists(convert):
            raise AnchorError("LLAMA_CPP_SRC (a llama.cpp source tree with convert_hf_to_gguf.py) is not set")
        if not hf_python:
            raise AnchorError("HF_PYTHON (torch + transformers, for convert_hf_to_gguf.py) is not set")
        base = os.path.join(BENCH, os.path.basename(os.path.normpath(model)))
        self.gguf, self.mmproj = base + "-decoder.gguf", base + "-mmproj.gguf"
        if stale(self.gguf, weights_file(model)):
            checked([python, os.path.join(HERE, "decoder_gguf.py"), "--model", model, "--out", self.gguf],
                    "decoder_gguf.py")
        if stale(self.mmproj, weights_file(model)):
            env = dict(os.environ, PYTHONPATH=os.path.join(src_dir, "gguf-py"))
            checked([hf_python, convert, model, "--mmproj", "--outtype", "bf16", "--outfile", self.mmproj],
                    "convert_hf_to_gguf.py --mmproj", env)
        self.cmd = [self.exe, "-m", self.gguf, "--mmproj", self.mmproj, "--image", IMAGE, "-p", IMAGE_PROMPT,
                    "-n", "1", "-t", str(threads), "--temp", "0"]
        self.tiles = None

    def round(self):
        start = time.monotonic()
        out, err, rss = checked(self.cmd, "llama-mtmd-cli")
        wall = (time.monotonic() - start) * 1e3
        lines = [l for l in (out + "\n" + err).splitlines() if STAMP.match(l)]
        loaded = None
        encodes = []
        for line in lines:
            m, sec, ms, us = (int(x) for x in STAMP.match(line).groups())
            t = (m * 60 + sec) * 1e3 + ms + us / 1e3
            if loaded is None and "main: loading model" in line:
                loaded = t  # both models are loaded; the image is read and sliced after this line
            e = ENCODED.search(line)
            if e:
                encodes.append(float(e.group(1)))
        if loaded is None or not encodes:
            raise AnchorError("no 'loading model' / 'encoding done' lines in its log")
        self.tiles = len(encodes)
        return {"vision": [statistics.median(encodes)], "ttft_split": [wall - loaded], "rss": [rss]}


INFERENCE = re.compile(r"Inference: ([\d.]+) ms, (\d+) tokens \(.*encoding: ([\d.]+)\s*ms, decoding: ([\d.]+)\s*ms\)")
PROMPT = re.compile(r"Prompt: (\d+) tokens")


class CEngine:
    name = "C engine"

    def __init__(self, exe, model, threads, decode_tokens, python, vision):
        if not exe:
            raise AnchorError("SMOL_VISION_BIN is not set")
        if not os.access(exe, os.X_OK):
            raise AnchorError(f"{exe} is not an executable")
        if not vision:
            raise AnchorError("needs an image model")
        self.copy = os.path.join(BENCH, os.path.basename(os.path.normpath(model)) + "-smolvision")
        script = os.path.join(HERE, "smolvision_copy.py")
        if stale(os.path.join(self.copy, "config.json"), weights_file(model), script):
            checked([python, script, "--model", model, "--out", self.copy],
                    "smolvision_copy.py")
        self.exe, self.threads, self.decode_tokens = exe, threads, decode_tokens
        self.env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
        self.prompt_tokens = None

    def one(self, max_tokens):
        cmd = [self.exe, "-d", self.copy, "-i", IMAGE, "-p", IMAGE_PROMPT, "-t", str(self.threads),
               "--max-tokens", str(max_tokens)]
        _, err, rss = checked(cmd, "smol-vision", self.env)
        m = INFERENCE.search(err)
        if not m:
            raise AnchorError("no 'Inference:' line on its stderr")
        p = PROMPT.search(err)
        if p:
            self.prompt_tokens = int(p.group(1))
        total, n, enc, dec = float(m.group(1)), int(m.group(2)), float(m.group(3)), float(m.group(4))
        return total, n, enc, dec, rss

    def round(self):
        t1, n1, e1, d1, r1 = self.one(1)
        tn, nn, en, dn, rn = self.one(self.decode_tokens)
        res = {"vision": [e1, en], "rss": [max(r1, rn)]}
        if nn > n1 and dn > d1:
            step = (dn - d1) / (nn - n1)  # ms per decode step
            res["decode"] = [1e3 / step]
            # the one-token run: prefill (prompt - 1 positions + the last one) then one more step
            res["ttft_tile"] = [t1 - n1 * step]
            if self.prompt_tokens:
                res["prefill_tile"] = [self.prompt_tokens / (d1 - n1 * step) * 1e3]
        else:
            self.note = f"stopped after {nn} tokens: no decode rate"
        return res


class Transformers:
    def __init__(self, python, model, threads, decode_tokens, dtype, vision):
        self.name = f"transformers {dtype}"
        if not python:
            raise AnchorError("HF_PYTHON is not set")
        if not os.access(python, os.X_OK):
            raise AnchorError(f"{python} is not an executable")
        rc, _, err, _ = run_proc([python, "-c", "import torch, transformers, PIL"], timeout=300)
        if rc != 0:
            raise AnchorError(f"{python} cannot import torch, transformers and PIL")
        self.cmd = [python, os.path.join(HERE, "hf_anchor.py"), "--model", model, "--image", IMAGE,
                    "--text-prompt", P37, "--text-prompt", P100, "--image-prompt", IMAGE_PROMPT,
                    "--decode-prompt", DECODE_PROMPT, "--decode-tokens", str(decode_tokens),
                    "--dtypes", dtype, "--threads", str(threads), "--runs", "1"]
        if not vision:
            self.cmd.append("--text-only")
        self.tokens = {}

    def round(self):
        out, _, rss = checked(self.cmd, "hf_anchor.py")
        info = json.loads(out)
        self.versions = f"torch {info['torch']}, transformers {info['transformers']}"
        r = info["results"][0]
        res = {"load": [r["load_ms"]], "rss": [rss]}
        if "decode_tok_s" in r:
            res["decode"] = [r["decode_tok_s"]]
        for i, row in enumerate(["prefill37", "prefill100"]):
            res[row] = [r[f"prefill_{i}_tok_s"]]
            self.tokens[row] = r["prefill_tokens"][i]
        for key, row in [("vision_tile_ms", "vision"), ("ttft_no_split_ms", "ttft_tile"),
                         ("ttft_split_ms", "ttft_split")]:
            if key in r:
                res[row] = [r[key]]
        for key, row in [("ttft_no_split_tokens", "ttft_tile"), ("ttft_split_tokens", "ttft_split")]:
            if key in r:
                self.tokens[row] = r[key]
        return res


def fmt(v, kind):
    if kind == SIZE:
        return f"{max(v):.0f}"
    med = statistics.median(v)
    return f"{med:.1f} ({min(v):.1f}–{max(v):.1f})"


def ratio(ours, anchor, kind):
    if not ours or not anchor:
        return "–"
    pick = max if kind == SIZE else statistics.median
    o, a = pick(ours), pick(anchor)
    if o <= 0 or a <= 0:
        return "–"
    return f"{(o / a if kind == RATE else a / o):.2f}×"


def quant_gguf(model, qt, vision, llama_bin, not_run):
    """The decoder of `model` as a GGUF of file type qt, written once under target/bench/: by our
    `smolvlm quantize` for a text model (its tensors equal llama-quantize's, tests/gguf_export.rs),
    by llama.cpp's llama-quantize from the BF16 decoder GGUF for a vision model. None (and a
    not-run reason) when it cannot be made."""
    out = os.path.join(BENCH, os.path.basename(os.path.normpath(model)) + f"-decoder-{qt}.gguf")
    os.makedirs(BENCH, exist_ok=True)
    if not vision:
        if stale(out, weights_file(model), CLI):
            checked([CLI, "quantize", "-d", model, "-o", out, "--type", qt], "smolvlm quantize")
        return out
    exe = os.path.join(llama_bin or "", "llama-quantize")
    if not llama_bin or not os.access(exe, os.X_OK):
        not_run[f"ours {qt}"] = "a vision model's decoder is quantized by llama-quantize: none in LLAMA_CPP_BIN"
        return None
    bf16 = os.path.join(BENCH, os.path.basename(os.path.normpath(model)) + "-decoder.gguf")
    script = os.path.join(HERE, "decoder_gguf.py")
    if stale(bf16, weights_file(model), script):
        checked([sys.executable, script, "--model", model, "--out", bf16, "--dtype", "bf16"], "decoder_gguf.py")
    if stale(out, bf16):
        checked([exe, bf16, out, qt.upper()], "llama-quantize")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--precisions", default="auto", help="comma-separated: auto, f32, bf16")
    ap.add_argument("--anchors", action="store_true", help="also run llama.cpp, the C engine, transformers")
    ap.add_argument("--llama-bin", default=os.environ.get("LLAMA_CPP_BIN"))
    ap.add_argument("--smol-vision-bin", default=os.environ.get("SMOL_VISION_BIN"))
    ap.add_argument("--hf-python", default=os.environ.get("HF_PYTHON"))
    ap.add_argument("--llama-src", default=os.environ.get("LLAMA_CPP_SRC"),
                    help="llama.cpp source tree (its convert_hf_to_gguf.py writes the mmproj for llama-mtmd-cli)")
    ap.add_argument("--f32-weights", action="store_true",
                    help="also an f32 copy of the checkpoint: ours on it against llama.cpp on an F32 GGUF")
    ap.add_argument("--quant", default="",
                    help="comma-separated GGUF file types (q8_0, q4_1, q4_k_m, ...): ours in f32 and int8"
                         " mode on a GGUF of the decoder in that type, and llama-bench on the same file")
    ap.add_argument("--no-floors", action="store_true", help="skip the machine floors (with --anchors)")
    ap.add_argument("--scaling", action="store_true",
                    help="also run ours (auto) on 1 thread: a column and its speed-up to --threads")
    a = ap.parse_args()
    d, t, n = a.model, a.threads, a.decode_tokens
    cfg = json.load(open(os.path.join(d, "config.json")))
    vision = "vision_config" in cfg
    rows = {k: (label.format(n=n), kind) for k, (label, kind, img) in ROWS.items() if vision or not img}

    ours = [Ours(d, t, p, n, vision) for p in a.precisions.split(",") if p]
    if a.scaling and t != 1:
        one = Ours(d, 1, "auto", n, vision)
        one.name = "ours, 1 thread"
        ours.append(one)
    if a.f32_weights:
        copy = os.path.join(BENCH, os.path.basename(os.path.normpath(d)) + "-f32")
        script = os.path.join(HERE, "f32_copy.py")
        if stale(os.path.join(copy, "config.json"), weights_file(d), script):
            os.makedirs(BENCH, exist_ok=True)
            rc, _, err, _ = run_proc([sys.executable, script, "--model", d, "--out", copy])
            if rc != 0:
                sys.exit(f"f32_copy.py failed:\n{err}")
        f32w = Ours(copy, t, "auto", n, False)
        f32w.name = "ours f32 weights"
        ours.append(f32w)
    anchors, not_run = [], {}
    quant = []  # (type, file, our column names)
    for qt in [q for q in a.quant.split(",") if q]:
        path = quant_gguf(d, qt, vision, a.llama_bin, not_run)
        if path is None:
            continue
        cols = []
        for prec in ("f32", "int8"):
            c = Ours(path, t, prec, n, False)
            c.name = f"ours {qt} {prec}"
            ours.append(c)
            cols.append(c.name)
        quant.append((qt, path, cols))
    floors = None
    if a.anchors:
        makers = [("llama.cpp", lambda: LlamaCpp(a.llama_bin, d, t, n, sys.executable)),
                  ("llama.cpp F32", lambda: LlamaCpp(a.llama_bin, d, t, n, sys.executable, "f32")),
                  ("llama-mtmd-cli", lambda: MtmdCli(a.llama_bin, a.llama_src, d, t, sys.executable,
                                                     a.hf_python, vision)),
                  ("C engine", lambda: CEngine(a.smol_vision_bin, d, t, n, sys.executable, vision)),
                  ("transformers f32", lambda: Transformers(a.hf_python, d, t, n, "f32", vision)),
                  ("transformers bf16", lambda: Transformers(a.hf_python, d, t, n, "bf16", vision))]
        for qt, path, _ in quant:
            makers.append((f"llama.cpp {qt.upper()}",
                           lambda qt=qt, path=path: LlamaCpp(a.llama_bin, d, t, n, sys.executable, qt, path)))
        for name, make in makers:
            if name == "llama.cpp F32" and not a.f32_weights:
                continue
            try:
                anchors.append(make())
            except AnchorError as e:
                not_run[name] = str(e)
            except Exception as e:  # an anchor never takes the whole run down
                not_run[name] = f"{e.__class__.__name__}: {e}"
        if not a.no_floors:
            rc, out, err, _ = run_proc([sys.executable, os.path.join(HERE, "floors.py"), "--threads", str(t),
                                        "--build-dir", BENCH], timeout=600)
            try:
                floors = json.loads(out) if rc == 0 else {"error": (err.strip().splitlines() or ["?"])[-1]}
            except ValueError:
                floors = {"error": "floors.py printed no JSON"}

    values = {c.name: {} for c in ours + anchors}
    for r in range(a.runs):  # alternate: every measurement once per round
        for c in ours + list(anchors):
            if c.name in not_run:
                continue
            if isinstance(c, LlamaCpp) and not c.lengths:
                tok = ours[0].tokens
                c.lengths = {row: tok[case][0] for row, case in [
                    ("prefill37", "prefill37"), ("prefill100", "prefill100"),
                    ("prefill_split", "split"), ("prefill_tile", "vision")] if case in tok
                    and not (c.text_only and case in ("split", "vision"))}
                if not c.text_only and "split" in tok:
                    c.depth = tok["split"][0]
            if isinstance(c, Ours):
                res = c.round()
            else:
                try:
                    res = c.round()
                except AnchorError as e:
                    not_run[c.name] = f"failed in round {r + 1}: {e}"
                    continue
                except Exception as e:
                    not_run[c.name] = f"failed in round {r + 1}: {e.__class__.__name__}: {e}"
                    continue
            for k, v in res.items():
                values[c.name].setdefault(k, []).extend(v)

    for key in ("prefill37", "prefill100"):  # a chat template with a default system prompt is longer
        toks = ours[0].tokens.get(key, (0, 0))[0]
        if toks and toks != int(key[7:]):
            rows[key] = (f"prefill, {toks}-token text (tok/s)", RATE)
    info = run_proc([CLI, "-d", d, "-p", "hi", "--max-tokens", "1", "--debug", "-t", str(t)])[2]
    sysinfo = next((l.strip() for l in info.splitlines() if "simd:" in l), "?")
    print(f"Model: {d}; threads: {t}; {a.runs} runs each, median (min–max)")
    print(f"Machine: {cpu_line()}")
    print(f"Library: {sysinfo}")
    if floors is not None:
        if "error" in floors:
            print(f"Floors: not measured ({floors['error']})")
        else:
            by = ", ".join(f"{k}: {v:.1f}" for k, v in floors.get("by_streams", {}).items())
            print(f"Floors ({t} threads): read bandwidth {floors['read_gb_s']:.1f} GB/s"
                  f" ({floors['method']}{'; GB/s by streams per thread ' + by if by else ''});"
                  f" sgemm 4096³ {floors['sgemm_gflops']:.0f} GFLOP/s ({floors['blas']})")
    print()

    columns = [c.name for c in ours] + [name for name in
                                        ["llama.cpp", "llama.cpp F32", "llama-mtmd-cli", "C engine",
                                         "transformers f32", "transformers bf16"]
                                        if a.anchors and (name != "llama.cpp F32" or a.f32_weights)]
    columns += [f"llama.cpp {qt.upper()}" for qt, _, _ in quant if a.anchors]
    base = ours[0].name
    f32 = next((c.name for c in ours if c.precision == "f32"), base)
    versus = {"transformers f32": f32, "llama.cpp F32": "ours f32 weights"}
    ratios = [(anchor, versus.get(anchor, base)) for anchor in columns[len(ours):]
              if anchor not in not_run and not any(anchor == f"llama.cpp {qt.upper()}" for qt, _, _ in quant)]
    for qt, _, cols in quant:
        if a.anchors and f"llama.cpp {qt.upper()}" not in not_run:
            ratios += [(f"llama.cpp {qt.upper()}", c) for c in cols]
    if a.scaling and t != 1:
        ratios.insert(0, ("ours, 1 thread", base))
    head = ["stage", *columns, *[f"{o}/{x}" for x, o in ratios]]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for key, (label, kind) in rows.items():
        cells = [label]
        for col in columns:
            v = values.get(col, {}).get(key)
            cells.append("not run" if col in not_run else fmt(v, kind) if v else "–")
        for anchor, o in ratios:
            cells.append(ratio(values[o].get(key), values.get(anchor, {}).get(key), kind))
        print("| " + " | ".join(cells) + " |")
    print()
    if ratios:
        print("Ratio columns (ours/anchor): >1 always means ours is faster (or smaller): tok/s rows are"
              " ours ÷ anchor, time and RSS rows anchor ÷ ours. Transformers f32 is compared with ours in"
              " f32 mode where that column is run, every other anchor with ours in auto mode.")
    for c in ours:
        print(f"- {c.name}: precision {c.info.get('precision', '?')}, kernels {c.info.get('isa', '?')}"
              + (f" ({os.path.basename(c.model)})" if c.model.endswith(".gguf") else "")
              + (f" ({c.model}: every tensor widened to F32 by scripts/bench/f32_copy.py)"
                 if c.name == "ours f32 weights" else ""))
    names = {"vision": "vision, 1 tile / 1-tile image prompt", "prefill37": "prefill, ~37-token text",
             "prefill100": "prefill, ~100-token text", "split": "prefill, split image prompt"}
    for case, (toks, tiles) in ours[0].tokens.items():
        if case in names:
            print(f"- {names[case]}: {toks} prompt tokens, {tiles} tiles")
    for c in ours:
        if c.chat:
            first, follow = statistics.median(x[0] for x in c.chat), statistics.median(x[1] for x in c.chat)
            print(f"- {c.name}, follow-up question in a chat (`--chat`, the split image then \"What colours do you"
                  f" see?\", 1 token each): {follow:.0f} ms = {100 * follow / first:.1f} % of the first turn's"
                  f" {first:.0f} ms (medians); it computed {c.chat[-1][2]} positions and reused {c.chat[-1][3]}")
    for c in anchors:
        if c.name in not_run:
            continue
        if isinstance(c, LlamaCpp):
            print(f"- {c.name} (build {getattr(c, 'build', '?')}): `{c.cmd}` once per round: pp at our"
                  f" prompt lengths, tg{n} from an empty context"
                  + (f"; `{c.cmd_deep}`: tg{n} after {c.depth} positions" if getattr(c, "cmd_deep", None) else "")
                  + (" (F32 GGUF of the same decoder; compared with ours on the f32 copy of the checkpoint)"
                     if c.name == "llama.cpp F32" else
                     f" ({c.name.split()[-1]} GGUF of the same decoder, the file the ours {c.name.split()[-1].lower()}"
                     " columns load)" if c.text_only else ""))
        elif isinstance(c, MtmdCli):
            print(f"- llama-mtmd-cli: {os.path.basename(c.gguf)} + {os.path.basename(c.mmproj)} (llama.cpp's"
                  f" convert_hf_to_gguf.py --mmproj, bf16), its default slicing: {c.tiles} image chunks"
                  f" (ours: {ours[0].tokens.get('split', (0, '?'))[1]} tiles); vision = median of its per-chunk"
                  f" 'encoding done' times; time to first token = its wall time at `-n 1` less the time"
                  f" stamped on its 'loading model' line (both models loaded; the image is read after it)")
        elif isinstance(c, CEngine):
            print(f"- C engine: {c.exe} on {c.copy}, OPENBLAS_NUM_THREADS={t}; 1-tile image prompt of"
                  f" {c.prompt_tokens or '?'} tokens; vision = its 'encoding' (image load, vision, connector);"
                  f" decode from runs at 1 and {n} tokens, after that image prompt"
                  + (f"; {c.note}" if getattr(c, "note", None) else ""))
        elif isinstance(c, Transformers):
            toks = ", ".join(f"{k} {v}" for k, v in c.tokens.items())
            print(f"- {c.name}: {getattr(c, 'versions', '?')}; prompt tokens: {toks}; load = from_pretrained;"
                  f" time to first token includes its processor; RSS of its own process (one dtype)")
    for name, why in not_run.items():
        print(f"- {name}: not run: {why}")


if __name__ == "__main__":
    sys.exit(main())
