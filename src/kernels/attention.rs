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
    let blocks = ColumnBlocks::new(out, s.t_q, s.n_heads * d, ldo);
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
                let visible = match s.causal_offset {
                    Some(p) => (p + i + 1).min(s.t_kv),
                    None => s.t_kv,
                };
                simd.softmax_scaled(&mut row[..visible], scale);
                for x in row[visible..].iter_mut() {
                    *x = 0.0;
                }
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
