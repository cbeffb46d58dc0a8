//! Elementwise functions (exp, tanh and the activations built on them) written branch-free so
//! the compiler vectorises them; the SIMD variants compile these same bodies with their target
//! features enabled. Accuracy: exp within 2 ulp of the correctly rounded result over its range
//! (checked in tests against f64), tanh within 2e-7 absolute.

/// Bits of v rounded to bf16, nearest even (NaN stays NaN), as `half::bf16::from_f32` but
/// branch-free so loops vectorise. The one rounding every bf16-mode kernel uses.
#[inline(always)]
pub(crate) fn bf16_bits(v: f32) -> u32 {
    let b = v.to_bits();
    let rounded = (b + 0x7FFF + ((b >> 16) & 1)) >> 16;
    if v.is_nan() {
        (b >> 16) | 0x40
    } else {
        rounded
    }
}

/// e^x; 0 below -87.3 (where f32 results would be subnormal) and +inf above 88.7.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so n·LN2_HI is exact for |n| < 2^9.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let xc = x.clamp(-87.3, 88.7);
    // Round to nearest with the 1.5·2²³ trick (vectorises without SSE4.1's round); the
    // integer n is then the low bits of t, so no float-to-int conversion is needed.
    const SHIFTER: f32 = 12_582_912.0;
    let t = xc * LOG2E + SHIFTER;
    let n = t - SHIFTER;
    let ni = (t.to_bits() as i32).wrapping_sub(SHIFTER.to_bits() as i32);
    let r = xc - n * LN2_HI - n * LN2_LO;
    // Minimax polynomial for e^r on |r| ≤ ln2/2 (Cephes expf coefficients).
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 0.166_666_65);
    p = p.mul_add(r, 0.5);
    let e = (p * r).mul_add(r, r) + 1.0;
    // 2ⁿ as two normal factors: n reaches 128, past the largest exponent of one f32.
    let (n1, n2) = (ni >> 1, ni - (ni >> 1));
    let pow2 = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    let y = e * pow2(n1) * pow2(n2);
    if x < -87.3 {
        0.0
    } else if x > 88.7 {
        f32::INFINITY
    } else if x.is_nan() {
        x
    } else {
        y
    }
}

/// tanh(x) = 1 − 2/(e^{2x} + 1): exact limits ±1, absolute error ≲ 2e-7.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// `gelu_pytorch_tanh` in place: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
#[inline(always)]
pub(crate) fn gelu_slice(x: &mut [f32]) {
    const C: f32 = 0.797_884_6;
    for v in x {
        let u = *v;
        *v = 0.5 * u * (1.0 + tanh(C * (u + 0.044715 * u * u * u)));
    }
}

/// gate ← silu(gate)·up.
#[inline(always)]
pub(crate) fn silu_mul_slice(gate: &mut [f32], up: &[f32]) {
    for (a, b) in gate.iter_mut().zip(up) {
        *a = *a / (1.0 + exp(-*a)) * b;
    }
}

/// Lane-wise reduction over 16 independent accumulators (f32 order is fixed per lane, so the
/// compiler can keep them in one vector), then across lanes.
#[inline(always)]
fn reduce16(row: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    reduce16_of(row, init, |v| v, f)
}

/// [`reduce16`] of map(v) for v in row.
#[inline(always)]
fn reduce16_of(
    row: &[f32],
    init: f32,
    map: impl Fn(f32) -> f32,
    f: impl Fn(f32, f32) -> f32,
) -> f32 {
    let mut acc = [init; 16];
    let mut chunks = row.chunks_exact(16);
    for c in &mut chunks {
        for l in 0..16 {
            acc[l] = f(acc[l], map(c[l]));
        }
    }
    for (l, v) in chunks.remainder().iter().enumerate() {
        acc[l] = f(acc[l], map(*v));
    }
    acc.iter().fold(init, |a, &b| f(a, b))
}

/// One row of torch's `nn.LayerNorm`: (x − mean)·rsqrt(var + eps)·w + b, with the mean and the
/// (biased) variance summed in 16 lanes.
#[inline(always)]
pub(crate) fn layer_norm_row(r: &[f32], w: &[f32], b: &[f32], eps: f32, o: &mut [f32]) {
    let n = r.len() as f32;
    let mean = reduce16(r, 0.0, |a, v| a + v) / n;
    let var = reduce16_of(r, 0.0, |v| (v - mean) * (v - mean), |a, v| a + v) / n;
    let inv = 1.0 / (var + eps).sqrt();
    for (((o, &x), &w), &b) in o.iter_mut().zip(r).zip(w).zip(b) {
        *o = (x - mean) * inv * w + b;
    }
}

/// One row of LlamaRMSNorm: x·rsqrt(mean(x²) + eps)·w, the squares summed in 16 lanes.
#[inline(always)]
pub(crate) fn rms_norm_row(r: &[f32], w: &[f32], eps: f32, o: &mut [f32]) {
    let ms = reduce16_of(r, 0.0, |v| v * v, |a, v| a + v) / r.len() as f32;
    let inv = 1.0 / (ms + eps).sqrt();
    for ((o, &x), &w) in o.iter_mut().zip(r).zip(w) {
        *o = w * (x * inv);
    }
}

/// In-place softmax of `row` after scaling it by `scale`.
#[inline(always)]
pub(crate) fn softmax_scaled(row: &mut [f32], scale: f32) {
    for v in row.iter_mut() {
        *v *= scale;
    }
    let max = reduce16(row, f32::NEG_INFINITY, f32::max);
    for v in row.iter_mut() {
        *v = exp(*v - max);
    }
    let inv = 1.0 / reduce16(row, 0.0, |a, b| a + b);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// The probabilities of the bf16 mode, unnormalised: out[i] = bf16 bits (nearest even) of
/// e^(row[i]·scale − max·scale); returns 1/Σ of those exponentials in f32. The caller scales
/// the product P·v by it, as PyTorch's CPU flash attention does, so P is rounded once and no
/// pass divides it. `row` is left unchanged. The reference for the vector variants.
#[inline(always)]
pub(crate) fn softmax_scaled_bf16(row: &[f32], scale: f32, out: &mut [u16]) -> f32 {
    let max = reduce16(row, f32::NEG_INFINITY, f32::max) * scale;
    let mut sum = 0.0f64;
    for (o, v) in out.iter_mut().zip(row) {
        let e = exp(v * scale - max);
        sum += e as f64;
        *o = bf16_bits(e) as u16;
    }
    (1.0 / sum) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_2_ulp_and_has_exact_limits() {
        let mut worst = 0;
        let mut x = -87.0f32;
        while x < 88.5 {
            let want = (x as f64).exp() as f32;
            worst = worst.max(ulps(exp(x), want));
            x += 0.001_37;
        }
        eprintln!("exp: worst {worst} ulp");
        assert!(worst <= 2, "exp off by {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn bf16_softmax_times_its_factor_is_the_softmax() {
        let row: Vec<f32> = (0..77).map(|i| (i as f32 * 0.37).sin() * 9.0).collect();
        let mut a = row.clone();
        softmax_scaled(&mut a, 0.125);
        let mut out = vec![0u16; 77];
        let inv = softmax_scaled_bf16(&row, 0.125, &mut out);
        for (x, o) in a.iter().zip(&out) {
            let p = half::bf16::from_bits(*o).to_f32() * inv;
            // One bf16 rounding of the exponential: relative 2⁻⁸, plus f32 noise.
            assert!((p - x).abs() <= x * (1.0 / 256.0 + 1e-6), "{p} vs {x}");
        }
    }

    #[test]
    fn tanh_is_within_2e7() {
        let mut worst = 0.0f64;
        let mut x = -12.0f32;
        while x < 12.0 {
            worst = worst.max((tanh(x) as f64 - (x as f64).tanh()).abs());
            x += 0.000_73;
        }
        eprintln!("tanh: worst {worst:e}");
        assert!(worst < 2e-7, "tanh off by {worst:e}");
        assert_eq!(tanh(50.0), 1.0);
        assert_eq!(tanh(-50.0), -1.0);
    }
}
