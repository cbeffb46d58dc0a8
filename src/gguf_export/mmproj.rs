//! The `mmproj` GGUF of a SmolVLM: its SigLIP tower and connector under llama.cpp's clip
//! names and metadata, as `convert_hf_to_gguf.py --mmproj` writes them, so that llama.cpp's
//! `llama-mtmd-cli` and this library load the pair.

use super::file_type::{FileType, Stored};
use super::plan::Planned;
use crate::config::{ImageProcessorConfig, ModelConfig, VisionConfig};
use crate::gguf_mmproj::clip_name;
use crate::weights::gguf::Value;
use crate::weights::gguf_write::TensorEntry;

/// The type of a tower tensor in a file of type `t`: as the converter stores them, vectors and
/// the embeddings in f32, matrices in the file's float type. The tower stays f16 beside a
/// block-quantized decoder (as llama.cpp's own SmolVLM files have it: its quantizer leaves
/// mmproj files alone).
fn stored(t: FileType, hf: &str, dims: usize) -> Stored {
    match t {
        FileType::F32 => Stored::F32,
        _ if dims == 1 || hf.contains(".embeddings.") => Stored::F32,
        FileType::BF16 => Stored::BF16,
        _ => Stored::F16,
    }
}

/// The file type number `general.file_type` records for the tower's file.
fn file_type_number(t: FileType) -> u32 {
    match t {
        FileType::F32 => 0,
        FileType::BF16 => 32,
        _ => 1,
    }
}

/// The tower's and connector's tensors (transformers' names under `vision`/`connector`, the
/// prefixes the checkpoint uses) in the converter's order.
pub(super) fn plan(
    cfg: &ModelConfig,
    vc: &VisionConfig,
    vision: &str,
    connector: &str,
    t: FileType,
) -> Vec<Planned> {
    let (d, p) = (vc.hidden_size, vc.patch_size);
    let n_pos = vc.patches_per_side() * vc.patches_per_side();
    let text_hidden = cfg.text.hidden_size;
    let s2 = cfg.scale_factor * cfg.scale_factor;
    // (name under model.vision_model / model.connector, shape)
    let mut list: Vec<(String, Vec<usize>)> = vec![
        (
            "model.connector.modality_projection.proj.weight".into(),
            vec![text_hidden, d * s2],
        ),
        (
            "model.vision_model.embeddings.patch_embedding.bias".into(),
            vec![d],
        ),
        (
            "model.vision_model.embeddings.patch_embedding.weight".into(),
            vec![d, 3, p, p],
        ),
        (
            "model.vision_model.embeddings.position_embedding.weight".into(),
            vec![n_pos, d],
        ),
    ];
    for l in 0..vc.num_hidden_layers {
        let lp = format!("model.vision_model.encoder.layers.{l}");
        for norm in ["layer_norm1", "layer_norm2"] {
            for k in ["bias", "weight"] {
                list.push((format!("{lp}.{norm}.{k}"), vec![d]));
            }
        }
        for (part, rows, cols) in [
            ("mlp.fc1", vc.intermediate_size, d),
            ("mlp.fc2", d, vc.intermediate_size),
            ("self_attn.k_proj", d, d),
            ("self_attn.out_proj", d, d),
            ("self_attn.q_proj", d, d),
            ("self_attn.v_proj", d, d),
        ] {
            list.push((format!("{lp}.{part}.bias"), vec![rows]));
            list.push((format!("{lp}.{part}.weight"), vec![rows, cols]));
        }
    }
    for k in ["bias", "weight"] {
        list.push((format!("model.vision_model.post_layernorm.{k}"), vec![d]));
    }
    list.into_iter()
        .map(|(hf, shape)| {
            let name = clip_name(&hf, false).unwrap_or_else(|| hf.clone());
            let st = stored(t, &hf, shape.len());
            let n: usize = shape.iter().product();
            // The checkpoint's own prefixes, where they differ from transformers' defaults.
            let source = match hf.strip_prefix("model.vision_model") {
                Some(rest) => format!("{vision}{rest}"),
                None => match hf.strip_prefix("model.connector") {
                    Some(rest) => format!("{connector}{rest}"),
                    None => hf,
                },
            };
            Planned {
                entry: TensorEntry {
                    name,
                    dims: shape.iter().rev().map(|&x| x as u64).collect(),
                    ty: st.ggml_type(),
                    len: st.bytes_for(n),
                },
                hf: source,
                shape,
                stored: st,
                permute_heads: None,
            }
        })
        .collect()
}

/// The metadata, in the converter's order.
pub(super) fn meta(
    name: &str,
    cfg: &ModelConfig,
    vc: &VisionConfig,
    processor: &ImageProcessorConfig,
    t: FileType,
) -> Vec<(String, Value)> {
    let s = |v: &str| Value::Str(v.into());
    let u = |v: usize| Value::U32(v as u32);
    let floats = |v: &[f32; 3]| Value::Array(v.iter().map(|&x| Value::F32(x)).collect());
    let kv: Vec<(&str, Value)> = vec![
        ("general.architecture", s("clip")),
        ("general.type", s("mmproj")),
        ("general.name", s(name)),
        ("general.file_type", Value::U32(file_type_number(t))),
        ("clip.has_vision_encoder", Value::Bool(true)),
        ("clip.vision.projection_dim", u(cfg.text.hidden_size)),
        ("clip.vision.image_size", u(vc.image_size)),
        ("clip.vision.patch_size", u(vc.patch_size)),
        ("clip.vision.embedding_length", u(vc.hidden_size)),
        ("clip.vision.feed_forward_length", u(vc.intermediate_size)),
        ("clip.vision.block_count", u(vc.num_hidden_layers)),
        (
            "clip.vision.attention.head_count",
            u(vc.num_attention_heads),
        ),
        ("clip.vision.image_mean", floats(&processor.image_mean)),
        ("clip.vision.image_std", floats(&processor.image_std)),
        ("clip.projector_type", s("idefics3")),
        (
            "clip.vision.attention.layer_norm_epsilon",
            Value::F32(vc.layer_norm_eps),
        ),
        ("clip.vision.projector.scale_factor", u(cfg.scale_factor)),
        ("clip.use_gelu", Value::Bool(true)),
        ("clip.vision.preproc_image_size", u(processor.longest_edge)),
        ("general.quantization_version", Value::U32(2)),
    ];
    kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
