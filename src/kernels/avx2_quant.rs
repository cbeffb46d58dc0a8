//! AVX2 products with ggml block weights in the f32 mode (as `avx512/quant.rs`, one row at a
//! time): blocks expanded to their dequantized f32 values, then multiplied in f32.

use super::avx2::Avx2;
use crate::weights::kquant::{k4_factors, q6_factors};
use crate::weights::quant::QuantType;
use std::arch::x86_64::*;

impl Avx2 {
    /// Σ x·w for one row w of `t` blocks (x.len() whole blocks and w that many elements).
    pub(crate) fn dot_quant(self, x: &[f32], t: QuantType, w: &[u8]) -> f32 {
        assert!(x.len().is_multiple_of(t.block_elems()) && w.len() >= t.bytes_for(x.len()));
        let (bb, be) = (t.block_bytes(), t.block_elems());
        // SAFETY: the token proves AVX2/FMA/F16C; the assert bounds every read.
        unsafe {
            match t {
                QuantType::Q8_0 => dot::<0>(x, w.as_ptr(), bb, be),
                QuantType::Q4_0 => dot::<1>(x, w.as_ptr(), bb, be),
                QuantType::Q4_1 => dot::<2>(x, w.as_ptr(), bb, be),
                QuantType::Q5_0 => dot::<3>(x, w.as_ptr(), bb, be),
                QuantType::Q5_1 => dot::<4>(x, w.as_ptr(), bb, be),
                QuantType::Q4_K => dot::<5>(x, w.as_ptr(), bb, be),
                QuantType::Q5_K => dot::<6>(x, w.as_ptr(), bb, be),
                QuantType::Q6_K => dot::<7>(x, w.as_ptr(), bb, be),
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

/// Eight bytes at `p` as i32 lanes.
///
/// # Safety
/// AVX2; `p` valid for 8 bytes.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn bytes8(p: *const u8) -> __m256i {
    // SAFETY: eight readable bytes, read unaligned.
    _mm256_cvtepu8_epi32(unsafe { _mm_loadl_epi64(p as *const __m128i) })
}

/// The block at `p` expanded into its first elements/8 vectors of `out`, in element order;
/// `F` is 0 Q8_0, 1 Q4_0, 2 Q4_1, 3 Q5_0, 4 Q5_1, 5 Q4_K, 6 Q5_K, 7 Q6_K.
///
/// # Safety
/// AVX2/FMA/F16C; `p` valid for one block of `bytes`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn expand<const F: u8>(p: *const u8, bytes: usize, out: &mut [__m256; 32]) {
    // SAFETY: every read below lies inside the block of `bytes` bytes at p.
    unsafe {
        let nib = _mm256_set1_epi32(15);
        match F {
            0 => {
                let d = _mm256_set1_ps(half(p));
                for (g, o) in out.iter_mut().take(4).enumerate() {
                    let q = _mm_loadl_epi64(p.add(2 + 8 * g) as *const __m128i);
                    *o = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d);
                }
            }
            1..=4 => {
                let d = _mm256_set1_ps(half(p));
                let with_min = F == 2 || F == 4;
                let qh_at = if with_min { 4 } else { 2 };
                let qs_at = qh_at + if F >= 3 { 4 } else { 0 };
                let qh = if F >= 3 {
                    (p.add(qh_at) as *const u32).read_unaligned() as i32
                } else {
                    0
                };
                let off = _mm256_set1_epi32([0, 8, 0, 16, 0][F as usize]);
                let m = _mm256_set1_ps(if with_min { half(p.add(2)) } else { 0.0 });
                for (g, o) in out.iter_mut().take(4).enumerate() {
                    // Elements 8g..8g+8: low nibbles of bytes 0..16, then the high ones.
                    let b = bytes8(p.add(qs_at + 8 * (g % 2)));
                    let b = if g >= 2 { _mm256_srli_epi32::<4>(b) } else { b };
                    let mut q = _mm256_and_si256(b, nib);
                    if F >= 3 {
                        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                        let at = _mm256_add_epi32(lane, _mm256_set1_epi32(8 * g as i32));
                        let bit = _mm256_srlv_epi32(_mm256_set1_epi32(qh), at);
                        let bit = _mm256_and_si256(bit, _mm256_set1_epi32(1));
                        q = _mm256_or_si256(q, _mm256_slli_epi32::<4>(bit));
                    }
                    let q = _mm256_cvtepi32_ps(_mm256_sub_epi32(q, off));
                    *o = if with_min {
                        _mm256_fmadd_ps(q, d, m)
                    } else {
                        _mm256_mul_ps(q, d)
                    };
                }
            }
            5 | 6 => {
                let (a, b) = k4_factors(std::slice::from_raw_parts(p, bytes));
                let qs = p.add(if F == 5 { 16 } else { 48 });
                for c in 0..8 {
                    let (av, bv) = (_mm256_set1_ps(a[c]), _mm256_set1_ps(b[c]));
                    for g in 0..4 {
                        let n = bytes8(qs.add(32 * (c / 2) + 8 * g));
                        let n = if c % 2 == 1 {
                            _mm256_srli_epi32::<4>(n)
                        } else {
                            n
                        };
                        let mut q = _mm256_and_si256(n, nib);
                        if F == 6 {
                            let h = bytes8(p.add(16 + 8 * g));
                            let h = _mm256_srlv_epi32(h, _mm256_set1_epi32(c as i32));
                            let h = _mm256_and_si256(h, _mm256_set1_epi32(1));
                            q = _mm256_or_si256(q, _mm256_slli_epi32::<4>(h));
                        }
                        // a·q is exact, so this is ggml's d1·q − m1 with its one rounding.
                        out[4 * c + g] = _mm256_fmsub_ps(_mm256_cvtepi32_ps(q), av, bv);
                    }
                }
            }
            _ => {
                let f = q6_factors(std::slice::from_raw_parts(p, bytes));
                for c in 0..8 {
                    let (h, r) = (c / 4, c % 4);
                    for g in 0..4 {
                        let lo = bytes8(p.add(64 * h + 32 * (r % 2) + 8 * g));
                        let lo = if r >= 2 {
                            _mm256_srli_epi32::<4>(lo)
                        } else {
                            lo
                        };
                        let lo = _mm256_and_si256(lo, nib);
                        let hi = bytes8(p.add(128 + 32 * h + 8 * g));
                        let hi = _mm256_srlv_epi32(hi, _mm256_set1_epi32(2 * r as i32));
                        let hi = _mm256_and_si256(hi, _mm256_set1_epi32(3));
                        let q = _mm256_or_si256(lo, _mm256_slli_epi32::<4>(hi));
                        let q = _mm256_sub_epi32(q, _mm256_set1_epi32(32));
                        let s = _mm256_set1_ps(f[8 * h + 2 * r + g / 2]);
                        out[4 * c + g] = _mm256_mul_ps(_mm256_cvtepi32_ps(q), s);
                    }
                }
            }
        }
    }
}

/// # Safety
/// AVX2/FMA/F16C; `w` valid for x.len()/be blocks of format `F`, `bb` bytes each.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot<const F: u8>(x: &[f32], w: *const u8, bb: usize, be: usize) -> f32 {
    let xp = x.as_ptr();
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut wv = [_mm256_setzero_ps(); 32];
    for blk in 0..x.len() / be {
        let p = w.wrapping_add(blk * bb);
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(8192) as *const i8);
        // SAFETY: block blk lies inside the row the caller vouched for; x holds be more floats.
        unsafe {
            expand::<F>(p, bb, &mut wv);
            for (c, wc) in wv.iter().enumerate().take(be / 8) {
                let xv = _mm256_loadu_ps(xp.add(blk * be + c * 8));
                acc[c % 4] = _mm256_fmadd_ps(xv, *wc, acc[c % 4]);
            }
        }
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let (lo, hi) = (_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
}
