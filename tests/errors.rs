//! Bad input gets a clear error naming the file or tensor — never a panic.

mod common;
use common::*;
use safetensors::tensor::Dtype;
use smolvlm::{ErrorKind, Model, PixelFormat, Request, RgbImage, Session};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MODEL: &str = "tiny-256m";

fn copy_model(tag: &str) -> PathBuf {
    common::copy_model(MODEL, &format!("errors-{tag}"))
}

fn load_err(dir: &Path) -> smolvlm::Error {
    match Model::load(dir) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => e,
    }
}

/// Rewrites model.safetensors through `edit(name, dtype, shape, bytes)`; None drops the tensor.
type Edit = Option<(Dtype, Vec<usize>, Vec<u8>)>;
fn rewrite_weights(dir: &Path, edit: impl Fn(&str, Dtype, Vec<usize>, Vec<u8>) -> Edit) {
    let path = dir.join("model.safetensors");
    let kept: Tensors = read_tensors(&path)
        .into_iter()
        .filter_map(|(n, d, s, b)| edit(&n, d, s, b).map(|(d, s, b)| (n, d, s, b)))
        .collect();
    write_tensors(&path, &kept);
}

const T: &str = "model.text_model.norm.weight";

#[test]
fn missing_directory_and_files() {
    let e = load_err(Path::new("/nonexistent/smolvlm-model"));
    assert_eq!(e.kind, ErrorKind::Io);
    assert!(e.message.contains("/nonexistent/smolvlm-model"), "{e}");

    for (file, kind, says) in [
        ("config.json", ErrorKind::Io, "config.json: No such file"),
        (
            "tokenizer.json",
            ErrorKind::BadModel,
            "tokenizer.json: missing",
        ),
        (
            "model.safetensors",
            ErrorKind::BadModel,
            "no model.safetensors (nor an index",
        ),
    ] {
        let dir = copy_model(&format!("missing-{file}"));
        std::fs::remove_file(dir.join(file)).unwrap();
        let e = load_err(&dir);
        assert_eq!(e.kind, kind, "{file}: {e}");
        assert!(e.message.contains(says), "{file}: {e}");
        assert!(
            e.message.contains(&dir.display().to_string()),
            "{file}: {e}"
        );
    }
}

#[test]
fn bad_json_and_unknown_architecture() {
    let dir = copy_model("badjson");
    std::fs::write(dir.join("config.json"), "{ not json").unwrap();
    let e = load_err(&dir);
    assert_eq!(e.kind, ErrorKind::BadModel);
    assert!(
        e.message.contains("config.json") && e.message.contains("invalid JSON"),
        "{e}"
    );

    let dir = copy_model("arch");
    let mut cfg = read_json(&dir.join("config.json"));
    cfg["model_type"] = "mamba".into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let e = load_err(&dir);
    assert!(
        e.message.contains("mamba") && e.message.contains("config.json"),
        "{e}"
    );

    let dir = copy_model("badfield");
    let mut cfg = read_json(&dir.join("config.json"));
    cfg["text_config"]["num_hidden_layers"] = "many".into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let e = load_err(&dir);
    assert!(e.message.contains("text_config.num_hidden_layers"), "{e}");
}

#[test]
fn missing_misshaped_and_unsupported_tensors() {
    let dir = copy_model("missing-tensor");
    rewrite_weights(&dir, |n, d, s, b| (n != T).then_some((d, s, b)));
    let e = load_err(&dir);
    assert!(
        e.message.contains("missing tensor") && e.message.contains(T),
        "{e}"
    );

    let dir = copy_model("shape");
    rewrite_weights(&dir, |n, d, s, b| {
        if n == T {
            let half = b.len() / 2;
            Some((d, vec![s[0] / 2], b[..half].to_vec()))
        } else {
            Some((d, s, b))
        }
    });
    let e = load_err(&dir);
    assert!(e.message.contains(T) && e.message.contains("shape"), "{e}");

    let dir = copy_model("dtype");
    rewrite_weights(&dir, |n, d, s, b| {
        if n == T {
            let n_el: usize = s.iter().product();
            Some((Dtype::I8, s, vec![1u8; n_el]))
        } else {
            Some((d, s, b))
        }
    });
    let e = load_err(&dir);
    assert!(e.message.contains(T) && e.message.contains("I8"), "{e}");
}

#[test]
fn corrupt_and_truncated_safetensors() {
    let dir = copy_model("truncated");
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(&dir);
    assert_eq!(e.kind, ErrorKind::BadModel);
    assert!(e.message.contains("model.safetensors"), "{e}");

    std::fs::write(&p, b"\xff\xff\xff\xff\xff\xff\xff\x7fgarbage").unwrap();
    let e = load_err(&dir);
    assert!(e.message.contains("not a valid safetensors"), "{e}");
}

#[test]
fn bad_images_and_prompts() {
    let e = RgbImage::decode(b"definitely not an image", "mem.png").unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadImage);
    assert!(e.message.contains("mem.png"), "{e}");
    let e = RgbImage::open(Path::new("/nonexistent.png")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Io);
    assert!(RgbImage::from_pixels(&[], 0, 0, 0, PixelFormat::Rgb8).is_err());
    let e = RgbImage::from_pixels(&[0; 10], 2, 2, 6, PixelFormat::Rgb8).unwrap_err();
    assert!(e.message.contains("needs 12"), "{e}");
    let e = RgbImage::from_pixels(&[0; 100], 4, 2, 8, PixelFormat::Rgba8).unwrap_err();
    assert!(e.message.contains("stride"), "{e}");

    let model = Arc::new(Model::load(fixtures().join("models").join(MODEL)).unwrap());
    let mut s = Session::new(model);
    let e = s
        .generate(&Request::simple("  ", None, vec![]), Default::default())
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArg);
    assert!(e.message.contains("empty"), "{e}");

    let mut r = Request::simple("hi", None, vec![]);
    r.max_tokens = usize::MAX;
    assert_eq!(
        s.generate(&r, Default::default()).unwrap_err().kind,
        ErrorKind::InvalidArg
    );

    let img = RgbImage::from_pixels(&[9; 12], 2, 2, 6, PixelFormat::Rgb8).unwrap();
    let mut r = Request::simple("hi", None, vec![img]);
    r.messages[0].content.retain(|p| *p != smolvlm::Part::Image);
    let e = s.generate(&r, Default::default()).unwrap_err();
    assert!(e.message.contains("0 image(s) but 1"), "{e}");
}

/// Writes `edit`ed JSON back to `file` in a fresh copy of the model and returns the load error.
fn json_edit_err(tag: &str, file: &str, edit: impl Fn(&mut serde_json::Value)) -> smolvlm::Error {
    let dir = copy_model(tag);
    let mut v = read_json(&dir.join(file));
    edit(&mut v);
    std::fs::write(dir.join(file), v.to_string()).unwrap();
    load_err(&dir)
}

#[test]
fn malformed_config_values_are_errors_naming_file_and_key() {
    use serde_json::json;
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, &str, Edit, &str)> = vec![
        (
            "eos-float",
            "generation_config.json",
            Box::new(|v| v["eos_token_id"] = json!([49279, 2.5])),
            "generation_config.json: eos_token_id must hold token ids",
        ),
        (
            "eos-huge",
            "generation_config.json",
            Box::new(|v| v["eos_token_id"] = json!(1u64 << 40)),
            "generation_config.json: eos_token_id must hold token ids",
        ),
        (
            "eos-negative",
            "generation_config.json",
            Box::new(|v| v["eos_token_id"] = json!(-1)),
            "eos_token_id must hold token ids",
        ),
        (
            "rope-theta-string",
            "config.json",
            Box::new(|v| v["text_config"]["rope_parameters"] = json!({"rope_theta": "big"})),
            "config.json: text_config.rope_parameters.rope_theta must be a number",
        ),
        (
            "rope-theta-zero",
            "config.json",
            Box::new(|v| v["text_config"]["rope_parameters"] = json!({"rope_theta": 0.0})),
            "text_config.rope_theta must be > 0",
        ),
        (
            "rope-params-list",
            "config.json",
            Box::new(|v| v["text_config"]["rope_parameters"] = json!([1, 2])),
            "text_config.rope_parameters must be an object",
        ),
        (
            "rope-type-number",
            "config.json",
            Box::new(|v| v["text_config"]["rope_parameters"] = json!({"rope_type": 3})),
            "text_config.rope_parameters.rope_type must be a string",
        ),
        (
            "seq-len-string",
            "processor_config.json",
            Box::new(|v| v["image_seq_len"] = json!("sixty-four")),
            "processor_config.json: image_seq_len must be a non-negative integer",
        ),
        (
            "seq-len-zero",
            "processor_config.json",
            Box::new(|v| v["image_seq_len"] = json!(0)),
            "processor_config.json: image_seq_len must be > 0",
        ),
    ];
    for (tag, file, edit, says) in cases {
        let e = json_edit_err(tag, file, edit);
        assert_eq!(e.kind, ErrorKind::BadModel, "{tag}: {e}");
        assert!(e.message.contains(says), "{tag}: {e}");
    }
}

#[test]
fn do_convert_rgb_false_refuses_images_that_need_conversion() {
    let dir = copy_model("no-convert-rgb");
    let mut v = read_json(&dir.join("preprocessor_config.json"));
    v["do_convert_rgb"] = false.into();
    std::fs::write(dir.join("preprocessor_config.json"), v.to_string()).unwrap();
    let mut s = Session::new(Arc::new(Model::load(&dir).unwrap()));
    let images = fixtures().join("images");
    for (file, mode) in [("rgba.png", "with alpha"), ("gray.png", "grayscale")] {
        let img = RgbImage::open(&images.join(file)).unwrap();
        let e = s
            .generate(&Request::simple("hi", None, vec![img]), Default::default())
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadImage, "{file}: {e}");
        assert!(
            e.message.contains(mode) && e.message.contains("do_convert_rgb: false"),
            "{file}: {e}"
        );
    }
    // An RGB image needs no conversion: same answer as with the unmodified model.
    let img = RgbImage::open(&images.join("square.png")).unwrap();
    let mut r = Request::simple("hi", None, vec![img]);
    r.max_tokens = 6;
    let ours = s.generate(&r, Default::default()).unwrap();
    let plain = Arc::new(Model::load(fixtures().join("models").join(MODEL)).unwrap());
    let want = Session::new(plain)
        .generate(&r, Default::default())
        .unwrap();
    assert_eq!(ours.tokens, want.tokens);
}

/// A file cut short is refused in every format, never completed with made-up pixels (Pillow:
/// "image file is truncated"): at two thirds of its length, and (where the format says how long
/// it is) one byte short. The error names the file.
#[test]
fn truncated_images_are_refused_in_every_format() {
    let images = fixtures().join("images");
    let files = [
        ("square.png", false),
        ("wide.jpg", true),
        ("palette.gif", false),
        ("image.webp", true),
        ("image.bmp", true),
        ("square.tiff", true),
        ("square.ppm", true),
        ("square.tga", false),
    ];
    for (file, sized) in files {
        let bytes = std::fs::read(images.join(file)).unwrap();
        RgbImage::decode(&bytes, file).unwrap();
        let mut cuts = vec![bytes.len() * 2 / 3, 100.min(bytes.len() / 2)];
        if sized {
            cuts.push(bytes.len() - 1);
        }
        for cut in cuts {
            let e = RgbImage::decode(&bytes[..cut], file).unwrap_err();
            assert_eq!(e.kind, ErrorKind::BadImage, "{file} cut to {cut}: {e}");
            assert!(e.message.contains(file), "{file} cut to {cut}: {e}");
        }
    }
    // Garbage after a valid signature, and a file with no known signature.
    for bad in [
        &b"\x89PNG\r\n\x1a\nnot a png"[..],
        b"GIF89a\x01",
        b"\xff\xd8\xff\xe0junk",
        b"hello",
    ] {
        let e = RgbImage::decode(bad, "bad.bin").unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadImage, "{e}");
    }
}
