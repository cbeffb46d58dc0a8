//! The int8 mode on AVX512_VNNI: each 64 elements of a weight row (two 32-element sub-blocks)
//! become 64 unsigned codes, `vpdpbusd` sums them against the int8 activations four at a time
//! starting from −o·Σq (so each i32 lane is Σ (u − o)·q exactly), and the lanes are scaled
//! by s·dx into f32 accumulators, + m·dx·Σq where the format has a minimum. The same sums as
//! the portable `int8::dot`, in another f32 order.

use super::quant::{half, FORMATS};
use super::PREFETCH;
use crate::kernels::int8::Acts;
use crate::kernels::scratch::{self, Slot};
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
        let k = acts.k;
        assert!((1..=4).contains(&mr) && (1..=4).contains(&rows));
        assert!(k.is_multiple_of(t.block_elems()) && w.len() >= rows * t.bytes_for(k));
        assert!(acts.q.len() >= (r0 + mr) * k);
        let lanes = (r0 + mr) * k / 4;
        assert!(acts.dl.len() >= lanes && acts.base.len() >= lanes && acts.minx.len() >= lanes);
        let a = Ptrs {
            q: acts.q[r0 * k..].as_ptr(),
            dl: acts.dl[r0 * k / 4..].as_ptr(),
            base: acts.base[r0 * k / 4..].as_ptr(),
            minx: acts.minx[r0 * k / 4..].as_ptr(),
        };
        let w = w.as_ptr();
        macro_rules! go {
            ($f:literal) => {
                // SAFETY: the token proves the features; the asserts bound every read.
                unsafe {
                    match mr {
                        1 => dots::<1, $f>(a, k, w, rows, res),
                        2 => dots::<2, $f>(a, k, w, rows, res),
                        3 => dots::<3, $f>(a, k, w, rows, res),
                        _ => dots::<4, $f>(a, k, w, rows, res),
                    }
                }
            };
        }
        match t {
            QuantType::Q8_0 => go!(0),
            QuantType::Q4_0 => go!(1),
            QuantType::Q4_1 => go!(2),
            QuantType::Q5_0 => go!(3),
            QuantType::Q5_1 => go!(4),
            QuantType::Q4_K => go!(5),
            QuantType::Q5_K => go!(6),
            QuantType::Q6_K => go!(7),
        }
    }
}

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

/// Row r0's activation arrays.
#[derive(Clone, Copy)]
struct Ptrs {
    q: *const i8,
    dl: *const f32,
    base: *const i32,
    minx: *const f32,
}

/// One 64-element piece of a weight row: codes, per-lane scale s, per-lane minimum m.
#[derive(Clone, Copy)]
struct Piece {
    u: __m512i,
    s: __m512,
    m: __m512,
}

/// Two 16-byte halves as one 256-bit vector (lo in the low lanes).
#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
fn join128(lo: __m128i, hi: __m128i) -> __m256i {
    _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi)
}

#[target_feature(enable = "avx512f")]
#[inline]
fn join256(lo: __m256i, hi: __m256i) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

/// Lanes 0–7 `a`, 8–15 `b`.
#[target_feature(enable = "avx512f")]
#[inline]
fn halves(a: f32, b: f32) -> __m512 {
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
unsafe fn unit<const F: u8>(p: *const u8, two: bool, out: &mut [Piece; 4]) -> usize {
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

impl Avx512Vnni {
    /// out[j·m + r] = w_j · x_r for the `rows` (≤ 16) weight rows of `w` against the rows
    /// `act_rows` of the m rows of `acts` (the GEMM path): the rows are unpacked once into `slot` (codes, lane scales,
    /// block minimums) and every group of four activation rows passes over them; minimum
    /// terms are summed per block rather than per lane.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn panel(
        self,
        acts: &Acts,
        t: QuantType,
        w: &[u8],
        rows: usize,
        act_rows: std::ops::Range<usize>,
        slot: &mut Slot,
        out: &mut [f32],
    ) {
        let k = acts.k;
        let m = acts.q.len() / k;
        let (pieces, blocks) = (k.div_ceil(64), k / 32);
        let padded = blocks.next_multiple_of(16);
        assert!(rows <= 16 && out.len() == rows * m && w.len() >= rows * t.bytes_for(k));
        assert!(acts.dl.len() >= m * k / 4 && acts.base.len() >= m * k / 4);
        assert!(acts.minb.len() >= m * blocks && act_rows.end <= m);
        let u = scratch::take_u32(&mut slot.packed, rows * pieces * 16);
        let s = scratch::take(&mut slot.a, rows * pieces * 16);
        let mins = scratch::take(&mut slot.b, rows * padded);
        mins.fill(0.0);
        let ptrs = (u.as_mut_ptr() as *mut u8, s.as_mut_ptr(), mins.as_mut_ptr());
        macro_rules! unpack {
            ($f:literal) => {
                // SAFETY: the token proves the features; the asserts and the buffers' sizes
                // bound every access.
                unsafe { unpack_rows::<$f>(w.as_ptr(), rows, k, ptrs, padded) }
            };
        }
        match t {
            QuantType::Q8_0 => unpack!(0),
            QuantType::Q4_0 => unpack!(1),
            QuantType::Q4_1 => unpack!(2),
            QuantType::Q5_0 => unpack!(3),
            QuantType::Q5_1 => unpack!(4),
            QuantType::Q4_K => unpack!(5),
            QuantType::Q5_K => unpack!(6),
            QuantType::Q6_K => unpack!(7),
        }
        let with_min = matches!(
            t,
            QuantType::Q4_1 | QuantType::Q5_1 | QuantType::Q4_K | QuantType::Q5_K
        );
        let (u, s, mins) = (u.as_ptr() as *const u8, s.as_ptr(), mins.as_ptr());
        for g in (0..rows).step_by(4) {
            let wr = 4.min(rows - g);
            let p = PanelRows {
                u: u.wrapping_add(g * pieces * 64),
                s: s.wrapping_add(g * pieces * 16),
                mins: mins.wrapping_add(g * padded),
                rows: wr,
                pieces,
                padded,
            };
            for r0 in act_rows.clone().step_by(4) {
                let mr = 4.min(act_rows.end - r0);
                let a = Ptrs {
                    q: acts.q[r0 * k..].as_ptr(),
                    dl: acts.dl[r0 * k / 4..].as_ptr(),
                    base: acts.base[r0 * k / 4..].as_ptr(),
                    minx: acts.minb[r0 * blocks..].as_ptr(),
                };
                let mut res = [0.0f32; 16];
                // SAFETY: the token proves the features; rows g.. of the unpacked buffers and
                // activation rows r0..r0 + mr lie inside what the asserts checked.
                unsafe {
                    match mr {
                        1 => panel_dots::<1>(p, a, k, with_min, &mut res),
                        2 => panel_dots::<2>(p, a, k, with_min, &mut res),
                        3 => panel_dots::<3>(p, a, k, with_min, &mut res),
                        _ => panel_dots::<4>(p, a, k, with_min, &mut res),
                    }
                }
                for jj in 0..wr {
                    for r in 0..mr {
                        out[(g + jj) * m + r0 + r] = res[jj * mr + r];
                    }
                }
            }
        }
    }
}

/// Up to four unpacked weight rows: per row `pieces` codes of 64 bytes and lane scales of 16,
/// and `padded` block minimums.
#[derive(Clone, Copy)]
struct PanelRows {
    u: *const u8,
    s: *const f32,
    mins: *const f32,
    rows: usize,
    pieces: usize,
    padded: usize,
}

/// Rows of format `F` unpacked: codes and lane scales per piece, minimum per block.
///
/// # Safety
/// AVX-512F/BW/VL, F16C; `w` valid for `rows` rows of k elements; the buffers for
/// rows·pieces·64 bytes, rows·pieces·16 floats and rows·padded floats.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
unsafe fn unpack_rows<const F: u8>(
    w: *const u8,
    rows: usize,
    k: usize,
    (u, s, mins): (*mut u8, *mut f32, *mut f32),
    padded: usize,
) {
    let (elems, bb) = FORMATS[F as usize];
    let row_bytes = k / elems * bb;
    let (unit_elems, unit_bytes) = if elems == 32 { (64, 2 * bb) } else { (256, bb) };
    let pieces = k.div_ceil(64);
    let mut out = [Piece {
        u: _mm512_setzero_si512(),
        s: _mm512_setzero_ps(),
        m: _mm512_setzero_ps(),
    }; 4];
    let mut lanes = [0.0f32; 16];
    for j in 0..rows {
        for ui in 0..k.div_ceil(unit_elems) {
            let e0 = ui * unit_elems;
            let two = e0 + 64 <= k;
            // SAFETY: the unit lies inside row j; each piece's slots lie inside the buffers.
            unsafe {
                let n = unit::<F>(w.add(j * row_bytes + ui * unit_bytes), two, &mut out);
                for (pi, pc) in out.iter().enumerate().take(n) {
                    let at = j * pieces + e0 / 64 + pi;
                    _mm512_storeu_si512(u.add(64 * at) as *mut _, pc.u);
                    _mm512_storeu_ps(s.add(16 * at), pc.s);
                    _mm512_storeu_ps(lanes.as_mut_ptr(), pc.m);
                    let b = (e0 + 64 * pi) / 32;
                    *mins.add(j * padded + b) = lanes[0];
                    if two || elems == 256 {
                        *mins.add(j * padded + b + 1) = lanes[8];
                    }
                }
            }
        }
    }
}

/// # Safety
/// AVX-512F/BW/VL, VNNI; `p` valid as described there, `a` for M activation rows of k (and
/// their lanes and k/32 block minimum terms).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn panel_dots<const M: usize>(
    p: PanelRows,
    a: Ptrs,
    k: usize,
    with_min: bool,
    res: &mut [f32; 16],
) {
    let mut acc = [[_mm512_setzero_ps(); M]; 4];
    for pi in 0..p.pieces {
        let e0 = 64 * pi;
        let (bmask, lmask) = if e0 + 64 <= k {
            (u64::MAX, 0xFFFFu16)
        } else {
            (0xFFFF_FFFFu64, 0x00FFu16)
        };
        for (j, aj) in acc.iter_mut().enumerate().take(p.rows) {
            // SAFETY: piece pi of unpacked row j, and elements e0.. of each activation row
            // (masked to what lies inside k), inside what the caller vouched for.
            unsafe {
                let at = j * p.pieces + pi;
                let uv = _mm512_loadu_si512(p.u.add(64 * at) as *const _);
                let sv = _mm512_loadu_ps(p.s.add(16 * at));
                for (r, ar) in aj.iter_mut().enumerate() {
                    let e = r * k + e0;
                    let x = _mm512_maskz_loadu_epi8(bmask, a.q.add(e));
                    let base = _mm512_maskz_loadu_epi32(lmask, a.base.add(e / 4));
                    let dl = _mm512_maskz_loadu_ps(lmask, a.dl.add(e / 4));
                    let i = _mm512_dpbusd_epi32(base, uv, x);
                    *ar = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_mul_ps(sv, dl), *ar);
                }
            }
        }
    }
    if with_min {
        let blocks = k / 32;
        for c in (0..p.padded).step_by(16) {
            let valid = (blocks - c).min(16);
            let mask = if valid == 16 {
                0xFFFFu16
            } else {
                (1u16 << valid) - 1
            };
            for (j, aj) in acc.iter_mut().enumerate().take(p.rows) {
                // SAFETY: blocks c.. of row j's minimums (padded) and of each activation row's
                // block terms (masked to its k/32).
                unsafe {
                    let mv = _mm512_loadu_ps(p.mins.add(j * p.padded + c));
                    for (r, ar) in aj.iter_mut().enumerate() {
                        let mx = _mm512_maskz_loadu_ps(mask, a.minx.add(r * blocks + c));
                        *ar = _mm512_fmadd_ps(mv, mx, *ar);
                    }
                }
            }
        }
    }
    for j in 0..p.rows {
        for r in 0..M {
            res[j * M + r] = _mm512_reduce_add_ps(acc[j][r]);
        }
    }
}

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
        let k = acts.k;
        assert!((1..=4).contains(&mr) && (1..=4).contains(&rows));
        assert!(t.block_elems() == 256 && k.is_multiple_of(256));
        assert!(w.len() >= rows * t.bytes_for(k) && acts.q.len() >= (r0 + mr) * k);
        let lanes = (r0 + mr) * k / 4;
        assert!(acts.dl.len() >= lanes && acts.base.len() >= lanes && acts.sum4.len() >= lanes);
        let a = Ptrs {
            q: acts.q[r0 * k..].as_ptr(),
            dl: acts.dl[r0 * k / 4..].as_ptr(),
            base: acts.base[r0 * k / 4..].as_ptr(),
            minx: acts.sum4[r0 * k / 4..].as_ptr() as *const f32,
        };
        let w = w.as_ptr();
        macro_rules! go {
            ($f:literal) => {
                // SAFETY: the token proves the features; the asserts bound every read.
                unsafe {
                    match mr {
                        1 => dots_k::<1, $f>(a, k, w, rows, res),
                        2 => dots_k::<2, $f>(a, k, w, rows, res),
                        3 => dots_k::<3, $f>(a, k, w, rows, res),
                        _ => dots_k::<4, $f>(a, k, w, rows, res),
                    }
                }
            };
        }
        match t {
            QuantType::Q4_K => go!(5),
            QuantType::Q5_K => go!(6),
            QuantType::Q6_K => go!(7),
            _ => unreachable!("{t:?} is not a K-quant"),
        }
    }
}

/// A super-block's codes and integer scales: per 64-element piece the codes, the sub-block
/// scales per lane (low 16 bits, for `vpdpwssd`) and minimums per lane; d and dmin.
struct KBlock {
    u: [__m512i; 4],
    sc: [__m512i; 4],
    mn: [__m512i; 4],
    d: f32,
    dmin: f32,
}

/// # Safety
/// AVX-512F/BW/VL, F16C; `p` valid for one super-block of format `F` (5 Q4_K, 6 Q5_K, 7 Q6_K).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
#[inline]
unsafe fn k_block<const F: u8>(p: *const u8) -> KBlock {
    let zero = _mm512_setzero_si512();
    // SAFETY: every read lies inside the super-block at p.
    unsafe {
        if F == 7 {
            let sc = _mm512_cvtepi8_epi32(_mm_loadu_si128(p.add(192) as *const __m128i));
            let sc = _mm512_and_si512(sc, _mm512_set1_epi32(0xFFFF));
            let nib = _mm512_set1_epi8(15);
            let three = _mm256_set1_epi8(3);
            let mut b = KBlock {
                u: [zero; 4],
                sc: [zero; 4],
                mn: [zero; 4],
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
                let j = 4 * i as i32;
                let idx = _mm512_set_epi32(
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
                );
                b.sc[i] = _mm512_permutexvar_epi32(idx, sc);
            }
            return b;
        }
        // Q4_K/Q5_K: twelve bytes of 6-bit scales and minimums after d and dmin.
        let word = |at: usize| (p.add(at) as *const u32).read_unaligned();
        let (a0, a1, a2) = (word(4), word(8), word(12));
        let sc_lo = a0 & 0x3F3F_3F3F;
        let mn_lo = a1 & 0x3F3F_3F3F;
        let sc_hi = (a2 & 0x0F0F_0F0F) | (((a0 >> 6) & 0x0303_0303) << 4);
        let mn_hi = ((a2 >> 4) & 0x0F0F_0F0F) | (((a1 >> 6) & 0x0303_0303) << 4);
        let all = _mm512_cvtepu8_epi32(_mm_set_epi32(
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
            sc: [zero; 4],
            mn: [zero; 4],
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
            let (c0, c1) = (2 * i as i32, 2 * i as i32 + 1);
            let idx = _mm512_mask_blend_epi32(0xFF00, _mm512_set1_epi32(c0), _mm512_set1_epi32(c1));
            b.sc[i] = _mm512_permutexvar_epi32(idx, all);
            b.mn[i] = _mm512_permutexvar_epi32(_mm512_add_epi32(idx, _mm512_set1_epi32(8)), all);
        }
        b
    }
}

/// # Safety
/// AVX-512F/BW/VL, F16C, VNNI; `a` valid for M activation rows of k (`minx` pointing at their
/// Σq lanes), `w` for `rows` rows of k elements of format `F`.
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
    let sum4 = a.minx as *const i32;
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
                        ia[r] = _mm512_dpwssd_epi32(ia[r], s, b.sc[i]);
                        if with_min {
                            let sums = _mm512_loadu_si512(sum4.add(e / 4) as *const _);
                            ib[r] = _mm512_dpwssd_epi32(ib[r], sums, b.mn[i]);
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
