//! Saving and restoring a context's reusable state (its prompt cache and KV cache) as bytes.

use super::ctx::{smolvlm_ctx_t, with_ctx, CtxState};
use super::{fail, guard, null_arg, smolvlm_status};
use crate::error::Error;

/// Writes the context's reusable state (what a follow-up prompt reuses; see
/// smolvlm_ctx_reset) to `buf`, a versioned byte string that smolvlm_ctx_state_load restores in a
/// context on the same checkpoint. `*size` receives the state's size: with `buf` NULL that is all
/// it does (call once to size the buffer); with `cap` too small nothing is written and the call
/// returns SMOLVLM_STATUS_INVALID_ARG.
///
/// # Safety
/// `ctx` is NULL or a live context; `buf` is NULL or writable for `cap` bytes; `size` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_ctx_state_save(
    ctx: *mut smolvlm_ctx_t,
    buf: *mut u8,
    cap: usize,
    size: *mut usize,
) -> smolvlm_status {
    guard(smolvlm_status::Panic, || {
        if size.is_null() {
            return null_arg("size");
        }
        let run = |st: &mut CtxState| {
            let state = st.session.save_state();
            // SAFETY: `size` is non-NULL and writable, per the contract.
            unsafe { size.write(state.len()) };
            if buf.is_null() {
                return Ok(smolvlm_status::Ok);
            }
            if cap < state.len() {
                return Err(fail(Error::invalid(format!(
                    "the state needs {} bytes; the buffer holds {cap}",
                    state.len()
                ))));
            }
            // SAFETY: `buf` is writable for cap ≥ state.len() bytes, per the contract.
            unsafe { std::ptr::copy_nonoverlapping(state.as_ptr(), buf, state.len()) };
            Ok(smolvlm_status::Ok)
        };
        // SAFETY: `ctx` is NULL or live, per the contract.
        let r = unsafe { with_ctx(ctx, run) };
        r.unwrap_or_else(|s| s)
    })
}

/// Restores a state written by smolvlm_ctx_state_save: a following generate continues as the
/// saving context would have. The format, version, checkpoint (configuration and weights) and size
/// are checked first; a state that fails a check returns SMOLVLM_STATUS_INVALID_ARG with the
/// reason and leaves the context as it was.
///
/// # Safety
/// `ctx` is NULL or a live context; `data` is NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_ctx_state_load(
    ctx: *mut smolvlm_ctx_t,
    data: *const u8,
    len: usize,
) -> smolvlm_status {
    guard(smolvlm_status::Panic, || {
        if data.is_null() {
            return null_arg("data");
        }
        // SAFETY: non-NULL and readable for `len` bytes, per the contract.
        let bytes = unsafe { std::slice::from_raw_parts(data, len) };
        // SAFETY: `ctx` is NULL or live, per the contract.
        let r = unsafe {
            with_ctx(ctx, |st| match st.session.load_state(bytes) {
                Ok(()) => Ok(smolvlm_status::Ok),
                Err(e) => Err(fail(e)),
            })
        };
        r.unwrap_or_else(|s| s)
    })
}
