//! Conversations: each `--chat` turn equals a one-shot `--messages` run of the whole
//! conversation so far (prompt ids and tokens), and follow-ups reuse the first turn's work.

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

fn cli(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smolvlm"))
        .args(args)
        // The exactness tests pin the f32 mode (auto may pick bf16 here).
        .env("SMOLVLM_PRECISION", "f32")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run smolvlm");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path(rel: &str) -> String {
    fixtures().join(rel).to_string_lossy().into_owned()
}

const QUESTIONS: [&str; 3] = [
    "Describe this image.",
    "What colours do you see?",
    "Is there any text in it?",
];

/// Runs a 3-turn chat and checks every turn against one-shot runs of the conversation so far.
fn chat_equals_one_shot(model: &str, image: &str, split: &str) {
    let (model, image) = (path(model), path(image));
    let base = [
        "-d",
        &model,
        "-i",
        &image,
        split,
        "--max-tokens",
        "12",
        "--json",
    ];
    let mut args = base.to_vec();
    args.push("--chat");
    let (code, out, err) = cli(&args, &format!("{}\n", QUESTIONS.join("\n")));
    assert_eq!(code, 0, "{err}");
    let turns: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per turn"))
        .collect();
    assert_eq!(turns.len(), 3, "{out}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("Inference: ")).count(),
        3,
        "a summary per turn: {err}"
    );

    let mut messages = Vec::new();
    // One directory per test (they run in parallel in one process).
    let tag = model.rsplit('/').next().unwrap_or("model").to_string();
    let dir = std::env::temp_dir().join(format!("smolvlm-chat-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (q, turn)) in QUESTIONS.iter().zip(&turns).enumerate() {
        let content = if i == 0 {
            json!([{"type": "image"}, {"type": "text", "text": q}])
        } else {
            json!([{"type": "text", "text": q}])
        };
        messages.push(json!({"role": "user", "content": content}));
        let file = dir.join(format!("turn{i}.json"));
        std::fs::write(&file, Value::Array(messages.clone()).to_string()).unwrap();
        let file = file.to_string_lossy().into_owned();
        let mut args = base.to_vec();
        args.extend(["--messages", &file]);
        let (code, one, err) = cli(&args, "");
        assert_eq!(code, 0, "{err}");
        let one: Value = serde_json::from_str(one.trim()).unwrap();
        assert_eq!(
            ids(&turn["prompt_tokens"]),
            ids(&one["prompt_tokens"]),
            "turn {}: prompt",
            i + 1
        );
        assert_eq!(
            ids(&turn["tokens"]),
            ids(&one["tokens"]),
            "turn {}: tokens",
            i + 1
        );
        let (s, prompt_len) = (&turn["stats"], ids(&turn["prompt_tokens"]).len());
        let (reused, computed) = (
            s["reused_tokens"].as_u64().unwrap() as usize,
            s["prefill_tokens"].as_u64().unwrap() as usize,
        );
        assert_eq!(reused + computed, prompt_len, "turn {}: positions", i + 1);
        if i == 0 {
            assert_eq!(reused, 0);
            assert!(s["tiles"].as_u64().unwrap() > 0);
        } else {
            assert_eq!(s["tiles"], 0, "turn {} encoded tiles again", i + 1);
            let before = ids(&turns[i - 1]["prompt_tokens"]).len();
            assert!(
                reused >= before,
                "turn {i}: reused {reused} of the previous prompt's {before} positions"
            );
        }
        let reply = turn["text"].as_str().unwrap().trim();
        messages.push(json!({"role": "assistant", "content": [{"type": "text", "text": reply}]}));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn chat_turns_equal_one_shot_runs_256m_layout() {
    chat_equals_one_shot("models/tiny-256m", "images/square.png", "--split");
}

#[test]
fn chat_turns_equal_one_shot_runs_instruct_layout() {
    chat_equals_one_shot("models/tiny-instruct", "images/wide.jpg", "--no-split");
}

#[test]
fn chat_reset_and_exit() {
    let model = path("models/tiny-256m");
    let args = [
        "-d",
        &model,
        "-i",
        &path("images/square.png"),
        "--no-split",
        "--max-tokens",
        "4",
        "--json",
        "--chat",
    ];
    let (code, out, err) = cli(
        &args,
        "Describe.\n\n/reset\nDescribe.\n/exit\nnever asked\n",
    );
    assert_eq!(code, 0, "{err}");
    let turns: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        turns.len(),
        2,
        "an empty line is no turn; /exit ends: {out}"
    );
    // After /reset the same first turn again: same prompt, nothing reused, tiles encoded again.
    assert_eq!(turns[0]["prompt_tokens"], turns[1]["prompt_tokens"]);
    assert_eq!(turns[0]["tokens"], turns[1]["tokens"]);
    assert_eq!(turns[1]["stats"]["reused_tokens"], 0);
    assert_eq!(turns[1]["stats"]["tiles"], 1);
    // -p has no place in a chat.
    let (code, _, err) = cli(&["-d", &model, "--chat", "-p", "hi"], "");
    assert_eq!(code, 2);
    assert!(err.contains("--chat"), "{err}");
}
