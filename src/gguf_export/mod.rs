//! `smolvlm quantize`: a Llama / SmolLM2 safetensors directory written as a llama-architecture
//! GGUF text model, as llama.cpp's `convert_hf_to_gguf.py` lays it out (metadata keys, the
//! byte-level BPE vocabulary, llama.cpp's tensor names and q/k row order) with its tensors in
//! the types `llama-quantize` picks for the same file type (its per-tensor rules, the
//! fallbacks for short rows, ggml's reference quantizer), so llama.cpp and this library load it.

mod file_type;
mod mmproj;
mod plan;
mod tokenizer_meta;

pub use file_type::FileType;

use crate::config::{load_image_processor_config, load_model_config, ModelConfig};
use crate::error::{Error, Result};
use crate::weights::gguf::Value;
use crate::weights::gguf_write::{header, TensorEntry};
use crate::weights::WeightStore;
use plan::{encode, permuted, Planned};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What [`export`] wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// The file written.
    pub path: PathBuf,
    /// Tensors in it.
    pub tensors: usize,
    /// Its size.
    pub bytes: u64,
    /// (type name, tensor count), in the order first met.
    pub types: Vec<(String, usize)>,
    /// For a vision-language model, the `mmproj` file written beside `path` (its vision tower
    /// and connector).
    pub mmproj: Option<Box<ExportSummary>>,
}

/// The `general.*` and `llama.*` metadata of `cfg`'s text model under file type `t`.
fn model_meta(name: &str, cfg: &ModelConfig, t: FileType) -> Vec<(String, Value)> {
    let c = &cfg.text;
    let name = name.to_string();
    let mut kv: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::Str("llama".into())),
        ("general.name".into(), Value::Str(name)),
        ("general.file_type".into(), Value::U32(t.number())),
        ("general.quantization_version".into(), Value::U32(2)),
    ];
    let u = |key: &str, v: usize| (format!("llama.{key}"), Value::U32(v as u32));
    let f = |key: &str, v: f32| (format!("llama.{key}"), Value::F32(v));
    kv.extend([
        u("block_count", c.num_hidden_layers),
        u("context_length", c.max_position_embeddings),
        u("embedding_length", c.hidden_size),
        u("feed_forward_length", c.intermediate_size),
        u("attention.head_count", c.num_attention_heads),
        u("attention.head_count_kv", c.num_key_value_heads),
        f("rope.freq_base", c.rope_theta),
        f("attention.layer_norm_rms_epsilon", c.rms_norm_eps),
        u("vocab_size", c.vocab_size),
        u("rope.dimension_count", c.head_dim),
    ]);
    if c.head_dim * c.num_attention_heads != c.hidden_size {
        kv.extend([
            u("attention.key_length", c.head_dim),
            u("attention.value_length", c.head_dim),
        ]);
    }
    kv
}

/// The first of `prefixes` under which `store` holds `prefix + suffix`.
fn first_present<'a>(store: &WeightStore, prefixes: &[&'a str], suffix: &str) -> Option<&'a str> {
    prefixes
        .iter()
        .copied()
        .find(|p| store.contains(&format!("{p}{suffix}")))
}

/// Where `mmproj` goes for a text model written to `out`: beside it, named as llama.cpp's
/// SmolVLM files are (`mmproj-<text file name>`).
pub(crate) fn mmproj_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model.gguf".into());
    out.with_file_name(format!("mmproj-{name}"))
}

/// Writes the text model of `dir` (a Llama / SmolLM2 safetensors directory, or a SmolVLM's
/// decoder) to `out` as GGUF file type `t`, and a SmolVLM's vision tower and connector to the
/// `mmproj` file beside it ([`ExportSummary::mmproj`]); `progress` gets the fraction of tensors
/// written. The files appear only when complete (written beside them, then renamed).
pub fn export(
    dir: &Path,
    out: &Path,
    t: FileType,
    progress: &mut dyn FnMut(f32),
) -> Result<ExportSummary> {
    let cfg = load_model_config(dir)?;
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into());
    let mut kv = model_meta(&name, &cfg, t);
    tokenizer_meta::tokenizer_meta(dir, &cfg, &mut kv)?;
    let mut planned = plan::plan(&cfg, t);
    let store = WeightStore::open(dir)?;
    let mut files = vec![(out.to_path_buf(), kv, Vec::new())];
    if let Some(vc) = &cfg.vision {
        let missing = |what: &str| {
            Error::model(format!(
                "{}: no {what} tensors (looked in {})",
                dir.display(),
                store.file_names()
            ))
        };
        let text = first_present(
            &store,
            &["model.text_model", "model.text_model.model", "text_model"],
            ".embed_tokens.weight",
        )
        .ok_or_else(|| missing("decoder"))?;
        let head = first_present(
            &store,
            &["", "model.text_model.", "text_model."],
            "lm_head.weight",
        )
        .unwrap_or("");
        for p in &mut planned {
            p.hf = match p.hf.strip_prefix("model.") {
                Some(rest) => format!("{text}.{rest}"),
                None => format!("{head}{}", p.hf),
            };
        }
        let vision = first_present(
            &store,
            &["model.vision_model", "vision_model"],
            ".post_layernorm.weight",
        )
        .ok_or_else(|| missing("vision tower"))?;
        let connector = first_present(
            &store,
            &["model.connector", "connector"],
            ".modality_projection.proj.weight",
        )
        .ok_or_else(|| missing("connector"))?;
        let processor = load_image_processor_config(dir, vc)?;
        files.push((
            mmproj_path(out),
            mmproj::meta(&name, &cfg, vc, &processor, t),
            mmproj::plan(&cfg, vc, vision, connector, t),
        ));
    }
    files[0].2 = planned;
    let total: usize = files.iter().map(|f| f.2.len()).sum();
    let mut done = 0usize;
    let mut summaries: Vec<ExportSummary> = Vec::new();
    for (path, kv, planned) in &files {
        let alignment = 32;
        let entries: Vec<TensorEntry> = planned.iter().map(|p| p.entry.clone()).collect();
        let head = header(kv, &entries, alignment);
        let tmp = path.with_extension("gguf.partial");
        let mut step = |f: f32| progress((done as f32 + f * planned.len() as f32) / total as f32);
        match write_file(&tmp, &head, alignment, planned, &store, &mut step) {
            Ok(bytes) => summaries.push(summary(path, planned, bytes)),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                for (p, _, _) in &files[..summaries.len()] {
                    let _ = std::fs::remove_file(p.with_extension("gguf.partial"));
                }
                return Err(e);
            }
        }
        done += planned.len();
    }
    for (path, _, _) in &files {
        let tmp = path.with_extension("gguf.partial");
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    }
    let mut text = summaries.remove(0);
    text.mmproj = summaries.pop().map(Box::new);
    Ok(text)
}

fn summary(path: &Path, planned: &[Planned], bytes: u64) -> ExportSummary {
    let mut types: Vec<(String, usize)> = Vec::new();
    for p in planned {
        match types.iter_mut().find(|(n, _)| *n == p.stored.name()) {
            Some((_, c)) => *c += 1,
            None => types.push((p.stored.name(), 1)),
        }
    }
    ExportSummary {
        path: path.to_path_buf(),
        tensors: planned.len(),
        bytes,
        types,
        mmproj: None,
    }
}

/// The header, then each tensor read, reordered, encoded and padded in turn.
fn write_file(
    path: &Path,
    head: &[u8],
    alignment: usize,
    planned: &[Planned],
    store: &WeightStore,
    progress: &mut dyn FnMut(f32),
) -> Result<u64> {
    let io = |e| Error::io(path, e);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    file.write_all(head).map_err(io)?;
    let mut written = head.len() as u64;
    for (i, p) in planned.iter().enumerate() {
        let x = store.get(&p.hf, &p.shape)?.to_f32_vec();
        let k = *p.shape.last().unwrap_or(&1);
        let x = match p.permute_heads {
            Some(heads) => permuted(&x, heads, if p.shape.len() == 2 { k } else { 1 }),
            None => x,
        };
        let bytes = encode(p.stored, &x, k);
        let pad = bytes.len().next_multiple_of(alignment) - bytes.len();
        file.write_all(&bytes).map_err(io)?;
        file.write_all(&vec![0u8; pad]).map_err(io)?;
        written += (bytes.len() + pad) as u64;
        progress((i + 1) as f32 / planned.len() as f32);
    }
    file.flush().map_err(io)?;
    Ok(written)
}
