//! llama.cpp's file types and the per-tensor type `llama-quantize` picks under each.

use crate::weights::quant::QuantType;

/// A file type: how every tensor is stored, as llama.cpp's `llama_ftype` of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// Every matrix in f32.
    F32,
    /// Every matrix in f16.
    F16,
    /// Every matrix in bf16.
    BF16,
    /// Mostly `q` (llama.cpp's Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K_S, Q5_K_S, Q6_K).
    Mostly(QuantType),
    /// Q4_K_M / Q5_K_M: mostly `q` (Q4_K or Q5_K), with Q6_K for the output and for half the
    /// value and down projections.
    Medium(QuantType),
}

impl FileType {
    /// Every file type, by the names of [`FileType::name`].
    pub const ALL: [FileType; 13] = [
        FileType::F32,
        FileType::F16,
        FileType::BF16,
        FileType::Mostly(QuantType::Q8_0),
        FileType::Mostly(QuantType::Q4_0),
        FileType::Mostly(QuantType::Q4_1),
        FileType::Mostly(QuantType::Q5_0),
        FileType::Mostly(QuantType::Q5_1),
        FileType::Mostly(QuantType::Q4_K),
        FileType::Mostly(QuantType::Q5_K),
        FileType::Mostly(QuantType::Q6_K),
        FileType::Medium(QuantType::Q4_K),
        FileType::Medium(QuantType::Q5_K),
    ];

    /// `f32`, `f16`, `bf16`, `q8_0` … `q6_k`, `q4_k_m`, `q5_k_m` (`q4_k`/`q5_k` are llama.cpp's
    /// Q4_K_S/Q5_K_S).
    pub fn name(self) -> String {
        match self {
            FileType::F32 => "f32".into(),
            FileType::F16 => "f16".into(),
            FileType::BF16 => "bf16".into(),
            FileType::Mostly(q) => q.name().into(),
            FileType::Medium(q) => format!("{}_m", q.name()),
        }
    }

    /// Parses [`FileType::name`] (any case; also `q4_k_s`, `q5_k_s`).
    pub fn from_name(s: &str) -> Option<FileType> {
        let s = s.to_ascii_lowercase();
        let s = s
            .strip_suffix("_s")
            .filter(|b| b.ends_with("_k"))
            .unwrap_or(&s);
        Self::ALL.into_iter().find(|t| t.name() == s)
    }

    /// llama.cpp's `llama_ftype` number (`general.file_type`).
    pub(super) fn number(self) -> u32 {
        match self {
            FileType::F32 => 0,
            FileType::F16 => 1,
            FileType::BF16 => 32,
            FileType::Mostly(q) => match q {
                QuantType::Q4_0 => 2,
                QuantType::Q4_1 => 3,
                QuantType::Q8_0 => 7,
                QuantType::Q5_0 => 8,
                QuantType::Q5_1 => 9,
                QuantType::Q4_K => 14,
                QuantType::Q5_K => 16,
                QuantType::Q6_K => 18,
            },
            FileType::Medium(QuantType::Q5_K) => 17,
            FileType::Medium(_) => 15,
        }
    }
}

/// How one tensor is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    F32,
    F16,
    BF16,
    Quant(QuantType),
}

impl Stored {
    pub(super) fn ggml_type(self) -> u32 {
        match self {
            Stored::F32 => 0,
            Stored::F16 => 1,
            Stored::BF16 => 30,
            Stored::Quant(q) => match q {
                QuantType::Q4_0 => 2,
                QuantType::Q4_1 => 3,
                QuantType::Q5_0 => 6,
                QuantType::Q5_1 => 7,
                QuantType::Q8_0 => 8,
                QuantType::Q4_K => 12,
                QuantType::Q5_K => 13,
                QuantType::Q6_K => 14,
            },
        }
    }
    pub(super) fn bytes_for(self, n: usize) -> usize {
        match self {
            Stored::F32 => 4 * n,
            Stored::F16 | Stored::BF16 => 2 * n,
            Stored::Quant(q) => q.bytes_for(n),
        }
    }
    pub(super) fn name(self) -> String {
        match self {
            Stored::F32 => "F32".into(),
            Stored::F16 => "F16".into(),
            Stored::BF16 => "BF16".into(),
            Stored::Quant(q) => q.name().to_uppercase(),
        }
    }
}

/// What a tensor is, for the per-tensor rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Embedding,
    Output,
    AttnV,
    FfnDown,
    /// Any other matrix.
    Matrix,
    /// Norm weights and biases.
    Vector,
}

/// llama.cpp's choice of layers that get more bits in the _M mixes: the first and last eighth
/// and every third layer between.
fn more_bits(layer: usize, layers: usize) -> bool {
    let (i, n) = (layer as i64, layers as i64);
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// The type `llama-quantize` gives a tensor of rows of `k` under file type `t` (without an
/// importance matrix): `tied` when the output projection is the embedding matrix.
pub(crate) fn stored_type(
    t: FileType,
    role: Role,
    layer: usize,
    layers: usize,
    k: usize,
    tied: bool,
) -> Stored {
    let base = match t {
        _ if role == Role::Vector => return Stored::F32,
        FileType::F32 => return Stored::F32,
        FileType::F16 => return Stored::F16,
        FileType::BF16 => return Stored::BF16,
        FileType::Mostly(q) | FileType::Medium(q) => q,
    };
    let medium = matches!(t, FileType::Medium(_));
    let mut q = base;
    if role == Role::Output || (tied && role == Role::Embedding) {
        q = if !k.is_multiple_of(base.block_elems()) {
            QuantType::Q8_0
        } else if base != QuantType::Q8_0 {
            QuantType::Q6_K
        } else {
            base
        };
    } else if role == Role::AttnV {
        if medium && more_bits(layer, layers) {
            q = QuantType::Q6_K;
        } else if t == FileType::Mostly(QuantType::Q4_K) && layer < 4 {
            q = QuantType::Q5_K;
        }
    } else if role == Role::FfnDown {
        if medium && more_bits(layer, layers) {
            q = QuantType::Q6_K;
        } else if t == FileType::Mostly(QuantType::Q4_K) && layer < layers / 8 {
            q = QuantType::Q5_K;
        }
    }
    // Rows that fit no block format stay F16, as llama.cpp leaves them.
    q.for_row(k).map_or(Stored::F16, Stored::Quant)
}
