//! AVX2 + FMA + F16C kernels, used only after `supported()` said yes at run time.

use half::{bf16, f16};
use std::arch::x86_64::*;

pub fn supported() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

#[inline]
unsafe fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_bf16_avx2(x: &[f32], w: &[bf16]) -> f32 {
    let n = x.len().min(w.len());
    let (xp, wp) = (x.as_ptr(), w.as_ptr() as *const u16);
    let mut a0 = _mm256_setzero_ps();
    let mut a1 = _mm256_setzero_ps();
    let mut i = 0;
    while i + 16 <= n {
        let w0 = _mm_loadu_si128(wp.add(i) as *const __m128i);
        let w1 = _mm_loadu_si128(wp.add(i + 8) as *const __m128i);
        let f0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(w0), 16));
        let f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(w1), 16));
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(i)), f0, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(i + 8)), f1, a1);
        i += 16;
    }
    let mut s = hsum(_mm256_add_ps(a0, a1));
    while i < n {
        s += x[i] * f32::from_bits((w[i].to_bits() as u32) << 16);
        i += 1;
    }
    s
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f16_avx2(x: &[f32], w: &[f16]) -> f32 {
    let n = x.len().min(w.len());
    let (xp, wp) = (x.as_ptr(), w.as_ptr() as *const u16);
    let mut a0 = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        let f = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(i) as *const __m128i));
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(i)), f, a0);
        i += 8;
    }
    let mut s = hsum(a0);
    while i < n {
        s += x[i] * w[i].to_f32();
        i += 1;
    }
    s
}

pub fn dot_bf16(x: &[f32], w: &[bf16]) -> f32 {
    // SAFETY: only reached when `supported()` returned true; loads stay below min(len) of both slices.
    unsafe { dot_bf16_avx2(x, w) }
}

pub fn dot_f16(x: &[f32], w: &[f16]) -> f32 {
    // SAFETY: only reached when `supported()` returned true; loads stay below min(len) of both slices.
    unsafe { dot_f16_avx2(x, w) }
}
