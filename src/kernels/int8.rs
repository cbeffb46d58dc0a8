//! The int8 mode's products with block-quantized weights: activations quantized to 8-bit
//! blocks (one f32 scale each, amax/127, round half to even; blocks of 32 for the 32-element
//! formats, of 256 for the K-quants, as llama.cpp's Q8_0 and Q8_K), then integer dot products
//! with the weights' own codes, as llama.cpp computes its quantized matrices.
//!
//! Every format is read as 32-element sub-blocks of unsigned codes u with w = s·(u − o) + m:
//! a scale s per 16 elements (the two halves differ only in Q6_K), an integer offset o per
//! format and a minimum m (Q4_1, Q5_1, Q4_K, Q5_K). So one integer kernel serves all eight:
//! Σ w·x = dx·(Σ_halves s·(Σ u·q − o·Σ q) + m·Σ q), the integer sums exact. The portable code
//! here is the oracle of the SIMD variants.

pub(crate) mod groups;
pub(crate) mod order;

use super::scratch;
use super::Scratch;
use crate::weights::kquant::{k4_factors, q6_factors};
use crate::weights::quant::{half_at, scale_min, QuantType};
use groups::Groups;
use rayon::prelude::*;

/// Output features per task.
const CHUNK: usize = 16;
/// The L2 share a block of quantized activation rows may take in the multi-row products.
const ACT_BLOCK_BYTES: usize = 384 << 10;
/// Elements per activation block.
pub(crate) const QA: usize = 32;

/// Elements per activation block for products with `t`: the K-quants' 256 (so their integer
/// sub-block scales apply before any float operation), else 32.
pub(crate) fn act_block(t: QuantType) -> usize {
    match t {
        QuantType::Q4_K | QuantType::Q5_K | QuantType::Q6_K => 256,
        _ => QA,
    }
}

/// The offset o of a format's codes (Q8_0's signed bytes are read with their sign bit flipped).
pub(crate) fn offset(t: QuantType) -> i32 {
    match t {
        QuantType::Q8_0 => 128,
        QuantType::Q4_0 => 8,
        QuantType::Q5_0 => 16,
        QuantType::Q6_K => 32,
        _ => 0,
    }
}

/// Activation rows quantized for products with one format: per row of k, the codes q, and per
/// lane of four elements the block's scale (`dl`), Σ q (`sum4`), −o·Σ q (`base`) and dx·Σ q
/// (`minx`), and per 32 elements dx·Σ q (`minb`) and Σ q (`sum32`), for the GEMM paths'
/// minimum terms; for the one-row SIMD K-quant kernels (Q4_K/Q5_K, at most four rows) the
/// codes again in [`order`]'s piece order (`kq`, else empty).
pub(crate) struct Acts<'a> {
    pub k: usize,
    pub q: &'a [i8],
    pub dl: &'a [f32],
    pub sum4: &'a [i32],
    pub base: &'a [i32],
    pub minx: &'a [f32],
    pub minb: &'a [f32],
    pub sum32: &'a [i16],
    pub kq: &'a [i8],
}

impl<'a> Acts<'a> {
    /// Quantizes the m rows of x (rows of k, a multiple of 32) into `buf`, on `kernel`'s code
    /// (every kernel's bits equal the portable ones).
    pub(crate) fn new(
        buf: &'a mut Vec<u32>,
        x: &[f32],
        m: usize,
        k: usize,
        t: QuantType,
        kernel: Kernel,
    ) -> Self {
        let blk = act_block(t);
        assert!(k.is_multiple_of(blk) && x.len() == m * k);
        let lanes = m * k / 4;
        let pieces = kernel.is_simd() && m <= 4 && matches!(t, QuantType::Q4_K | QuantType::Q5_K);
        let kq_lanes = if pieces { lanes } else { 0 };
        let sums = m * k / QA + (m * k / QA).div_ceil(2);
        let all = scratch::take_u32(buf, 5 * lanes + sums + kq_lanes);
        let (all, kq) = all.split_at_mut(all.len() - kq_lanes);
        let (q, rest) = all.split_at_mut(lanes);
        let (dl, rest) = rest.split_at_mut(lanes);
        let (sum4, rest) = rest.split_at_mut(lanes);
        let (base, rest) = rest.split_at_mut(lanes);
        let (minx, rest) = rest.split_at_mut(lanes);
        let (minb, sum32) = rest.split_at_mut(m * k / QA);
        let minb: &mut [f32] = bytemuck::cast_slice_mut(minb);
        let sum32 = &mut bytemuck::cast_slice_mut::<u32, i16>(sum32)[..m * k / QA];
        let q: &mut [i8] = bytemuck::cast_slice_mut(q);
        let dl: &mut [f32] = bytemuck::cast_slice_mut(dl);
        let sum4: &mut [i32] = bytemuck::cast_slice_mut(sum4);
        let base: &mut [i32] = bytemuck::cast_slice_mut(base);
        let minx: &mut [f32] = bytemuck::cast_slice_mut(minx);
        let o = offset(t);
        let rows = q
            .par_chunks_mut(k)
            .zip(dl.par_chunks_mut(k / 4))
            .zip(sum4.par_chunks_mut(k / 4))
            .zip(x.par_chunks(k));
        rows.with_min_len(8)
            .for_each(|(((q, dl), sum4), x)| kernel.quantize(x, blk, q, dl, sum4));
        for (((b, mx), &s), &d) in base.iter_mut().zip(minx.iter_mut()).zip(&*sum4).zip(&*dl) {
            *b = -o * s;
            *mx = d * s as f32;
        }
        for (b, (mb, s32)) in minb.iter_mut().zip(sum32.iter_mut()).enumerate() {
            let sum: i32 = q[b * QA..(b + 1) * QA].iter().map(|&v| v as i32).sum();
            *mb = dl[b * QA / 4] * sum as f32;
            // |Σ q| ≤ 32·127 fits.
            *s32 = sum as i16;
        }
        let kq: &mut [i8] = bytemuck::cast_slice_mut(kq);
        if pieces {
            order::to_pieces(q, kq);
        }
        Acts {
            k,
            q,
            dl,
            sum4,
            base,
            minx,
            minb,
            sum32,
            kq,
        }
    }

    /// Row r's codes and the scale of each of its blocks.
    fn row(&self, r: usize) -> (&[i8], impl Fn(usize) -> f32 + '_) {
        let k = self.k;
        let dl = &self.dl[r * k / 4..(r + 1) * k / 4];
        (&self.q[r * k..(r + 1) * k], move |b| dl[b * QA / 4])
    }
}

/// One row's activation blocks of `blk` elements: d = amax/127, q = x·(1/d) rounded half to
/// even (0 where d = 0), and per lane of four d and Σq.
pub(crate) fn quantize_row(x: &[f32], blk: usize, q: &mut [i8], dl: &mut [f32], sum4: &mut [i32]) {
    for (b, xb) in x.chunks_exact(blk).enumerate() {
        let amax = xb.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let qb = &mut q[b * blk..(b + 1) * blk];
        for (o, v) in qb.iter_mut().zip(xb) {
            *o = (v * id).round_ties_even() as i8;
        }
        for l in 0..blk / 4 {
            let at = b * blk / 4 + l;
            dl[at] = d;
            sum4[at] = qb[4 * l..4 * l + 4].iter().map(|&v| v as i32).sum();
        }
    }
}

/// Calls `f(sub-block, codes, [s0, s1], m)` for each 32-element sub-block of one block.
#[inline]
pub(crate) fn sub_blocks(
    t: QuantType,
    b: &[u8],
    mut f: impl FnMut(usize, &[u8; 32], [f32; 2], f32),
) {
    let mut u = [0u8; 32];
    match t {
        QuantType::Q8_0 => {
            for (o, &v) in u.iter_mut().zip(&b[2..34]) {
                *o = v ^ 0x80;
            }
            let d = half_at(b, 0);
            f(0, &u, [d, d], 0.0)
        }
        QuantType::Q4_0 | QuantType::Q4_1 | QuantType::Q5_0 | QuantType::Q5_1 => {
            let (d, m) = scale_min(t, b);
            let with_min = matches!(t, QuantType::Q4_1 | QuantType::Q5_1);
            let five = matches!(t, QuantType::Q5_0 | QuantType::Q5_1);
            let qh_at = if with_min { 4 } else { 2 };
            let qs_at = qh_at + if five { 4 } else { 0 };
            let qh = if five {
                u32::from_le_bytes([b[qh_at], b[qh_at + 1], b[qh_at + 2], b[qh_at + 3]])
            } else {
                0
            };
            for (j, &v) in b[qs_at..qs_at + 16].iter().enumerate() {
                u[j] = (v & 15) | ((((qh >> j) & 1) as u8) << 4);
                u[j + 16] = (v >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
            }
            f(0, &u, [d, d], m)
        }
        QuantType::Q4_K | QuantType::Q5_K => {
            let (a, mins) = k4_factors(b);
            let qs = if t == QuantType::Q4_K { 16 } else { 48 };
            for c in 0..8 {
                for (l, o) in u.iter_mut().enumerate() {
                    *o = (b[qs + 32 * (c / 2) + l] >> (4 * (c % 2))) & 15;
                    if t == QuantType::Q5_K {
                        *o |= ((b[16 + l] >> c) & 1) << 4;
                    }
                }
                f(c, &u, [a[c], a[c]], -mins[c]);
            }
        }
        QuantType::Q6_K => {
            let s = q6_factors(b);
            for c in 0..8 {
                let (h, r) = (c / 4, c % 4);
                for (l, o) in u.iter_mut().enumerate() {
                    let lo = (b[64 * h + 32 * (r % 2) + l] >> (4 * (r / 2))) & 15;
                    let hi = (b[128 + 32 * h + l] >> (2 * r)) & 3;
                    *o = lo | (hi << 4);
                }
                f(c, &u, [s[8 * h + 2 * r], s[8 * h + 2 * r + 1]], 0.0);
            }
        }
    }
}

/// Portable: Σ w·x of weight row `w` (k elements of `t`) and activation row r.
pub(crate) fn dot(acts: &Acts, r: usize, t: QuantType, w: &[u8]) -> f32 {
    let (q, dx) = acts.row(r);
    let (be, bb) = (t.block_elems(), t.block_bytes());
    let o = offset(t);
    let mut acc = 0.0f32;
    for (blk, wb) in w.chunks_exact(bb).take(acts.k / be).enumerate() {
        sub_blocks(t, wb, |c, u, s, m| {
            let at = blk * be + c * QA;
            let xq = &q[at..at + QA];
            let mut halves = [0i32; 2];
            let mut sum = 0i32;
            for (h, hs) in halves.iter_mut().enumerate() {
                for l in 16 * h..16 * h + 16 {
                    *hs += u[l] as i32 * xq[l] as i32 - o * xq[l] as i32;
                    sum += xq[l] as i32;
                }
            }
            let v = s[0] * halves[0] as f32 + s[1] * halves[1] as f32 + m * sum as f32;
            acc += dx(at / QA) * v;
        });
    }
    acc
}

/// out[m, n] = x[m, k] · wᵀ with w [n, k] in `t` blocks, x quantized to int8 blocks first.
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear(
    scratch: &Scratch,
    x: &[f32],
    m: usize,
    k: usize,
    t: QuantType,
    w: &[u8],
    n: usize,
    out: &mut [f32],
    kernel: Kernel,
) {
    let row_bytes = t.bytes_for(k);
    assert!(w.len() >= n * row_bytes && out.len() == m * n);
    scratch.with_staging(|buf| {
        let acts = Acts::new(buf, x, m, k, t, kernel);
        // Each task's 16 weight rows stay in cache while every activation group passes them.
        // Blocks of activation rows small enough to stay in L2 while every weight chunk passes
        // over them (about three bytes per element: codes and lane terms).
        let block = (ACT_BLOCK_BYTES / (3 * k)).clamp(4, 256) / 4 * 4;
        let fill = |tt: &mut [f32], groups: Option<&Groups>| {
            // Regrouped rows are read span by span: one pass over the weights.
            let block = if groups.is_some() { m } else { block };
            for rb in (0..m).step_by(block) {
                let rows_act = rb..m.min(rb + block);
                tt.par_chunks_mut(CHUNK * m)
                    .enumerate()
                    .for_each(|(ci, tc)| {
                        let rows_here = tc.len() / m;
                        #[cfg(target_arch = "x86_64")]
                        if let (Kernel::Vnni(v), true) = (kernel, m > 4) {
                            let wc =
                                &w[ci * CHUNK * row_bytes..(ci * CHUNK + rows_here) * row_bytes];
                            let ra = rows_act.clone();
                            return scratch.with(|slot| match groups {
                                Some(g) if t.block_elems() == 256 => {
                                    v.panel_k(g, t, wc, rows_here, ra, slot, tc)
                                }
                                _ => v.panel(&acts, groups, t, wc, rows_here, ra, slot, tc),
                            });
                        }
                        for g in (0..rows_here).step_by(4) {
                            let j = ci * CHUNK + g;
                            let rows = 4.min(rows_here - g);
                            let wg = &w[j * row_bytes..(j + rows) * row_bytes];
                            for r0 in rows_act.clone().step_by(4) {
                                let mr = 4.min(rows_act.end - r0);
                                let res = kernel.group(&acts, r0, mr, t, wg, rows);
                                for jj in 0..rows {
                                    for r in 0..mr {
                                        tc[(g + jj) * m + r0 + r] = res[jj * mr + r];
                                    }
                                }
                            }
                        }
                    })
            }
        };
        if m == 1 {
            return fill(out, None);
        }
        // The K-quant panel always reads regrouped rows; the 32-element one where rows 4 KiB
        // apart or more would share cache sets (for shorter rows the copy costs more than it
        // saves: 159 against 180 GOP/s on 122 rows of k = 1536 in one measurement).
        let regroup = kernel.is_simd() && m > 4 && (t.block_elems() == 256 || k >= 4096);
        scratch.with_shared(|tb| {
            let tt: &mut [f32] = bytemuck::cast_slice_mut(scratch::take_u32(tb, n * m));
            if regroup {
                scratch.with_third(|gb| fill(tt, Some(&Groups::new(gb, &acts, t))));
            } else {
                fill(tt, None);
            }
            for i in 0..m {
                for j in 0..n {
                    out[i * n + j] = tt[j * m + i];
                }
            }
        })
    })
}

/// One activation row against several matrices of block weights (q/k/v, gate/up), in a single
/// parallel pass over all their output rows: the activations are quantized once per offset
/// class (at most two, else false and nothing is done). Each part: (format, rows of k, out).
pub(crate) fn linear_fused(
    scratch: &Scratch,
    x: &[f32],
    k: usize,
    parts: &mut [(QuantType, &[u8], &mut [f32])],
    kernel: Kernel,
) -> bool {
    // The formats of the (at most two) offset classes, in order of first use.
    let class = |t: QuantType| (offset(t), act_block(t));
    let mut classes: [Option<QuantType>; 2] = [None; 2];
    for (t, _, _) in parts.iter() {
        match classes {
            [Some(a), _] if class(a) == class(*t) => {}
            [Some(_), Some(b)] if class(b) == class(*t) => {}
            [None, _] => classes[0] = Some(*t),
            [Some(_), None] => classes[1] = Some(*t),
            [Some(_), Some(_)] => return false,
        }
    }
    let Some(t0) = classes[0] else { return true };
    let first = class(t0);
    let run = |a0: &Acts, a1: Option<&Acts>, parts: &mut [(QuantType, &[u8], &mut [f32])]| {
        parts.par_iter_mut().for_each(|(t, w, out)| {
            let acts = if class(*t) == first {
                a0
            } else {
                a1.unwrap_or(a0)
            };
            let row_bytes = t.bytes_for(k);
            out.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, oc)| {
                for (g, og) in oc.chunks_mut(4).enumerate() {
                    let j = ci * CHUNK + 4 * g;
                    let wg = &w[j * row_bytes..(j + og.len()) * row_bytes];
                    let res = kernel.group(acts, 0, 1, *t, wg, og.len());
                    og.copy_from_slice(&res[..og.len()]);
                }
            })
        })
    };
    scratch.with_staging(|b0| {
        let a0 = Acts::new(b0, x, 1, k, t0, kernel);
        match classes[1] {
            Some(t1) => scratch.with_shared(|b1| {
                let a1 = Acts::new(b1, x, 1, k, t1, kernel);
                run(&a0, Some(&a1), parts)
            }),
            None => run(&a0, None, parts),
        }
    });
    true
}

/// Which code computes a group of up to four weight rows against up to four activation rows.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Vnni(super::avx512::Avx512Vnni),
}

impl Kernel {
    /// The fastest kernel for a variant.
    pub(crate) fn for_isa(isa: super::Isa) -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if matches!(
            isa,
            super::Isa::Avx512 | super::Isa::Avx512Bf16 | super::Isa::Amx
        ) {
            if let Some(t) = super::avx512::Avx512Vnni::new() {
                return Kernel::Vnni(t);
            }
        }
        let _ = isa;
        Kernel::Portable
    }

    fn is_simd(self) -> bool {
        !matches!(self, Kernel::Portable)
    }

    /// One row's activation blocks (see [`quantize_row`]).
    fn quantize(self, x: &[f32], blk: usize, q: &mut [i8], dl: &mut [f32], sum4: &mut [i32]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Vnni(v) => v.quantize_row(x, blk, q, dl, sum4),
            Kernel::Portable => quantize_row(x, blk, q, dl, sum4),
        }
    }

    /// res[j·mr + r] = w_j · x_{r0 + r} for `rows` rows of `w`.
    fn group(
        self,
        acts: &Acts,
        r0: usize,
        mr: usize,
        t: QuantType,
        w: &[u8],
        rows: usize,
    ) -> [f32; 16] {
        let mut res = [0.0f32; 16];
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Vnni(v) if t.block_elems() == 256 => {
                v.dots_k(acts, r0, mr, t, w, rows, &mut res)
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Vnni(v) => v.dots_int8(acts, r0, mr, t, w, rows, &mut res),
            Kernel::Portable => {
                let rb = w.len() / rows;
                for j in 0..rows {
                    for r in 0..mr {
                        res[j * mr + r] = dot(acts, r0 + r, t, &w[j * rb..(j + 1) * rb]);
                    }
                }
            }
        }
        res
    }
}
