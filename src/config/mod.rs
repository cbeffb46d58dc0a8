//! Model directory configuration: config.json, preprocessor/processor config, generation config.
//!
//! Defaults are transformers' own (`Idefics3Config`, `Idefics3VisionConfig`, `LlamaConfig`,
//! `Idefics3ImageProcessor`), so a field a checkpoint leaves out means what it means there.

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

mod fields;
mod image_processor;

use fields::{ids, Fields};
pub(crate) use fields::{read_bounded, read_json, read_json_opt, MAX_CONFIG_BYTES};
pub(crate) use image_processor::{
    image_processor_from, load_image_processor_config, ImageProcessorConfig,
};

/// `vision_config` (Idefics3VisionConfig): the SigLIP encoder.
#[derive(Debug, Clone)]
pub struct VisionConfig {
    /// Width of the encoder.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Input channels (3).
    pub num_channels: usize,
    /// Tile side in pixels.
    pub image_size: usize,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f32,
}

impl VisionConfig {
    /// Patches per side: the patch conv is "valid", so a remainder of the tile is dropped.
    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size
    }
    /// Patches per tile.
    pub fn num_patches(&self) -> usize {
        self.patches_per_side() * self.patches_per_side()
    }
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// `text_config` (LlamaConfig): the decoder.
#[derive(Debug, Clone)]
pub struct TextConfig {
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (fewer than query heads: grouped-query attention).
    pub num_key_value_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f32,
    /// RoPE base.
    pub rope_theta: f32,
    /// Context length.
    pub max_position_embeddings: usize,
    /// Rows of the embedding and the output head.
    pub vocab_size: usize,
    /// Biases on q/k/v/o.
    pub attention_bias: bool,
    /// Biases on the MLP projections.
    pub mlp_bias: bool,
}

/// The kind of model a directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Idefics3 / SmolVLM: vision encoder + connector + Llama decoder.
    Vision,
    /// A plain Llama / SmolLM2 text model.
    TextOnly,
}

/// `config.json` with `generation_config.json`'s stop ids.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Vision-language or text-only.
    pub architecture: Architecture,
    /// `model_type` as written ("idefics3", "smolvlm", "llama").
    pub model_type: String,
    /// The vision encoder, for vision-language models.
    pub vision: Option<VisionConfig>,
    /// The decoder.
    pub text: TextConfig,
    /// Pixel-shuffle factor of the connector (1 for text-only models).
    pub scale_factor: usize,
    /// The `<image>` token, for vision-language models.
    pub image_token_id: Option<u32>,
    /// Whether the output head is the embedding matrix.
    pub tie_word_embeddings: bool,
    /// The ids that end generation.
    pub eos_token_ids: Vec<u32>,
}

impl ModelConfig {
    /// Image tokens per tile: (patches per side / scale)^2, as Idefics3Model computes it.
    pub fn image_seq_len(&self) -> usize {
        match &self.vision {
            Some(v) => v.num_patches() / (self.scale_factor * self.scale_factor),
            None => 0,
        }
    }
}
fn text_config(f: &Fields, is_vlm: bool) -> Result<TextConfig> {
    // Idefics3Config builds its default LlamaConfig with rms_norm_eps 1e-5; LlamaConfig's own default is 1e-6.
    let eps_default = if is_vlm { 1e-5 } else { 1e-6 };
    let hidden_size = f.positive("hidden_size", Some(4096))?;
    let num_attention_heads = f.positive("num_attention_heads", Some(32))?;
    let num_key_value_heads = f.positive("num_key_value_heads", Some(num_attention_heads))?;
    if num_attention_heads % num_key_value_heads != 0 {
        return Err(f.err(
            "num_key_value_heads",
            &format!(
                "({num_key_value_heads}) must divide num_attention_heads ({num_attention_heads})"
            ),
        ));
    }
    let head_dim = f.positive("head_dim", Some(hidden_size / num_attention_heads))?;
    if head_dim % 2 != 0 {
        return Err(f.err("head_dim", "must be even for rotary embeddings"));
    }
    // transformers 5 writes `rope_parameters`; older files carry `rope_theta` (+ `rope_scaling`).
    let mut rope_theta = f.f64("rope_theta", 10000.0)?;
    let mut rope_type = "default".to_string();
    for key in ["rope_parameters", "rope_scaling"] {
        let Some(p) = f.get(key) else { continue };
        if !p.is_object() {
            return Err(f.err(key, &format!("must be an object, found {p}")));
        }
        let sub = Fields {
            obj: p,
            file: f.file,
            section: &if f.section.is_empty() {
                key.to_string()
            } else {
                format!("{}.{key}", f.section)
            },
        };
        if sub.get("rope_theta").is_some() {
            rope_theta = sub.f64("rope_theta", rope_theta)?;
        }
        for tkey in ["rope_type", "type"] {
            if let Some(t) = sub.get(tkey) {
                rope_type = t
                    .as_str()
                    .ok_or_else(|| sub.err(tkey, &format!("must be a string, found {t}")))?
                    .to_string();
                break;
            }
        }
    }
    if rope_theta <= 0.0 {
        return Err(f.err("rope_theta", &format!("must be > 0, found {rope_theta}")));
    }
    if rope_type != "default" {
        return Err(f.err(
            "rope_parameters",
            &format!("rope_type {rope_type:?} is not supported (only \"default\")"),
        ));
    }
    if let Some(act) = f.str("hidden_act") {
        if act != "silu" {
            return Err(f.err(
                "hidden_act",
                &format!("{act:?} is not supported (only \"silu\")"),
            ));
        }
    }
    Ok(TextConfig {
        hidden_size,
        intermediate_size: f.positive("intermediate_size", Some(11008))?,
        num_hidden_layers: f.positive("num_hidden_layers", Some(32))?,
        num_attention_heads,
        num_key_value_heads,
        head_dim,
        rms_norm_eps: f.non_negative("rms_norm_eps", eps_default)? as f32,
        rope_theta: rope_theta as f32,
        max_position_embeddings: f.positive("max_position_embeddings", Some(2048))?,
        vocab_size: f.positive("vocab_size", Some(32000))?,
        attention_bias: f.bool("attention_bias", false)?,
        mlp_bias: f.bool("mlp_bias", false)?,
    })
}

fn vision_config(f: &Fields) -> Result<VisionConfig> {
    if let Some(act) = f.str("hidden_act") {
        if act != "gelu_pytorch_tanh" {
            return Err(f.err(
                "hidden_act",
                &format!("{act:?} is not supported (only \"gelu_pytorch_tanh\")"),
            ));
        }
    }
    let v = VisionConfig {
        hidden_size: f.positive("hidden_size", Some(1152))?,
        intermediate_size: f.positive("intermediate_size", Some(3072))?,
        num_hidden_layers: f.positive("num_hidden_layers", Some(12))?,
        num_attention_heads: f.positive("num_attention_heads", Some(16))?,
        num_channels: f.positive("num_channels", Some(3))?,
        image_size: f.positive("image_size", Some(224))?,
        patch_size: f.positive("patch_size", Some(32))?,
        layer_norm_eps: f.non_negative("layer_norm_eps", 1e-6)? as f32,
    };
    if v.num_channels != 3 {
        return Err(f.err("num_channels", "must be 3"));
    }
    if !v.hidden_size.is_multiple_of(v.num_attention_heads) {
        return Err(f.err("hidden_size", "must be a multiple of num_attention_heads"));
    }
    if v.patch_size > v.image_size {
        return Err(f.err("patch_size", "is larger than image_size"));
    }
    Ok(v)
}

/// Reads `config.json` and `generation_config.json` from a model directory.
pub fn load_model_config(dir: &Path) -> Result<ModelConfig> {
    let path = dir.join("config.json");
    let cfg = read_json(&path)?;
    let gen_path = dir.join("generation_config.json");
    let gen = read_json_opt(&gen_path)?;
    model_config_from(&cfg, &path, gen.as_ref(), &gen_path)
}

/// A configuration from a `config.json` value (`path` names it in errors) and an optional
/// `generation_config.json` value, with every check `load_model_config` makes.
pub(crate) fn model_config_from(
    cfg: &Value,
    path: &Path,
    gen: Option<&Value>,
    gen_path: &Path,
) -> Result<ModelConfig> {
    if !cfg.is_object() {
        return Err(Error::model(format!(
            "{}: expected a JSON object",
            path.display()
        )));
    }
    let top = Fields {
        obj: cfg,
        file: path,
        section: "",
    };
    let model_type = top.str("model_type").unwrap_or("").to_string();
    let architecture = match model_type.as_str() {
        "idefics3" | "smolvlm" => Architecture::Vision,
        "llama" => Architecture::TextOnly,
        other => {
            return Err(Error::model(format!(
                "{}: model_type {:?} is not supported (expected \"idefics3\", \"smolvlm\" or \"llama\")",
                path.display(),
                other
            )))
        }
    };

    let (vision, text, scale_factor, image_token_id, tie) = match architecture {
        Architecture::Vision => {
            let vobj = cfg
                .get("vision_config")
                .cloned()
                .unwrap_or(Value::Object(Default::default()));
            let tobj = cfg
                .get("text_config")
                .cloned()
                .unwrap_or(Value::Object(Default::default()));
            let vf = Fields {
                obj: &vobj,
                file: path,
                section: "vision_config",
            };
            let tf = Fields {
                obj: &tobj,
                file: path,
                section: "text_config",
            };
            let vision = vision_config(&vf)?;
            let text = text_config(&tf, true)?;
            let scale = top.positive("scale_factor", Some(2))?;
            if vision.patches_per_side() % scale != 0 {
                return Err(top.err(
                    "scale_factor",
                    &format!(
                        "({scale}) must divide the {} patches per side",
                        vision.patches_per_side()
                    ),
                ));
            }
            let image_token_id = top.usize("image_token_id", Some(128257))? as u32;
            // PreTrainedModel ties on the top-level flag (Idefics3Config default: false).
            let tie = top.bool("tie_word_embeddings", false)?;
            (Some(vision), text, scale, Some(image_token_id), tie)
        }
        Architecture::TextOnly => {
            let text = text_config(&top, false)?;
            let tie = top.bool("tie_word_embeddings", false)?;
            (None, text, 1, None, tie)
        }
    };

    // generate() stops on generation_config's eos ids; only without that file do the model
    // config's ids apply (GenerationConfig.from_model_config).
    let mut eos = match gen {
        Some(g) => ids(g, "eos_token_id", gen_path, "")?,
        None => vec![],
    };
    let mut eos_file = gen_path;
    if eos.is_empty() {
        eos = ids(cfg, "eos_token_id", path, "")?;
        eos_file = path;
    }
    if eos.is_empty() {
        if let Some(t) = cfg.get("text_config") {
            eos = ids(t, "eos_token_id", path, "text_config")?;
        }
    }
    // An id the model cannot produce would never stop generation: a broken file, not a choice.
    if let Some(&bad) = eos.iter().find(|&&id| id as usize >= text.vocab_size) {
        return Err(Error::model(format!(
            "{}: eos_token_id {bad} is outside the vocabulary (vocab_size {})",
            eos_file.display(),
            text.vocab_size
        )));
    }
    Ok(ModelConfig {
        architecture,
        model_type,
        vision,
        text,
        scale_factor,
        image_token_id,
        tie_word_embeddings: tie,
        eos_token_ids: eos,
    })
}
