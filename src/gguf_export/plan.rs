//! Which tensors a llama GGUF text model holds, in llama.cpp's order, names and types, and how
//! each is encoded from the source directory's values.

use super::file_type::{stored_type, FileType, Role, Stored};
use crate::config::ModelConfig;
use crate::weights::gguf_write::TensorEntry;
use crate::weights::quant;
use half::{bf16, f16};
use rayon::prelude::*;

/// One tensor to write: the source name and shape, its header entry and stored type.
pub(super) struct Planned {
    pub hf: String,
    pub shape: Vec<usize>,
    pub entry: TensorEntry,
    pub stored: Stored,
    /// Heads whose rotary halves are interleaved into llama.cpp's row order (q and k).
    pub permute_heads: Option<usize>,
}

/// A source tensor: HF name, shape, role, layer, heads whose q/k rows are reordered.
type Source = (String, Vec<usize>, Role, usize, Option<usize>);

/// The text model's tensors in the order llama.cpp's converter writes them.
fn sources(cfg: &ModelConfig) -> Vec<Source> {
    let c = &cfg.text;
    let h = c.hidden_size;
    let (q_rows, kv_rows) = (
        c.num_attention_heads * c.head_dim,
        c.num_key_value_heads * c.head_dim,
    );
    let mut plan: Vec<Source> = vec![(
        "model.embed_tokens.weight".into(),
        vec![c.vocab_size, h],
        Role::Embedding,
        0,
        None,
    )];
    for i in 0..c.num_hidden_layers {
        let p = format!("model.layers.{i}");
        let mut add = |n: &str, shape: Vec<usize>, role, heads| {
            plan.push((format!("{p}.{n}"), shape, role, i, heads))
        };
        add("input_layernorm.weight", vec![h], Role::Vector, None);
        for (proj, rows, role, heads) in [
            ("q_proj", q_rows, Role::Matrix, Some(c.num_attention_heads)),
            ("k_proj", kv_rows, Role::Matrix, Some(c.num_key_value_heads)),
            ("v_proj", kv_rows, Role::AttnV, None),
        ] {
            add(
                &format!("self_attn.{proj}.weight"),
                vec![rows, h],
                role,
                heads,
            );
            if c.attention_bias {
                add(
                    &format!("self_attn.{proj}.bias"),
                    vec![rows],
                    Role::Vector,
                    heads,
                );
            }
        }
        add(
            "self_attn.o_proj.weight",
            vec![h, q_rows],
            Role::Matrix,
            None,
        );
        if c.attention_bias {
            add("self_attn.o_proj.bias", vec![h], Role::Vector, None);
        }
        add(
            "post_attention_layernorm.weight",
            vec![h],
            Role::Vector,
            None,
        );
        for (proj, shape, role) in [
            ("gate_proj", vec![c.intermediate_size, h], Role::Matrix),
            ("up_proj", vec![c.intermediate_size, h], Role::Matrix),
            ("down_proj", vec![h, c.intermediate_size], Role::FfnDown),
        ] {
            let rows = shape[0];
            add(&format!("mlp.{proj}.weight"), shape, role, None);
            if c.mlp_bias {
                add(&format!("mlp.{proj}.bias"), vec![rows], Role::Vector, None);
            }
        }
    }
    plan.push(("model.norm.weight".into(), vec![h], Role::Vector, 0, None));
    if !cfg.tie_word_embeddings {
        plan.push((
            "lm_head.weight".into(),
            vec![c.vocab_size, h],
            Role::Output,
            0,
            None,
        ));
    }
    plan
}

/// Every tensor of `cfg`'s text model with its GGUF name, dimensions and type under `t`.
pub(super) fn plan(cfg: &ModelConfig, t: FileType) -> Vec<Planned> {
    let layers = cfg.text.num_hidden_layers;
    sources(cfg)
        .into_iter()
        .map(|(hf, shape, role, layer, heads)| {
            let k = *shape.last().unwrap_or(&1);
            let stored = stored_type(t, role, layer, layers, k, cfg.tie_word_embeddings);
            let n: usize = shape.iter().product();
            let gguf = crate::weights::store::gguf_name(&hf).unwrap_or_else(|| hf.clone());
            Planned {
                entry: TensorEntry {
                    name: gguf,
                    dims: shape.iter().rev().map(|&d| d as u64).collect(),
                    ty: stored.ggml_type(),
                    len: stored.bytes_for(n),
                },
                hf,
                shape,
                stored,
                permute_heads: heads,
            }
        })
        .collect()
}

/// Rows of a q/k projection in llama.cpp's order: within each head, the rotary halves'
/// rows interleaved (row 2i + j of a head is row j·hd/2 + i of transformers').
pub(super) fn permuted(x: &[f32], heads: usize, k: usize) -> Vec<f32> {
    let n = x.len() / k;
    let hd = n / heads;
    let mut out = vec![0.0f32; x.len()];
    for h in 0..heads {
        for i in 0..hd / 2 {
            for j in 0..2 {
                let (to, from) = (h * hd + 2 * i + j, h * hd + j * (hd / 2) + i);
                out[to * k..(to + 1) * k].copy_from_slice(&x[from * k..(from + 1) * k]);
            }
        }
    }
    out
}

/// `x` (rows of `k`) in the bytes of `stored`.
pub(super) fn encode(stored: Stored, x: &[f32], k: usize) -> Vec<u8> {
    match stored {
        Stored::F32 => x.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Stored::F16 => x
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect(),
        Stored::BF16 => x
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
            .collect(),
        Stored::Quant(q) => {
            let row = q.bytes_for(k);
            let mut out = vec![0u8; x.len() / k * row];
            out.par_chunks_mut(row)
                .zip(x.par_chunks(k))
                .for_each(|(o, r)| quant::quantize(q, r, o));
            out
        }
    }
}
