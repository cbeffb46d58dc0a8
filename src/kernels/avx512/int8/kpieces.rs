//! The one-row Q4_K/Q5_K kernel on activations in the piece order of `int8::order`: per
//! super-block two 64-byte loads and nibble splits give the four pieces, one scale vector per
//! half is built once, each pair of pieces sharing it is summed by two `vpdpbusd` before one
//! `vpdpwssd`, and the minimums take one `pmaddwd` against the eight sub-block sums. About half
//! the vector work of applying scales and minimums piece by piece.

use super::kquant::k4_scale_words;
use super::Ptrs;
use crate::kernels::avx512::quant::{half, FORMATS};
use crate::kernels::avx512::PREFETCH;
use crate::kernels::int8::order::sub_block;
use std::arch::x86_64::*;

/// The sub-block of each lane of a first-half piece (second half: + 4).
const LANE_SUB_BLOCK: [i32; 16] = {
    let mut t = [0i32; 16];
    let mut lane = 0;
    while lane < 16 {
        t[lane] = sub_block(0, lane) as i32;
        lane += 1;
    }
    t
};

/// # Safety
/// AVX-512F/BW/VL, F16C, VNNI; `a.q` the piece-order codes and `sum32` the sub-block sums of
/// M activation rows of k, their scales at `a.dl`; `w` valid for `rows` rows of k elements of
/// format `F` (5 Q4_K, 6 Q5_K).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
pub(super) unsafe fn dots_kp<const M: usize, const F: u8>(
    a: Ptrs,
    sum32: *const i16,
    k: usize,
    w: *const u8,
    rows: usize,
    res: &mut [f32; 16],
) {
    let bb = FORMATS[F as usize].1;
    let row_bytes = k / 256 * bb;
    let nib = _mm512_set1_epi8(15);
    let sixteen = _mm512_set1_epi8(16);
    // SAFETY: 64 bytes of a 16-lane i32 array.
    let idx = unsafe { _mm512_loadu_si512(LANE_SUB_BLOCK.as_ptr() as *const _) };
    let idx = [idx, _mm512_add_epi32(idx, _mm512_set1_epi32(4))];
    // Q5_K: the fifth bits of a piece's codes are bit c of qh byte l; pieces 2h + odd read qh's
    // 8-byte words odd and 2 + odd, each twice (low then high nibble: bits c and c + 1).
    let words = [
        _mm512_set_epi64(2, 2, 0, 0, 2, 2, 0, 0),
        _mm512_set_epi64(3, 3, 1, 1, 3, 3, 1, 1),
    ];
    let bit = |c: i64| 0x0101_0101_0101_0101i64.wrapping_mul(1 << c);
    let bits = [
        _mm512_set_epi64(
            bit(3),
            bit(2),
            bit(3),
            bit(2),
            bit(1),
            bit(0),
            bit(1),
            bit(0),
        ),
        _mm512_set_epi64(
            bit(7),
            bit(6),
            bit(7),
            bit(6),
            bit(5),
            bit(4),
            bit(5),
            bit(4),
        ),
    ];
    let mut acc = [[_mm512_setzero_ps(); M]; 4];
    let mut acc_min = [[_mm_setzero_ps(); M]; 4];
    for j in 0..rows {
        for sb in 0..k / 256 {
            let p = w.wrapping_add(j * row_bytes + sb * bb);
            // Weights stream from memory once per token; a prefetch never faults.
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH) as *const i8);
            // SAFETY: super-block sb of row j lies inside the rows the caller vouched for.
            unsafe {
                let [sc_lo, sc_hi, mn_lo, mn_hi] = k4_scale_words(p);
                let sc = _mm512_cvtepu8_epi32(_mm_set_epi32(0, 0, sc_hi as i32, sc_lo as i32));
                let scales = [
                    _mm512_permutexvar_epi32(idx[0], sc),
                    _mm512_permutexvar_epi32(idx[1], sc),
                ];
                let mins = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, mn_hi as i32, mn_lo as i32));
                let (d, dmin) = (half(p), half(p.add(2)));
                let qs = p.add(if F == 5 { 16 } else { 48 });
                let qh = if F == 6 {
                    _mm512_castsi256_si512(_mm256_loadu_si256(p.add(16) as *const __m256i))
                } else {
                    _mm512_setzero_si512()
                };
                let mut u = [_mm512_setzero_si512(); 4];
                for h in 0..2 {
                    let v = _mm512_loadu_si512(qs.add(64 * h) as *const _);
                    let lo = _mm512_and_si512(v, nib);
                    let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(v), nib);
                    u[2 * h] = _mm512_unpacklo_epi64(lo, hi);
                    u[2 * h + 1] = _mm512_unpackhi_epi64(lo, hi);
                    if F == 6 {
                        for odd in 0..2 {
                            let hb = _mm512_permutexvar_epi64(words[odd], qh);
                            let m = _mm512_test_epi8_mask(hb, bits[h]);
                            let x = &mut u[2 * h + odd];
                            *x = _mm512_mask_add_epi8(*x, m, *x, sixteen);
                        }
                    }
                }
                for r in 0..M {
                    let e = r * k + 256 * sb;
                    let x = |i: usize| _mm512_loadu_si512(a.q.add(e + 64 * i) as *const _);
                    let zero = _mm512_setzero_si512();
                    // |Σ of 8 codes·activations| ≤ 8·31·127 < 2^15: the low 16 bits hold it.
                    let s0 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, u[0], x(0)), u[1], x(1));
                    let s1 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, u[2], x(2)), u[3], x(3));
                    let i = _mm512_dpwssd_epi32(
                        _mm512_dpwssd_epi32(zero, s0, scales[0]),
                        s1,
                        scales[1],
                    );
                    let dx = *a.dl.add(e / 4);
                    acc[j][r] =
                        _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_set1_ps(d * dx), acc[j][r]);
                    let sums = _mm_loadu_si128(sum32.add(e / 32) as *const __m128i);
                    let mi = _mm_cvtepi32_ps(_mm_madd_epi16(sums, mins));
                    acc_min[j][r] = _mm_fmadd_ps(mi, _mm_set1_ps(dmin * dx), acc_min[j][r]);
                }
            }
        }
    }
    for j in 0..rows {
        for r in 0..M {
            let m = acc_min[j][r];
            let m = _mm_add_ps(m, _mm_movehl_ps(m, m));
            let m = _mm_add_ss(m, _mm_movehdup_ps(m));
            res[j * M + r] = _mm512_reduce_add_ps(acc[j][r]) - _mm_cvtss_f32(m);
        }
    }
}
