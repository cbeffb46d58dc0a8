//! GGUF text models that cannot load: each an error naming the file and the problem.

use crate::weights::gguf::Value;
use crate::weights::gguf_write::GgufWriter;
use crate::Model;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "smolvlm-gguf-model-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn strs(v: &[&str]) -> Value {
    Value::Array(v.iter().map(|s| Value::Str(s.to_string())).collect())
}

/// The metadata of a small llama text model, without tensors.
fn metadata() -> Vec<(&'static str, Value)> {
    vec![
        ("general.architecture", Value::Str("llama".into())),
        ("llama.block_count", Value::U32(1)),
        ("llama.embedding_length", Value::U32(64)),
        ("llama.feed_forward_length", Value::U32(128)),
        ("llama.attention.head_count", Value::U32(2)),
        ("llama.attention.head_count_kv", Value::U32(1)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("llama.rope.freq_base", Value::F32(10000.0)),
        ("tokenizer.ggml.model", Value::Str("gpt2".into())),
        ("tokenizer.ggml.pre", Value::Str("smollm".into())),
        (
            "tokenizer.ggml.tokens",
            strs(&["<|endoftext|>", "a", "b", "ab"]),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(vec![
                Value::I32(3),
                Value::I32(1),
                Value::I32(1),
                Value::I32(1),
            ]),
        ),
        ("tokenizer.ggml.merges", strs(&["a b"])),
        ("tokenizer.ggml.eos_token_id", Value::U32(0)),
        (
            "tokenizer.chat_template",
            Value::Str("{{ messages[0]['content'] }}".into()),
        ),
    ]
}

fn write(dir: &Path, name: &str, meta: &[(&str, Value)]) -> PathBuf {
    let mut w = GgufWriter::new(32);
    for (k, v) in meta {
        w.meta(k, v.clone());
    }
    let p = dir.join(name);
    std::fs::write(&p, w.to_bytes()).unwrap();
    p
}

/// Loading `meta` (with `key` replaced by `value`, or removed when None) fails naming the file
/// and saying `want`.
fn refused(key: &str, value: Option<Value>, want: &str) {
    let mut meta: Vec<(&str, Value)> = metadata().into_iter().filter(|(k, _)| *k != key).collect();
    if let Some(v) = value {
        meta.push((key, v));
    }
    let dir = temp_dir();
    let p = write(&dir, "model.gguf", &meta);
    let e = Model::load(&p).err().expect("loads").to_string();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(e.contains("model.gguf") && e.contains(want), "{key}: {e}");
}

#[test]
fn bad_metadata_is_an_error_naming_the_key() {
    refused(
        "general.architecture",
        None,
        "missing metadata key general.architecture",
    );
    refused(
        "general.architecture",
        Some(Value::Str("clip".into())),
        "an mmproj file",
    );
    refused(
        "general.architecture",
        Some(Value::Str("gemma".into())),
        "\"gemma\" is not supported",
    );
    refused(
        "llama.embedding_length",
        None,
        "missing metadata key llama.embedding_length",
    );
    refused(
        "llama.block_count",
        Some(Value::Str("1".into())),
        "llama.block_count is",
    );
    refused(
        "llama.attention.head_count",
        Some(Value::U32(0)),
        "llama.attention.head_count is 0",
    );
    refused(
        "llama.attention.head_count_kv",
        Some(Value::U32(3)),
        "num_key_value_heads",
    );
    refused(
        "llama.rope.dimension_count",
        Some(Value::U32(16)),
        "partial rotary",
    );
    refused(
        "llama.rope.scaling.type",
        Some(Value::Str("yarn".into())),
        "\"yarn\" is not supported",
    );
    refused(
        "llama.vocab_size",
        Some(Value::U32(5)),
        "differs from the 4 entries",
    );
    refused(
        "tokenizer.ggml.model",
        Some(Value::Str("llama".into())),
        "\"llama\" is not supported",
    );
    refused(
        "tokenizer.ggml.pre",
        Some(Value::Str("qwen2".into())),
        "\"qwen2\" is not supported",
    );
    refused(
        "tokenizer.ggml.tokens",
        Some(strs(&["a", "b", "a", "c"])),
        "has \"a\" twice",
    );
    refused(
        "tokenizer.ggml.token_type",
        Some(Value::Array(vec![Value::I32(1)])),
        "1 entries for 4 tokens",
    );
    refused(
        "tokenizer.ggml.merges",
        Some(strs(&["ab"])),
        "merges[0] \"ab\" is not two tokens",
    );
    refused(
        "tokenizer.ggml.eos_token_id",
        None,
        "missing metadata key tokenizer.ggml.eos_token_id",
    );
    refused(
        "tokenizer.ggml.eos_token_id",
        Some(Value::U32(9)),
        "outside the vocabulary",
    );
    refused(
        "tokenizer.ggml.bos_token_id",
        Some(Value::U32(9)),
        "outside the 4 tokens",
    );
    // Metadata in order, no tensors: the first one asked for is named with llama.cpp's name.
    refused("nothing", None, "token_embd.weight");
}

#[test]
fn paths_that_hold_no_single_text_gguf_are_errors() {
    let dir = temp_dir();
    write(&dir, "mmproj-model-f16.gguf", &metadata());
    let e = Model::load(&dir).err().unwrap().to_string();
    assert!(
        e.contains("mmproj-model-f16.gguf") && e.contains("no text model GGUF beside it"),
        "{e}"
    );
    write(&dir, "mmproj-other.gguf", &metadata());
    write(&dir, "text.gguf", &metadata());
    let e = Model::load(&dir).err().unwrap().to_string();
    assert!(
        e.contains("2 mmproj GGUF files (mmproj-model-f16.gguf, mmproj-other.gguf)"),
        "{e}"
    );
    for f in ["mmproj-model-f16.gguf", "mmproj-other.gguf", "text.gguf"] {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    write(&dir, "a.gguf", &metadata());
    write(&dir, "b.GGUF", &metadata());
    let e = Model::load(&dir).err().unwrap().to_string();
    assert!(e.contains("2 GGUF text models (a.gguf, b.gguf)"), "{e}");
    let other = dir.join("weights.bin");
    std::fs::write(&other, b"x").unwrap();
    let e = Model::load(&other).err().unwrap().to_string();
    assert!(
        e.contains("weights.bin: not a directory or a .gguf file"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The tokenizer of `meta`, through a written file.
fn tokenizer_of(meta: &[(&str, Value)]) -> crate::Tokenizer {
    let dir = temp_dir();
    let p = write(&dir, "t.gguf", meta);
    let g = crate::weights::gguf::GgufFile::open(&p).unwrap();
    let t = crate::Tokenizer::from_gguf(&g).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    t
}

#[test]
fn the_tokenizer_follows_merges_specials_and_add_bos() {
    let mut meta = metadata();
    let t = tokenizer_of(&meta);
    // "ab" merges; the control token is matched whole, never split into its bytes.
    assert_eq!(t.encode("ab").unwrap(), vec![3]);
    assert_eq!(t.encode("ba").unwrap(), vec![2, 1]);
    assert_eq!(t.encode("a<|endoftext|>b").unwrap(), vec![1, 0, 2]);
    assert_eq!(t.piece(0), b"<|endoftext|>");
    meta.push(("tokenizer.ggml.bos_token_id", Value::U32(0)));
    meta.push(("tokenizer.ggml.add_bos_token", Value::Bool(true)));
    assert_eq!(tokenizer_of(&meta).encode("ab").unwrap(), vec![0, 3]);
}
