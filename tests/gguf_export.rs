//! `smolvlm quantize` (`smolvlm::export_gguf`): a Llama safetensors directory written as GGUF.
//! A small random Llama with SmolVLM-256M's real tokenizer (built here, deterministically) is
//! written in every file type; each tensor must hold the bytes llama.cpp's `llama-quantize`
//! writes from the BF16 file (SHA-256 per tensor, recorded by
//! tests/reference/llama_quantize_goldens.sh), and the F32/BF16 files must compute what the
//! directory computes.

mod common;
use common::*;
use smolvlm::{FileType, Message, Model, Request, Session};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Enough layers that llama.cpp's "more bits" rule picks the first, last and every third.
const LAYERS: usize = 10;
const HIDDEN: usize = 64;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 16;
/// A multiple of 256, so the down projections take the K-quants' own blocks; the other
/// matrices (rows of 64) take llama.cpp's fallbacks.
const FFN: usize = 256;

/// A fixed-seed generator of values in [-scale, scale), rounded to bf16 (so the BF16 file is
/// lossless).
struct Rng(u64);
impl Rng {
    fn values(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                let u = (self.0 >> 40) as f32 / (1u64 << 24) as f32;
                let v = (2.0 * u - 1.0) * scale;
                f32::from_bits(v.to_bits() & 0xffff_0000)
            })
            .collect()
    }
}

/// Writes the random Llama (untied output projection, or tied) into `dir`.
fn tiny_text_model(dir: &Path, tied: bool) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let src = fixtures().join("models/tiny-256m");
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.json",
    ] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let vocab = read_json(&src.join("config.json"))["text_config"]["vocab_size"]
        .as_u64()
        .unwrap() as usize;
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": HIDDEN, "intermediate_size": FFN, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 2048,
        "vocab_size": vocab, "tie_word_embeddings": tied, "hidden_act": "silu",
        "attention_bias": false, "mlp_bias": false, "bos_token_id": 1, "eos_token_id": 2,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::write(
        dir.join("generation_config.json"),
        r#"{"bos_token_id": 1, "eos_token_id": [2, 49279]}"#,
    )
    .unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut tensors: Tensors = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, scale: f32, offset: f32| {
        let n = shape.iter().product();
        let v: Vec<f32> = rng.values(n, scale).iter().map(|x| x + offset).collect();
        let bytes = v
            .iter()
            .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
            .collect();
        tensors.push((name, safetensors::Dtype::BF16, shape, bytes));
    };
    add(
        "model.embed_tokens.weight".into(),
        vec![vocab, HIDDEN],
        1.0,
        0.0,
    );
    for i in 0..LAYERS {
        let p = format!("model.layers.{i}");
        let (q, kv) = (HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM);
        add(
            format!("{p}.input_layernorm.weight"),
            vec![HIDDEN],
            0.25,
            1.0,
        );
        add(
            format!("{p}.self_attn.q_proj.weight"),
            vec![q, HIDDEN],
            0.25,
            0.0,
        );
        add(
            format!("{p}.self_attn.k_proj.weight"),
            vec![kv, HIDDEN],
            0.25,
            0.0,
        );
        add(
            format!("{p}.self_attn.v_proj.weight"),
            vec![kv, HIDDEN],
            0.25,
            0.0,
        );
        add(
            format!("{p}.self_attn.o_proj.weight"),
            vec![HIDDEN, q],
            0.25,
            0.0,
        );
        add(
            format!("{p}.post_attention_layernorm.weight"),
            vec![HIDDEN],
            0.25,
            1.0,
        );
        add(
            format!("{p}.mlp.gate_proj.weight"),
            vec![FFN, HIDDEN],
            0.25,
            0.0,
        );
        add(
            format!("{p}.mlp.up_proj.weight"),
            vec![FFN, HIDDEN],
            0.25,
            0.0,
        );
        add(
            format!("{p}.mlp.down_proj.weight"),
            vec![HIDDEN, FFN],
            0.125,
            0.0,
        );
    }
    add("model.norm.weight".into(), vec![HIDDEN], 0.25, 1.0);
    if !tied {
        add("lm_head.weight".into(), vec![vocab, HIDDEN], 0.5, 0.0);
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    write_tensors(&dir.join("model.safetensors"), &tensors);
}

fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn export(dir: &Path, out: &Path, t: FileType) {
    smolvlm::export_gguf(dir, out, t, &mut |_| {}).unwrap_or_else(|e| panic!("{}: {e}", t.name()));
}

/// Every file type's tensors equal llama-quantize's from the BF16 file (goldens from
/// tests/reference/llama_quantize_goldens.sh), for the untied and the tied model.
#[test]
fn every_file_type_holds_llama_quantize_bytes() {
    let g = read_json(&fixtures().join("goldens/llama-quantize.json"));
    for tied in [false, true] {
        let variant = if tied { "tied" } else { "untied" };
        let dir = tmp(&format!("export-{variant}"));
        tiny_text_model(&dir, tied);
        for t in FileType::ALL {
            let out = tmp(&format!("export-{variant}-{}.gguf", t.name()));
            export(&dir, &out, t);
            let got = tensor_hashes(&out);
            let want = g[variant][t.name()]
                .as_array()
                .unwrap_or_else(|| panic!("{variant} {}", t.name()));
            // llama-quantize writes the tensors in its own order: compare them by name.
            assert_eq!(got.len(), want.len(), "{variant} {}", t.name());
            for (name, ty, hash) in &got {
                let w = want
                    .iter()
                    .find(|w| w[0] == name.as_str())
                    .unwrap_or_else(|| {
                        panic!("{variant} {}: {name} not in llama's file", t.name())
                    });
                assert_eq!(
                    *ty as u64,
                    w[1].as_u64().unwrap(),
                    "{variant} {} {name} type",
                    t.name()
                );
                assert_eq!(
                    hash,
                    w[2].as_str().unwrap(),
                    "{variant} {} {name} bytes",
                    t.name()
                );
            }
            std::fs::remove_file(&out).unwrap();
        }
    }
}

/// Writes the golden script's input, the random models and their BF16 files (into
/// `SMOLVLM_TINY_TEXT_OUT` for tests/reference/llama_quantize_goldens.sh, else a temporary
/// directory), and checks that both files load.
#[test]
fn write_tiny_text_models() {
    let out = std::env::var_os("SMOLVLM_TINY_TEXT_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp("tiny-text-models"));
    for tied in [false, true] {
        let dir = out.join(if tied { "tied" } else { "untied" });
        tiny_text_model(&dir, tied);
        let file = dir.join("model-bf16.gguf");
        export(&dir, &file, FileType::BF16);
        let m = Model::load(&file).unwrap();
        assert!(!m.is_vision() && m.tokenizer().has_template());
    }
}

/// Max |Δ| of first-step logits between the F32/BF16 files and the directory: the same
/// weights, the rotary step pairing rows as llama.cpp orders them (the sums in another order).
/// Measured worst 5.48e-6 (F32; BF16 5.25e-6); the bound is 4x that.
const TOL_SAME_WEIGHTS: f64 = 4.0 * 5.48e-6;

/// The F32 and BF16 files compute what the directory computes: configuration, tokenizer and
/// chat template from the metadata, tensors in llama.cpp's names and q/k order.
#[test]
fn lossless_files_compute_what_the_directory_computes() {
    let dir = tmp("export-same");
    tiny_text_model(&dir, false);
    let chat = |text: &str| {
        let mut r = Request::simple("", None, vec![]);
        r.messages = Message::parse_list(&serde_json::json!([
            {"role": "user", "content": [{"type": "text", "text": text}]}
        ]))
        .unwrap();
        r.max_tokens = 12;
        r.precision = smolvlm::Precision::F32;
        r
    };
    let mut plain = Session::new(Arc::new(Model::load(&dir).unwrap()));
    for t in [FileType::F32, FileType::BF16] {
        let out = tmp(&format!("export-same-{}.gguf", t.name()));
        export(&dir, &out, t);
        let model = Arc::new(Model::load(&out).unwrap());
        assert_eq!(
            model.tokenizer().vocab_len(),
            plain.model().tokenizer().vocab_len()
        );
        assert!(model.tokenizer().has_template() && !model.is_vision());
        let mut s = Session::new(model);
        let mut worst = 0.0f64;
        for text in ["Hello there!", "Count: 1 2 3 4 5", "What is in the image?"] {
            let req = chat(text);
            let (a, b) = (
                s.first_logits(&req).unwrap(),
                plain.first_logits(&req).unwrap(),
            );
            let d = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (*x as f64 - *y as f64).abs())
                .fold(0.0, f64::max);
            worst = worst.max(d);
            let (ta, tb) = (
                s.generate(&req, Default::default()).unwrap().tokens,
                plain.generate(&req, Default::default()).unwrap().tokens,
            );
            assert_eq!(ta, tb, "{} {text:?}", t.name());
        }
        eprintln!(
            "{}: first-step logits vs the directory {worst:.2e}",
            t.name()
        );
        assert!(worst <= TOL_SAME_WEIGHTS, "{}: {worst:.2e}", t.name());
    }
}

/// A SmolVLM without its vision tower, a missing directory and an unknown type are errors naming
/// the problem, and no file is left behind.
#[test]
fn what_cannot_be_written_is_an_error() {
    let out = tmp("export-refused.gguf");
    // A SmolVLM without its tower: neither file is written.
    let vision = copy_model("tiny-256m", "export-no-tower");
    let st = vision.join("model.safetensors");
    let kept: Tensors = read_tensors(&st)
        .into_iter()
        .filter(|t| !t.0.contains("vision_model"))
        .collect();
    write_tensors(&st, &kept);
    let e = smolvlm::export_gguf(&vision, &out, FileType::BF16, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("no vision tower tensors"), "{e}");
    assert!(!smolvlm_mmproj(&out).exists());
    let e = smolvlm::export_gguf(&tmp("absent"), &out, FileType::BF16, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("config.json"), "{e}");
    assert!(!out.exists() && !out.with_extension("gguf.partial").exists());
    let dir = tmp("export-truncated");
    tiny_text_model(&dir, true);
    let st = dir.join("model.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..bytes.len() / 2]).unwrap();
    assert!(smolvlm::export_gguf(
        &dir,
        &out,
        FileType::Mostly(smolvlm::QuantType::Q8_0),
        &mut |_| {}
    )
    .is_err());
    assert!(!out.exists() && !out.with_extension("gguf.partial").exists());
    assert_eq!(
        FileType::from_name("Q4_K_M"),
        Some(FileType::Medium(smolvlm::QuantType::Q4_K))
    );
    assert_eq!(
        FileType::from_name("q4_k_s"),
        Some(FileType::Mostly(smolvlm::QuantType::Q4_K))
    );
    assert_eq!(FileType::from_name("q3_k"), None);
}

/// (name, type, SHA-256) of every tensor of a GGUF, sorted by name.
fn sorted_hashes(path: &Path) -> Vec<(String, u32, String)> {
    let mut h = tensor_hashes(path);
    h.sort();
    h
}

/// A SmolVLM directory is written as a text GGUF plus an `mmproj` GGUF beside it that hold
/// the tensors, in type and bytes, that llama.cpp's own `convert_hf_to_gguf.py` writes (the
/// committed conversions of tests/reference/gguf_pairs.py), at f32 and at f16.
#[test]
fn smolvlm_pairs_hold_the_converters_tensors() {
    for (model, t) in [
        ("tiny-256m", FileType::F32),
        ("tiny-instruct", FileType::F16),
    ] {
        let conv = fixtures()
            .join("models")
            .join(format!("{model}-gguf-{}", t.name()));
        let dir = tmp(&format!("pair-{model}-{}", t.name()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join(format!("{model}-{}.gguf", t.name()));
        let s = smolvlm::export_gguf(&fixtures().join("models").join(model), &out, t, &mut |_| {})
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        let mm = s.mmproj.expect("an mmproj file");
        assert_eq!(
            mm.path,
            dir.join(format!("mmproj-{model}-{}.gguf", t.name()))
        );
        for (ours, theirs) in [
            (&out, conv.join(format!("{model}-{}.gguf", t.name()))),
            (
                &mm.path,
                conv.join(format!("mmproj-{model}-{}.gguf", t.name())),
            ),
        ] {
            let (a, b) = (sorted_hashes(ours), sorted_hashes(&theirs));
            let names =
                |v: &[(String, u32, String)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
            assert_eq!(names(&a), names(&b), "{}: tensor names", ours.display());
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x, y, "{}: {} (type, bytes)", ours.display(), x.0);
            }
        }
        assert!(!dir
            .join(format!("{model}-{}.gguf.partial", t.name()))
            .exists());
    }
}

fn smolvlm_mmproj(out: &Path) -> PathBuf {
    out.with_file_name(format!(
        "mmproj-{}",
        out.file_name().unwrap().to_string_lossy()
    ))
}
