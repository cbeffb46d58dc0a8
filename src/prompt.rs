//! Idefics3Processor: messages and images → the prompt text with image markup → token ids,
//! plus the pixel tiles the vision encoder takes.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::processor::{image_prompt, make_tiles, tile_to_tensor, ImageMarkup, RgbImage};
use crate::prompt_cache::{image_key, tile_hash, ImageLayout, PromptCache};
use crate::request::{Part, Request, Split};
use serde_json::{json, Value};

/// A request made ready for the model.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    /// The prompt ids, image tokens included.
    pub ids: Vec<u32>,
    /// Every tile's normalised pixels, [n_tiles, 3, S, S].
    pub pixels: Vec<f32>,
    /// Tiles over all images.
    pub n_tiles: usize,
}

/// A request made ready for the model, its tiles still 8-bit RGB (each becomes [3, S, S] f32
/// through `tile_to_tensor` when it is encoded): each tile's hash ([`tile_hash`]) and pixels,
/// or no pixels where the prompt cache keeps the features of every tile of that image (the
/// image was then not resized and cut again).
pub(crate) struct PreparedTiles {
    pub ids: Vec<u32>,
    pub tiles: Vec<(u64, Option<RgbImage>)>,
}

/// [`prepare_tiles`] with every tile normalised.
pub(crate) fn prepare(m: &Model, req: &Request) -> Result<Prepared> {
    let PreparedTiles { ids, tiles } = prepare_tiles(m, req, None)?;
    let mut pixels = Vec::new();
    if let Some(v) = &m.vision {
        for (_, tile) in &tiles {
            let tile = tile
                .as_ref()
                .ok_or_else(|| Error::invalid("a tile was not prepared"))?;
            tile_to_tensor(tile, &v.processor, &mut pixels);
        }
    }
    Ok(Prepared {
        ids,
        pixels,
        n_tiles: tiles.len(),
    })
}

/// Renders and tokenizes `req` for `m` (Idefics3Processor.__call__): the chat template, each
/// image's tiles and prompt markup, the ids.
/// With a prompt cache, images it keeps every tile of are laid out from its record, and every
/// other image's layout is recorded in it.
pub(crate) fn prepare_tiles(
    m: &Model,
    req: &Request,
    mut cache: Option<&mut PromptCache>,
) -> Result<PreparedTiles> {
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

    let mut tiles = Vec::new();
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
            if !v.processor.do_convert_rgb {
                for (i, img) in req.images.iter().enumerate() {
                    if let Some(mode) = img.converted_from {
                        return Err(Error::image(format!(
                            "image {} is {mode}, and {}'s image processor has \
                             do_convert_rgb: false (transformers would not convert it to RGB)",
                            i + 1,
                            m.dir.display()
                        )));
                    }
                }
            }
            let mut out = String::with_capacity(rendered.len());
            let mut pieces = rendered.split(v.tokens.image.as_str());
            out.push_str(pieces.next().unwrap_or(""));
            for (img, rest) in req.images.iter().zip(pieces) {
                let key = image_key(img, split);
                let kept = cache
                    .as_deref()
                    .and_then(|c| c.layout_if_kept(key))
                    .cloned();
                if let Some(l) = kept {
                    out.push_str(&image_prompt(l.rows, l.cols, &markup));
                    tiles.extend(l.tiles.into_iter().map(|h| (h, None)));
                } else {
                    let t = make_tiles(img, &v.processor, split);
                    let hashes: Vec<u64> = t.tiles.iter().map(tile_hash).collect();
                    out.push_str(&image_prompt(t.rows, t.cols, &markup));
                    if let Some(c) = cache.as_deref_mut() {
                        let (rows, cols) = (t.rows, t.cols);
                        c.keep_layout(
                            key,
                            ImageLayout {
                                rows,
                                cols,
                                tiles: hashes.clone(),
                            },
                        );
                    }
                    tiles.extend(hashes.into_iter().zip(t.tiles.into_iter().map(Some)));
                }
                out.push_str(rest);
            }
            out
        }
    };
    let ids = m.tokenizer.encode(&text)?;
    if let Some(v) = &m.vision {
        let n = ids.iter().filter(|&&i| i == v.image_token_id).count();
        if n != tiles.len() * v.seq_len {
            return Err(Error::invalid(format!(
                "the prompt holds {n} image tokens; the images need {} ({} tiles x {}) \
                 (does the prompt text contain the image token itself?)",
                tiles.len() * v.seq_len,
                tiles.len(),
                v.seq_len
            )));
        }
    }
    Ok(PreparedTiles { ids, tiles })
}
