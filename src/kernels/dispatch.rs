//! Which SIMD variant runs: detected at run time (never assumed at build time), chosen once per
//! model, and overridable by a value so tests can run every variant in one process.

/// A kernel variant. Every variant computes the same operations; the portable one is the
/// oracle the others are tested against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Plain Rust, no target features: runs everywhere.
    Portable,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL (+ FMA, F16C): register-blocked GEMM on packed bf16 panels.
    Avx512,
    /// AVX-512 with AVX512_BF16: native bf16 dot products (`vdpbf16ps`) for the bf16 mode.
    Avx512Bf16,
    /// AVX512_BF16 with AMX-BF16 tiles (`tdpbf16ps`) for the bf16 mode's matrix products.
    Amx,
}

impl Isa {
    /// Every variant this build knows, supported here or not.
    pub const ALL: [Isa; 5] = [
        Isa::Portable,
        Isa::Avx2,
        Isa::Avx512,
        Isa::Avx512Bf16,
        Isa::Amx,
    ];

    /// A short name: `portable`, `avx2`, `avx512`, `avx512bf16`, `amx`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Avx512Bf16 => "avx512bf16",
            Isa::Amx => "amx",
        }
    }

    /// Whether the variant has native bf16 dot products (what `Precision::Auto` looks for).
    pub fn has_bf16_dot(self) -> bool {
        matches!(self, Isa::Avx512Bf16 | Isa::Amx)
    }

    /// Whether the variant has int8 dot products for the int8 mode (AVX512_VNNI with an AVX-512
    /// variant; what `Precision::Auto` looks for with block-quantized weights).
    pub fn has_int8_dot(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if matches!(self, Isa::Avx512 | Isa::Avx512Bf16 | Isa::Amx) {
            return super::avx512::Avx512Vnni::new().is_some();
        }
        false
    }

    /// Whether this CPU can run the variant.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Portable => true,
            Isa::Avx2 => avx2_present(),
            Isa::Avx512 => avx512_present(false),
            Isa::Avx512Bf16 => avx512_present(true),
            Isa::Amx => avx512_present(true) && amx_present(),
        }
    }

    /// The variants this CPU can run, portable first.
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
    }

    /// The fastest supported variant; `SMOLVLM_NO_SIMD` (any value) forces the portable one.
    /// `avx512bf16` is chosen only where its bf16 dot products outrun f32 FMAs (timed once).
    pub fn detect() -> Isa {
        if std::env::var_os("SMOLVLM_NO_SIMD").is_some() {
            return Isa::Portable;
        }
        Isa::supported()
            .into_iter()
            .rev()
            .find(|&i| i != Isa::Avx512Bf16 || bf16_dot_outruns_f32())
            .unwrap_or(Isa::Portable)
    }

    /// Parses a name given by [`Isa::name`].
    pub fn from_name(s: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| i.name() == s)
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_present() -> bool {
    super::avx2::Avx2::new().is_some()
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_present() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn avx512_present(bf16: bool) -> bool {
    use super::avx512::{Avx512, Avx512Bf16};
    avx2_present()
        && if bf16 {
            Avx512Bf16::new().is_some()
        } else {
            Avx512::new().is_some()
        }
}

#[cfg(target_arch = "x86_64")]
fn amx_present() -> bool {
    super::amx::Amx::new().is_some()
}

#[cfg(not(target_arch = "x86_64"))]
fn amx_present() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn bf16_dot_outruns_f32() -> bool {
    super::avx512::Avx512Bf16::new().is_some_and(|t| t.outruns_f32())
}

#[cfg(not(target_arch = "x86_64"))]
fn bf16_dot_outruns_f32() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn avx512_present(_bf16: bool) -> bool {
    false
}

/// How a product on bf16 weights computes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// `Int8` for decoders of block-quantized weights on CPUs with int8 dot products;
    /// otherwise `Bf16` for bf16 checkpoints on CPUs with native bf16 dot products, else `F32`.
    #[default]
    Auto,
    /// f32 activations and accumulation over the stored weights (transformers' float32).
    F32,
    /// Activations rounded to bf16 (nearest even) before products with bf16 weights, f32
    /// accumulation (transformers' bfloat16 linears). Norms, softmax, attention and residuals
    /// stay f32; f16 and f32 weights compute as in `F32`.
    Bf16,
    /// The decoder's products with block-quantized weights (Q8_0 … Q6_K) quantize their
    /// activations to int8 blocks of 32 (scale amax/127) and sum integer products, as llama.cpp
    /// does: faster, and tested against its own reference rather than transformers. Products
    /// with other weights compute as `Auto` resolves without quantized weights (`Bf16` for bf16
    /// checkpoints on CPUs with native bf16 products, else `F32`); the KV cache stays f32.
    Int8,
}

impl Precision {
    /// A short name: `auto`, `f32`, `bf16`, `int8`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Auto => "auto",
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
        }
    }

    /// Parses a name given by [`Precision::name`].
    pub fn from_name(s: &str) -> Option<Precision> {
        [
            Precision::Auto,
            Precision::F32,
            Precision::Bf16,
            Precision::Int8,
        ]
        .into_iter()
        .find(|p| p.name() == s)
    }

    /// The mode `Auto` stands for with this variant and weight types (`quantized`: the decoder's
    /// projections are block-quantized).
    pub fn resolve(self, isa: Isa, weights_bf16: bool, quantized: bool) -> Precision {
        match self {
            Precision::Auto if quantized && isa.has_int8_dot() => Precision::Int8,
            Precision::Auto if isa.has_bf16_dot() && weights_bf16 => Precision::Bf16,
            Precision::Auto => Precision::F32,
            p => p,
        }
    }
}

/// A line describing this build and machine (for `--debug` and `smolvlm_system_info`). Never
/// panics and starts no threads.
pub fn system_info() -> String {
    let names: Vec<&str> = Isa::supported().into_iter().map(Isa::name).collect();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!(
        "smolvlm {}; build: {}; simd: {} (supported: {}); blas: {} (one thread per call; \
         threads are per context); cpus: {cpus}",
        env!("CARGO_PKG_VERSION"),
        env!("SMOLVLM_BUILD"),
        Isa::detect().name(),
        names.join(","),
        super::blas::NAME,
    )
}
