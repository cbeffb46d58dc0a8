//! Scaled dot-product attention over row-major [tokens, heads·head_dim] buffers, with GQA;
//! heads run in parallel on the session's pool.

use super::blas::ColumnBlocks;
use super::scratch::{take, Scratch};
use super::{sgemm, Isa, Simd};
use rayon::prelude::*;

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
/// (transformers' `repeat_kv`). `ld*` are row strides in elements.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention(
    isa: Isa,
    bf16: bool,
    scratch: &Scratch,
    q: &[f32],
    ldq: usize,
    k: &[f32],
    ldk: usize,
    v: &[f32],
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
    let softmax_bf16 = |i: usize, row: &[f32], p: &mut [u16]| {
        let visible = match s.causal_offset {
            Some(o) => (o + i + 1).min(s.t_kv),
            None => s.t_kv,
        };
        let inv = simd.softmax_scaled_bf16(&row[..visible], scale, &mut p[..visible]);
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
                let dst = blocks.columns(h * d, d);
                // SAFETY: head h writes only its own columns h·d..(h+1)·d of out, which
                // `columns` checked to lie inside it.
                unsafe {
                    super::amx::attention_head(
                        amx,
                        slot,
                        &q[h * d..],
                        &k[g * d..],
                        &v[g * d..],
                        head,
                        &softmax_bf16,
                        dst,
                    )
                }
            });
        });
        return;
    }
    (0..s.n_heads).into_par_iter().for_each(|h| {
        let g = h / group;
        scratch.with(|slot| {
            let scores = take(&mut slot.a, s.t_q * s.t_kv);
            sgemm(
                false,
                true,
                s.t_q,
                s.t_kv,
                d,
                &q[h * d..],
                ldq,
                &k[g * d..],
                ldk,
                scores,
                s.t_kv,
            );
            for (i, row) in scores.chunks_mut(s.t_kv).enumerate() {
                softmax(i, row);
            }
            // SAFETY: head h writes only its own columns h·d..(h+1)·d.
            unsafe {
                blocks.sgemm(
                    false,
                    false,
                    h * d,
                    d,
                    s.t_kv,
                    scores,
                    s.t_kv,
                    &v[g * d..],
                    ldv,
                )
            };
        });
    });
}
