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
mod avx512;
mod blas;
mod dispatch;
#[cfg(target_arch = "x86_64")]
mod gemm;
mod math;
mod reference;
mod scratch;

use crate::weights::{Tensor, View};
use half::bf16;
use rayon::prelude::*;

pub(crate) use attention::{attention, AttnShape};
pub(crate) use blas::sgemm;
pub use dispatch::{system_info, Isa, Precision};
pub(crate) use scratch::Scratch;

/// What a kernel call needs besides its operands: the variant to run, the numeric mode
/// (`bf16`: activations rounded to bf16 before products with bf16 weights) and the session's
/// scratch.
#[derive(Clone, Copy)]
pub(crate) struct Exec<'a> {
    pub isa: Isa,
    pub bf16: bool,
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
    /// out[j·m + i] = x_i · w_j, w holding out.len() / m rows of k.
    fn group(self, x: &[f32], m: usize, k: usize, w: View<'_>, out: &mut [f32]) {
        match (self, w) {
            #[cfg(target_arch = "x86_64")]
            (Rows::Avx512(t), View::BF16(wb)) => by_rows!(m, dots_bf16, t, x, k, wb, out),
            #[cfg(target_arch = "x86_64")]
            (Rows::Avx512(t), View::F16(wh)) => by_rows!(m, dots_f16, t, x, k, wh, out),
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

/// Rows at or below this count use the matrix-vector path; above it a GEMM.
const MATVEC_MAX_ROWS: usize = 4;
/// Output features per matrix-vector task.
const MATVEC_CHUNK: usize = 16;
/// Cap on one task's widened weight block (floats): 8 MiB.
const WIDE_BLOCK_FLOATS: usize = 2 << 20;

/// out[m, n] = x[m, k] · wᵀ (+ bias), w stored [n, k] as in torch's `nn.Linear`.
pub(crate) fn linear(
    ex: Exec,
    x: &[f32],
    m: usize,
    w: &Tensor,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let n = w.shape[0];
    let k = w.numel() / n.max(1);
    assert_eq!(x.len(), m * k, "linear {}: input size", w.name);
    assert_eq!(out.len(), m * n, "linear {}: output size", w.name);
    match w.view() {
        View::BF16(wb) if ex.bf16 => linear_bf16(ex, x, m, k, wb, n, out),
        view => linear_f32(ex, x, m, k, view, n, out),
    }
    if let Some(b) = bias {
        out.par_chunks_mut(n).for_each(|row| {
            for (o, bb) in row.iter_mut().zip(b) {
                *o += bb;
            }
        });
    }
}

/// Several bias-free products of the same input, e.g. q/k/v or gate/up: for one row (decode)
/// in a single parallel pass over all their output rows, so the threads stream the weights
/// back to back instead of meeting at a barrier per matrix; otherwise one [`linear`] each.
pub(crate) fn linear_fused<const N: usize>(
    ex: Exec,
    x: &[f32],
    m: usize,
    parts: [(&Tensor, &mut [f32]); N],
) {
    let k = x.len() / m.max(1);
    // Many rows in the bf16 mode on AMX: one packing of x, one parallel pass for all parts.
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(amx)) = (ex.bf16 && m > MATVEC_MAX_ROWS, amx_for(ex.isa)) {
        if parts
            .iter()
            .all(|(w, o)| matches!(w.view(), View::BF16(_)) && o.len() * k == m * w.numel())
        {
            let parts = parts.map(|(w, o)| match w.view() {
                View::BF16(wb) => (wb, o),
                _ => unreachable!("checked above"),
            });
            return amx::gemm_parts(amx, ex.scratch, x, m, k, parts);
        }
    }
    let fusable = m == 1
        && parts.iter().all(|(w, o)| {
            matches!(w.view(), View::BF16(_) | View::F16(_))
                && w.numel() == o.len() * k
                && w.shape[0] == o.len()
        });
    if !fusable {
        for (w, o) in parts {
            linear(ex, x, m, w, None, o);
        }
        return;
    }
    let all_bf16 = parts.iter().all(|(w, _)| matches!(w.view(), View::BF16(_)));
    let run = |rows: Rows, x: &[f32]| {
        parts.into_par_iter().for_each(|(w, o)| {
            let view = w.view();
            o.par_chunks_mut(MATVEC_CHUNK)
                .enumerate()
                .for_each(|(ci, oc)| {
                    for (g, og) in oc.chunks_mut(4).enumerate() {
                        let j = ci * MATVEC_CHUNK + g * 4;
                        rows.group(x, 1, k, view.slice(j * k, og.len() * k), og);
                    }
                });
        })
    };
    if ex.bf16 && all_bf16 {
        #[cfg(target_arch = "x86_64")]
        if let Some(t) = native_bf16_for(ex.isa) {
            return with_bf16_copy(ex.scratch, x, |xb| run(Rows::Native(t, xb), x));
        }
        return with_rounded_copy(ex.scratch, x, |xr| run(rows_f32(ex.isa), xr));
    }
    run(rows_f32(ex.isa), x)
}

/// The f32-mode dot variant for one to four rows.
fn rows_f32<'a>(isa: Isa) -> Rows<'a> {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx512_for(isa) {
        return Rows::Avx512(t);
    }
    Rows::Dot(Dot::for_isa(isa))
}

/// The bf16 mode: native products where the variant has them, else the f32 path on activations
/// rounded to bf16 (the same products, exact in f32).
fn linear_bf16(ex: Exec, x: &[f32], m: usize, k: usize, w: &[bf16], n: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = native_bf16_for(ex.isa) {
        if let (true, Some(a)) = (m > MATVEC_MAX_ROWS, amx_for(ex.isa)) {
            amx::gemm_bf16(a, ex.scratch, x, m, k, w, n, out);
        } else if m > MATVEC_MAX_ROWS {
            gemm::gemm_bf16(gemm::Micro::Bf16(t), ex.scratch, x, m, k, w, n, out);
        } else {
            with_bf16_copy(ex.scratch, x, |xb| {
                matvec(Rows::Native(t, xb), x, m, k, View::BF16(w), n, out)
            });
        }
        return;
    }
    with_rounded_copy(ex.scratch, x, |xr| {
        linear_f32(ex, xr, m, k, View::BF16(w), n, out)
    });
}

/// Runs `f` on x rounded to bf16, in the scratch's staging buffer.
fn with_bf16_copy<R>(scratch: &Scratch, x: &[f32], f: impl FnOnce(&[bf16]) -> R) -> R {
    scratch.with_staging(|buf| {
        let u = scratch::take_u32(buf, x.len().div_ceil(2));
        let xb = &mut bytemuck::cast_slice_mut::<u32, u16>(u)[..x.len()];
        for (d, s) in xb.iter_mut().zip(x) {
            *d = math::bf16_bits(*s) as u16;
        }
        f(bytemuck::cast_slice(xb))
    })
}

/// Runs `f` on x rounded to bf16 and widened back to f32 (the bf16 mode on f32 kernels).
fn with_rounded_copy<R>(scratch: &Scratch, x: &[f32], f: impl FnOnce(&[f32]) -> R) -> R {
    scratch.with_staging(|buf| {
        let xr = scratch::take_u32(buf, x.len());
        for (d, s) in xr.iter_mut().zip(x) {
            *d = math::bf16_bits(*s) << 16;
        }
        f(bytemuck::cast_slice(xr))
    })
}

/// The f32 mode: f32 activations and accumulation over weights widened exactly.
fn linear_f32(ex: Exec, x: &[f32], m: usize, k: usize, view: View, n: usize, out: &mut [f32]) {
    if m <= MATVEC_MAX_ROWS && !matches!(view, View::F32(_)) {
        return matvec(rows_f32(ex.isa), x, m, k, view, n, out);
    }
    #[cfg(target_arch = "x86_64")]
    if let (View::BF16(wb), Some(t)) = (view, avx512_for(ex.isa)) {
        return gemm::gemm_bf16(gemm::Micro::F32(t), ex.scratch, x, m, k, wb, n, out);
    }
    blocked_sgemm(ex, x, m, k, view, n, out);
}

/// One to four activation rows: each task reads its weight rows once, for all rows.
fn matvec(rows: Rows, x: &[f32], m: usize, k: usize, view: View, n: usize, out: &mut [f32]) {
    let fill = |t: &mut [f32]| {
        t.par_chunks_mut(MATVEC_CHUNK * m)
            .enumerate()
            .for_each(|(ci, tc)| {
                for (g, tg) in tc.chunks_mut(4 * m).enumerate() {
                    let j = ci * MATVEC_CHUNK + g * 4;
                    rows.group(x, m, k, view.slice(j * k, tg.len() / m * k), tg);
                }
            })
    };
    if m == 1 {
        return fill(out);
    }
    let mut t = vec![0.0f32; n * m];
    fill(&mut t);
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = t[j * m + i];
        }
    }
}

/// Column blocks of the output, one task each: a block's weight rows are widened into the
/// worker's scratch (no f32 copy of the whole matrix) and multiplied there by BLAS.
fn blocked_sgemm(ex: Exec, x: &[f32], m: usize, k: usize, view: View, n: usize, out: &mut [f32]) {
    let threads = rayon::current_num_threads().max(1);
    let by_threads = n.div_ceil(threads * 2).next_multiple_of(16);
    let by_memory = (WIDE_BLOCK_FLOATS / k.max(1)).max(16);
    let block = by_threads.min(by_memory).clamp(1, n.max(1));
    let blocks = blas::ColumnBlocks::new(out, m, n, n);
    (0..n.div_ceil(block)).into_par_iter().for_each(|bi| {
        let (j0, nb) = (bi * block, block.min(n - bi * block));
        match view {
            // SAFETY: block bi writes only its own columns j0..j0+nb.
            View::F32(wf) => unsafe {
                blocks.sgemm(false, true, j0, nb, k, x, k, &wf[j0 * k..], k)
            },
            _ => ex.scratch.with(|slot| {
                let wide = scratch::take(&mut slot.a, nb * k);
                view.to_f32(j0 * k, wide);
                // SAFETY: block bi writes only its own columns j0..j0+nb.
                unsafe { blocks.sgemm(false, true, j0, nb, k, x, k, wide, k) }
            }),
        }
    });
}

/// Row-wise LayerNorm with affine weight and bias (torch `nn.LayerNorm`).
pub(crate) fn layer_norm(x: &[f32], dim: usize, w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
    out.par_chunks_mut(dim)
        .zip(x.par_chunks(dim))
        .for_each(|(o, r)| {
            let n = dim as f32;
            let mean = r.iter().sum::<f32>() / n;
            let var = r.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
            let inv = 1.0 / (var + eps).sqrt();
            for i in 0..dim {
                o[i] = (r[i] - mean) * inv * w[i] + b[i];
            }
        });
}

/// Row-wise RMSNorm as LlamaRMSNorm: x · rsqrt(mean(x²) + eps) · w.
pub(crate) fn rms_norm(x: &[f32], dim: usize, w: &[f32], eps: f32, out: &mut [f32]) {
    out.par_chunks_mut(dim)
        .zip(x.par_chunks(dim))
        .for_each(|(o, r)| {
            let ms = r.iter().map(|v| v * v).sum::<f32>() / dim as f32;
            let inv = 1.0 / (ms + eps).sqrt();
            for i in 0..dim {
                o[i] = w[i] * (r[i] * inv);
            }
        });
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

    /// Softmax of `row` scaled by `scale` as bf16 bits in `out` (`row` is clobbered).
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
