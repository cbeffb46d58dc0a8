"""pytest tests of the smolvlm Python package (bindings/python) on the tiny fixture model, run by
scripts/test.sh against the pip-installed package and the installed library. Compares with the
`smolvlm` CLI's output for the same inputs."""
import ctypes
import json
import os
import re
import subprocess
import tempfile

import pytest
import smolvlm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MODEL = os.path.join(ROOT, "tests", "fixtures", "models", "tiny-256m")
IMAGES = os.path.join(ROOT, "tests", "fixtures", "images")
CLI = os.path.join(ROOT, "target", "release", "smolvlm")


def cli_json(*args):
    out = subprocess.run([CLI, "-d", MODEL, "--json", "--silent", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def cli_text(*args):
    return cli_json(*args)["text"]


def read_ppm(path):
    data = open(path, "rb").read()
    magic, w, h, maxv, rest = data.split(maxsplit=4)
    assert magic == b"P6" and maxv == b"255"
    return rest, int(w), int(h)


model = smolvlm.Model(MODEL)
ctx = model.context()


def test_text_only_equals_cli():
    assert ctx.generate("Tell me a story.", max_tokens=16) == cli_text("-p", "Tell me a story.", "--max-tokens", "16")


def test_quantized_load_equals_the_cli():
    # Q4_0 changes this prompt's text on the tiny model, so a load that ignored the option fails.
    plain = cli_text("-p", "Tell me a story.", "--max-tokens", "16")
    want = cli_json("-p", "Tell me a story.", "--max-tokens", "16", "--quantize", "q4_0")
    assert want["stats"]["quantized"] == "q4_0" and want["text"] != plain
    q = smolvlm.Model(MODEL, quantize="q4_0")
    assert q.context().generate("Tell me a story.", max_tokens=16) == want["text"]
    with pytest.raises(ValueError):
        smolvlm.Model(MODEL, quantize="q3_k")


def test_image_sources_agree_and_equal_cli():
    path = os.path.join(IMAGES, "square.png")
    want = cli_text("-i", path, "-p", "What is it?", "--max-tokens", "12")
    px, w, h = read_ppm(os.path.join(IMAGES, "square.ppm"))
    rgba = b"".join(px[i:i + 3] + b"\xff" for i in range(0, len(px), 3))
    for img in (smolvlm.Image.from_file(path), smolvlm.Image.from_bytes(open(path, "rb").read()),
                smolvlm.Image.from_pixels(px, w, h), smolvlm.Image.from_pixels(rgba, w, h, channels=4)):
        assert ctx.generate("What is it?", images=[img], max_tokens=12) == want


def test_streaming_pieces_make_the_text_and_can_stop():
    pieces = []
    text = ctx.generate("Tell me a story.", max_tokens=16, on_piece=pieces.append)
    assert "".join(pieces) == text and len(pieces) > 1
    assert "".join(ctx.stream("Tell me a story.", max_tokens=16)) == text
    few = []
    stopped = ctx.generate("Tell me a story.", max_tokens=16, on_piece=lambda p: few.append(p) or len(few) < 2)
    assert len(few) == 2 and stopped == "".join(few)


def test_chat_messages_and_stats():
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "A small picture with shapes."}]},
            {"role": "user", "content": [{"type": "text", "text": "What colors are in it?"}]}]
    png = os.path.join(IMAGES, "square.png")
    # A fresh computation: the stats are compared with the CLI's one-shot run.
    text = ctx.generate(messages=msgs, images=[smolvlm.Image.from_file(png)], max_tokens=8, prompt_cache=False)
    s = ctx.stats()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(msgs, f)
    try:
        want = cli_json("-i", png, "--messages", f.name, "--max-tokens", "8")
    finally:
        os.unlink(f.name)
    assert text == want["text"], (text, want["text"])
    # The counts are the CLI's for the same chat; the times are the library's own.
    w = want["stats"]
    assert (s["tiles"], s["prefill_tokens"], s["decode_tokens"]) == (w["tiles"], w["prefill_tokens"], w["decode_tokens"]), (s, w)
    assert s["tiles"] == 17 and s["prefill_tokens"] == len(want["prompt_tokens"]) and s["prefill_tokens"] > s["tiles"], s
    # 8 tokens, or fewer only when the model said EOS (the CLI reports why it stopped).
    assert s["decode_tokens"] == 8 or (s["decode_tokens"] < 8 and w["stop"] == "eos"), (s, w["stop"])
    assert s["load_ms"] > 0 and s["encode_ms"] > 0 and s["prefill_ms"] > 0 and s["decode_ms"] > 0, s
    assert abs(s["decode_tokens_per_s"] - s["decode_tokens"] * 1e3 / s["decode_ms"]) <= 1e-9 * s["decode_tokens_per_s"], s
    assert s["total_ms"] + 1e-6 >= s["encode_ms"] + s["prefill_ms"] + s["decode_ms"], s


def test_chat_helper_turns_equal_fresh_runs():
    img = smolvlm.Image.from_file(os.path.join(IMAGES, "square.png"))
    chat, fresh = ctx.chat(images=[img]), smolvlm.Context(model)
    prev = 0
    for i, q in enumerate(["What is this?", "What colors are in it?", "Is there text?"]):
        got = chat.ask(q, max_tokens=8)
        s = ctx.stats()
        want = fresh.generate(messages=chat.messages[:-1], images=[img], max_tokens=8, prompt_cache=False)
        assert got == want, (i + 1, got, want)
        if i > 0:
            assert s["tiles"] == 0 and s["reused_tokens"] >= prev, (i + 1, s, prev)
        prev = s["prefill_tokens"] + s["reused_tokens"]
    assert chat.messages[-1] == {"role": "assistant", "content": [{"type": "text", "text": got.strip()}]}
    # The state restored into another context continues as this one does.
    state = ctx.save_state()
    fresh.load_state(state)
    follow = chat.messages + [{"role": "user", "content": [{"type": "text", "text": "And the shapes?"}]}]
    assert fresh.generate(messages=follow, images=[img], max_tokens=8) == ctx.generate(messages=follow, images=[img],
                                                                                       max_tokens=8)
    assert fresh.stats()["reused_tokens"] >= prev
    try:
        fresh.load_state(state[:-1])
    except smolvlm.SmolVLMError as e:
        assert "session state" in str(e), e
    else:
        raise AssertionError("a truncated state was accepted")
    ctx.reset()
    chat.ask("Once more?", max_tokens=2)
    assert ctx.stats()["reused_tokens"] == 0
    fresh.close()


C_TYPES = {"size_t": ctypes.c_size_t, "double": ctypes.c_double, "float": ctypes.c_float, "int32_t": ctypes.c_int32,
           "uint64_t": ctypes.c_uint64}


def header_struct(name):
    """The layout of `struct name` as include/smolvlm.h declares it: [(field, offset, size)]."""
    src = open(os.path.join(ROOT, "include", "smolvlm.h")).read()
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    body = re.search(r"typedef struct %s \{(.*?)\} %s;" % (name, name), src, flags=re.S).group(1)
    fields = []
    for decl in filter(None, (d.strip() for d in body.split(";"))):
        m = re.fullmatch(r"(\w+)\s*(\*?)\s*(\w+)", decl)
        assert m, f"{name}: cannot read the declaration {decl!r}"
        ctype, ptr, field = m.groups()
        # Pointers and the *_cb function-pointer typedefs are pointer-sized.
        fields.append((field, ctypes.c_void_p if ptr or ctype.endswith("_cb") else C_TYPES[ctype]))
    layout = type(name, (ctypes.Structure,), {"_fields_": fields})
    return [(f, getattr(layout, f).offset, getattr(layout, f).size) for f, _ in fields], ctypes.sizeof(layout)


def binding_struct(cls):
    return [(f, getattr(cls, f).offset, getattr(cls, f).size) for f, _ in cls._fields_], ctypes.sizeof(cls)


def test_precision_runs_as_asked_and_is_reported():
    for mode in ("f32", "bf16", "int8"):
        ctx.generate("Tell me a story.", max_tokens=2, precision=mode)
        assert ctx.stats()["precision"] == mode, (mode, ctx.stats())
    try:
        ctx.generate("hi", max_tokens=1, precision="fp8")
        raise AssertionError("fp8 accepted")
    except ValueError:
        pass


def test_structs_match_the_header_and_the_library():
    # Field names, offsets and sizes of the ctypes Structures = those of the header's structs.
    for cls, name in ((smolvlm._ModelParams, "smolvlm_model_params"), (smolvlm._GenerateParams, "smolvlm_generate_params"),
                      (smolvlm._Stats, "smolvlm_stats")):
        assert binding_struct(cls) == header_struct(name), (name, binding_struct(cls), header_struct(name))
    # The *_default functions write sizeof(struct) of the library into `size`: into a large
    # buffer filled with 0xAB, so that a field the binding places wrongly reads garbage.
    for cls, fill_default, defaults in (
            (smolvlm._ModelParams, smolvlm._model_params_default, {}),
            (smolvlm._GenerateParams, smolvlm._generate_params_default,
             {"n_threads": 0, "max_tokens": 256, "temperature": 0.0, "top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0,
              "seed": 0, "split": 0, "precision": 0, "prompt_cache": 1})):
        buf = ctypes.create_string_buffer(b"\xab" * 4096, 4096)
        fill_default(ctypes.cast(buf, ctypes.POINTER(cls)))
        lib_size = ctypes.c_size_t.from_buffer(buf).value
        assert lib_size == ctypes.sizeof(cls), (cls.__name__, lib_size, ctypes.sizeof(cls))
        assert buf.raw[lib_size:] == b"\xab" * (4096 - lib_size), f"{cls.__name__}: written past its size"
        got = cls.from_buffer(buf)
        assert {k: getattr(got, k) for k in defaults} == defaults, (cls.__name__, {k: getattr(got, k) for k in defaults})
        pointers = [f for f, t in cls._fields_ if f != "size" and f not in defaults]
        assert all(not ctypes.cast(getattr(got, f), ctypes.c_void_p).value for f in pointers), (cls.__name__, pointers)
    # smolvlm_ctx_get_stats copies min(caller's size, its sizeof) bytes: with size = 4096 into
    # buffers filled with 0xAA and with 0x55, the bytes it wrote are equal in both, and from
    # its sizeof on they keep their different fills.
    ctx.generate("Tell me a story.", max_tokens=4)
    bufs = []
    for fill in (b"\xaa", b"\x55"):
        buf = ctypes.create_string_buffer(fill * 4096, 4096)
        ctypes.c_size_t.from_buffer(buf).value = 4096
        assert smolvlm._ctx_get_stats(ctx._h, ctypes.cast(buf, ctypes.POINTER(smolvlm._Stats))) == 0
        bufs.append(buf.raw)
    lib_size = next(i for i in range(4096 + 1) if all(a != b for a, b in zip(bufs[0][i:], bufs[1][i:])))
    assert lib_size == ctypes.sizeof(smolvlm._Stats), (lib_size, ctypes.sizeof(smolvlm._Stats))
    got = smolvlm._Stats.from_buffer_copy(bufs[0][:ctypes.sizeof(smolvlm._Stats)])
    named = ctx.stats()
    named["precision"] = smolvlm.PRECISION[named["precision"]]  # stats() names the mode
    assert {f: getattr(got, f) for f, _ in smolvlm._Stats._fields_ if f != "size"} == named, "fields differ"
    assert got.decode_tokens == 4 and got.tiles == 0, (got.decode_tokens, got.tiles)


def test_errors_raise_with_status_and_message():
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


def test_callback_exceptions_surface_in_python():
    def boom(_piece):
        raise KeyError("from callback")
    try:
        ctx.generate("Tell me a story.", max_tokens=4, on_piece=boom)
    except KeyError:
        pass
    else:
        raise AssertionError("exception lost")


def test_stream_stops_when_the_loop_is_left():
    pieces = ctx.stream("Tell me a long story.", max_tokens=4000)
    first = next(pieces)
    pieces.close()  # what `break` in a for loop does: the generation is asked to stop and joined
    assert first
    # The context is free at once (the worker returned), and the stopped run left no statistics.
    assert ctx.generate("Tell me a story.", max_tokens=3) == cli_text("-p", "Tell me a story.", "--max-tokens", "3")
    assert ctx.stats()["decode_tokens"] == 3
    with pytest.raises(smolvlm.SmolVLMError) as e:
        list(ctx.stream("Tell me a story.", max_tokens=8, should_abort=lambda: True))
    assert e.value.status == "CANCELLED"


def test_library_lookup_order(monkeypatch, tmp_path):
    monkeypatch.setenv("SMOLVLM_LIB", "/some/where/libsmolvlm.so")
    assert smolvlm._candidates() == ["/some/where/libsmolvlm.so"]
    monkeypatch.delenv("SMOLVLM_LIB")
    pkg = tmp_path / "smolvlm"
    pkg.mkdir()
    name = "libsmolvlm.dylib" if smolvlm.sys.platform == "darwin" else "libsmolvlm.so"
    (pkg / name).write_bytes(b"")
    monkeypatch.setattr(smolvlm, "__file__", str(pkg / "__init__.py"))
    found = smolvlm._candidates()
    assert found[0] == str(pkg / name)
    assert found[-2:] == (["libsmolvlm.0.dylib", "libsmolvlm.dylib"] if name.endswith("dylib")
                          else ["libsmolvlm.so.0", "libsmolvlm.so"])


def test_package_metadata():
    assert smolvlm.__version__ == smolvlm.version()
    if os.environ.get("SMOLVLM_EXPECT_INSTALLED"):
        # scripts/test.sh: the pip-installed package (not the source tree) on the installed library.
        assert "site-packages" in smolvlm.__file__, smolvlm.__file__
        assert os.path.exists(os.path.join(os.path.dirname(smolvlm.__file__), "py.typed"))
        assert smolvlm.library_path() == "libsmolvlm.so.0", smolvlm.library_path()


def test_image_pixel_limit():
    path = os.path.join(IMAGES, "square.png")
    assert smolvlm.set_max_image_pixels(100) == 178956970
    try:
        with pytest.raises(smolvlm.SmolVLMError) as e:
            smolvlm.Image.from_file(path)
        assert e.value.status == "BAD_IMAGE" and "exceeds the limit of 100 pixels" in str(e.value)
    finally:
        assert smolvlm.set_max_image_pixels(0) == 100
    smolvlm.Image.from_file(path)
