//! Weights quantized at load (`LoadOptions::quantize`): the model must compute what the same
//! model computes with its projections replaced by their dequantized values (f32 mode), which
//! is the float32 model the goldens test token-exact against transformers.

mod common;
use common::*;
use smolvlm::quant::{dequantize, quantize, QuantType};
use smolvlm::{Isa, LoadOptions, Model, Session};
use std::path::Path;
use std::sync::Arc;

/// Max |Δ| of first-step logits between the two models: they multiply the same f32 weights, so
/// only the order of the f32 sums may differ. Measured worst 9.54e-6 (portable kernels; AVX2
/// 3.81e-6, AVX-512 0: the same order as its f32 rows); the bound is 2x that. Quantizing moved
/// the logits by 1.45 to 22 (the second assertion).
const TOL: f64 = 2e-5;

fn is_projection(name: &str) -> bool {
    let decoder = name.contains("text_model.layers.") || name.starts_with("model.layers.");
    let proj = [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ]
    .iter()
    .any(|p| name.contains(&format!(".{p}.weight")));
    decoder && proj
}

fn as_f32(dtype: safetensors::Dtype, bytes: &[u8]) -> Vec<f32> {
    match dtype {
        safetensors::Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
            .collect(),
        safetensors::Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        d => panic!("fixture dtype {d:?}"),
    }
}

/// A copy of fixture `name` whose projections (format `q`) and output projection (Q8_0) hold
/// their dequantized values as f32; returns its directory and how many tensors changed.
fn dequantized_copy(name: &str, q: QuantType) -> (std::path::PathBuf, usize) {
    let dir = copy_model(name, &format!("dequantized-{name}-{}", q.name()));
    let file = dir.join("model.safetensors");
    let mut tensors = read_tensors(&file);
    let mut changed = 0;
    for (n, dtype, shape, bytes) in tensors.iter_mut() {
        let t = if is_projection(n) {
            q
        } else if n.ends_with("lm_head.weight") {
            QuantType::Q8_0
        } else {
            continue;
        };
        let x = as_f32(*dtype, bytes);
        let mut blocks = vec![0u8; t.bytes_for(x.len())];
        quantize(t, &x, &mut blocks);
        let mut y = vec![0.0f32; x.len()];
        dequantize(t, &blocks, &mut y);
        assert_eq!(shape.len(), 2, "{n}");
        *dtype = safetensors::Dtype::F32;
        *bytes = y.iter().flat_map(|v| v.to_le_bytes()).collect();
        changed += 1;
    }
    write_tensors(&file, &tensors);
    (dir, changed)
}

fn load(dir: &Path, isa: Isa, quantize: Option<QuantType>) -> Arc<Model> {
    let opts = LoadOptions {
        isa: Some(isa),
        quantize,
    };
    Arc::new(Model::load_with(dir, opts, &mut |_| true).expect("load"))
}

fn check(name: &str) {
    let golden = read_json(&fixtures().join(format!("goldens/{name}.json")));
    let cases = golden["cases"].as_array().unwrap();
    let fixture = fixtures().join("models").join(name);
    for q in QuantType::ALL {
        let (deq_dir, changed) = dequantized_copy(name, q);
        assert!(changed >= 8, "{name}: only {changed} projections");
        for isa in Isa::supported() {
            let quant = load(&fixture, isa, Some(q));
            assert_eq!(quant.quantization(), Some(q));
            let deq = load(&deq_dir, isa, None);
            let plain = load(&fixture, isa, None);
            let (mut sq, mut sd, mut sp) =
                (Session::new(quant), Session::new(deq), Session::new(plain));
            let (mut worst, mut moved) = (0.0f64, 0.0f64);
            for case in cases {
                let req = request_for(case, 12);
                let lq = sq.first_logits(&req).unwrap();
                let ld = sd.first_logits(&req).unwrap();
                let lp = sp.first_logits(&req).unwrap();
                let diff = |a: &[f32], b: &[f32]| {
                    a.iter()
                        .zip(b)
                        .map(|(x, y)| (*x as f64 - *y as f64).abs())
                        .fold(0.0, f64::max)
                };
                worst = worst.max(diff(&lq, &ld));
                moved = moved.max(diff(&lq, &lp));
                let tq = sq.generate(&req, Default::default()).unwrap().tokens;
                let td = sd.generate(&req, Default::default()).unwrap().tokens;
                assert_eq!(
                    tq,
                    td,
                    "{name} {} [{}] {}",
                    q.name(),
                    isa.name(),
                    case["name"]
                );
            }
            eprintln!(
                "{name} {} [{}]: logits vs dequantized model {worst:.2e}, vs unquantized {moved:.2e}",
                q.name(),
                isa.name()
            );
            assert!(
                worst <= TOL,
                "{name} {} [{}]: {worst:.2e}",
                q.name(),
                isa.name()
            );
            // The options did quantize: the weights moved the logits far more than summation.
            assert!(
                moved > 100.0 * TOL,
                "{name} {}: logits did not change",
                q.name()
            );
        }
    }
}

#[test]
fn tiny_256m_quantized_at_load_equals_its_dequantized_weights() {
    check("tiny-256m");
}

#[test]
fn tiny_instruct_quantized_at_load_equals_its_dequantized_weights() {
    check("tiny-instruct");
}

/// The bytes of every format equal those of llama.cpp's `gguf` Python quantizer (goldens from
/// tests/reference/quant_goldens.py): a file written here holds what llama.cpp would write.
#[test]
fn blocks_equal_ggml_reference_bytes() {
    let g = read_json(&fixtures().join("goldens/quant-ggml.json"));
    let rows = g["rows"].as_array().unwrap();
    assert!(rows.len() >= 8);
    for (r, row) in rows.iter().enumerate() {
        let x: Vec<f32> = row["x"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        for q in QuantType::ALL {
            let want = row[q.name()].as_str().unwrap();
            let mut got = vec![0u8; q.bytes_for(x.len())];
            quantize(q, &x, &mut got);
            let hex: String = got.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, want, "row {r} {}", q.name());
        }
    }
}
