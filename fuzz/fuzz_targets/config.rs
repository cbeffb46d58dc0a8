#![no_main]
// The configuration files of a model directory: the first byte picks which of the four JSON
// files the rest replaces in a copy of the tiny model's directory.
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

#[path = "common.rs"]
mod common;

const FILES: [&str; 4] = [
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "processor_config.json",
];

fn dir() -> &'static PathBuf {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("smolvlm-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let src = common::fixtures().join("models/tiny-256m");
    for f in FILES {
        std::fs::copy(src.join(f), dir().join(f)).unwrap();
    }
    std::fs::write(dir().join(FILES[pick as usize % FILES.len()]), rest).unwrap();
    let _ = smolvlm::fuzzing::model_config(dir());
});
