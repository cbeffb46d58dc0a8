//! Portable kernels: the oracle every SIMD variant is tested against. Written so the compiler
//! can vectorise them (8 independent accumulators) without target features.

use crate::weights::quant::{self, QuantType, QK_K};
use half::{bf16, f16};

#[inline]
fn dot_by<T: Copy>(x: &[f32], w: &[T], widen: impl Fn(T) -> f32) -> f32 {
    let n = x.len().min(w.len());
    let mut acc = [0.0f32; 8];
    let mut i = 0;
    while i + 8 <= n {
        for l in 0..8 {
            acc[l] += x[i + l] * widen(w[i + l]);
        }
        i += 8;
    }
    let mut s: f32 = acc.iter().sum();
    while i < n {
        s += x[i] * widen(w[i]);
        i += 1;
    }
    s
}

/// Σ x·w over the shorter length.
pub(crate) fn dot_f32(x: &[f32], w: &[f32]) -> f32 {
    dot_by(x, w, |v| v)
}

/// Σ x·w with w widened from bf16.
pub(crate) fn dot_bf16(x: &[f32], w: &[bf16]) -> f32 {
    dot_by(x, w, |v| f32::from_bits((v.to_bits() as u32) << 16))
}

/// Σ x·w with w widened from f16.
pub(crate) fn dot_f16(x: &[f32], w: &[f16]) -> f32 {
    dot_by(x, w, f16::to_f32)
}

/// Σ x·w with w a row of `t` blocks, each expanded to its dequantized values (x.len() whole
/// blocks).
pub(crate) fn dot_quant(x: &[f32], t: QuantType, w: &[u8]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut buf = [0.0f32; QK_K];
    let wide = &mut buf[..t.block_elems()];
    for (xb, wb) in x
        .chunks_exact(t.block_elems())
        .zip(w.chunks_exact(t.block_bytes()))
    {
        quant::dequantize_block(t, wb, wide);
        for (xs, ws) in xb.chunks_exact(8).zip(wide.chunks_exact(8)) {
            for l in 0..8 {
                acc[l] += xs[l] * ws[l];
            }
        }
    }
    acc.iter().sum()
}
