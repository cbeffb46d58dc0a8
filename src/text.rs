//! Llama decoder as transformers' `LlamaModel` (modeling_llama.py): RMSNorm, RoPE (rotate_half),
//! GQA attention with a KV cache, SwiGLU MLP; logits from `lm_head` or the tied embeddings.

use crate::buffers::fit;
use crate::config::TextConfig;
use crate::error::{Error, Result};
use crate::kernels::{self, AttnShape, Epilogue, Exec};
use crate::kv_cache::KvCache;
use crate::weights::quant::QuantType;
use crate::weights::{DType, Tensor, WeightStore};

struct Proj {
    w: Tensor,
    b: Option<Vec<f32>>,
}

/// `w` in block format `q` (when asked for; llama.cpp's fallback format when its rows do not
/// fill `q`'s blocks), the original's pages released.
fn quantized_as(w: Tensor, q: Option<QuantType>) -> Result<Tensor> {
    match q.and_then(|q| w.quantizable_as(q)) {
        Some(q) => {
            let out = w.quantized(q)?;
            w.release_pages();
            Ok(out)
        }
        _ => Ok(w),
    }
}

impl Proj {
    fn load(
        store: &WeightStore,
        prefix: &str,
        (out, inp): (usize, usize),
        bias: bool,
        q: Option<QuantType>,
    ) -> Result<Proj> {
        let w = quantized_as(store.get(&format!("{prefix}.weight"), &[out, inp])?, q)?;
        let b = if bias {
            Some(store.get(&format!("{prefix}.bias"), &[out])?.to_f32_vec())
        } else {
            None
        };
        Ok(Proj { w, b })
    }
    fn run(&self, ex: Exec, x: &[f32], rows: usize, out: &mut [f32]) {
        kernels::linear(ex, x, rows, &self.w, self.b.as_deref(), out);
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

pub(crate) struct TextModel {
    pub cfg: TextConfig,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    /// None: tied to `embed`.
    lm_head: Option<Tensor>,
    inv_freq: Vec<f32>,
    rope_interleaved: bool,
}

/// Activations of one forward call, kept by the session between calls (grow-only, released
/// with the session) so a decode step allocates nothing.
#[derive(Default)]
pub(crate) struct TextScratch {
    /// Input embeddings of the positions to run, [rows, hidden]; the residual stream.
    pub x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    a: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    g: Vec<f32>,
    u: Vec<f32>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    normed: Vec<f32>,
    /// Logits of the last position after `forward`.
    pub logits: Vec<f32>,
}

impl TextScratch {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        [
            &self.x,
            &self.h,
            &self.q,
            &self.a,
            &self.k,
            &self.v,
            &self.g,
            &self.u,
            &self.cos,
            &self.sin,
            &self.normed,
            &self.logits,
        ]
        .iter()
        .map(|v| v.capacity() * 4)
        .sum()
    }
}

pub(crate) struct TextWeights<'a> {
    /// Prefix of `embed_tokens`, `layers.N`, `norm` (e.g. "model.text_model").
    pub prefix: &'a str,
    /// Name of the output projection, or None when tied.
    pub lm_head: Option<&'a str>,
    /// Rotary pairs are adjacent elements (2i, 2i+1) instead of (i, i + head_dim/2): llama.cpp's
    /// converter reorders the q/k projection rows so, and the weights are used as stored.
    pub rope_interleaved: bool,
}

impl TextModel {
    /// Whether the checkpoint's decoder weights are bf16 (read from the embeddings, which stay
    /// as stored when the projections are quantized at load).
    pub fn weights_bf16(&self) -> bool {
        self.embed.dtype == DType::BF16
    }

    /// The block format holding most of the decoder projections' weights, if they are
    /// quantized (a K-quant's short rows are stored in its fallback format).
    pub fn quantized(&self) -> Option<QuantType> {
        let mut weights: Vec<(QuantType, usize)> = Vec::new();
        for l in &self.layers {
            for p in [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down] {
                if let DType::Quant(q) = p.w.dtype {
                    match weights.iter_mut().find(|(t, _)| *t == q) {
                        Some((_, n)) => *n += p.w.numel(),
                        None => weights.push((q, p.w.numel())),
                    }
                }
            }
        }
        weights.into_iter().max_by_key(|&(_, n)| n).map(|(q, _)| q)
    }

    /// Loads the decoder; with `quantize`, its projections (and the output projection, at 8 bits
    /// for the 4-bit formats as llama.cpp keeps it at ≥ 6) are quantized at load.
    pub fn load(
        store: &WeightStore,
        names: &TextWeights,
        cfg: &TextConfig,
        quantize: Option<QuantType>,
    ) -> Result<Self> {
        let q = quantize;
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let (qd, kvd) = (cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd);
        let p = names.prefix;
        let embed = store.get(&format!("{p}.embed_tokens.weight"), &[cfg.vocab_size, h])?;
        // Grown as layers load (not sized from config.json, which may claim any count).
        let mut layers = Vec::new();
        for l in 0..cfg.num_hidden_layers {
            let lp = format!("{p}.layers.{l}");
            let (ab, mb) = (cfg.attention_bias, cfg.mlp_bias);
            layers.push(Layer {
                in_norm: store
                    .get(&format!("{lp}.input_layernorm.weight"), &[h])?
                    .to_f32_vec(),
                q: Proj::load(store, &format!("{lp}.self_attn.q_proj"), (qd, h), ab, q)?,
                k: Proj::load(store, &format!("{lp}.self_attn.k_proj"), (kvd, h), ab, q)?,
                v: Proj::load(store, &format!("{lp}.self_attn.v_proj"), (kvd, h), ab, q)?,
                o: Proj::load(store, &format!("{lp}.self_attn.o_proj"), (h, qd), ab, q)?,
                post_norm: store
                    .get(&format!("{lp}.post_attention_layernorm.weight"), &[h])?
                    .to_f32_vec(),
                gate: Proj::load(
                    store,
                    &format!("{lp}.mlp.gate_proj"),
                    (cfg.intermediate_size, h),
                    mb,
                    q,
                )?,
                up: Proj::load(
                    store,
                    &format!("{lp}.mlp.up_proj"),
                    (cfg.intermediate_size, h),
                    mb,
                    q,
                )?,
                down: Proj::load(
                    store,
                    &format!("{lp}.mlp.down_proj"),
                    (h, cfg.intermediate_size),
                    mb,
                    q,
                )?,
            });
        }
        let norm = store.get(&format!("{p}.norm.weight"), &[h])?.to_f32_vec();
        let out_q = q.map(|_| QuantType::Q8_0);
        let lm_head = match (names.lm_head, out_q) {
            (Some(n), _) => Some(quantized_as(store.get(n, &[cfg.vocab_size, h])?, out_q)?),
            // Tied: a quantized copy for the logits; lookups keep reading the stored rows.
            (None, Some(oq)) if embed.quantizable_as(oq) == Some(oq) => {
                let copy = embed.quantized(oq)?;
                embed.release_pages();
                Some(copy)
            }
            (None, _) => None,
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
            rope_interleaved: names.rope_interleaved,
        })
    }

    /// Embedding rows for `ids` → `out` = [ids.len(), hidden].
    pub fn embed(&self, ids: &[u32], out: &mut Vec<f32>) -> Result<()> {
        let h = self.cfg.hidden_size;
        fit(out, ids.len() * h, "the prompt's embeddings")?;
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
        Ok(())
    }

    /// cos/sin of every (position, frequency) pair of `rows` positions from `pos0`, as
    /// LlamaRotaryEmbedding computes them (angle in f32), once per forward.
    fn rope_tables(&self, rows: usize, pos0: usize, cos: &mut Vec<f32>, sin: &mut Vec<f32>) {
        let half = self.inv_freq.len();
        cos.clear();
        sin.clear();
        for r in 0..rows {
            let pos = (pos0 + r) as f32;
            for &f in &self.inv_freq {
                let a = pos * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        debug_assert_eq!(cos.len(), rows * half);
    }

    /// apply_rotary_pos_emb with rotate_half, for `heads` heads of every row.
    fn rope(&self, x: &mut [f32], rows: usize, heads: usize, cos: &[f32], sin: &[f32]) {
        let hd = self.cfg.head_dim;
        let half = hd / 2;
        for r in 0..rows {
            let (cos, sin) = (&cos[r * half..][..half], &sin[r * half..][..half]);
            for h in 0..heads {
                let v = &mut x[(r * heads + h) * hd..][..hd];
                // The same rotation of each pair: only which elements pair up differs.
                let (a, b) = if self.rope_interleaved {
                    (2, 1)
                } else {
                    (1, half)
                };
                for i in 0..half {
                    let (j, k) = (i * a, i * a + b);
                    let (x1, x2) = (v[j], v[k]);
                    v[j] = x1 * cos[i] - x2 * sin[i];
                    v[k] = x2 * cos[i] + x1 * sin[i];
                }
            }
        }
    }

    /// Runs the `rows` positions whose embeddings are in `ws.x` ([rows, hidden]) through the
    /// decoder, appending to `cache`; leaves the logits of the last position in `ws.logits`.
    /// `keep_going` is polled between layers; false cancels.
    pub fn forward(
        &self,
        ex: Exec,
        rows: usize,
        cache: &mut KvCache,
        ws: &mut TextScratch,
        keep_going: &mut dyn FnMut() -> bool,
    ) -> Result<()> {
        let c = &self.cfg;
        let (h, hd, nh, nkv) = (
            c.hidden_size,
            c.head_dim,
            c.num_attention_heads,
            c.num_key_value_heads,
        );
        let (qd, kvd, inter) = (nh * hd, nkv * hd, c.intermediate_size);
        if rows == 0 {
            return Err(Error::invalid("nothing to run: zero positions"));
        }
        if ws.x.len() != rows * h {
            return Err(Error::invalid(format!(
                "decoder input has {} values for {rows} positions of {h}",
                ws.x.len()
            )));
        }
        let pos0 = cache.len;
        cache.reserve(pos0 + rows)?;
        // Every buffer is overwritten before it is read; only its length matters.
        let what = "the decoder activations";
        fit(&mut ws.h, rows * h, what)?;
        fit(&mut ws.q, rows * qd, what)?;
        fit(&mut ws.a, rows * qd, what)?;
        fit(&mut ws.k, rows * kvd, what)?;
        fit(&mut ws.v, rows * kvd, what)?;
        fit(&mut ws.g, rows * inter, what)?;
        fit(&mut ws.u, rows * inter, what)?;
        self.rope_tables(rows, pos0, &mut ws.cos, &mut ws.sin);
        let shape = AttnShape {
            t_q: rows,
            t_kv: pos0 + rows,
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: hd,
            causal_offset: Some(pos0),
        };
        let TextScratch {
            x,
            h: hbuf,
            q,
            a,
            k,
            v,
            g,
            u,
            cos,
            sin,
            normed,
            logits,
        } = ws;
        for (l, layer) in self.layers.iter().enumerate() {
            if !keep_going() {
                return Err(Error::cancelled());
            }
            kernels::rms_norm(ex.isa, x, h, &layer.in_norm, c.rms_norm_eps, hbuf);
            if layer.q.b.is_none() && layer.k.b.is_none() && layer.v.b.is_none() {
                kernels::linear_fused(
                    ex,
                    hbuf,
                    rows,
                    [
                        (&layer.q.w, Epilogue::default(), &mut **q),
                        (&layer.k.w, Epilogue::default(), &mut **k),
                        (&layer.v.w, Epilogue::default(), &mut **v),
                    ],
                );
            } else {
                layer.q.run(ex, hbuf, rows, q);
                layer.k.run(ex, hbuf, rows, k);
                layer.v.run(ex, hbuf, rows, v);
            }
            self.rope(q, rows, nh, cos, sin);
            self.rope(k, rows, nkv, cos, sin);
            cache.store(l, pos0, k, v);
            let (kc, vc) = cache.layer(l, pos0 + rows);
            kernels::attention(
                ex.isa, ex.bf16, ex.scratch, q, qd, kc, kvd, vc, kvd, shape, a, qd,
            );
            layer.o.run(ex, a, rows, hbuf);
            kernels::add_in_place(x, hbuf);
            kernels::rms_norm(ex.isa, x, h, &layer.post_norm, c.rms_norm_eps, hbuf);
            if layer.gate.b.is_none() && layer.up.b.is_none() {
                kernels::linear_fused(
                    ex,
                    hbuf,
                    rows,
                    [
                        (&layer.gate.w, Epilogue::default(), &mut **g),
                        (&layer.up.w, Epilogue::default(), &mut **u),
                    ],
                );
            } else {
                layer.gate.run(ex, hbuf, rows, g);
                layer.up.run(ex, hbuf, rows, u);
            }
            kernels::silu_mul(ex.isa, g, u);
            layer.down.run(ex, g, rows, hbuf);
            kernels::add_in_place(x, hbuf);
        }
        cache.len = pos0 + rows;
        let last = &x[(rows - 1) * h..rows * h];
        fit(normed, h, "the final norm")?;
        kernels::rms_norm(ex.isa, last, h, &self.norm, c.rms_norm_eps, normed);
        fit(logits, c.vocab_size, "the logits")?;
        kernels::linear(
            ex,
            normed,
            1,
            self.lm_head.as_ref().unwrap_or(&self.embed),
            None,
            logits,
        );
        Ok(())
    }
}
