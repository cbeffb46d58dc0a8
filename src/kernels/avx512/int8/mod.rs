//! The int8 mode on AVX512_VNNI: each 64 elements of a weight row (two 32-element sub-blocks)
//! become 64 unsigned codes, `vpdpbusd` sums them against the int8 activations four at a time
//! starting from −o·Σq (so each i32 lane is Σ (u − o)·q exactly), and the lanes are scaled
//! by s·dx into f32 accumulators, + m·dx·Σq where the format has a minimum. The same sums as
//! the portable `int8::dot`, in another f32 order.

mod kpanel;
mod kpieces;
mod kquant;
mod panel;
mod quantize;

use super::quant::{half, FORMATS};
use super::PREFETCH;
use crate::kernels::int8::Acts;
use crate::weights::kquant::{k4_factors, q6_factors};
use crate::weights::quant::QuantType;
use std::arch::x86_64::*;

/// Proof that this CPU has AVX-512 F/BW/VL, F16C and AVX512_VNNI.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512Vnni(());

impl Avx512Vnni {
    /// Some(token) when the CPU supports the variant.
    pub(crate) fn new() -> Option<Avx512Vnni> {
        super::Avx512::new()?;
        is_x86_feature_detected!("avx512vnni").then_some(Avx512Vnni(()))
    }

    /// res[j·mr + r] = w_j · x_{r0 + r} for `rows` (≤ 4) rows of `w` and mr (1..=4) rows of
    /// `acts`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn dots_int8(
        self,
        acts: &Acts,
        r0: usize,
        mr: usize,
        t: QuantType,
        w: &[u8],
        rows: usize,
        res: &mut [f32; 16],
    ) {
        let a = group_ptrs(acts, r0, mr, t, w, rows);
        let (k, w) = (acts.k, w.as_ptr());
        // SAFETY: the token proves the features; group_ptrs bounds every read.
        unsafe { by_format!(dots, t, mr, (a, k, w, rows, res)) }
    }
}

/// Calls `$f::<M, F>(args)` with M = `$mr` (1..=4, the activation rows) and format number F.
macro_rules! by_rows {
    ($f:ident, $F:literal, $mr:expr, ($($arg:expr),*)) => {
        match $mr {
            1 => $f::<1, $F>($($arg),*),
            2 => $f::<2, $F>($($arg),*),
            3 => $f::<3, $F>($($arg),*),
            _ => $f::<4, $F>($($arg),*),
        }
    };
}
pub(super) use by_rows;

/// [`by_rows`] with F the number of format `$t` in `FORMATS`.
macro_rules! by_format {
    ($f:ident, $t:expr, $mr:expr, $args:tt) => {
        match $t {
            QuantType::Q8_0 => by_rows!($f, 0, $mr, $args),
            QuantType::Q4_0 => by_rows!($f, 1, $mr, $args),
            QuantType::Q4_1 => by_rows!($f, 2, $mr, $args),
            QuantType::Q5_0 => by_rows!($f, 3, $mr, $args),
            QuantType::Q5_1 => by_rows!($f, 4, $mr, $args),
            QuantType::Q4_K => by_rows!($f, 5, $mr, $args),
            QuantType::Q5_K => by_rows!($f, 6, $mr, $args),
            QuantType::Q6_K => by_rows!($f, 7, $mr, $args),
        }
    };
}
use by_format;

/// Checks that `rows` (1..=4) rows of `w` in format `t` and the activation rows r0..r0 + mr
/// (mr in 1..=4) of `acts`, with all their lanes, are there; the pointers at row r0.
pub(super) fn group_ptrs(
    acts: &Acts,
    r0: usize,
    mr: usize,
    t: QuantType,
    w: &[u8],
    rows: usize,
) -> Ptrs {
    let k = acts.k;
    assert!((1..=4).contains(&mr) && (1..=4).contains(&rows));
    assert!(k.is_multiple_of(t.block_elems()) && w.len() >= rows * t.bytes_for(k));
    assert!(acts.q.len() >= (r0 + mr) * k);
    let lanes = (r0 + mr) * k / 4;
    assert!(acts.dl.len() >= lanes && acts.base.len() >= lanes);
    assert!(acts.minx.len() >= lanes && acts.sum4.len() >= lanes);
    let at = r0 * k / 4;
    Ptrs {
        q: acts.q[r0 * k..].as_ptr(),
        dl: acts.dl[at..].as_ptr(),
        base: acts.base[at..].as_ptr(),
        minx: acts.minx[at..].as_ptr(),
        sum4: acts.sum4[at..].as_ptr(),
    }
}

/// Row r0's activation arrays.
#[derive(Clone, Copy)]
pub(super) struct Ptrs {
    pub(super) q: *const i8,
    pub(super) dl: *const f32,
    pub(super) base: *const i32,
    pub(super) minx: *const f32,
    pub(super) sum4: *const i32,
}

/// One 64-element piece of a weight row: codes, per-lane scale s, per-lane minimum m.
#[derive(Clone, Copy)]
pub(super) struct Piece {
    pub(super) u: __m512i,
    pub(super) s: __m512,
    pub(super) m: __m512,
}

/// Two 16-byte halves as one 256-bit vector (lo in the low lanes).
#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
fn join128(lo: __m128i, hi: __m128i) -> __m256i {
    _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi)
}

#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn join256(lo: __m256i, hi: __m256i) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

/// Lanes 0–7 `a`, 8–15 `b`.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn halves(a: f32, b: f32) -> __m512 {
    _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(a), _mm512_set1_ps(b))
}

/// The 32 codes of a 32-element block of format 1..=4 at `p`.
///
/// # Safety
/// `p` valid for one block.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
unsafe fn codes32<const F: u8>(p: *const u8) -> (__m256i, u32) {
    let with_min = F == 2 || F == 4;
    let qh_at = if with_min { 4 } else { 2 };
    let qs_at = qh_at + if F >= 3 { 4 } else { 0 };
    // SAFETY: every read lies inside the block at p.
    unsafe {
        let v = _mm_loadu_si128(p.add(qs_at) as *const __m128i);
        let nib = _mm_set1_epi8(15);
        let lo = _mm_and_si128(v, nib);
        let hi = _mm_and_si128(_mm_srli_epi16::<4>(v), nib);
        let qh = if F >= 3 {
            (p.add(qh_at) as *const u32).read_unaligned()
        } else {
            0
        };
        (join128(lo, hi), qh)
    }
}

/// The pieces of one unit (64 elements: blocks at p and p + bytes, the second only if `two`;
/// or one 256-element super-block) into `out`; returns how many.
///
/// # Safety
/// `p` valid for the unit's blocks.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
#[inline]
pub(super) unsafe fn unit<const F: u8>(p: *const u8, two: bool, out: &mut [Piece; 4]) -> usize {
    let bytes = FORMATS[F as usize].1;
    let zero = _mm512_setzero_ps();
    // SAFETY: every read lies inside the unit's blocks at p (the second block only if two).
    unsafe {
        match F {
            0 => {
                let b = if two { p.add(bytes) } else { p };
                let a = _mm256_loadu_si256(p.add(2) as *const __m256i);
                let c = _mm256_loadu_si256(b.add(2) as *const __m256i);
                out[0] = Piece {
                    u: _mm512_xor_si512(join256(a, c), _mm512_set1_epi8(-128)),
                    s: halves(half(p), half(b)),
                    m: zero,
                };
                1
            }
            1..=4 => {
                let b = if two { p.add(bytes) } else { p };
                let (ca, ha) = codes32::<F>(p);
                let (cb, hb) = codes32::<F>(b);
                let mut u = join256(ca, cb);
                if F >= 3 {
                    let mask = ha as u64 | ((hb as u64) << 32);
                    u = _mm512_mask_add_epi8(u, mask, u, _mm512_set1_epi8(16));
                }
                let m = if F == 2 || F == 4 {
                    halves(half(p.add(2)), half(b.add(2)))
                } else {
                    zero
                };
                out[0] = Piece {
                    u,
                    s: halves(half(p), half(b)),
                    m,
                };
                1
            }
            5 | 6 => {
                let (a, mins) = k4_factors(std::slice::from_raw_parts(p, bytes));
                let qs = p.add(if F == 5 { 16 } else { 48 });
                let nib = _mm256_set1_epi8(15);
                let qh = _mm256_loadu_si256(p.add(16) as *const __m256i);
                for (i, o) in out.iter_mut().enumerate() {
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
                    *o = Piece {
                        u,
                        s: halves(a[2 * i], a[2 * i + 1]),
                        m: halves(-mins[2 * i], -mins[2 * i + 1]),
                    };
                }
                4
            }
            _ => {
                let f = q6_factors(std::slice::from_raw_parts(p, bytes));
                let nib = _mm512_set1_epi8(15);
                let three = _mm256_set1_epi8(3);
                let spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
                for (i, o) in out.iter_mut().enumerate() {
                    let (h, r) = (i / 2, 2 * (i % 2));
                    let ql = _mm512_loadu_si512(p.add(64 * h) as *const _);
                    let ql = if r == 2 {
                        _mm512_srli_epi16::<4>(ql)
                    } else {
                        ql
                    };
                    let lo = _mm512_and_si512(ql, nib);
                    let qh = _mm256_loadu_si256(p.add(128 + 32 * h) as *const __m256i);
                    let sh = |n: i32| _mm256_srl_epi16(qh, _mm_cvtsi32_si128(n));
                    let ha = _mm256_and_si256(sh(2 * r as i32), three);
                    let hb = _mm256_and_si256(sh(2 * r as i32 + 2), three);
                    let hi = _mm512_slli_epi16::<4>(join256(ha, hb));
                    let s4 = _mm_loadu_ps(f.as_ptr().add(8 * h + 2 * r));
                    *o = Piece {
                        u: _mm512_or_si512(lo, hi),
                        s: _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(s4)),
                        m: zero,
                    };
                }
                4
            }
        }
    }
}

/// # Safety
/// AVX-512F/BW/VL, F16C, VNNI; `a` valid for M activation rows of k, `w` for `rows` rows of
/// k elements of format `F`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
unsafe fn dots<const M: usize, const F: u8>(
    a: Ptrs,
    k: usize,
    w: *const u8,
    rows: usize,
    res: &mut [f32; 16],
) {
    let (elems, bb) = FORMATS[F as usize];
    let row_bytes = k / elems * bb;
    let with_min = matches!(F, 2 | 4 | 5 | 6);
    // A unit is two 32-element blocks or one super-block; an odd last block is a unit alone.
    let (unit_elems, unit_bytes) = if elems == 32 { (64, 2 * bb) } else { (256, bb) };
    let units = k.div_ceil(unit_elems);
    let mut acc = [[_mm512_setzero_ps(); M]; 4];
    let mut pieces = [Piece {
        u: _mm512_setzero_si512(),
        s: _mm512_setzero_ps(),
        m: _mm512_setzero_ps(),
    }; 4];
    // Row by row: the group's rows are contiguous, so the weights stream in address order.
    for (j, aj) in acc.iter_mut().enumerate().take(rows) {
        for ui in 0..units {
            let e0 = ui * unit_elems;
            let two = e0 + 64 <= k;
            // Only the low 32 elements of a lone last block are read.
            let (bmask, lmask) = if two || elems == 256 {
                (u64::MAX, 0xFFFFu16)
            } else {
                (0xFFFF_FFFFu64, 0x00FFu16)
            };
            let p = w.wrapping_add(j * row_bytes + ui * unit_bytes);
            // Weights stream from memory once per token; a prefetch never faults.
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH) as *const i8);
            // SAFETY: the unit lies inside row j, which the caller vouched for.
            let n = unsafe { unit::<F>(p, two, &mut pieces) };
            for (r, ar) in aj.iter_mut().enumerate() {
                for (pi, pc) in pieces.iter().enumerate().take(n) {
                    let e = r * k + e0 + 64 * pi;
                    // SAFETY: elements e.. of row r (masked to what lies inside k), and their
                    // lanes, inside the M rows the caller vouched for.
                    unsafe {
                        let x = _mm512_maskz_loadu_epi8(bmask, a.q.add(e));
                        let base = _mm512_maskz_loadu_epi32(lmask, a.base.add(e / 4));
                        let dl = _mm512_maskz_loadu_ps(lmask, a.dl.add(e / 4));
                        let s = _mm512_dpbusd_epi32(base, pc.u, x);
                        *ar = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(pc.s, dl), *ar);
                        if with_min {
                            let mx = _mm512_maskz_loadu_ps(lmask, a.minx.add(e / 4));
                            *ar = _mm512_fmadd_ps(mx, pc.m, *ar);
                        }
                    }
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
