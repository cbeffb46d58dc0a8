//! The operations the models call (linear, attention, norms, activations), on f32 activations.
//! Matrix products go to BLAS one thread per call, split across the session's pool; bf16/f16
//! matrix-vector products use the SIMD variant the model chose ([`Isa`]).

mod attention;
#[cfg(target_arch = "x86_64")]
mod avx2;
mod blas;
mod dispatch;
mod reference;
mod scratch;

use crate::weights::{Tensor, View};
use rayon::prelude::*;

pub(crate) use attention::{attention, AttnShape};
pub(crate) use blas::sgemm;
pub use dispatch::{system_info, Isa};
pub(crate) use scratch::Scratch;

/// What a kernel call needs besides its operands: the variant to run and the session's scratch.
#[derive(Clone, Copy)]
pub(crate) struct Exec<'a> {
    pub isa: Isa,
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
        if isa == Isa::Avx2 {
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

/// Rows at or below this count use the matrix-vector path for bf16/f16 weights; above it the
/// weight is widened block by block and handed to sgemm.
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
    let view = w.view();
    let dot = Dot::for_isa(ex.isa);
    match view {
        View::F16(_) | View::BF16(_) if m == 1 => {
            out.par_chunks_mut(MATVEC_CHUNK)
                .enumerate()
                .for_each(|(ci, oc)| {
                    for (jj, o) in oc.iter_mut().enumerate() {
                        let j = ci * MATVEC_CHUNK + jj;
                        *o = dot.dot(x, view.slice(j * k, k));
                    }
                });
        }
        View::F16(_) | View::BF16(_) if m <= MATVEC_MAX_ROWS => {
            // Each task reads its weight rows once for all m rows, into [n, m] order.
            let mut t = vec![0.0f32; n * m];
            t.par_chunks_mut(MATVEC_CHUNK * m)
                .enumerate()
                .for_each(|(ci, tc)| {
                    for (jj, tj) in tc.chunks_mut(m).enumerate() {
                        let wr = view.slice((ci * MATVEC_CHUNK + jj) * k, k);
                        for (i, o) in tj.iter_mut().enumerate() {
                            *o = dot.dot(&x[i * k..(i + 1) * k], wr);
                        }
                    }
                });
            for i in 0..m {
                for j in 0..n {
                    out[i * n + j] = t[j * m + i];
                }
            }
        }
        _ => {
            // Column blocks of the output, one task each: a block's weight rows are widened
            // into the worker's scratch (no f32 copy of the whole matrix) and multiplied there.
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
    }
    if let Some(b) = bias {
        out.par_chunks_mut(n).for_each(|row| {
            for (o, bb) in row.iter_mut().zip(b) {
                *o += bb;
            }
        });
    }
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

/// `gelu_pytorch_tanh`: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
pub(crate) fn gelu_tanh(x: &mut [f32]) {
    const C: f32 = 0.797_884_6;
    x.par_chunks_mut(4096).for_each(|c| {
        for v in c {
            let u = *v;
            *v = 0.5 * u * (1.0 + (C * (u + 0.044715 * u * u * u)).tanh());
        }
    });
}

/// gate ← silu(gate) · up, the SwiGLU of LlamaMLP.
pub(crate) fn silu_mul(gate: &mut [f32], up: &[f32]) {
    gate.par_chunks_mut(4096)
        .zip(up.par_chunks(4096))
        .for_each(|(g, u)| {
            for (a, b) in g.iter_mut().zip(u) {
                *a = *a / (1.0 + (-*a).exp()) * b;
            }
        });
}

/// In-place softmax of one row.
pub(crate) fn softmax(row: &mut [f32]) {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// dst += src.
pub(crate) fn add_in_place(dst: &mut [f32], src: &[f32]) {
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
