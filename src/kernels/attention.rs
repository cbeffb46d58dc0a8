//! Scaled dot-product attention over row-major [tokens, heads·head_dim] buffers, with GQA;
//! heads run in parallel on the session's pool.

#[cfg(target_arch = "x86_64")]
use super::avx512::KvRows;
use super::blas::ColumnBlocks;
use super::scratch::{take, Scratch};
use super::{sgemm, Isa, Simd};
use crate::weights::View;
use rayon::prelude::*;

/// Query rows up to this count (decode steps) read keys and values in place, one row at a time.
const FEW_ROWS: usize = 4;

/// Sizes of one attention call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AttnShape {
    pub t_q: usize,
    pub t_kv: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Some(p): causal, query row i sits at absolute position p + i and sees keys 0..=p + i.
    pub causal_offset: Option<usize>,
}

/// out[i, h·d..] = softmax(q_h k_gᵀ · d^-½ (+ causal mask)) v_g, where g = h / (n_heads / n_kv_heads)
/// (transformers' `repeat_kv`). `ld*` are row strides in elements. Keys and values in bf16
/// (the bf16 mode's KV cache) are widened exactly, one head's columns at a time.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention<'a>(
    isa: Isa,
    bf16: bool,
    scratch: &Scratch,
    q: &[f32],
    ldq: usize,
    k: View<'a>,
    ldk: usize,
    v: View<'a>,
    ldv: usize,
    s: AttnShape,
    out: &mut [f32],
    ldo: usize,
) {
    let d = s.head_dim;
    let group = s.n_heads / s.n_kv_heads;
    let scale = (d as f32).powf(-0.5);
    let simd = Simd::for_isa(isa);
    // Row i's softmax over the keys it sees; the rest of the row becomes 0.
    let softmax = |i: usize, row: &mut [f32]| {
        let visible = match s.causal_offset {
            Some(p) => (p + i + 1).min(s.t_kv),
            None => s.t_kv,
        };
        simd.softmax_scaled(&mut row[..visible], scale);
        row[visible..].fill(0.0);
    };
    let blocks = ColumnBlocks::new(out, s.t_q, s.n_heads * d, ldo);
    #[cfg(target_arch = "x86_64")]
    let native = super::native_bf16_for(isa);
    #[cfg(target_arch = "x86_64")]
    let softmax_bf16 = |i: usize, row: &[f32], p: &mut [u16]| {
        let visible = match s.causal_offset {
            Some(o) => (o + i + 1).min(s.t_kv),
            None => s.t_kv,
        };
        let inv = match native {
            Some(n) => n.softmax_scaled_bf16(&row[..visible], scale, &mut p[..visible]),
            None => simd.softmax_scaled_bf16(&row[..visible], scale, &mut p[..visible]),
        };
        p[visible..].fill(0);
        inv
    };
    #[cfg(target_arch = "x86_64")]
    if let (true, true, Some(amx)) = (bf16, s.t_q >= 16, super::amx_for(isa)) {
        let head = super::amx::Head {
            t_q: s.t_q,
            t_kv: s.t_kv,
            d,
            ldq,
            ldk,
            ldv,
            ldo,
        };
        (0..s.n_heads).into_par_iter().for_each(|h| {
            let g = h / group;
            scratch.with(|slot| {
                let mut wide = std::mem::take(&mut slot.kv);
                let (kg, vg, head) = match head_kv(k, ldk, v, ldv, g, s, &mut wide) {
                    Some((kg, vg, ld)) => (
                        kg,
                        vg,
                        super::amx::Head {
                            ldk: ld,
                            ldv: ld,
                            ..head
                        },
                    ),
                    None => (f32s(k, g * d), f32s(v, g * d), head),
                };
                let dst = blocks.columns(h * d, d);
                // SAFETY: head h writes only its own columns h·d..(h+1)·d of out, which
                // `columns` checked to lie inside it.
                unsafe {
                    super::amx::attention_head(
                        amx,
                        slot,
                        &q[h * d..],
                        kg,
                        vg,
                        head,
                        &softmax_bf16,
                        dst,
                    )
                };
                slot.kv = wide;
            });
        });
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(t)) = (s.t_q <= FEW_ROWS, super::avx512_for(isa)) {
        let rows = |x: View<'a>, at: usize| match x {
            View::F32(x) => Some(KvRows::F32(&x[at..])),
            View::BF16(x) => Some(KvRows::Bf16(&x[at..])),
            View::F16(_) | View::Quant(..) => None,
        };
        if rows(k, 0).is_some() && rows(v, 0).is_some() {
            (0..s.n_heads).into_par_iter().for_each(|h| {
                let g = h / group;
                let (Some(kg), Some(vg)) = (rows(k, g * d), rows(v, g * d)) else {
                    unreachable!("checked above")
                };
                let dst = blocks.columns(h * d, d);
                scratch.with(|slot| {
                    let scores = take(&mut slot.a, s.t_kv);
                    for i in 0..s.t_q {
                        let visible = match s.causal_offset {
                            Some(p) => (p + i + 1).min(s.t_kv),
                            None => s.t_kv,
                        };
                        let p = &mut scores[..visible];
                        t.kv_scores(&q[i * ldq + h * d..i * ldq + h * d + d], kg, ldk, p);
                        simd.softmax_scaled(p, scale);
                        // SAFETY: head h writes only its own columns h·d..(h+1)·d of row i,
                        // which `columns` checked to lie inside out.
                        let o = unsafe { std::slice::from_raw_parts_mut(dst.add(i * ldo), d) };
                        t.kv_weighted_sum(p, vg, ldv, o);
                    }
                });
            });
            return;
        }
    }
    (0..s.n_heads).into_par_iter().for_each(|h| {
        let g = h / group;
        scratch.with(|slot| {
            let mut wide = std::mem::take(&mut slot.kv);
            let (kg, vg, ldk, ldv) = match head_kv(k, ldk, v, ldv, g, s, &mut wide) {
                Some((kg, vg, ld)) => (kg, vg, ld, ld),
                None => (f32s(k, g * d), f32s(v, g * d), ldk, ldv),
            };
            let scores = take(&mut slot.a, s.t_q * s.t_kv);
            sgemm(
                false,
                true,
                s.t_q,
                s.t_kv,
                d,
                &q[h * d..],
                ldq,
                kg,
                ldk,
                scores,
                s.t_kv,
            );
            for (i, row) in scores.chunks_mut(s.t_kv).enumerate() {
                softmax(i, row);
            }
            // SAFETY: head h writes only its own columns h·d..(h+1)·d.
            unsafe { blocks.sgemm(false, false, h * d, d, s.t_kv, scores, s.t_kv, vg, ldv) };
            slot.kv = wide;
        });
    });
}

/// The f32 keys or values from element `at` on.
fn f32s(x: View<'_>, at: usize) -> &[f32] {
    match x {
        View::F32(x) => &x[at..],
        _ => unreachable!("head_kv widens every other type"),
    }
}

/// Group g's keys and values widened to f32 in `wide` ([t_kv, d] each, row stride d) when
/// they are not f32; None when they are (read in place).
fn head_kv<'w>(
    k: View,
    ldk: usize,
    v: View,
    ldv: usize,
    g: usize,
    s: AttnShape,
    wide: &'w mut Vec<f32>,
) -> Option<(&'w [f32], &'w [f32], usize)> {
    if matches!((k, v), (View::F32(_), View::F32(_))) {
        return None;
    }
    let d = s.head_dim;
    let n = s.t_kv * d;
    let buf = take(wide, 2 * n);
    let (kw, vw) = buf.split_at_mut(n);
    for (x, ld, w) in [(k, ldk, &mut *kw), (v, ldv, &mut *vw)] {
        for (t, row) in w.chunks_exact_mut(d).enumerate() {
            x.to_f32(t * ld + g * d, row);
        }
    }
    Some((kw, vw, d))
}
