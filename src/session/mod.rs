//! A session: one conversation's state on one model — KV cache, scratch memory, thread pool —
//! and the generate loop (encode tiles → prefill → sample/decode).

use crate::error::{Error, Result};
use crate::kernels::{Exec, Precision, Scratch};
use crate::kv_cache::KvCache;
use crate::model::Model;
use crate::processor::tile_to_tensor;
use crate::prompt::{prepare, prepare_tiles, Prepared, PreparedTiles};
use crate::prompt_cache::{position_keys, PromptCache};
use crate::request::{Hooks, Output, Request, Stats, StopReason, MAX_TOKENS_LIMIT};
use crate::sampler::Sampler;
use crate::text::TextScratch;
use crate::tokenizer::Utf8Stream;
use crate::vision::VisionBuffers;
use std::sync::Arc;
use std::time::Instant;

mod state;

/// Tiles for the vision encoder: normalised already ([tiles, 3, S, S]), or 8-bit, each
/// normalised just before it is encoded (one tile's f32 pixels alive at a time).
#[derive(Clone, Copy)]
enum Pixels<'a> {
    Normalised(&'a [f32]),
    Tiles(&'a [(u64, Option<crate::processor::RgbImage>)]),
}

/// Generation state on a shared model. Everything numeric a call needs lives here, owned by
/// the session and released with it: the KV cache, scratch buffers and a thread pool whose size
/// is this session's alone. Use from one thread at a time (`&mut self`).
pub struct Session {
    model: Arc<Model>,
    cache: KvCache,
    ws: TextScratch,
    scratch: Scratch,
    /// Requested threads (0 = all CPUs) and the pool built for them, on first use.
    threads: usize,
    pool: Option<rayon::ThreadPool>,
    last_stats: Stats,
    prompt_cache: PromptCache,
}

impl Session {
    /// A session on `model`, running on all CPUs until [`Session::set_threads`] says otherwise.
    pub fn new(model: Arc<Model>) -> Session {
        let cache = KvCache::new(&model.config.text);
        Session {
            model,
            cache,
            ws: TextScratch::default(),
            scratch: Scratch::default(),
            threads: 0,
            pool: None,
            last_stats: Stats::default(),
            prompt_cache: PromptCache::default(),
        }
    }

    /// The model this session runs.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Statistics of the last successful [`Session::generate`].
    pub fn last_stats(&self) -> &Stats {
        &self.last_stats
    }

    /// Runs this session on `n` threads (0 = all CPUs). Other sessions are not affected.
    pub fn set_threads(&mut self, n: usize) -> Result<()> {
        if n > 4096 {
            return Err(Error::invalid(format!("{n} threads is absurd")));
        }
        if n != self.threads {
            self.threads = n;
            self.pool = None;
        }
        Ok(())
    }

    /// The number of threads this session's pool runs.
    pub fn threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Bytes of scratch memory this session holds (KV cache excluded; kept image features
    /// included).
    pub fn scratch_bytes(&self) -> usize {
        self.scratch.bytes() + self.ws.bytes() + self.prompt_cache.bytes()
    }

    /// Forgets the prompt cache: the next generate computes its whole prompt and encodes
    /// every tile.
    pub fn reset_prompt_cache(&mut self) {
        self.prompt_cache.clear();
    }

    /// Runs `f` on this session's pool (built on first use, with one scratch slot per worker).
    fn on_pool<R: Send>(&mut self, f: impl FnOnce(&mut Self) -> R + Send) -> Result<R> {
        if self.pool.is_none() {
            let n = self.threads();
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(|i| format!("smolvlm-{i}"))
                .build()
                .map_err(|e| Error::invalid(format!("cannot start {n} threads: {e}")))?;
            self.scratch = Scratch::new(n);
            self.pool = Some(pool);
        }
        let pool = self.pool.take().expect("pool built above");
        let r = pool.install(|| f(self));
        self.pool = Some(pool);
        Ok(r)
    }

    /// Renders and tokenizes `req`: prompt ids and the pixel tiles to encode.
    pub fn prepare(&self, req: &Request) -> Result<Prepared> {
        prepare(&self.model, req)
    }

    /// Encodes tiles in the f32 mode ([n_tiles, 3, S, S]): (vision encoder output [n_tiles · patches, vision
    /// hidden] when `keep_vision`, else empty; connector output [n_tiles · seq_len, text hidden]).
    pub fn encode_tiles(
        &mut self,
        pixels: &[f32],
        n_tiles: usize,
        keep_vision: bool,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let all: Vec<usize> = (0..n_tiles).collect();
        self.on_pool(|s| {
            let s3 = s
                .model
                .vision
                .as_ref()
                .map_or(0, |v| v.encoder.cfg.image_size);
            if pixels.len() != n_tiles * 3 * s3 * s3 {
                return Err(Error::invalid(format!(
                    "{} pixel values for {n_tiles} tiles of 3x{s3}x{s3}",
                    pixels.len()
                )));
            }
            s.encode_inner(
                Pixels::Normalised(pixels),
                &all,
                keep_vision,
                false,
                &mut || true,
            )
        })?
    }

    /// Encodes the listed tiles of `pixels` ([tiles, 3, S, S]), in that order.
    fn encode_inner(
        &self,
        pixels: Pixels,
        which: &[usize],
        keep_vision: bool,
        bf16: bool,
        keep_going: &mut dyn FnMut() -> bool,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let v = self
            .model
            .vision
            .as_ref()
            .ok_or_else(|| Error::invalid("not a vision model"))?;
        let s = v.encoder.cfg.image_size;
        let per = 3 * s * s;
        let count = match pixels {
            Pixels::Normalised(p) => p.len() / per,
            Pixels::Tiles(t) => t.len(),
        };
        if which.iter().any(|&t| t >= count) {
            return Err(Error::invalid("a tile index past the pixels"));
        }
        let ex = Exec {
            isa: self.model.isa,
            bf16,
            int8: false,
            scratch: &self.scratch,
        };
        // One tile at a time: its activations stay in L2 while every weight block passes over
        // them, which beat batches of 4 (13 tiles, 256M shapes: bf16 7.3 → 6.4 s, f32 14.9 →
        // 13.8 s), and activation memory stays that of one tile.
        let (mut vis, mut feats) = (Vec::new(), Vec::new());
        let mut bufs = VisionBuffers::default();
        let mut one = Vec::new();
        for &t in which {
            let px = match pixels {
                Pixels::Normalised(p) => &p[t * per..(t + 1) * per],
                Pixels::Tiles(tiles) => {
                    let tile = tiles[t].1.as_ref().ok_or_else(|| {
                        Error::invalid("a tile to encode was not prepared (its features were expected in the cache)")
                    })?;
                    one.clear();
                    tile_to_tensor(tile, &v.processor, &mut one);
                    if one.len() != per {
                        return Err(Error::invalid("a tile of the wrong size"));
                    }
                    &one[..]
                }
            };
            let out = v.encoder.forward(ex, px, 1, keep_going, &mut bufs)?;
            feats.extend(
                v.connector
                    .forward(ex, out, 1, v.encoder.cfg.patches_per_side()),
            );
            if keep_vision {
                vis.extend_from_slice(out);
            }
        }
        Ok((vis, feats))
    }

    /// Everything up to the first token: prompt ids and stats so far; the first-step logits
    /// are left in `self.ws.logits`.
    fn prefill(
        &mut self,
        req: &Request,
        keep_going: &mut dyn FnMut() -> bool,
    ) -> Result<(Vec<u32>, Stats)> {
        if req.max_tokens > MAX_TOKENS_LIMIT {
            return Err(Error::invalid(format!(
                "max_tokens {} is above the limit of {MAX_TOKENS_LIMIT}",
                req.max_tokens
            )));
        }
        req.sampling.validate()?;
        let model = self.model.clone();
        let m = &*model;
        let mut stats = Stats {
            precision: m.precision(req.precision),
            ..Stats::default()
        };
        let bf16 = m.bf16_products(stats.precision);
        let cache = req.prompt_cache.then_some(&mut self.prompt_cache);
        let PreparedTiles { ids, tiles } = prepare_tiles(m, req, cache)?;
        let n_tiles = tiles.len();
        let tc = &m.config.text;
        if ids.len() >= tc.max_position_embeddings {
            return Err(Error::invalid(format!(
                "the prompt is {} tokens; the model's context is {} (max_position_embeddings)",
                ids.len(),
                tc.max_position_embeddings
            )));
        }
        // What the KV cache already holds of this prompt (see prompt_cache.rs); nothing is
        // reusable until this call's prefill has succeeded.
        let (image_token, seq_len) = match &m.vision {
            Some(v) => (Some(v.image_token_id), v.seq_len),
            None => (None, 0),
        };
        let hashes: Vec<u64> = tiles.iter().map(|(h, _)| *h).collect();
        let keys = position_keys(&ids, image_token, &hashes, seq_len);
        let reuse = if req.prompt_cache {
            self.prompt_cache.reusable(&keys, stats.precision)
        } else {
            self.prompt_cache.clear();
            0
        };
        self.prompt_cache.keys.clear();

        // Image features from the first tile any position past `reuse` needs: kept ones from
        // the tile cache, the rest encoded.
        let t_enc = Instant::now();
        let first_row = ids[..reuse]
            .iter()
            .filter(|&&id| Some(id) == image_token)
            .count();
        let first_tile = first_row.checked_div(seq_len).unwrap_or(0);
        let missing: Vec<usize> = (first_tile..n_tiles)
            .filter(|&t| self.prompt_cache.tile(hashes[t]).is_none())
            .collect();
        // Only the tiles to encode are normalised to f32, one at a time as they are encoded.
        let fresh = match (&m.vision, missing.is_empty()) {
            (Some(_), false) => {
                self.encode_inner(Pixels::Tiles(&tiles), &missing, false, bf16, keep_going)?
                    .1
            }
            _ => Vec::new(),
        };
        drop(tiles);
        let tile_len = fresh.len() / missing.len().max(1);
        let mut fresh = fresh.chunks_exact(tile_len.max(1)).map(<[f32]>::to_vec);
        // Tiles first_tile.., in order: fresh ones as encoded, the others from the cache.
        let tiles: Vec<Vec<f32>> = (first_tile..n_tiles)
            .map(|t| match self.prompt_cache.tile(hashes[t]) {
                Some(f) if !missing.contains(&t) => f.to_vec(),
                _ => fresh.next().unwrap_or_default(),
            })
            .collect();
        stats.tiles = missing.len();
        stats.encode_ms = t_enc.elapsed().as_secs_f64() * 1e3;

        let t_pre = Instant::now();
        let h = tc.hidden_size;
        let rows = ids.len() - reuse;
        m.text.embed(&ids[reuse..], &mut self.ws.x)?;
        // inputs_merger: image rows replace the <image> embeddings in order.
        let mut row = first_row;
        for (i, &id) in ids[reuse..].iter().enumerate() {
            if Some(id) == image_token {
                let feats = &tiles[row / seq_len - first_tile];
                let r = row % seq_len;
                self.ws.x[i * h..(i + 1) * h].copy_from_slice(&feats[r * h..(r + 1) * h]);
                row += 1;
            }
        }
        for (feats, t) in tiles.into_iter().zip(first_tile..n_tiles) {
            if missing.contains(&t) {
                self.prompt_cache.keep_tile(hashes[t], feats);
            }
        }
        self.cache.set_bf16(stats.precision == Precision::Bf16);
        self.cache.len = reuse;
        let budget = req.max_tokens.min(tc.max_position_embeddings - ids.len());
        self.cache.reserve(ids.len() + budget)?;
        let ex = Exec {
            isa: m.isa,
            bf16: m.bf16_products(stats.precision),
            int8: stats.precision == Precision::Int8,
            scratch: &self.scratch,
        };
        m.text
            .forward(ex, rows, &mut self.cache, &mut self.ws, keep_going)?;
        self.prompt_cache.keys = keys;
        self.prompt_cache.precision = Some(stats.precision);
        stats.reused_tokens = reuse;
        stats.prefill_tokens = rows;
        stats.prefill_ms = t_pre.elapsed().as_secs_f64() * 1e3;
        Ok((ids, stats))
    }

    /// Logits for the first generated token (for parity tests against transformers).
    pub fn first_logits(&mut self, req: &Request) -> Result<Vec<f32>> {
        self.on_pool(|s| {
            s.prefill(req, &mut || true)?;
            Ok(s.ws.logits.clone())
        })?
    }

    /// Generates the answer to `req`, streaming pieces to `hooks.on_token`.
    pub fn generate(&mut self, req: &Request, hooks: Hooks) -> Result<Output> {
        let out = self.on_pool(|s| s.generate_inner(req, hooks))?;
        if out.is_err() {
            // The KV cache may hold part of a step: nothing in it is reused.
            self.prompt_cache.keys.clear();
        }
        out
    }

    fn generate_inner(&mut self, req: &Request, mut hooks: Hooks) -> Result<Output> {
        let t_start = Instant::now();
        let model = self.model.clone();
        let m = &*model;
        let tc = &m.config.text;
        let cancel = hooks.cancel;
        let mut keep_going = || !cancel.is_some_and(|c| c());
        let (ids, mut stats) = self.prefill(req, &mut keep_going)?;

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
        let ex = Exec {
            isa: m.isa,
            bf16: m.bf16_products(stats.precision),
            int8: stats.precision == Precision::Int8,
            scratch: &self.scratch,
        };
        for step in 0..req.max_tokens {
            if !keep_going() {
                return Err(Error::cancelled());
            }
            let tok = sampler.sample(&mut self.ws.logits, &history);
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
            m.text.embed(&[tok], &mut self.ws.x)?;
            m.text
                .forward(ex, 1, &mut self.cache, &mut self.ws, &mut keep_going)?;
            self.prompt_cache.keys.push(tok as u64);
        }
        let tail = utf8.finish();
        if !tail.is_empty() {
            let last = tokens.last().copied().unwrap_or(0);
            emit(tail, last, &mut text);
        }
        stats.threads = rayon::current_num_threads();
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
