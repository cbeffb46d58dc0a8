//! What a caller asks for and gets back: messages, images and settings in; tokens, text and
//! statistics out. Plain data.

use crate::error::{Error, Result};
use crate::kernels::Precision;
use crate::processor::RgbImage;
use crate::sampler::SamplingParams;
use serde_json::Value;

/// Upper bound on `max_tokens`, far above any model's context.
pub const MAX_TOKENS_LIMIT: usize = 1 << 20;

/// One part of a chat message.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// Text, verbatim.
    Text(String),
    /// The next image of the request, in order.
    Image,
}

/// One chat message: a role ("system", "user", "assistant") and its parts in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The role as the chat template expects it.
    pub role: String,
    /// Text and image parts, in order.
    pub content: Vec<Part>,
}

impl Message {
    /// A message from a role and its parts.
    pub fn new(role: &str, content: Vec<Part>) -> Message {
        Message {
            role: role.to_string(),
            content,
        }
    }

    /// Parses HF chat messages: `[{"role": ..., "content": "text" | [{"type": "image"}, {"type": "text", "text": ...}]}]`.
    pub fn parse_list(v: &Value) -> Result<Vec<Message>> {
        let list = v
            .as_array()
            .ok_or_else(|| Error::invalid("messages must be a JSON array"))?;
        list.iter()
            .enumerate()
            .map(|(i, m)| {
                let role = m.get("role").and_then(|r| r.as_str()).ok_or_else(|| {
                    Error::invalid(format!("message {i}: missing string \"role\""))
                })?;
                let content = match m.get("content") {
                    Some(Value::String(s)) => vec![Part::Text(s.clone())],
                    Some(Value::Array(parts)) => parts
                        .iter()
                        .map(|p| match p.get("type").and_then(|t| t.as_str()) {
                            Some("image") => Ok(Part::Image),
                            Some("text") => p
                                .get("text")
                                .and_then(|t| t.as_str())
                                .map(|t| Part::Text(t.to_string()))
                                .ok_or_else(|| {
                                    Error::invalid(format!(
                                        "message {i}: text part without \"text\""
                                    ))
                                }),
                            other => Err(Error::invalid(format!(
                                "message {i}: unknown content type {other:?}"
                            ))),
                        })
                        .collect::<Result<Vec<_>>>()?,
                    _ => {
                        return Err(Error::invalid(format!(
                            "message {i}: \"content\" must be a string or a list"
                        )))
                    }
                };
                Ok(Message::new(role, content))
            })
            .collect()
    }
}

/// Image splitting: the model's processor default, or forced on/off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Split {
    /// `do_image_splitting` of the model's preprocessor config.
    #[default]
    ModelDefault,
    /// Always split into tiles plus a global image.
    On,
    /// Never split: one global tile.
    Off,
}

/// What to generate from: a conversation, its images, and the generation settings.
#[derive(Clone, Debug)]
pub struct Request {
    /// The conversation; its image parts take `images` in order.
    pub messages: Vec<Message>,
    /// One image per image part.
    pub images: Vec<RgbImage>,
    /// Image splitting.
    pub split: Split,
    /// At most this many new tokens (0..=[`MAX_TOKENS_LIMIT`]).
    pub max_tokens: usize,
    /// Greedy by default.
    pub sampling: SamplingParams,
    /// Numeric mode of products with bf16 weights ([`Precision::Auto`] by default).
    pub precision: Precision,
    /// Reuse what the session computed for earlier prompts (true by default): positions up to
    /// the first difference from what its KV cache holds, and tiles whose pixels it encoded
    /// recently. false recomputes everything and forgets what the session kept.
    pub prompt_cache: bool,
}

impl Request {
    /// The original engine's shape: optional system prompt, one user turn with the images first.
    pub fn simple(prompt: &str, system_prompt: Option<&str>, images: Vec<RgbImage>) -> Request {
        let mut messages = Vec::new();
        if let Some(s) = system_prompt {
            messages.push(Message::new("system", vec![Part::Text(s.to_string())]));
        }
        let mut user: Vec<Part> = images.iter().map(|_| Part::Image).collect();
        user.push(Part::Text(prompt.to_string()));
        messages.push(Message::new("user", user));
        Request {
            messages,
            images,
            split: Split::ModelDefault,
            max_tokens: 256,
            sampling: SamplingParams::default(),
            precision: Precision::Auto,
            prompt_cache: true,
        }
    }
}

/// Counts and timings of one generate call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Image tiles encoded by this call (tiles found in the session's cache are not).
    pub tiles: usize,
    /// Vision encoder + connector time.
    pub encode_ms: f64,
    /// Prompt positions run through the decoder.
    pub prefill_tokens: usize,
    /// Prompt positions taken from the session's KV cache instead (see
    /// [`Request::prompt_cache`]).
    pub reused_tokens: usize,
    /// Decoder time for the prompt.
    pub prefill_ms: f64,
    /// Tokens generated.
    pub decode_tokens: usize,
    /// Time from the first sampled token to the end.
    pub decode_ms: f64,
    /// The whole call: image preprocessing and tokenization included.
    pub total_ms: f64,
    /// Threads the call ran on (the session's pool).
    pub threads: usize,
    /// The numeric mode the call ran in (`Auto` resolved).
    pub precision: Precision,
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// An end-of-sequence token (not included in the output).
    Eos,
    /// `max_tokens` were generated.
    MaxTokens,
    /// The model's max_position_embeddings was reached.
    ContextFull,
    /// The token callback asked to stop.
    Callback,
}

/// The result of a generate call.
#[derive(Clone, Debug)]
pub struct Output {
    /// The prompt as token ids (image tokens included).
    pub prompt_tokens: Vec<u32>,
    /// The generated ids (an end-of-sequence token is not included).
    pub tokens: Vec<u32>,
    /// The generated text.
    pub text: String,
    /// Why generation ended.
    pub stop: StopReason,
    /// Counts and timings.
    pub stats: Stats,
}

/// Receives each complete UTF-8 piece and the id of the token that completed it; false stops.
pub type TokenHook<'a> = &'a mut (dyn FnMut(&str, u32) -> bool + Send);

/// Hooks a caller can give a generation.
#[derive(Default)]
pub struct Hooks<'a> {
    /// Receives each complete UTF-8 piece and the id of the token that completed it;
    /// false stops generation.
    pub on_token: Option<TokenHook<'a>>,
    /// Polled between tiles, layers and tokens; true cancels (the call returns a Cancelled error).
    pub cancel: Option<&'a (dyn Fn() -> bool + Sync)>,
}
