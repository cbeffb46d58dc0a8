//! Model weights: typed tensors read in place from the files (see `safetensors`), and the
//! dtype conversions every layer may use (`dtype`, a leaf module).

pub(crate) mod dtype;
pub(crate) mod gguf;
pub(crate) mod gguf_write;
pub(crate) mod kquant;
pub(crate) mod quant;
mod safetensors;
pub(crate) mod store;

use crate::error::{Error, ErrorKind, Result};
use half::{bf16, f16};
use memmap2::Mmap;
use quant::QuantType;
use rayon::prelude::*;
use std::sync::Arc;

#[cfg(feature = "fuzzing")]
pub(crate) use self::safetensors::SafetensorsStore;
pub(crate) use self::store::WeightStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DType {
    F32,
    F16,
    BF16,
    /// Whole blocks along each row.
    Quant(QuantType),
}

enum Data {
    Mapped {
        map: Arc<Mmap>,
        start: usize,
        len: usize,
    },
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    Quant(Vec<u8>),
}

impl Data {
    /// Dense elements of `dtype` read out of little-endian `bytes` (for a tensor the file does
    /// not align for its element type).
    fn copied(dtype: DType, bytes: &[u8]) -> Data {
        let words = |n: usize| bytes.chunks_exact(n);
        match dtype {
            DType::F32 => Data::F32(
                words(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            DType::F16 => Data::F16(words(2).map(|c| f16::from_le_bytes([c[0], c[1]])).collect()),
            DType::BF16 => Data::BF16(
                words(2)
                    .map(|c| bf16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
            // Blocks are bytes: they need no alignment.
            DType::Quant(_) => Data::Quant(bytes.to_vec()),
        }
    }
}

/// A weight tensor, borrowed from the mmap (or owned when it had to be realigned).
pub(crate) struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    data: Data,
}

/// A typed view of a tensor's elements.
#[derive(Clone, Copy)]
pub(crate) enum View<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    BF16(&'a [bf16]),
    /// Whole blocks of a block format, as bytes.
    Quant(QuantType, &'a [u8]),
}

/// The byte range of elements `[start, start + len)` of a block format; both ends must fall on
/// block boundaries (rows of quantized tensors are whole blocks).
fn block_range(t: QuantType, start: usize, len: usize) -> std::ops::Range<usize> {
    let be = t.block_elems();
    assert!(
        start.is_multiple_of(be) && len.is_multiple_of(be),
        "{t:?}: elements {start}..+{len} cut a block"
    );
    t.bytes_for(start)..t.bytes_for(start + len)
}

impl<'a> View<'a> {
    /// Widens `[start, start + out.len())` to f32 (exact for bf16 and f16; quantized blocks
    /// expand to the values ggml's dequantization gives).
    pub fn to_f32(self, start: usize, out: &mut [f32]) {
        let n = out.len();
        match self {
            View::F32(s) => out.copy_from_slice(&s[start..start + n]),
            View::F16(s) => dtype::f16_to_f32(&s[start..start + n], out),
            View::BF16(s) => dtype::bf16_to_f32(&s[start..start + n], out),
            View::Quant(t, b) => quant::dequantize(t, &b[block_range(t, start, n)], out),
        }
    }
    pub fn slice(self, start: usize, len: usize) -> View<'a> {
        match self {
            View::F32(s) => View::F32(&s[start..start + len]),
            View::F16(s) => View::F16(&s[start..start + len]),
            View::BF16(s) => View::BF16(&s[start..start + len]),
            View::Quant(t, b) => View::Quant(t, &b[block_range(t, start, len)]),
        }
    }
}

impl Tensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn view(&self) -> View<'_> {
        match &self.data {
            Data::Mapped { map, start, len } => {
                let bytes = &map[*start..*start + *len];
                // Alignment was checked when the tensor was created, so these casts cannot fail.
                match self.dtype {
                    DType::F32 => View::F32(bytemuck::cast_slice(bytes)),
                    DType::F16 => View::F16(bytemuck::cast_slice(bytes)),
                    DType::BF16 => View::BF16(bytemuck::cast_slice(bytes)),
                    DType::Quant(t) => View::Quant(t, bytes),
                }
            }
            Data::F32(v) => View::F32(v),
            Data::F16(v) => View::F16(v),
            Data::BF16(v) => View::BF16(v),
            Data::Quant(v) => match self.dtype {
                DType::Quant(t) => View::Quant(t, v),
                _ => unreachable!("quantized data has a quantized dtype"),
            },
        }
    }

    /// The format [`Tensor::quantized`] stores this tensor in when `t` is asked for (see
    /// [`QuantType::for_row`]); None unless it is a dense [n, k] matrix whose rows fit blocks.
    pub fn quantizable_as(&self, t: QuantType) -> Option<QuantType> {
        match self.shape[..] {
            [n, k] if n > 0 && !matches!(self.dtype, DType::Quant(_)) => t.for_row(k),
            _ => None,
        }
    }

    /// This matrix quantized row by row into `t`, as ggml's reference quantization does.
    ///
    /// # Panics
    /// Unless `self.quantizable_as(t) == Some(t)`.
    pub fn quantized(&self, t: QuantType) -> Result<Tensor> {
        assert!(
            self.quantizable_as(t) == Some(t),
            "{}: not a matrix of whole {} blocks",
            self.name,
            t.name()
        );
        let (n, k) = (self.shape[0], self.shape[1]);
        let view = self.view();
        let row_bytes = t.bytes_for(k);
        let mut out = Vec::new();
        out.try_reserve_exact(n * row_bytes).map_err(|_| {
            Error::new(
                ErrorKind::Oom,
                format!(
                    "cannot allocate {} MiB for {} in {}",
                    (n * row_bytes) >> 20,
                    self.name,
                    t.name()
                ),
            )
        })?;
        out.resize(n * row_bytes, 0u8);
        out.par_chunks_mut(row_bytes).enumerate().for_each_init(
            || vec![0.0f32; k],
            |wide, (j, row)| {
                view.to_f32(j * k, wide);
                quant::quantize(t, wide, row);
            },
        );
        Ok(Tensor {
            name: self.name.clone(),
            shape: self.shape.clone(),
            dtype: DType::Quant(t),
            data: Data::Quant(out),
        })
    }
    /// The whole tensor widened to f32 (for small tensors: norms, biases, embeddings rows).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.numel()];
        self.view().to_f32(0, &mut out);
        out
    }
    /// Drops this tensor's pages from the process's resident set (after it was quantized into a
    /// copy): they are read again from the file if touched later. No effect on owned data.
    pub fn release_pages(&self) {
        #[cfg(unix)]
        if let Data::Mapped { map, start, len } = &self.data {
            // SAFETY: the map is a read-only, private file mapping, so discarding its pages loses
            // nothing: a later read faults the same bytes in from the file.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, *start, *len)
            };
        }
    }

    /// True when the data is read in place from the file.
    #[cfg(test)]
    pub fn is_mapped(&self) -> bool {
        matches!(self.data, Data::Mapped { .. })
    }
}

#[cfg(test)]
impl Tensor {
    fn owned(name: &str, shape: Vec<usize>, dtype: DType, data: Data) -> Tensor {
        Tensor {
            name: name.to_string(),
            shape,
            dtype,
            data,
        }
    }
    /// A tensor that owns f32 data (for kernel tests).
    pub(crate) fn owned_f32(name: &str, shape: Vec<usize>, v: Vec<f32>) -> Tensor {
        Self::owned(name, shape, DType::F32, Data::F32(v))
    }
    /// A tensor that owns bf16 data (for kernel tests).
    pub(crate) fn owned_bf16(name: &str, shape: Vec<usize>, v: Vec<bf16>) -> Tensor {
        Self::owned(name, shape, DType::BF16, Data::BF16(v))
    }
    /// A tensor that owns f16 data (for kernel tests).
    pub(crate) fn owned_f16(name: &str, shape: Vec<usize>, v: Vec<f16>) -> Tensor {
        Self::owned(name, shape, DType::F16, Data::F16(v))
    }
}
