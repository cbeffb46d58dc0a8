//! The int8 GEMM path for the K-quants: a task's weight rows unpacked once (codes, integer
//! scales and minimums per super-block), every group of up to four activation rows passed
//! over them; the Q4_K/Q5_K minimum terms of the whole group cost one `vpdpwssd` per
//! super-block and weight row.

use super::kquant::{by_kformat, k_block, piece_scales};
use super::{by_rows, Avx512Vnni};
use crate::kernels::avx512::quant::FORMATS;
use crate::kernels::int8::groups::{Groups, GROUP_F32};
use crate::kernels::scratch::{self, Slot};
use crate::weights::quant::QuantType;
use std::arch::x86_64::*;

/// u32 words per unpacked super-block: 256 codes, 16 scale lanes, and the eight minimums as
/// i16 four times over (once per activation row of a group).
const SB_WORDS: usize = 64 + 16 + 16;
/// Super-blocks per pass of the 16 weight rows over a group: the group's codes (and Q6_K's
/// lanes) for them, 8-16 KB, stay in L1 while every row passes.
const SPAN: usize = 8;

impl Avx512Vnni {
    /// out[j·m + r] = w_j · x_r for the `rows` (≤ 16) K-quant weight rows of `w` against the
    /// rows `act_rows` (starting at a multiple of four) of the m rows of `acts`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn panel_k(
        self,
        acts: &Groups,
        t: QuantType,
        w: &[u8],
        rows: usize,
        act_rows: std::ops::Range<usize>,
        slot: &mut Slot,
        out: &mut [f32],
    ) {
        let (k, m) = (acts.k, acts.m);
        let sbs = k / 256;
        let six = t == QuantType::Q6_K;
        assert!(t.block_elems() == 256 && k.is_multiple_of(256) && acts.q.len() == m * k);
        assert!(rows <= 16 && out.len() == rows * m && w.len() >= rows * t.bytes_for(k));
        assert!(act_rows.start.is_multiple_of(4) && act_rows.end <= m);
        assert!(!six || acts.base.len() == m * k / 4);
        let cells = m.div_ceil(4) * sbs;
        assert!(acts.terms.len() >= cells * GROUP_F32 && acts.sums.len() >= cells * 32);
        let words = scratch::take_u32(&mut slot.packed, rows * sbs * SB_WORDS);
        let dd = scratch::take(&mut slot.a, rows * sbs * 2);
        let (wp, ddp) = (words.as_mut_ptr(), dd.as_mut_ptr());
        // SAFETY: the token proves the features; the asserts bound the rows of `w`, and the
        // buffers hold rows·sbs super-blocks.
        unsafe {
            match t {
                QuantType::Q4_K => unpack_k::<5>(w.as_ptr(), rows, k, wp, ddp),
                QuantType::Q5_K => unpack_k::<6>(w.as_ptr(), rows, k, wp, ddp),
                _ => unpack_k::<7>(w.as_ptr(), rows, k, wp, ddp),
            }
        }
        for r0 in act_rows.clone().step_by(4) {
            let mr = 4.min(act_rows.end - r0);
            let cell = r0 / 4 * sbs;
            let mut sums = [[0.0f32; 4]; 16];
            for s0 in (0..sbs).step_by(SPAN) {
                let g = Group {
                    q: acts.q[r0 * k..].as_ptr(),
                    base: if six {
                        acts.base[r0 * k / 4..].as_ptr()
                    } else {
                        std::ptr::null()
                    },
                    sbs: s0..sbs.min(s0 + SPAN),
                    terms: acts.terms[cell * GROUP_F32..].as_ptr(),
                    sums: acts.sums[cell * 32..].as_ptr(),
                };
                for (j, sj) in sums.iter_mut().enumerate().take(rows) {
                    let at = j * sbs;
                    let wj = (words[at * SB_WORDS..].as_ptr(), dd[2 * at..].as_ptr());
                    // SAFETY: the token proves the features; row j's super-blocks lie in the
                    // buffers, and the group of rows r0..r0 + mr (codes, lanes, terms) in
                    // `acts`, as the asserts checked.
                    unsafe { by_kformat!(panel_k_dots, t, mr, (wj, g.clone(), sj)) }
                }
            }
            for (j, sj) in sums.iter().enumerate().take(rows) {
                for (r, v) in sj.iter().enumerate().take(mr) {
                    out[j * m + r0 + r] = *v;
                }
            }
        }
    }
}

/// One group over the super-blocks `sbs`: its codes (and Q6_K lanes) as [`Groups`] holds
/// them, from the group's first super-block, and its terms and sums from the same.
#[derive(Clone)]
struct Group {
    q: *const i8,
    base: *const i32,
    sbs: std::ops::Range<usize>,
    terms: *const f32,
    sums: *const i16,
}

/// # Safety
/// AVX-512F/BW/VL, F16C; `w` valid for `rows` rows of k elements of format `F`, `words` for
/// rows·(k/256)·SB_WORDS words and `dd` for twice as many floats as super-blocks.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
unsafe fn unpack_k<const F: u8>(
    w: *const u8,
    rows: usize,
    k: usize,
    words: *mut u32,
    dd: *mut f32,
) {
    let bb = FORMATS[F as usize].1;
    let sbs = k / 256;
    for j in 0..rows {
        for sb in 0..sbs {
            let at = j * sbs + sb;
            // SAFETY: super-block sb of row j, and slot `at` of the buffers.
            unsafe {
                let b = k_block::<F>(w.add((j * sbs + sb) * bb));
                let o = words.add(at * SB_WORDS);
                for (i, u) in b.u.iter().enumerate() {
                    _mm512_storeu_si512(o.add(16 * i) as *mut _, *u);
                }
                _mm512_storeu_si512(o.add(64) as *mut _, b.scales);
                // Lanes 8..16 hold the minimums: as i16, once per row of a group.
                let mins = _mm256_extracti128_si256::<1>(_mm512_cvtepi32_epi16(b.scales));
                _mm512_storeu_si512(o.add(80) as *mut _, _mm512_broadcast_i32x4(mins));
                *dd.add(2 * at) = b.d;
                *dd.add(2 * at + 1) = b.dmin;
            }
        }
    }
}

/// res[r] += w · x_r over the group's super-blocks, for one unpacked weight row (its
/// super-blocks and d/dmin pairs) and the M activation rows of a group.
///
/// # Safety
/// AVX-512F/BW/VL, VNNI; `w` as [`unpack_k`] wrote one row, `g` holding M rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn panel_k_dots<const M: usize, const F: u8>(
    (w, dd): (*const u32, *const f32),
    g: Group,
    res: &mut [f32; 4],
) {
    let zero = _mm512_setzero_si512();
    let mut acc = [_mm512_setzero_ps(); M];
    let mut macc = _mm512_setzero_ps();
    for sb in g.sbs.clone() {
        // SAFETY: super-block sb of the row, and elements 256·sb.. of each activation row
        // with their lanes, inside what the caller vouched for.
        unsafe {
            let o = w.add(sb * SB_WORDS);
            let scales = _mm512_loadu_si512(o.add(64) as *const _);
            let mut ia = [zero; M];
            for i in 0..4 {
                let u = _mm512_loadu_si512(o.add(16 * i) as *const _);
                let sc = piece_scales::<F>(scales, i);
                for (r, ir) in ia.iter_mut().enumerate() {
                    let e = ((4 * sb + i) * M + r) * 64;
                    let x = _mm512_loadu_si512(g.q.add(e) as *const _);
                    let start = if F == 7 {
                        _mm512_loadu_si512(g.base.add(e / 4) as *const _)
                    } else {
                        zero
                    };
                    *ir = _mm512_dpwssd_epi32(*ir, _mm512_dpbusd_epi32(start, u, x), sc);
                }
            }
            let d = _mm512_set1_ps(*dd.add(2 * sb));
            let gp = g.terms.add(GROUP_F32 * sb);
            for (r, ar) in acc.iter_mut().enumerate() {
                let s = _mm512_mul_ps(d, _mm512_set1_ps(*gp.add(r)));
                *ar = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[r]), s, *ar);
            }
            if F != 7 {
                let sums = _mm512_loadu_si512(g.sums.add(32 * sb) as *const _);
                let im = _mm512_dpwssd_epi32(zero, sums, _mm512_loadu_si512(o.add(80) as *const _));
                let dm = _mm512_mul_ps(
                    _mm512_set1_ps(*dd.add(2 * sb + 1)),
                    _mm512_loadu_ps(gp.add(4)),
                );
                macc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(im), dm, macc);
            }
        }
    }
    let mut lanes = [0.0f32; 16];
    // SAFETY: 16 floats into a 16-float array.
    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), macc) };
    for (r, a) in acc.iter().enumerate() {
        res[r] += _mm512_reduce_add_ps(*a) - lanes[4 * r..4 * r + 4].iter().sum::<f32>();
    }
}
