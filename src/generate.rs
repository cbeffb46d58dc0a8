//! Orchestration: messages + images → prompt ids and tile embeddings → prefill → decode loop.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::processor::{image_prompt, make_tiles, tile_to_tensor, ImageMarkup, RgbImage};
use crate::sampler::{Sampler, SamplingParams};
use crate::text::KvCache;
use crate::tokenizer::Utf8Stream;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// One part of a chat message.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Text(String),
    /// The next image of the request, in order.
    Image,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: Vec<Part>,
}

impl Message {
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
    #[default]
    ModelDefault,
    On,
    Off,
}

#[derive(Clone, Debug)]
pub struct Request {
    pub messages: Vec<Message>,
    pub images: Vec<RgbImage>,
    pub split: Split,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
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
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub tiles: usize,
    pub encode_ms: f64,
    pub prefill_tokens: usize,
    pub prefill_ms: f64,
    pub decode_tokens: usize,
    pub decode_ms: f64,
    pub total_ms: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// An end-of-sequence token (not included in the output).
    Eos,
    MaxTokens,
    /// The model's max_position_embeddings was reached.
    ContextFull,
    /// The token callback asked to stop.
    Callback,
}

#[derive(Clone, Debug)]
pub struct Output {
    pub prompt_tokens: Vec<u32>,
    pub tokens: Vec<u32>,
    pub text: String,
    pub stop: StopReason,
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

/// Per-thread state: KV cache and statistics. Owns a share of the model.
pub struct Session {
    model: Arc<Model>,
    cache: KvCache,
    pool: Option<rayon::ThreadPool>,
    pub last_stats: Stats,
}

/// Upper bound on `max_tokens`, far above any model's context.
pub const MAX_TOKENS_LIMIT: usize = 1 << 20;

impl Session {
    pub fn new(model: Arc<Model>) -> Session {
        let cache = KvCache::new(&model.config.text);
        Session {
            model,
            cache,
            pool: None,
            last_stats: Stats::default(),
        }
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Runs on `n` threads (0 = rayon's default: all CPUs).
    pub fn set_threads(&mut self, n: usize) -> Result<()> {
        self.pool = if n == 0 {
            None
        } else {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| Error::invalid(format!("cannot start {n} threads: {e}")))?,
            )
        };
        crate::kernels::set_blas_threads(if n == 0 {
            rayon::current_num_threads()
        } else {
            n
        });
        Ok(())
    }

    pub fn generate(&mut self, req: &Request, hooks: Hooks) -> Result<Output> {
        match self.pool.take() {
            Some(pool) => {
                let r = pool.install(|| self.generate_inner(req, hooks));
                self.pool = Some(pool);
                r
            }
            None => self.generate_inner(req, hooks),
        }
    }

    /// Renders and tokenizes the request; returns the prompt ids and the tiles to encode.
    pub fn prepare(&self, req: &Request) -> Result<(Vec<u32>, Vec<f32>, usize)> {
        let m = &self.model;
        let n_image_parts: usize = req
            .messages
            .iter()
            .map(|msg| msg.content.iter().filter(|p| **p == Part::Image).count())
            .sum();
        if req.messages.is_empty() {
            return Err(Error::invalid("the request has no messages"));
        }
        if n_image_parts != req.images.len() {
            return Err(Error::invalid(format!(
                "the messages reference {n_image_parts} image(s) but {} were given",
                req.images.len()
            )));
        }
        let has_text = req.messages.iter().any(|msg| {
            msg.content
                .iter()
                .any(|p| matches!(p, Part::Text(t) if !t.trim().is_empty()))
        });
        if !has_text && req.images.is_empty() {
            return Err(Error::invalid("the prompt is empty"));
        }
        let msgs: Vec<Value> = if m.is_vision() {
            req.messages
                .iter()
                .map(|msg| {
                    let parts: Vec<Value> = msg
                        .content
                        .iter()
                        .map(|p| match p {
                            Part::Text(t) => json!({"type": "text", "text": t}),
                            Part::Image => json!({"type": "image"}),
                        })
                        .collect();
                    json!({"role": msg.role, "content": parts})
                })
                .collect()
        } else {
            if !req.images.is_empty() {
                return Err(Error::invalid(format!(
                    "{} is a text-only model ({}); it cannot take images",
                    m.dir.display(),
                    m.config.model_type
                )));
            }
            req.messages
                .iter()
                .map(|msg| {
                    let text: String = msg
                        .content
                        .iter()
                        .filter_map(|p| match p {
                            Part::Text(t) => Some(t.as_str()),
                            Part::Image => None,
                        })
                        .collect();
                    json!({"role": msg.role, "content": text})
                })
                .collect()
        };
        let rendered = m.tokenizer.render_chat(&Value::Array(msgs), true)?;

        let mut pixels = Vec::new();
        let mut n_tiles = 0;
        let text = match &m.vision {
            None => rendered,
            Some(v) => {
                let found = rendered.matches(v.tokens.image.as_str()).count();
                if found != req.images.len() {
                    return Err(Error::invalid(format!(
                        "the rendered prompt has {found} {} placeholder(s) for {} image(s)",
                        v.tokens.image,
                        req.images.len()
                    )));
                }
                let split = match req.split {
                    Split::ModelDefault => v.processor.do_image_splitting,
                    Split::On => true,
                    Split::Off => false,
                };
                let markup = ImageMarkup {
                    fake: &v.tokens.fake,
                    image: &v.tokens.image,
                    global: &v.tokens.global,
                    seq_len: v.seq_len,
                };
                let mut out = String::with_capacity(rendered.len());
                let mut pieces = rendered.split(v.tokens.image.as_str());
                out.push_str(pieces.next().unwrap_or(""));
                for (img, rest) in req.images.iter().zip(pieces) {
                    let t = make_tiles(img, &v.processor, split);
                    for tile in &t.tiles {
                        tile_to_tensor(tile, &v.processor, &mut pixels);
                    }
                    n_tiles += t.tiles.len();
                    out.push_str(&image_prompt(t.rows, t.cols, &markup));
                    out.push_str(rest);
                }
                out
            }
        };
        let ids = m.tokenizer.encode(&text)?;
        if let Some(v) = &m.vision {
            let n = ids.iter().filter(|&&i| i == v.image_token_id).count();
            if n != n_tiles * v.seq_len {
                return Err(Error::invalid(format!(
                    "the prompt holds {n} image tokens; the images need {} ({} tiles x {}) \
                     (does the prompt text contain the image token itself?)",
                    n_tiles * v.seq_len,
                    n_tiles,
                    v.seq_len
                )));
            }
        }
        Ok((ids, pixels, n_tiles))
    }

    /// Encodes all tiles: (vision encoder output [n_tiles · patches, vision hidden] when
    /// `keep_vision`, else empty; connector output [n_tiles · seq_len, text hidden]).
    pub fn encode_tiles(
        &self,
        pixels: &[f32],
        n_tiles: usize,
        keep_vision: bool,
        keep_going: &mut dyn FnMut() -> bool,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let v = self
            .model
            .vision
            .as_ref()
            .ok_or_else(|| Error::invalid("not a vision model"))?;
        let s = v.encoder.cfg.image_size;
        let per = 3 * s * s;
        if pixels.len() != n_tiles * per {
            return Err(Error::invalid(format!(
                "{} pixel values for {n_tiles} tiles of {per}",
                pixels.len()
            )));
        }
        // A few tiles at a time bounds activation memory; GEMMs stay large enough to be efficient.
        const BATCH: usize = 4;
        let (mut vis, mut feats) = (Vec::new(), Vec::new());
        let mut t = 0;
        while t < n_tiles {
            let n = BATCH.min(n_tiles - t);
            let out = v
                .encoder
                .forward(&pixels[t * per..(t + n) * per], n, keep_going)?;
            feats.extend(
                v.connector
                    .forward(&out, n, v.encoder.cfg.patches_per_side()),
            );
            if keep_vision {
                vis.extend(out);
            }
            t += n;
        }
        Ok((vis, feats))
    }

    /// Everything up to the first token: prompt ids, first-step logits, stats so far.
    fn prefill(
        &mut self,
        req: &Request,
        keep_going: &mut dyn FnMut() -> bool,
    ) -> Result<(Vec<u32>, Vec<f32>, Stats)> {
        if req.max_tokens > MAX_TOKENS_LIMIT {
            return Err(Error::invalid(format!(
                "max_tokens {} is above the limit of {MAX_TOKENS_LIMIT}",
                req.max_tokens
            )));
        }
        req.sampling.validate()?;
        let model = self.model.clone();
        let m = &*model;
        let mut stats = Stats::default();
        let (ids, pixels, n_tiles) = self.prepare(req)?;
        let tc = &m.config.text;
        if ids.len() >= tc.max_position_embeddings {
            return Err(Error::invalid(format!(
                "the prompt is {} tokens; the model's context is {} (max_position_embeddings)",
                ids.len(),
                tc.max_position_embeddings
            )));
        }
        let t_enc = Instant::now();
        let feats = if n_tiles > 0 {
            self.encode_tiles(&pixels, n_tiles, false, keep_going)?.1
        } else {
            Vec::new()
        };
        stats.tiles = n_tiles;
        stats.encode_ms = t_enc.elapsed().as_secs_f64() * 1e3;

        let t_pre = Instant::now();
        let h = tc.hidden_size;
        let mut x = m.text.embed(&ids)?;
        if let Some(v) = &m.vision {
            // inputs_merger: image rows replace the <image> embeddings in order.
            let mut row = 0;
            for (i, &id) in ids.iter().enumerate() {
                if id == v.image_token_id {
                    x[i * h..(i + 1) * h].copy_from_slice(&feats[row * h..(row + 1) * h]);
                    row += 1;
                }
            }
        }
        self.cache.clear();
        let budget = req.max_tokens.min(tc.max_position_embeddings - ids.len());
        self.cache.reserve(ids.len() + budget)?;
        let logits = m
            .text
            .forward(&mut x, ids.len(), &mut self.cache, keep_going)?;
        stats.prefill_tokens = ids.len();
        stats.prefill_ms = t_pre.elapsed().as_secs_f64() * 1e3;
        Ok((ids, logits, stats))
    }

    /// Logits for the first generated token (for parity tests against transformers).
    pub fn first_logits(&mut self, req: &Request) -> Result<Vec<f32>> {
        Ok(self.prefill(req, &mut || true)?.1)
    }

    fn generate_inner(&mut self, req: &Request, mut hooks: Hooks) -> Result<Output> {
        let t_start = Instant::now();
        let model = self.model.clone();
        let m = &*model;
        let tc = &m.config.text;
        let cancel = hooks.cancel;
        let mut keep_going = || !cancel.is_some_and(|c| c());
        let (ids, mut logits, mut stats) = self.prefill(req, &mut keep_going)?;

        let t_dec = Instant::now();
        let mut sampler = Sampler::new(req.sampling.clone());
        let mut history = ids.clone();
        let mut tokens = Vec::new();
        let mut text = String::new();
        let mut utf8 = Utf8Stream::default();
        let mut stop = StopReason::MaxTokens;
        let eos = m.eos_token_ids();
        let mut emit = |piece: String, id: u32, text: &mut String| -> bool {
            let go = match (&mut hooks.on_token, piece.is_empty()) {
                (Some(cb), false) => cb(&piece, id),
                _ => true,
            };
            text.push_str(&piece);
            go
        };
        for step in 0..req.max_tokens {
            if !keep_going() {
                return Err(Error::cancelled());
            }
            let tok = sampler.sample(&mut logits, &history);
            if eos.contains(&tok) {
                stop = StopReason::Eos;
                break;
            }
            tokens.push(tok);
            history.push(tok);
            let piece = utf8.push(m.tokenizer.piece(tok));
            if !emit(piece, tok, &mut text) {
                stop = StopReason::Callback;
                break;
            }
            if step + 1 == req.max_tokens {
                break;
            }
            if self.cache.len + 1 > tc.max_position_embeddings {
                stop = StopReason::ContextFull;
                break;
            }
            let mut e = m.text.embed(&[tok])?;
            logits = m
                .text
                .forward(&mut e, 1, &mut self.cache, &mut keep_going)?;
        }
        let tail = utf8.finish();
        if !tail.is_empty() {
            let last = tokens.last().copied().unwrap_or(0);
            emit(tail, last, &mut text);
        }
        stats.decode_tokens = tokens.len();
        stats.decode_ms = t_dec.elapsed().as_secs_f64() * 1e3;
        stats.total_ms = t_start.elapsed().as_secs_f64() * 1e3;
        self.last_stats = stats.clone();
        Ok(Output {
            prompt_tokens: ids,
            tokens,
            text,
            stop,
            stats,
        })
    }
}
