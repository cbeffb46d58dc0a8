//! Entry points for the fuzz targets (`fuzz/`, built with the `fuzzing` feature): every parser
//! and preprocessing step that takes untrusted bytes, callable without the rest of a load.
//! Each returns the library's own `Result`; a panic, a crash or a hang is the finding.

use crate::error::Result;
use crate::weights::SafetensorsStore;
use crate::{Model, Request};
use std::path::Path;

/// Parses `bytes` as a safetensors file and reads every tensor of a supported dtype as f32,
/// through the same checks and views a model load uses. Returns the number of values read.
pub fn safetensors(bytes: &[u8]) -> Result<usize> {
    let store = SafetensorsStore::from_bytes(bytes)?;
    let mut n = 0;
    for (name, shape) in store.shapes() {
        if let Ok(t) = store.get(&name, &shape) {
            // Bounded, so a valid huge tensor cannot exhaust the fuzzer's memory.
            if t.numel() <= 1 << 20 {
                n += t.to_f32_vec().len();
            }
        }
    }
    Ok(n)
}

/// Parses `bytes` as a GGUF file and reads every tensor this crate computes with (up to 2^20
/// values each) as f32, through the checks a load uses. Returns the number of values read.
pub fn gguf(bytes: &[u8]) -> Result<usize> {
    let f = crate::weights::gguf::GgufFile::from_bytes(bytes)?;
    let mut n = 0;
    for (name, info) in &f.tensors {
        let shape: Vec<usize> = info.dims.iter().rev().map(|&d| d as usize).collect();
        if let Ok(t) = f.tensor(name, &shape) {
            if t.numel() <= 1 << 20 {
                n += t.to_f32_vec().len();
            }
        }
    }
    // What a model load makes of the metadata: the configuration and the tokenizer.
    if let Ok((cfg, gen)) = crate::gguf_llama::config_json(&f) {
        let _ = crate::config::model_config_from(&cfg, &f.path, Some(&gen), &f.path);
    }
    if crate::tokenizer::Tokenizer::from_gguf(&f).is_ok() {
        n += 1;
    }
    Ok(n + f.metadata.len())
}

/// Loads the configuration files of the model directory `dir` (config.json,
/// generation_config.json, preprocessor/processor_config.json) as a model load does.
pub fn model_config(dir: &Path) -> Result<()> {
    let cfg = crate::config::load_model_config(dir)?;
    if let Some(v) = &cfg.vision {
        crate::config::load_image_processor_config(dir, v)?;
    }
    Ok(())
}

/// Everything before the model runs: the chat template rendered over `req`'s messages, the
/// prompt tokenized, each image resized, split and normalised. Returns the prompt length.
pub fn prompt(m: &Model, req: &Request) -> Result<usize> {
    Ok(crate::prompt::prepare(m, req)?.ids.len())
}

/// An image file as the processor takes it, with a small processor configuration (longest edge
/// 64, tiles of 32, splitting on; the model's own sizes only make each input slower): decoded,
/// resized, split into tiles plus the global image, each rescaled and normalised. Returns the
/// number of values produced.
pub fn image(bytes: &[u8]) -> Result<usize> {
    let img = crate::RgbImage::decode(bytes, "fuzz.img")?;
    let cfg = crate::config::ImageProcessorConfig {
        do_convert_rgb: true,
        do_resize: true,
        longest_edge: 64,
        tile_size: 32,
        do_image_splitting: true,
        do_rescale: true,
        rescale_factor: 1.0 / 255.0,
        do_normalize: true,
        image_mean: [0.5; 3],
        image_std: [0.5; 3],
        image_seq_len: None,
    };
    let tiles = crate::processor::make_tiles(&img, &cfg, true);
    let mut out = Vec::new();
    for t in &tiles.tiles {
        crate::processor::tile_to_tensor(t, &cfg, &mut out);
    }
    Ok(out.len())
}

/// Renders `template` (a Jinja chat template) over `messages` as the model's template would be,
/// with the same sandbox, fuel and special tokens as `m`'s.
pub fn render_template(m: &Model, template: &str, messages: &serde_json::Value) -> Result<String> {
    m.tokenizer.render_template(template, messages, true)
}
