//! `preprocessor_config.json` / `processor_config.json`: the image processor's settings.

use super::fields::{read_json_opt, Fields};
use super::VisionConfig;
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `preprocessor_config.json` (Idefics3ImageProcessor) fields that change the pixels.
#[derive(Debug, Clone)]
pub(crate) struct ImageProcessorConfig {
    pub do_convert_rgb: bool,
    pub do_resize: bool,
    /// `size.longest_edge`: every image is first resized so its longest edge equals this.
    pub longest_edge: usize,
    /// `max_image_size.longest_edge`: the tile side.
    pub tile_size: usize,
    pub do_image_splitting: bool,
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    /// `image_seq_len` from processor_config.json, when given.
    pub image_seq_len: Option<usize>,
}
/// Reads the image processor settings: `preprocessor_config.json`, or the `image_processor`
/// section transformers 5 writes into `processor_config.json`.
pub(crate) fn load_image_processor_config(
    dir: &Path,
    vision: &VisionConfig,
) -> Result<ImageProcessorConfig> {
    let pre_path = dir.join("preprocessor_config.json");
    let proc_path = dir.join("processor_config.json");
    let proc = read_json_opt(&proc_path)?;
    let (obj, file): (Value, PathBuf) = match read_json_opt(&pre_path)? {
        Some(v) => (v, pre_path),
        None => match proc.as_ref().and_then(|p| p.get("image_processor")) {
            Some(v) => (v.clone(), proc_path.clone()),
            None => {
                return Err(Error::model(format!(
                    "{}: missing (and {} has no image_processor section)",
                    pre_path.display(),
                    proc_path.display()
                )))
            }
        },
    };
    image_processor_from(
        &obj,
        &file,
        proc.as_ref().map(|p| (p, proc_path.as_path())),
        vision,
    )
}

/// The settings of a `preprocessor_config.json` value `obj` (`file` names it in errors) and
/// an optional `processor_config.json` value, with every check a model directory gets.
pub(crate) fn image_processor_from(
    obj: &Value,
    file: &Path,
    proc: Option<(&Value, &Path)>,
    vision: &VisionConfig,
) -> Result<ImageProcessorConfig> {
    let f = Fields {
        obj,
        file,
        section: "",
    };
    let edge = |key: &str, default: usize| -> Result<usize> {
        match f.get(key) {
            Some(v) => v
                .get("longest_edge")
                .and_then(|x| x.as_u64())
                .filter(|&x| x > 0 && x <= 1 << 16)
                .map(|x| x as usize)
                .ok_or_else(|| f.err(key, "must be {\"longest_edge\": <positive integer>}")),
            None => Ok(default),
        }
    };
    // Idefics3ImageProcessor defaults: size 4*364, max_image_size 364.
    let longest_edge = edge("size", 4 * 364)?;
    let tile_size = edge("max_image_size", 364)?;
    if let Some(r) = f.get("resample") {
        if r.as_u64() != Some(1) {
            return Err(f.err(
                "resample",
                &format!("{r} is not supported (only 1 = LANCZOS)"),
            ));
        }
    }
    let triple = |key: &str| -> Result<[f32; 3]> {
        match f.get(key) {
            None => Ok([0.5; 3]),
            Some(Value::Number(n)) => Ok([n.as_f64().unwrap_or(0.5) as f32; 3]),
            Some(Value::Array(a)) if a.len() == 3 && a.iter().all(|x| x.is_number()) => {
                let g = |i: usize| a[i].as_f64().unwrap_or(0.0) as f32;
                Ok([g(0), g(1), g(2)])
            }
            Some(v) => Err(f.err(key, &format!("must be a number or 3 numbers, found {v}"))),
        }
    };
    let image_std = triple("image_std")?;
    if image_std.contains(&0.0) {
        return Err(f.err("image_std", "must not contain 0"));
    }
    if tile_size < vision.patch_size {
        return Err(f.err("max_image_size", "is smaller than the vision patch size"));
    }
    let image_seq_len = match proc {
        Some((p, proc_path)) => {
            let pf = Fields {
                obj: p,
                file: proc_path,
                section: "",
            };
            match pf.get("image_seq_len") {
                Some(_) => Some(pf.positive("image_seq_len", None)?),
                None => None,
            }
        }
        None => None,
    };
    Ok(ImageProcessorConfig {
        do_convert_rgb: f.bool("do_convert_rgb", true)?,
        do_resize: f.bool("do_resize", true)?,
        longest_edge,
        tile_size,
        do_image_splitting: f.bool("do_image_splitting", true)?,
        do_rescale: f.bool("do_rescale", true)?,
        rescale_factor: f.f64("rescale_factor", 1.0 / 255.0)?,
        do_normalize: f.bool("do_normalize", true)?,
        image_mean: triple("image_mean")?,
        image_std,
        image_seq_len,
    })
}
