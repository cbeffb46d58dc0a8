//! Model and context handles, and the state both the extended API and the drop-in API share:
//! one context type, one way to run a request, two callback protocols named by an enum.

use super::types::{
    smolvlm_generate_params, smolvlm_piece_cb, smolvlm_precision, smolvlm_split, smolvlm_token_cb,
};
use super::{null_arg, set_last_error, smolvlm_status, SendPtr};
use crate::error::Error;
use crate::{Hooks, Model, Request, SamplingParams, Session, Split};
use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, CString};
use std::sync::{Arc, Mutex, TryLockError};

/// A loaded model: weights (memory-mapped), tokenizer, configuration. Immutable and
/// thread-safe: any number of contexts on any threads may share one.
pub struct smolvlm_model {
    pub(crate) inner: Arc<Model>,
}

pub type smolvlm_model_t = smolvlm_model;

/// A generation context: KV cache, scratch memory, its own thread pool, statistics, and (for
/// the drop-in API) the token callback. Use one context from one thread at a time; a second
/// thread entering a busy context gets SMOLVLM_STATUS_BUSY. Holds a reference to its model.
///
/// Opaque in smolvlm.h. Its first fields are the original engine's public timing fields, in
/// its order, so that programs reading `ctx->perf_*` through include/smol-vision/smolvlm.h
/// (which declares only those fields) read what the last generate on this context measured.
/// cbindgen:ignore
#[repr(C)]
pub struct smolvlm_ctx {
    perf: DropinPerf,
    pub(crate) inner: Mutex<CtxState>,
}

/// The original engine's timing fields of the last generate call; written only while the
/// context's lock is held, read by C programs after the call returns.
#[repr(C)]
struct DropinPerf {
    total_ms: UnsafeCell<f64>,
    tokens: UnsafeCell<c_int>,
    encode_ms: UnsafeCell<f64>,
    decode_ms: UnsafeCell<f64>,
}

impl DropinPerf {
    fn new() -> Self {
        DropinPerf {
            total_ms: UnsafeCell::new(0.0),
            tokens: UnsafeCell::new(0),
            encode_ms: UnsafeCell::new(0.0),
            decode_ms: UnsafeCell::new(0.0),
        }
    }

    /// The original's definitions: the whole call, tokens generated, vision encoding, and
    /// everything after it (prefill + decode). The caller holds the context's lock.
    fn record(&self, s: &crate::Stats) {
        let tokens = c_int::try_from(s.decode_tokens).unwrap_or(c_int::MAX);
        // SAFETY: the only writer, serialised by the context's lock (held by our caller); C
        // reads these fields only between calls, on the thread that made the call.
        unsafe {
            *self.total_ms.get() = s.total_ms;
            *self.tokens.get() = tokens;
            *self.encode_ms.get() = s.encode_ms;
            *self.decode_ms.get() = s.prefill_ms + s.decode_ms;
        }
    }
}

pub type smolvlm_ctx_t = smolvlm_ctx;

/// What a context holds between calls.
pub(crate) struct CtxState {
    pub session: Session,
    /// The drop-in API's callback, set by smolvlm_set_token_callback.
    pub token_cb: smolvlm_token_cb,
    pub token_ud: SendPtr,
}

/// Where generated pieces go: the two protocols the C API offers.
pub(crate) enum PieceSink {
    /// The original engine's callback: a NUL-terminated piece; cannot stop generation.
    Dropin { cb: smolvlm_token_cb, ud: SendPtr },
    /// The extended API's callback: bytes + length + token id; returning false stops.
    Pieces { cb: smolvlm_piece_cb, ud: SendPtr },
}

impl PieceSink {
    /// Delivers one piece; false asks to stop.
    fn deliver(&self, piece: &str, id: u32) -> bool {
        match self {
            PieceSink::Dropin { cb: Some(cb), ud } => {
                let c = CString::new(piece.replace('\0', "")).unwrap_or_default();
                // SAFETY: the caller's callback, a valid NUL-terminated string, its user_data.
                unsafe { cb(c.as_ptr(), ud.0) };
                true
            }
            PieceSink::Pieces { cb: Some(cb), ud } => {
                // SAFETY: the caller's callback, `piece.len()` valid bytes, its user_data.
                unsafe {
                    cb(
                        piece.as_ptr() as *const c_char,
                        piece.len(),
                        id as i32,
                        ud.0,
                    )
                }
            }
            _ => true,
        }
    }
}

pub(crate) fn new_ctx(model: Arc<Model>) -> Box<smolvlm_ctx> {
    Box::new(smolvlm_ctx {
        perf: DropinPerf::new(),
        inner: Mutex::new(CtxState {
            session: Session::new(model),
            token_cb: None,
            token_ud: SendPtr(std::ptr::null_mut()),
        }),
    })
}

/// Runs `f` on the context's state, or returns BUSY when another thread is inside it.
///
/// # Safety
/// `ctx` is NULL or a live context (from smolvlm_load / smolvlm_ctx_new, not yet freed).
pub(crate) unsafe fn with_ctx<T>(
    ctx: *const smolvlm_ctx_t,
    f: impl FnOnce(&mut CtxState) -> Result<T, smolvlm_status>,
) -> Result<T, smolvlm_status> {
    // SAFETY: NULL or live, per this function's contract.
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
    let r = f(&mut guard);
    c.perf.record(guard.session.last_stats());
    r
}

/// Builds a request from the generate params and runs it, delivering pieces to `sink` and
/// polling the params' abort callback.
pub(crate) fn run_request(
    st: &mut CtxState,
    mut req: Request,
    p: &smolvlm_generate_params,
    sink: PieceSink,
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
        s if s == smolvlm_split::Default as i32 => Split::ModelDefault,
        s if s == smolvlm_split::On as i32 => Split::On,
        s if s == smolvlm_split::Off as i32 => Split::Off,
        s => return Err(Error::invalid(format!("unknown split mode {s}"))),
    };
    req.precision = match p.precision {
        v if v == smolvlm_precision::Auto as i32 => crate::Precision::Auto,
        v if v == smolvlm_precision::F32 as i32 => crate::Precision::F32,
        v if v == smolvlm_precision::Bf16 as i32 => crate::Precision::Bf16,
        v if v == smolvlm_precision::Int8 as i32 => crate::Precision::Int8,
        v => return Err(Error::invalid(format!("unknown precision {v}"))),
    };
    req.prompt_cache = match p.prompt_cache {
        0 => false,
        1 => true,
        v => return Err(Error::invalid(format!("prompt_cache is 0 or 1, not {v}"))),
    };
    req.sampling = SamplingParams {
        temperature: p.temperature,
        top_k: p.top_k as usize,
        top_p: p.top_p,
        repetition_penalty: p.repetition_penalty,
        seed: p.seed,
    };
    st.session.set_threads(p.n_threads as usize)?;
    let mut on_token = |piece: &str, id: u32| sink.deliver(piece, id);
    let (abort_cb, ud) = (p.should_abort, SendPtr(p.user_data));
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
    let out = st.session.generate(&req, hooks)?;
    let s = &out.stats;
    crate::log::emit(crate::log::Level::Info, || {
        format!(
            "{} tokens in {:.0} ms: {} tiles encoded in {:.0} ms, prompt of {} tokens ({} reused) \
             in {:.0} ms, decode {:.0} ms; {} threads, {:?}",
            s.decode_tokens,
            s.total_ms,
            s.tiles,
            s.encode_ms,
            s.prefill_tokens,
            s.reused_tokens,
            s.prefill_ms,
            s.decode_ms,
            s.threads,
            s.precision
        )
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// The layout include/smol-vision/smolvlm.h declares: the fields first, in C's order.
    #[test]
    fn dropin_fields_lead_the_context_in_c_layout() {
        assert_eq!(offset_of!(smolvlm_ctx, perf), 0);
        let double = std::mem::align_of::<f64>().max(std::mem::size_of::<c_int>());
        assert_eq!(offset_of!(DropinPerf, total_ms), 0);
        assert_eq!(offset_of!(DropinPerf, tokens), 8);
        assert_eq!(offset_of!(DropinPerf, encode_ms), 8 + double);
        assert_eq!(offset_of!(DropinPerf, decode_ms), 16 + double);
    }
}
