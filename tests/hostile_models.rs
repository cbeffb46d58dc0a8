//! Hostile model directories: each gets an error naming the file and the problem, without a
//! crash, a hang or an allocation sized by what the file claims.

mod common;
use common::*;
use serde_json::json;
use smolvlm::{ErrorKind, Model};
use std::path::Path;

fn load_err(dir: &Path) -> smolvlm::Error {
    match Model::load(dir) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => e,
    }
}

/// A safetensors file: an 8-byte little-endian header length, the JSON header, the data.
fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

#[test]
fn hostile_safetensors_headers() {
    let t = r#""model.text_model.norm.weight""#;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "offsets past the data",
            safetensors(
                &format!(r#"{{{t}:{{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}}}"#),
                &[0; 8],
            ),
        ),
        (
            "overlapping tensors",
            safetensors(
                &format!(
                    r#"{{{t}:{{"dtype":"F32","shape":[2],"data_offsets":[0,8]}},"b":{{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}}}"#
                ),
                &[0; 12],
            ),
        ),
        (
            "shape x dtype != bytes",
            safetensors(
                &format!(r#"{{{t}:{{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}}}"#),
                &[0; 8],
            ),
        ),
        ("header length past the end", {
            let mut b = safetensors(r#"{}"#, &[]);
            b[..8].copy_from_slice(&1_000_000u64.to_le_bytes());
            b
        }),
        ("absurd header length", {
            let mut b = safetensors(r#"{}"#, &[]);
            b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
            b
        }),
        ("header not JSON", safetensors("{not json", &[])),
        (
            "shape overflowing",
            safetensors(
                &format!(
                    r#"{{{t}:{{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,0]}}}}"#
                ),
                &[],
            ),
        ),
        (
            "duplicate names",
            safetensors(
                &format!(
                    r#"{{{t}:{{"dtype":"F32","shape":[1],"data_offsets":[0,4]}},{t}:{{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}}}"#
                ),
                &[0; 8],
            ),
        ),
        ("empty file", vec![]),
    ];
    for (what, bytes) in cases {
        let dir = copy_model(
            "tiny-256m",
            &format!("hostile-st-{}", what.replace(' ', "-")),
        );
        std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
        let e = load_err(&dir);
        assert_eq!(e.kind, ErrorKind::BadModel, "{what}: {e}");
        assert!(e.message.contains("model.safetensors"), "{what}: {e}");
    }
}

#[test]
fn hostile_shard_indexes() {
    let src = fixtures().join("models/tiny-256m/model.safetensors");
    let outside = std::env::temp_dir().join("smolvlm-hostile-outside.safetensors");
    std::fs::copy(&src, &outside).unwrap();
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "parent",
            json!({"a": "../tiny-256m/model.safetensors"}),
            "must name a file in the model directory",
        ),
        (
            "absolute",
            json!({"a": outside.display().to_string()}),
            "must name a file in the model directory",
        ),
        (
            "subdir",
            json!({"a": "sub/model.safetensors"}),
            "must name a file in the model directory",
        ),
        (
            "missing",
            json!({"a": "model-00002-of-00002.safetensors"}),
            "model-00002-of-00002.safetensors",
        ),
        ("not a string", json!({"a": 5}), "must be a file name"),
        ("empty", json!({}), "weight_map is empty"),
    ];
    for (tag, map, says) in cases {
        let dir = copy_model("tiny-256m", &format!("hostile-index-{tag}"));
        std::fs::rename(
            dir.join("model.safetensors"),
            dir.join("model-00001-of-00002.safetensors"),
        )
        .unwrap();
        let index = json!({"metadata": {}, "weight_map": map});
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
        let e = load_err(&dir);
        assert!(e.message.contains(says), "{tag}: {e}");
        assert!(
            e.message.contains("model.safetensors.index.json") || tag == "missing",
            "{tag}: {e}"
        );
    }
    // The same tensor in two shards is ambiguous, not last-wins.
    let dir = copy_model("tiny-256m", "hostile-index-duplicate");
    std::fs::copy(dir.join("model.safetensors"), dir.join("b.safetensors")).unwrap();
    std::fs::rename(dir.join("model.safetensors"), dir.join("a.safetensors")).unwrap();
    let index = json!({"weight_map": {"x": "a.safetensors", "y": "b.safetensors"}});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let e = load_err(&dir);
    assert!(
        e.message.contains("is in both") && e.message.contains("a.safetensors"),
        "{e}"
    );
}

#[test]
fn absurd_config_values() {
    let cases: Vec<(&str, &str, serde_json::Value, &str)> = vec![
        (
            "config.json",
            "/text_config/num_hidden_layers",
            json!(1_000_000_000u64),
            "missing tensor model.text_model.layers.2.",
        ),
        (
            "config.json",
            "/vision_config/num_hidden_layers",
            json!(1_000_000_000u64),
            "missing tensor model.vision_model.encoder.layers.2.",
        ),
        (
            "config.json",
            "/text_config/vocab_size",
            json!(1_000_000_000_000u64),
            "text_config.vocab_size must be",
        ),
        (
            "config.json",
            "/text_config/hidden_size",
            json!(0),
            "text_config.hidden_size must be > 0",
        ),
        (
            "config.json",
            "/text_config/num_attention_heads",
            json!(5),
            "must divide num_attention_heads",
        ),
        (
            "config.json",
            "/text_config/rms_norm_eps",
            json!(-1.0),
            "text_config.rms_norm_eps must be >= 0",
        ),
        (
            "config.json",
            "/vision_config/layer_norm_eps",
            json!(-1.0),
            "vision_config.layer_norm_eps must be >= 0",
        ),
        (
            "config.json",
            "/vision_config/patch_size",
            json!(0),
            "vision_config.patch_size must be > 0",
        ),
        (
            "config.json",
            "/scale_factor",
            json!(3),
            "scale_factor (3) must divide",
        ),
        (
            "config.json",
            "/image_token_id",
            json!(-5),
            "image_token_id must be a non-negative integer",
        ),
        (
            "generation_config.json",
            "/eos_token_id",
            json!(4_000_000_000u64),
            "eos_token_id 4000000000 is outside the vocabulary",
        ),
        (
            "generation_config.json",
            "/eos_token_id",
            json!([-1]),
            "eos_token_id must hold token ids",
        ),
        (
            "processor_config.json",
            "/image_seq_len",
            json!(4294967295u64),
            "disagrees with the model's",
        ),
        (
            "preprocessor_config.json",
            "/image_std",
            json!([0.0, 0.0, 0.0]),
            "image_std must not contain 0",
        ),
    ];
    for (i, (file, ptr, val, says)) in cases.into_iter().enumerate() {
        let dir = copy_model("tiny-256m", &format!("hostile-config-{i}"));
        let mut v = read_json(&dir.join(file));
        *v.pointer_mut(ptr)
            .unwrap_or_else(|| panic!("{file} has no {ptr}")) = val;
        std::fs::write(dir.join(file), v.to_string()).unwrap();
        let e = load_err(&dir);
        assert_eq!(e.kind, ErrorKind::BadModel, "{file} {ptr}: {e}");
        assert!(e.message.contains(says), "{file} {ptr}: {e}");
    }
}

#[test]
fn chat_templates_that_never_end_are_stopped() {
    let templates = [
        ("recursion", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
        (
            "nested loops",
            "{% for i in range(100000) %}{% for j in range(100000) %}{% for k in range(100000) %}x{% endfor %}{% endfor %}{% endfor %}",
        ),
        ("raises", "{{ raise_exception('no such role') }}"),
    ];
    for (tag, template) in templates {
        let dir = copy_model(
            "tiny-256m",
            &format!("hostile-template-{}", tag.replace(' ', "-")),
        );
        std::fs::write(
            dir.join("chat_template.json"),
            json!({"chat_template": template}).to_string(),
        )
        .unwrap();
        let model = std::sync::Arc::new(Model::load(&dir).unwrap());
        let mut s = smolvlm::Session::new(model);
        let t = std::time::Instant::now();
        let e = s
            .generate(
                &smolvlm::Request::simple("hi", None, vec![]),
                Default::default(),
            )
            .unwrap_err();
        assert!(e.message.contains("chat template failed"), "{tag}: {e}");
        assert!(t.elapsed().as_secs_f64() < 10.0, "{tag}: {:?}", t.elapsed());
    }
}

#[test]
fn huge_files_are_refused_before_reading() {
    for (file, limit) in [
        ("tokenizer.json", 256u64 << 20),
        ("config.json", 64 << 20),
        ("tokenizer_config.json", 64 << 20),
    ] {
        let dir = copy_model("tiny-256m", &format!("hostile-huge-{file}"));
        // A sparse file: its size is what counts, not its (absent) contents.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join(file))
            .unwrap();
        f.set_len(limit + 1).unwrap();
        let t = std::time::Instant::now();
        let e = load_err(&dir);
        assert!(
            e.message.contains(file) && e.message.contains("more than"),
            "{file}: {e}"
        );
        assert!(t.elapsed().as_secs_f64() < 2.0, "{file}: {:?}", t.elapsed());
    }
}

/// `from` replaced by `to` (same length) in `path`'s bytes: a metadata key or value changed
/// without moving anything else.
fn patch_bytes(path: &Path, from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let mut b = std::fs::read(path).unwrap();
    let at = b
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("{} has no {from:?}", path.display()));
    b[at..at + to.len()].copy_from_slice(to.as_bytes());
    std::fs::write(path, b).unwrap();
}

#[test]
fn hostile_mmproj_files() {
    let mm = "mmproj-tiny-256m-f32.gguf";
    let cases: [(&str, &str, &str); 4] = [
        (
            "idefics3",
            "idefics9",
            "clip.projector_type Some(\"idefics9\") is not supported",
        ),
        (
            "clip.vision.embedding_length",
            "clip.vision.embedding_lengtX",
            "missing metadata key clip.vision.embedding_length",
        ),
        ("clip.use_gelu", "clip.use_gelX", ""),
        (
            "v.blk.1.ln2.weight",
            "v.blk.1.ln2.weighX",
            "v.blk.1.ln2.weight",
        ),
    ];
    for (i, (from, to, says)) in cases.into_iter().enumerate() {
        let dir = copy_model("tiny-256m-gguf-f32", &format!("hostile-mmproj-{i}"));
        patch_bytes(&dir.join(mm), from, to);
        match Model::load(&dir) {
            // A key the loader does not need may go missing.
            Ok(_) if says.is_empty() => {}
            Ok(_) => panic!("{from} -> {to}: loaded"),
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::BadModel, "{from}: {e}");
                assert!(
                    e.message.contains(says) && e.message.contains(mm),
                    "{from}: {e}"
                );
            }
        }
    }
    // The architecture of a text model in the mmproj's place; the file cut short.
    let dir = copy_model("tiny-256m-gguf-f32", "hostile-mmproj-arch");
    std::fs::copy(dir.join("tiny-256m-f32.gguf"), dir.join(mm)).unwrap();
    let e = load_err(&dir);
    assert!(e.message.contains("an mmproj file has \"clip\""), "{e}");
    let dir = copy_model("tiny-256m-gguf-f32", "hostile-mmproj-cut");
    let b = std::fs::read(dir.join(mm)).unwrap();
    std::fs::write(dir.join(mm), &b[..b.len() / 2]).unwrap();
    let e = load_err(&dir);
    assert!(e.message.contains(mm), "{e}");
    // An mmproj file given alone names what is missing.
    let dir = copy_model("tiny-256m-gguf-f32", "hostile-mmproj-alone");
    let e = match Model::load(dir.join(mm)) {
        Ok(_) => panic!("an mmproj file loaded as a model"),
        Err(e) => e,
    };
    assert!(e.message.contains("an mmproj file"), "{e}");
}
