"""Python bindings for the smolvlm C library (ctypes; no compiled extension).

    import smolvlm
    model = smolvlm.Model("SmolVLM-256M-Instruct")
    ctx = model.context()
    print(ctx.generate("Describe this image.", images=[smolvlm.Image.from_file("photo.jpg")]))
    for piece in ctx.stream("Tell me a story."):
        print(piece, end="", flush=True)

The library is found through SMOLVLM_LIB (a path), else libsmolvlm.so / .dylib next to this file,
in target/release of the source tree, or on the system library path.
"""
import ctypes
import json
import os
import queue
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, c_bool, c_char_p, c_double, c_float, c_int32, c_size_t,
                    c_uint32, c_uint64, c_void_p)

__all__ = ["Model", "Context", "Image", "SmolVLMError", "version", "system_info"]

STATUS = ["OK", "NULL_ARG", "INVALID_ARG", "IO", "BAD_MODEL", "BAD_IMAGE", "CANCELLED", "BUSY", "OOM", "PANIC"]
SPLIT = {None: 0, True: 1, False: 2}
PRECISION = {"auto": 0, "f32": 1, "bf16": 2}


def _find_library():
    env = os.environ.get("SMOLVLM_LIB")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    names = ["libsmolvlm.dylib", "libsmolvlm.so"] if os.uname().sysname == "Darwin" else ["libsmolvlm.so"]
    for d in (here, os.path.join(here, "..", "..", "target", "release")):
        for n in names:
            if os.path.exists(os.path.join(d, n)):
                return os.path.join(d, n)
    return names[-1]


_lib = ctypes.CDLL(_find_library())

PROGRESS_CB = CFUNCTYPE(c_bool, c_float, c_void_p)
PIECE_CB = CFUNCTYPE(c_bool, POINTER(ctypes.c_char), c_size_t, c_int32, c_void_p)
ABORT_CB = CFUNCTYPE(c_bool, c_void_p)


class _ModelParams(Structure):
    _fields_ = [("size", c_size_t), ("progress", PROGRESS_CB), ("user_data", c_void_p)]


class _GenerateParams(Structure):
    _fields_ = [("size", c_size_t), ("n_threads", c_int32), ("max_tokens", c_int32), ("temperature", c_float),
                ("top_k", c_int32), ("top_p", c_float), ("repetition_penalty", c_float), ("seed", c_uint64),
                ("split", c_int32), ("on_piece", PIECE_CB), ("should_abort", ABORT_CB), ("user_data", c_void_p),
                ("precision", c_int32), ("prompt_cache", c_int32)]


class _Stats(Structure):
    _fields_ = [("size", c_size_t), ("load_ms", c_double), ("tiles", c_int32), ("encode_ms", c_double),
                ("prefill_tokens", c_int32), ("prefill_ms", c_double), ("decode_tokens", c_int32),
                ("decode_ms", c_double), ("decode_tokens_per_s", c_double), ("total_ms", c_double),
                ("threads", c_int32), ("precision", c_int32), ("reused_tokens", c_int32)]


def _sig(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype, f.argtypes = restype, list(argtypes)
    return f


_model_load = _sig("smolvlm_model_load", c_int32, c_char_p, POINTER(_ModelParams), POINTER(c_void_p))
_model_free = _sig("smolvlm_model_free", None, c_void_p)
_model_params_default = _sig("smolvlm_model_params_default", None, POINTER(_ModelParams))
_ctx_new = _sig("smolvlm_ctx_new", c_int32, c_void_p, POINTER(c_void_p))
_ctx_free = _sig("smolvlm_free", None, c_void_p)
_generate_params_default = _sig("smolvlm_generate_params_default", None, POINTER(_GenerateParams))
_ctx_generate = _sig("smolvlm_ctx_generate", c_int32, c_void_p, c_char_p, c_char_p, POINTER(c_void_p), c_size_t,
                     POINTER(_GenerateParams), POINTER(c_void_p))
_ctx_generate_chat = _sig("smolvlm_ctx_generate_chat", c_int32, c_void_p, c_char_p, POINTER(c_void_p), c_size_t,
                          POINTER(_GenerateParams), POINTER(c_void_p))
_ctx_reset = _sig("smolvlm_ctx_reset", c_int32, c_void_p)
_ctx_state_save = _sig("smolvlm_ctx_state_save", c_int32, c_void_p, c_char_p, c_size_t, POINTER(c_size_t))
_ctx_state_load = _sig("smolvlm_ctx_state_load", c_int32, c_void_p, c_char_p, c_size_t)
_ctx_get_stats = _sig("smolvlm_ctx_get_stats", c_int32, c_void_p, POINTER(_Stats))
_string_free = _sig("smolvlm_string_free", None, c_void_p)
_image_from_pixels = _sig("smolvlm_image_from_pixels", c_int32, c_char_p, c_uint32, c_uint32, c_size_t, c_int32,
                          POINTER(c_void_p))
_image_from_bytes = _sig("smolvlm_image_from_bytes", c_int32, c_char_p, c_size_t, POINTER(c_void_p))
_image_from_file = _sig("smolvlm_image_from_file", c_int32, c_char_p, POINTER(c_void_p))
_image_free = _sig("smolvlm_image_free", None, c_void_p)
_last_error = _sig("smolvlm_last_error", c_char_p)
_version = _sig("smolvlm_version", c_char_p)
_system_info = _sig("smolvlm_system_info", c_char_p)


class SmolVLMError(RuntimeError):
    """A failed call: `status` is the C status name, the message says what was wrong."""

    def __init__(self, status):
        self.status = STATUS[status] if 0 <= status < len(STATUS) else str(status)
        super().__init__(f"{self.status}: {_last_error().decode('utf-8', 'replace')}")


def _check(status):
    if status != 0:
        raise SmolVLMError(status)


def version():
    return _version().decode()


def system_info():
    return _system_info().decode()


class Image:
    """An 8-bit RGB image held by the library."""

    def __init__(self, handle):
        self._h = handle

    @classmethod
    def from_file(cls, path):
        h = c_void_p()
        _check(_image_from_file(os.fsencode(path), ctypes.byref(h)))
        return cls(h)

    @classmethod
    def from_bytes(cls, data):
        h = c_void_p()
        _check(_image_from_bytes(bytes(data), len(data), ctypes.byref(h)))
        return cls(h)

    @classmethod
    def from_pixels(cls, pixels, width, height, channels=3, stride=None):
        """`pixels`: bytes-like, rows of `stride` bytes (default width*channels), RGB (3) or RGBA (4)."""
        h = c_void_p()
        fmt = {3: 0, 4: 1}.get(channels)
        if fmt is None:
            raise ValueError("channels must be 3 (RGB) or 4 (RGBA)")
        stride = width * channels if stride is None else stride
        _check(_image_from_pixels(bytes(pixels), width, height, stride, fmt, ctypes.byref(h)))
        return cls(h)

    def close(self):
        if self._h:
            _image_free(self._h)
            self._h = None

    __del__ = close


class Model:
    """A loaded model directory; thread-safe, shared by any number of contexts."""

    def __init__(self, model_dir, progress=None):
        self._h = None
        params = _ModelParams()
        _model_params_default(ctypes.byref(params))
        if progress is not None:
            params.progress = PROGRESS_CB(lambda f, _ud: bool(progress(f)))
        h = c_void_p()
        _check(_model_load(os.fsencode(model_dir), ctypes.byref(params), ctypes.byref(h)))
        self._h = h

    def context(self):
        return Context(self)

    def close(self):
        if self._h:
            _model_free(self._h)
            self._h = None

    __del__ = close


class Context:
    """Generation state (KV cache, statistics). Use one context per thread."""

    def __init__(self, model):
        self._h = None
        self._model = model  # keeps the model alive as long as the context
        h = c_void_p()
        _check(_ctx_new(model._h, ctypes.byref(h)))
        self._h = h

    def _params(self, max_tokens, temperature, top_k, top_p, repetition_penalty, seed, split, threads, precision,
                prompt_cache):
        if precision not in PRECISION:
            raise ValueError(f"precision must be one of {sorted(PRECISION)}, not {precision!r}")
        p = _GenerateParams()
        _generate_params_default(ctypes.byref(p))
        p.precision = PRECISION[precision]
        p.prompt_cache = 1 if prompt_cache else 0
        p.max_tokens, p.temperature, p.top_k, p.top_p = max_tokens, temperature, top_k, top_p
        p.repetition_penalty, p.seed, p.split, p.n_threads = repetition_penalty, seed, SPLIT[split], threads
        return p

    def generate(self, prompt=None, images=(), system_prompt=None, messages=None, on_piece=None, should_abort=None,
                 max_tokens=256, temperature=0.0, top_k=0, top_p=1.0, repetition_penalty=1.0, seed=0, split=None,
                 threads=0, precision="auto", prompt_cache=True):
        """Returns the generated text. `messages` (HF chat format) replaces prompt/system_prompt; its image
        entries take `images` in order. `on_piece(str) -> bool|None` streams; returning False stops.
        `should_abort() -> bool` cancels (raises SmolVLMError CANCELLED). With `prompt_cache` (the default)
        the context reuses what it computed for earlier prompts: a follow-up question costs only its new
        tokens, and the answer is that of a fresh run; False computes everything."""
        p = self._params(max_tokens, temperature, top_k, top_p, repetition_penalty, seed, split, threads, precision,
                         prompt_cache)
        errors = []
        if on_piece is not None:
            def piece(ptr, n, _token, _ud):
                try:
                    return on_piece(ctypes.string_at(ptr, n).decode("utf-8")) is not False
                except BaseException as e:  # never unwind through C
                    errors.append(e)
                    return False
            p.on_piece = PIECE_CB(piece)
        if should_abort is not None:
            p.should_abort = ABORT_CB(lambda _ud: bool(should_abort()))
        imgs = (c_void_p * max(len(images), 1))(*[i._h for i in images])
        out = c_void_p()
        if messages is not None:
            status = _ctx_generate_chat(self._h, json.dumps(messages).encode(), imgs, len(images), ctypes.byref(p),
                                        ctypes.byref(out))
        else:
            status = _ctx_generate(self._h, prompt.encode() if prompt is not None else None,
                                   system_prompt.encode() if system_prompt is not None else None, imgs, len(images),
                                   ctypes.byref(p), ctypes.byref(out))
        if errors:
            if out:
                _string_free(out)
            raise errors[0]
        _check(status)
        try:
            return ctypes.string_at(out).decode("utf-8")
        finally:
            _string_free(out)

    def stream(self, prompt=None, **kwargs):
        """Yields pieces as they are generated (generation runs on a worker thread)."""
        q = queue.Queue()
        done = object()

        def run():
            try:
                self.generate(prompt, on_piece=q.put, **kwargs)
                q.put(done)
            except BaseException as e:
                q.put(e)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        while True:
            item = q.get()
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
        t.join()

    def stats(self):
        s = _Stats()
        s.size = ctypes.sizeof(_Stats)
        _check(_ctx_get_stats(self._h, ctypes.byref(s)))
        out = {name: getattr(s, name) for name, _ in _Stats._fields_ if name != "size"}
        out["precision"] = {v: k for k, v in PRECISION.items()}.get(out["precision"], "auto")
        return out

    def reset(self):
        """Forgets what the context kept from earlier prompts."""
        _check(_ctx_reset(self._h))

    def save_state(self):
        """The context's reusable state as bytes (for `load_state` on a context of the same model)."""
        size = c_size_t()
        _check(_ctx_state_save(self._h, None, 0, ctypes.byref(size)))
        buf = ctypes.create_string_buffer(size.value)
        _check(_ctx_state_save(self._h, buf, size.value, ctypes.byref(size)))
        return buf.raw[:size.value]

    def load_state(self, data):
        """Restores `save_state` bytes: the next generate continues as the saving context would."""
        _check(_ctx_state_load(self._h, bytes(data), len(data)))

    def chat(self, images=(), system_prompt=None):
        """A conversation on this context about `images` (they belong to its first message)."""
        return Chat(self, images, system_prompt)

    def close(self):
        if self._h:
            _ctx_free(self._h)
            self._h = None

    __del__ = close


class Chat:
    """A conversation: each `ask` sends the whole conversation so far plus the new message; the context's
    prompt cache makes that cost only the new tokens. Replies join the conversation as trimmed text."""

    def __init__(self, context, images=(), system_prompt=None):
        self.context, self.images = context, list(images)
        self.messages = [{"role": "system", "content": system_prompt}] if system_prompt else []

    def ask(self, text, **kwargs):
        """Returns the reply to `text`; keyword arguments are those of `Context.generate`."""
        first = not any(m["role"] == "user" for m in self.messages)
        parts = [{"type": "image"} for _ in self.images] if first else []
        parts.append({"type": "text", "text": text})
        messages = self.messages + [{"role": "user", "content": parts}]
        reply = self.context.generate(messages=messages, images=self.images, **kwargs)
        self.messages = messages + [{"role": "assistant", "content": [{"type": "text", "text": reply.strip()}]}]
        return reply
