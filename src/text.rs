//! Llama decoder as transformers' `LlamaModel` (modeling_llama.py): RMSNorm, RoPE (rotate_half),
//! GQA attention with a KV cache, SwiGLU MLP; logits from `lm_head` or the tied embeddings.

use crate::config::TextConfig;
use crate::error::{Error, Result};
use crate::kernels::{self, AttnShape};
use crate::weights::{Tensor, WeightStore};

struct Proj {
    w: Tensor,
    b: Option<Vec<f32>>,
}

impl Proj {
    fn load(store: &WeightStore, prefix: &str, out: usize, inp: usize, bias: bool) -> Result<Proj> {
        let w = store.get(&format!("{prefix}.weight"), &[out, inp])?;
        let b = if bias {
            Some(store.get(&format!("{prefix}.bias"), &[out])?.to_f32_vec())
        } else {
            None
        };
        Ok(Proj { w, b })
    }
    fn run(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        kernels::linear(x, rows, &self.w, self.b.as_deref(), out);
    }
}

struct Layer {
    in_norm: Vec<f32>,
    q: Proj,
    k: Proj,
    v: Proj,
    o: Proj,
    post_norm: Vec<f32>,
    gate: Proj,
    up: Proj,
    down: Proj,
}

pub struct TextModel {
    pub cfg: TextConfig,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    /// None: tied to `embed`.
    lm_head: Option<Tensor>,
    inv_freq: Vec<f32>,
}

/// Per-layer keys and values, [positions, kv_heads·head_dim] each.
pub struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    pub len: usize,
    width: usize,
}

impl KvCache {
    pub fn new(cfg: &TextConfig) -> KvCache {
        KvCache {
            k: vec![Vec::new(); cfg.num_hidden_layers],
            v: vec![Vec::new(); cfg.num_hidden_layers],
            len: 0,
            width: cfg.num_key_value_heads * cfg.head_dim,
        }
    }
    pub fn clear(&mut self) {
        self.len = 0;
    }
    /// Makes room for `positions` in total, failing cleanly when the memory is not there.
    pub fn reserve(&mut self, positions: usize) -> Result<()> {
        let need = positions * self.width;
        for buf in self.k.iter_mut().chain(self.v.iter_mut()) {
            if buf.len() < need {
                buf.try_reserve_exact(need - buf.len()).map_err(|_| {
                    Error::new(
                        crate::error::ErrorKind::Oom,
                        format!("cannot allocate the KV cache for {positions} positions"),
                    )
                })?;
                buf.resize(need, 0.0);
            }
        }
        Ok(())
    }
}

pub struct TextWeights<'a> {
    /// Prefix of `embed_tokens`, `layers.N`, `norm` (e.g. "model.text_model").
    pub prefix: &'a str,
    /// Name of the output projection, or None when tied.
    pub lm_head: Option<&'a str>,
}

impl TextModel {
    pub fn load(store: &WeightStore, names: &TextWeights, cfg: &TextConfig) -> Result<Self> {
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let (qd, kvd) = (cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd);
        let p = names.prefix;
        let embed = store.get(&format!("{p}.embed_tokens.weight"), &[cfg.vocab_size, h])?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let lp = format!("{p}.layers.{l}");
            let (ab, mb) = (cfg.attention_bias, cfg.mlp_bias);
            layers.push(Layer {
                in_norm: store
                    .get(&format!("{lp}.input_layernorm.weight"), &[h])?
                    .to_f32_vec(),
                q: Proj::load(store, &format!("{lp}.self_attn.q_proj"), qd, h, ab)?,
                k: Proj::load(store, &format!("{lp}.self_attn.k_proj"), kvd, h, ab)?,
                v: Proj::load(store, &format!("{lp}.self_attn.v_proj"), kvd, h, ab)?,
                o: Proj::load(store, &format!("{lp}.self_attn.o_proj"), h, qd, ab)?,
                post_norm: store
                    .get(&format!("{lp}.post_attention_layernorm.weight"), &[h])?
                    .to_f32_vec(),
                gate: Proj::load(
                    store,
                    &format!("{lp}.mlp.gate_proj"),
                    cfg.intermediate_size,
                    h,
                    mb,
                )?,
                up: Proj::load(
                    store,
                    &format!("{lp}.mlp.up_proj"),
                    cfg.intermediate_size,
                    h,
                    mb,
                )?,
                down: Proj::load(
                    store,
                    &format!("{lp}.mlp.down_proj"),
                    h,
                    cfg.intermediate_size,
                    mb,
                )?,
            });
        }
        let norm = store.get(&format!("{p}.norm.weight"), &[h])?.to_f32_vec();
        let lm_head = match names.lm_head {
            Some(n) => Some(store.get(n, &[cfg.vocab_size, h])?),
            None => None,
        };
        // _compute_default_rope_parameters, in f32 as transformers does.
        let inv_freq = (0..hd / 2)
            .map(|i| 1.0f32 / cfg.rope_theta.powf((2 * i) as f32 / hd as f32))
            .collect();
        Ok(TextModel {
            cfg: cfg.clone(),
            embed,
            layers,
            norm,
            lm_head,
            inv_freq,
        })
    }

    /// Embedding rows for `ids` → [ids.len(), hidden].
    pub fn embed(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let h = self.cfg.hidden_size;
        let mut out = vec![0.0f32; ids.len() * h];
        let view = self.embed.view();
        for (i, &id) in ids.iter().enumerate() {
            if id as usize >= self.cfg.vocab_size {
                return Err(Error::invalid(format!(
                    "token id {id} is outside the vocabulary ({} entries)",
                    self.cfg.vocab_size
                )));
            }
            view.to_f32(id as usize * h, &mut out[i * h..(i + 1) * h]);
        }
        Ok(out)
    }

    fn rope(&self, x: &mut [f32], rows: usize, heads: usize, pos0: usize) {
        let hd = self.cfg.head_dim;
        let half = hd / 2;
        for r in 0..rows {
            let pos = (pos0 + r) as f32;
            let (cos, sin): (Vec<f32>, Vec<f32>) = self
                .inv_freq
                .iter()
                .map(|&f| {
                    let a = pos * f;
                    (a.cos(), a.sin())
                })
                .unzip();
            for h in 0..heads {
                let v = &mut x[(r * heads + h) * hd..][..hd];
                for i in 0..half {
                    let (x1, x2) = (v[i], v[i + half]);
                    v[i] = x1 * cos[i] - x2 * sin[i];
                    v[i + half] = x2 * cos[i] + x1 * sin[i];
                }
            }
        }
    }

    /// Runs `rows` new positions (embeddings in `x`, [rows, hidden]) through the decoder,
    /// appending to `cache`; returns the logits of the last position.
    /// `keep_going` is polled between layers; false cancels.
    pub fn forward(
        &self,
        x: &mut [f32],
        rows: usize,
        cache: &mut KvCache,
        keep_going: &mut dyn FnMut() -> bool,
    ) -> Result<Vec<f32>> {
        let c = &self.cfg;
        let (h, hd, nh, nkv) = (
            c.hidden_size,
            c.head_dim,
            c.num_attention_heads,
            c.num_key_value_heads,
        );
        let (qd, kvd) = (nh * hd, nkv * hd);
        if rows == 0 {
            return Err(Error::invalid("nothing to run: zero positions"));
        }
        let pos0 = cache.len;
        cache.reserve(pos0 + rows)?;
        let mut hbuf = vec![0.0f32; rows * h];
        let mut q = vec![0.0f32; rows * qd];
        let mut a = vec![0.0f32; rows * qd];
        let mut k = vec![0.0f32; rows * kvd];
        let mut v = vec![0.0f32; rows * kvd];
        let mut g = vec![0.0f32; rows * c.intermediate_size];
        let mut u = vec![0.0f32; rows * c.intermediate_size];
        let mut scores = Vec::new();
        let shape = AttnShape {
            t_q: rows,
            t_kv: pos0 + rows,
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: hd,
            causal_offset: Some(pos0),
        };
        for (l, layer) in self.layers.iter().enumerate() {
            if !keep_going() {
                return Err(Error::cancelled());
            }
            kernels::rms_norm(x, h, &layer.in_norm, c.rms_norm_eps, &mut hbuf);
            layer.q.run(&hbuf, rows, &mut q);
            layer.k.run(&hbuf, rows, &mut k);
            layer.v.run(&hbuf, rows, &mut v);
            self.rope(&mut q, rows, nh, pos0);
            self.rope(&mut k, rows, nkv, pos0);
            cache.k[l][pos0 * kvd..(pos0 + rows) * kvd].copy_from_slice(&k);
            cache.v[l][pos0 * kvd..(pos0 + rows) * kvd].copy_from_slice(&v);
            let kv_len = (pos0 + rows) * kvd;
            kernels::attention(
                &q,
                qd,
                &cache.k[l][..kv_len],
                kvd,
                &cache.v[l][..kv_len],
                kvd,
                shape,
                &mut a,
                qd,
                &mut scores,
            );
            layer.o.run(&a, rows, &mut hbuf);
            kernels::add_in_place(x, &hbuf);
            kernels::rms_norm(x, h, &layer.post_norm, c.rms_norm_eps, &mut hbuf);
            layer.gate.run(&hbuf, rows, &mut g);
            layer.up.run(&hbuf, rows, &mut u);
            kernels::silu_mul(&mut g, &u);
            layer.down.run(&g, rows, &mut hbuf);
            kernels::add_in_place(x, &hbuf);
        }
        cache.len = pos0 + rows;
        let last = &x[(rows - 1) * h..rows * h];
        let mut normed = vec![0.0f32; h];
        kernels::rms_norm(last, h, &self.norm, c.rms_norm_eps, &mut normed);
        let mut logits = vec![0.0f32; c.vocab_size];
        kernels::linear(
            &normed,
            1,
            self.lm_head.as_ref().unwrap_or(&self.embed),
            None,
            &mut logits,
        );
        Ok(logits)
    }
}
