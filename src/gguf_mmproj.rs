//! llama.cpp's SmolVLM pairs: a Llama text GGUF plus an `mmproj` GGUF (`general.architecture`
//! = clip, projector type idefics3) holding the SigLIP tower and the connector, as llama.cpp's
//! `convert_hf_to_gguf.py --mmproj` writes them.
//!
//! The pair stands for an Idefics3 `config.json`, a `generation_config.json` and a
//! `preprocessor_config.json`; those values pass through the checks a model directory gets.

use crate::error::Result;
use crate::gguf_llama::{array, err, float, int, need_int, string};
use crate::tokenizer::Tokenizer;
use crate::weights::gguf::{GgufFile, Value};
use serde_json::{json, Value as Json};

/// What a text GGUF plus an mmproj GGUF stand for, as transformers would read it.
pub(crate) struct PairJson {
    pub config: Json,
    pub generation: Json,
    pub preprocessor: Json,
}

/// The end-of-turn token of SmolVLM's chat template: its `generation_config.json` ends on it,
/// and llama.cpp ends generation on it wherever the vocabulary has it.
const END_OF_UTTERANCE: &str = "<end_of_utterance>";

/// `text_cfg`/`text_gen`: what [`crate::gguf_llama::config_json`] made of the text file.
pub(crate) fn pair_json(
    text_cfg: &Json,
    text_gen: &Json,
    mm: &GgufFile,
    tokenizer: &Tokenizer,
) -> Result<PairJson> {
    match string(mm, "general.architecture")? {
        Some("clip") => {}
        Some(a) => {
            return Err(err(
                mm,
                format!("general.architecture {a:?}: an mmproj file has \"clip\""),
            ))
        }
        None => return Err(err(mm, "missing metadata key general.architecture")),
    }
    if let Some(v) = mm.get("clip.has_vision_encoder") {
        if *v != Value::Bool(true) {
            return Err(err(
                mm,
                format!("clip.has_vision_encoder is {v:?}: no vision tower to load"),
            ));
        }
    }
    let projector = match string(mm, "clip.vision.projector_type")? {
        Some(p) => Some(p),
        None => string(mm, "clip.projector_type")?,
    };
    if projector != Some("idefics3") {
        return Err(err(
            mm,
            format!(
                "clip.projector_type {projector:?} is not supported (supported: \"idefics3\", \
                 the SmolVLM / Idefics3 connector)"
            ),
        ));
    }
    // SigLIP's MLP uses the tanh approximation, which is what llama.cpp's "gelu" computes.
    if let Some(v) = mm.get("clip.use_gelu") {
        if *v != Value::Bool(true) {
            return Err(err(
                mm,
                format!("clip.use_gelu is {v:?}: only SigLIP's GELU is supported"),
            ));
        }
    }
    let hidden_text = text_cfg["hidden_size"].as_u64().unwrap_or(0);
    if let Some(p) = int(mm, "clip.vision.projection_dim")? {
        if p != hidden_text {
            return Err(err(
                mm,
                format!(
                    "clip.vision.projection_dim ({p}) is not the text model's embedding length \
                     ({hidden_text}): the two files are not one model"
                ),
            ));
        }
    }
    let v = |s: &str| format!("clip.vision.{s}");
    let image_size = need_int(mm, &v("image_size"))?;
    let vision = json!({
        "model_type": "idefics3_vision",
        "hidden_size": need_int(mm, &v("embedding_length"))?,
        "intermediate_size": need_int(mm, &v("feed_forward_length"))?,
        "num_hidden_layers": need_int(mm, &v("block_count"))?,
        "num_attention_heads": need_int(mm, &v("attention.head_count"))?,
        "image_size": image_size,
        "patch_size": need_int(mm, &v("patch_size"))?,
        "num_channels": 3,
        "hidden_act": "gelu_pytorch_tanh",
        // The converter writes SigLIP's epsilon; this is its default where it did not.
        "layer_norm_eps": float(mm, &v("attention.layer_norm_epsilon"))?.unwrap_or(1e-6),
    });
    let image_token_id = tokenizer.token_id("<image>").ok_or_else(|| {
        err(
            mm,
            "the text model's vocabulary (tokenizer.ggml.tokens) has no <image> token",
        )
    })?;
    let mut text = text_cfg.clone();
    let tie = text
        .as_object_mut()
        .and_then(|o| o.remove("tie_word_embeddings"))
        .unwrap_or(json!(false));
    let config = json!({
        "model_type": "idefics3",
        // Idefics3Config's default, where the converter left the key out.
        "scale_factor": int(mm, &v("projector.scale_factor"))?.unwrap_or(2),
        "image_token_id": image_token_id,
        "tie_word_embeddings": tie,
        "text_config": text,
        "vision_config": vision,
    });
    let mut eos: Vec<u64> = text_gen["eos_token_id"]
        .as_array()
        .map(|a| a.iter().filter_map(Json::as_u64).collect())
        .unwrap_or_default();
    if let Some(id) = tokenizer.token_id(END_OF_UTTERANCE) {
        if !eos.contains(&(id as u64)) {
            eos.push(id as u64);
        }
    }
    let mut pre = serde_json::Map::new();
    // The converter writes the processor's size.longest_edge, falling back to the tile side.
    let longest = int(mm, &v("preproc_image_size"))?.unwrap_or(image_size);
    pre.insert("size".into(), json!({ "longest_edge": longest }));
    pre.insert(
        "max_image_size".into(),
        json!({ "longest_edge": image_size }),
    );
    for key in ["image_mean", "image_std"] {
        if let Some(a) = array(mm, &v(key), Value::as_f64)? {
            pre.insert(key.into(), json!(a));
        }
    }
    Ok(PairJson {
        config,
        generation: json!({ "eos_token_id": eos }),
        preprocessor: Json::Object(pre),
    })
}

/// llama.cpp's name of a tensor of the vision tower (`model.vision_model.*`) or connector
/// under transformers' Idefics3 names; `ffn_swapped`: the file stores fc1 as `ffn_down`
/// (what converters wrote before llama.cpp fixed the names).
pub(crate) fn clip_name(hf: &str, ffn_swapped: bool) -> Option<String> {
    if hf == "model.connector.modality_projection.proj.weight" {
        return Some("mm.model.fc.weight".into());
    }
    let rest = hf.strip_prefix("model.vision_model.")?;
    let (base, kind) = rest.rsplit_once('.')?;
    if kind != "weight" && kind != "bias" {
        return None;
    }
    let top = match base {
        "embeddings.patch_embedding" => Some("v.patch_embd"),
        "embeddings.position_embedding" => Some("v.position_embd"),
        "post_layernorm" => Some("v.post_ln"),
        _ => None,
    };
    if let Some(t) = top {
        return Some(format!("{t}.{kind}"));
    }
    let (layer, part) = base.strip_prefix("encoder.layers.")?.split_once('.')?;
    layer.parse::<usize>().ok()?;
    let (up, down) = if ffn_swapped {
        ("ffn_down", "ffn_up")
    } else {
        ("ffn_up", "ffn_down")
    };
    let part = match part {
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.out_proj" => "attn_out",
        "layer_norm1" => "ln1",
        "layer_norm2" => "ln2",
        "mlp.fc1" => up,
        "mlp.fc2" => down,
        _ => return None,
    };
    Some(format!("v.blk.{layer}.{part}.{kind}"))
}

/// Whether `mm` stores each layer's fc1 (embedding → feed-forward width) under `ffn_down`: told
/// by the first layer's shapes, as the names alone cannot.
pub(crate) fn ffn_swapped(mm: &GgufFile) -> bool {
    let width = |n: &str| mm.info(n).and_then(|i| i.dims.get(1).copied());
    let ff = int(mm, "clip.vision.feed_forward_length").ok().flatten();
    let embd = int(mm, "clip.vision.embedding_length").ok().flatten();
    // GGUF dims run innermost first: fc1 is [embedding, feed-forward].
    match (width("v.blk.0.ffn_up.weight"), ff, embd) {
        (Some(w), Some(f), Some(e)) => f != e && w == e,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::clip_name;

    #[test]
    fn names_follow_llama_cpp() {
        let n = |s: &str| clip_name(s, false);
        assert_eq!(
            n("model.vision_model.encoder.layers.3.mlp.fc1.weight").as_deref(),
            Some("v.blk.3.ffn_up.weight")
        );
        assert_eq!(
            clip_name("model.vision_model.encoder.layers.3.mlp.fc1.bias", true).as_deref(),
            Some("v.blk.3.ffn_down.bias")
        );
        assert_eq!(
            n("model.vision_model.embeddings.patch_embedding.weight").as_deref(),
            Some("v.patch_embd.weight")
        );
        assert_eq!(
            n("model.connector.modality_projection.proj.weight").as_deref(),
            Some("mm.model.fc.weight")
        );
        assert_eq!(
            n("model.vision_model.encoder.layers.x.mlp.fc1.weight"),
            None
        );
        assert_eq!(n("model.text_model.norm.weight"), None);
    }
}
