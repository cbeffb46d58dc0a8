// Shared by the targets: the tiny reference model and a small image, loaded once per process.
// Each target uses part of it.
#![allow(dead_code)]
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

pub fn model() -> Arc<smolvlm::Model> {
    static M: OnceLock<Arc<smolvlm::Model>> = OnceLock::new();
    M.get_or_init(|| {
        // Images here are kept small so each input runs in milliseconds.
        smolvlm::set_max_image_pixels(1 << 22);
        Arc::new(smolvlm::Model::load(fixtures().join("models/tiny-256m")).expect("fixture model"))
    })
    .clone()
}

pub fn image() -> smolvlm::RgbImage {
    static I: OnceLock<smolvlm::RgbImage> = OnceLock::new();
    I.get_or_init(|| {
        smolvlm::RgbImage::open(&fixtures().join("images/tiny.png")).expect("fixture image")
    })
    .clone()
}
