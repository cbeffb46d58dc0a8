//! Llama-architecture GGUF text models (as llama.cpp's converter writes SmolLM2 / Llama): the
//! transformers configuration and tokenizer that the file's metadata stands for.
//!
//! Both are expressed as what transformers would read (a `config.json` value, a
//! `tokenizer.json` value) so they pass through the same checks and code as a model directory.

use crate::error::{Error, Result};
use crate::weights::gguf::{GgufFile, Value};
use serde_json::{json, Map, Value as Json};

pub(crate) fn err(g: &GgufFile, what: impl std::fmt::Display) -> Error {
    Error::model(format!("{}: {what}", g.path.display()))
}

pub(crate) fn int(g: &GgufFile, key: &str) -> Result<Option<u64>> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            err(
                g,
                format!("{key} is {v:?}, expected a non-negative integer"),
            )
        }),
    }
}

pub(crate) fn need_int(g: &GgufFile, key: &str) -> Result<u64> {
    int(g, key)?.ok_or_else(|| err(g, format!("missing metadata key {key}")))
}

pub(crate) fn float(g: &GgufFile, key: &str) -> Result<Option<f64>> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| err(g, format!("{key} is {v:?}, expected a number"))),
    }
}

pub(crate) fn string<'a>(g: &'a GgufFile, key: &str) -> Result<Option<&'a str>> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .map(Some)
            .ok_or_else(|| err(g, format!("{key} is not a string"))),
    }
}

/// The array `key` with every element read by `f` (None: the element has the wrong type).
pub(crate) fn array<'a, T>(
    g: &'a GgufFile,
    key: &str,
    f: impl Fn(&'a Value) -> Option<T>,
) -> Result<Option<Vec<T>>> {
    let Some(v) = g.get(key) else {
        return Ok(None);
    };
    let items = v
        .as_array()
        .ok_or_else(|| err(g, format!("{key} is not an array")))?;
    items
        .iter()
        .enumerate()
        .map(|(i, x)| f(x).ok_or_else(|| err(g, format!("{key}[{i}] is {x:?}"))))
        .collect::<Result<Vec<T>>>()
        .map(Some)
}

/// `general.architecture`, required to be one this crate runs.
fn architecture(g: &GgufFile) -> Result<&str> {
    match string(g, "general.architecture")? {
        Some("llama") => Ok("llama"),
        Some("clip") => Err(err(
            g,
            "an mmproj file (general.architecture = clip): it holds a vision tower and \
             connector, not a model; give the directory holding it and its text model's GGUF",
        )),
        Some(a) => Err(err(
            g,
            format!("general.architecture {a:?} is not supported (supported: llama)"),
        )),
        None => Err(err(g, "missing metadata key general.architecture")),
    }
}

/// The `config.json` (LlamaConfig) and `generation_config.json` values the metadata stands for.
pub(crate) fn config_json(g: &GgufFile) -> Result<(Json, Json)> {
    let a = architecture(g)?;
    let k = |s: &str| format!("{a}.{s}");
    let hidden = need_int(g, &k("embedding_length"))?;
    let heads = need_int(g, &k("attention.head_count"))?;
    let kv = int(g, &k("attention.head_count_kv"))?.unwrap_or(heads);
    if heads == 0 {
        return Err(err(g, format!("{} is 0", k("attention.head_count"))));
    }
    let head_dim = int(g, &k("attention.key_length"))?.unwrap_or(hidden / heads);
    if let Some(v) = int(g, &k("attention.value_length"))? {
        if v != head_dim {
            return Err(err(
                g,
                format!(
                    "{} ({v}) differs from the key length ({head_dim}); Llama heads have one width",
                    k("attention.value_length")
                ),
            ));
        }
    }
    if let Some(r) = int(g, &k("rope.dimension_count"))? {
        if r != head_dim {
            return Err(err(g, format!(
                "{} ({r}) is not the head width ({head_dim}); partial rotary embeddings are not supported",
                k("rope.dimension_count")
            )));
        }
    }
    if let Some(t) = string(g, &k("rope.scaling.type"))? {
        if t != "none" {
            return Err(err(
                g,
                format!("{} {t:?} is not supported", k("rope.scaling.type")),
            ));
        }
    }
    let n_vocab = g
        .get("tokenizer.ggml.tokens")
        .and_then(Value::as_array)
        .map(|t| t.len() as u64)
        .ok_or_else(|| err(g, "missing metadata key tokenizer.ggml.tokens"))?;
    if let Some(v) = int(g, &k("vocab_size"))? {
        if v != n_vocab {
            return Err(err(
                g,
                format!(
                    "{} ({v}) differs from the {n_vocab} entries of tokenizer.ggml.tokens",
                    k("vocab_size")
                ),
            ));
        }
    }
    let eps = float(g, &k("attention.layer_norm_rms_epsilon"))?.ok_or_else(|| {
        err(
            g,
            format!(
                "missing metadata key {}",
                k("attention.layer_norm_rms_epsilon")
            ),
        )
    })?;
    let mut cfg = Map::new();
    cfg.insert("model_type".into(), json!("llama"));
    cfg.insert("hidden_size".into(), json!(hidden));
    cfg.insert(
        "intermediate_size".into(),
        json!(need_int(g, &k("feed_forward_length"))?),
    );
    cfg.insert(
        "num_hidden_layers".into(),
        json!(need_int(g, &k("block_count"))?),
    );
    cfg.insert("num_attention_heads".into(), json!(heads));
    cfg.insert("num_key_value_heads".into(), json!(kv));
    cfg.insert("head_dim".into(), json!(head_dim));
    cfg.insert("rms_norm_eps".into(), json!(eps));
    // LlamaConfig's default base when the converter left it out.
    cfg.insert(
        "rope_theta".into(),
        json!(float(g, &k("rope.freq_base"))?.unwrap_or(10000.0)),
    );
    if let Some(c) = int(g, &k("context_length"))? {
        cfg.insert("max_position_embeddings".into(), json!(c));
    }
    cfg.insert("vocab_size".into(), json!(n_vocab));
    cfg.insert(
        "tie_word_embeddings".into(),
        json!(g.info("output.weight").is_none()),
    );
    cfg.insert(
        "attention_bias".into(),
        json!(g.info("blk.0.attn_q.bias").is_some()),
    );
    cfg.insert(
        "mlp_bias".into(),
        json!(g.info("blk.0.ffn_gate.bias").is_some()),
    );
    // llama.cpp ends generation on the end-of-sequence and end-of-turn tokens.
    let mut eos = Vec::new();
    for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"] {
        if let Some(id) = int(g, key)? {
            if !eos.contains(&id) {
                eos.push(id);
            }
        }
    }
    if eos.is_empty() {
        return Err(err(g, "missing metadata key tokenizer.ggml.eos_token_id"));
    }
    Ok((Json::Object(cfg), json!({ "eos_token_id": eos })))
}

/// ggml's token types (llama_token_type).
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

pub(crate) struct TokenizerParts {
    /// A `tokenizer.json` value.
    pub json: Json,
    pub template: Option<String>,
    /// `("bos_token", text)`, ... for the chat template.
    pub special: Vec<(String, String)>,
}

/// The pre-tokenizer llama.cpp names `pre` stands for, as transformers' tokenizer.json
/// spells it.
fn pre_tokenizer(g: &GgufFile, pre: &str) -> Result<Json> {
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    match pre {
        // SmolLM / SmolLM2 / SmolVLM: each digit alone, then GPT-2's split.
        "smollm" => Ok(json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level]})),
        "gpt2" | "default" => Ok(byte_level),
        other => Err(err(
            g,
            format!(
                "tokenizer.ggml.pre {other:?} is not supported (supported: smollm, gpt2, default)"
            ),
        )),
    }
}

/// The byte-level BPE tokenizer of `tokenizer.ggml.*` (model "gpt2").
pub(crate) fn tokenizer_parts(g: &GgufFile) -> Result<TokenizerParts> {
    match string(g, "tokenizer.ggml.model")? {
        Some("gpt2") => {}
        Some(m) => {
            return Err(err(
                g,
                format!(
                    "tokenizer.ggml.model {m:?} is not supported (supported: gpt2, byte-level BPE)"
                ),
            ))
        }
        None => return Err(err(g, "missing metadata key tokenizer.ggml.model")),
    }
    let tokens = array(g, "tokenizer.ggml.tokens", Value::as_str)?
        .ok_or_else(|| err(g, "missing metadata key tokenizer.ggml.tokens"))?;
    let types = array(g, "tokenizer.ggml.token_type", |v| match *v {
        Value::I32(t) => Some(t as i64),
        ref o => o.as_u64().map(|t| t as i64),
    })?;
    if let Some(t) = &types {
        if t.len() != tokens.len() {
            return Err(err(
                g,
                format!(
                    "tokenizer.ggml.token_type has {} entries for {} tokens",
                    t.len(),
                    tokens.len()
                ),
            ));
        }
    }
    let merges = array(g, "tokenizer.ggml.merges", Value::as_str)?.unwrap_or_default();
    let mut vocab = Map::new();
    let mut added = Vec::new();
    for (id, &t) in tokens.iter().enumerate() {
        if vocab.insert(t.to_string(), json!(id)).is_some() {
            return Err(err(
                g,
                format!("tokenizer.ggml.tokens has {t:?} twice (second at id {id})"),
            ));
        }
        let ty = types.as_ref().map_or(1, |v| v[id]);
        if ty == CONTROL || ty == USER_DEFINED {
            added.push(
                json!({"id": id, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": ty == CONTROL}),
            );
        }
    }
    let merges: Vec<Json> = merges
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.split_once(' ')
                .map(|(a, b)| json!([a, b]))
                .ok_or_else(|| {
                    err(
                        g,
                        format!("tokenizer.ggml.merges[{i}] {m:?} is not two tokens"),
                    )
                })
        })
        .collect::<Result<_>>()?;
    let pre = pre_tokenizer(g, string(g, "tokenizer.ggml.pre")?.unwrap_or("default"))?;
    let name_of = |key: &str| -> Result<Option<String>> {
        match int(g, key)? {
            None => Ok(None),
            Some(id) => tokens
                .get(id as usize)
                .map(|t| Some(t.to_string()))
                .ok_or_else(|| {
                    err(
                        g,
                        format!("{key} {id} is outside the {} tokens", tokens.len()),
                    )
                }),
        }
    };
    let mut special = Vec::new();
    for (key, name) in [
        ("bos", "bos_token"),
        ("eos", "eos_token"),
        ("unknown", "unk_token"),
        ("padding", "pad_token"),
    ] {
        if let Some(t) = name_of(&format!("tokenizer.ggml.{key}_token_id"))? {
            special.push((name.to_string(), t));
        }
    }
    let post = match (
        g.get("tokenizer.ggml.add_bos_token"),
        special.iter().find(|s| s.0 == "bos_token"),
    ) {
        (Some(Value::Bool(true)), Some((_, bos))) => {
            let id = vocab[bos.as_str()].clone();
            json!({"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {bos.as_str(): {"id": bos, "ids": [id], "tokens": [bos]}}})
        }
        _ => Json::Null,
    };
    let json = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre,
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges},
    });
    Ok(TokenizerParts {
        json,
        template: string(g, "tokenizer.chat_template")?.map(str::to_string),
        special,
    })
}

#[cfg(test)]
#[path = "gguf_llama_tests.rs"]
mod tests;
