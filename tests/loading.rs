//! Checkpoint layouts that must load to the same model: sharded weights with an index, the nested
//! `model.text_model.model.*` naming, `model_type: smolvlm` (SmolVLM2); and seeded sampling.

mod common;
use common::*;
use smolvlm::{Model, Request, SamplingParams, Session};
use std::path::Path;
use std::sync::Arc;

/// The golden case's first-step logits and greedy tokens from the model in `dir`.
fn run(dir: &Path, model_name: &str, case_name: &str) -> (Vec<f32>, Vec<u32>) {
    let g = read_json(&fixtures().join(format!("goldens/{model_name}.json")));
    let case = g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == case_name)
        .unwrap()
        .clone();
    let mut s = Session::new(Arc::new(Model::load(dir).unwrap()));
    let req = request_for(&case, 24);
    let logits = s.first_logits(&req).unwrap();
    let out = s.generate(&req, Default::default()).unwrap();
    assert_eq!(
        out.tokens,
        ids(&case["greedy"]["tokens"]),
        "{}: {case_name}",
        dir.display()
    );
    (logits, out.tokens)
}

#[test]
fn sharded_weights_with_index_give_the_same_model() {
    let dir = copy_model("tiny-256m", "loading-sharded");
    let all = read_tensors(&dir.join("model.safetensors"));
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let (a, b) = all.split_at(all.len() / 2);
    write_tensors(&dir.join("model-00001-of-00002.safetensors"), a);
    write_tensors(&dir.join("model-00002-of-00002.safetensors"), b);
    let map: serde_json::Map<String, serde_json::Value> = a
        .iter()
        .map(|t| (t.0.clone(), "model-00001-of-00002.safetensors".into()))
        .chain(
            b.iter()
                .map(|t| (t.0.clone(), "model-00002-of-00002.safetensors".into())),
        )
        .collect();
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::json!({"metadata": {}, "weight_map": map}).to_string(),
    )
    .unwrap();
    let (sharded, _) = run(&dir, "tiny-256m", "square_split");
    let (single, _) = run(
        &fixtures().join("models/tiny-256m"),
        "tiny-256m",
        "square_split",
    );
    assert_eq!(sharded, single);
}

#[test]
fn nested_text_model_names_and_smolvlm_model_type_load() {
    let dir = copy_model("tiny-instruct", "loading-nested");
    let path = dir.join("model.safetensors");
    let renamed: Tensors = read_tensors(&path)
        .into_iter()
        .map(|(n, d, s, b)| {
            let n = if let Some(rest) = n.strip_prefix("model.text_model.") {
                format!("model.text_model.model.{rest}")
            } else if n == "lm_head.weight" {
                "model.text_model.lm_head.weight".to_string()
            } else {
                n
            };
            (n, d, s, b)
        })
        .collect();
    write_tensors(&path, &renamed);
    let mut cfg = read_json(&dir.join("config.json"));
    cfg["model_type"] = "smolvlm".into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let model = Model::load(&dir).unwrap();
    assert!(
        model.weight_layout.contains("model.text_model.model"),
        "{}",
        model.weight_layout
    );
    run(&dir, "tiny-instruct", "two_images");
}

#[test]
fn same_seed_same_tokens() {
    let model = Arc::new(Model::load(fixtures().join("models/tiny-256m")).unwrap());
    let mut s = Session::new(model);
    let mut req = Request::simple("Tell me something.", None, vec![]);
    req.max_tokens = 16;
    let gen = |s: &mut Session, seed: u64, req: &mut Request| {
        req.sampling = SamplingParams {
            temperature: 1.0,
            top_k: 50,
            top_p: 0.95,
            repetition_penalty: 1.1,
            seed,
        };
        s.generate(req, Default::default()).unwrap().tokens
    };
    let a = gen(&mut s, 7, &mut req);
    assert_eq!(a, gen(&mut s, 7, &mut req));
    assert_ne!(a, gen(&mut s, 8, &mut req));
}

#[test]
fn stop_ids_come_from_generation_config_as_in_generate() {
    let m = Model::load(fixtures().join("models/tiny-256m")).unwrap();
    // config.json's text_config says eos 2; generate() only stops on generation_config's ids.
    assert_eq!(m.eos_token_ids(), &[49279]);
    let dir = copy_model("tiny-256m", "loading-no-genconfig");
    std::fs::remove_file(dir.join("generation_config.json")).unwrap();
    assert_eq!(Model::load(&dir).unwrap().eos_token_ids(), &[2]);
}
