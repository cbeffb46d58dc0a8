"""Python bindings for the smolvlm C library (ctypes; no compiled extension).

    import smolvlm
    model = smolvlm.Model("SmolVLM-256M-Instruct")
    ctx = model.context()
    print(ctx.generate("Describe this image.", images=[smolvlm.Image.from_file("photo.jpg")]))
    for piece in ctx.stream("Tell me a story."):
        print(piece, end="", flush=True)

The library is found through SMOLVLM_LIB (a path), else libsmolvlm next to this package, else in
target/release when the package runs from the source tree, else on the system library path
(libsmolvlm.so.0 / libsmolvlm.0.dylib as installed, then the unversioned name).
"""
from __future__ import annotations

import ctypes
import json
import os
import queue
import sys
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, c_bool, c_char_p, c_double, c_float, c_int32, c_size_t,
                    c_uint32, c_uint64, c_void_p)
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Union

__all__ = ["Model", "Context", "Chat", "Image", "SmolVLMError", "version", "system_info", "library_path",
           "set_max_image_pixels"]
__version__ = "0.1.0"

STATUS = ["OK", "NULL_ARG", "INVALID_ARG", "IO", "BAD_MODEL", "BAD_IMAGE", "CANCELLED", "BUSY", "OOM", "PANIC"]
SPLIT: Dict[Optional[bool], int] = {None: 0, True: 1, False: 2}
PRECISION = {"auto": 0, "f32": 1, "bf16": 2, "int8": 3}

Message = Dict[str, Any]
PathLike = Union[str, "os.PathLike[str]"]


def _candidates() -> List[str]:
    """Where the library is looked for, in order (see the module docstring)."""
    env = os.environ.get("SMOLVLM_LIB")
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    darwin = sys.platform == "darwin"
    files = ["libsmolvlm.dylib"] if darwin else ["libsmolvlm.so"]
    found = [os.path.join(d, f) for d in (here, os.path.join(here, "..", "..", "..", "target", "release"))
             for f in files]
    system = ["libsmolvlm.0.dylib", "libsmolvlm.dylib"] if darwin else ["libsmolvlm.so.0", "libsmolvlm.so"]
    return [p for p in found if os.path.exists(p)] + system


def _load() -> ctypes.CDLL:
    errors = []
    for name in _candidates():
        try:
            return ctypes.CDLL(name)
        except OSError as e:
            errors.append(f"{name}: {e}")
    raise ImportError("smolvlm: cannot load the C library (set SMOLVLM_LIB to its path, or install it with "
                      "scripts/install.sh): " + "; ".join(errors))


_lib = _load()

PROGRESS_CB = CFUNCTYPE(c_bool, c_float, c_void_p)
PIECE_CB = CFUNCTYPE(c_bool, POINTER(ctypes.c_char), c_size_t, c_int32, c_void_p)
ABORT_CB = CFUNCTYPE(c_bool, c_void_p)


class _ModelParams(Structure):
    _fields_ = [("size", c_size_t), ("progress", PROGRESS_CB), ("user_data", c_void_p), ("quantize", c_int32)]


# smolvlm_quantize: the block formats the decoder's weights can be quantized to at load.
QUANTIZE = {
    "q8_0": 1, "q4_0": 2, "q4_1": 3, "q5_0": 4, "q5_1": 5, "q4_k": 6, "q5_k": 7, "q6_k": 8,
}


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


def _sig(name: str, restype: Any, *argtypes: Any) -> Any:
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
_set_max_image_pixels = _sig("smolvlm_set_max_image_pixels", c_uint64, c_uint64)
_last_error = _sig("smolvlm_last_error", c_char_p)
_version = _sig("smolvlm_version", c_char_p)
_system_info = _sig("smolvlm_system_info", c_char_p)


class SmolVLMError(RuntimeError):
    """A failed call: `status` is the C status name, the message says what was wrong."""

    def __init__(self, status: int) -> None:
        self.status = STATUS[status] if 0 <= status < len(STATUS) else str(status)
        self.code = status
        super().__init__(f"{self.status}: {_last_error().decode('utf-8', 'replace')}")


def _check(status: int) -> None:
    if status != 0:
        raise SmolVLMError(status)


def version() -> str:
    """The loaded library's version, "MAJOR.MINOR.PATCH"."""
    return str(_version().decode())


def system_info() -> str:
    """The kernels this build and CPU run (SIMD variants, BLAS, CPUs)."""
    return str(_system_info().decode())


def set_max_image_pixels(max_pixels: int) -> int:
    """Sets the process-wide limit on an image file's pixel count, read from its header before
    decoding (0: the default, 178,956,970, where Pillow refuses a decompression bomb); returns the
    previous limit. Larger files raise SmolVLMError BAD_IMAGE."""
    return int(_set_max_image_pixels(max_pixels))


def library_path() -> str:
    """The library file (or name) this module loaded."""
    return str(_lib._name)


class Image:
    """An 8-bit RGB image held by the library."""

    def __init__(self, handle: c_void_p) -> None:
        self._h: Optional[c_void_p] = handle

    @classmethod
    def from_file(cls, path: PathLike) -> Image:
        h = c_void_p()
        _check(_image_from_file(os.fsencode(path), ctypes.byref(h)))
        return cls(h)

    @classmethod
    def from_bytes(cls, data: bytes) -> Image:
        h = c_void_p()
        _check(_image_from_bytes(bytes(data), len(data), ctypes.byref(h)))
        return cls(h)

    @classmethod
    def from_pixels(cls, pixels: bytes, width: int, height: int, channels: int = 3,
                    stride: Optional[int] = None) -> Image:
        """`pixels`: bytes-like, rows of `stride` bytes (default width*channels), RGB (3) or RGBA (4)."""
        h = c_void_p()
        fmt = {3: 0, 4: 1}.get(channels)
        if fmt is None:
            raise ValueError("channels must be 3 (RGB) or 4 (RGBA)")
        stride = width * channels if stride is None else stride
        _check(_image_from_pixels(bytes(pixels), width, height, stride, fmt, ctypes.byref(h)))
        return cls(h)

    def close(self) -> None:
        if self._h:
            _image_free(self._h)
            self._h = None

    __del__ = close


class Model:
    """A loaded model directory; thread-safe, shared by any number of contexts.

    quantize: "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k" or "q6_k" quantizes the
    decoder's linear weights at load (ggml's block formats; rows that do not fill a K-quant's
    256-element blocks take llama.cpp's fallback format; their products run in f32 on the
    dequantized values); None uses them as stored.
    """

    def __init__(self, model_dir: PathLike, progress: Optional[Callable[[float], bool]] = None,
                 quantize: Optional[str] = None) -> None:
        self._h: Optional[c_void_p] = None
        params = _ModelParams()
        _model_params_default(ctypes.byref(params))
        if quantize is not None:
            if quantize.lower() not in QUANTIZE:
                raise ValueError(f"quantize must be one of {sorted(QUANTIZE)}, not {quantize!r}")
            params.quantize = QUANTIZE[quantize.lower()]
        if progress is not None:
            params.progress = PROGRESS_CB(lambda f, _ud: bool(progress(f)))
        h = c_void_p()
        _check(_model_load(os.fsencode(model_dir), ctypes.byref(params), ctypes.byref(h)))
        self._h = h

    def context(self) -> Context:
        return Context(self)

    def close(self) -> None:
        if self._h:
            _model_free(self._h)
            self._h = None

    __del__ = close


class Context:
    """Generation state (KV cache, statistics). Use one context per thread."""

    def __init__(self, model: Model) -> None:
        self._h: Optional[c_void_p] = None
        self._model = model  # keeps the model alive as long as the context
        h = c_void_p()
        _check(_ctx_new(model._h, ctypes.byref(h)))
        self._h = h

    def _params(self, max_tokens: int, temperature: float, top_k: int, top_p: float, repetition_penalty: float,
                seed: int, split: Optional[bool], threads: int, precision: str,
                prompt_cache: bool) -> _GenerateParams:
        if precision not in PRECISION:
            raise ValueError(f"precision must be one of {sorted(PRECISION)}, not {precision!r}")
        p = _GenerateParams()
        _generate_params_default(ctypes.byref(p))
        p.precision = PRECISION[precision]
        p.prompt_cache = 1 if prompt_cache else 0
        p.max_tokens, p.temperature, p.top_k, p.top_p = max_tokens, temperature, top_k, top_p
        p.repetition_penalty, p.seed, p.split, p.n_threads = repetition_penalty, seed, SPLIT[split], threads
        return p

    def generate(self, prompt: Optional[str] = None, images: Sequence[Image] = (),
                 system_prompt: Optional[str] = None, messages: Optional[List[Message]] = None,
                 on_piece: Optional[Callable[[str], Optional[bool]]] = None,
                 should_abort: Optional[Callable[[], bool]] = None, max_tokens: int = 256,
                 temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0, repetition_penalty: float = 1.0,
                 seed: int = 0, split: Optional[bool] = None, threads: int = 0, precision: str = "auto",
                 prompt_cache: bool = True) -> str:
        """Returns the generated text. `messages` (HF chat format) replaces prompt/system_prompt; its image
        entries take `images` in order. `on_piece(str) -> bool|None` streams; returning False stops.
        `should_abort() -> bool` cancels (raises SmolVLMError CANCELLED). With `prompt_cache` (the default)
        the context reuses what it computed for earlier prompts: a follow-up question costs only its new
        tokens, and the answer is that of a fresh run; False computes everything."""
        p = self._params(max_tokens, temperature, top_k, top_p, repetition_penalty, seed, split, threads, precision,
                         prompt_cache)
        errors: List[BaseException] = []
        if on_piece is not None:
            callback = on_piece

            def piece(ptr: Any, n: int, _token: int, _ud: Any) -> bool:
                try:
                    return callback(ctypes.string_at(ptr, n).decode("utf-8")) is not False
                except BaseException as e:  # never unwind through C
                    errors.append(e)
                    return False
            p.on_piece = PIECE_CB(piece)
        if should_abort is not None:
            abort = should_abort
            p.should_abort = ABORT_CB(lambda _ud: bool(abort()))
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

    def stream(self, prompt: Optional[str] = None, **kwargs: Any) -> Iterator[str]:
        """Yields pieces as they are generated (generation runs on a worker thread). Leaving the loop
        early (break, an exception, closing the generator) stops the generation."""
        q: queue.Queue[object] = queue.Queue()
        done = object()
        stop = threading.Event()
        user_abort = kwargs.pop("should_abort", None)

        def abort() -> bool:
            return stop.is_set() or (user_abort is not None and bool(user_abort()))

        def run() -> None:
            try:
                self.generate(prompt, on_piece=q.put, should_abort=abort, **kwargs)
                q.put(done)
            except BaseException as e:
                q.put(e)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    break
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, str)
                yield item
        finally:
            stop.set()
            t.join()

    def stats(self) -> Dict[str, Any]:
        s = _Stats()
        s.size = ctypes.sizeof(_Stats)
        _check(_ctx_get_stats(self._h, ctypes.byref(s)))
        out: Dict[str, Any] = {f[0]: getattr(s, f[0]) for f in _Stats._fields_ if f[0] != "size"}
        out["precision"] = {v: k for k, v in PRECISION.items()}.get(out["precision"], "auto")
        return out

    def reset(self) -> None:
        """Forgets what the context kept from earlier prompts."""
        _check(_ctx_reset(self._h))

    def save_state(self) -> bytes:
        """The context's reusable state as bytes (for `load_state` on a context of the same model)."""
        size = c_size_t()
        _check(_ctx_state_save(self._h, None, 0, ctypes.byref(size)))
        buf = ctypes.create_string_buffer(size.value)
        _check(_ctx_state_save(self._h, buf, size.value, ctypes.byref(size)))
        return buf.raw[:size.value]

    def load_state(self, data: bytes) -> None:
        """Restores `save_state` bytes: the next generate continues as the saving context would."""
        _check(_ctx_state_load(self._h, bytes(data), len(data)))

    def chat(self, images: Iterable[Image] = (), system_prompt: Optional[str] = None) -> Chat:
        """A conversation on this context about `images` (they belong to its first message)."""
        return Chat(self, images, system_prompt)

    def close(self) -> None:
        if self._h:
            _ctx_free(self._h)
            self._h = None

    __del__ = close


class Chat:
    """A conversation: each `ask` sends the whole conversation so far plus the new message; the context's
    prompt cache makes that cost only the new tokens. Replies join the conversation as trimmed text."""

    def __init__(self, context: Context, images: Iterable[Image] = (), system_prompt: Optional[str] = None) -> None:
        self.context, self.images = context, list(images)
        self.messages: List[Message] = [{"role": "system", "content": system_prompt}] if system_prompt else []

    def ask(self, text: str, **kwargs: Any) -> str:
        """Returns the reply to `text`; keyword arguments are those of `Context.generate`."""
        first = not any(m["role"] == "user" for m in self.messages)
        parts: List[Dict[str, str]] = [{"type": "image"} for _ in self.images] if first else []
        parts.append({"type": "text", "text": text})
        messages = self.messages + [{"role": "user", "content": parts}]
        reply = self.context.generate(messages=messages, images=self.images, **kwargs)
        self.messages = messages + [{"role": "assistant", "content": [{"type": "text", "text": reply.strip()}]}]
        return reply
