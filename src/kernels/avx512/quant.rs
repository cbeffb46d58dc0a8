//! Products with ggml block weights in the f32 mode: each 32-element block is expanded to the
//! f32 values of its dequantization (d·q exact, Q4_1's + m rounded once as ggml does) and
//! multiplied by f32 activations, so results equal those on the dequantized matrix up to the
//! order of the f32 sums.

use super::{Avx512, PREFETCH};
use crate::weights::quant::{QuantType, QK};
use std::arch::x86_64::*;

impl Avx512 {
    /// out[j·M + i] = x_i · w_j for up to four rows w_j of `t` blocks (k a multiple of 32),
    /// against `M` activation rows of k.
    pub(crate) fn dots_quant<const M: usize>(
        self,
        x: &[f32],
        k: usize,
        t: QuantType,
        w: &[u8],
        out: &mut [f32],
    ) {
        let rows = out.len() / M;
        assert!(k.is_multiple_of(QK) && rows <= 4);
        assert!(x.len() >= M * k && w.len() >= rows * t.bytes_for(k));
        // SAFETY: the token proves AVX-512F/BW/VL and F16C; the asserts bound every read.
        let acc = unsafe {
            match t {
                QuantType::Q8_0 => dots::<M, 0>(x.as_ptr(), k, w.as_ptr(), rows),
                QuantType::Q4_0 => dots::<M, 1>(x.as_ptr(), k, w.as_ptr(), rows),
                QuantType::Q4_1 => dots::<M, 2>(x.as_ptr(), k, w.as_ptr(), rows),
            }
        };
        out.copy_from_slice(&acc[..rows * M]);
    }
}

/// The f16 at `p` as f32.
///
/// # Safety
/// F16C; `p` valid for two bytes.
#[target_feature(enable = "avx512f,f16c")]
#[inline]
unsafe fn half(p: *const u8) -> f32 {
    // SAFETY: two readable bytes, read unaligned.
    let bits = unsafe { (p as *const u16).read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// The block at `p` expanded to two vectors of 16 weights; `F` is 0 = Q8_0, 1 = Q4_0, 2 = Q4_1.
///
/// # Safety
/// AVX-512F/BW/VL and F16C; `p` valid for one block.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
#[inline]
unsafe fn expand<const F: u8>(p: *const u8) -> [__m512; 2] {
    // SAFETY: every read below lies inside the block (34, 18 or 20 bytes).
    unsafe {
        let d = _mm512_set1_ps(half(p));
        if F == 0 {
            let q = _mm256_loadu_si256(p.add(2) as *const __m256i);
            let lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
            let hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256::<1>(q)));
            return [_mm512_mul_ps(lo, d), _mm512_mul_ps(hi, d)];
        }
        let at = if F == 1 { 2 } else { 4 };
        let b = _mm_loadu_si128(p.add(at) as *const __m128i);
        let nib = _mm_set1_epi8(15);
        let lo = _mm512_cvtepu8_epi32(_mm_and_si128(b, nib));
        let hi = _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16::<4>(b), nib));
        if F == 1 {
            let eight = _mm512_set1_epi32(8);
            let lo = _mm512_cvtepi32_ps(_mm512_sub_epi32(lo, eight));
            let hi = _mm512_cvtepi32_ps(_mm512_sub_epi32(hi, eight));
            return [_mm512_mul_ps(lo, d), _mm512_mul_ps(hi, d)];
        }
        let m = _mm512_set1_ps(half(p.add(2)));
        [
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), d, m),
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), d, m),
        ]
    }
}

/// # Safety
/// AVX-512F/BW/VL and F16C; x valid for M·k reads, w for `rows` rows of k/32 blocks.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
unsafe fn dots<const M: usize, const F: u8>(
    x: *const f32,
    k: usize,
    w: *const u8,
    rows: usize,
) -> [f32; 16] {
    let bb = [34, 18, 20][F as usize];
    let row_bytes = k / QK * bb;
    let mut acc = [[_mm512_setzero_ps(); M]; 4];
    for blk in 0..k / QK {
        let i = blk * QK;
        for (j, aj) in acc.iter_mut().enumerate().take(rows) {
            let p = w.wrapping_add(j * row_bytes + blk * bb);
            // Weights stream from memory once per token; a prefetch never faults.
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH) as *const i8);
            // SAFETY: block blk of row j lies inside the rows the caller vouched for.
            let [w0, w1] = unsafe { expand::<F>(p) };
            for (r, a) in aj.iter_mut().enumerate() {
                // SAFETY: elements i..i+32 of activation row r, inside M·k.
                let (x0, x1) = unsafe {
                    (
                        _mm512_loadu_ps(x.add(r * k + i)),
                        _mm512_loadu_ps(x.add(r * k + i + 16)),
                    )
                };
                *a = _mm512_fmadd_ps(x1, w1, _mm512_fmadd_ps(x0, w0, *a));
            }
        }
    }
    let mut out = [0.0f32; 16];
    for j in 0..rows {
        for r in 0..M {
            out[j * M + r] = _mm512_reduce_add_ps(acc[j][r]);
        }
    }
    out
}
