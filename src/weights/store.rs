//! Where a model's tensors come from: safetensors files under transformers' names, or a GGUF
//! file under llama.cpp's, looked up by the transformers name the layers ask for.

use super::gguf::GgufFile;
use super::safetensors::SafetensorsStore;
use super::Tensor;
use crate::error::{Error, Result};
use std::path::Path;

pub(crate) enum WeightStore {
    Safetensors(SafetensorsStore),
    Gguf(GgufFile),
    /// A SmolVLM as llama.cpp keeps it: the decoder's file and the `mmproj` file.
    GgufPair {
        text: GgufFile,
        mmproj: GgufFile,
        ffn_swapped: bool,
    },
}

/// llama.cpp's name (`blk.N.attn_q.weight`, `token_embd.weight`, ...) of a Llama decoder
/// tensor under transformers' `LlamaForCausalLM` names; None for names it has no counterpart of.
pub(crate) fn gguf_name(hf: &str) -> Option<String> {
    let (base, kind) = hf.rsplit_once('.')?;
    if kind != "weight" && kind != "bias" {
        return None;
    }
    let top = match base {
        "model.embed_tokens" => Some("token_embd"),
        "model.norm" => Some("output_norm"),
        "lm_head" => Some("output"),
        _ => None,
    };
    if let Some(t) = top {
        return Some(format!("{t}.{kind}"));
    }
    let rest = base.strip_prefix("model.layers.")?;
    let (layer, part) = rest.split_once('.')?;
    layer.parse::<usize>().ok()?;
    let part = match part {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{part}.{kind}"))
}

impl WeightStore {
    /// A text GGUF and the mmproj GGUF of its vision tower and connector.
    pub fn pair(text: GgufFile, mmproj: GgufFile) -> WeightStore {
        let ffn_swapped = crate::gguf_mmproj::ffn_swapped(&mmproj);
        WeightStore::GgufPair {
            text,
            mmproj,
            ffn_swapped,
        }
    }

    /// The file of a GGUF store holding `name` (transformers' naming) and its name there.
    fn gguf_file(&self, name: &str) -> Option<(&GgufFile, String)> {
        match self {
            WeightStore::Safetensors(_) => None,
            WeightStore::Gguf(g) => gguf_name(name).map(|n| (g, n)),
            WeightStore::GgufPair {
                text,
                mmproj,
                ffn_swapped,
            } => {
                if let Some(n) = crate::gguf_mmproj::clip_name(name, *ffn_swapped) {
                    return Some((mmproj, n));
                }
                let local = match name.strip_prefix("model.text_model.") {
                    Some(rest) => format!("model.{rest}"),
                    None => name.to_string(),
                };
                gguf_name(&local).map(|n| (text, n))
            }
        }
    }

    /// The safetensors files of a model directory.
    pub fn open(dir: &Path) -> Result<WeightStore> {
        SafetensorsStore::open(dir).map(WeightStore::Safetensors)
    }

    pub fn contains(&self, name: &str) -> bool {
        match self {
            WeightStore::Safetensors(s) => s.contains(name),
            _ => self
                .gguf_file(name)
                .is_some_and(|(g, n)| g.info(&n).is_some()),
        }
    }

    /// `name` as the files spell it (llama.cpp's name in a GGUF file).
    pub fn stored_name(&self, name: &str) -> String {
        match self {
            WeightStore::Safetensors(_) => name.to_string(),
            _ => self
                .gguf_file(name)
                .map(|(_, n)| n)
                .unwrap_or_else(|| name.to_string()),
        }
    }

    pub fn file_names(&self) -> String {
        match self {
            WeightStore::Safetensors(s) => s.file_names(),
            WeightStore::Gguf(g) => file_name(g),
            WeightStore::GgufPair { text, mmproj, .. } => {
                format!("{}, {}", file_name(text), file_name(mmproj))
            }
        }
    }

    /// The tensor `name` (transformers' naming), checked against `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        match self {
            WeightStore::Safetensors(s) => s.get(name, shape),
            WeightStore::Gguf(g) | WeightStore::GgufPair { text: g, .. } => {
                let (g, n) = self.gguf_file(name).ok_or_else(|| {
                    Error::model(format!(
                        "{}: a GGUF model has no counterpart of {name}",
                        g.path.display()
                    ))
                })?;
                let mut t = g.tensor(&n, shape)?;
                t.name = name.to_string();
                Ok(t)
            }
        }
    }
}

fn file_name(g: &GgufFile) -> String {
    g.path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
