//! The int8 mode's K-quant kernel: integer sub-block scales and minimums applied with
//! `vpdpwssd` to exact `vpdpbusd` lane sums, one float product per super-block.

use super::kpieces::dots_kp;
use super::{by_rows, group_ptrs, join256, Avx512Vnni, Ptrs};
use crate::kernels::avx512::quant::{half, FORMATS};
use crate::kernels::avx512::PREFETCH;
use crate::kernels::int8::Acts;
use crate::weights::quant::QuantType;
use std::arch::x86_64::*;

impl Avx512Vnni {
    /// K-quant rows against activations in 256-element blocks: res[j·mr + r] = w_j · x_{r0+r}
    /// for `rows` (≤ 4) rows of `w` and mr (1..=4) rows of `acts`. The sub-block scales (and
    /// minimums) are integers, applied by `vpdpwssd` to the exact `vpdpbusd` lane sums, so each
    /// super-block costs one float product per row pair (two with a minimum).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn dots_k(
        self,
        acts: &Acts,
        r0: usize,
        mr: usize,
        t: QuantType,
        w: &[u8],
        rows: usize,
        res: &mut [f32; 16],
    ) {
        assert!(t.block_elems() == 256);
        let mut a = group_ptrs(acts, r0, mr, t, w, rows);
        let (k, w) = (acts.k, w.as_ptr());
        if matches!(t, QuantType::Q4_K | QuantType::Q5_K) && !acts.kq.is_empty() {
            assert!(acts.kq.len() >= (r0 + mr) * k && acts.sum32.len() >= (r0 + mr) * k / 32);
            a.q = acts.kq[r0 * k..].as_ptr();
            let sums = acts.sum32[r0 * k / 32..].as_ptr();
            // SAFETY: the token proves the features; the checks above and group_ptrs bound
            // every read.
            return unsafe {
                match t {
                    QuantType::Q4_K => by_rows!(dots_kp, 5, mr, (a, sums, k, w, rows, res)),
                    _ => by_rows!(dots_kp, 6, mr, (a, sums, k, w, rows, res)),
                }
            };
        }
        // SAFETY: the token proves the features; group_ptrs bounds every read.
        unsafe { by_kformat!(dots_k, t, mr, (a, k, w, rows, res)) }
    }
}

/// [`by_rows`] for the K-quants.
macro_rules! by_kformat {
    ($f:ident, $t:expr, $mr:expr, $args:tt) => {
        match $t {
            QuantType::Q4_K => by_rows!($f, 5, $mr, $args),
            QuantType::Q5_K => by_rows!($f, 6, $mr, $args),
            QuantType::Q6_K => by_rows!($f, 7, $mr, $args),
            _ => unreachable!("{:?} is not a K-quant", $t),
        }
    };
}
pub(super) use by_kformat;

/// A super-block's codes per 64-element piece, its integer scales as 16 i32 lanes (Q4_K/Q5_K:
/// the eight sub-block scales then the eight minimums; Q6_K: the sixteen scales, masked to
/// their low 16 bits for `vpdpwssd`), d and dmin.
pub(super) struct KBlock {
    pub(super) u: [__m512i; 4],
    pub(super) scales: __m512i,
    pub(super) d: f32,
    pub(super) dmin: f32,
}

/// Piece i's scale per lane (16 lanes of four elements) from a super-block's scale lanes.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn piece_scales<const F: u8>(scales: __m512i, i: usize) -> __m512i {
    let j = if F == 7 { 4 * i as i32 } else { 2 * i as i32 };
    let idx = if F == 7 {
        _mm512_set_epi32(
            j + 3,
            j + 3,
            j + 3,
            j + 3,
            j + 2,
            j + 2,
            j + 2,
            j + 2,
            j + 1,
            j + 1,
            j + 1,
            j + 1,
            j,
            j,
            j,
            j,
        )
    } else {
        _mm512_mask_blend_epi32(0xFF00, _mm512_set1_epi32(j), _mm512_set1_epi32(j + 1))
    };
    _mm512_permutexvar_epi32(idx, scales)
}

/// Piece i's minimum per lane (Q4_K/Q5_K).
#[target_feature(enable = "avx512f")]
#[inline]
fn piece_mins(scales: __m512i, i: usize) -> __m512i {
    let j = 8 + 2 * i as i32;
    let idx = _mm512_mask_blend_epi32(0xFF00, _mm512_set1_epi32(j), _mm512_set1_epi32(j + 1));
    _mm512_permutexvar_epi32(idx, scales)
}

/// # Safety
/// AVX-512F/BW/VL, F16C; `p` valid for one super-block of format `F` (5 Q4_K, 6 Q5_K, 7 Q6_K).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
#[inline]
pub(super) unsafe fn k_block<const F: u8>(p: *const u8) -> KBlock {
    let zero = _mm512_setzero_si512();
    // SAFETY: every read lies inside the super-block at p.
    unsafe {
        if F == 7 {
            let sc = _mm512_cvtepi8_epi32(_mm_loadu_si128(p.add(192) as *const __m128i));
            let nib = _mm512_set1_epi8(15);
            let three = _mm256_set1_epi8(3);
            let mut b = KBlock {
                u: [zero; 4],
                scales: _mm512_and_si512(sc, _mm512_set1_epi32(0xFFFF)),
                d: half(p.add(208)),
                dmin: 0.0,
            };
            for i in 0..4 {
                let (h, r) = (i / 2, 2 * (i % 2));
                let ql = _mm512_loadu_si512(p.add(64 * h) as *const _);
                let ql = if r == 2 {
                    _mm512_srli_epi16::<4>(ql)
                } else {
                    ql
                };
                let qh = _mm256_loadu_si256(p.add(128 + 32 * h) as *const __m256i);
                let sh = |n: i32| _mm256_srl_epi16(qh, _mm_cvtsi32_si128(n));
                let ha = _mm256_and_si256(sh(2 * r as i32), three);
                let hb = _mm256_and_si256(sh(2 * r as i32 + 2), three);
                let hi = _mm512_slli_epi16::<4>(join256(ha, hb));
                b.u[i] = _mm512_or_si512(_mm512_and_si512(ql, nib), hi);
            }
            return b;
        }
        // Q4_K/Q5_K: twelve bytes of 6-bit scales and minimums after d and dmin.
        let [sc_lo, sc_hi, mn_lo, mn_hi] = k4_scale_words(p);
        let scales = _mm512_cvtepu8_epi32(_mm_set_epi32(
            mn_hi as i32,
            mn_lo as i32,
            sc_hi as i32,
            sc_lo as i32,
        ));
        let qs = p.add(if F == 5 { 16 } else { 48 });
        let qh = _mm256_loadu_si256(p.add(16) as *const __m256i);
        let nib = _mm256_set1_epi8(15);
        let mut b = KBlock {
            u: [zero; 4],
            scales,
            d: half(p),
            dmin: half(p.add(2)),
        };
        for i in 0..4 {
            let v = _mm256_loadu_si256(qs.add(32 * i) as *const __m256i);
            let lo = _mm256_and_si256(v, nib);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), nib);
            let mut u = join256(lo, hi);
            if F == 6 {
                let bit = |c: usize| _mm256_set1_epi8((1u8 << c) as i8);
                let ml = _mm256_test_epi8_mask(qh, bit(2 * i)) as u64;
                let mh = _mm256_test_epi8_mask(qh, bit(2 * i + 1)) as u64;
                u = _mm512_mask_add_epi8(u, ml | (mh << 32), u, _mm512_set1_epi8(16));
            }
            b.u[i] = u;
        }
        b
    }
}

/// A Q4_K/Q5_K super-block's eight 6-bit sub-block scales and eight minimums as four words of
/// bytes: scales 0-3, 4-7, minimums 0-3, 4-7.
///
/// # Safety
/// `p` valid for the super-block's first 16 bytes.
#[inline]
pub(super) unsafe fn k4_scale_words(p: *const u8) -> [u32; 4] {
    // SAFETY: bytes 4..16 lie inside the super-block at p.
    let word = |at: usize| unsafe { (p.add(at) as *const u32).read_unaligned() };
    let (a0, a1, a2) = (word(4), word(8), word(12));
    [
        a0 & 0x3F3F_3F3F,
        (a2 & 0x0F0F_0F0F) | (((a0 >> 6) & 0x0303_0303) << 4),
        a1 & 0x3F3F_3F3F,
        ((a2 >> 4) & 0x0F0F_0F0F) | (((a1 >> 6) & 0x0303_0303) << 4),
    ]
}

/// # Safety
/// AVX-512F/BW/VL, F16C, VNNI; `a` valid for M activation rows of k, `w` for `rows` rows of k elements of format `F`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
unsafe fn dots_k<const M: usize, const F: u8>(
    a: Ptrs,
    k: usize,
    w: *const u8,
    rows: usize,
    res: &mut [f32; 16],
) {
    let bb = FORMATS[F as usize].1;
    let row_bytes = k / 256 * bb;
    let with_min = F != 7;
    let sum4 = a.sum4;
    let mut acc = [[_mm512_setzero_ps(); M]; 4];
    // Row by row: the group's rows are contiguous, so the weights stream in address order.
    for (j, aj) in acc.iter_mut().enumerate().take(rows) {
        for sb in 0..k / 256 {
            let p = w.wrapping_add(j * row_bytes + sb * bb);
            // Weights stream from memory once per token; a prefetch never faults.
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH) as *const i8);
            // SAFETY: super-block sb of row j lies inside the rows the caller vouched for.
            let b = unsafe { k_block::<F>(p) };
            let mut ia = [_mm512_setzero_si512(); M];
            let mut ib = [_mm512_setzero_si512(); M];
            for i in 0..4 {
                let sc = piece_scales::<F>(b.scales, i);
                let mn = if with_min {
                    piece_mins(b.scales, i)
                } else {
                    sc
                };
                for r in 0..M {
                    let e = r * k + 256 * sb + 64 * i;
                    // SAFETY: elements e..e + 64 of activation row r and their lanes, inside
                    // the M rows the caller vouched for.
                    unsafe {
                        let x = _mm512_loadu_si512(a.q.add(e) as *const _);
                        let start = if F == 7 {
                            _mm512_loadu_si512(a.base.add(e / 4) as *const _)
                        } else {
                            _mm512_setzero_si512()
                        };
                        let s = _mm512_dpbusd_epi32(start, b.u[i], x);
                        ia[r] = _mm512_dpwssd_epi32(ia[r], s, sc);
                        if with_min {
                            let sums = _mm512_loadu_si512(sum4.add(e / 4) as *const _);
                            ib[r] = _mm512_dpwssd_epi32(ib[r], sums, mn);
                        }
                    }
                }
            }
            for (r, ar) in aj.iter_mut().enumerate() {
                // SAFETY: the scale of activation row r's super-block sb.
                let dx = unsafe { *a.dl.add((r * k + 256 * sb) / 4) };
                *ar = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[r]), _mm512_set1_ps(b.d * dx), *ar);
                if with_min {
                    let m = _mm512_set1_ps(b.dmin * dx);
                    *ar = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ib[r]), m, *ar);
                }
            }
        }
    }
    for j in 0..rows {
        for r in 0..M {
            res[j * M + r] = _mm512_reduce_add_ps(acc[j][r]);
        }
    }
}
