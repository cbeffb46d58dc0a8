//! Products with ggml block weights in the f32 mode: each block is expanded to the f32 values
//! of its dequantization (computed as ggml's `dequantize_row_*`: one rounding at most) and
//! multiplied by f32 activations, so results equal those on the dequantized matrix up to the
//! order of the f32 sums.

use super::{Avx512, PREFETCH};
use crate::weights::kquant::{k4_factors, q6_factors};
use crate::weights::quant::QuantType;
use std::arch::x86_64::*;

/// (elements, bytes) of a block by format number: 0 Q8_0, 1 Q4_0, 2 Q4_1, 3 Q5_0, 4 Q5_1,
/// 5 Q4_K, 6 Q5_K, 7 Q6_K.
pub(super) const FORMATS: [(usize, usize); 8] = [
    (32, 34),
    (32, 18),
    (32, 20),
    (32, 22),
    (32, 24),
    (256, 144),
    (256, 176),
    (256, 210),
];

impl Avx512 {
    /// out[j·M + i] = x_i · w_j for up to four rows w_j of `t` blocks (k whole blocks), against
    /// `M` activation rows of k.
    pub(crate) fn dots_quant<const M: usize>(
        self,
        x: &[f32],
        k: usize,
        t: QuantType,
        w: &[u8],
        out: &mut [f32],
    ) {
        let rows = out.len() / M;
        assert!(k.is_multiple_of(t.block_elems()) && rows <= 4);
        assert!(x.len() >= M * k && w.len() >= rows * t.bytes_for(k));
        let (x, w) = (x.as_ptr(), w.as_ptr());
        // SAFETY: the token proves AVX-512F/BW/VL and F16C; the asserts bound every read.
        let acc = unsafe {
            match t {
                QuantType::Q8_0 => dots::<M, 0>(x, k, w, rows),
                QuantType::Q4_0 => dots::<M, 1>(x, k, w, rows),
                QuantType::Q4_1 => dots::<M, 2>(x, k, w, rows),
                QuantType::Q5_0 => dots::<M, 3>(x, k, w, rows),
                QuantType::Q5_1 => dots::<M, 4>(x, k, w, rows),
                QuantType::Q4_K => dots::<M, 5>(x, k, w, rows),
                QuantType::Q5_K => dots::<M, 6>(x, k, w, rows),
                QuantType::Q6_K => dots::<M, 7>(x, k, w, rows),
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
pub(super) unsafe fn half(p: *const u8) -> f32 {
    // SAFETY: two readable bytes, read unaligned.
    let bits = unsafe { (p as *const u16).read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// Sixteen bytes at `p` as i32 lanes.
///
/// # Safety
/// AVX-512F; `p` valid for 16 bytes.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn bytes16(p: *const u8) -> __m512i {
    // SAFETY: sixteen readable bytes, read unaligned.
    _mm512_cvtepu8_epi32(unsafe { _mm_loadu_si128(p as *const __m128i) })
}

/// The block at `p` expanded into its first elements/16 vectors of `out`, in element order;
/// `F` a format number of [`FORMATS`].
///
/// # Safety
/// AVX-512F/BW/VL and F16C; `p` valid for one block.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
#[inline]
unsafe fn expand<const F: u8>(p: *const u8, out: &mut [__m512; 16]) {
    let bytes = FORMATS[F as usize].1;
    // SAFETY: every read below lies inside the block of `bytes` bytes at p.
    unsafe {
        let nib = _mm512_set1_epi32(15);
        match F {
            0 => {
                let d = _mm512_set1_ps(half(p));
                let q = _mm256_loadu_si256(p.add(2) as *const __m256i);
                let lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
                let hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256::<1>(q)));
                out[0] = _mm512_mul_ps(lo, d);
                out[1] = _mm512_mul_ps(hi, d);
            }
            1..=4 => {
                let d = _mm512_set1_ps(half(p));
                let with_min = F == 2 || F == 4;
                let qh_at = if with_min { 4 } else { 2 };
                let qs_at = qh_at + if F >= 3 { 4 } else { 0 };
                let b = bytes16(p.add(qs_at));
                let mut lo = _mm512_and_si512(b, nib);
                let mut hi = _mm512_and_si512(_mm512_srli_epi32::<4>(b), nib);
                let mut off = if F == 1 { 8 } else { 0 };
                if F >= 3 {
                    let qh = (p.add(qh_at) as *const u32).read_unaligned();
                    let bit = _mm512_set1_epi32(16);
                    lo = _mm512_mask_or_epi32(lo, qh as u16, lo, bit);
                    hi = _mm512_mask_or_epi32(hi, (qh >> 16) as u16, hi, bit);
                    off = if F == 3 { 16 } else { 0 };
                }
                let off = _mm512_set1_epi32(off);
                let lo = _mm512_cvtepi32_ps(_mm512_sub_epi32(lo, off));
                let hi = _mm512_cvtepi32_ps(_mm512_sub_epi32(hi, off));
                if with_min {
                    let m = _mm512_set1_ps(half(p.add(2)));
                    out[0] = _mm512_fmadd_ps(lo, d, m);
                    out[1] = _mm512_fmadd_ps(hi, d, m);
                } else {
                    out[0] = _mm512_mul_ps(lo, d);
                    out[1] = _mm512_mul_ps(hi, d);
                }
            }
            5 | 6 => {
                let (a, b) = k4_factors(std::slice::from_raw_parts(p, bytes));
                let qs = p.add(if F == 5 { 16 } else { 48 });
                for c in 0..8 {
                    let (av, bv) = (_mm512_set1_ps(a[c]), _mm512_set1_ps(b[c]));
                    for v in 0..2 {
                        let n = bytes16(qs.add(32 * (c / 2) + 16 * v));
                        let n = if c % 2 == 1 {
                            _mm512_srli_epi32::<4>(n)
                        } else {
                            n
                        };
                        let mut q = _mm512_and_si512(n, nib);
                        if F == 6 {
                            let h = bytes16(p.add(16 + 16 * v));
                            let h = _mm512_srlv_epi32(h, _mm512_set1_epi32(c as i32));
                            let h = _mm512_and_si512(h, _mm512_set1_epi32(1));
                            q = _mm512_or_si512(q, _mm512_slli_epi32::<4>(h));
                        }
                        // a·q is exact, so this is ggml's d1·q − m1 with its one rounding.
                        out[2 * c + v] = _mm512_fmsub_ps(_mm512_cvtepi32_ps(q), av, bv);
                    }
                }
            }
            _ => {
                let f = q6_factors(std::slice::from_raw_parts(p, bytes));
                for c in 0..8 {
                    let (h, r) = (c / 4, c % 4);
                    for v in 0..2 {
                        let lo = bytes16(p.add(64 * h + 32 * (r % 2) + 16 * v));
                        let lo = if r >= 2 {
                            _mm512_srli_epi32::<4>(lo)
                        } else {
                            lo
                        };
                        let lo = _mm512_and_si512(lo, nib);
                        let hi = bytes16(p.add(128 + 32 * h + 16 * v));
                        let hi = _mm512_srlv_epi32(hi, _mm512_set1_epi32(2 * r as i32));
                        let hi = _mm512_and_si512(hi, _mm512_set1_epi32(3));
                        let q = _mm512_or_si512(lo, _mm512_slli_epi32::<4>(hi));
                        let q = _mm512_sub_epi32(q, _mm512_set1_epi32(32));
                        let s = _mm512_set1_ps(f[8 * h + 2 * r + v]);
                        out[2 * c + v] = _mm512_mul_ps(_mm512_cvtepi32_ps(q), s);
                    }
                }
            }
        }
    }
}

/// # Safety
/// AVX-512F/BW/VL and F16C; x valid for M·k reads, w for `rows` rows of k elements of `F`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
unsafe fn dots<const M: usize, const F: u8>(
    x: *const f32,
    k: usize,
    w: *const u8,
    rows: usize,
) -> [f32; 16] {
    let (elems, bb) = FORMATS[F as usize];
    let row_bytes = k / elems * bb;
    let mut acc = [[_mm512_setzero_ps(); M]; 4];
    let mut wv = [_mm512_setzero_ps(); 16];
    for blk in 0..k / elems {
        let i = blk * elems;
        for (j, aj) in acc.iter_mut().enumerate().take(rows) {
            let p = w.wrapping_add(j * row_bytes + blk * bb);
            // Weights stream from memory once per token; a prefetch never faults.
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH) as *const i8);
            // SAFETY: block blk of row j lies inside the rows the caller vouched for.
            unsafe { expand::<F>(p, &mut wv) };
            for (r, a) in aj.iter_mut().enumerate() {
                for (v, wvv) in wv.iter().enumerate().take(elems / 16) {
                    // SAFETY: elements i + 16v.. of activation row r, inside M·k.
                    let xv = unsafe { _mm512_loadu_ps(x.add(r * k + i + 16 * v)) };
                    *a = _mm512_fmadd_ps(xv, *wvv, *a);
                }
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
