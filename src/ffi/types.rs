//! The C ABI's plain types: callbacks, option and statistics structs, enums; and how a
//! caller's (possibly older, smaller) struct is read.

use crate::error::Error;
use std::ffi::{c_char, c_void};

/// Receives each generated piece as a NUL-terminated string of complete UTF-8 (valid only
/// during the call). The pieces of one call concatenate to exactly the returned text.
pub type smolvlm_token_cb =
    Option<unsafe extern "C" fn(piece: *const c_char, userdata: *mut c_void)>;

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
    /// One of smolvlm_quantize (default SMOLVLM_QUANTIZE_NONE): quantize the decoder's linear
    /// weights at load into that ggml block format; their products then run in f32 on the
    /// dequantized values. Callers built with a header that predates this field (a smaller
    /// `size`) get the default.
    pub quantize: i32,
}

/// Block formats the decoder's weights can be quantized to at load (ggml's, as llama.cpp
/// writes them). The output projection is quantized to Q8_0 with any of them.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum smolvlm_quantize {
    /// Use the weights as stored.
    None = 0,
    /// 8 bits per weight plus an f16 scale per 32 (8.5 bits).
    Q8_0 = 1,
    /// 4 bits plus an f16 scale per 32 (4.5 bits).
    Q4_0 = 2,
    /// 4 bits plus an f16 scale and minimum per 32 (5 bits).
    Q4_1 = 3,
    /// 5 bits plus an f16 scale per 32 (5.5 bits).
    Q5_0 = 4,
    /// 5 bits plus an f16 scale and minimum per 32 (6 bits).
    Q5_1 = 5,
    /// 4 bits in super-blocks of 256 with 6-bit scales and minimums per 32 (4.5 bits); rows
    /// whose length is not a multiple of 256 take Q5_0, as llama.cpp's quantizer does.
    Q4_K = 6,
    /// 5 bits, scaled as Q4_K (5.5 bits); Q5_1 for rows not a multiple of 256.
    Q5_K = 7,
    /// 6 bits in super-blocks of 256 with int8 scales per 16 (6.56 bits); Q8_0 for rows not
    /// a multiple of 256.
    Q6_K = 8,
}

/// Image splitting: the model's preprocessor default, always, or never.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum smolvlm_split {
    Default = 0,
    On = 1,
    Off = 2,
}

/// Numeric mode of products with bf16 weights (see smolvlm_generate_params.precision).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum smolvlm_precision {
    /// INT8 for decoders of block-quantized weights on CPUs with int8 dot products
    /// (AVX512_VNNI); else bf16 for bf16 checkpoints on CPUs with native bf16 products (AMX,
    /// AVX512_BF16 where it outruns f32), else f32. The environment variable SMOLVLM_PRECISION=f32|bf16|int8 overrides it.
    Auto = 0,
    /// f32 activations and accumulation: transformers' float32 results.
    F32 = 1,
    /// Activations rounded to bf16 before products with bf16 weights, f32 accumulation:
    /// transformers' bfloat16 linears. Norms, softmax, attention and residuals stay f32.
    Bf16 = 2,
    /// The decoder's products with block-quantized weights (Q8_0 … Q6_K) quantize their
    /// activations to int8 blocks and sum integer products, as llama.cpp does (faster; not
    /// transformers-exact); other products as AUTO would compute them without quantized weights.
    Int8 = 3,
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
    /// Threads for this context (its own pool; other contexts are not affected); 0 = all CPUs
    /// (default).
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
    /// One of smolvlm_precision (default SMOLVLM_PRECISION_AUTO).
    pub precision: i32,
    /// 1 (default): reuse what this context computed for its earlier prompts — positions up to
    /// the first difference from what its KV cache holds, and image tiles with the same pixels
    /// (the cached features of at most 32 tiles) — so a follow-up question about an image
    /// costs only its new tokens; the output is that of a fresh run. 0: compute everything and
    /// forget what the context kept.
    pub prompt_cache: i32,
}

/// Timings and counts of a context's last successful generate call.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct smolvlm_stats {
    /// Set to sizeof(smolvlm_stats) before calling smolvlm_ctx_get_stats.
    pub size: usize,
    /// Time the model took to load.
    pub load_ms: f64,
    /// Image tiles encoded by the call (0 for text-only prompts and for tiles taken from the
    /// context's cache).
    pub tiles: i32,
    pub encode_ms: f64,
    pub prefill_tokens: i32,
    pub prefill_ms: f64,
    pub decode_tokens: i32,
    pub decode_ms: f64,
    /// decode_tokens per second of decode time.
    pub decode_tokens_per_s: f64,
    /// The whole call: image preprocessing and tokenization included, so it exceeds
    /// encode_ms + prefill_ms + decode_ms.
    pub total_ms: f64,
    /// Threads the call ran on (the context's own pool).
    pub threads: i32,
    /// The smolvlm_precision the call ran in (never AUTO: what it resolved to).
    pub precision: i32,
    /// Prompt positions taken from the context's cache (prefill_tokens are the ones computed).
    pub reused_tokens: i32,
}

/// Copies a caller's params struct, honouring its `size` (older, smaller structs get defaults
/// for the fields they lack).
///
/// # Safety
/// `p` is NULL or points to at least `(*p).size` readable bytes starting with a `size_t`.
pub(crate) unsafe fn read_params<T: Copy>(p: *const T, default: T, name: &str) -> Result<T, Error> {
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
        quantize: smolvlm_quantize::None as i32,
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
        precision: smolvlm_precision::Auto as i32,
        prompt_cache: 1,
    }
}
