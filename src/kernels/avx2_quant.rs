//! AVX2 products with ggml block weights in the f32 mode (as `avx512/quant.rs`, one row at a
//! time): blocks expanded to their dequantized f32 values, then multiplied in f32.

use super::avx2::Avx2;
use crate::weights::quant::{QuantType, QK};
use std::arch::x86_64::*;

impl Avx2 {
    /// Σ x·w for one row w of `t` blocks (x.len() a multiple of 32 and w that many elements).
    pub(crate) fn dot_quant(self, x: &[f32], t: QuantType, w: &[u8]) -> f32 {
        assert!(x.len().is_multiple_of(QK) && w.len() >= t.bytes_for(x.len()));
        // SAFETY: the token proves AVX2/FMA/F16C; the assert bounds every read.
        unsafe {
            match t {
                QuantType::Q8_0 => dot::<0>(x, w.as_ptr()),
                QuantType::Q4_0 => dot::<1>(x, w.as_ptr()),
                QuantType::Q4_1 => dot::<2>(x, w.as_ptr()),
            }
        }
    }
}

/// # Safety
/// F16C; `p` valid for two bytes.
#[target_feature(enable = "avx2,f16c")]
#[inline]
unsafe fn half(p: *const u8) -> f32 {
    // SAFETY: two readable bytes, read unaligned.
    let bits = unsafe { (p as *const u16).read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// # Safety
/// AVX2/FMA/F16C; `w` valid for x.len()/32 blocks of format `F` (0 = Q8_0, 1 = Q4_0, 2 = Q4_1).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot<const F: u8>(x: &[f32], w: *const u8) -> f32 {
    let bb = [34, 18, 20][F as usize];
    let xp = x.as_ptr();
    let mut acc = [_mm256_setzero_ps(); 4];
    for blk in 0..x.len() / QK {
        let p = w.wrapping_add(blk * bb);
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(8192) as *const i8);
        // SAFETY: block blk lies inside the row the caller vouched for; x holds 32 more floats.
        unsafe {
            let d = _mm256_set1_ps(half(p));
            // Eight weights at a time as i32 lanes, in element order.
            let ints: [__m256i; 4] = if F == 0 {
                let q = _mm256_loadu_si256(p.add(2) as *const __m256i);
                let (lo, hi) = (_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
                [
                    _mm256_cvtepi8_epi32(lo),
                    _mm256_cvtepi8_epi32(_mm_srli_si128::<8>(lo)),
                    _mm256_cvtepi8_epi32(hi),
                    _mm256_cvtepi8_epi32(_mm_srli_si128::<8>(hi)),
                ]
            } else {
                let b = _mm_loadu_si128(p.add(if F == 1 { 2 } else { 4 }) as *const __m128i);
                let nib = _mm_set1_epi8(15);
                let (lo, hi) = (
                    _mm_and_si128(b, nib),
                    _mm_and_si128(_mm_srli_epi16::<4>(b), nib),
                );
                let off = _mm256_set1_epi32(if F == 1 { 8 } else { 0 });
                [
                    _mm256_sub_epi32(_mm256_cvtepu8_epi32(lo), off),
                    _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128::<8>(lo)), off),
                    _mm256_sub_epi32(_mm256_cvtepu8_epi32(hi), off),
                    _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128::<8>(hi)), off),
                ]
            };
            let m = _mm256_set1_ps(if F == 2 { half(p.add(2)) } else { 0.0 });
            for (c, (a, q)) in acc.iter_mut().zip(ints).enumerate() {
                let wv = if F == 2 {
                    _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), d, m)
                } else {
                    _mm256_mul_ps(_mm256_cvtepi32_ps(q), d)
                };
                *a = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(blk * QK + c * 8)), wv, *a);
            }
        }
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let (lo, hi) = (_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
}
