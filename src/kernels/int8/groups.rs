//! Activation rows regrouped for the GEMM paths, once per product: groups of four rows (the
//! last one may be shorter), each 64-element piece with the group's rows side by side (codes,
//! and the lanes a format's kernel reads), and for the K-quants per super-block the group's
//! scales and sub-block sums. Rows k apart would share cache sets (k = 8192: every row of a
//! group at one 4 KiB alias), and every task would gather the terms again.

use super::{Acts, QA};
use crate::kernels::scratch;
use crate::weights::quant::QuantType;
use rayon::prelude::*;

/// f32 per super-block of a group's terms: the four rows' scales dx, then each of them four
/// times (the lanes of the minimum term; 0 past the group's rows).
pub(crate) const GROUP_F32: usize = 4 + 16;

/// The m rows of one product, regrouped. Group g starts at row 4g's place: byte 4g·P·64 of
/// `q` and lane 4g·P·16 of the lane arrays, P = ⌈k/64⌉ pieces; within it slot (piece, row)
/// is piece·rows + row (a short last piece fills the start of its slot).
pub(crate) struct Groups<'a> {
    pub k: usize,
    pub m: usize,
    /// Codes, 64 per slot.
    pub q: &'a [i8],
    /// −o·Σq lanes, 16 per slot: the 32-element formats and Q6_K; else empty.
    pub base: &'a [i32],
    /// Activation scales per lane, 16 per slot: the 32-element formats; else empty.
    pub dl: &'a [f32],
    /// K-quants, per (group, super-block): [`GROUP_F32`] floats; else empty.
    pub terms: &'a [f32],
    /// K-quants, per (group, super-block): the four rows' Σq per 32-element sub-block (0
    /// past the group's rows); else empty.
    pub sums: &'a [i16],
}

impl<'a> Groups<'a> {
    pub(crate) fn new(buf: &'a mut Vec<u32>, acts: &Acts, t: QuantType) -> Self {
        let (k, m) = (acts.k, acts.q.len() / acts.k);
        let pieces = k.div_ceil(64);
        let kq = t.block_elems() == 256;
        assert!(k.is_multiple_of(t.block_elems()));
        let lanes = m * pieces * 16;
        let base_len = if !kq || t == QuantType::Q6_K {
            lanes
        } else {
            0
        };
        let dl_len = if kq { 0 } else { lanes };
        let sbs = if kq { k / 256 } else { 0 };
        let cells = m.div_ceil(4) * sbs;
        let all = scratch::take_u32(buf, lanes + base_len + dl_len + cells * (GROUP_F32 + 16));
        let (q, rest) = all.split_at_mut(lanes);
        let (base, rest) = rest.split_at_mut(base_len);
        let (dl, rest) = rest.split_at_mut(dl_len);
        let (terms, sums) = rest.split_at_mut(cells * GROUP_F32);
        let q: &mut [i8] = bytemuck::cast_slice_mut(q);
        let base: &mut [i32] = bytemuck::cast_slice_mut(base);
        let dl: &mut [f32] = bytemuck::cast_slice_mut(dl);
        let terms: &mut [f32] = bytemuck::cast_slice_mut(terms);
        let sums: &mut [i16] = bytemuck::cast_slice_mut(sums);
        // In parallel, group by group: one thread copying would cost the small products
        // (135M's k = 576) a tenth of their time.
        regroup(q, acts.q, k, m, 64);
        if !base.is_empty() {
            regroup(base, acts.base, k, m, 16);
        }
        if !dl.is_empty() {
            regroup(dl, acts.dl, k, m, 16);
        }
        if sbs > 0 {
            let chunks = terms
                .par_chunks_mut(sbs * GROUP_F32)
                .zip(sums.par_chunks_mut(sbs * 32));
            chunks.enumerate().for_each(|(g, (terms, sums))| {
                let (r0, mr) = (4 * g, 4.min(m - 4 * g));
                for sb in 0..sbs {
                    let tm = &mut terms[sb * GROUP_F32..(sb + 1) * GROUP_F32];
                    let s = &mut sums[sb * 32..(sb + 1) * 32];
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
            });
        }
        Groups {
            k,
            m,
            q,
            base,
            dl,
            terms,
            sums,
        }
    }
}

/// `src` (m rows of k elements, `per` values per 64-element piece) into `dst` as [`Groups`]
/// lays out its arrays.
fn regroup<T: Copy + Send + Sync>(dst: &mut [T], src: &[T], k: usize, m: usize, per: usize) {
    let pieces = k.div_ceil(64);
    let row = k * per / 64;
    dst.par_chunks_mut(4 * pieces * per)
        .enumerate()
        .for_each(|(g, out)| {
            let (r0, mr) = (4 * g, 4.min(m - 4 * g));
            for p in 0..pieces {
                let len = per.min(row - p * per);
                for r in 0..mr {
                    let (e, at) = ((r0 + r) * row + p * per, (p * mr + r) * per);
                    out[at..at + len].copy_from_slice(&src[e..e + len]);
                }
            }
        });
}
