//! Images for the extended API: from raw pixels, encoded bytes or a file.

use super::types::smolvlm_pixel_format;
use super::{fail, guard, null_arg, opt_str, reset_out, smolvlm_status};
use crate::error::Error;
use crate::{PixelFormat, RgbImage};
use std::ffi::c_char;

/// A decoded image (8-bit RGB), ready to pass to a generate call.
pub struct smolvlm_image {
    pub(crate) img: RgbImage,
}

pub type smolvlm_image_t = smolvlm_image;

/// Stores a new image handle in `*out`, or records the error.
///
/// # Safety
/// `out` is non-NULL and writable.
unsafe fn store_out(
    img: Result<RgbImage, Error>,
    out: *mut *mut smolvlm_image_t,
) -> smolvlm_status {
    match img {
        Ok(img) => {
            // SAFETY: non-NULL and writable per this function's contract.
            unsafe { *out = Box::into_raw(Box::new(smolvlm_image { img })) };
            smolvlm_status::Ok
        }
        Err(e) => fail(e),
    }
}

/// An image from raw pixels: `height` rows of `stride` bytes, each starting with `width` pixels
/// in `format` (a smolvlm_pixel_format). The pixels are copied. Release with smolvlm_image_free.
///
/// # Safety
/// `pixels` points to at least stride·(height−1) + width·channels readable bytes; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_image_from_pixels(
    pixels: *const u8,
    width: u32,
    height: u32,
    stride: usize,
    format: i32,
    out: *mut *mut smolvlm_image_t,
) -> smolvlm_status {
    guard(smolvlm_status::Panic, || {
        // SAFETY: `out` is NULL or writable, per the contract.
        if let Err(s) = unsafe { reset_out(out) } {
            return s;
        }
        if pixels.is_null() {
            return null_arg("pixels");
        }
        let fmt = match format {
            f if f == smolvlm_pixel_format::Rgb8 as i32 => PixelFormat::Rgb8,
            f if f == smolvlm_pixel_format::Rgba8 as i32 => PixelFormat::Rgba8,
            f => return fail(Error::invalid(format!("unknown pixel format {f}"))),
        };
        let ch = if fmt == PixelFormat::Rgb8 { 3 } else { 4 };
        let (w, h) = (width as usize, height as usize);
        if w == 0 || h == 0 {
            return fail(Error::image(format!("image size {w}x{h} is empty")));
        }
        if stride < w * ch {
            return fail(Error::invalid(format!(
                "stride {stride} is smaller than width x channels ({w} x {ch})"
            )));
        }
        let Some(len) = stride
            .checked_mul(h - 1)
            .and_then(|v| v.checked_add(w * ch))
        else {
            return fail(Error::invalid("stride x height overflows"));
        };
        // SAFETY: the caller guarantees `len` readable bytes at `pixels`.
        let data = unsafe { std::slice::from_raw_parts(pixels, len) };
        // SAFETY: `out` was checked for NULL above and is writable per the contract.
        unsafe { store_out(RgbImage::from_pixels(data, w, h, stride, fmt), out) }
    })
}

/// An image decoded from encoded bytes (PNG, JPEG, BMP, PNM, GIF, WebP, TIFF; TGA, which has no
/// signature, only through smolvlm_image_from_file).
///
/// # Safety
/// `data` points to `len` readable bytes; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_image_from_bytes(
    data: *const u8,
    len: usize,
    out: *mut *mut smolvlm_image_t,
) -> smolvlm_status {
    guard(smolvlm_status::Panic, || {
        // SAFETY: `out` is NULL or writable, per the contract.
        if let Err(s) = unsafe { reset_out(out) } {
            return s;
        }
        if data.is_null() {
            return null_arg("data");
        }
        if len == 0 {
            return fail(Error::image("image data is empty (0 bytes)"));
        }
        // SAFETY: the caller guarantees `len` readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(data, len) };
        // SAFETY: `out` was checked for NULL above and is writable per the contract.
        unsafe { store_out(RgbImage::decode(bytes, "image bytes"), out) }
    })
}

/// An image read and decoded from a file.
///
/// # Safety
/// `path` is a NUL-terminated string; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_image_from_file(
    path: *const c_char,
    out: *mut *mut smolvlm_image_t,
) -> smolvlm_status {
    guard(smolvlm_status::Panic, || {
        // SAFETY: `out` is NULL or writable, per the contract.
        if let Err(s) = unsafe { reset_out(out) } {
            return s;
        }
        // SAFETY: per the contract.
        match unsafe { opt_str(path, "path") } {
            // SAFETY: `out` was checked for NULL above and is writable per the contract.
            Ok(Some(p)) => unsafe { store_out(RgbImage::open(p.as_ref()), out) },
            Ok(None) => null_arg("path"),
            Err(e) => fail(e),
        }
    })
}

/// Releases an image. NULL is ignored.
///
/// # Safety
/// `image` is NULL or from a smolvlm_image_* constructor and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn smolvlm_image_free(image: *mut smolvlm_image_t) {
    guard((), || {
        if !image.is_null() {
            // SAFETY: created by Box::into_raw in store_out and not freed before.
            drop(unsafe { Box::from_raw(image) });
        }
    })
}

/// Sets the process-wide limit on the pixel count (width × height) of an image to decode, checked
/// from the file's header before any pixel is decoded, and returns the previous limit. 0 restores
/// the default, SMOLVLM_DEFAULT_MAX_IMAGE_PIXELS (178,956,970: twice Pillow's MAX_IMAGE_PIXELS, the
/// size above which Pillow refuses an image as a decompression bomb). A larger file fails with
/// SMOLVLM_STATUS_BAD_IMAGE. Images from raw pixels are not limited (their caller allocated them).
/// Thread-safe; affects calls that start after it returns.
#[no_mangle]
pub extern "C" fn smolvlm_set_max_image_pixels(max_pixels: u64) -> u64 {
    guard(crate::max_image_pixels(), || {
        crate::set_max_image_pixels(max_pixels)
    })
}
