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
    // The tiny models' rows (32 to 96 elements) fit only the 32-element formats; the K-quants'
    // fallback to them is tested below, their own blocks by the kernels' tests and on the real
    // SmolLM2-135M.
    for q in QuantType::ALL.into_iter().filter(|q| q.block_elems() == 32) {
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

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

/// Checks golden file `name`'s rows: for each format in `formats`, quantizing `x` gives the
/// golden bytes, and where the file has `<format>_deq` dequantizing them gives those values
/// exactly.
fn check_goldens(name: &str, formats: &[QuantType]) {
    let g = read_json(&fixtures().join("goldens").join(name));
    let rows = g["rows"].as_array().unwrap();
    assert!(rows.len() >= 8, "{name}");
    for (r, row) in rows.iter().enumerate() {
        let x = floats(&row["x"]);
        for &q in formats {
            let want = row[q.name()].as_str().unwrap();
            let mut got = vec![0u8; q.bytes_for(x.len())];
            quantize(q, &x, &mut got);
            let hex: String = got.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, want, "{name} row {r} {}", q.name());
            if let Some(deq) = row.get(format!("{}_deq", q.name())) {
                let mut y = vec![f32::NAN; x.len()];
                dequantize(q, &got, &mut y);
                let want = floats(deq);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&y), bits(&want), "{name} row {r} {} values", q.name());
            }
        }
    }
}

/// The 32-element formats' bytes equal those of llama.cpp's `gguf` Python quantizer (goldens
/// from tests/reference/quant_goldens.py): a file written here holds what llama.cpp writes.
#[test]
fn blocks_equal_ggml_reference_bytes() {
    let formats: Vec<QuantType> = QuantType::ALL
        .into_iter()
        .filter(|q| q.block_elems() == 32)
        .collect();
    check_goldens("quant-ggml.json", &formats);
}

/// The K-quants' bytes and dequantized values (and the 32-element formats' bytes once more)
/// equal those of ggml's own C reference functions, compiled from llama.cpp's source by
/// tests/reference/kquant_goldens.py.
#[test]
fn k_quant_blocks_equal_ggml_reference_bytes() {
    check_goldens("quant-kquants.json", &QuantType::ALL);
}

/// Rows that do not fill a K-quant's 256-element blocks take the format llama.cpp's quantizer
/// falls back to (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0): the tiny models' rows are all such.
#[test]
fn k_quants_fall_back_as_llama_cpp_does_for_short_rows() {
    let fixture = fixtures().join("models").join("tiny-256m");
    for (asked, stored) in [
        (QuantType::Q4_K, QuantType::Q5_0),
        (QuantType::Q5_K, QuantType::Q5_1),
        (QuantType::Q6_K, QuantType::Q8_0),
    ] {
        assert_eq!(asked.for_row(576), Some(stored));
        assert_eq!(asked.for_row(1536), Some(asked));
        assert_eq!(asked.for_row(48), None);
        let m = load(&fixture, Isa::Portable, Some(asked));
        assert_eq!(m.quantization(), Some(stored), "{}", asked.name());
    }
}

/// `auto` is the int8 mode for a decoder of block weights where the kernel variant has int8
/// dot products (AVX512_VNNI), and as before otherwise; the mode generates and is reported.
#[test]
fn auto_picks_the_int8_mode_for_quantized_weights_on_int8_dot_products() {
    use smolvlm::{Precision, Request};
    assert!(
        std::env::var_os("SMOLVLM_PRECISION").is_none(),
        "SMOLVLM_PRECISION overrides auto: unset it to run this test"
    );
    let dir = fixtures().join("models/tiny-256m");
    for isa in Isa::supported() {
        let plain = load(&dir, isa, None).precision(Precision::Auto);
        assert_ne!(plain, Precision::Int8, "{isa:?} without quantized weights");
        let model = load(&dir, isa, Some(QuantType::Q4_0));
        let want = if isa.has_int8_dot() {
            Precision::Int8
        } else {
            plain
        };
        assert_eq!(model.precision(Precision::Auto), want, "{isa:?}");
        let mut s = Session::new(model);
        let out = s
            .generate(
                &Request::simple("Tell me a story.", None, vec![]),
                Default::default(),
            )
            .unwrap();
        assert_eq!(out.stats.precision, want, "{isa:?}");
    }
    eprintln!(
        "int8 dot products on: {:?}",
        Isa::supported()
            .into_iter()
            .filter(|i| i.has_int8_dot())
            .collect::<Vec<_>>()
    );
}
