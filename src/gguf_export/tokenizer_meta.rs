//! The `tokenizer.ggml.*` metadata of a byte-level BPE tokenizer, as llama.cpp's converter
//! writes it.

use crate::config::{read_json, read_json_opt, ModelConfig};
use crate::error::{Error, Result};
use crate::tokenizer::find_template;
use crate::weights::gguf::Value;
use serde_json::Value as Json;
use std::path::Path;

fn bad(dir: &Path, file: &str, what: impl std::fmt::Display) -> Error {
    Error::model(format!("{}: {what}", dir.join(file).display()))
}

/// The `tokenizer.ggml.*` metadata of a byte-level BPE `tokenizer.json`, padded to `vocab`.
pub(super) fn tokenizer_meta(
    dir: &Path,
    cfg: &ModelConfig,
    kv: &mut Vec<(String, Value)>,
) -> Result<()> {
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
