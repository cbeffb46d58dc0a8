//! Shared helpers for the integration tests.
#![allow(dead_code)]

use safetensors::tensor::TensorView;
use serde_json::Value;
use smolvlm::{Message, Precision, Request, RgbImage, Split};
use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    root().join("tests/fixtures")
}

pub fn read_json(p: &Path) -> Value {
    let t = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("id list")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// The request a golden case describes.
pub fn request_for(case: &Value, max_tokens: usize) -> Request {
    let messages = Message::parse_list(&case["messages"]).expect("messages");
    let images: Vec<RgbImage> = case["images"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    RgbImage::open(&fixtures().join("images").join(p.as_str().unwrap())).unwrap()
                })
                .collect()
        })
        .unwrap_or_default();
    let mut r = Request::simple("", None, vec![]);
    r.messages = messages;
    r.images = images;
    r.split = match case.get("do_image_splitting").and_then(|v| v.as_bool()) {
        Some(true) => Split::On,
        Some(false) => Split::Off,
        None => Split::ModelDefault,
    };
    r.max_tokens = max_tokens;
    // The goldens are transformers in float32: exactness is tested in the f32 mode.
    r.precision = Precision::F32;
    r
}

/// Max |a[i] − golden| over the golden's [[index, value], ...] samples.
pub fn sample_diff(ours: &[f32], samples: &Value) -> f64 {
    samples
        .as_array()
        .expect("samples")
        .iter()
        .map(|s| {
            let i = s[0].as_u64().unwrap() as usize;
            (ours[i] as f64 - s[1].as_f64().unwrap()).abs()
        })
        .fold(0.0, f64::max)
}

/// Greedy tokens compared with the golden under the near-tie rule: at the first step whose
/// golden top-1/top-2 margin is below `tol`, either choice is accepted and comparison ends.
/// Returns Err(description) on a real mismatch, Ok(steps compared) otherwise.
pub fn compare_greedy(
    ours: &[u32],
    golden: &[u32],
    margins: &[f64],
    tol: f64,
) -> Result<usize, String> {
    for (i, &g) in golden.iter().enumerate() {
        let low = margins.get(i).is_some_and(|&m| m < tol);
        if low {
            return Ok(i);
        }
        match ours.get(i) {
            Some(&o) if o == g => {}
            Some(&o) => {
                return Err(format!(
                    "step {i}: ours {o}, golden {g} (margin {:?})",
                    margins.get(i)
                ))
            }
            None => return Err(format!("step {i}: we stopped, golden has {g}")),
        }
    }
    if ours.len() > golden.len() {
        return Err(format!(
            "we generated {} tokens, golden {}",
            ours.len(),
            golden.len()
        ));
    }
    Ok(golden.len())
}

/// A private, writable copy of a fixture model directory.
pub fn copy_model(name: &str, tag: &str) -> PathBuf {
    let src = fixtures().join("models").join(name);
    let dst = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(tag);
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    dst
}

/// (name, dtype, shape, bytes) of every tensor of a safetensors file, sorted by name.
pub type Tensors = Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>;

pub fn read_tensors(path: &Path) -> Tensors {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Tensors = st
        .iter()
        .map(|(n, t)| {
            (
                n.to_string(),
                t.dtype(),
                t.shape().to_vec(),
                t.data().to_vec(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

pub fn write_tensors(path: &Path, tensors: &[(String, safetensors::Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// (name, ggml type, SHA-256 of the data) of every tensor of a GGUF file, read with the
/// format's own layout (not this library's reader).
pub fn tensor_hashes(path: &Path) -> Vec<(String, u32, String)> {
    let b = std::fs::read(path).unwrap();
    let mut at = 4usize;
    let u32_at = |at: &mut usize| {
        let v = u32::from_le_bytes(b[*at..*at + 4].try_into().unwrap());
        *at += 4;
        v
    };
    let u64_at = |at: &mut usize| {
        let v = u64::from_le_bytes(b[*at..*at + 8].try_into().unwrap());
        *at += 8;
        v
    };
    assert_eq!(&b[..4], b"GGUF");
    assert_eq!(u32_at(&mut at), 3);
    let (nt, nkv) = (u64_at(&mut at), u64_at(&mut at));
    fn skip(b: &[u8], at: &mut usize, ty: u32) {
        let fixed = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8];
        match ty {
            8 => {
                let n = u64::from_le_bytes(b[*at..*at + 8].try_into().unwrap()) as usize;
                *at += 8 + n;
            }
            9 => {
                let et = u32::from_le_bytes(b[*at..*at + 4].try_into().unwrap());
                let n = u64::from_le_bytes(b[*at + 4..*at + 12].try_into().unwrap());
                *at += 12;
                for _ in 0..n {
                    skip(b, at, et);
                }
            }
            t => *at += fixed[t as usize],
        }
    }
    for _ in 0..nkv {
        let n = u64_at(&mut at) as usize;
        at += n;
        let ty = u32_at(&mut at);
        skip(&b, &mut at, ty);
    }
    let mut table = Vec::new();
    for _ in 0..nt {
        let n = u64_at(&mut at) as usize;
        let name = String::from_utf8(b[at..at + n].to_vec()).unwrap();
        at += n;
        let nd = u32_at(&mut at);
        let dims: Vec<u64> = (0..nd).map(|_| u64_at(&mut at)).collect();
        let ty = u32_at(&mut at);
        let off = u64_at(&mut at) as usize;
        table.push((name, dims, ty, off));
    }
    let data = at.next_multiple_of(32);
    let mut starts: Vec<usize> = table.iter().map(|t| data + t.3).collect();
    starts.push(b.len());
    let mut out = Vec::new();
    for (i, (name, dims, ty, _)) in table.iter().enumerate() {
        let n: u64 = dims.iter().product();
        let len = match ty {
            0 => 4 * n,
            1 | 30 => 2 * n,
            _ => {
                let (blk, bytes) = match ty {
                    2 => (32, 18),
                    3 => (32, 20),
                    6 => (32, 22),
                    7 => (32, 24),
                    8 => (32, 34),
                    12 => (256, 144),
                    13 => (256, 176),
                    14 => (256, 210),
                    t => panic!("type {t}"),
                };
                n / blk * bytes
            }
        } as usize;
        assert!(starts[i] + len <= starts[i + 1], "{name}");
        let h = <sha2::Sha256 as sha2::Digest>::digest(&b[starts[i]..starts[i] + len]);
        let hex: String = h.iter().map(|x| format!("{x:02x}")).collect();
        out.push((name.clone(), *ty, hex));
    }
    out
}
