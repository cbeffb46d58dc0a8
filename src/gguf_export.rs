//! `smolvlm quantize`: a Llama / SmolLM2 safetensors directory written as a llama-architecture
//! GGUF text model, as llama.cpp's `convert_hf_to_gguf.py` lays it out (metadata keys, the
//! byte-level BPE vocabulary, llama.cpp's tensor names and q/k row order) with its tensors in
//! the types `llama-quantize` picks for the same file type (its per-tensor rules, the
//! fallbacks for short rows, ggml's reference quantizer), so llama.cpp and this library load it.

use crate::config::{load_model_config, read_json, read_json_opt, Architecture, ModelConfig};
use crate::error::{Error, Result};
use crate::tokenizer::find_template;
use crate::weights::gguf::Value;
use crate::weights::gguf_write::{header, TensorEntry};
use crate::weights::quant::{self, QuantType};
use crate::weights::WeightStore;
use half::{bf16, f16};
use rayon::prelude::*;
use serde_json::Value as Json;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A file type: how every tensor is stored, as llama.cpp's `llama_ftype` of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// Every matrix in f32.
    F32,
    /// Every matrix in f16.
    F16,
    /// Every matrix in bf16.
    BF16,
    /// Mostly `q` (llama.cpp's Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K_S, Q5_K_S, Q6_K).
    Mostly(QuantType),
    /// Q4_K_M / Q5_K_M: mostly `q` (Q4_K or Q5_K), with Q6_K for the output and for half the
    /// value and down projections.
    Medium(QuantType),
}

impl FileType {
    /// Every file type, by the names of [`FileType::name`].
    pub const ALL: [FileType; 13] = [
        FileType::F32,
        FileType::F16,
        FileType::BF16,
        FileType::Mostly(QuantType::Q8_0),
        FileType::Mostly(QuantType::Q4_0),
        FileType::Mostly(QuantType::Q4_1),
        FileType::Mostly(QuantType::Q5_0),
        FileType::Mostly(QuantType::Q5_1),
        FileType::Mostly(QuantType::Q4_K),
        FileType::Mostly(QuantType::Q5_K),
        FileType::Mostly(QuantType::Q6_K),
        FileType::Medium(QuantType::Q4_K),
        FileType::Medium(QuantType::Q5_K),
    ];

    /// `f32`, `f16`, `bf16`, `q8_0` … `q6_k`, `q4_k_m`, `q5_k_m` (`q4_k`/`q5_k` are llama.cpp's
    /// Q4_K_S/Q5_K_S).
    pub fn name(self) -> String {
        match self {
            FileType::F32 => "f32".into(),
            FileType::F16 => "f16".into(),
            FileType::BF16 => "bf16".into(),
            FileType::Mostly(q) => q.name().into(),
            FileType::Medium(q) => format!("{}_m", q.name()),
        }
    }

    /// Parses [`FileType::name`] (any case; also `q4_k_s`, `q5_k_s`).
    pub fn from_name(s: &str) -> Option<FileType> {
        let s = s.to_ascii_lowercase();
        let s = s
            .strip_suffix("_s")
            .filter(|b| b.ends_with("_k"))
            .unwrap_or(&s);
        Self::ALL.into_iter().find(|t| t.name() == s)
    }

    /// llama.cpp's `llama_ftype` number (`general.file_type`).
    fn number(self) -> u32 {
        match self {
            FileType::F32 => 0,
            FileType::F16 => 1,
            FileType::BF16 => 32,
            FileType::Mostly(q) => match q {
                QuantType::Q4_0 => 2,
                QuantType::Q4_1 => 3,
                QuantType::Q8_0 => 7,
                QuantType::Q5_0 => 8,
                QuantType::Q5_1 => 9,
                QuantType::Q4_K => 14,
                QuantType::Q5_K => 16,
                QuantType::Q6_K => 18,
            },
            FileType::Medium(QuantType::Q5_K) => 17,
            FileType::Medium(_) => 15,
        }
    }
}

/// How one tensor is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    F32,
    F16,
    BF16,
    Quant(QuantType),
}

impl Stored {
    fn ggml_type(self) -> u32 {
        match self {
            Stored::F32 => 0,
            Stored::F16 => 1,
            Stored::BF16 => 30,
            Stored::Quant(q) => match q {
                QuantType::Q4_0 => 2,
                QuantType::Q4_1 => 3,
                QuantType::Q5_0 => 6,
                QuantType::Q5_1 => 7,
                QuantType::Q8_0 => 8,
                QuantType::Q4_K => 12,
                QuantType::Q5_K => 13,
                QuantType::Q6_K => 14,
            },
        }
    }
    fn bytes_for(self, n: usize) -> usize {
        match self {
            Stored::F32 => 4 * n,
            Stored::F16 | Stored::BF16 => 2 * n,
            Stored::Quant(q) => q.bytes_for(n),
        }
    }
    fn name(self) -> String {
        match self {
            Stored::F32 => "F32".into(),
            Stored::F16 => "F16".into(),
            Stored::BF16 => "BF16".into(),
            Stored::Quant(q) => q.name().to_uppercase(),
        }
    }
}

/// What a tensor is, for the per-tensor rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Embedding,
    Output,
    AttnV,
    FfnDown,
    /// Any other matrix.
    Matrix,
    /// Norm weights and biases.
    Vector,
}

/// llama.cpp's choice of layers that get more bits in the _M mixes: the first and last eighth
/// and every third layer between.
fn more_bits(layer: usize, layers: usize) -> bool {
    let (i, n) = (layer as i64, layers as i64);
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// The type `llama-quantize` gives a tensor of rows of `k` under file type `t` (without an
/// importance matrix): `tied` when the output projection is the embedding matrix.
pub(crate) fn stored_type(
    t: FileType,
    role: Role,
    layer: usize,
    layers: usize,
    k: usize,
    tied: bool,
) -> Stored {
    let base = match t {
        _ if role == Role::Vector => return Stored::F32,
        FileType::F32 => return Stored::F32,
        FileType::F16 => return Stored::F16,
        FileType::BF16 => return Stored::BF16,
        FileType::Mostly(q) | FileType::Medium(q) => q,
    };
    let medium = matches!(t, FileType::Medium(_));
    let mut q = base;
    if role == Role::Output || (tied && role == Role::Embedding) {
        q = if !k.is_multiple_of(base.block_elems()) {
            QuantType::Q8_0
        } else if base != QuantType::Q8_0 {
            QuantType::Q6_K
        } else {
            base
        };
    } else if role == Role::AttnV {
        if medium && more_bits(layer, layers) {
            q = QuantType::Q6_K;
        } else if t == FileType::Mostly(QuantType::Q4_K) && layer < 4 {
            q = QuantType::Q5_K;
        }
    } else if role == Role::FfnDown {
        if medium && more_bits(layer, layers) {
            q = QuantType::Q6_K;
        } else if t == FileType::Mostly(QuantType::Q4_K) && layer < layers / 8 {
            q = QuantType::Q5_K;
        }
    }
    // Rows that fit no block format stay F16, as llama.cpp leaves them.
    q.for_row(k).map_or(Stored::F16, Stored::Quant)
}

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
}

fn bad(dir: &Path, file: &str, what: impl std::fmt::Display) -> Error {
    Error::model(format!("{}: {what}", dir.join(file).display()))
}

/// The `tokenizer.ggml.*` metadata of a byte-level BPE `tokenizer.json`, padded to `vocab`.
fn tokenizer_meta(dir: &Path, cfg: &ModelConfig, kv: &mut Vec<(String, Value)>) -> Result<()> {
    let tok = read_json(&dir.join("tokenizer.json"))?;
    let tf = "tokenizer.json";
    let model = &tok["model"];
    if model["type"].as_str() != Some("BPE") {
        return Err(bad(
            dir,
            tf,
            format!("model type {} is not BPE", model["type"]),
        ));
    }
    let byte_level = |v: &Json| {
        v["type"] == "ByteLevel" && v["add_prefix_space"] == false && v["use_regex"] != false
    };
    let pre = &tok["pre_tokenizer"];
    let pre_name = if byte_level(pre) {
        "gpt2"
    } else if pre["type"] == "Sequence"
        && pre["pretokenizers"].as_array().is_some_and(|p| {
            p.len() == 2
                && p[0]["type"] == "Digits"
                && p[0]["individual_digits"] == true
                && byte_level(&p[1])
        })
    {
        "smollm"
    } else {
        return Err(bad(
            dir,
            tf,
            format!("pre-tokenizer {pre} has no llama.cpp name (supported: GPT-2's byte level, SmolLM's digits + byte level)"),
        ));
    };
    let mut tokens: Vec<Option<(String, i32)>> = vec![None; cfg.text.vocab_size];
    let mut put = |id: u64, text: &str, ty: i32| -> Result<()> {
        let slot = tokens.get_mut(id as usize).ok_or_else(|| {
            bad(
                dir,
                tf,
                format!(
                    "token {text:?} has id {id}, past vocab_size {}",
                    cfg.text.vocab_size
                ),
            )
        })?;
        *slot = Some((text.to_string(), ty));
        Ok(())
    };
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| bad(dir, tf, "model.vocab is not an object"))?;
    for (text, id) in vocab {
        put(
            id.as_u64()
                .ok_or_else(|| bad(dir, tf, format!("vocab id of {text:?}")))?,
            text,
            1,
        )?;
    }
    for a in tok["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(text)) = (a["id"].as_u64(), a["content"].as_str()) else {
            return Err(bad(dir, tf, format!("added token {a}")));
        };
        // ggml's CONTROL for special tokens, USER_DEFINED for the others.
        put(id, text, if a["special"] == true { 3 } else { 4 })?;
    }
    // Ids the tokenizer leaves unused are padded as the converter does (UNUSED).
    let (texts, types): (Vec<Value>, Vec<Value>) = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.unwrap_or_else(|| (format!("[PAD{i}]"), 5)))
        .map(|(s, ty)| (Value::Str(s), Value::I32(ty)))
        .unzip();
    let mut merges = Vec::new();
    for m in model["merges"].as_array().into_iter().flatten() {
        let pair = match m {
            Json::String(s) if s.split(' ').count() == 2 => s.clone(),
            Json::Array(p) if p.len() == 2 && p.iter().all(Json::is_string) => {
                format!(
                    "{} {}",
                    p[0].as_str().unwrap_or(""),
                    p[1].as_str().unwrap_or("")
                )
            }
            _ => return Err(bad(dir, tf, format!("merge {m} is not two tokens"))),
        };
        merges.push(Value::Str(pair));
    }
    let id_of = |text: &str| {
        vocab.get(text).and_then(Json::as_u64).or_else(|| {
            tok["added_tokens"]
                .as_array()?
                .iter()
                .find(|a| a["content"] == text)?["id"]
                .as_u64()
        })
    };
    kv.push(("tokenizer.ggml.model".into(), Value::Str("gpt2".into())));
    kv.push(("tokenizer.ggml.pre".into(), Value::Str(pre_name.into())));
    kv.push(("tokenizer.ggml.tokens".into(), Value::Array(texts)));
    kv.push(("tokenizer.ggml.token_type".into(), Value::Array(types)));
    kv.push(("tokenizer.ggml.merges".into(), Value::Array(merges)));
    let tok_cfg = read_json_opt(&dir.join("tokenizer_config.json"))?;
    let text_of = |key: &str| -> Option<String> {
        match tok_cfg.as_ref()?.get(key)? {
            Json::String(s) => Some(s.clone()),
            o => o.get("content")?.as_str().map(str::to_string),
        }
    };
    let mut eos = None;
    for (key, name) in [
        ("bos_token", "bos"),
        ("eos_token", "eos"),
        ("unk_token", "unknown"),
        ("pad_token", "padding"),
    ] {
        if let Some(id) = text_of(key).and_then(|t| id_of(&t)) {
            kv.push((
                format!("tokenizer.ggml.{name}_token_id"),
                Value::U32(id as u32),
            ));
            if name == "eos" {
                eos = Some(id as u32);
            }
        }
    }
    // The model's stop ids: the first as end of sequence when the tokenizer names none, another
    // one as end of turn.
    let stops = &cfg.eos_token_ids;
    if eos.is_none() {
        if let Some(&id) = stops.first() {
            kv.push(("tokenizer.ggml.eos_token_id".into(), Value::U32(id)));
            eos = Some(id);
        }
    }
    if let Some(&id) = stops.iter().find(|&&id| Some(id) != eos) {
        kv.push(("tokenizer.ggml.eot_token_id".into(), Value::U32(id)));
    }
    let add_bos = tok_cfg
        .as_ref()
        .and_then(|c| c.get("add_bos_token"))
        .and_then(Json::as_bool)
        .unwrap_or_else(|| {
            let bos = text_of("bos_token");
            tok["post_processor"]["type"] == "TemplateProcessing"
                && bos.is_some_and(|b| {
                    tok["post_processor"]["single"]
                        .to_string()
                        .contains(&format!("\"{b}\""))
                })
        });
    kv.push(("tokenizer.ggml.add_bos_token".into(), Value::Bool(add_bos)));
    if let Some(t) = find_template(dir, tok_cfg.as_ref())? {
        kv.push(("tokenizer.chat_template".into(), Value::Str(t)));
    }
    Ok(())
}

/// A source tensor: HF name, shape, role, layer, heads whose q/k rows are reordered.
type Source = (String, Vec<usize>, Role, usize, Option<usize>);

/// One tensor to write: the source name and shape, its header entry and stored type.
struct Planned {
    hf: String,
    shape: Vec<usize>,
    entry: TensorEntry,
    stored: Stored,
    /// Heads whose rotary halves are interleaved into llama.cpp's row order (q and k).
    permute_heads: Option<usize>,
}

/// Rows of a q/k projection in llama.cpp's order: within each head, the rotary halves'
/// rows interleaved (row 2i + j of a head is row j·hd/2 + i of transformers').
fn permuted(x: &[f32], heads: usize, k: usize) -> Vec<f32> {
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

fn encode(stored: Stored, x: &[f32], k: usize) -> Vec<u8> {
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

/// Writes the text model of `dir` (a Llama / SmolLM2 safetensors directory) to `out` as GGUF
/// file type `t`; `progress` gets the fraction of tensors written. The file appears only when
/// complete (written beside it, then renamed).
pub fn export(
    dir: &Path,
    out: &Path,
    t: FileType,
    progress: &mut dyn FnMut(f32),
) -> Result<ExportSummary> {
    let cfg = load_model_config(dir)?;
    if cfg.architecture != Architecture::TextOnly {
        return Err(Error::model(format!(
            "{}: a vision-language model ({}); only Llama / SmolLM2 text models can be written \
             as GGUF for now (llama.cpp keeps the vision tower in a separate mmproj file)",
            dir.display(),
            cfg.model_type
        )));
    }
    let c = &cfg.text;
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into());
    let mut kv: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::Str("llama".into())),
        ("general.name".into(), Value::Str(name)),
        ("general.file_type".into(), Value::U32(t.number())),
        ("general.quantization_version".into(), Value::U32(2)),
        (
            "llama.block_count".into(),
            Value::U32(c.num_hidden_layers as u32),
        ),
        (
            "llama.context_length".into(),
            Value::U32(c.max_position_embeddings as u32),
        ),
        (
            "llama.embedding_length".into(),
            Value::U32(c.hidden_size as u32),
        ),
        (
            "llama.feed_forward_length".into(),
            Value::U32(c.intermediate_size as u32),
        ),
        (
            "llama.attention.head_count".into(),
            Value::U32(c.num_attention_heads as u32),
        ),
        (
            "llama.attention.head_count_kv".into(),
            Value::U32(c.num_key_value_heads as u32),
        ),
        ("llama.rope.freq_base".into(), Value::F32(c.rope_theta)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(c.rms_norm_eps),
        ),
        ("llama.vocab_size".into(), Value::U32(c.vocab_size as u32)),
        (
            "llama.rope.dimension_count".into(),
            Value::U32(c.head_dim as u32),
        ),
    ];
    if c.head_dim * c.num_attention_heads != c.hidden_size {
        kv.push((
            "llama.attention.key_length".into(),
            Value::U32(c.head_dim as u32),
        ));
        kv.push((
            "llama.attention.value_length".into(),
            Value::U32(c.head_dim as u32),
        ));
    }
    tokenizer_meta(dir, &cfg, &mut kv)?;

    let (h, layers) = (c.hidden_size, c.num_hidden_layers);
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
    for i in 0..layers {
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
    let tied = cfg.tie_word_embeddings;
    if !tied {
        plan.push((
            "lm_head.weight".into(),
            vec![c.vocab_size, h],
            Role::Output,
            0,
            None,
        ));
    }
    let planned: Vec<Planned> = plan
        .into_iter()
        .map(|(hf, shape, role, layer, heads)| {
            let k = *shape.last().unwrap_or(&1);
            let stored = stored_type(t, role, layer, layers, k, tied);
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
        .collect();

    let store = WeightStore::open(dir)?;
    let alignment = 32;
    let entries: Vec<TensorEntry> = planned.iter().map(|p| p.entry.clone()).collect();
    let head = header(&kv, &entries, alignment);
    let tmp = out.with_extension("gguf.partial");
    let written = write_file(&tmp, &head, alignment, &planned, &store, progress);
    let bytes = match written {
        Ok(b) => b,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
    let mut types: Vec<(String, usize)> = Vec::new();
    for p in &planned {
        match types.iter_mut().find(|(n, _)| *n == p.stored.name()) {
            Some((_, c)) => *c += 1,
            None => types.push((p.stored.name(), 1)),
        }
    }
    Ok(ExportSummary {
        path: out.to_path_buf(),
        tensors: planned.len(),
        bytes,
        types,
    })
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
