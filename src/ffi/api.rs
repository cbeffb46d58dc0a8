//! Extended API: a shared model, per-thread contexts, params structs, streaming with stop,
//! cancellation, chat messages as JSON, statistics.

use super::ctx::{new_ctx, run_request, with_ctx, CtxState, PieceSink};
use super::ctx::{smolvlm_ctx_t, smolvlm_model, smolvlm_model_t};
use super::image::smolvlm_image_t;
use super::types::{
    generate_params_default, model_params_default, read_params, smolvlm_generate_params,
    smolvlm_model_params, smolvlm_precision, smolvlm_quantize, smolvlm_stats,
};
use super::{fail, guard, null_arg, opt_str, reset_out, smolvlm_status, SendPtr};
use crate::error::Error;
use crate::{LoadOptions, Message, Model, Request, RgbImage};
use std::ffi::{c_char, CString};
use std::sync::Arc;

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

/// Loads the model directory `model_dir` (config.json, *.safetensors, tokenizer.json, ...), or
/// a llama-architecture GGUF text model (the file, or a directory holding it), or a directory
/// holding a text GGUF and its `mmproj*.gguf` (a SmolVLM as llama.cpp keeps it).
/// `params` may be NULL for defaults. On success `*out` receives a model to release with
/// smolvlm_model_free. Thread-safe.
///
/// The weights are memory-mapped, not copied, and their sizes are checked here. A weights file
/// truncated or rewritten in place by another process while the model is loaded is undefined
/// (reading a page past its new end raises SIGBUS): replace such files by writing a new file and
/// renaming it over the old one, which leaves the loaded model its own copy.
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
        // SAFETY: `out` is NULL or writable, per the contract.
        if let Err(s) = unsafe { reset_out(out) } {
            return s;
        }
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
        let quantize = match p.quantize {
            v if v == smolvlm_quantize::None as i32 => None,
            v if v == smolvlm_quantize::Q8_0 as i32 => Some(crate::QuantType::Q8_0),
            v if v == smolvlm_quantize::Q4_0 as i32 => Some(crate::QuantType::Q4_0),
            v if v == smolvlm_quantize::Q4_1 as i32 => Some(crate::QuantType::Q4_1),
            v if v == smolvlm_quantize::Q5_0 as i32 => Some(crate::QuantType::Q5_0),
            v if v == smolvlm_quantize::Q5_1 as i32 => Some(crate::QuantType::Q5_1),
            v if v == smolvlm_quantize::Q4_K as i32 => Some(crate::QuantType::Q4_K),
            v if v == smolvlm_quantize::Q5_K as i32 => Some(crate::QuantType::Q5_K),
            v if v == smolvlm_quantize::Q6_K as i32 => Some(crate::QuantType::Q6_K),
            v => {
                return fail(Error::invalid(format!(
                    "params->quantize is {v}; use one of SMOLVLM_QUANTIZE_NONE, _Q8_0, _Q4_0, \
                     _Q4_1, _Q5_0, _Q5_1, _Q4_K, _Q5_K, _Q6_K"
                )))
            }
        };
        let options = LoadOptions {
            isa: None,
            quantize,
        };
        match Model::load_with(dir, options, &mut progress) {
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
        // SAFETY: `out` is NULL or writable, per the contract.
        if let Err(s) = unsafe { reset_out(out) } {
            return s;
        }
        // SAFETY: the caller passes a live model or NULL.
        let Some(m) = (unsafe { model.as_ref() }) else {
            return null_arg("model");
        };
        // SAFETY: `out` is non-NULL and writable.
        unsafe { *out = Box::into_raw(new_ctx(m.inner.clone())) };
        smolvlm_status::Ok
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

/// The caller's image handles, cloned.
///
/// # Safety
/// `images` is NULL (only when `n` is 0) or points to `n` pointers, each NULL or a live image.
unsafe fn images_arg(
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
    // SAFETY: `n` readable pointers, per this function's contract.
    let list = unsafe { std::slice::from_raw_parts(images, n) };
    list.iter()
        .enumerate()
        // SAFETY: each entry is a live image or NULL, per this function's contract.
        .map(|(i, &p)| match unsafe { p.as_ref() } {
            Some(img) => Ok(img.img.clone()),
            None => Err(null_arg(&format!("images[{i}]"))),
        })
        .collect()
}

/// Stores the text in `*out_text` (when not NULL) or records the error.
///
/// # Safety
/// `out_text` is NULL or writable.
unsafe fn finish(r: Result<crate::Output, Error>, out_text: *mut *mut c_char) -> smolvlm_status {
    match r {
        Ok(o) => {
            if !out_text.is_null() {
                let c = CString::new(o.text.replace('\0', "")).unwrap_or_default();
                // SAFETY: non-NULL here, and writable per this function's contract.
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
        let run = |st: &mut CtxState| {
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
            // SAFETY: per the contract above.
            let imgs = unsafe { images_arg(images, n_images) }?;
            let req = Request::simple(prompt, system, imgs);
            let sink = PieceSink::Pieces {
                cb: p.on_piece,
                ud: SendPtr(p.user_data),
            };
            // SAFETY: `out_text` is NULL or writable, per the contract above.
            Ok(unsafe { finish(run_request(st, req, &p, sink), out_text) })
        };
        // SAFETY: `ctx` is NULL or live, per the contract.
        let r = unsafe { with_ctx(ctx, run) };
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
        let run = |st: &mut CtxState| {
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
            // SAFETY: per the contract above.
            let mut req = Request::simple("", None, unsafe { images_arg(images, n_images) }?);
            req.messages = messages;
            let sink = PieceSink::Pieces {
                cb: p.on_piece,
                ud: SendPtr(p.user_data),
            };
            // SAFETY: `out_text` is NULL or writable, per the contract above.
            Ok(unsafe { finish(run_request(st, req, &p, sink), out_text) })
        };
        // SAFETY: `ctx` is NULL or live, per the contract.
        let r = unsafe { with_ctx(ctx, run) };
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
        if size < std::mem::size_of::<usize>() || size > 1 << 16 {
            return fail(Error::invalid(format!(
                "`out->size` is {size}; set it to sizeof(smolvlm_stats)"
            )));
        }
        let run = |st: &mut CtxState| {
            let s = st.session.last_stats();
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
                threads: s.threads as i32,
                precision: match s.precision {
                    crate::Precision::Bf16 => smolvlm_precision::Bf16 as i32,
                    crate::Precision::Int8 => smolvlm_precision::Int8 as i32,
                    _ => smolvlm_precision::F32 as i32,
                },
                reused_tokens: s.reused_tokens as i32,
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
        };
        // SAFETY: `ctx` is NULL or live, per the contract.
        let r = unsafe { with_ctx(ctx, run) };
        r.unwrap_or_else(|s| s)
    })
}

/// Forgets what the context kept from earlier prompts (its prompt cache and image features):
/// the next generate computes its whole prompt. The conversation itself is the caller's (the
/// messages it passes); nothing else changes.
///
/// # Safety
/// `ctx` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_ctx_reset(ctx: *mut smolvlm_ctx_t) -> smolvlm_status {
    guard(smolvlm_status::Panic, || {
        // SAFETY: `ctx` is NULL or live, per the contract.
        let r = unsafe {
            with_ctx(ctx, |st| {
                st.session.reset_prompt_cache();
                Ok(smolvlm_status::Ok)
            })
        };
        r.unwrap_or_else(|s| s)
    })
}
