//! Extended API: a shared model, per-thread contexts, images from pixels/bytes/files, params
//! structs, streaming with stop, cancellation, statistics.

use super::{fail, guard, null_arg, opt_str, set_last_error, smolvlm_status, SendPtr};
use crate::error::Error;
use crate::{
    Hooks, Message, Model, PixelFormat, Request, RgbImage, SamplingParams, Session, Split,
};
use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, Mutex, TryLockError};

/// A loaded model: weights (memory-mapped), tokenizer, configuration. Immutable and
/// thread-safe: any number of contexts on any threads may share one.
pub struct smolvlm_model {
    pub(crate) inner: Arc<Model>,
}

pub type smolvlm_model_t = smolvlm_model;

/// A generation context: KV cache, scratch, statistics, and (for the drop-in API) the token
/// callback. Use one context from one thread at a time; a second thread entering a busy
/// context gets SMOLVLM_STATUS_BUSY. Holds a reference to its model.
pub struct smolvlm_ctx {
    pub(crate) inner: Mutex<CtxState>,
}

pub type smolvlm_ctx_t = smolvlm_ctx;

pub(crate) struct CtxState {
    pub session: Session,
    pub threads: Option<usize>,
    pub token_cb: super::dropin::smolvlm_token_cb,
    pub token_ud: SendPtr,
}

/// A decoded image (8-bit RGB), ready to pass to a generate call.
pub struct smolvlm_image {
    pub(crate) img: RgbImage,
}

pub type smolvlm_image_t = smolvlm_image;

/// Load progress: `fraction` goes from 0 to 1. Return false to cancel the load.
pub type smolvlm_progress_cb =
    Option<unsafe extern "C" fn(fraction: f32, user_data: *mut c_void) -> bool>;

/// Receives each generated piece: `len` bytes of complete UTF-8 (not NUL-terminated; valid
/// only during the call) and the id of the token that completed it. Return false to stop
/// generation (the call then succeeds with the text so far).
pub type smolvlm_piece_cb = Option<
    unsafe extern "C" fn(
        piece: *const c_char,
        len: usize,
        token: i32,
        user_data: *mut c_void,
    ) -> bool,
>;

/// Polled between tiles, layers and tokens. Return true to abort: the call returns
/// SMOLVLM_STATUS_CANCELLED.
pub type smolvlm_abort_cb = Option<unsafe extern "C" fn(user_data: *mut c_void) -> bool>;

/// Options for smolvlm_model_load. Fill with smolvlm_model_params_default(&p) first.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct smolvlm_model_params {
    /// sizeof(smolvlm_model_params), set by smolvlm_model_params_default.
    pub size: usize,
    /// Called as loading advances (may be NULL).
    pub progress: smolvlm_progress_cb,
    /// Passed to `progress`.
    pub user_data: *mut c_void,
}

/// Image splitting: the model's preprocessor default, always, or never.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum smolvlm_split {
    Default = 0,
    On = 1,
    Off = 2,
}

/// Pixel layouts accepted by smolvlm_image_from_pixels.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum smolvlm_pixel_format {
    /// 3 bytes per pixel.
    Rgb8 = 0,
    /// 4 bytes per pixel; alpha is composited onto white as the HF processor does.
    Rgba8 = 1,
}

/// Options for a generate call. Fill with smolvlm_generate_params_default(&p) first.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct smolvlm_generate_params {
    /// sizeof(smolvlm_generate_params), set by smolvlm_generate_params_default.
    pub size: usize,
    /// Threads for this context; 0 = all CPUs (default).
    pub n_threads: i32,
    /// Maximum new tokens, 0..=1048576 (default 256).
    pub max_tokens: i32,
    /// 0 = greedy (default).
    pub temperature: f32,
    /// 0 = off (default).
    pub top_k: i32,
    /// 1 = off (default).
    pub top_p: f32,
    /// 1 = off (default).
    pub repetition_penalty: f32,
    /// Sampling seed (default 0): the same seed gives the same tokens.
    pub seed: u64,
    /// One of smolvlm_split (default SMOLVLM_SPLIT_DEFAULT).
    pub split: i32,
    /// Streaming callback (may be NULL).
    pub on_piece: smolvlm_piece_cb,
    /// Abort callback (may be NULL).
    pub should_abort: smolvlm_abort_cb,
    /// Passed to both callbacks. They run on the calling thread.
    pub user_data: *mut c_void,
}

/// Timings and counts of a context's last successful generate call.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct smolvlm_stats {
    /// Set to sizeof(smolvlm_stats) before calling smolvlm_ctx_get_stats.
    pub size: usize,
    /// Time the model took to load.
    pub load_ms: f64,
    /// Image tiles encoded (0 for text-only prompts).
    pub tiles: i32,
    pub encode_ms: f64,
    pub prefill_tokens: i32,
    pub prefill_ms: f64,
    pub decode_tokens: i32,
    pub decode_ms: f64,
    /// decode_tokens per second of decode time.
    pub decode_tokens_per_s: f64,
    pub total_ms: f64,
}

/// Copies a caller's params struct, honouring its `size` (older, smaller structs get defaults
/// for the fields they lack).
///
/// # Safety
/// `p` is NULL or points to at least `(*p).size` readable bytes starting with a `size_t`.
unsafe fn read_params<T: Copy>(p: *const T, default: T, name: &str) -> Result<T, Error> {
    if p.is_null() {
        return Ok(default);
    }
    // SAFETY: the first field of every params struct is a size_t, readable per the contract.
    let size = unsafe { std::ptr::read_unaligned(p as *const usize) };
    if size < std::mem::size_of::<usize>() || size > 1 << 16 {
        return Err(Error::invalid(format!(
            "`{name}->size` is {size}; set it with the matching *_params_default()"
        )));
    }
    let mut out = default;
    let n = size.min(std::mem::size_of::<T>());
    // SAFETY: n bytes are readable at p (caller's size) and writable in `out` (≤ size_of::<T>()).
    unsafe { std::ptr::copy_nonoverlapping(p as *const u8, &mut out as *mut T as *mut u8, n) };
    Ok(out)
}

pub(crate) fn model_params_default() -> smolvlm_model_params {
    smolvlm_model_params {
        size: std::mem::size_of::<smolvlm_model_params>(),
        progress: None,
        user_data: std::ptr::null_mut(),
    }
}

pub(crate) fn generate_params_default() -> smolvlm_generate_params {
    smolvlm_generate_params {
        size: std::mem::size_of::<smolvlm_generate_params>(),
        n_threads: 0,
        max_tokens: 256,
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        repetition_penalty: 1.0,
        seed: 0,
        split: smolvlm_split::Default as i32,
        on_piece: None,
        should_abort: None,
        user_data: std::ptr::null_mut(),
    }
}

/// Fills `*out` with the default model load options (its `size` included). NULL is ignored.
///
/// # Safety
/// `out` is NULL or points to a writable smolvlm_model_params.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_model_params_default(out: *mut smolvlm_model_params) {
    guard((), || {
        if !out.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { out.write(model_params_default()) };
        }
    })
}

/// Fills `*out` with the default generate options (its `size` included): greedy, 256 tokens,
/// all CPUs, the model's image splitting, no callbacks. NULL is ignored.
///
/// # Safety
/// `out` is NULL or points to a writable smolvlm_generate_params.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_generate_params_default(out: *mut smolvlm_generate_params) {
    guard((), || {
        if !out.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { out.write(generate_params_default()) };
        }
    })
}

/// Loads the model directory `model_dir` (config.json, *.safetensors, tokenizer.json, ...).
/// `params` may be NULL for defaults. On success `*out` receives a model to release with
/// smolvlm_model_free. Thread-safe.
///
/// # Safety
/// `model_dir` is a NUL-terminated string; `params` is NULL or a valid params struct; `out` is
/// a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_model_load(
    model_dir: *const c_char,
    params: *const smolvlm_model_params,
    out: *mut *mut smolvlm_model_t,
) -> smolvlm_status {
    guard(smolvlm_status::Panic, || {
        if out.is_null() {
            return null_arg("out");
        }
        // SAFETY: `out` is non-NULL and writable per the contract.
        unsafe { *out = std::ptr::null_mut() };
        // SAFETY: per the contract above.
        let dir = match unsafe { opt_str(model_dir, "model_dir") } {
            Ok(Some(d)) => d,
            Ok(None) => return null_arg("model_dir"),
            Err(e) => return fail(e),
        };
        // SAFETY: per the contract above.
        let p = match unsafe { read_params(params, model_params_default(), "params") } {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        let ud = SendPtr(p.user_data);
        let mut progress = |f: f32| match p.progress {
            // SAFETY: the caller's callback with its own user_data.
            Some(cb) => unsafe { cb(f, ud.0) },
            None => true,
        };
        match Model::load_with_progress(dir, &mut progress) {
            Ok(m) => {
                let b = Box::new(smolvlm_model { inner: Arc::new(m) });
                // SAFETY: `out` is non-NULL and writable.
                unsafe { *out = Box::into_raw(b) };
                smolvlm_status::Ok
            }
            Err(e) => fail(e),
        }
    })
}

/// Releases a model. NULL is ignored. Contexts created from it stay valid (they hold their own
/// reference). Do not call twice on the same pointer.
///
/// # Safety
/// `model` is NULL or a pointer from smolvlm_model_load not yet freed.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_model_free(model: *mut smolvlm_model_t) {
    guard((), || {
        if !model.is_null() {
            // SAFETY: created by Box::into_raw in smolvlm_model_load and not freed before.
            drop(unsafe { Box::from_raw(model) });
        }
    })
}

pub(crate) fn new_ctx(model: Arc<Model>) -> Box<smolvlm_ctx> {
    Box::new(smolvlm_ctx {
        inner: Mutex::new(CtxState {
            session: Session::new(model),
            threads: None,
            token_cb: None,
            token_ud: SendPtr(std::ptr::null_mut()),
        }),
    })
}

/// Creates a generation context on `model`. Release it with smolvlm_free. Thread-safe.
///
/// # Safety
/// `model` is a live model; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_ctx_new(
    model: *const smolvlm_model_t,
    out: *mut *mut smolvlm_ctx_t,
) -> smolvlm_status {
    guard(smolvlm_status::Panic, || {
        if out.is_null() {
            return null_arg("out");
        }
        // SAFETY: `out` is non-NULL and writable.
        unsafe { *out = std::ptr::null_mut() };
        // SAFETY: the caller passes a live model or NULL.
        let Some(m) = (unsafe { model.as_ref() }) else {
            return null_arg("model");
        };
        // SAFETY: `out` is non-NULL and writable.
        unsafe { *out = Box::into_raw(new_ctx(m.inner.clone())) };
        smolvlm_status::Ok
    })
}

/// Runs `f` on the context's state, or returns BUSY when another thread is inside it.
pub(crate) fn with_ctx<T>(
    ctx: *const smolvlm_ctx_t,
    f: impl FnOnce(&mut CtxState) -> Result<T, smolvlm_status>,
) -> Result<T, smolvlm_status> {
    // SAFETY: the caller passes a live context or NULL (documented on every entry point).
    let Some(c) = (unsafe { ctx.as_ref() }) else {
        return Err(null_arg("ctx"));
    };
    let mut guard = match c.inner.try_lock() {
        Ok(g) => g,
        Err(TryLockError::WouldBlock) => {
            set_last_error("the context is in use by another thread");
            return Err(smolvlm_status::Busy);
        }
        // A panic inside an earlier call poisoned it; the state itself is still consistent.
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
    };
    f(&mut guard)
}

fn store_out(img: Result<RgbImage, Error>, out: *mut *mut smolvlm_image_t) -> smolvlm_status {
    match img {
        Ok(img) => {
            // SAFETY: callers checked `out` for NULL; it is writable per the contract.
            unsafe { *out = Box::into_raw(Box::new(smolvlm_image { img })) };
            smolvlm_status::Ok
        }
        Err(e) => fail(e),
    }
}

/// An image from raw pixels: `height` rows of `stride` bytes, each starting with `width` pixels
/// in `format` (a smolvlm_pixel_format). The pixels are copied. Release with smolvlm_image_free.
///
/// # Safety
/// `pixels` points to at least stride·(height−1) + width·channels readable bytes; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_image_from_pixels(
    pixels: *const u8,
    width: u32,
    height: u32,
    stride: usize,
    format: i32,
    out: *mut *mut smolvlm_image_t,
) -> smolvlm_status {
    guard(smolvlm_status::Panic, || {
        if out.is_null() {
            return null_arg("out");
        }
        // SAFETY: `out` is non-NULL and writable.
        unsafe { *out = std::ptr::null_mut() };
        if pixels.is_null() {
            return null_arg("pixels");
        }
        let fmt = match format {
            0 => PixelFormat::Rgb8,
            1 => PixelFormat::Rgba8,
            f => return fail(Error::invalid(format!("unknown pixel format {f}"))),
        };
        let ch = if fmt == PixelFormat::Rgb8 { 3 } else { 4 };
        let (w, h) = (width as usize, height as usize);
        if w == 0 || h == 0 {
            return fail(Error::image(format!("image size {w}x{h} is empty")));
        }
        if stride < w * ch {
            return fail(Error::invalid(format!(
                "stride {stride} is smaller than width x channels ({w} x {ch})"
            )));
        }
        let Some(len) = stride
            .checked_mul(h - 1)
            .and_then(|v| v.checked_add(w * ch))
        else {
            return fail(Error::invalid("stride x height overflows"));
        };
        // SAFETY: the caller guarantees `len` readable bytes at `pixels`.
        let data = unsafe { std::slice::from_raw_parts(pixels, len) };
        store_out(RgbImage::from_pixels(data, w, h, stride, fmt), out)
    })
}

/// An image decoded from encoded bytes (PNG, JPEG, BMP, PNM, GIF, WebP, TIFF; TGA, which has no
/// signature, only through smolvlm_image_from_file).
///
/// # Safety
/// `data` points to `len` readable bytes; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_image_from_bytes(
    data: *const u8,
    len: usize,
    out: *mut *mut smolvlm_image_t,
) -> smolvlm_status {
    guard(smolvlm_status::Panic, || {
        if out.is_null() {
            return null_arg("out");
        }
        // SAFETY: `out` is non-NULL and writable.
        unsafe { *out = std::ptr::null_mut() };
        if data.is_null() {
            return null_arg("data");
        }
        if len == 0 {
            return fail(Error::image("image data is empty (0 bytes)"));
        }
        // SAFETY: the caller guarantees `len` readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(data, len) };
        store_out(RgbImage::decode(bytes, "image bytes"), out)
    })
}

/// An image read and decoded from a file.
///
/// # Safety
/// `path` is a NUL-terminated string; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_image_from_file(
    path: *const c_char,
    out: *mut *mut smolvlm_image_t,
) -> smolvlm_status {
    guard(smolvlm_status::Panic, || {
        if out.is_null() {
            return null_arg("out");
        }
        // SAFETY: `out` is non-NULL and writable.
        unsafe { *out = std::ptr::null_mut() };
        // SAFETY: per the contract.
        match unsafe { opt_str(path, "path") } {
            Ok(Some(p)) => store_out(RgbImage::open(p.as_ref()), out),
            Ok(None) => null_arg("path"),
            Err(e) => fail(e),
        }
    })
}

/// Releases an image. NULL is ignored.
///
/// # Safety
/// `image` is NULL or from a smolvlm_image_* constructor and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_image_free(image: *mut smolvlm_image_t) {
    guard((), || {
        if !image.is_null() {
            // SAFETY: created by Box::into_raw in store_out and not freed before.
            drop(unsafe { Box::from_raw(image) });
        }
    })
}

/// Releases a string returned through an `out_text` parameter. NULL is ignored.
///
/// # Safety
/// `s` is NULL or a string from smolvlm_ctx_generate / smolvlm_ctx_generate_chat not yet freed.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_string_free(s: *mut c_char) {
    guard((), || {
        if !s.is_null() {
            // SAFETY: created by CString::into_raw in `finish` and not freed before.
            drop(unsafe { CString::from_raw(s) });
        }
    })
}

/// Builds a request from the generate params and runs it with the params' callbacks.
pub(crate) fn run_request(
    st: &mut CtxState,
    mut req: Request,
    p: &smolvlm_generate_params,
    legacy_cb: bool,
) -> Result<crate::Output, Error> {
    if p.max_tokens < 0 || p.max_tokens as usize > crate::MAX_TOKENS_LIMIT {
        return Err(Error::invalid(format!(
            "max_tokens {} is outside 0..={}",
            p.max_tokens,
            crate::MAX_TOKENS_LIMIT
        )));
    }
    if p.n_threads < 0 || p.top_k < 0 {
        return Err(Error::invalid("n_threads and top_k must be >= 0"));
    }
    req.max_tokens = p.max_tokens as usize;
    req.split = match p.split {
        0 => Split::ModelDefault,
        1 => Split::On,
        2 => Split::Off,
        s => return Err(Error::invalid(format!("unknown split mode {s}"))),
    };
    req.sampling = SamplingParams {
        temperature: p.temperature,
        top_k: p.top_k as usize,
        top_p: p.top_p,
        repetition_penalty: p.repetition_penalty,
        seed: p.seed,
    };
    let threads = p.n_threads as usize;
    if st.threads != Some(threads) {
        st.session.set_threads(threads)?;
        st.threads = Some(threads);
    }
    let ud = SendPtr(p.user_data);
    let (piece_cb, abort_cb) = (p.on_piece, p.should_abort);
    let (token_cb, token_ud) = (st.token_cb, SendPtr(st.token_ud.0));
    let mut on_token = |piece: &str, id: u32| -> bool {
        let ud = &ud;
        if legacy_cb {
            if let Some(cb) = token_cb {
                let c = CString::new(piece.replace('\0', "")).unwrap_or_default();
                let tud = &token_ud;
                // SAFETY: the caller's callback, a valid NUL-terminated string, its user_data.
                unsafe { cb(c.as_ptr(), tud.0) };
            }
            return true;
        }
        match piece_cb {
            // SAFETY: the caller's callback, `piece.len()` valid bytes, its user_data.
            Some(cb) => unsafe {
                cb(
                    piece.as_ptr() as *const c_char,
                    piece.len(),
                    id as i32,
                    ud.0,
                )
            },
            None => true,
        }
    };
    let abort = || {
        let ud = &ud;
        match abort_cb {
            // SAFETY: the caller's callback with its user_data.
            Some(cb) => unsafe { cb(ud.0) },
            None => false,
        }
    };
    let hooks = Hooks {
        on_token: Some(&mut on_token),
        cancel: Some(&abort),
    };
    st.session.generate(&req, hooks)
}

fn images_arg(
    images: *const *const smolvlm_image_t,
    n: usize,
) -> Result<Vec<RgbImage>, smolvlm_status> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if images.is_null() {
        return Err(null_arg("images"));
    }
    if n > 4096 {
        return Err(fail(Error::invalid(format!("n_images {n} is absurd"))));
    }
    // SAFETY: the caller guarantees `n` readable pointers.
    let list = unsafe { std::slice::from_raw_parts(images, n) };
    list.iter()
        .enumerate()
        // SAFETY: each entry is a live image or NULL.
        .map(|(i, &p)| match unsafe { p.as_ref() } {
            Some(img) => Ok(img.img.clone()),
            None => Err(null_arg(&format!("images[{i}]"))),
        })
        .collect()
}

fn finish(r: Result<crate::Output, Error>, out_text: *mut *mut c_char) -> smolvlm_status {
    match r {
        Ok(o) => {
            if !out_text.is_null() {
                let c = CString::new(o.text.replace('\0', "")).unwrap_or_default();
                // SAFETY: non-NULL and writable per the contract.
                unsafe { *out_text = c.into_raw() };
            }
            smolvlm_status::Ok
        }
        Err(e) => fail(e),
    }
}

/// Generates an answer to `prompt` about `images` (n_images may be 0 for a text-only prompt),
/// with an optional system prompt, in the model's chat template. On success `*out_text` (if
/// `out_text` is not NULL) receives the whole text, to release with smolvlm_string_free.
/// Not thread-safe for one context (BUSY); use one context per thread.
///
/// # Safety
/// `ctx` is a live context; strings are NUL-terminated or NULL; `images` holds `n_images` live
/// images; `params` is NULL or valid; `out_text` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_ctx_generate(
    ctx: *mut smolvlm_ctx_t,
    prompt: *const c_char,
    system_prompt: *const c_char,
    images: *const *const smolvlm_image_t,
    n_images: usize,
    params: *const smolvlm_generate_params,
    out_text: *mut *mut c_char,
) -> smolvlm_status {
    guard(smolvlm_status::Panic, || {
        if !out_text.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { *out_text = std::ptr::null_mut() };
        }
        let r = with_ctx(ctx, |st| {
            // SAFETY: per the contract above.
            let prompt = unsafe { opt_str(prompt, "prompt") }.map_err(fail)?;
            let Some(prompt) = prompt else {
                return Err(null_arg("prompt"));
            };
            // SAFETY: per the contract above.
            let system = unsafe { opt_str(system_prompt, "system_prompt") }.map_err(fail)?;
            // SAFETY: per the contract above.
            let p = unsafe { read_params(params, generate_params_default(), "params") }
                .map_err(fail)?;
            let imgs = images_arg(images, n_images)?;
            let req = Request::simple(prompt, system, imgs);
            Ok(finish(run_request(st, req, &p, false), out_text))
        });
        r.unwrap_or_else(|s| s)
    })
}

/// Like smolvlm_ctx_generate, with the conversation given as a JSON array of HF chat messages
/// (`[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "..."}]}, ...]`);
/// its image entries take `images` in order.
///
/// # Safety
/// As for smolvlm_ctx_generate.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_ctx_generate_chat(
    ctx: *mut smolvlm_ctx_t,
    messages_json: *const c_char,
    images: *const *const smolvlm_image_t,
    n_images: usize,
    params: *const smolvlm_generate_params,
    out_text: *mut *mut c_char,
) -> smolvlm_status {
    guard(smolvlm_status::Panic, || {
        if !out_text.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { *out_text = std::ptr::null_mut() };
        }
        let r = with_ctx(ctx, |st| {
            // SAFETY: per the contract above.
            let json = unsafe { opt_str(messages_json, "messages_json") }.map_err(fail)?;
            let Some(json) = json else {
                return Err(null_arg("messages_json"));
            };
            let v: serde_json::Value = serde_json::from_str(json).map_err(|e| {
                fail(Error::invalid(format!(
                    "messages_json is not valid JSON: {e}"
                )))
            })?;
            let messages = Message::parse_list(&v).map_err(fail)?;
            // SAFETY: per the contract above.
            let p = unsafe { read_params(params, generate_params_default(), "params") }
                .map_err(fail)?;
            let mut req = Request::simple("", None, images_arg(images, n_images)?);
            req.messages = messages;
            Ok(finish(run_request(st, req, &p, false), out_text))
        });
        r.unwrap_or_else(|s| s)
    })
}

/// Copies the statistics of the context's last successful generate call into `*out`
/// (set `out->size = sizeof(smolvlm_stats)` first).
///
/// # Safety
/// `ctx` is a live context; `out` points to a smolvlm_stats whose `size` is set.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_ctx_get_stats(
    ctx: *const smolvlm_ctx_t,
    out: *mut smolvlm_stats,
) -> smolvlm_status {
    guard(smolvlm_status::Panic, || {
        if out.is_null() {
            return null_arg("out");
        }
        // SAFETY: non-NULL; its first field is readable per the contract.
        let size = unsafe { std::ptr::read_unaligned(out as *const usize) };
        if size < std::mem::size_of::<usize>() {
            return fail(Error::invalid(
                "`out->size` must be set to sizeof(smolvlm_stats)",
            ));
        }
        let r = with_ctx(ctx, |st| {
            let s = &st.session.last_stats;
            let tps = if s.decode_ms > 0.0 {
                s.decode_tokens as f64 * 1e3 / s.decode_ms
            } else {
                0.0
            };
            let full = smolvlm_stats {
                size,
                load_ms: st.session.model().load_ms,
                tiles: s.tiles as i32,
                encode_ms: s.encode_ms,
                prefill_tokens: s.prefill_tokens as i32,
                prefill_ms: s.prefill_ms,
                decode_tokens: s.decode_tokens as i32,
                decode_ms: s.decode_ms,
                decode_tokens_per_s: tps,
                total_ms: s.total_ms,
            };
            let n = size.min(std::mem::size_of::<smolvlm_stats>());
            // SAFETY: `n` bytes are writable at `out` (the caller's size) and readable in `full`.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    &full as *const smolvlm_stats as *const u8,
                    out as *mut u8,
                    n,
                )
            };
            Ok(smolvlm_status::Ok)
        });
        r.unwrap_or_else(|s| s)
    })
}
