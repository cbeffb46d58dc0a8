//! The operations the models call (linear, attention, norms, activations), on f32 activations.
//! Products with bf16 weights run on the variant the model chose ([`Isa`]): AVX-512 packs
//! weight panels per call for its GEMM microkernels; the other variants widen weight blocks
//! for BLAS (one thread per call, split across the session's pool). Products with one to four
//! activation rows read each weight row once, in place.

#[cfg(target_arch = "x86_64")]
mod amx;
mod attention;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx2_quant;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod blas;
mod dispatch;
#[cfg(target_arch = "x86_64")]
mod gemm;
pub(crate) mod int8;
mod linear;
pub(crate) mod math;
mod reference;
mod scratch;

use crate::weights::View;
use half::bf16;
use rayon::prelude::*;

pub(crate) use attention::{attention, AttnShape};
pub(crate) use blas::sgemm;
pub use dispatch::{system_info, Isa, Precision};
pub(crate) use linear::{linear, linear_fused, linear_with, mlp_gelu_residual, Epilogue};
pub(crate) use scratch::Scratch;

/// What a kernel call needs besides its operands: the variant to run, the numeric mode
/// (`bf16`: activations rounded to bf16 before products with bf16 weights) and the session's
/// scratch.
#[derive(Clone, Copy)]
pub(crate) struct Exec<'a> {
    pub isa: Isa,
    pub bf16: bool,
    /// Products with block-quantized weights quantize their activations to int8 blocks.
    pub int8: bool,
    pub scratch: &'a Scratch,
}

/// The dot-product variant of an [`Isa`], resolved once per call of a kernel (the CPU check
/// stays out of the per-row loop).
#[derive(Clone, Copy)]
enum Dot {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2(avx2::Avx2),
}

impl Dot {
    fn for_isa(isa: Isa) -> Dot {
        #[cfg(target_arch = "x86_64")]
        if isa != Isa::Portable {
            if let Some(t) = avx2::Avx2::new() {
                return Dot::Avx2(t);
            }
        }
        let _ = isa;
        Dot::Portable
    }

    /// dot(x, w) with w widened to f32.
    #[inline]
    fn dot(self, x: &[f32], w: View<'_>) -> f32 {
        match (self, w) {
            #[cfg(target_arch = "x86_64")]
            (Dot::Avx2(t), View::BF16(w)) => t.dot_bf16(x, w),
            #[cfg(target_arch = "x86_64")]
            (Dot::Avx2(t), View::F16(w)) => t.dot_f16(x, w),
            #[cfg(target_arch = "x86_64")]
            (Dot::Avx2(t), View::F32(w)) => t.dot_f32(x, w),
            #[cfg(target_arch = "x86_64")]
            (Dot::Avx2(t), View::Quant(q, w)) => t.dot_quant(x, q, w),
            (_, View::Quant(q, w)) => reference::dot_quant(x, q, w),
            (_, View::F32(w)) => reference::dot_f32(x, w),
            (_, View::BF16(w)) => reference::dot_bf16(x, w),
            (_, View::F16(w)) => reference::dot_f16(x, w),
        }
    }
}

/// The AVX-512 token when the variant is an AVX-512 one (and the CPU has it).
#[cfg(target_arch = "x86_64")]
fn avx512_for(isa: Isa) -> Option<avx512::Avx512> {
    matches!(isa, Isa::Avx512 | Isa::Avx512Bf16 | Isa::Amx)
        .then(avx512::Avx512::new)
        .flatten()
}

/// The native bf16 token when the variant has one (and the CPU too).
#[cfg(target_arch = "x86_64")]
fn native_bf16_for(isa: Isa) -> Option<avx512::Avx512Bf16> {
    isa.has_bf16_dot().then(avx512::Avx512Bf16::new).flatten()
}

/// The AMX token when the variant is the AMX one (and the CPU and OS have it).
#[cfg(target_arch = "x86_64")]
fn amx_for(isa: Isa) -> Option<amx::Amx> {
    (isa == Isa::Amx).then(amx::Amx::new).flatten()
}

/// How a group of up to four weight rows is dotted with one to four activation rows.
#[derive(Clone, Copy)]
enum Rows<'a> {
    Dot(Dot),
    #[cfg(target_arch = "x86_64")]
    Avx512(avx512::Avx512),
    /// Native bf16 products with the activations already rounded.
    #[cfg(target_arch = "x86_64")]
    Native(avx512::Avx512Bf16, &'a [bf16]),
    #[cfg(not(target_arch = "x86_64"))]
    _Never(std::marker::PhantomData<&'a ()>),
}

macro_rules! by_rows {
    ($m:expr, $f:ident, $t:expr, $($a:expr),*) => {
        match $m {
            1 => $t.$f::<1>($($a),*),
            2 => $t.$f::<2>($($a),*),
            3 => $t.$f::<3>($($a),*),
            _ => $t.$f::<4>($($a),*),
        }
    };
}

impl Rows<'_> {
    /// Whether these are SIMD products (the portable dot is slower than BLAS on f32 weights).
    fn simd(self) -> bool {
        !matches!(self, Rows::Dot(Dot::Portable))
    }

    /// out[j·m + i] = x_i · w_j, w holding out.len() / m rows of k.
    fn group(self, x: &[f32], m: usize, k: usize, w: View<'_>, out: &mut [f32]) {
        match (self, w) {
            #[cfg(target_arch = "x86_64")]
            (Rows::Avx512(t), View::BF16(wb)) => by_rows!(m, dots_bf16, t, x, k, wb, out),
            #[cfg(target_arch = "x86_64")]
            (Rows::Avx512(t), View::F16(wh)) => by_rows!(m, dots_f16, t, x, k, wh, out),
            #[cfg(target_arch = "x86_64")]
            (Rows::Avx512(t), View::F32(wf)) => by_rows!(m, dots_f32, t, x, k, wf, out),
            #[cfg(target_arch = "x86_64")]
            (Rows::Avx512(t), View::Quant(q, wq)) => by_rows!(m, dots_quant, t, x, k, q, wq, out),
            #[cfg(target_arch = "x86_64")]
            (Rows::Native(t, xb), View::BF16(wb)) => by_rows!(m, dots, t, xb, k, wb, out),
            _ => {
                let dot = match self {
                    Rows::Dot(d) => d,
                    #[allow(unreachable_patterns)]
                    _ => Dot::Portable,
                };
                for (j, oj) in out.chunks_mut(m).enumerate() {
                    for (i, o) in oj.iter_mut().enumerate() {
                        *o = dot.dot(&x[i * k..(i + 1) * k], w.slice(j * k, k));
                    }
                }
            }
        }
    }
}

/// How a GEMM with `col_tasks` column blocks splits its `row_units` row blocks too, so the pool
/// gets about two tasks per thread even for narrow outputs: (row chunks, row units per chunk).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn row_split(col_tasks: usize, row_units: usize) -> (usize, usize) {
    let threads = rayon::current_num_threads().max(1);
    let chunks = (2 * threads)
        .div_ceil(col_tasks.max(1))
        .clamp(1, row_units.max(1));
    (chunks, row_units.div_ceil(chunks))
}

/// Row-wise LayerNorm with affine weight and bias (torch `nn.LayerNorm`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn layer_norm(
    isa: Isa,
    x: &[f32],
    dim: usize,
    w: &[f32],
    b: &[f32],
    eps: f32,
    out: &mut [f32],
) {
    let simd = Simd::for_isa(isa);
    out.par_chunks_mut(dim)
        .zip(x.par_chunks(dim))
        .for_each(|(o, r)| simd.layer_norm_row(r, w, b, eps, o));
}

/// Row-wise RMSNorm as LlamaRMSNorm: x · rsqrt(mean(x²) + eps) · w.
pub(crate) fn rms_norm(isa: Isa, x: &[f32], dim: usize, w: &[f32], eps: f32, out: &mut [f32]) {
    let simd = Simd::for_isa(isa);
    out.par_chunks_mut(dim)
        .zip(x.par_chunks(dim))
        .for_each(|(o, r)| simd.rms_norm_row(r, w, eps, o));
}

/// The elementwise variant of an [`Isa`]: the same `math.rs` bodies, compiled per ISA.
#[derive(Clone, Copy)]
pub(crate) enum Simd {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2(avx2::Avx2),
    #[cfg(target_arch = "x86_64")]
    Avx512(avx512::Avx512),
}

impl Simd {
    pub(crate) fn for_isa(isa: Isa) -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(t) = avx512_for(isa) {
                return Simd::Avx512(t);
            }
            if let (false, Some(t)) = (isa == Isa::Portable, avx2::Avx2::new()) {
                return Simd::Avx2(t);
            }
        }
        let _ = isa;
        Simd::Portable
    }

    fn layer_norm_row(self, r: &[f32], w: &[f32], b: &[f32], eps: f32, o: &mut [f32]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512(t) => t.layer_norm_row(r, w, b, eps, o),
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2(t) => t.layer_norm_row(r, w, b, eps, o),
            Simd::Portable => math::layer_norm_row(r, w, b, eps, o),
        }
    }

    fn rms_norm_row(self, r: &[f32], w: &[f32], eps: f32, o: &mut [f32]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512(t) => t.rms_norm_row(r, w, eps, o),
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2(t) => t.rms_norm_row(r, w, eps, o),
            Simd::Portable => math::rms_norm_row(r, w, eps, o),
        }
    }

    fn gelu(self, x: &mut [f32]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512(t) => t.gelu(x),
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2(t) => t.gelu(x),
            Simd::Portable => math::gelu_slice(x),
        }
    }

    fn silu_mul(self, gate: &mut [f32], up: &[f32]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512(t) => t.silu_mul(gate, up),
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2(t) => t.silu_mul(gate, up),
            Simd::Portable => math::silu_mul_slice(gate, up),
        }
    }

    /// [`math::softmax_scaled_bf16`]: the unnormalised bf16 probabilities and 1/Σ.
    pub(crate) fn softmax_scaled_bf16(self, row: &[f32], scale: f32, out: &mut [u16]) -> f32 {
        match self {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512(t) => t.softmax_scaled_bf16(row, scale, out),
            _ => math::softmax_scaled_bf16(row, scale, out),
        }
    }

    /// In-place softmax of `row` scaled by `scale`.
    pub(crate) fn softmax_scaled(self, row: &mut [f32], scale: f32) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512(t) => t.softmax_scaled(row, scale),
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2(t) => t.softmax_scaled(row, scale),
            Simd::Portable => math::softmax_scaled(row, scale),
        }
    }
}

/// `gelu_pytorch_tanh`: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
pub(crate) fn gelu_tanh(isa: Isa, x: &mut [f32]) {
    let simd = Simd::for_isa(isa);
    x.par_chunks_mut(4096).for_each(|c| simd.gelu(c));
}

/// gate ← silu(gate) · up, the SwiGLU of LlamaMLP.
pub(crate) fn silu_mul(isa: Isa, gate: &mut [f32], up: &[f32]) {
    let simd = Simd::for_isa(isa);
    gate.par_chunks_mut(4096)
        .zip(up.par_chunks(4096))
        .for_each(|(g, u)| simd.silu_mul(g, u));
}

/// dst += src.
pub(crate) fn add_in_place(dst: &mut [f32], src: &[f32]) {
    if dst.len() <= 4096 {
        for (a, b) in dst.iter_mut().zip(src) {
            *a += b;
        }
        return;
    }
    dst.par_chunks_mut(4096)
        .zip(src.par_chunks(4096))
        .for_each(|(d, s)| {
            for (a, b) in d.iter_mut().zip(s) {
                *a += b;
            }
        });
}

#[cfg(test)]
mod tests;
