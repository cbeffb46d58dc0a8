//! The `smolvlm` binary: JSON output equals the goldens, the stderr contract, errors exit non-zero.

mod common;
use common::*;
use std::process::Command;

fn smolvlm(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_smolvlm"))
        .args(args)
        // The goldens are transformers in float32 (the f32 mode; auto may pick bf16 here).
        .env("SMOLVLM_PRECISION", "f32")
        .output()
        .expect("run smolvlm");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn golden_case(model: &str, name: &str) -> serde_json::Value {
    let g = read_json(&fixtures().join(format!("goldens/{model}.json")));
    g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
        .clone()
}

fn path(rel: &str) -> String {
    fixtures().join(rel).to_string_lossy().into_owned()
}

#[test]
fn json_output_matches_goldens_for_image_and_text() {
    let model = path("models/tiny-256m");
    let case = golden_case("tiny-256m", "square_split");
    let (code, out, err) = smolvlm(&[
        "-d",
        &model,
        "-i",
        &path("images/square.png"),
        "-p",
        "Describe this image.",
        "--max-tokens",
        "24",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(ids(&j["prompt_tokens"]), ids(&case["input_ids"]));
    assert_eq!(ids(&j["tokens"]), ids(&case["greedy"]["tokens"]));
    assert_eq!(j["stats"]["tiles"], 17);
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("Inference: ")
            && last.contains(" tokens (")
            && last.contains("tok/s, encoding: "),
        "{last}"
    );

    let case = golden_case("tiny-instruct", "text_only");
    let model = path("models/tiny-instruct");
    let (code, out, _) = smolvlm(&[
        "-d",
        &model,
        "-p",
        "Write a short poem about the sea.",
        "--max-tokens",
        "24",
        "--json",
        "--silent",
    ]);
    assert_eq!(code, 0);
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ids(&j["tokens"]), ids(&case["greedy"]["tokens"]));
}

#[test]
fn messages_file_gives_multi_turn_goldens() {
    let case = golden_case("tiny-256m", "multi_turn");
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("multi_turn.json");
    std::fs::write(&file, case["messages"].to_string()).unwrap();
    let (code, out, err) = smolvlm(&[
        "-d",
        &path("models/tiny-256m"),
        "-i",
        &path("images/square.png"),
        "--messages",
        file.to_str().unwrap(),
        "--max-tokens",
        "24",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ids(&j["prompt_tokens"]), ids(&case["input_ids"]));
    assert_eq!(ids(&j["tokens"]), ids(&case["greedy"]["tokens"]));
}

#[test]
fn streamed_text_equals_json_text_and_silent_is_silent() {
    let model = path("models/tiny-256m");
    let args = [
        "-d",
        model.as_str(),
        "-p",
        "Hello there",
        "--max-tokens",
        "12",
    ];
    let (code, streamed, err) = smolvlm(&args);
    assert_eq!(code, 0, "{err}");
    let last = err.trim_end().lines().last().unwrap_or("");
    assert!(
        last.starts_with("Inference: ") && last.contains(" tokens ("),
        "last stderr line: {last:?}"
    );
    let (code, silent, err2) = smolvlm(&[&args[..], &["--silent"]].concat());
    assert_eq!(code, 0);
    assert!(err2.is_empty(), "--silent printed: {err2}");
    let (code, json, _) = smolvlm(&[&args[..], &["--json"]].concat());
    assert_eq!(code, 0);
    let j: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    let text = j["text"].as_str().unwrap();
    assert_eq!(streamed, format!("{text}\n"));
    assert_eq!(silent, format!("{text}\n"));
}

#[test]
fn errors_exit_non_zero_with_a_message() {
    let model = path("models/tiny-256m");
    for (args, needle) in [
        (
            vec!["-d", "/nonexistent/dir", "-p", "hi"],
            "/nonexistent/dir",
        ),
        (
            vec!["-d", model.as_str(), "-i", "/nonexistent.png"],
            "/nonexistent.png",
        ),
        (vec!["-d", model.as_str()], "needs -p"),
        (
            vec!["-d", model.as_str(), "-p", "hi", "--max-tokens", "-3"],
            "--max-tokens",
        ),
        (
            vec!["-d", model.as_str(), "-p", "hi", "--bogus"],
            "Unknown option",
        ),
        (
            vec!["-d", model.as_str(), "-p", "hi", "--top-p", "0"],
            "top_p",
        ),
        (vec!["-p", "hi"], "missing -d <model_dir>"),
    ] {
        let (code, out, err) = smolvlm(&args);
        assert_ne!(code, 0, "{args:?} succeeded");
        assert!(out.is_empty(), "{args:?} printed to stdout: {out}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// `smolvlm quantize`: its usage errors exit 2 with the usage, what cannot be written exits 1
/// naming the problem and leaves no file, a SmolVLM gets its mmproj file beside the text file
/// (what it writes is tested in tests/gguf_export.rs).
#[test]
fn quantize_subcommand_writes_gguf_or_says_why_not() {
    let (code, _, err) = smolvlm(&["quantize", "-d", "x", "-o", "y.gguf", "--type", "q3_k"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--type \"q3_k\"") && err.contains("q4_k_m"),
        "{err}"
    );
    let (code, _, err) = smolvlm(&["quantize", "-d", "x"]);
    assert!(code == 2 && err.contains("required"), "{err}");
    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-quantize.gguf");
    let out_s = out.to_str().unwrap();
    let (code, _, err) = smolvlm(&[
        "quantize",
        "-d",
        "absent-dir",
        "-o",
        out_s,
        "--type",
        "q8_0",
    ]);
    assert!(code == 1 && err.contains("absent-dir"), "{err}");
    assert!(!out.exists());
    // A SmolVLM: the text file and its mmproj beside it, both reported.
    let vision = path("models/tiny-256m");
    let (code, _, err) = smolvlm(&["quantize", "-d", &vision, "-o", out_s, "--type", "q8_0"]);
    let mmproj = out.with_file_name("mmproj-cli-quantize.gguf");
    assert!(code == 0 && err.contains(mmproj.to_str().unwrap()), "{err}");
    assert!(out.exists() && mmproj.exists());
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_file(&mmproj).unwrap();
}
