//! Writes GGUF version 3 files: metadata of every type and tensors, aligned as the reader and
//! llama.cpp expect. [`header`] serves `smolvlm quantize`, which streams the tensors after it;
//! [`GgufWriter`] assembles whole files in memory for the tests.

use super::gguf::Value;

/// A GGUF file being assembled in memory.
#[cfg(test)]
pub(crate) struct GgufWriter {
    alignment: usize,
    kv: Vec<(String, Value)>,
    /// (name, ggml dims innermost first, ggml type number, bytes)
    tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
}

fn type_of(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::Str(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend(x.to_le_bytes()),
        Value::I16(x) => out.extend(x.to_le_bytes()),
        Value::U32(x) => out.extend(x.to_le_bytes()),
        Value::I32(x) => out.extend(x.to_le_bytes()),
        Value::U64(x) => out.extend(x.to_le_bytes()),
        Value::I64(x) => out.extend(x.to_le_bytes()),
        Value::F32(x) => out.extend(x.to_le_bytes()),
        Value::F64(x) => out.extend(x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::Str(s) => put_str(out, s),
        Value::Array(a) => {
            // An empty array is written as one of u8.
            out.extend(a.first().map_or(0, type_of).to_le_bytes());
            out.extend((a.len() as u64).to_le_bytes());
            for e in a {
                put_value(out, e);
            }
        }
    }
}

/// A tensor's entry in the header: ggml dims innermost first, ggml's type number, data bytes.
#[derive(Clone)]
pub(crate) struct TensorEntry {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: u32,
    pub len: usize,
}

/// The bytes before the tensor data: magic, version 3, counts, metadata and the tensor table,
/// padded to `alignment`. Tensors follow in order, each padded to `alignment`.
pub(crate) fn header(kv: &[(String, Value)], tensors: &[TensorEntry], alignment: usize) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((kv.len() as u64).to_le_bytes());
    for (k, v) in kv {
        put_str(&mut out, k);
        out.extend(type_of(v).to_le_bytes());
        put_value(&mut out, v);
    }
    let mut offset = 0usize;
    for t in tensors {
        put_str(&mut out, &t.name);
        out.extend((t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(t.ty.to_le_bytes());
        out.extend((offset as u64).to_le_bytes());
        offset = (offset + t.len).next_multiple_of(alignment);
    }
    out.resize(out.len().next_multiple_of(alignment), 0);
    out
}

#[cfg(test)]
impl GgufWriter {
    pub fn new(alignment: usize) -> GgufWriter {
        GgufWriter {
            alignment,
            kv: Vec::new(),
            tensors: Vec::new(),
        }
    }
    pub fn meta(&mut self, key: &str, v: Value) -> &mut Self {
        self.kv.push((key.to_string(), v));
        self
    }
    /// Adds a tensor; `dims` innermost first (ggml's order), `ty` ggml's type number.
    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, bytes: Vec<u8>) -> &mut Self {
        self.tensors
            .push((name.to_string(), dims.to_vec(), ty, bytes));
        self
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let entries: Vec<TensorEntry> = self
            .tensors
            .iter()
            .map(|(name, dims, ty, bytes)| TensorEntry {
                name: name.clone(),
                dims: dims.clone(),
                ty: *ty,
                len: bytes.len(),
            })
            .collect();
        let mut out = header(&self.kv, &entries, self.alignment);
        for (_, _, _, bytes) in &self.tensors {
            out.extend(bytes);
            out.resize(out.len().next_multiple_of(self.alignment), 0);
        }
        out
    }
}
