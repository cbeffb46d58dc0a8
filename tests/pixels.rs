//! Pixel parity with Pillow: LANCZOS bit for bit (hashes from tests/reference/resize_goldens.py),
//! and every lossless format decoding to the same pixels.

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
        let out = smolvlm::resize_rgb(&pattern(w, h, c["seed"].as_i64().unwrap()), w, h, w2, h2);
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

#[test]
fn lossless_formats_decode_to_the_same_pixels() {
    let open = |f: &str| smolvlm::RgbImage::open(&fixtures().join("images").join(f)).unwrap();
    let png = open("square.png");
    for f in ["square.ppm", "square.tga", "square.tiff"] {
        assert!(open(f) == png, "{f} decodes differently from square.png");
    }
    // The JPEG path (libjpeg-turbo) is checked against Pillow through the wide_jpeg goldens.
    let bytes = std::fs::read(fixtures().join("images/wide.jpg")).unwrap();
    let jpeg = smolvlm::RgbImage::decode(&bytes, "wide.jpg").unwrap();
    assert_eq!((jpeg.width, jpeg.height), (200, 90));
    let e = smolvlm::RgbImage::decode(&bytes[..20], "cut.jpg").unwrap_err();
    assert!(e.message.contains("cut.jpg"), "{e}");
}

/// Odd but valid files decode to what the HF processor sees: Pillow's decoding then
/// transformers' convert_to_rgb (tests/reference/image_goldens.py).
#[test]
fn odd_images_decode_as_pillow_and_convert_to_rgb() {
    let g = read_json(&fixtures().join("goldens/odd_images.json"));
    let cases = g["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    let mut bad = Vec::new();
    for c in cases {
        let file = c["file"].as_str().unwrap();
        let path = fixtures().join("images/odd").join(file);
        let img = match smolvlm::RgbImage::open(&path) {
            Ok(i) => i,
            Err(e) => {
                bad.push(format!("{file}: {e}"));
                continue;
            }
        };
        let size = [img.width as u64, img.height as u64];
        let want = [
            c["size"][0].as_u64().unwrap(),
            c["size"][1].as_u64().unwrap(),
        ];
        let sha = format!("{:x}", Sha256::digest(&img.data));
        if size != want || sha != c["sha256"].as_str().unwrap() {
            bad.push(format!(
                "{file} ({}): {size:?} vs {want:?}, pixels differ",
                c["pillow_mode"]
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "differ from Pillow {}:\n{}",
        g["pillow_version"],
        bad.join("\n")
    );
}
