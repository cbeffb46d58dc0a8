//! Idefics3Connector: pixel shuffle, then a bias-free linear projection to the text width.

use crate::error::Result;
use crate::kernels::{self, Exec};
use crate::weights::{Tensor, WeightStore};

pub(crate) struct Connector {
    pub scale: usize,
    proj: Tensor,
    in_dim: usize,
    out_dim: usize,
}

/// `Idefics3Connector.pixel_shuffle` for one tile: [side², D] → [(side/s)², D·s²]; output token
/// (I, J) concatenates, row-major over the s×s block, the vectors at (I·s + a, J·s + b).
pub(crate) fn pixel_shuffle(x: &[f32], side: usize, d: usize, s: usize) -> Vec<f32> {
    let o = side / s;
    let mut out = vec![0.0f32; x.len()];
    for i in 0..o {
        for j in 0..o {
            let dst = &mut out[(i * o + j) * d * s * s..][..d * s * s];
            for a in 0..s {
                for b in 0..s {
                    let src = &x[((i * s + a) * side + j * s + b) * d..][..d];
                    dst[(a * s + b) * d..][..d].copy_from_slice(src);
                }
            }
        }
    }
    out
}

impl Connector {
    pub fn load(
        store: &WeightStore,
        name: &str,
        vis_dim: usize,
        scale: usize,
        text_dim: usize,
    ) -> Result<Self> {
        let in_dim = vis_dim * scale * scale;
        Ok(Connector {
            scale,
            proj: store.get(name, &[text_dim, in_dim])?,
            in_dim,
            out_dim: text_dim,
        })
    }

    /// [n·side², D] vision features → [n·(side/s)², text hidden].
    pub fn forward(&self, ex: Exec, feats: &[f32], n: usize, side: usize) -> Vec<f32> {
        let per_tile = side * side * self.in_dim / (self.scale * self.scale);
        let mut shuffled = Vec::with_capacity(feats.len());
        for t in 0..n {
            let d = self.in_dim / (self.scale * self.scale);
            shuffled.extend(pixel_shuffle(
                &feats[t * per_tile..(t + 1) * per_tile],
                side,
                d,
                self.scale,
            ));
        }
        let rows = shuffled.len() / self.in_dim;
        let mut out = vec![0.0f32; rows * self.out_dim];
        kernels::linear(ex, &shuffled, rows, &self.proj, None, &mut out);
        out
    }
}
