//! A session's state saved to bytes and restored into another session on the same checkpoint
//! continues exactly as the original does; bad or foreign states are refused, changing nothing.

mod common;
use common::*;
use smolvlm::{Message, Model, Part, Precision, Request, RgbImage, Session};
use std::sync::Arc;

fn turn(messages: &[Message], img: &RgbImage) -> Request {
    let mut r = Request::simple("", None, vec![img.clone()]);
    r.messages = messages.to_vec();
    r.max_tokens = 8;
    // The exactness tests pin the f32 mode.
    r.precision = Precision::F32;
    r
}

fn user(text: &str, image: bool) -> Message {
    let mut parts = if image { vec![Part::Image] } else { vec![] };
    parts.push(Part::Text(text.into()));
    Message::new("user", parts)
}

#[test]
fn restored_state_continues_as_the_original() {
    let model = Arc::new(Model::load(fixtures().join("models/tiny-256m")).unwrap());
    let img = RgbImage::open(&fixtures().join("images/square.png")).unwrap();
    let mut a = Session::new(model.clone());
    let mut msgs = vec![user("What is this?", true)];
    let first = a.generate(&turn(&msgs, &img), Default::default()).unwrap();
    msgs.push(Message::new(
        "assistant",
        vec![Part::Text(first.text.trim().into())],
    ));
    msgs.push(user("What colours are in it?", false));
    let second = a.generate(&turn(&msgs, &img), Default::default()).unwrap();
    let state = a.save_state();
    assert!(state.len() > 1000, "{} bytes", state.len());

    msgs.push(Message::new(
        "assistant",
        vec![Part::Text(second.text.trim().into())],
    ));
    msgs.push(user("Is there any text?", false));
    let mut b = Session::new(model.clone());
    b.load_state(&state).unwrap();
    let in_memory = a.generate(&turn(&msgs, &img), Default::default()).unwrap();
    let restored = b.generate(&turn(&msgs, &img), Default::default()).unwrap();
    assert_eq!(restored.tokens, in_memory.tokens);
    assert_eq!(restored.prompt_tokens, in_memory.prompt_tokens);
    assert!(
        restored.stats.reused_tokens >= second.prompt_tokens.len(),
        "restored session reused {} positions",
        restored.stats.reused_tokens
    );
    assert_eq!(restored.stats.reused_tokens, in_memory.stats.reused_tokens);
    // The restored session needs the image only for positions it computes: none here.
    assert_eq!(restored.stats.tiles, 0);

    // Refused, and the session is unchanged: truncated, not a state, another version, another
    // checkpoint (the instruct layout).
    let before = b.save_state();
    let mut wrong_version = state.clone();
    wrong_version[8] = 9;
    let other = Arc::new(Model::load(fixtures().join("models/tiny-instruct")).unwrap());
    let foreign = {
        let mut s = Session::new(other.clone());
        let r = Request::simple("Tell me a story.", None, vec![]);
        s.generate(&r, Default::default()).unwrap();
        s.save_state()
    };
    for (bytes, says) in [
        (&state[..state.len() - 1], "bytes, expected"),
        (
            &b"not a state at all, really"[..],
            "not a smolvlm session state",
        ),
        (&wrong_version[..], "version 9"),
        (&foreign[..], "another model"),
    ] {
        let e = b.load_state(bytes).unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
        assert_eq!(
            b.save_state(),
            before,
            "a refused state changed the session"
        );
    }
    // An empty session saves an empty state, which restores to nothing reusable.
    let empty = Session::new(model).save_state();
    b.load_state(&empty).unwrap();
    let again = b.generate(&turn(&msgs, &img), Default::default()).unwrap();
    assert_eq!(again.stats.reused_tokens, 0);
    assert_eq!(again.tokens, in_memory.tokens);
}

/// A state saved in the int8 mode restores as the int8 mode: the restored session reuses the
/// saved positions (a prompt cache is reused only in the mode that computed it) and continues
/// as the original.
#[test]
fn an_int8_state_restores_in_the_int8_mode() {
    let opts = smolvlm::LoadOptions {
        isa: None,
        quantize: Some(smolvlm::QuantType::Q8_0),
    };
    let dir = fixtures().join("models/tiny-256m");
    let model = Arc::new(Model::load_with(&dir, opts, &mut |_| true).unwrap());
    assert_eq!(model.quantization(), Some(smolvlm::QuantType::Q8_0));
    let ask = |msgs: &[Message]| {
        let mut r = Request::simple("", None, vec![]);
        r.messages = msgs.to_vec();
        r.max_tokens = 6;
        r.precision = Precision::Int8;
        r
    };
    let mut a = Session::new(model.clone());
    let mut msgs = vec![user("Tell me a story.", false)];
    let first = a.generate(&ask(&msgs), Default::default()).unwrap();
    assert_eq!(first.stats.precision, Precision::Int8);
    let state = a.save_state();
    msgs.push(Message::new(
        "assistant",
        vec![Part::Text(first.text.trim().into())],
    ));
    msgs.push(user("And then?", false));
    let mut b = Session::new(model);
    b.load_state(&state).unwrap();
    let in_memory = a.generate(&ask(&msgs), Default::default()).unwrap();
    let restored = b.generate(&ask(&msgs), Default::default()).unwrap();
    assert_eq!(restored.tokens, in_memory.tokens);
    assert!(restored.stats.reused_tokens > 0, "nothing reused");
    assert_eq!(restored.stats.reused_tokens, in_memory.stats.reused_tokens);
}
