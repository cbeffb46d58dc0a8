//! Image files to RGB as the HF processor sees them: Pillow's decoders (libjpeg-turbo for JPEG,
//! bit for bit), its 16-bit and CMYK conversions, and its decompression-bomb limit, checked from
//! the header before any pixel is decoded.

use crate::error::{Error, Result};
use crate::processor::{PixelFormat, RgbImage};
use std::sync::atomic::{AtomicU64, Ordering};

/// Pillow's `Image.MAX_IMAGE_PIXELS`: above it Pillow warns (we log a warning).
pub(crate) const PILLOW_WARN_PIXELS: u64 = 89_478_485;
/// The default limit on an image file's pixel count: 178,956,970, twice Pillow's
/// MAX_IMAGE_PIXELS, above which Pillow refuses an image as a decompression bomb.
pub const DEFAULT_MAX_IMAGE_PIXELS: u64 = 178_956_970;
/// Longest side accepted (from the header, and from raw pixels).
pub(crate) const MAX_IMAGE_SIDE: u64 = 1 << 15;

const _: () = assert!(DEFAULT_MAX_IMAGE_PIXELS == 2 * PILLOW_WARN_PIXELS);

static MAX_PIXELS: AtomicU64 = AtomicU64::new(DEFAULT_MAX_IMAGE_PIXELS);

/// Sets the process-wide limit on an image file's pixel count (width × height, read from its
/// header before decoding; 0 restores the default, [`DEFAULT_MAX_IMAGE_PIXELS`]) and returns the
/// previous limit.
pub fn set_max_image_pixels(max: u64) -> u64 {
    let max = if max == 0 {
        DEFAULT_MAX_IMAGE_PIXELS
    } else {
        max
    };
    MAX_PIXELS.swap(max, Ordering::Relaxed)
}

/// The current limit on an image file's pixel count (see [`set_max_image_pixels`]).
pub fn max_image_pixels() -> u64 {
    MAX_PIXELS.load(Ordering::Relaxed)
}

/// Refuses a file whose header announces more pixels than the limit or a side longer than
/// [`MAX_IMAGE_SIDE`], before anything is allocated for it.
fn check_size(w: u64, h: u64, what: &str) -> Result<()> {
    let (pixels, max) = (w * h, max_image_pixels());
    if w == 0 || h == 0 {
        return Err(Error::image(format!("{what}: image size {w}x{h} is empty")));
    }
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE {
        return Err(Error::image(format!(
            "{what}: image size {w}x{h} is too large (max {MAX_IMAGE_SIDE} per side)"
        )));
    }
    if pixels > max {
        return Err(Error::image(format!(
            "{what}: image size {w}x{h} ({pixels} pixels) exceeds the limit of {max} pixels \
             (a possible decompression bomb; smolvlm_set_max_image_pixels raises it)"
        )));
    }
    if pixels > PILLOW_WARN_PIXELS {
        crate::log::emit(crate::log::Level::Warn, || {
            format!("{what}: {pixels} pixels is more than Pillow accepts without a warning")
        });
    }
    Ok(())
}

impl RgbImage {
    /// Decodes PNG, JPEG, BMP, PNM, TGA, GIF (first frame), WebP or TIFF bytes; `what` names the
    /// source in errors, and its extension identifies formats without a signature (TGA).
    pub fn decode(bytes: &[u8], what: &str) -> Result<RgbImage> {
        #[cfg(feature = "libjpeg-turbo")]
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            return decode_jpeg_turbo(bytes, what);
        }
        let reader = || {
            let r = image::ImageReader::new(std::io::Cursor::new(bytes));
            // Formats without a magic number (TGA) are known by the file extension only.
            match (
                image::guess_format(bytes),
                image::ImageFormat::from_path(what),
            ) {
                (Err(_), Ok(fmt)) => {
                    let mut r = r;
                    r.set_format(fmt);
                    Ok(r)
                }
                _ => r.with_guessed_format(),
            }
            .map_err(|e| Error::image(format!("{what}: cannot read image: {e}")))
        };
        // A WebP whose RIFF size runs past the end is cut off (Pillow refuses it; the WebP
        // decoder would not notice a missing tail).
        if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            let riff = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as u64;
            if (bytes.len() as u64) < riff + 8 {
                return Err(Error::image(format!(
                    "{what}: image file is truncated ({} of {} bytes)",
                    bytes.len(),
                    riff + 8
                )));
            }
        }
        let cant = |e: image::ImageError| Error::image(format!("{what}: cannot decode image: {e}"));
        let (w, h) = reader()?.into_dimensions().map_err(cant)?;
        check_size(w as u64, h as u64, what)?;
        let mut r = reader()?;
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(w);
        limits.max_image_height = Some(h);
        // The largest decoded layout (16-bit RGBA) plus a frame of slack for GIF and WebP.
        limits.max_alloc = Some((w as u64 * h as u64 * 8).saturating_mul(2).max(1 << 20));
        r.limits(limits);
        let img = to_8_bit_as_pillow(r.decode().map_err(cant)?);
        let (w, h) = (img.width() as usize, img.height() as usize);
        let wrap = |e: Error| Error::new(e.kind, format!("{what}: {}", e.message));
        let mode = match img.color() {
            image::ColorType::Rgb8 | image::ColorType::Rgb16 | image::ColorType::Rgb32F => None,
            c if c.has_alpha() => Some("with alpha"),
            c if !c.has_color() => Some("grayscale"),
            _ => Some("not RGB"),
        };
        let mut out = if img.color().has_alpha() {
            let rgba = img.to_rgba8();
            RgbImage::from_pixels(rgba.as_raw(), w, h, w * 4, PixelFormat::Rgba8).map_err(wrap)
        } else {
            let rgb = img.to_rgb8();
            RgbImage::from_pixels(rgb.as_raw(), w, h, w * 3, PixelFormat::Rgb8).map_err(wrap)
        }?;
        out.converted_from = mode;
        Ok(out)
    }

    /// Reads and decodes an image file (see [`RgbImage::decode`]).
    pub fn open(path: &std::path::Path) -> Result<RgbImage> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        RgbImage::decode(&bytes, &path.display().to_string())
    }
}

/// 16-bit samples as Pillow reads them: colour and grey-with-alpha PNGs keep the high byte;
/// plain 16-bit grey opens as mode "I;16", whose conversion to RGB clips at 255.
fn to_8_bit_as_pillow(img: image::DynamicImage) -> image::DynamicImage {
    use image::{DynamicImage as D, ImageBuffer};
    fn high<P: image::Pixel<Subpixel = u16>, Q: image::Pixel<Subpixel = u8>>(
        b: &ImageBuffer<P, Vec<u16>>,
        f: impl Fn(u16) -> u8,
    ) -> Option<ImageBuffer<Q, Vec<u8>>> {
        let data = b.as_raw().iter().map(|&v| f(v)).collect();
        ImageBuffer::from_raw(b.width(), b.height(), data)
    }
    let hi = |v: u16| (v >> 8) as u8;
    // (from_raw cannot fail here: the sample count is the source's.)
    match img {
        D::ImageRgb16(b) => high(&b, hi).map_or(D::ImageRgb16(b), D::ImageRgb8),
        D::ImageRgba16(b) => high(&b, hi).map_or(D::ImageRgba16(b), D::ImageRgba8),
        D::ImageLumaA16(b) => high(&b, hi).map_or(D::ImageLumaA16(b), D::ImageLumaA8),
        D::ImageLuma16(b) => {
            high(&b, |v| v.min(255) as u8).map_or(D::ImageLuma16(b), D::ImageLuma8)
        }
        other => other,
    }
}

/// JPEG through libjpeg-turbo with its defaults (accurate integer IDCT, fancy upsampling):
/// the decoder Pillow uses, so the pixels are the processor's bit for bit.
#[cfg(feature = "libjpeg-turbo")]
fn decode_jpeg_turbo(bytes: &[u8], what: &str) -> Result<RgbImage> {
    let err = |e: turbojpeg::Error| Error::image(format!("{what}: cannot decode JPEG: {e}"));
    let header = turbojpeg::read_header(bytes).map_err(err)?;
    check_size(header.width as u64, header.height as u64, what)?;
    let cmyk = matches!(
        header.colorspace,
        turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK
    );
    let format = match cmyk {
        true => turbojpeg::PixelFormat::CMYK,
        false => turbojpeg::PixelFormat::RGB,
    };
    let img = turbojpeg::decompress(bytes, format).map_err(err)?;
    let rgb;
    let (pixels, pitch) = match cmyk {
        true => {
            rgb = cmyk_to_rgb(
                &img.pixels,
                img.width,
                img.height,
                img.pitch,
                adobe_marker(bytes),
            );
            (&rgb[..], img.width * 3)
        }
        false => (&img.pixels[..], img.pitch),
    };
    let mut out = RgbImage::from_pixels(pixels, img.width, img.height, pitch, PixelFormat::Rgb8)
        .map_err(|e| Error::new(e.kind, format!("{what}: {}", e.message)))?;
    out.converted_from = match header.colorspace {
        turbojpeg::Colorspace::Gray => Some("grayscale"),
        turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK => Some("CMYK"),
        _ => None,
    };
    Ok(out)
}

/// Pillow's CMYK → RGB (Convert.c cmyk2rgb): R = 255 − K − C·(255 − K)/255 with its rounding.
/// Adobe files (an APP14 "Adobe" segment) store inverted values, which Pillow reads as "CMYK;I".
#[cfg(feature = "libjpeg-turbo")]
fn cmyk_to_rgb(px: &[u8], w: usize, h: usize, pitch: usize, inverted: bool) -> Vec<u8> {
    let flip = if inverted { 255 } else { 0 };
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for p in px[y * pitch..y * pitch + w * 4].chunks_exact(4) {
            let nk = 255 - (p[3] ^ flip) as u32;
            for &c in &p[..3] {
                let t = (c ^ flip) as u32 * nk + 128;
                out.push(nk.saturating_sub(((t >> 8) + t) >> 8) as u8);
            }
        }
    }
    out
}

/// Whether a JPEG has an APP14 "Adobe" segment before its first scan.
#[cfg(feature = "libjpeg-turbo")]
fn adobe_marker(jpeg: &[u8]) -> bool {
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let marker = jpeg[i + 1];
        if marker == 0xDA || marker == 0xD9 {
            return false;
        }
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        if marker == 0xEE && jpeg[i + 4..].starts_with(b"Adobe") {
            return true;
        }
        i += 2 + len;
    }
    false
}
