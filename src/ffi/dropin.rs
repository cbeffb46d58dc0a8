//! The original smol-vision API, same names, signatures and semantics: a C program written
//! against its header compiles and runs unchanged.

use super::ctx::{new_ctx, run_request, smolvlm_ctx_t, with_ctx, CtxState, PieceSink};
use super::types::{generate_params_default, smolvlm_token_cb};
use super::{fail, guard, null_arg, opt_str, SendPtr};
use crate::error::Error;
use crate::{Model, Request, RgbImage};
use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;

/// Loads a model directory (or a GGUF text model, or a text GGUF plus its mmproj GGUF) and returns a context owning it, or NULL on failure
/// (smolvlm_last_error() says why). Release with smolvlm_free.
///
/// # Safety
/// `model_dir` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_load(model_dir: *const c_char) -> *mut smolvlm_ctx_t {
    guard(std::ptr::null_mut(), || {
        super::compat::sync_verbosity();
        // SAFETY: per the contract above.
        let dir = match unsafe { opt_str(model_dir, "model_dir") } {
            Ok(Some(d)) => d,
            Ok(None) => {
                null_arg("model_dir");
                return std::ptr::null_mut();
            }
            Err(e) => {
                fail(e);
                return std::ptr::null_mut();
            }
        };
        match Model::load(dir) {
            Ok(m) => Box::into_raw(new_ctx(Arc::new(m))),
            Err(e) => {
                fail(e);
                std::ptr::null_mut()
            }
        }
    })
}

/// Releases a context (and its model, when no other context shares it). NULL is ignored.
///
/// # Safety
/// `ctx` is NULL or from smolvlm_load / smolvlm_ctx_new, not yet freed, not in use.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_free(ctx: *mut smolvlm_ctx_t) {
    guard((), || {
        if !ctx.is_null() {
            // SAFETY: created by Box::into_raw and not freed before (caller's contract).
            drop(unsafe { Box::from_raw(ctx) });
        }
    })
}

/// Sets the callback that smolvlm_generate streams pieces to (NULL: none). It runs on the
/// thread that called smolvlm_generate. Ignored (with a last-error message) when `ctx` is NULL
/// or busy in another thread.
///
/// # Safety
/// `ctx` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_set_token_callback(
    ctx: *mut smolvlm_ctx_t,
    cb: smolvlm_token_cb,
    userdata: *mut c_void,
) {
    guard((), || {
        // SAFETY: `ctx` is NULL or live, per the contract.
        let _ = unsafe {
            with_ctx(ctx, |st| {
                st.token_cb = cb;
                st.token_ud = SendPtr(userdata);
                Ok(())
            })
        };
    })
}

/// Describes the image at `image_path` (NULL: a text-only prompt) following `prompt` (NULL:
/// "Describe this image."), with an optional `system_prompt`, generating at most `max_tokens`
/// tokens (greedy, the model's image splitting, all CPUs or the count set by
/// qwen_set_threads). Returns the text, allocated with malloc — release it with free() — or
/// NULL on error (smolvlm_last_error() says why).
///
/// # Safety
/// `ctx` is a live context; the strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_generate(
    ctx: *mut smolvlm_ctx_t,
    image_path: *const c_char,
    prompt: *const c_char,
    system_prompt: *const c_char,
    max_tokens: c_int,
) -> *mut c_char {
    guard(std::ptr::null_mut(), || {
        super::compat::sync_verbosity();
        let run = |st: &mut CtxState| {
            // SAFETY: per the contract above (all three).
            let (path, prompt, system) = unsafe {
                (
                    opt_str(image_path, "image_path").map_err(fail)?,
                    opt_str(prompt, "prompt").map_err(fail)?,
                    opt_str(system_prompt, "system_prompt").map_err(fail)?,
                )
            };
            let images = match path {
                Some(p) => vec![RgbImage::open(p.as_ref()).map_err(fail)?],
                None => Vec::new(),
            };
            let prompt = prompt.unwrap_or("Describe this image.");
            let mut p = generate_params_default();
            p.max_tokens = max_tokens;
            p.n_threads = super::compat::dropin_threads() as c_int;
            let sink = PieceSink::Dropin {
                cb: st.token_cb,
                ud: SendPtr(st.token_ud.0),
            };
            let req = Request::simple(prompt, system, images);
            let out = run_request(st, req, &p, sink).map_err(fail)?;
            Ok(out.text.replace('\0', ""))
        };
        // SAFETY: `ctx` is NULL or live, per the contract.
        let r = unsafe { with_ctx(ctx, run) };
        match r {
            Ok(text) => malloc_string(&text).unwrap_or_else(|| {
                fail(Error::new(
                    crate::ErrorKind::Oom,
                    "malloc failed for the result string",
                ));
                std::ptr::null_mut()
            }),
            Err(_) => std::ptr::null_mut(),
        }
    })
}

/// A NUL-terminated copy of `s` in memory from the C allocator, so the caller's free() is right.
fn malloc_string(s: &str) -> Option<*mut c_char> {
    // SAFETY: malloc of len+1 bytes; NULL is checked before use.
    let p = unsafe { libc::malloc(s.len() + 1) } as *mut u8;
    if p.is_null() {
        return None;
    }
    // SAFETY: p has s.len()+1 writable bytes; the source is s.len() readable bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), p, s.len());
        *p.add(s.len()) = 0;
    }
    Some(p as *mut c_char)
}
