//! Runtime state belongs to a session: its thread count is its own, even with other sessions
//! running at the same time, and its scratch memory goes away with it.

mod common;
use common::*;
use smolvlm::{Model, Request, RgbImage, Session};
use std::sync::{Arc, Barrier};

fn image_request() -> Request {
    let img = RgbImage::open(&fixtures().join("images/square.png")).unwrap();
    let mut r = Request::simple("What is in the image?", None, vec![img]);
    r.max_tokens = 12;
    r
}

#[test]
fn each_session_runs_on_its_own_thread_count_concurrently() {
    let model = Arc::new(Model::load(fixtures().join("models/tiny-256m")).unwrap());
    let req = image_request();
    let serial = Session::new(model.clone())
        .generate(&req, Default::default())
        .unwrap();
    let counts = [1usize, 3, 2];
    let barrier = Arc::new(Barrier::new(counts.len()));
    let handles: Vec<_> = counts
        .iter()
        .map(|&n| {
            let (model, req, barrier) = (model.clone(), req.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut s = Session::new(model);
                s.set_threads(n).unwrap();
                let mut seen = Vec::new();
                let mut tokens = Vec::new();
                for _ in 0..3 {
                    barrier.wait();
                    let out = s.generate(&req, Default::default()).unwrap();
                    seen.push(out.stats.threads);
                    tokens.push(out.tokens);
                }
                (n, seen, tokens)
            })
        })
        .collect();
    for h in handles {
        let (n, seen, tokens) = h.join().unwrap();
        assert_eq!(
            seen,
            vec![n; 3],
            "a session set to {n} threads ran on {seen:?}"
        );
        for t in tokens {
            assert_eq!(t, serial.tokens, "{n} threads gave other tokens");
        }
    }
}

#[test]
fn changing_threads_takes_effect_on_the_next_call() {
    let model = Arc::new(Model::load(fixtures().join("models/tiny-256m")).unwrap());
    let mut s = Session::new(model);
    let mut r = Request::simple("Tell me a story.", None, vec![]);
    r.max_tokens = 4;
    s.set_threads(2).unwrap();
    assert_eq!(s.generate(&r, Default::default()).unwrap().stats.threads, 2);
    s.set_threads(1).unwrap();
    assert_eq!(s.generate(&r, Default::default()).unwrap().stats.threads, 1);
    assert!(s.set_threads(1 << 20).is_err());
}

#[test]
fn scratch_memory_is_held_by_the_session() {
    let model = Arc::new(Model::load(fixtures().join("models/tiny-256m")).unwrap());
    let mut s = Session::new(model.clone());
    assert_eq!(s.scratch_bytes(), 0, "a new session holds no scratch");
    let first = s.generate(&image_request(), Default::default()).unwrap();
    let held = s.scratch_bytes();
    assert!(held > 0, "the decoder's activations live in the session");
    // Grow-only and reused: 20 more calls add at most what a worker's slot grows to when it
    // happens to take a larger block (work stealing varies), nothing per call.
    for _ in 0..20 {
        let again = s.generate(&image_request(), Default::default()).unwrap();
        assert_eq!(again.tokens, first.tokens);
    }
    let after = s.scratch_bytes();
    assert!(
        after <= held + held / 2,
        "scratch grew from {held} to {after} bytes over 20 calls"
    );
    // Another session on the same model starts from nothing: nothing is shared per thread.
    assert_eq!(Session::new(model).scratch_bytes(), 0);
}
