"""Tests of bindings/python/smolvlm.py on the tiny fixture model (stdlib only; run by scripts/test.sh).
Compares with the `smolvlm` CLI's output for the same inputs."""
import json
import os
import subprocess
import sys
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
import smolvlm  # noqa: E402

MODEL = os.path.join(ROOT, "tests", "fixtures", "models", "tiny-256m")
IMAGES = os.path.join(ROOT, "tests", "fixtures", "images")
CLI = os.path.join(ROOT, "target", "release", "smolvlm")


def cli_text(*args):
    out = subprocess.run([CLI, "-d", MODEL, "--json", "--silent", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["text"]


def read_ppm(path):
    data = open(path, "rb").read()
    magic, w, h, maxv, rest = data.split(maxsplit=4)
    assert magic == b"P6" and maxv == b"255"
    return rest, int(w), int(h)


model = smolvlm.Model(MODEL)
ctx = model.context()
tests = []


def test(f):
    tests.append(f)
    return f


@test
def text_only_equals_cli():
    assert ctx.generate("Tell me a story.", max_tokens=16) == cli_text("-p", "Tell me a story.", "--max-tokens", "16")


@test
def image_sources_agree_and_equal_cli():
    path = os.path.join(IMAGES, "square.png")
    want = cli_text("-i", path, "-p", "What is it?", "--max-tokens", "12")
    px, w, h = read_ppm(os.path.join(IMAGES, "square.ppm"))
    rgba = b"".join(px[i:i + 3] + b"\xff" for i in range(0, len(px), 3))
    for img in (smolvlm.Image.from_file(path), smolvlm.Image.from_bytes(open(path, "rb").read()),
                smolvlm.Image.from_pixels(px, w, h), smolvlm.Image.from_pixels(rgba, w, h, channels=4)):
        assert ctx.generate("What is it?", images=[img], max_tokens=12) == want


@test
def streaming_pieces_make_the_text_and_can_stop():
    pieces = []
    text = ctx.generate("Tell me a story.", max_tokens=16, on_piece=pieces.append)
    assert "".join(pieces) == text and len(pieces) > 1
    assert "".join(ctx.stream("Tell me a story.", max_tokens=16)) == text
    few = []
    stopped = ctx.generate("Tell me a story.", max_tokens=16, on_piece=lambda p: few.append(p) or len(few) < 2)
    assert len(few) == 2 and stopped == "".join(few)


@test
def chat_messages_and_stats():
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "A small picture with shapes."}]},
            {"role": "user", "content": [{"type": "text", "text": "What colors are in it?"}]}]
    img = smolvlm.Image.from_file(os.path.join(IMAGES, "square.png"))
    text = ctx.generate(messages=msgs, images=[img], max_tokens=8)
    assert isinstance(text, str)
    s = ctx.stats()
    assert s["tiles"] == 17 and 0 < s["decode_tokens"] <= 8, s


@test
def errors_raise_with_status_and_message():
    for call, status in [(lambda: smolvlm.Model("/nonexistent/model"), "IO"),
                         (lambda: smolvlm.Image.from_bytes(b"not an image"), "BAD_IMAGE"),
                         (lambda: ctx.generate("   "), "INVALID_ARG"),
                         (lambda: ctx.generate("hi", max_tokens=-1), "INVALID_ARG"),
                         (lambda: ctx.generate("hi", should_abort=lambda: True), "CANCELLED"),
                         (lambda: smolvlm.Model(MODEL, progress=lambda f: False), "CANCELLED")]:
        try:
            call()
        except smolvlm.SmolVLMError as e:
            assert e.status == status and len(str(e)) > len(status) + 2, (status, str(e))
        else:
            raise AssertionError(f"expected {status}")


@test
def callback_exceptions_surface_in_python():
    def boom(_piece):
        raise KeyError("from callback")
    try:
        ctx.generate("Tell me a story.", max_tokens=4, on_piece=boom)
    except KeyError:
        pass
    else:
        raise AssertionError("exception lost")


passed = failed = 0
for t in tests:
    try:
        t()
        passed += 1
    except Exception:
        failed += 1
        print(f"FAIL {t.__name__}")
        traceback.print_exc()
print(f"python: {smolvlm.version()}, {smolvlm.system_info()}")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
