//! Activation rows regrouped for the K-quant GEMM path, once per product: groups of four rows
//! (the last one may be shorter), each 64-element piece with the group's rows side by side, and
//! per super-block the group's scales and sub-block sums. Rows k apart would share cache sets
//! (k = 8192: every row of a group at one 4 KiB alias), and the terms would be gathered again
//! by every task.

use super::{Acts, QA};
use crate::kernels::scratch;
use crate::weights::quant::QuantType;

/// f32 per super-block of a group's terms: the four rows' scales dx, then each of them four
/// times (the lanes of the minimum term; 0 past the group's rows).
pub(crate) const GROUP_F32: usize = 4 + 16;

/// The m rows of one product, regrouped.
pub(crate) struct Groups<'a> {
    pub k: usize,
    pub m: usize,
    /// Group g's codes from 4g·k: [k/256][4 pieces][rows][64].
    pub q: &'a [i8],
    /// Q6_K's −32·Σq lanes, laid out as the codes ([..][rows][16]); empty for the others.
    pub base: &'a [i32],
    /// Per (group, super-block): [`GROUP_F32`] floats.
    pub terms: &'a [f32],
    /// Per (group, super-block): the four rows' Σq per 32-element sub-block (0 past the
    /// group's rows).
    pub sums: &'a [i16],
}

impl<'a> Groups<'a> {
    pub(crate) fn new(buf: &'a mut Vec<u32>, acts: &Acts, t: QuantType) -> Self {
        let (k, m) = (acts.k, acts.q.len() / acts.k);
        assert!(k.is_multiple_of(256));
        let sbs = k / 256;
        let six = t == QuantType::Q6_K;
        let cells = m.div_ceil(4) * sbs;
        let words = m * k / 4 + if six { m * k / 4 } else { 0 } + cells * (GROUP_F32 + 16);
        let all = scratch::take_u32(buf, words);
        let (q, rest) = all.split_at_mut(m * k / 4);
        let (base, rest) = rest.split_at_mut(if six { m * k / 4 } else { 0 });
        let (terms, sums) = rest.split_at_mut(cells * GROUP_F32);
        let q: &mut [i8] = bytemuck::cast_slice_mut(q);
        let base: &mut [i32] = bytemuck::cast_slice_mut(base);
        let terms: &mut [f32] = bytemuck::cast_slice_mut(terms);
        let sums: &mut [i16] = bytemuck::cast_slice_mut(sums);
        for r0 in (0..m).step_by(4) {
            let mr = 4.min(m - r0);
            let g = r0 / 4;
            for p in 0..k / 64 {
                for r in 0..mr {
                    let (e, at) = ((r0 + r) * k + 64 * p, r0 * k + (p * mr + r) * 64);
                    q[at..at + 64].copy_from_slice(&acts.q[e..e + 64]);
                    if six {
                        base[at / 4..at / 4 + 16].copy_from_slice(&acts.base[e / 4..e / 4 + 16]);
                    }
                }
            }
            for sb in 0..sbs {
                let cell = g * sbs + sb;
                let tm = &mut terms[cell * GROUP_F32..(cell + 1) * GROUP_F32];
                let s = &mut sums[cell * 32..(cell + 1) * 32];
                for r in 0..4 {
                    let e = (r0 + r) * k + 256 * sb;
                    let dx = if r < mr { acts.dl[e / 4] } else { 0.0 };
                    tm[r] = dx;
                    tm[4 + 4 * r..8 + 4 * r].fill(dx);
                    let sr = &mut s[8 * r..8 * r + 8];
                    if r < mr {
                        sr.copy_from_slice(&acts.sum32[e / QA..e / QA + 8]);
                    } else {
                        sr.fill(0);
                    }
                }
            }
        }
        Groups {
            k,
            m,
            q,
            base,
            terms,
            sums,
        }
    }
}
