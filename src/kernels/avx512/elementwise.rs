//! The elementwise functions of `math.rs` compiled with AVX-512 enabled.

use super::{mask16, Avx512, Avx512Bf16};
use std::arch::x86_64::*;

impl Avx512Bf16 {
    /// As [`Avx512::softmax_scaled_bf16`], rounding to bf16 with `vcvtneps2bf16`.
    pub(crate) fn softmax_scaled_bf16(self, row: &[f32], scale: f32, out: &mut [u16]) -> f32 {
        // SAFETY: the token proves the features this function is compiled for.
        unsafe { softmax_bf16_512bf(row, scale, out) }
    }
}

/// Elementwise functions compiled with AVX-512 (the bodies are in `math.rs`).
impl Avx512 {
    pub(crate) fn layer_norm_row(self, r: &[f32], w: &[f32], b: &[f32], eps: f32, o: &mut [f32]) {
        // SAFETY: the token proves the features these functions are compiled for.
        unsafe { layer_norm_512(r, w, b, eps, o) }
    }
    pub(crate) fn rms_norm_row(self, r: &[f32], w: &[f32], eps: f32, o: &mut [f32]) {
        // SAFETY: as above.
        unsafe { rms_norm_512(r, w, eps, o) }
    }
    pub(crate) fn gelu(self, x: &mut [f32]) {
        // SAFETY: the token proves the features these functions are compiled for.
        unsafe { gelu_512(x) }
    }
    pub(crate) fn silu_mul(self, gate: &mut [f32], up: &[f32]) {
        // SAFETY: as above.
        unsafe { silu_mul_512(gate, up) }
    }
    pub(crate) fn softmax_scaled(self, row: &mut [f32], scale: f32) {
        // SAFETY: as above.
        unsafe { softmax_512(row, scale) }
    }
    pub(crate) fn softmax_scaled_bf16(self, row: &[f32], scale: f32, out: &mut [u16]) -> f32 {
        // SAFETY: as above.
        unsafe { softmax_bf16_512(row, scale, out) }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
fn layer_norm_512(r: &[f32], w: &[f32], b: &[f32], eps: f32, o: &mut [f32]) {
    crate::kernels::math::layer_norm_row(r, w, b, eps, o)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
fn rms_norm_512(r: &[f32], w: &[f32], eps: f32, o: &mut [f32]) {
    crate::kernels::math::rms_norm_row(r, w, eps, o)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
fn silu_mul_512(gate: &mut [f32], up: &[f32]) {
    crate::kernels::math::silu_mul_slice(gate, up)
}

/// e^x in 16 lanes, bit for bit [`math::exp`](crate::kernels::math::exp) (the same operations
/// in the same order; 2ⁿ applied by `vscalefps`, exact where the result is normal).
#[inline]
#[target_feature(enable = "avx512f")]
fn exp16(x: __m512) -> __m512 {
    const SHIFTER: f32 = 12_582_912.0;
    let xc = _mm512_min_ps(
        _mm512_max_ps(x, _mm512_set1_ps(-87.3)),
        _mm512_set1_ps(88.7),
    );
    let t = _mm512_add_ps(
        _mm512_mul_ps(xc, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        _mm512_set1_ps(SHIFTER),
    );
    let n = _mm512_sub_ps(t, _mm512_set1_ps(SHIFTER));
    let r = _mm512_sub_ps(
        _mm512_sub_ps(xc, _mm512_mul_ps(n, _mm512_set1_ps(0.693_359_4))),
        _mm512_mul_ps(n, _mm512_set1_ps(-2.121_944_4e-4)),
    );
    let mut p = _mm512_set1_ps(1.987_569_1e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let e = _mm512_add_ps(
        _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r),
        _mm512_set1_ps(1.0),
    );
    let y = _mm512_scalef_ps(e, n);
    let y = _mm512_mask_mov_ps(
        y,
        _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_set1_ps(-87.3)),
        _mm512_setzero_ps(),
    );
    let y = _mm512_mask_mov_ps(
        y,
        _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm512_set1_ps(88.7)),
        _mm512_set1_ps(f32::INFINITY),
    );
    _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x), x)
}

/// bf16 bits (nearest even, NaN kept NaN) of 16 lanes in the low halves of 32-bit lanes, as
/// [`math::bf16_bits`](crate::kernels::math::bf16_bits).
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn bf16_bits16(v: __m512) -> __m512i {
    let b = _mm512_castps_si512(v);
    let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(1));
    let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(
        _mm512_add_epi32(b, _mm512_set1_epi32(0x7FFF)),
        odd,
    ));
    let nan = _mm512_or_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(0x40));
    _mm512_mask_mov_epi32(rounded, _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v), nan)
}

/// The lanes of `full` chunks and a masked tail of `row`: (offset, lane mask).
fn lanes(len: usize) -> impl Iterator<Item = (usize, __mmask16)> {
    (0..len.div_ceil(16)).map(move |c| {
        let rest = len - 16 * c;
        (
            16 * c,
            if rest >= 16 {
                0xFFFF
            } else {
                (1u16 << rest) - 1
            },
        )
    })
}

/// Max of `row` (NaN ignored, as `f32::max`) times `scale`, then e^(x·scale − that) stored
/// back with their sum: the first two passes of both softmaxes, summed in
/// [`math::softmax_scaled`](crate::kernels::math::softmax_scaled)'s order (16 lanes, then
/// across them).
#[target_feature(enable = "avx512f")]
fn exp_pass(row: &mut [f32], scale: f32) -> f32 {
    let p = row.as_mut_ptr();
    let mut m = _mm512_set1_ps(f32::NEG_INFINITY);
    for (o, k) in lanes(row.len()) {
        // SAFETY: lanes() masks off everything at or past row.len().
        let v = unsafe { _mm512_mask_loadu_ps(m, k, p.add(o)) };
        m = _mm512_max_ps(v, m);
    }
    let max = _mm512_set1_ps(_mm512_reduce_max_ps(m) * scale);
    let (sc, mut acc) = (_mm512_set1_ps(scale), _mm512_setzero_ps());
    for (o, k) in lanes(row.len()) {
        // SAFETY: as above.
        let v = unsafe { _mm512_maskz_loadu_ps(k, p.add(o)) };
        let e = exp16(_mm512_sub_ps(_mm512_mul_ps(v, sc), max));
        acc = _mm512_mask_add_ps(acc, k, acc, e);
        // SAFETY: as above.
        unsafe { _mm512_mask_storeu_ps(p.add(o), k, e) };
    }
    let mut a = [0.0f32; 16];
    // SAFETY: a holds 16 floats.
    unsafe { _mm512_storeu_ps(a.as_mut_ptr(), acc) };
    a.iter().fold(0.0, |s, &v| s + v)
}

#[target_feature(enable = "avx512f")]
fn softmax_512(row: &mut [f32], scale: f32) {
    let inv = _mm512_set1_ps(1.0 / exp_pass(row, scale));
    let p = row.as_mut_ptr();
    for (o, k) in lanes(row.len()) {
        // SAFETY: lanes() masks off everything at or past row.len().
        unsafe {
            let v = _mm512_maskz_loadu_ps(k, p.add(o));
            _mm512_mask_storeu_ps(p.add(o), k, _mm512_mul_ps(v, inv));
        }
    }
}

/// 2^t for t ≤ 0, within 2.2e-7 relative (measured in the tests), below -126 as 2^-126: a
/// degree-5 fit of 2^f on f ∈ [-½, ½] (weighted least squares toward equal relative error,
/// computed once with numpy) scaled by 2ⁿ. For the probabilities of the bf16 mode, which are
/// rounded to bf16 (relative 2⁻⁸) right after; five FMAs where e^x to the same accuracy
/// took a two-step reduction and seven.
#[inline]
#[target_feature(enable = "avx512f")]
fn pow2_nonpositive(t: __m512) -> __m512 {
    let tc = _mm512_max_ps(_mm512_set1_ps(-126.0), t);
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(tc);
    let f = _mm512_sub_ps(tc, n);
    let mut p = _mm512_set1_ps(1.327_647_1e-3);
    for c in [
        9.675_541e-3,
        5.550_713e-2,
        0.240_221_2,
        0.693_146_94,
        1.000_000_1,
    ] {
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
    }
    _mm512_scalef_ps(p, n)
}

/// The body of the bf16 softmax; `round` turns 16 exponentials into their bf16 bits.
#[inline(always)]
fn softmax_bf16_body(
    row: &[f32],
    scale: f32,
    out: &mut [u16],
    round: impl Fn(__m512) -> __m256i,
) -> f32 {
    let n = row.len();
    assert!(out.len() >= n);
    let (p, q) = (row.as_ptr(), out.as_mut_ptr());
    // Whole chunks in named registers (an indexed array of chains went through the stack),
    // then one masked tail.
    // SAFETY: the callers are compiled with AVX-512F/BW/VL; every load and store below stays
    // below n ≤ out.len(), the tails by their masks.
    unsafe {
        let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
        // Four chains, so the max runs at load speed rather than max latency.
        let (mut m0, mut m1, mut m2, mut m3) = (ninf, ninf, ninf, ninf);
        let mut o = 0;
        while o + 64 <= n {
            m0 = _mm512_max_ps(m0, _mm512_loadu_ps(p.add(o)));
            m1 = _mm512_max_ps(m1, _mm512_loadu_ps(p.add(o + 16)));
            m2 = _mm512_max_ps(m2, _mm512_loadu_ps(p.add(o + 32)));
            m3 = _mm512_max_ps(m3, _mm512_loadu_ps(p.add(o + 48)));
            o += 64;
        }
        while o < n {
            let k = mask16(n - o);
            m0 = _mm512_max_ps(m0, _mm512_mask_loadu_ps(ninf, k, p.add(o)));
            o += 16;
        }
        let m = _mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3));
        // e^(v·scale − max·scale) = 2^(v·c − max·c) with c = scale·log2(e), one FMA per lane.
        let c = scale * std::f32::consts::LOG2_E;
        let (cv, mc) = (
            _mm512_set1_ps(c),
            _mm512_set1_ps(_mm512_reduce_max_ps(m) * c),
        );
        let exp = |v: __m512| pow2_nonpositive(_mm512_fmsub_ps(v, cv, mc));
        let (mut a0, mut a1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut o = 0;
        while o + 32 <= n {
            let (e0, e1) = (
                exp(_mm512_loadu_ps(p.add(o))),
                exp(_mm512_loadu_ps(p.add(o + 16))),
            );
            a0 = _mm512_add_ps(a0, e0);
            a1 = _mm512_add_ps(a1, e1);
            _mm256_storeu_si256(q.add(o) as *mut __m256i, round(e0));
            _mm256_storeu_si256(q.add(o + 16) as *mut __m256i, round(e1));
            o += 32;
        }
        while o < n {
            let k = mask16(n - o);
            let e = exp(_mm512_maskz_loadu_ps(k, p.add(o)));
            a0 = _mm512_mask_add_ps(a0, k, a0, e);
            _mm256_mask_storeu_epi16(q.add(o) as *mut i16, k, round(e));
            o += 16;
        }
        1.0 / _mm512_reduce_add_ps(_mm512_add_ps(a0, a1))
    }
}

/// [`math::softmax_scaled_bf16`](crate::kernels::math::softmax_scaled_bf16) in two passes:
/// the max, then the exponentials rounded straight to bf16 while their sum accumulates.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn softmax_bf16_512(row: &[f32], scale: f32, out: &mut [u16]) -> f32 {
    softmax_bf16_body(row, scale, out, |e| _mm512_cvtepi32_epi16(bf16_bits16(e)))
}

/// As [`softmax_bf16_512`], rounding with the CPU's own conversion (the same
/// round-to-nearest-even on these finite, non-negative values).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
fn softmax_bf16_512bf(row: &[f32], scale: f32, out: &mut [u16]) -> f32 {
    // SAFETY: this function is compiled with AVX-512F and AVX512_BF16.
    softmax_bf16_body(row, scale, out, |e| unsafe {
        std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(e))
    })
}

/// `math::gelu_slice` of 16 lanes with [`exp16`], except that 2/(e + 1) is a reciprocal
/// estimate refined by one Newton step instead of a division (a 512-bit division issues once
/// per 10–16 cycles and held the AMX epilogues up): within 2 ulp of the scalar function
/// (measured in the tests).
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn gelu16(u: __m512) -> __m512 {
    let one = _mm512_set1_ps(1.0);
    let two = _mm512_set1_ps(2.0);
    let cube = _mm512_mul_ps(
        _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.044715), u), u),
        u,
    );
    let z = _mm512_mul_ps(_mm512_set1_ps(0.797_884_6), _mm512_add_ps(u, cube));
    let e = exp16(_mm512_mul_ps(two, z));
    // Capped so the Newton step never meets ∞·0 (e is ∞ past 88.7); 2/d is far below
    // 1's ulp there either way.
    let d = _mm512_min_ps(_mm512_add_ps(e, one), _mm512_set1_ps(1e30));
    let r = _mm512_rcp14_ps(d);
    let r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, two));
    let t = _mm512_fnmadd_ps(two, r, one);
    _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5), u), _mm512_add_ps(one, t))
}

#[target_feature(enable = "avx512f")]
fn gelu_512(x: &mut [f32]) {
    let p = x.as_mut_ptr();
    for (o, k) in lanes(x.len()) {
        // SAFETY: lanes() masks off everything at or past x.len().
        unsafe {
            let u = _mm512_maskz_loadu_ps(k, p.add(o));
            _mm512_mask_storeu_ps(p.add(o), k, gelu16(u));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::math;

    #[test]
    fn vector_functions_match_the_scalar_ones() {
        let Some(t) = Avx512::new() else {
            eprintln!("no AVX-512 here: the vector functions are not run");
            return;
        };
        let mut x: Vec<f32> = (0..200_000).map(|i| -100.0 + i as f32 * 0.001_01).collect();
        x.extend([
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            0.0,
            88.7,
            -87.3,
        ]);
        let mut g = x.clone();
        t.gelu(&mut g);
        // Both forms lose the same absolute accuracy where 1 + tanh cancels (large negative
        // inputs), so each is measured against f64 as an error relative to max(|u|, 1).
        let (mut worst_vec, mut worst_scalar) = (0.0f64, 0.0f64);
        for (i, (&v, &got)) in x.iter().zip(&g).enumerate() {
            let mut want = [v];
            math::gelu_slice(&mut want);
            if want[0].is_nan() || !v.is_finite() {
                assert!(
                    got.to_bits() == want[0].to_bits() || got.is_nan() && want[0].is_nan(),
                    "gelu({v}) at {i}: {got} vs {}",
                    want[0]
                );
                continue;
            }
            let u = v as f64;
            let exact = 0.5
                * u
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (u + 0.044715 * u * u * u)).tanh());
            let scale = u.abs().max(1.0);
            worst_vec = worst_vec.max((got as f64 - exact).abs() / scale);
            worst_scalar = worst_scalar.max((want[0] as f64 - exact).abs() / scale);
        }
        eprintln!(
            "gelu: worst error / max(|u|, 1): vector {worst_vec:.2e}, scalar {worst_scalar:.2e}"
        );
        // Measured 1.34e-7 (vector) and 9.56e-8 (scalar): bound at twice the scalar form's own.
        assert!(
            worst_vec <= 2.0 * worst_scalar,
            "gelu: {worst_vec:e} vs the scalar {worst_scalar:e}"
        );
        // The bf16 softmax's exponential, against f64 over [-126, 0].
        let mut worst = 0.0f64;
        let xs: Vec<f32> = (0..1_000_000)
            .map(|i| -126.0 * i as f32 / 999_999.0)
            .collect();
        for c in xs.chunks_exact(16) {
            let mut got = [0.0f32; 16];
            // SAFETY: the token proves AVX-512F; both arrays hold 16 floats.
            unsafe {
                let v = pow2_nonpositive(_mm512_loadu_ps(c.as_ptr()));
                _mm512_storeu_ps(got.as_mut_ptr(), v);
            }
            for (g, x) in got.iter().zip(c) {
                let want = (*x as f64).exp2();
                worst = worst.max((*g as f64 - want).abs() / want);
            }
        }
        eprintln!("pow2_nonpositive: worst relative error {worst:.2e}");
        // Measured 2.15e-7 (the fit and its f32 evaluation); bound with a margin of 2x.
        assert!(worst < 5e-7, "pow2_nonpositive off by {worst:e}");
        let native = Avx512Bf16::new();
        for len in [1usize, 15, 16, 17, 77, 1024, 1029] {
            let row: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin() * 9.0).collect();
            let (mut a, mut b) = (row.clone(), row.clone());
            t.softmax_scaled(&mut a, 0.125);
            math::softmax_scaled(&mut b, 0.125);
            assert_eq!(a, b, "softmax, {len} values");
            let (mut pa, mut pb) = (vec![0u16; len], vec![0u16; len]);
            let ia = t.softmax_scaled_bf16(&row, 0.125, &mut pa);
            let ib = math::softmax_scaled_bf16(&row, 0.125, &mut pb);
            if let Some(n) = native {
                let mut pn = vec![0u16; len];
                let inn = n.softmax_scaled_bf16(&row, 0.125, &mut pn);
                assert_eq!(
                    (pn.clone(), inn),
                    (pa.clone(), ia),
                    "native rounding, {len} values"
                );
            }
            // The exponentials differ by ≤ 3e-7 relative: their bf16 roundings by ≤ 1 step.
            for (x, y) in pa.iter().zip(&pb) {
                assert!(
                    x.abs_diff(*y) <= 1,
                    "bf16 softmax, {len} values: {x:#x} vs {y:#x}"
                );
            }
            assert!(
                (ia - ib).abs() <= 1e-6 * ib,
                "bf16 softmax factor: {ia} vs {ib}"
            );
            let same = pa.iter().zip(&pb).filter(|(x, y)| x == y).count();
            assert!(
                same * 10 >= len * 9,
                "bf16 softmax: only {same} of {len} equal"
            );
        }
    }
}
