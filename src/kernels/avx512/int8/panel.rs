//! The int8 GEMM path for the 32-element formats: a task's weight rows unpacked once, every
//! group of four activation rows (regrouped for long rows, see `int8::groups`) passed over
//! them in spans that keep the weights in L1.

use super::{unit, Avx512Vnni, Piece, Ptrs};
use crate::kernels::avx512::quant::FORMATS;
use crate::kernels::int8::groups::Groups;
use crate::kernels::int8::Acts;
use crate::kernels::scratch::{self, Slot};
use crate::weights::quant::QuantType;
use std::arch::x86_64::*;

/// Pieces per span: four weight rows' 16 pieces (8 KB unpacked) stay in L1 while every group
/// of activation rows passes over them (12 KB of codes and lanes each).
const SPAN: usize = 16;

impl Avx512Vnni {
    /// out[j·m + r] = w_j · x_r for the `rows` (≤ 16) weight rows of `w` against the rows
    /// `act_rows` (starting at a multiple of four) of the m rows of `acts` (the GEMM path),
    /// read from `groups` where given: the rows are unpacked once into `slot` (codes, lane scales, block
    /// minimums) and every group of four activation rows passes over them; minimum terms are
    /// summed per block rather than per lane.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn panel(
        self,
        acts: &Acts,
        groups: Option<&Groups>,
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
        assert!(
            t.block_elems() == 32
                && rows <= 16
                && out.len() == rows * m
                && w.len() >= rows * t.bytes_for(k)
        );
        if let Some(g) = groups {
            assert!(g.k == k && g.m == m && g.q.len() >= m * pieces * 64);
            assert!(g.dl.len() >= m * pieces * 16 && g.base.len() >= m * pieces * 16);
        }
        assert!(acts.dl.len() >= m * k / 4 && acts.base.len() >= m * k / 4);
        assert!(acts.minb.len() >= m * blocks && act_rows.end <= m);
        assert!(act_rows.start.is_multiple_of(4));
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
            _ => unreachable!("{t:?} takes the K-quant panel"),
        }
        let with_min = matches!(t, QuantType::Q4_1 | QuantType::Q5_1);
        let (u, s, mins) = (u.as_ptr() as *const u8, s.as_ptr(), mins.as_ptr());
        for r0 in act_rows.clone() {
            for j in 0..rows {
                out[j * m + r0] = 0.0;
            }
        }
        for s0 in (0..pieces).step_by(SPAN) {
            let span = s0..pieces.min(s0 + SPAN);
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
                    // Byte strides of the codes between rows and between pieces (a quarter
                    // of them for the lanes).
                    let (q, dl, base, strides) = match groups {
                        Some(gr) => {
                            let at = r0 * pieces;
                            (
                                &gr.q[at * 64..],
                                &gr.dl[at * 16..],
                                &gr.base[at * 16..],
                                (64, 64 * mr),
                            )
                        }
                        None => (
                            &acts.q[r0 * k..],
                            &acts.dl[r0 * k / 4..],
                            &acts.base[r0 * k / 4..],
                            (k, 64),
                        ),
                    };
                    let a = Ptrs {
                        q: q.as_ptr(),
                        dl: dl.as_ptr(),
                        base: base.as_ptr(),
                        minx: acts.minb[r0 * blocks..].as_ptr(),
                        sum4: std::ptr::null(),
                    };
                    // The minimum terms once, with the first span.
                    let with_min = with_min && s0 == 0;
                    let mut res = [0.0f32; 16];
                    // SAFETY: the token proves the features; rows g.. of the unpacked buffers
                    // and the group of activation rows r0..r0 + mr lie inside what the asserts
                    // checked.
                    unsafe {
                        match mr {
                            1 => {
                                panel_dots::<1>(p, a, k, strides, span.clone(), with_min, &mut res)
                            }
                            2 => {
                                panel_dots::<2>(p, a, k, strides, span.clone(), with_min, &mut res)
                            }
                            3 => {
                                panel_dots::<3>(p, a, k, strides, span.clone(), with_min, &mut res)
                            }
                            _ => {
                                panel_dots::<4>(p, a, k, strides, span.clone(), with_min, &mut res)
                            }
                        }
                    }
                    for jj in 0..wr {
                        for r in 0..mr {
                            out[(g + jj) * m + r0 + r] += res[jj * mr + r];
                        }
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
/// AVX-512F/BW/VL, VNNI; `p` valid as described there, `a` for a group of M activation rows
/// of k, row r's piece pi at byte r·rs + pi·ps (row-major, or as [`Groups`] holds them), and
/// the rows' k/32 block minimum terms, k/32 apart.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn panel_dots<const M: usize>(
    p: PanelRows,
    a: Ptrs,
    k: usize,
    (rs, ps): (usize, usize),
    span: std::ops::Range<usize>,
    with_min: bool,
    res: &mut [f32; 16],
) {
    let mut acc = [[_mm512_setzero_ps(); M]; 4];
    for pi in span {
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
                    let e = r * rs + pi * ps;
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
