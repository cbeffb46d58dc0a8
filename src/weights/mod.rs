//! Model weights: typed tensors read in place from the files (see `safetensors`), and the
//! dtype conversions every layer may use (`dtype`, a leaf module).

pub(crate) mod dtype;
mod safetensors;

use half::{bf16, f16};
use memmap2::Mmap;
use std::sync::Arc;

pub(crate) use self::safetensors::WeightStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DType {
    F32,
    F16,
    BF16,
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
}

impl<'a> View<'a> {
    /// Widens `[start, start + out.len())` to f32 (exact for bf16 and f16).
    pub fn to_f32(self, start: usize, out: &mut [f32]) {
        let n = out.len();
        match self {
            View::F32(s) => out.copy_from_slice(&s[start..start + n]),
            View::F16(s) => dtype::f16_to_f32(&s[start..start + n], out),
            View::BF16(s) => dtype::bf16_to_f32(&s[start..start + n], out),
        }
    }
    pub fn slice(self, start: usize, len: usize) -> View<'a> {
        match self {
            View::F32(s) => View::F32(&s[start..start + len]),
            View::F16(s) => View::F16(&s[start..start + len]),
            View::BF16(s) => View::BF16(&s[start..start + len]),
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
                }
            }
            Data::F32(v) => View::F32(v),
            Data::F16(v) => View::F16(v),
            Data::BF16(v) => View::BF16(v),
        }
    }
    /// The whole tensor widened to f32 (for small tensors: norms, biases, embeddings rows).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.numel()];
        self.view().to_f32(0, &mut out);
        out
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
