//! AVX-512 kernels (F, BW, VL; FMA and F16C) and, behind a second token, the AVX512_BF16 ones
//! (`vdpbf16ps`). Reached only through [`Avx512`] / [`Avx512Bf16`], which exist only after the
//! CPU was checked at run time.
//!
//! The matrix kernels read weights in the pair-packed layout of `gemm.rs`: one u32 holds the
//! bf16 weights of one output column at two consecutive k, and a panel row holds `NR` columns.

use half::{bf16, f16};
use std::arch::x86_64::*;

/// Rows of the GEMM microkernels.
pub(crate) const MR: usize = 12;
/// Output columns of the GEMM microkernels (two 16-lane vectors).
pub(crate) const NR: usize = 32;

/// Proof that this CPU has AVX-512 F/BW/VL, FMA and F16C.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512(());

/// Proof that this CPU also has AVX512_BF16.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512Bf16(());

impl Avx512 {
    /// Some(token) when the CPU supports the variant.
    pub(crate) fn new() -> Option<Avx512> {
        let ok = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        ok.then_some(Avx512(()))
    }

    /// c[r·ldc + j] = Σ_k xp[k·MR + r] · w(k, j) for r < mr, j < nr, where `wp` holds `kp`
    /// panel rows of pair-packed bf16 weights and `xp` 2·kp rows of MR activations.
    ///
    /// # Safety
    /// `c` is valid for writes of rows r < mr, nr floats each at stride `ldc`, and nothing else
    /// touches those floats during the call.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn micro_f32(
        self,
        kp: usize,
        xp: &[f32],
        wp: &[u32],
        c: *mut f32,
        ldc: usize,
        mr: usize,
        nr: usize,
    ) {
        assert!(xp.len() >= 2 * kp * MR && wp.len() >= kp * NR);
        assert!((1..=MR).contains(&mr) && (1..=NR).contains(&nr));
        // SAFETY: the token proves AVX-512F; the asserts bound every read, the caller every write.
        unsafe { micro_f32(kp, xp.as_ptr(), wp.as_ptr(), c, ldc, mr, nr) }
    }

    /// Σ x·w over the shorter length, w widened from bf16, for up to four weight rows at once
    /// against `M` activation rows: out[j·M + i] = x_i · w_j.
    pub(crate) fn dots_bf16<const M: usize>(
        self,
        x: &[f32],
        k: usize,
        w: &[bf16],
        out: &mut [f32],
    ) {
        let rows = out.len() / M;
        assert!(rows <= 4 && x.len() >= M * k && w.len() >= rows * k);
        // SAFETY: the token proves AVX-512F/BW/VL; the asserts bound every read.
        let acc = unsafe { dots_bf16::<M>(x.as_ptr(), k, w.as_ptr() as *const u16, rows) };
        out.copy_from_slice(&acc[..rows * M]);
    }

    /// As [`Avx512::dots_bf16`] with f32 weights.
    pub(crate) fn dots_f32<const M: usize>(self, x: &[f32], k: usize, w: &[f32], out: &mut [f32]) {
        let rows = out.len() / M;
        assert!(rows <= 4 && x.len() >= M * k && w.len() >= rows * k);
        // SAFETY: the token proves AVX-512F; the asserts bound every read.
        let acc = unsafe { dots_f32::<M>(x.as_ptr(), k, w.as_ptr(), rows) };
        out.copy_from_slice(&acc[..rows * M]);
    }

    /// As [`Avx512::dots_bf16`] with f16 weights.
    pub(crate) fn dots_f16<const M: usize>(self, x: &[f32], k: usize, w: &[f16], out: &mut [f32]) {
        let rows = out.len() / M;
        assert!(rows <= 4 && x.len() >= M * k && w.len() >= rows * k);
        // SAFETY: the token proves AVX-512F/BW/VL and F16C; the asserts bound every read.
        let acc = unsafe { dots_f16::<M>(x.as_ptr(), k, w.as_ptr() as *const u16, rows) };
        out.copy_from_slice(&acc[..rows * M]);
    }
}

impl Avx512Bf16 {
    /// Some(token) when the CPU supports the variant.
    pub(crate) fn new() -> Option<Avx512Bf16> {
        Avx512::new()?;
        is_x86_feature_detected!("avx512bf16").then_some(Avx512Bf16(()))
    }

    /// Whether `vdpbf16ps` outruns f32 FMAs on this CPU: CPUs differ (on the Sapphire Rapids-class
    /// Xeon this was developed on, its GEMM ran at 78–82 GFLOP/s per core against 140–146 for the
    /// f32 one; AMX is that CPU's bf16 engine). Timed once per process on one microkernel tile,
    /// best of several rounds so a busy core does not decide it.
    pub(crate) fn outruns_f32(self) -> bool {
        static FASTER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *FASTER.get_or_init(|| {
            const KP: usize = 128;
            let xf = vec![0.5f32; 2 * KP * MR];
            let xb = vec![0x3f00_3f00u32; KP * MR];
            let w = vec![0x3f00_3f00u32; KP * NR];
            let mut c = vec![0.0f32; MR * NR];
            let base = Avx512(());
            let time = |f: &mut dyn FnMut()| {
                (0..7)
                    .map(|_| {
                        let t = std::time::Instant::now();
                        for _ in 0..16 {
                            f();
                        }
                        t.elapsed()
                    })
                    .min()
                    .unwrap_or_default()
            };
            let cp = c.as_mut_ptr();
            // SAFETY: c holds MR rows of NR floats, the stride; nothing else touches it.
            let t_f32 = time(&mut || unsafe { base.micro_f32(KP, &xf, &w, cp, NR, MR, NR) });
            // SAFETY: as above.
            let t_bf16 = time(&mut || unsafe { self.micro_bf16(KP, &xb, &w, cp, NR, MR, NR) });
            std::hint::black_box(&c);
            t_bf16.as_secs_f64() < 0.9 * t_f32.as_secs_f64()
        })
    }

    /// As [`Avx512::micro_f32`] with bf16 activations: `xp` holds kp rows of MR pairs.
    ///
    /// # Safety
    /// As [`Avx512::micro_f32`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn micro_bf16(
        self,
        kp: usize,
        xp: &[u32],
        wp: &[u32],
        c: *mut f32,
        ldc: usize,
        mr: usize,
        nr: usize,
    ) {
        assert!(xp.len() >= kp * MR && wp.len() >= kp * NR);
        assert!((1..=MR).contains(&mr) && (1..=NR).contains(&nr));
        // SAFETY: the token proves AVX-512F and AVX512_BF16; the asserts bound every read, the
        // caller every write.
        unsafe { micro_bf16(kp, xp.as_ptr(), wp.as_ptr(), c, ldc, mr, nr) }
    }

    /// out[j·M + i] = x_i · w_j for up to four weight rows, with bf16 activations `x` (M rows
    /// of k) and f32 accumulation.
    pub(crate) fn dots<const M: usize>(self, x: &[bf16], k: usize, w: &[bf16], out: &mut [f32]) {
        let rows = out.len() / M;
        assert!(rows <= 4 && x.len() >= M * k && w.len() >= rows * k);
        // SAFETY: the token proves AVX-512F/BW and AVX512_BF16; the asserts bound every read.
        let acc = unsafe {
            dots_native::<M>(x.as_ptr() as *const u16, k, w.as_ptr() as *const u16, rows)
        };
        out.copy_from_slice(&acc[..rows * M]);
    }
}

/// How far ahead (in weight elements) the dot kernels prefetch: 16 KiB (decode on the 256M
/// shapes, Xeon with AMX: 512 → 58, 2048 → 69, 8192 → 87, 16384 → 77 tok/s).
const PREFETCH: usize = 8192;

/// Lanes below `n` (n ≤ 16).
fn mask16(n: usize) -> __mmask16 {
    if n >= 16 {
        0xFFFF
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

/// Lanes below `n` (n ≤ 32).
fn mask32(n: usize) -> __mmask32 {
    if n >= 32 {
        u32::MAX
    } else {
        (1u32 << n) - 1
    }
}

/// Stores two accumulator rows' worth of columns (`nr` ≤ 32) at `c`.
///
/// # Safety
/// AVX-512F; `c` is valid for `nr` writes.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store_row(c: *mut f32, a: [__m512; 2], nr: usize) {
    // SAFETY: masked stores touch only the first nr floats at c.
    unsafe {
        _mm512_mask_storeu_ps(c, mask16(nr), a[0]);
        if nr > 16 {
            _mm512_mask_storeu_ps(c.add(16), mask16(nr - 16), a[1]);
        }
    }
}

/// # Safety
/// AVX-512F; xp valid for 2·kp·MR reads, wp for kp·NR, c for rows r < mr of nr floats (stride ldc).
#[target_feature(enable = "avx512f")]
unsafe fn micro_f32(
    kp: usize,
    xp: *const f32,
    wp: *const u32,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    let hi = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
    for p in 0..kp {
        // SAFETY: p < kp, so the panel row and both activation rows are in bounds.
        let (w0, w1, x) = unsafe {
            (
                _mm512_loadu_si512(wp.add(p * NR) as *const _),
                _mm512_loadu_si512(wp.add(p * NR + 16) as *const _),
                xp.add(2 * p * MR),
            )
        };
        // Low halves hold even k, high halves odd k: one shift or mask widens each to f32.
        let e0 = _mm512_castsi512_ps(_mm512_slli_epi32(w0, 16));
        let e1 = _mm512_castsi512_ps(_mm512_slli_epi32(w1, 16));
        let o0 = _mm512_castsi512_ps(_mm512_and_si512(w0, hi));
        let o1 = _mm512_castsi512_ps(_mm512_and_si512(w1, hi));
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: r < MR, inside the two activation rows of step p.
            let (xe, xo) = unsafe { (_mm512_set1_ps(*x.add(r)), _mm512_set1_ps(*x.add(MR + r))) };
            a[0] = _mm512_fmadd_ps(xe, e0, a[0]);
            a[1] = _mm512_fmadd_ps(xe, e1, a[1]);
            a[0] = _mm512_fmadd_ps(xo, o0, a[0]);
            a[1] = _mm512_fmadd_ps(xo, o1, a[1]);
        }
    }
    for (r, a) in acc.iter().enumerate().take(mr) {
        // SAFETY: r < mr, and the caller made rows < mr valid for nr floats.
        unsafe { store_row(c.add(r * ldc), *a, nr) };
    }
}

/// # Safety
/// AVX-512F and AVX512_BF16; xp valid for kp·MR reads, wp for kp·NR, c as in `micro_f32`.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn micro_bf16(
    kp: usize,
    xp: *const u32,
    wp: *const u32,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..kp {
        // SAFETY: p < kp, so the panel row and the activation row are in bounds.
        let (w0, w1, x) = unsafe {
            (
                bh(_mm512_loadu_si512(wp.add(p * NR) as *const _)),
                bh(_mm512_loadu_si512(wp.add(p * NR + 16) as *const _)),
                xp.add(p * MR),
            )
        };
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: r < MR, inside the activation row of step p.
            let xb = bh(_mm512_set1_epi32(unsafe { *x.add(r) } as i32));
            a[0] = _mm512_dpbf16_ps(a[0], xb, w0);
            a[1] = _mm512_dpbf16_ps(a[1], xb, w1);
        }
    }
    for (r, a) in acc.iter().enumerate().take(mr) {
        // SAFETY: r < mr, and the caller made rows < mr valid for nr floats.
        unsafe { store_row(c.add(r * ldc), *a, nr) };
    }
}

/// Reinterprets 32 bf16 lanes.
#[inline(always)]
fn bh(v: __m512i) -> __m512bh {
    // SAFETY: both are plain 512-bit vectors with no invalid bit patterns.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
}

/// Reinterprets 32 bf16 lanes as integers.
#[inline(always)]
fn from_bh(v: __m512bh) -> __m512i {
    // SAFETY: both are plain 512-bit vectors with no invalid bit patterns.
    unsafe { std::mem::transmute::<__m512bh, __m512i>(v) }
}

/// Widens 16 bf16 (as u16) to f32.
#[target_feature(enable = "avx512f")]
#[inline]
fn widen_bf16(h: __m256i) -> __m512 {
    _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
}

/// Dots of `rows` ≤ 4 weight rows (u16 bits, row stride k) with M activation rows; the weight
/// conversion is done once per 16 elements for all M rows.
///
/// # Safety
/// AVX-512F/BW/VL; x valid for M·k reads, w for rows·k.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn dots_by<const M: usize>(
    x: *const f32,
    k: usize,
    w: *const u16,
    rows: usize,
    widen: impl Fn(__m256i) -> __m512,
) -> [f32; 16] {
    let mut acc = [[_mm512_setzero_ps(); M]; 4];
    let mut i = 0;
    while i < k {
        let n = (k - i).min(16);
        let (m16, m16w) = (mask16(n), mask16(n));
        for (j, aj) in acc.iter_mut().enumerate().take(rows) {
            // A prefetch never faults, so the address may lie past the weights.
            _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(j * k + i + PREFETCH) as *const i8);
            // SAFETY: masked loads read only the n in-bounds elements of row j from i on.
            let wv = widen(unsafe { _mm256_maskz_loadu_epi16(m16w, w.add(j * k + i) as *const _) });
            for (r, a) in aj.iter_mut().enumerate() {
                // SAFETY: as above, row r of x.
                let xv = unsafe { _mm512_maskz_loadu_ps(m16, x.add(r * k + i)) };
                *a = _mm512_fmadd_ps(xv, wv, *a);
            }
        }
        i += 16;
    }
    let mut out = [0.0f32; 16];
    for j in 0..rows {
        for r in 0..M {
            out[j * M + r] = _mm512_reduce_add_ps(acc[j][r]);
        }
    }
    out
}

/// # Safety
/// AVX-512F; x valid for M·k reads, w for rows·k.
#[target_feature(enable = "avx512f")]
unsafe fn dots_f32<const M: usize>(
    x: *const f32,
    k: usize,
    w: *const f32,
    rows: usize,
) -> [f32; 16] {
    let mut acc = [[_mm512_setzero_ps(); M]; 4];
    let mut i = 0;
    while i < k {
        let m16 = mask16(k - i);
        for (j, aj) in acc.iter_mut().enumerate().take(rows) {
            // f32 rows are twice the bytes of bf16 ones: the same distance in bytes ahead.
            _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(j * k + i + PREFETCH / 2) as *const i8);
            // SAFETY: masked loads read only the in-bounds elements of row j from i on.
            let wv = unsafe { _mm512_maskz_loadu_ps(m16, w.add(j * k + i)) };
            for (r, a) in aj.iter_mut().enumerate() {
                // SAFETY: as above, row r of x.
                let xv = unsafe { _mm512_maskz_loadu_ps(m16, x.add(r * k + i)) };
                *a = _mm512_fmadd_ps(xv, wv, *a);
            }
        }
        i += 16;
    }
    let mut out = [0.0f32; 16];
    for j in 0..rows {
        for r in 0..M {
            out[j * M + r] = _mm512_reduce_add_ps(acc[j][r]);
        }
    }
    out
}

/// # Safety
/// As `dots_by`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn dots_bf16<const M: usize>(
    x: *const f32,
    k: usize,
    w: *const u16,
    rows: usize,
) -> [f32; 16] {
    // SAFETY: forwarded contract.
    unsafe { dots_by::<M>(x, k, w, rows, |h| widen_bf16(h)) }
}

/// # Safety
/// As `dots_by`, and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
unsafe fn dots_f16<const M: usize>(
    x: *const f32,
    k: usize,
    w: *const u16,
    rows: usize,
) -> [f32; 16] {
    // SAFETY: forwarded contract.
    unsafe { dots_by::<M>(x, k, w, rows, |h| _mm512_cvtph_ps(h)) }
}

/// # Safety
/// AVX-512F/BW and AVX512_BF16; x valid for M·k reads, w for rows·k.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn dots_native<const M: usize>(
    x: *const u16,
    k: usize,
    w: *const u16,
    rows: usize,
) -> [f32; 16] {
    let mut acc = [[_mm512_setzero_ps(); M]; 4];
    let mut i = 0;
    while i < k {
        let m32 = mask32(k - i);
        for (j, aj) in acc.iter_mut().enumerate().take(rows) {
            // Weights stream from memory once per token: ask for them ahead of the loads (a
            // prefetch never faults, so the address may lie past the weights).
            _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(j * k + i + PREFETCH) as *const i8);
            // SAFETY: masked loads read only the in-bounds elements of row j from i on.
            let wv = bh(unsafe { _mm512_maskz_loadu_epi16(m32, w.add(j * k + i) as *const _) });
            for (r, a) in aj.iter_mut().enumerate() {
                // SAFETY: as above, row r of x.
                let xv = bh(unsafe { _mm512_maskz_loadu_epi16(m32, x.add(r * k + i) as *const _) });
                *a = _mm512_dpbf16_ps(*a, xv, wv);
            }
        }
        i += 32;
    }
    let mut out = [0.0f32; 16];
    for j in 0..rows {
        for r in 0..M {
            out[j * M + r] = _mm512_reduce_add_ps(acc[j][r]);
        }
    }
    out
}

mod attend;
mod elementwise;
mod int8;
mod quant;
mod tiles;

pub(crate) use int8::Avx512Vnni;

pub(crate) use attend::KvRows;
