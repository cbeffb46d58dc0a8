//! AMX products of many activation rows with a bf16 weight read in place (outᵀ = W·xᵀ).

use super::{pack_x, Amx, Out, Tiles, KS, WB, XB};
use crate::kernels::scratch::{take_u32, Scratch};
use half::bf16;
use rayon::prelude::*;

/// k steps per chunk of [`block`]: the chunk's A tiles (32 rows × 256 bf16, 16 KiB) stay in L1
/// while every activation pair passes over them.
const CHUNK_STEPS: usize = 8;

/// Output columns j0..j0 + 32 for activation pairs p0..p1 (32 rows each): A tiles from `a`
/// (32 rows of bf16 at stride sa, k padded to kpad), B tiles from the packed activations.
/// Partial sums between k chunks wait in `acc` (4 KiB per pair).
#[allow(clippy::too_many_arguments)]
fn block(
    tiles: &Tiles,
    a: &[bf16],
    sa: usize,
    kpad: usize,
    xp: &[u32],
    pairs: std::ops::Range<usize>,
    c: &Out,
    j0: usize,
    acc: &mut Vec<f32>,
) {
    let kq = kpad / 2;
    let steps = kpad / KS;
    let acc = crate::kernels::scratch::take(acc, pairs.len() * 1024);
    let mut buf = [0.0f32; 1024];
    for s0 in (0..steps).step_by(CHUNK_STEPS) {
        let s1 = (s0 + CHUNK_STEPS).min(steps);
        for (pi, pair) in pairs.clone().enumerate() {
            let (b0, b1) = (&xp[2 * pair * kq * 16..], &xp[(2 * pair + 1) * kq * 16..]);
            let part: &mut [f32; 1024] = (&mut acc[pi * 1024..(pi + 1) * 1024])
                .try_into()
                .expect("1024-float block");
            if s0 == 0 {
                tiles.zero();
            } else {
                tiles.load(part);
            }
            for s in s0..s1 {
                let (ra, rb) = (&a[s * KS..], &a[16 * sa + s * KS..]);
                let (xa, xb) = (&b0[s * 256..s * 256 + 256], &b1[s * 256..s * 256 + 256]);
                assert!(ra.len() >= 15 * sa + KS && rb.len() >= 15 * sa + KS);
                // SAFETY: the assert bounds both A tiles (16 rows of 32 bf16 at stride sa);
                // each B tile is a 256-u32 slice.
                unsafe {
                    tiles.step(
                        ra.as_ptr() as *const u8,
                        rb.as_ptr() as *const u8,
                        2 * sa,
                        xa.as_ptr() as *const u8,
                        xb.as_ptr() as *const u8,
                    )
                };
            }
            if s1 < steps {
                tiles.store(part);
            } else {
                tiles.store(&mut buf);
                // SAFETY: the caller's task alone owns columns j0..j0 + 32 of these rows.
                unsafe { c.put(tiles.0 .0, &buf, j0, pair * XB) };
            }
        }
    }
}

/// out[m, n] = x[m, k] · wᵀ with x rounded to bf16, for a bf16 weight w [n, k].
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_bf16(
    amx: Amx,
    scratch: &Scratch,
    x: &[f32],
    m: usize,
    k: usize,
    w: &[bf16],
    n: usize,
    out: &mut [f32],
) {
    assert_eq!(w.len(), n * k, "amx gemm weight size");
    gemm_parts(amx, scratch, x, m, k, [(w, out)]);
}

/// Several products of the same x (q/k/v, gate/up): x is packed once and the weight blocks of
/// all parts are the tasks of one parallel pass. Part i: out_i [m, n_i] = x · w_iᵀ, w_i [n_i, k].
pub(crate) fn gemm_parts<const N: usize>(
    amx: Amx,
    scratch: &Scratch,
    x: &[f32],
    m: usize,
    k: usize,
    mut parts: [(&[bf16], &mut [f32]); N],
) {
    assert_eq!(x.len(), m * k, "amx gemm input size");
    let ns: [usize; N] = std::array::from_fn(|i| parts[i].0.len() / k.max(1));
    for (i, (w, o)) in parts.iter().enumerate() {
        assert!(
            w.len() == ns[i] * k && o.len() == m * ns[i],
            "amx gemm sizes"
        );
    }
    if m == 0 || k == 0 {
        return;
    }
    let kpad = k.next_multiple_of(KS);
    let kq = kpad / 2;
    let xblocks = m.div_ceil(XB) * 2;
    let pairs = xblocks / 2;
    // Task t < Σ blocks_i · chunks: part, weight block, chunk of activation pairs.
    let blocks: [usize; N] = std::array::from_fn(|i| ns[i].div_ceil(WB));
    let total: usize = blocks.iter().sum();
    let (chunks, per_chunk) = crate::kernels::row_split(total, pairs);
    let mut ptrs = [std::ptr::null_mut::<f32>(); N];
    for (p, (_, o)) in ptrs.iter_mut().zip(parts.iter_mut()) {
        *p = o.as_mut_ptr();
    }
    // From here on the outputs are written only through these pointers.
    let outs: [Out; N] = std::array::from_fn(|i| Out {
        ptr: ptrs[i],
        m,
        n: ns[i],
        ld: ns[i],
    });
    let ws: [&[bf16]; N] = std::array::from_fn(|i| parts[i].0);
    scratch.with_shared(|xbuf| {
        let xp = take_u32(xbuf, xblocks * kq * 16);
        xp.par_chunks_mut(kq * 16)
            .enumerate()
            .for_each(|(b, blk)| pack_x(amx.1, x, k, m, k, b * 16, kq, blk));
        let xp = &*xp;
        let (outs, ws) = (&outs, &ws);
        (0..total * chunks).into_par_iter().for_each(|task| {
            let (mut wb, ch) = (task / chunks, task % chunks);
            let mut part = 0;
            while wb >= blocks[part] {
                wb -= blocks[part];
                part += 1;
            }
            let (w, n, c) = (ws[part], ns[part], &outs[part]);
            let j0 = wb * WB;
            let (p0, p1) = (ch * per_chunk, ((ch + 1) * per_chunk).min(pairs));
            if p0 >= p1 {
                return;
            }
            // Weight blocks read in place need whole tiles: 32 rows and k a multiple of 32.
            let in_place = j0 + WB <= n && k.is_multiple_of(KS);
            scratch.with(|slot| {
                // A source: W in place, or a zero-padded copy [32, kpad] of its rows.
                let (a, sa): (&[bf16], usize) = if in_place {
                    (&w[j0 * k..(j0 + WB) * k], k)
                } else {
                    let pad = take_u32(&mut slot.packed, WB * kpad / 2);
                    let pad: &mut [bf16] = bytemuck::cast_slice_mut(pad);
                    pad.fill(bf16::ZERO);
                    for r in 0..WB.min(n - j0) {
                        pad[r * kpad..r * kpad + k]
                            .copy_from_slice(&w[(j0 + r) * k..(j0 + r + 1) * k]);
                    }
                    (&*pad, kpad)
                };
                let tiles = Tiles::config(amx);
                block(&tiles, a, sa, kpad, xp, p0..p1, c, j0, &mut slot.b);
            });
        });
    });
}
