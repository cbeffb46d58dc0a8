//! Concurrency: sessions sharing one model on several threads give the serial tokens, and a
//! generation cancelled from another thread at any moment ends cleanly (Cancelled or Ok), leaves
//! its session usable with the same answers, and leaks nothing.

mod common;
use common::*;
use smolvlm::{ErrorKind, Hooks, Model, Precision, Request, RgbImage, Session};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn image_request(precision: Precision) -> Request {
    let img = RgbImage::open(&fixtures().join("images/square.png")).unwrap();
    let mut r = Request::simple("What is in the image?", None, vec![img]);
    r.max_tokens = 16;
    r.precision = precision;
    r
}

fn resident_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4
}

#[test]
fn four_sessions_on_four_threads_give_the_serial_tokens() {
    let model = Arc::new(Model::load(fixtures().join("models/tiny-256m")).unwrap());
    for precision in [Precision::F32, Precision::Bf16] {
        let req = image_request(precision);
        let serial = Session::new(model.clone())
            .generate(&req, Default::default())
            .unwrap();
        let barrier = Arc::new(Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (model, req, barrier) = (model.clone(), req.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut s = Session::new(model);
                    s.set_threads(1 + i % 2).unwrap();
                    (0..5)
                        .map(|_| {
                            barrier.wait();
                            s.generate(&req, Default::default()).unwrap().tokens
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for tokens in h.join().unwrap() {
                assert_eq!(
                    tokens, serial.tokens,
                    "{precision:?}: a concurrent session differs"
                );
            }
        }
    }
}

#[test]
fn cancelling_from_another_thread_at_random_points() {
    let model = Arc::new(Model::load(fixtures().join("models/tiny-256m")).unwrap());
    let req = image_request(Precision::F32);
    let mut s = Session::new(model.clone());
    let serial = s.generate(&req, Default::default()).unwrap();
    s.reset_prompt_cache();
    let t0 = Instant::now();
    s.generate(&req, Default::default()).unwrap();
    let run = t0.elapsed();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let (mut cancelled, mut finished, mut rss_after_warmup) = (0, 0, 0);
    for attempt in 0..200 {
        if attempt == 20 {
            rss_after_warmup = resident_kib();
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Anywhere from before the call starts to a little after a whole run.
        let delay = Duration::from_nanos(rng % (run.as_nanos() as u64 * 6 / 5 + 1));
        let stop = Arc::new(AtomicBool::new(false));
        let canceller = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                stop.store(true, Ordering::SeqCst);
            })
        };
        // Alternate a cached prompt (the follow-up path) and a fresh one.
        if attempt % 2 == 0 {
            s.reset_prompt_cache();
        }
        let cancel = || stop.load(Ordering::SeqCst);
        let hooks = Hooks {
            on_token: None,
            cancel: Some(&cancel),
        };
        match s.generate(&req, hooks) {
            Ok(out) => {
                assert_eq!(
                    out.tokens, serial.tokens,
                    "attempt {attempt}: a finished run differs"
                );
                finished += 1;
            }
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::Cancelled, "attempt {attempt}: {e}");
                cancelled += 1;
            }
        }
        canceller.join().unwrap();
        // Whatever was interrupted, the session answers as before.
        if attempt % 10 == 0 {
            let again = s.generate(&req, Default::default()).unwrap();
            assert_eq!(
                again.tokens, serial.tokens,
                "attempt {attempt}: the session changed"
            );
        }
    }
    let growth = resident_kib() as f64 / rss_after_warmup.max(1) as f64;
    println!("cancel: {cancelled} cancelled, {finished} finished; RSS x{growth:.3} over 180 tries");
    assert!(
        cancelled >= 10 && finished >= 3,
        "{cancelled} cancelled, {finished} finished"
    );
    assert!(
        growth < 1.05,
        "resident memory grew x{growth:.3} over 180 cancelled/finished runs"
    );
    drop(s);
    drop(model);
}
