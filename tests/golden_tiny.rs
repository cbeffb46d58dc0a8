//! Parity with HF transformers on the tiny random-weight SmolVLM models
//! (goldens written by tests/reference/make_tiny.py).

mod common;
use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use smolvlm::{Model, Session};
use std::sync::Arc;

/// Max |Δ| allowed on sampled activations and logits (f32 compute, different summation order;
/// the measured worst case is ~5e-5).
const TOL: f64 = 1e-3;
/// Greedy steps whose golden top-1/top-2 margin is below this are near-ties (see compare_greedy).
const TIE: f64 = 2e-4;

fn check_model(name: &str) {
    let golden = read_json(&fixtures().join(format!("goldens/{name}.json")));
    let model = Arc::new(Model::load(fixtures().join("models").join(name)).expect("load"));
    let mut session = Session::new(model.clone());
    let cases = golden["cases"].as_array().expect("cases");
    assert!(
        cases.len() >= 12,
        "{name}: only {} golden cases",
        cases.len()
    );
    let mut failures = Vec::new();
    let mut max_logit = 0.0f64;
    let mut exact = 0;
    for case in cases {
        let cname = case["name"].as_str().unwrap();
        let g = &case["greedy"];
        let req = request_for(case, g["max_new_tokens"].as_u64().unwrap() as usize);
        let mut fail = |m: String| failures.push(format!("{name}/{cname}: {m}"));

        let (ids, pixels, n_tiles) = session.prepare(&req).expect("prepare");
        if ids != common::ids(&case["input_ids"]) {
            fail(format!(
                "input_ids differ (ours {} tokens, golden {})",
                ids.len(),
                case["input_ids"].as_array().unwrap().len()
            ));
            continue;
        }
        if let Some(pv) = case["pixel_values"].as_object() {
            let shape = common::ids(&pv["shape"]);
            assert_eq!(shape[0] as usize, n_tiles, "{cname}: tile count");
            let per = pixels.len() / n_tiles.max(1);
            for (t, want) in pv["tile_u8_sha256"].as_array().unwrap().iter().enumerate() {
                let u8s: Vec<u8> = pixels[t * per..(t + 1) * per]
                    .iter()
                    .map(|&x| ((x as f64 + 1.0) * 127.5).round() as u8)
                    .collect();
                let got = format!("{:x}", Sha256::digest(&u8s));
                if got != want.as_str().unwrap() {
                    fail(format!("tile {t} pixels differ"));
                }
            }
            let (vis, conn) = session
                .encode_tiles(&pixels, n_tiles, true, &mut || true)
                .expect("encode");
            let dv = sample_diff(&vis, &case["vision_output"]["samples"]);
            let dc = sample_diff(&conn, &case["connector_output"]["samples"]);
            if dv > TOL || dc > TOL {
                fail(format!("vision Δ {dv:.2e}, connector Δ {dc:.2e}"));
            }
        }
        let logits = session.first_logits(&req).expect("logits");
        let fl = &case["first_logits"];
        let dl = sample_diff(&logits, &fl["samples"]).max(sample_diff(&logits, &fl["top"]));
        max_logit = max_logit.max(dl);
        if dl > TOL {
            fail(format!("first-step logits Δ {dl:.2e}"));
        }
        let out = session
            .generate(&req, Default::default())
            .expect("generate");
        let margins: Vec<f64> = g["margins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_f64().unwrap())
            .collect();
        match compare_greedy(&out.tokens, &common::ids(&g["tokens"]), &margins, TIE) {
            Ok(n) if n == g["tokens"].as_array().unwrap().len() => exact += 1,
            Ok(n) => eprintln!("{name}/{cname}: near-tie at step {n}, compared up to there"),
            Err(m) => fail(format!("greedy tokens: {m}")),
        }
    }
    eprintln!(
        "{name}: {} cases, {exact} token-exact over the full length, max first-logit Δ {max_logit:.2e}",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn tiny_instruct_matches_transformers() {
    check_model("tiny-instruct");
}

#[test]
fn tiny_256m_matches_transformers() {
    check_model("tiny-256m");
}

#[test]
fn goldens_hold_the_required_cases() {
    for name in ["tiny-instruct", "tiny-256m"] {
        let g: Value = read_json(&fixtures().join(format!("goldens/{name}.json")));
        let names: Vec<&str> = g["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(names.len() >= 12, "{name}: {names:?}");
    }
}
