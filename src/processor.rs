//! Image input as `Idefics3ImageProcessor` (PIL backend) and prompt expansion as
//! `Idefics3Processor` (transformers' processing_idefics3.py / image_processing_idefics3.py).

use crate::config::ImageProcessorConfig;
use crate::error::{Error, Result};
use crate::resize::resize_rgb;

/// An 8-bit RGB image, rows packed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// width × height × 3 bytes, row-major.
    pub data: Vec<u8>,
    /// The source's colour mode when it was not plain RGB and was converted (alpha composited
    /// onto white, gray replicated); a model whose processor has `do_convert_rgb: false`
    /// refuses such an image, as transformers would not convert it.
    pub(crate) converted_from: Option<&'static str>,
}

/// Pixel layout of caller-supplied raw pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    /// 3 bytes per pixel.
    Rgb8,
    /// 4 bytes per pixel; alpha is composited onto white.
    Rgba8,
}

/// Pillow's `alpha_composite` of one RGBA pixel over opaque white (AlphaComposite.c with an
/// opaque destination; 7 extra bits of precision, division by 255 by shifts).
fn over_white(c: u8, a: u8) -> u8 {
    if a == 0 {
        return 255;
    }
    const P: u32 = 7;
    let a = a as u32;
    let blend = 255 * (255 - a);
    let outa255 = a * 255 + blend;
    let coef1 = a * 255 * 255 * (1 << P) / outa255;
    let coef2 = 255 * (1 << P) - coef1;
    let t = c as u32 * coef1 + 255 * coef2 + (0x80 << P);
    ((((t >> 8) + t) >> 8) >> P) as u8
}

impl RgbImage {
    /// From raw pixels with a row stride in bytes; alpha is composited onto white as the
    /// processor's `convert_to_rgb` does.
    pub fn from_pixels(
        pixels: &[u8],
        width: usize,
        height: usize,
        stride: usize,
        format: PixelFormat,
    ) -> Result<RgbImage> {
        let ch = match format {
            PixelFormat::Rgb8 => 3,
            PixelFormat::Rgba8 => 4,
        };
        if width == 0 || height == 0 {
            return Err(Error::image(format!(
                "image size {width}x{height} is empty"
            )));
        }
        if width > 1 << 15 || height > 1 << 15 {
            return Err(Error::image(format!(
                "image size {width}x{height} is too large (max 32768 per side)"
            )));
        }
        if stride < width * ch {
            return Err(Error::invalid(format!(
                "stride {stride} is smaller than width x channels ({width} x {ch})"
            )));
        }
        let need = stride * (height - 1) + width * ch;
        if pixels.len() < need {
            return Err(Error::invalid(format!(
                "pixel buffer has {} bytes, {width}x{height} with stride {stride} needs {need}",
                pixels.len()
            )));
        }
        let mut data = Vec::with_capacity(width * height * 3);
        for y in 0..height {
            let row = &pixels[y * stride..y * stride + width * ch];
            match format {
                PixelFormat::Rgb8 => data.extend_from_slice(row),
                PixelFormat::Rgba8 => {
                    for p in row.chunks_exact(4) {
                        data.extend([
                            over_white(p[0], p[3]),
                            over_white(p[1], p[3]),
                            over_white(p[2], p[3]),
                        ]);
                    }
                }
            }
        }
        Ok(RgbImage {
            width,
            height,
            data,
            converted_from: (format == PixelFormat::Rgba8).then_some("RGBA"),
        })
    }

    fn resized(&self, w: usize, h: usize) -> RgbImage {
        RgbImage {
            width: w,
            height: h,
            data: resize_rgb(&self.data, self.width, self.height, w, h),
            converted_from: self.converted_from,
        }
    }

    fn crop(&self, x0: usize, y0: usize, w: usize, h: usize) -> RgbImage {
        let mut data = Vec::with_capacity(w * h * 3);
        for y in y0..y0 + h {
            data.extend_from_slice(
                &self.data[(y * self.width + x0) * 3..(y * self.width + x0 + w) * 3],
            );
        }
        RgbImage {
            width: w,
            height: h,
            data,
            converted_from: self.converted_from,
        }
    }
}

/// `_resize_output_size_rescale_to_max_len` then `_resize_output_size_scale_below_upper_bound`
/// (4096): returns (width, height).
pub fn longest_edge_size(w: usize, h: usize, longest: usize) -> (usize, usize) {
    let aspect = w as f64 / h as f64;
    let (mut w2, mut h2);
    if w >= h {
        w2 = longest;
        h2 = (w2 as f64 / aspect) as usize;
        if h2 % 2 != 0 {
            h2 += 1;
        }
    } else {
        h2 = longest;
        w2 = (h2 as f64 * aspect) as usize;
        if w2 % 2 != 0 {
            w2 += 1;
        }
    }
    h2 = h2.max(1);
    w2 = w2.max(1);
    const MAX: usize = 4096;
    let aspect = w2 as f64 / h2 as f64;
    if w2 >= h2 && w2 > MAX {
        w2 = MAX;
        h2 = (w2 as f64 / aspect) as usize;
    } else if h2 > w2 && h2 > MAX {
        h2 = MAX;
        w2 = (h2 as f64 * aspect) as usize;
    }
    (w2.max(1), h2.max(1))
}

/// `resize_for_vision_encoder`: both sides up to multiples of the tile; returns (width, height).
pub fn tile_multiple_size(w: usize, h: usize, tile: usize) -> (usize, usize) {
    let aspect = w as f64 / h as f64;
    let up = |v: usize| v.div_ceil(tile) * tile;
    if w >= h {
        let w2 = up(w);
        let h2 = up((w2 as f64 / aspect) as usize);
        (w2, h2)
    } else {
        let h2 = up(h);
        let w2 = up((h2 as f64 * aspect) as usize);
        (w2, h2)
    }
}

/// One image turned into tiles: `rows`×`cols` row-major crops (none when rows = cols = 0)
/// followed by the global image, each tile×tile RGB.
pub struct ImageTiles {
    pub rows: usize,
    pub cols: usize,
    pub tiles: Vec<RgbImage>,
}

pub fn make_tiles(img: &RgbImage, cfg: &ImageProcessorConfig, split: bool) -> ImageTiles {
    let t = cfg.tile_size;
    let mut img = img.clone();
    if cfg.do_resize {
        let (w, h) = longest_edge_size(img.width, img.height, cfg.longest_edge);
        img = img.resized(w, h);
    }
    if !split {
        return ImageTiles {
            rows: 0,
            cols: 0,
            tiles: vec![img.resized(t, t)],
        };
    }
    let (w, h) = tile_multiple_size(img.width, img.height, t);
    let img = img.resized(w, h);
    if h > t || w > t {
        // split_image
        let (nh, nw) = (h.div_ceil(t), w.div_ceil(t));
        let (oh, ow) = (h.div_ceil(nh), w.div_ceil(nw));
        let mut tiles = Vec::with_capacity(nh * nw + 1);
        for r in 0..nh {
            for c in 0..nw {
                let (x0, y0) = (c * ow, r * oh);
                let (x1, y1) = ((x0 + ow).min(w), (y0 + oh).min(h));
                tiles.push(img.crop(x0, y0, x1 - x0, y1 - y0));
            }
        }
        tiles.push(img.resized(t, t));
        ImageTiles {
            rows: nh,
            cols: nw,
            tiles,
        }
    } else {
        ImageTiles {
            rows: 0,
            cols: 0,
            tiles: vec![img],
        }
    }
}

/// Rescale and normalise one tile into [3, t, t] f32 (channels first), in the processor's
/// precision: f32(f64(u8)·factor), then (x − mean)/std in f32.
pub fn tile_to_tensor(tile: &RgbImage, cfg: &ImageProcessorConfig, out: &mut Vec<f32>) {
    let plane = tile.width * tile.height;
    let base = out.len();
    out.resize(base + 3 * plane, 0.0);
    for (i, px) in tile.data.chunks_exact(3).enumerate() {
        for ch in 0..3 {
            let mut v = if cfg.do_rescale {
                (px[ch] as f64 * cfg.rescale_factor) as f32
            } else {
                px[ch] as f32
            };
            if cfg.do_normalize {
                v = (v - cfg.image_mean[ch]) / cfg.image_std[ch];
            }
            out[base + ch * plane + i] = v;
        }
    }
}

/// The special strings the prompt expansion uses.
pub struct ImageMarkup<'a> {
    pub fake: &'a str,
    pub image: &'a str,
    pub global: &'a str,
    pub seq_len: usize,
}

/// `_prompt_split_image` / `_prompt_single_image`.
pub fn image_prompt(rows: usize, cols: usize, m: &ImageMarkup) -> String {
    let run = m.image.repeat(m.seq_len);
    let mut s = String::new();
    if rows == 0 && cols == 0 {
        s.push_str(m.fake);
        s.push_str(m.global);
        s.push_str(&run);
        s.push_str(m.fake);
        return s;
    }
    for r in 0..rows {
        for c in 0..cols {
            s.push_str(&format!("{}<row_{}_col_{}>{}", m.fake, r + 1, c + 1, run));
        }
        s.push('\n');
    }
    s.push('\n');
    s.push_str(m.fake);
    s.push_str(m.global);
    s.push_str(&run);
    s.push_str(m.fake);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_matches_known_values() {
        assert_eq!(over_white(0, 255), 0);
        assert_eq!(over_white(200, 255), 200);
        assert_eq!(over_white(0, 0), 255);
        assert_eq!(over_white(0, 128), 127);
    }

    #[test]
    fn sizes_follow_the_processor() {
        assert_eq!(longest_edge_size(200, 90, 512), (512, 230));
        assert_eq!(longest_edge_size(70, 150, 512), (238, 512));
        assert_eq!(longest_edge_size(20, 13, 528), (528, 344));
        assert_eq!(tile_multiple_size(512, 230, 128), (512, 256));
    }

    #[test]
    fn split_prompt_layout() {
        let m = ImageMarkup {
            fake: "<f>",
            image: "<i>",
            global: "<g>",
            seq_len: 2,
        };
        assert_eq!(image_prompt(0, 0, &m), "<f><g><i><i><f>");
        assert_eq!(
            image_prompt(1, 2, &m),
            "<f><row_1_col_1><i><i><f><row_1_col_2><i><i>\n\n<f><g><i><i><f>"
        );
    }
}
