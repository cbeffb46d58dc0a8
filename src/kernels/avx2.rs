//! AVX2 + FMA + F16C kernels. Reached only through an [`Avx2`] token, which exists only after
//! the CPU was checked at run time.

use half::{bf16, f16};
use std::arch::x86_64::*;

/// Proof that this CPU has AVX2, FMA and F16C.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// Some(token) when the CPU supports the variant.
    pub(crate) fn new() -> Option<Avx2> {
        let ok = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        ok.then_some(Avx2(()))
    }

    /// Σ x·w over the shorter length, w widened from bf16.
    pub(crate) fn dot_bf16(self, x: &[f32], w: &[bf16]) -> f32 {
        // SAFETY: the token exists only when AVX2/FMA were detected; the function reads within
        // the shorter slice.
        unsafe { dot_bf16_avx2(x, w) }
    }

    /// Σ x·w over the shorter length.
    pub(crate) fn dot_f32(self, x: &[f32], w: &[f32]) -> f32 {
        // SAFETY: the token exists only when AVX2/FMA were detected; the function reads within
        // the shorter slice.
        unsafe { dot_f32_avx2(x, w) }
    }

    /// Σ x·w over the shorter length, w widened from f16.
    pub(crate) fn dot_f16(self, x: &[f32], w: &[f16]) -> f32 {
        // SAFETY: the token exists only when AVX2/FMA/F16C were detected; the function reads
        // within the shorter slice.
        unsafe { dot_f16_avx2(x, w) }
    }
}

/// Sum of the 8 lanes.
///
/// # Safety
/// The CPU supports AVX.
#[target_feature(enable = "avx")]
unsafe fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// # Safety
/// The CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_bf16_avx2(x: &[f32], w: &[bf16]) -> f32 {
    let n = x.len().min(w.len());
    let (xp, wp) = (x.as_ptr(), w.as_ptr() as *const u16);
    let mut a0 = _mm256_setzero_ps();
    let mut a1 = _mm256_setzero_ps();
    let mut i = 0;
    while i + 16 <= n {
        // Weights stream from memory once per token: ask for them 16 KiB ahead (a prefetch
        // never faults, so the address may lie past the weights).
        _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(i + 8192) as *const i8);
        // SAFETY: i + 16 <= n, so all 16 elements of both slices are in bounds.
        let (w0, w1, x0, x1) = unsafe {
            (
                _mm_loadu_si128(wp.add(i) as *const __m128i),
                _mm_loadu_si128(wp.add(i + 8) as *const __m128i),
                _mm256_loadu_ps(xp.add(i)),
                _mm256_loadu_ps(xp.add(i + 8)),
            )
        };
        let f0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(w0), 16));
        let f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(w1), 16));
        a0 = _mm256_fmadd_ps(x0, f0, a0);
        a1 = _mm256_fmadd_ps(x1, f1, a1);
        i += 16;
    }
    // SAFETY: AVX is implied by AVX2, enabled on this function.
    let mut s = unsafe { hsum(_mm256_add_ps(a0, a1)) };
    while i < n {
        s += x[i] * f32::from_bits((w[i].to_bits() as u32) << 16);
        i += 1;
    }
    s
}

/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f16_avx2(x: &[f32], w: &[f16]) -> f32 {
    let n = x.len().min(w.len());
    let (xp, wp) = (x.as_ptr(), w.as_ptr() as *const u16);
    let mut a0 = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, so all 8 elements of both slices are in bounds.
        let (h, xv) = unsafe {
            (
                _mm_loadu_si128(wp.add(i) as *const __m128i),
                _mm256_loadu_ps(xp.add(i)),
            )
        };
        a0 = _mm256_fmadd_ps(xv, _mm256_cvtph_ps(h), a0);
        i += 8;
    }
    // SAFETY: AVX is implied by AVX2, enabled on this function.
    let mut s = unsafe { hsum(a0) };
    while i < n {
        s += x[i] * w[i].to_f32();
        i += 1;
    }
    s
}

/// Elementwise functions compiled with AVX2 (the bodies are in `math.rs`).
impl Avx2 {
    pub(crate) fn layer_norm_row(self, r: &[f32], w: &[f32], b: &[f32], eps: f32, o: &mut [f32]) {
        // SAFETY: the token proves the features these functions are compiled for.
        unsafe { layer_norm_256(r, w, b, eps, o) }
    }
    pub(crate) fn rms_norm_row(self, r: &[f32], w: &[f32], eps: f32, o: &mut [f32]) {
        // SAFETY: as above.
        unsafe { rms_norm_256(r, w, eps, o) }
    }
    pub(crate) fn gelu(self, x: &mut [f32]) {
        // SAFETY: the token proves the features these functions are compiled for.
        unsafe { gelu_256(x) }
    }
    pub(crate) fn silu_mul(self, gate: &mut [f32], up: &[f32]) {
        // SAFETY: as above.
        unsafe { silu_mul_256(gate, up) }
    }
    pub(crate) fn softmax_scaled(self, row: &mut [f32], scale: f32) {
        // SAFETY: as above.
        unsafe { softmax_256(row, scale) }
    }
}

#[target_feature(enable = "avx2,fma")]
fn gelu_256(x: &mut [f32]) {
    super::math::gelu_slice(x)
}

#[target_feature(enable = "avx2,fma")]
fn layer_norm_256(r: &[f32], w: &[f32], b: &[f32], eps: f32, o: &mut [f32]) {
    crate::kernels::math::layer_norm_row(r, w, b, eps, o)
}

#[target_feature(enable = "avx2,fma")]
fn rms_norm_256(r: &[f32], w: &[f32], eps: f32, o: &mut [f32]) {
    crate::kernels::math::rms_norm_row(r, w, eps, o)
}

#[target_feature(enable = "avx2,fma")]
fn silu_mul_256(gate: &mut [f32], up: &[f32]) {
    super::math::silu_mul_slice(gate, up)
}

#[target_feature(enable = "avx2,fma")]
fn softmax_256(row: &mut [f32], scale: f32) {
    super::math::softmax_scaled(row, scale)
}

/// # Safety
/// The CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_f32_avx2(x: &[f32], w: &[f32]) -> f32 {
    let n = x.len().min(w.len());
    let (xp, wp) = (x.as_ptr(), w.as_ptr());
    let mut a0 = _mm256_setzero_ps();
    let mut a1 = _mm256_setzero_ps();
    let mut i = 0;
    while i + 16 <= n {
        // The same 16 KiB ahead as the bf16 rows.
        _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(i + 4096) as *const i8);
        // SAFETY: i + 16 <= n, so all 16 elements of both slices are in bounds.
        let (w0, w1, x0, x1) = unsafe {
            (
                _mm256_loadu_ps(wp.add(i)),
                _mm256_loadu_ps(wp.add(i + 8)),
                _mm256_loadu_ps(xp.add(i)),
                _mm256_loadu_ps(xp.add(i + 8)),
            )
        };
        a0 = _mm256_fmadd_ps(x0, w0, a0);
        a1 = _mm256_fmadd_ps(x1, w1, a1);
        i += 16;
    }
    // SAFETY: AVX is implied by AVX2, enabled on this function.
    let mut s = unsafe { hsum(_mm256_add_ps(a0, a1)) };
    while i < n {
        s += x[i] * w[i];
        i += 1;
    }
    s
}
