#![no_main]
// A conversation as JSON (what --messages and smolvlm_ctx_generate_chat take): parsed, rendered
// with the model's template, tokenized, its image markup laid out (with as many small images as
// it has image entries, up to 4).
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(messages) = smolvlm::Message::parse_list(&v) else {
        return;
    };
    let n_images = messages
        .iter()
        .flat_map(|m| m.content.iter())
        .filter(|p| **p == smolvlm::Part::Image)
        .count();
    if n_images > 4 {
        return;
    }
    let mut req = smolvlm::Request::simple("", None, vec![common::image(); n_images]);
    req.messages = messages;
    let _ = smolvlm::fuzzing::prompt(&common::model(), &req);
});
