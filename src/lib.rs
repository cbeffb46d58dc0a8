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

#[cfg(target_os = "macos")]
extern crate accelerate_src;
#[cfg(not(target_os = "macos"))]
extern crate openblas_src;

pub mod config;
pub mod connector;
mod error;
#[allow(non_camel_case_types)]
pub mod ffi;
mod generate;
pub mod kernels;
pub mod log;
mod model;
pub mod processor;
pub mod resize;
pub mod sampler;
pub mod text;
pub mod tokenizer;
pub mod vision;
pub mod weights;

pub use error::{Error, ErrorKind, Result};
pub use generate::{
    Hooks, Message, Output, Part, Request, Session, Split, Stats, StopReason, MAX_TOKENS_LIMIT,
};
pub use model::Model;
pub use processor::{PixelFormat, RgbImage};
pub use sampler::SamplingParams;
