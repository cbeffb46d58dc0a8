//! Pillow LANCZOS, bit for bit: hashes of Pillow's output (tests/reference/resize_goldens.py).

mod common;
use common::*;
use sha2::{Digest, Sha256};

/// Same formula as `pattern` in resize_goldens.py.
fn pattern(w: usize, h: usize, seed: i64) -> Vec<u8> {
    let mut v = Vec::with_capacity(w * h * 3);
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            for c in 0..3 {
                let p = x * 7
                    + y * 13
                    + c * 29
                    + (x * y * (seed + 3)) % 17
                    + ((x ^ y) * (seed + 1)) % 61;
                v.push((p % 256) as u8);
            }
        }
    }
    v
}

#[test]
fn lanczos_matches_pillow_bit_for_bit() {
    let g = read_json(&fixtures().join("goldens/resize.json"));
    let mut bad = Vec::new();
    let cases = g["cases"].as_array().unwrap();
    for c in cases {
        let n = |v: &serde_json::Value, i: usize| v[i].as_u64().unwrap() as usize;
        let (w, h, w2, h2) = (
            n(&c["in"], 0),
            n(&c["in"], 1),
            n(&c["out"], 0),
            n(&c["out"], 1),
        );
        let out =
            smolvlm::resize::resize_rgb(&pattern(w, h, c["seed"].as_i64().unwrap()), w, h, w2, h2);
        if format!("{:x}", Sha256::digest(&out)) != c["sha256"].as_str().unwrap() {
            bad.push(format!("{w}x{h} -> {w2}x{h2}"));
        }
    }
    assert!(cases.len() >= 40);
    assert!(
        bad.is_empty(),
        "differ from Pillow {}: {bad:?}",
        g["pillow_version"]
    );
}
