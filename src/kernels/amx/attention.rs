//! One head of attention on AMX tiles in the bf16 mode (q·kᵀ and P·v, f32 softmax).

use super::{pack_x, Amx, Tiles, KS, XB};
use crate::kernels::scratch::{take, take_u32};
use half::bf16;
use std::arch::asm;

impl Tiles {
    /// Stores C0..C3 as the 32×32 block at `c` of a row-major f32 matrix with row stride ldc:
    /// C0 top left, C1 top right, C2 bottom left, C3 bottom right.
    ///
    /// # Safety
    /// `c` is valid for 32 rows of 32 floats at stride ldc; nothing else touches them.
    unsafe fn store_block(&self, c: *mut f32, ldc: usize) {
        let s = 4 * ldc;
        // SAFETY: per this function's contract; tiles are configured.
        unsafe {
            asm!(
                "tilestored [{c0} + {s}*1], tmm0",
                "tilestored [{c1} + {s}*1], tmm1",
                "tilestored [{c2} + {s}*1], tmm2",
                "tilestored [{c3} + {s}*1], tmm3",
                c0 = in(reg) c,
                c1 = in(reg) c.add(16),
                c2 = in(reg) c.add(16 * ldc),
                c3 = in(reg) c.add(16 * ldc + 16),
                s = in(reg) s,
                options(nostack)
            )
        };
    }
}

/// c[r, j] = Σ a[r, t]·b[t, j] for r < 32·rows2, j < 32·cols2 on tiles: `a` bf16 rows at
/// stride lda (k padded to kpad, a multiple of 32), `b` packed as pack_x packs rows of bᵀ
/// (blocks of 16 columns, kpad/2 pairs each), `c` row-major f32 with stride ldc.
#[allow(clippy::too_many_arguments)]
fn tiles_nn(
    tiles: &Tiles,
    a: &[bf16],
    lda: usize,
    rows2: usize,
    b: &[u32],
    cols2: usize,
    kpad: usize,
    c: &mut [f32],
    ldc: usize,
) {
    let kq = kpad / 2;
    assert!(kpad.is_multiple_of(KS) && lda >= kpad && ldc >= 32 * cols2);
    assert!(a.len() >= (32 * rows2).saturating_sub(1) * lda + kpad);
    assert!(b.len() >= 2 * cols2 * kq * 16);
    assert!(c.len() >= (32 * rows2).saturating_sub(1) * ldc + 32 * cols2);
    for i in 0..rows2 {
        for j in 0..cols2 {
            tiles.zero();
            for s in 0..kpad / KS {
                let a0 = &a[32 * i * lda + s * KS..];
                let a1 = &a[(32 * i + 16) * lda + s * KS..];
                let b0 = &b[(2 * j) * kq * 16 + s * 256..];
                let b1 = &b[(2 * j + 1) * kq * 16 + s * 256..];
                tiles.step_on(a0, a1, lda, b0, b1, false);
            }
            // SAFETY: rows 32i..32i+32, columns 32j..32j+32 lie inside c (asserted above).
            unsafe { tiles.store_block(c.as_mut_ptr().add(32 * i * ldc + 32 * j), ldc) };
        }
    }
}

/// The caller's row softmax: (row index, scores row, bf16 bits of the unnormalised P out) →
/// the factor of that output row (1/Σ).
pub(crate) type SoftmaxRow<'a> = dyn Fn(usize, &[f32], &mut [u16]) -> f32 + 'a;

/// Sizes and strides of one head of attention (see [`attention_head`]).
#[derive(Clone, Copy)]
pub(crate) struct Head {
    pub t_q: usize,
    pub t_kv: usize,
    pub d: usize,
    pub ldq: usize,
    pub ldk: usize,
    pub ldv: usize,
    pub ldo: usize,
}

/// One head of attention in the bf16 mode on one thread, 32 query rows at a time: S = q·kᵀ on
/// tiles (q, k rounded to bf16), `softmax(i, S row i, P row i)` in f32 by the caller's
/// function (which masks and writes the unnormalised P in bf16, zeros included, and returns
/// 1/Σ), then out = (P·v)·(1/Σ) on tiles (v rounded to bf16), f32 accumulation throughout.
///
/// # Safety
/// `out` is valid for writes of t_q rows of d floats at stride ldo, and nothing else touches
/// them during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn attention_head(
    amx: Amx,
    slot: &mut crate::kernels::scratch::Slot,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    h: Head,
    softmax: &SoftmaxRow,
    out: *mut f32,
) {
    let span = |rows: usize, ld: usize, cols: usize| (rows - 1) * ld + cols;
    assert!(h.t_q > 0 && h.t_kv > 0 && h.d > 0);
    assert!(q.len() >= span(h.t_q, h.ldq, h.d) && k.len() >= span(h.t_kv, h.ldk, h.d));
    assert!(v.len() >= span(h.t_kv, h.ldv, h.d));
    let dpad = h.d.next_multiple_of(KS);
    let tpad = h.t_kv.next_multiple_of(KS);
    let tiles = Tiles::config(amx);
    // B operands, packed once per head: k's rows for S = q·kᵀ, v's columns (along the keys)
    // for O = P·v.
    let dcols = h.d.next_multiple_of(XB);
    let kv = take_u32(
        &mut slot.packed,
        (tpad / 16) * (dpad / 2) * 16 + (dcols / 16) * (tpad / 2) * 16,
    );
    let (kp, vp) = kv.split_at_mut((tpad / 16) * (dpad / 2) * 16);
    for (b, blk) in kp.chunks_mut(dpad / 2 * 16).enumerate() {
        pack_x(amx.1, k, h.ldk, h.t_kv, h.d, b * 16, dpad / 2, blk);
    }
    amx.0
        .pack_cols(v, h.ldv, h.t_kv, h.d, tpad / 2, dcols / 16, vp);
    // 32 query rows at a time, so their scores (32 × tpad f32), P and output stay in L2
    // instead of a t_q × t_kv matrix passing through memory.
    // Row strides padded by a cache line: at a power-of-two stride the 16 rows of a tile
    // share L1 sets.
    let (lds, ldp) = (tpad + 16, tpad + 32);
    let qa: &mut [bf16] = bytemuck::cast_slice_mut(take_u32(&mut slot.b32, XB * (dpad + ldp) / 2));
    let (qa, pa) = qa.split_at_mut(XB * dpad);
    pa.fill(bf16::ZERO);
    let o = take(&mut slot.b, XB * dcols);
    let scores = take(&mut slot.a, XB * lds);
    for r0 in (0..h.t_q).step_by(XB) {
        let rows = XB.min(h.t_q - r0);
        amx.0.rows_to_bf16(
            &q[r0 * h.ldq..],
            h.ldq,
            rows,
            h.d,
            bytemuck::cast_slice_mut(&mut *qa),
            dpad,
        );
        tiles_nn(&tiles, qa, dpad, 1, kp, tpad / 32, dpad, scores, lds);
        // P = softmax(S) in bf16; padding columns stay zero (rows past t_q only reach output
        // rows that are not copied).
        let pbits: &mut [u16] = bytemuck::cast_slice_mut(&mut *pa);
        let mut inv = [0.0f32; XB];
        for (i, f) in inv.iter_mut().enumerate().take(rows) {
            let row = &scores[i * lds..i * lds + h.t_kv];
            *f = softmax(r0 + i, row, &mut pbits[i * ldp..i * ldp + h.t_kv]);
        }
        tiles_nn(&tiles, pa, ldp, 1, vp, dcols / 32, tpad, o, dcols);
        for i in 0..rows {
            // SAFETY: row r0 + i < t_q of out holds d floats at stride ldo (the caller's
            // contract).
            let dst = unsafe { std::slice::from_raw_parts_mut(out.add((r0 + i) * h.ldo), h.d) };
            for (d, s) in dst.iter_mut().zip(&o[i * dcols..i * dcols + h.d]) {
                *d = s * inv[i];
            }
        }
    }
}
