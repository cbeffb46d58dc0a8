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

/// Writes `bytes` to the copy's `file`; a failure is the harness's, so it names the path and
/// the error (a full disk reads differently from a finding).
fn put(file: &str, bytes: &[u8]) {
    let path = dir().join(file);
    if let Err(e) = std::fs::write(&path, bytes) {
        panic!("fuzz harness: cannot write {}: {e}", path.display());
    }
}

/// The tiny model's files, read once.
fn originals() -> &'static Vec<Vec<u8>> {
    static O: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    O.get_or_init(|| {
        let src = common::fixtures().join("models/tiny-256m");
        FILES
            .iter()
            .map(|f| std::fs::read(src.join(f)).expect("fuzz harness: reading the fixtures"))
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let pick = pick as usize % FILES.len();
    for (i, f) in FILES.iter().enumerate() {
        put(f, if i == pick { rest } else { &originals()[i] });
    }
    let _ = smolvlm::fuzzing::model_config(dir());
});
