#![no_main]
// A chat template (any text) rendered over a fixed conversation, in the sandbox with the
// model's special tokens and the fuel bound.
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(template) = std::str::from_utf8(data) else {
        return;
    };
    let messages = serde_json::json!([
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A square."}]},
        {"role": "user", "content": "And the colour?"}
    ]);
    let _ = smolvlm::fuzzing::render_template(&common::model(), template, &messages);
});
