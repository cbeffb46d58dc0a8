//! Activation rows quantized to int8 blocks on AVX512_VNNI, bit for bit the portable code's.

use super::Avx512Vnni;
use std::arch::x86_64::*;

impl Avx512Vnni {
    /// The portable `int8::quantize_row`, bit for bit (IEEE division, multiplication and
    /// round-half-even conversion in both).
    pub(crate) fn quantize_row(
        self,
        x: &[f32],
        blk: usize,
        q: &mut [i8],
        dl: &mut [f32],
        sum4: &mut [i32],
    ) {
        let blocks = x.len() / blk;
        assert!(blk.is_multiple_of(32) && q.len() >= blk * blocks);
        assert!(dl.len() >= blk / 4 * blocks && sum4.len() >= blk / 4 * blocks);
        // SAFETY: the token proves the features; the asserts bound every access.
        unsafe {
            quantize_row(
                x.as_ptr(),
                blk,
                blocks,
                q.as_mut_ptr(),
                dl.as_mut_ptr(),
                sum4.as_mut_ptr(),
            )
        }
    }
}

/// # Safety
/// AVX-512F/BW/VL, VNNI; x valid for blk·blocks reads, q for as many writes, the lane arrays
/// for blk/4·blocks.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn quantize_row(
    x: *const f32,
    blk: usize,
    blocks: usize,
    q: *mut i8,
    dl: *mut f32,
    sum4: *mut i32,
) {
    let ones = _mm256_set1_epi8(1);
    for b in 0..blocks {
        // SAFETY: block b's floats, codes and lanes lie inside what the caller vouched for.
        unsafe {
            let xb = x.add(blk * b);
            let mut m = _mm512_setzero_ps();
            for v in 0..blk / 16 {
                m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(xb.add(16 * v))));
            }
            let d = _mm512_reduce_max_ps(m) / 127.0;
            let id = _mm512_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
            let dv = _mm256_set1_ps(d);
            for c in 0..blk / 32 {
                let lo = _mm512_loadu_ps(xb.add(32 * c));
                let hi = _mm512_loadu_ps(xb.add(32 * c + 16));
                let qlo = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(lo, id)));
                let qhi = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(hi, id)));
                let codes = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(qlo), qhi);
                let at = b * blk + 32 * c;
                _mm256_storeu_si256(q.add(at) as *mut __m256i, codes);
                let sums = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, codes);
                _mm256_storeu_ps(dl.add(at / 4), dv);
                _mm256_storeu_si256(sum4.add(at / 4) as *mut __m256i, sums);
            }
        }
    }
}
