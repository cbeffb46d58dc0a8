//! GGUF files (versions 2 and 3), mmap'd: the metadata (every value type, arrays of arrays
//! included) and the tensor table, checked against the file before anything is read from it.
//! Tensors are views into the map, as with safetensors.
//!
//! Every count, length, offset and size is bounded by the bytes that are actually there, so a
//! hostile file is an error naming the file and what is wrong, never a huge allocation.

use super::quant::QuantType;
use super::{DType, Data, Tensor};
use crate::error::{Error, Result};
use memmap2::Mmap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The alignment of the data section when `general.alignment` is absent.
const DEFAULT_ALIGNMENT: u64 = 32;
/// Arrays nested deeper than this are refused (real files nest at most once).
const MAX_DEPTH: usize = 4;
/// ggml's GGML_MAX_DIMS.
const MAX_DIMS: usize = 4;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Value>),
}

impl Value {
    /// The value as an unsigned integer, when it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// The element type of a tensor, by ggml's numbering; the ones this crate computes with
/// are named, the others kept as their number (an error only when such a tensor is used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GgmlType {
    Known(DType),
    Other(u32),
}

/// ggml's type number → (type, elements per block, bytes per block) for the types whose size
/// is known; None for numbers ggml does not define.
fn ggml_type(t: u32) -> Option<(GgmlType, u64, u64)> {
    let known = |d, blk, bytes| Some((GgmlType::Known(d), blk, bytes));
    let other = |blk, bytes| Some((GgmlType::Other(t), blk, bytes));
    match t {
        0 => known(DType::F32, 1, 4),
        1 => known(DType::F16, 1, 2),
        2 => known(DType::Quant(QuantType::Q4_0), 32, 18),
        3 => known(DType::Quant(QuantType::Q4_1), 32, 20),
        6 => known(DType::Quant(QuantType::Q5_0), 32, 22),
        7 => known(DType::Quant(QuantType::Q5_1), 32, 24),
        8 => known(DType::Quant(QuantType::Q8_0), 32, 34),
        9 => other(32, 36),   // Q8_1
        10 => other(256, 84), // Q2_K
        11 => other(256, 110),
        12 => known(DType::Quant(QuantType::Q4_K), 256, 144),
        13 => known(DType::Quant(QuantType::Q5_K), 256, 176),
        14 => known(DType::Quant(QuantType::Q6_K), 256, 210),
        15 => other(256, 292), // Q8_K
        24 => other(1, 1),     // I8
        25 => other(1, 2),     // I16
        26 => other(1, 4),     // I32
        27 => other(1, 8),     // I64
        28 => other(1, 8),     // F64
        30 => known(DType::BF16, 1, 2),
        _ => None,
    }
}

/// ggml's name of a type number, for messages.
pub(crate) fn ggml_type_name(t: GgmlType) -> String {
    let n = match t {
        GgmlType::Known(DType::F32) => 0,
        GgmlType::Known(DType::F16) => 1,
        GgmlType::Known(DType::BF16) => 30,
        GgmlType::Known(DType::Quant(q)) => return q.name().to_uppercase(),
        GgmlType::Other(n) => n,
    };
    let names = [
        (0, "F32"),
        (1, "F16"),
        (6, "Q5_0"),
        (7, "Q5_1"),
        (9, "Q8_1"),
        (10, "Q2_K"),
        (11, "Q3_K"),
        (12, "Q4_K"),
        (13, "Q5_K"),
        (14, "Q6_K"),
        (15, "Q8_K"),
        (24, "I8"),
        (25, "I16"),
        (26, "I32"),
        (27, "I64"),
        (28, "F64"),
        (30, "BF16"),
    ];
    names
        .iter()
        .find(|(k, _)| *k == n)
        .map(|(_, s)| s.to_string())
        .unwrap_or_else(|| format!("type {n}"))
}

/// One entry of the tensor table. `dims` are ggml's (innermost first).
#[derive(Debug, Clone)]
pub(crate) struct TensorInfo {
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Absolute byte range in the file.
    pub start: usize,
    pub len: usize,
}

/// A parsed GGUF file.
pub(crate) struct GgufFile {
    pub path: PathBuf,
    map: Arc<Mmap>,
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, Value)>,
    /// Tensors in file order.
    pub tensors: Vec<(String, TensorInfo)>,
    by_name: HashMap<String, usize>,
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn err(&self, what: impl std::fmt::Display) -> Error {
        Error::model(format!(
            "{}: not a valid GGUF file: {what} (at byte {})",
            self.path.display(),
            self.at
        ))
    }
    fn left(&self) -> usize {
        self.b.len() - self.at
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.left() {
            return Err(self.err(format!("{n} bytes needed, {} left", self.left())));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A count of items each at least `min_bytes` long: refused when they cannot all be there.
    fn count(&mut self, min_bytes: usize, what: &str) -> Result<usize> {
        let n = self.u64()?;
        if n > (self.left() / min_bytes.max(1)) as u64 {
            return Err(self.err(format!(
                "{what} count {n} cannot fit in the {} bytes left",
                self.left()
            )));
        }
        Ok(n as usize)
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.count(1, what)?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.err(format!("{what} is not UTF-8")))
    }
    fn value(&mut self, ty: u32, depth: usize, key: &str) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.array::<1>()?[0]),
            1 => Value::I8(self.array::<1>()?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array()?)),
            3 => Value::I16(i16::from_le_bytes(self.array()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(i32::from_le_bytes(self.array()?)),
            6 => Value::F32(f32::from_le_bytes(self.array()?)),
            7 => match self.array::<1>()?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                v => return Err(self.err(format!("{key}: bool value {v}"))),
            },
            8 => Value::Str(self.string(key)?),
            9 => {
                if depth >= MAX_DEPTH {
                    return Err(self.err(format!("{key}: arrays nested deeper than {MAX_DEPTH}")));
                }
                let et = self.u32()?;
                let min = match et {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    t => return Err(self.err(format!("{key}: array of unknown type {t}"))),
                };
                let n = self.count(min, key)?;
                let mut v = Vec::new();
                v.try_reserve_exact(n)
                    .map_err(|_| self.err(format!("{key}: {n} array elements")))?;
                for _ in 0..n {
                    v.push(self.value(et, depth + 1, key)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.array()?)),
            12 => Value::F64(f64::from_le_bytes(self.array()?)),
            t => return Err(self.err(format!("{key}: unknown value type {t}"))),
        })
    }
}

impl GgufFile {
    /// Maps and parses `path`.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only and private to this process; a file truncated or
        // rewritten by another process while mapped is outside what any mmap loader can guard.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let len = map.len();
        Self::parse(path, Arc::new(map), len)
    }

    /// Parses a copy of `bytes` (the fuzz target's entry; errors name the file "fuzz.gguf").
    #[cfg(feature = "fuzzing")]
    pub fn from_bytes(bytes: &[u8]) -> Result<GgufFile> {
        let path = Path::new("fuzz.gguf");
        let mut anon =
            memmap2::MmapMut::map_anon(bytes.len().max(1)).map_err(|e| Error::io(path, e))?;
        anon[..bytes.len()].copy_from_slice(bytes);
        let map = anon.make_read_only().map_err(|e| Error::io(path, e))?;
        Self::parse(path, Arc::new(map), bytes.len())
    }

    /// Parses the first `len` bytes of `map`.
    fn parse(path: &Path, map: Arc<Mmap>, len: usize) -> Result<GgufFile> {
        let mut r = Reader {
            b: &map[..len],
            at: 0,
            path,
        };
        if r.left() < 4 || &r.b[..4] != b"GGUF" {
            return Err(r.err("no GGUF magic"));
        }
        r.at = 4;
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            return Err(r.err(format!("version {version} (versions 2 and 3 are read)")));
        }
        // A tensor entry takes at least 8 + 4 + 8 + 4 + 8 bytes, a metadata entry 8 + 4 + 1.
        let n_tensors = r.count(32, "tensor")?;
        let n_kv = r.count(13, "metadata")?;
        let mut metadata = Vec::with_capacity(n_kv);
        for _ in 0..n_kv {
            let key = r.string("metadata key")?;
            let ty = r.u32()?;
            let v = r.value(ty, 0, &key)?;
            if metadata.iter().any(|(k, _)| *k == key) {
                return Err(r.err(format!("metadata key {key} appears twice")));
            }
            metadata.push((key, v));
        }
        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some((_, Value::U32(a))) if a.is_power_of_two() => *a as u64,
            Some((_, v)) => return Err(r.err(format!("general.alignment {v:?}"))),
        };
        let mut raw = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = r.string("tensor name")?;
            let nd = r.u32()? as usize;
            if nd == 0 || nd > MAX_DIMS {
                return Err(r.err(format!("tensor {name}: {nd} dimensions")));
            }
            let mut dims = Vec::with_capacity(nd);
            for _ in 0..nd {
                dims.push(r.u64()?);
            }
            let t = r.u32()?;
            let offset = r.u64()?;
            raw.push((name, dims, t, offset));
        }
        let data_start = (r.at as u64).next_multiple_of(alignment);
        let file_len = len as u64;
        let mut tensors = Vec::with_capacity(n_tensors);
        let mut by_name = HashMap::with_capacity(n_tensors);
        for (name, dims, t, offset) in raw {
            let bad = |what: String| r.err(format!("tensor {name}: {what}"));
            let (ty, blk, bytes) = ggml_type(t).ok_or_else(|| bad(format!("unknown type {t}")))?;
            let n = dims
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .filter(|&n| n > 0 && n < 1 << 48)
                .ok_or_else(|| bad(format!("dimensions {dims:?}")))?;
            if dims[0] % blk != 0 {
                return Err(bad(format!(
                    "rows of {} elements do not fill blocks of {blk}",
                    dims[0]
                )));
            }
            let len = n / blk * bytes;
            if offset % alignment != 0 {
                return Err(bad(format!("offset {offset} not aligned to {alignment}")));
            }
            let start = data_start
                .checked_add(offset)
                .filter(|s| s.checked_add(len).is_some_and(|e| e <= file_len))
                .ok_or_else(|| {
                    bad(format!(
                        "{len} bytes at offset {offset} lie past the end of the file ({file_len} bytes)"
                    ))
                })?;
            if by_name.insert(name.clone(), tensors.len()).is_some() {
                return Err(bad("appears twice".into()));
            }
            let info = TensorInfo {
                dims,
                ty,
                start: start as usize,
                len: len as usize,
            };
            tensors.push((name, info));
        }
        Ok(GgufFile {
            path: path.to_path_buf(),
            map,
            version,
            metadata,
            tensors,
            by_name,
        })
    }

    /// The metadata value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The table entry of tensor `name`.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i].1)
    }

    /// Tensor `name` in torch's shape order (outermost first: a linear weight is [n, k]), read
    /// in place; `shape` is what the caller expects.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let info = self.info(name).ok_or_else(|| {
            Error::model(format!("{}: missing tensor {name}", self.path.display()))
        })?;
        let torch: Vec<usize> = info.dims.iter().rev().map(|&d| d as usize).collect();
        if torch != shape {
            return Err(Error::model(format!(
                "{}: tensor {name} has shape {torch:?}, expected {shape:?}",
                self.path.display()
            )));
        }
        let dtype = match info.ty {
            GgmlType::Known(d) => d,
            t => {
                return Err(Error::model(format!(
                    "{}: tensor {name} is {}; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K",
                    self.path.display(),
                    ggml_type_name(t)
                )))
            }
        };
        let align = match dtype {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Quant(_) => 1,
        };
        let bytes = &self.map[info.start..info.start + info.len];
        let data = if (bytes.as_ptr() as usize).is_multiple_of(align) {
            Data::Mapped {
                map: self.map.clone(),
                start: info.start,
                len: info.len,
            }
        } else {
            // Only a general.alignment below the element size gets here: copy the tensor out.
            Data::copied(dtype, bytes)
        };
        Ok(Tensor {
            name: name.to_string(),
            shape: torch,
            dtype,
            data,
        })
    }
}

#[cfg(test)]
#[path = "gguf_tests.rs"]
mod tests;
