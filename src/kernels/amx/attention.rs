//! One head of attention on AMX tiles in the bf16 mode (q·kᵀ and P·v, f32 softmax).

use super::{pack_x, Amx, Tiles, KS, XB};
use crate::kernels::math::bf16_bits;
use crate::kernels::scratch::take_u32;
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
                let b0 = &b[(2 * j) * kq * 16 + s * 256..][..256];
                let b1 = &b[(2 * j + 1) * kq * 16 + s * 256..][..256];
                // SAFETY: the asserts above bound 16 rows of 32 bf16 at stride lda from a0 and
                // a1 (row 32·i + 31 < 32·rows2, column s·32 + 31 < kpad ≤ lda); b0, b1 are
                // 256-u32 slices.
                unsafe {
                    tiles.step(
                        a0.as_ptr() as *const u8,
                        a1.as_ptr() as *const u8,
                        2 * lda,
                        b0.as_ptr() as *const u8,
                        b1.as_ptr() as *const u8,
                    )
                };
            }
            // SAFETY: rows 32i..32i+32, columns 32j..32j+32 lie inside c (asserted above).
            unsafe { tiles.store_block(c.as_mut_ptr().add(32 * i * ldc + 32 * j), ldc) };
        }
    }
}

/// Columns of v [rows, cols] (row stride ldv; past rows/cols: zeros) as pack_x packs rows of
/// vᵀ: blocks of 16 columns, kq pairs of rows each.
fn pack_cols(
    v: &[f32],
    ldv: usize,
    rows: usize,
    cols: usize,
    kq: usize,
    blocks: usize,
    out: &mut [u32],
) {
    out[..blocks * kq * 16].fill(0);
    for t in 0..rows {
        let shift = 16 * (t % 2);
        for (c, x) in v[t * ldv..t * ldv + cols].iter().enumerate() {
            out[(c / 16) * kq * 16 + (t / 2) * 16 + c % 16] |= bf16_bits(*x) << shift;
        }
    }
}

/// Rows of x [rows, cols] (stride ldx) rounded to bf16 into out [rows_pad, ld] (zeros past).
fn to_bf16_rows(x: &[f32], ldx: usize, rows: usize, cols: usize, out: &mut [bf16], ld: usize) {
    out.fill(bf16::ZERO);
    for r in 0..rows {
        for (d, s) in out[r * ld..r * ld + cols]
            .iter_mut()
            .zip(&x[r * ldx..r * ldx + cols])
        {
            *d = bf16::from_bits(bf16_bits(*s) as u16);
        }
    }
}

/// The caller's row softmax: (row index, scores row, bf16 bits of P out).
pub(crate) type SoftmaxRow<'a> = dyn Fn(usize, &mut [f32], &mut [u16]) + 'a;

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

/// One head of attention in the bf16 mode on one thread: S = q·kᵀ on tiles (q, k rounded to
/// bf16), `softmax(i, S row i, P row i)` in f32 by the caller's function (which masks and
/// writes P in bf16, zeros included), then
/// out = P·v on tiles (P, v rounded to bf16), f32 accumulation throughout.
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
    let qpad = h.t_q.next_multiple_of(XB);
    let tiles = Tiles::config(amx);
    // S [qpad, tpad] = q·kᵀ: A = q rows in bf16, B = k rows packed.
    let qa: &mut [bf16] = bytemuck::cast_slice_mut(take_u32(&mut slot.b32, qpad * dpad / 2));
    to_bf16_rows(q, h.ldq, h.t_q, h.d, qa, dpad);
    let kp = take_u32(&mut slot.packed, (tpad / 16) * (dpad / 2) * 16);
    for (b, blk) in kp.chunks_mut(dpad / 2 * 16).enumerate() {
        pack_x(amx.1, k, h.ldk, h.t_kv, h.d, b * 16, dpad / 2, blk);
    }
    let scores = crate::kernels::scratch::take(&mut slot.a, qpad * tpad);
    tiles_nn(
        &tiles,
        qa,
        dpad,
        qpad / 32,
        kp,
        tpad / 32,
        dpad,
        scores,
        tpad,
    );
    // P = softmax(S) in bf16 [qpad, tpad]; padding columns and rows are zero.
    let pa: &mut [bf16] = bytemuck::cast_slice_mut(take_u32(&mut slot.b32, qpad * tpad / 2));
    pa.fill(bf16::ZERO);
    let pbits: &mut [u16] = bytemuck::cast_slice_mut(pa);
    for i in 0..h.t_q {
        let row = &mut scores[i * tpad..i * tpad + h.t_kv];
        softmax(i, row, &mut pbits[i * tpad..i * tpad + h.t_kv]);
    }
    // O [qpad, dpad] = P·v: B = v's columns packed along the keys.
    let dcols = h.d.next_multiple_of(XB);
    let vp = take_u32(&mut slot.packed, (dcols / 16) * (tpad / 2) * 16);
    pack_cols(v, h.ldv, h.t_kv, h.d, tpad / 2, dcols / 16, vp);
    let o = crate::kernels::scratch::take(&mut slot.b, qpad * dcols);
    tiles_nn(&tiles, pa, tpad, qpad / 32, vp, dcols / 32, tpad, o, dcols);
    for i in 0..h.t_q {
        // SAFETY: row i < t_q of out holds d floats at stride ldo (the caller's contract).
        let dst = unsafe { std::slice::from_raw_parts_mut(out.add(i * h.ldo), h.d) };
        dst.copy_from_slice(&o[i * dcols..i * dcols + h.d]);
    }
}
