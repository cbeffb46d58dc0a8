//! SigLIP vision encoder as `Idefics3VisionTransformer` (modeling_idefics3.py): patch conv,
//! learned position embeddings, pre-LN encoder blocks, post-LayerNorm.

use crate::buffers::fit;
use crate::config::VisionConfig;
use crate::error::{Error, Result};
use crate::kernels::{self, AttnShape, Epilogue, Exec};
use crate::weights::{Tensor, View, WeightStore};

struct Layer {
    ln1: (Vec<f32>, Vec<f32>),
    q: (Tensor, Vec<f32>),
    k: (Tensor, Vec<f32>),
    v: (Tensor, Vec<f32>),
    o: (Tensor, Vec<f32>),
    ln2: (Vec<f32>, Vec<f32>),
    fc1: (Tensor, Vec<f32>),
    fc2: (Tensor, Vec<f32>),
}

/// The activations of one forward pass, kept by the caller across the tiles of an encode so
/// each tile reuses memory the previous one already touched (fresh pages cost a fault each).
#[derive(Default)]
pub(crate) struct VisionBuffers {
    cols: Vec<f32>,
    x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    a: Vec<f32>,
    f: Vec<f32>,
}

pub(crate) struct VisionModel {
    pub cfg: VisionConfig,
    patch: (Tensor, Vec<f32>),
    pos: Vec<f32>,
    layers: Vec<Layer>,
    post: (Vec<f32>, Vec<f32>),
}

fn small(store: &WeightStore, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
    Ok(store.get(name, shape)?.to_f32_vec())
}

fn linear_wb(
    store: &WeightStore,
    prefix: &str,
    out: usize,
    inp: usize,
) -> Result<(Tensor, Vec<f32>)> {
    Ok((
        store.get(&format!("{prefix}.weight"), &[out, inp])?,
        small(store, &format!("{prefix}.bias"), &[out])?,
    ))
}

fn norm_wb(store: &WeightStore, prefix: &str, dim: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    Ok((
        small(store, &format!("{prefix}.weight"), &[dim])?,
        small(store, &format!("{prefix}.bias"), &[dim])?,
    ))
}

impl VisionModel {
    /// `prefix` is e.g. "model.vision_model".
    pub fn load(store: &WeightStore, prefix: &str, cfg: &VisionConfig) -> Result<Self> {
        let (d, i, p) = (cfg.hidden_size, cfg.intermediate_size, cfg.patch_size);
        let emb = format!("{prefix}.embeddings");
        let patch = (
            store.get(
                &format!("{emb}.patch_embedding.weight"),
                &[d, cfg.num_channels, p, p],
            )?,
            small(store, &format!("{emb}.patch_embedding.bias"), &[d])?,
        );
        let pos = small(
            store,
            &format!("{emb}.position_embedding.weight"),
            &[cfg.num_patches(), d],
        )?;
        // Grown as layers load (not sized from config.json, which may claim any count).
        let mut layers = Vec::new();
        for l in 0..cfg.num_hidden_layers {
            let lp = format!("{prefix}.encoder.layers.{l}");
            layers.push(Layer {
                ln1: norm_wb(store, &format!("{lp}.layer_norm1"), d)?,
                q: linear_wb(store, &format!("{lp}.self_attn.q_proj"), d, d)?,
                k: linear_wb(store, &format!("{lp}.self_attn.k_proj"), d, d)?,
                v: linear_wb(store, &format!("{lp}.self_attn.v_proj"), d, d)?,
                o: linear_wb(store, &format!("{lp}.self_attn.out_proj"), d, d)?,
                ln2: norm_wb(store, &format!("{lp}.layer_norm2"), d)?,
                fc1: linear_wb(store, &format!("{lp}.mlp.fc1"), i, d)?,
                fc2: linear_wb(store, &format!("{lp}.mlp.fc2"), d, i)?,
            });
        }
        let post = norm_wb(store, &format!("{prefix}.post_layernorm"), d)?;
        Ok(VisionModel {
            cfg: cfg.clone(),
            patch,
            pos,
            layers,
            post,
        })
    }

    /// Encodes `n` tiles of [3, S, S] pixels (S = image_size) into [n·patches, hidden], a
    /// slice of `bufs`. `keep_going` is polled between layers; false cancels.
    pub fn forward<'a, 'b>(
        &'a self,
        ex: Exec,
        tiles: &[f32],
        n: usize,
        keep_going: &mut dyn FnMut() -> bool,
        bufs: &'b mut VisionBuffers,
    ) -> Result<&'b [f32]> {
        let c = &self.cfg;
        let (s, p, side, d) = (
            c.image_size,
            c.patch_size,
            c.patches_per_side(),
            c.hidden_size,
        );
        let np = side * side;
        if tiles.len() != n * 3 * s * s {
            return Err(Error::invalid(format!(
                "vision input has {} values, expected {} tiles of 3x{s}x{s}",
                tiles.len(),
                n
            )));
        }
        // Conv2d with kernel = stride = patch as a GEMM over unfolded patches (c, ky, kx order =
        // the conv weight's layout); the conv is "valid", so pixels past side·patch are dropped.
        let kdim = 3 * p * p;
        let VisionBuffers {
            cols,
            x,
            h,
            q,
            k,
            v,
            a,
            f,
        } = bufs;
        let rows = n * np;
        let inter = c.intermediate_size;
        let what = "the vision activations";
        let cols = fit(cols, rows * kdim, what)?;
        for t in 0..n {
            let tile = &tiles[t * 3 * s * s..(t + 1) * 3 * s * s];
            for py in 0..side {
                for px in 0..side {
                    let row = &mut cols[((t * np) + py * side + px) * kdim..][..kdim];
                    for ch in 0..3 {
                        for ky in 0..p {
                            let src = &tile[ch * s * s + (py * p + ky) * s + px * p..][..p];
                            row[ch * p * p + ky * p..][..p].copy_from_slice(src);
                        }
                    }
                }
            }
        }
        let x = fit(x, rows * d, what)?;
        kernels::linear(ex, cols, rows, &self.patch.0, Some(&self.patch.1), x);
        // Full tiles: the bucketized position ids are the identity.
        for t in 0..n {
            kernels::add_in_place(&mut x[t * np * d..(t + 1) * np * d], &self.pos);
        }

        let (h, f) = (fit(h, rows * d, what)?, fit(f, rows * inter, what)?);
        let (q, k, v, a) = (
            fit(q, rows * d, what)?,
            fit(k, rows * d, what)?,
            fit(v, rows * d, what)?,
            fit(a, rows * d, what)?,
        );
        let shape = AttnShape {
            t_q: np,
            t_kv: np,
            n_heads: c.num_attention_heads,
            n_kv_heads: c.num_attention_heads,
            head_dim: c.head_dim(),
            causal_offset: None,
        };
        for layer in &self.layers {
            if !keep_going() {
                return Err(Error::cancelled());
            }
            kernels::layer_norm(
                ex.isa,
                x,
                d,
                &layer.ln1.0,
                &layer.ln1.1,
                c.layer_norm_eps,
                h,
            );
            let with_bias = |b: &'a [f32]| Epilogue {
                bias: Some(b),
                ..Epilogue::default()
            };
            kernels::linear_fused(
                ex,
                h,
                rows,
                [
                    (&layer.q.0, with_bias(&layer.q.1), &mut q[..]),
                    (&layer.k.0, with_bias(&layer.k.1), &mut k[..]),
                    (&layer.v.0, with_bias(&layer.v.1), &mut v[..]),
                ],
            );
            for t in 0..n {
                let r = t * np * d..(t + 1) * np * d;
                kernels::attention(
                    ex.isa,
                    ex.bf16,
                    ex.scratch,
                    &q[r.clone()],
                    d,
                    View::F32(&k[r.clone()]),
                    d,
                    View::F32(&v[r.clone()]),
                    d,
                    shape,
                    &mut a[r],
                    d,
                );
            }
            // x += a·oᵀ + b and x += gelu(h·fc1ᵀ + b1)·fc2ᵀ + b2: residuals and activation in
            // the products' epilogues (h is the room for products that cannot fuse them).
            let residual = |b: &'a [f32]| Epilogue {
                bias: Some(b),
                accumulate: true,
                ..Epilogue::default()
            };
            kernels::linear_with(ex, a, rows, &layer.o.0, residual(&layer.o.1), x, h);
            kernels::layer_norm(
                ex.isa,
                x,
                d,
                &layer.ln2.0,
                &layer.ln2.1,
                c.layer_norm_eps,
                h,
            );
            kernels::mlp_gelu_residual(
                ex,
                h,
                rows,
                (&layer.fc1.0, &layer.fc1.1),
                (&layer.fc2.0, &layer.fc2.1),
                x,
                f,
            );
        }
        kernels::layer_norm(
            ex.isa,
            x,
            d,
            &self.post.0,
            &self.post.1,
            c.layer_norm_eps,
            h,
        );
        Ok(&h[..])
    }
}
