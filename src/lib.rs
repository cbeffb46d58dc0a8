//! smolvlm: CPU inference for SmolVLM (Idefics3) vision-language models and their SmolLM2
//! decoders, exact to HF transformers, with a C ABI.
//!
//! ```no_run
//! use std::sync::Arc;
//! let model = Arc::new(smolvlm::Model::load("SmolVLM-256M-Instruct")?);
//! let mut session = smolvlm::Session::new(model);
//! let image = smolvlm::RgbImage::open("photo.jpg".as_ref())?;
//! let out = session.generate(&smolvlm::Request::simple("Describe this image.", None, vec![image]), Default::default())?;
//! println!("{}", out.text);
//! # Ok::<(), smolvlm::Error>(())
//! ```
//!
//! The Rust API is what this page lists; every other module is internal. The C ABI (`ffi`) is
//! documented in `include/smolvlm.h`.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

#[cfg(any(target_os = "macos", target_os = "ios"))]
extern crate accelerate_src;
#[cfg(not(any(target_os = "macos", target_os = "ios")))]
extern crate openblas_src;

mod buffers;
mod config;
mod connector;
mod decode;
mod error;
#[allow(non_camel_case_types)]
mod ffi;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod gguf_export;
mod gguf_llama;
mod gguf_mmproj;
mod kernels;
mod kv_cache;
mod log;
mod model;
mod processor;
mod prompt;
mod prompt_cache;
mod request;
mod resize;
mod sampler;
mod session;
mod text;
mod tokenizer;
mod vision;
mod weights;

pub use config::{Architecture, ModelConfig, TextConfig, VisionConfig};
pub use decode::{max_image_pixels, set_max_image_pixels, DEFAULT_MAX_IMAGE_PIXELS};
pub use error::{Error, ErrorKind, Result};
pub use gguf_export::{export as export_gguf, ExportSummary, FileType};
pub use kernels::{system_info, Isa, Precision};
pub use model::{LoadOptions, Model};
pub use processor::{PixelFormat, RgbImage};
pub use prompt::Prepared;
pub use request::{
    Hooks, Message, Output, Part, Request, Split, Stats, StopReason, TokenHook, MAX_TOKENS_LIMIT,
};
pub use resize::resize_rgb;
pub use sampler::SamplingParams;
pub use session::Session;
pub use tokenizer::Tokenizer;
pub use weights::quant::QuantType;

/// ggml's block formats as this crate reads and writes them (what `--quantize` and
/// [`LoadOptions::quantize`] use): quantization as ggml's reference functions compute it,
/// dequantization as its `dequantize_row_*`.
pub mod quant {
    pub use crate::weights::quant::{dequantize, quantize, QuantType, QK};
}
