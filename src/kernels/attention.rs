//! Scaled dot-product attention over row-major [tokens, heads·head_dim] buffers, with GQA.

use super::{sgemm, softmax};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
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
pub fn attention(
    q: &[f32],
    ldq: usize,
    k: &[f32],
    ldk: usize,
    v: &[f32],
    ldv: usize,
    s: AttnShape,
    out: &mut [f32],
    ldo: usize,
    scores: &mut Vec<f32>,
) {
    let d = s.head_dim;
    let group = s.n_heads / s.n_kv_heads;
    let scale = (d as f32).powf(-0.5);
    scores.resize(s.t_q * s.t_kv, 0.0);
    for h in 0..s.n_heads {
        let g = h / group;
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
            0.0,
        );
        scores
            .par_chunks_mut(s.t_kv)
            .enumerate()
            .for_each(|(i, row)| {
                let visible = match s.causal_offset {
                    Some(p) => (p + i + 1).min(s.t_kv),
                    None => s.t_kv,
                };
                for x in row[..visible].iter_mut() {
                    *x *= scale;
                }
                softmax(&mut row[..visible]);
                for x in row[visible..].iter_mut() {
                    *x = 0.0;
                }
            });
        sgemm(
            false,
            false,
            s.t_q,
            d,
            s.t_kv,
            scores,
            s.t_kv,
            &v[g * d..],
            ldv,
            &mut out[h * d..],
            ldo,
            0.0,
        );
    }
}
