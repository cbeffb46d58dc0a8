//! Numeric kernels. Matrix products go to BLAS (sgemm); bf16/f16 matrix-vector products and
//! conversions use SIMD chosen at run time (`x86` with AVX2+FMA+F16C, else `generic`).

mod attention;
mod blas;
mod generic;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::weights::{Tensor, View};
use half::{bf16, f16};
use rayon::prelude::*;
use std::cell::RefCell;
use std::sync::OnceLock;

pub use attention::{attention, AttnShape};
pub use blas::{set_blas_threads, sgemm};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Generic,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::env::var_os("SMOLVLM_NO_SIMD").is_none() && x86::supported() {
                return Isa::Avx2;
            }
        }
        Isa::Generic
    })
}

/// A line describing the kernels in use (for `--debug` and `smolvlm_system_info`).
pub fn system_info() -> String {
    let simd = match isa() {
        Isa::Generic => "generic",
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => "avx2+fma+f16c",
    };
    format!(
        "smolvlm {}; build: {}; simd: {simd}; blas: {}; threads: {}",
        env!("CARGO_PKG_VERSION"),
        env!("SMOLVLM_BUILD"),
        blas::NAME,
        rayon::current_num_threads()
    )
}

pub fn bf16_to_f32(src: &[bf16], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = f32::from_bits((s.to_bits() as u32) << 16);
    }
}

pub fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    src.convert_to_f32_slice(dst);
}

/// dot(x, w) with w widened to f32.
#[inline]
fn dot(x: &[f32], w: View<'_>) -> f32 {
    match (isa(), w) {
        (_, View::F32(w)) => generic::dot_f32(x, w),
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2, View::BF16(w)) => x86::dot_bf16(x, w),
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2, View::F16(w)) => x86::dot_f16(x, w),
        (_, View::BF16(w)) => generic::dot_bf16(x, w),
        (_, View::F16(w)) => generic::dot_f16(x, w),
    }
}

thread_local! {
    static WIDE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Rows at or below this count use the matrix-vector path for bf16/f16 weights; above it the
/// weight is widened once and handed to sgemm.
const MATVEC_MAX_ROWS: usize = 4;

/// out[m, n] = x[m, k] · wᵀ (+ bias), w stored [n, k] as in torch's `nn.Linear`.
pub fn linear(x: &[f32], m: usize, w: &Tensor, bias: Option<&[f32]>, out: &mut [f32]) {
    let n = w.shape[0];
    let k = w.numel() / n.max(1);
    assert_eq!(x.len(), m * k, "linear {}: input size", w.name);
    assert_eq!(out.len(), m * n, "linear {}: output size", w.name);
    let view = w.view();
    match view {
        View::F32(wf) => sgemm(false, true, m, n, k, x, k, wf, k, out, n, 0.0),
        _ if m <= MATVEC_MAX_ROWS => {
            // Parallel over output features; each chunk reads its weight rows once for all m rows.
            const CHUNK: usize = 16;
            let mut t = vec![0.0f32; n * m];
            t.par_chunks_mut(CHUNK * m)
                .enumerate()
                .for_each(|(ci, tc)| {
                    for (jj, tj) in tc.chunks_mut(m).enumerate() {
                        let j = ci * CHUNK + jj;
                        let wr = view.slice(j * k, k);
                        for (i, o) in tj.iter_mut().enumerate() {
                            *o = dot(&x[i * k..(i + 1) * k], wr);
                        }
                    }
                });
            for i in 0..m {
                for j in 0..n {
                    out[i * n + j] = t[j * m + i];
                }
            }
        }
        _ => WIDE.with(|cell| {
            let mut wide = cell.borrow_mut();
            if wide.len() < n * k {
                wide.resize(n * k, 0.0);
            }
            let wide = &mut wide[..n * k];
            wide.par_chunks_mut(k * 64)
                .enumerate()
                .for_each(|(ci, dst)| {
                    view.to_f32(ci * k * 64, dst);
                });
            sgemm(false, true, m, n, k, x, k, wide, k, out, n, 0.0);
        }),
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
pub fn layer_norm(x: &[f32], dim: usize, w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
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
pub fn rms_norm(x: &[f32], dim: usize, w: &[f32], eps: f32, out: &mut [f32]) {
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
pub fn gelu_tanh(x: &mut [f32]) {
    const C: f32 = 0.797_884_6;
    x.par_chunks_mut(4096).for_each(|c| {
        for v in c {
            let u = *v;
            *v = 0.5 * u * (1.0 + (C * (u + 0.044715 * u * u * u)).tanh());
        }
    });
}

/// gate ← silu(gate) · up, the SwiGLU of LlamaMLP.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    gate.par_chunks_mut(4096)
        .zip(up.par_chunks(4096))
        .for_each(|(g, u)| {
            for (a, b) in g.iter_mut().zip(u) {
                *a = *a / (1.0 + (-*a).exp()) * b;
            }
        });
}

pub fn softmax(row: &mut [f32]) {
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

pub fn add_in_place(dst: &mut [f32], src: &[f32]) {
    dst.par_chunks_mut(4096)
        .zip(src.par_chunks(4096))
        .for_each(|(d, s)| {
            for (a, b) in d.iter_mut().zip(s) {
                *a += b;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_dot_matches_generic() {
        let k = 77;
        let x: Vec<f32> = (0..k).map(|i| (i as f32 * 0.37).sin()).collect();
        let wb: Vec<bf16> = (0..k)
            .map(|i| bf16::from_f32((i as f32 * 0.11).cos()))
            .collect();
        let wh: Vec<f16> = (0..k)
            .map(|i| f16::from_f32((i as f32 * 0.13).cos()))
            .collect();
        let rb: f64 = x.iter().zip(&wb).map(|(a, b)| *a as f64 * b.to_f64()).sum();
        let rh: f64 = x.iter().zip(&wh).map(|(a, b)| *a as f64 * b.to_f64()).sum();
        assert!((dot(&x, View::BF16(&wb)) as f64 - rb).abs() < 1e-4);
        assert!((dot(&x, View::F16(&wh)) as f64 - rh).abs() < 1e-4);
        assert!((generic::dot_bf16(&x, &wb) as f64 - rb).abs() < 1e-4);
        assert!((generic::dot_f16(&x, &wh) as f64 - rh).abs() < 1e-4);
    }
}
