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
}

impl Isa {
    /// Every variant this build knows, supported here or not.
    pub const ALL: [Isa; 2] = [Isa::Portable, Isa::Avx2];

    /// A short name: `portable`, `avx2`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
        }
    }

    /// Whether this CPU can run the variant.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Portable => true,
            Isa::Avx2 => avx2_present(),
        }
    }

    /// The variants this CPU can run, portable first.
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
    }

    /// The fastest supported variant; `SMOLVLM_NO_SIMD` (any value) forces the portable one.
    pub fn detect() -> Isa {
        if std::env::var_os("SMOLVLM_NO_SIMD").is_some() {
            return Isa::Portable;
        }
        *Isa::supported().last().unwrap_or(&Isa::Portable)
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
