//! tokenizer.json through the `tokenizers` crate, the model's own Jinja chat template through
//! `minijinja` (with transformers' settings), and a streaming detokenizer that only ever hands out
//! complete UTF-8.

use crate::config::{read_bounded, read_json_opt, MAX_CONFIG_BYTES};
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// A model's tokenizer (`tokenizer.json`) with its chat template and the raw bytes of every
/// token, for streaming UTF-8-safe text.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Raw bytes of every token id (byte-level BPE undone; added tokens as their text).
    pieces: Vec<Vec<u8>>,
    template: Option<String>,
    special: Vec<(String, String)>,
}

/// GPT-2's byte ↔ printable-char table, inverted: char → byte.
fn byte_level_inverse() -> std::collections::HashMap<char, u8> {
    let mut map = std::collections::HashMap::new();
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
        let c = if printable {
            b as u32
        } else {
            n += 1;
            255 + n
        };
        map.insert(char::from_u32(c).unwrap_or('\u{fffd}'), b);
    }
    map
}

fn token_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o
            .get("content")
            .and_then(|c| c.as_str())
            .map(str::to_string),
        _ => None,
    }
}

/// Instructions a chat template may run for one prompt (minijinja's fuel).
const TEMPLATE_FUEL: u64 = 20_000_000;

/// The chat template: the processor's (chat_template.jinja / chat_template.json /
/// processor_config.json) before the tokenizer's (tokenizer_config.json).
pub(crate) fn find_template(dir: &Path, tok_cfg: Option<&Value>) -> Result<Option<String>> {
    let jinja = dir.join("chat_template.jinja");
    if jinja.exists() {
        return read_bounded(&jinja, MAX_CONFIG_BYTES).map(Some);
    }
    for name in ["chat_template.json", "processor_config.json"] {
        if let Some(v) = read_json_opt(&dir.join(name))? {
            if let Some(t) = v.get("chat_template").and_then(|t| t.as_str()) {
                return Ok(Some(t.to_string()));
            }
        }
    }
    Ok(match tok_cfg.and_then(|c| c.get("chat_template")) {
        Some(Value::String(s)) => Some(s.clone()),
        // A list of named templates: take "default".
        Some(Value::Array(list)) => list
            .iter()
            .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
            .or(list.first())
            .and_then(|t| t.get("template"))
            .and_then(|t| t.as_str())
            .map(str::to_string),
        _ => None,
    })
}

impl Tokenizer {
    /// Loads `tokenizer.json`, `tokenizer_config.json` and the chat template from a model
    /// directory.
    pub fn load(dir: &Path) -> Result<Tokenizer> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Err(Error::model(format!("{}: missing", path.display())));
        }
        // Real tokenizer.json files are 2-35 MiB.
        let text = read_bounded(&path, 256 << 20)?;
        let inner = <tokenizers::Tokenizer as std::str::FromStr>::from_str(&text)
            .map_err(|e| Error::model(format!("{}: cannot load tokenizer: {e}", path.display())))?;
        let tok_cfg = read_json_opt(&dir.join("tokenizer_config.json"))?;
        let template = find_template(dir, tok_cfg.as_ref())?;

        let mut special = Vec::new();
        if let Some(cfg) = &tok_cfg {
            for key in ["bos_token", "eos_token", "unk_token", "pad_token"] {
                if let Some(t) = cfg.get(key).and_then(token_text) {
                    special.push((key.to_string(), t));
                }
            }
        }
        Ok(Tokenizer::from_parts(inner, template, special))
    }

    /// The tokenizer a GGUF file describes (`tokenizer.ggml.*`, `tokenizer.chat_template`).
    pub(crate) fn from_gguf(g: &crate::weights::gguf::GgufFile) -> Result<Tokenizer> {
        let parts = crate::gguf_llama::tokenizer_parts(g)?;
        let inner = <tokenizers::Tokenizer as std::str::FromStr>::from_str(&parts.json.to_string())
            .map_err(|e| {
                Error::model(format!(
                    "{}: cannot build a tokenizer from tokenizer.ggml.*: {e}",
                    g.path.display()
                ))
            })?;
        Ok(Tokenizer::from_parts(inner, parts.template, parts.special))
    }

    /// A tokenizer with its template and special token texts (`("bos_token", "<s>")`, ...).
    fn from_parts(
        inner: tokenizers::Tokenizer,
        template: Option<String>,
        special: Vec<(String, String)>,
    ) -> Tokenizer {
        let inv = byte_level_inverse();
        let vocab = inner.get_vocab(true);
        let size = vocab.values().map(|&i| i as usize + 1).max().unwrap_or(0);
        let mut pieces = vec![Vec::new(); size];
        let added = inner.get_added_tokens_decoder();
        for (tok, id) in vocab {
            pieces[id as usize] = if added.contains_key(&id) {
                tok.into_bytes()
            } else {
                let mut b = Vec::with_capacity(tok.len());
                for c in tok.chars() {
                    match inv.get(&c) {
                        Some(&x) => b.push(x),
                        None => b.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                b
            };
        }
        Tokenizer {
            inner,
            pieces,
            template,
            special,
        }
    }

    /// The id of a token given as its text, if the vocabulary has it.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.inner.token_to_id(text)
    }

    /// Number of ids (the largest id + 1).
    pub fn vocab_len(&self) -> usize {
        self.pieces.len()
    }

    /// Whether a chat template was found.
    pub fn has_template(&self) -> bool {
        self.template.is_some()
    }

    /// Token ids of `text` as the HF processor's `tokenizer(text)` gives them.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| Error::invalid(format!("cannot tokenize the prompt: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Raw bytes of one token (may be part of a UTF-8 sequence).
    pub fn piece(&self, id: u32) -> &[u8] {
        self.pieces
            .get(id as usize)
            .map(|v| v.as_slice())
            .unwrap_or(&[])
    }

    /// Renders `messages` (HF chat format) with the model's template, as
    /// `apply_chat_template(messages, add_generation_prompt=True, tokenize=False)`.
    pub fn render_chat(&self, messages: &Value, add_generation_prompt: bool) -> Result<String> {
        self.render_with_fuel(messages, add_generation_prompt, TEMPLATE_FUEL)
    }

    /// Renders another template with this tokenizer's special tokens (for the fuzz targets).
    #[cfg(feature = "fuzzing")]
    pub fn render_template(
        &self,
        template: &str,
        messages: &Value,
        add_gen: bool,
    ) -> Result<String> {
        self.render_source(template, messages, add_gen, TEMPLATE_FUEL)
    }

    fn render_with_fuel(
        &self,
        messages: &Value,
        add_generation_prompt: bool,
        fuel: u64,
    ) -> Result<String> {
        let template = self
            .template
            .as_deref()
            .ok_or_else(|| Error::model("the model directory has no chat template"))?;
        self.render_source(template, messages, add_generation_prompt, fuel)
    }

    fn render_source(
        &self,
        template: &str,
        messages: &Value,
        add_generation_prompt: bool,
        fuel: u64,
    ) -> Result<String> {
        let mut env = minijinja::Environment::new();
        // A template that loops without end runs out of fuel (an error) instead of hanging the
        // caller: a 1000-turn chat renders with 1/100 of it (template_fuel_leaves_room_for_long_chats).
        env.set_fuel(Some(fuel));
        // transformers: ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) + loopcontrols.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template("chat", template)
            .map_err(|e| Error::model(format!("chat template does not parse: {e}")))?;
        let mut ctx = serde_json::Map::new();
        ctx.insert("messages".into(), messages.clone());
        ctx.insert(
            "add_generation_prompt".into(),
            Value::Bool(add_generation_prompt),
        );
        for (k, v) in &self.special {
            ctx.insert(k.clone(), Value::String(v.clone()));
        }
        env.get_template("chat")
            .and_then(|t| t.render(minijinja::Value::from_serialize(&ctx)))
            .map_err(|e| Error::invalid(format!("chat template failed: {e}")))
    }
}

/// Accumulates token bytes and releases the longest complete UTF-8 prefix; invalid bytes
/// become U+FFFD.
#[derive(Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let good = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..good]).unwrap_or_default());
                    match e.error_len() {
                        None => {
                            self.pending.drain(..good);
                            return out;
                        }
                        Some(bad) => {
                            out.push('\u{fffd}');
                            self.pending.drain(..good + bad);
                        }
                    }
                }
            }
        }
    }

    /// Whatever is left at the end (an incomplete sequence becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_stream_holds_back_split_sequences() {
        let mut s = Utf8Stream::default();
        let e = "é😀".as_bytes();
        assert_eq!(s.push(&e[..1]), "");
        assert_eq!(s.push(&e[1..3]), "é");
        assert_eq!(s.push(&e[3..5]), "");
        assert_eq!(s.push(&e[5..]), "😀");
        assert_eq!(s.push(b"\xffa"), "\u{fffd}a");
        assert_eq!(s.push(b"\xe2\x82"), "");
        assert_eq!(s.finish(), "\u{fffd}");
    }

    /// The fuel bound leaves room: both reference models' templates render a 1000-turn chat
    /// with a hundredth of it.
    #[test]
    fn template_fuel_leaves_room_for_long_chats() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models");
        let turn = |role: &str, text: &str| serde_json::json!({"role": role, "content": [{"type": "text", "text": text}]});
        let mut msgs = vec![serde_json::json!({"role": "user", "content": [
            {"type": "image"}, {"type": "text", "text": "What is this?"}]})];
        for i in 0..1000 {
            msgs.push(turn("assistant", &format!("Answer {i}.")));
            msgs.push(turn("user", &format!("Question {i}?")));
        }
        for model in ["tiny-256m", "tiny-instruct"] {
            let tok = Tokenizer::load(&root.join(model)).unwrap();
            let text = tok
                .render_with_fuel(&Value::Array(msgs.clone()), true, TEMPLATE_FUEL / 100)
                .unwrap_or_else(|e| panic!("{model}: {e}"));
            assert!(text.contains("Question 999?"), "{model}");
        }
    }
}
