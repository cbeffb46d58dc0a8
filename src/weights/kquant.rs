//! ggml's K-quant super-blocks of 256 elements (Q4_K, Q5_K, Q6_K): byte layout, the search
//! ggml's reference quantizer runs for each sub-block's scale (and minimum), and
//! dequantization. Every float operation keeps ggml's order and types, so the bytes equal those
//! of `quantize_row_q*_K_ref` (what `llama-quantize` writes without an importance matrix).

use super::quant::{half_at, put_half, QuantType, QK_K};

/// Q4_K/Q5_K: d, dmin (f16), 12 bytes of packed 6-bit scales and minimums.
const SCALES_AT: usize = 4;
/// Q5_K's fifth bits (32 bytes) follow the scales; then its nibbles.
const Q5_QH_AT: usize = 16;
const Q5_QS_AT: usize = 48;
/// Q4_K's nibbles follow the scales.
const Q4_QS_AT: usize = 16;
/// Q6_K: 128 bytes of low nibbles, 64 of high pairs, 16 int8 scales, then the f16 d.
const Q6_QH_AT: usize = 128;
const Q6_SC_AT: usize = 192;
const Q6_D_AT: usize = 208;

/// Scale and minimum of sub-block `j` (0..8) from the 12 packed bytes.
#[inline]
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Per sub-block of 32 the factors of Q4_K/Q5_K's w = a·q − b: (d·s_j, dmin·m_j), both exact.
#[inline]
pub(crate) fn k4_factors(block: &[u8]) -> ([f32; 8], [f32; 8]) {
    let (d, dmin) = (half_at(block, 0), half_at(block, 2));
    let sc = &block[SCALES_AT..SCALES_AT + 12];
    let (mut a, mut b) = ([0.0f32; 8], [0.0f32; 8]);
    for j in 0..8 {
        let (s, m) = scale_min_k4(j, sc);
        a[j] = d * s as f32;
        b[j] = dmin * m as f32;
    }
    (a, b)
}

/// Q6_K's sixteen factors d·s_j (exact: an 11-bit d times an 8-bit scale).
#[inline]
pub(crate) fn q6_factors(block: &[u8]) -> [f32; 16] {
    let d = half_at(block, Q6_D_AT);
    std::array::from_fn(|j| d * (block[Q6_SC_AT + j] as i8) as f32)
}

/// Expands one super-block into 256 weights (`out` that long), as `dequantize_row_q*_K`.
pub(crate) fn dequantize_block(t: QuantType, block: &[u8], out: &mut [f32]) {
    match t {
        QuantType::Q4_K | QuantType::Q5_K => {
            let (a, b) = k4_factors(block);
            let qs = if t == QuantType::Q4_K {
                Q4_QS_AT
            } else {
                Q5_QS_AT
            };
            for j in 0..8 {
                let bytes = &block[qs + 32 * (j / 2)..qs + 32 * (j / 2) + 32];
                for (l, o) in out[32 * j..32 * j + 32].iter_mut().enumerate() {
                    let mut q = (bytes[l] >> (4 * (j % 2))) & 15;
                    if t == QuantType::Q5_K {
                        q |= ((block[Q5_QH_AT + l] >> j) & 1) << 4;
                    }
                    *o = a[j] * q as f32 - b[j];
                }
            }
        }
        QuantType::Q6_K => {
            let f = q6_factors(block);
            for (c, chunk) in out.chunks_exact_mut(32).enumerate() {
                let (h, r) = (c / 4, c % 4);
                let ql = &block[64 * h + 32 * (r % 2)..];
                let qh = &block[Q6_QH_AT + 32 * h..];
                for (l, o) in chunk.iter_mut().enumerate() {
                    let lo = (ql[l] >> (4 * (r / 2))) & 15;
                    let hi = (qh[l] >> (2 * r)) & 3;
                    let q = (lo | (hi << 4)) as i32 - 32;
                    *o = f[8 * h + 2 * r + l / 16] * q as f32;
                }
            }
        }
        _ => unreachable!("{t:?} is not a K-quant"),
    }
}

/// ggml's `nearest_int`: round half to even through the f32 mantissa (|v| < 2²²).
#[inline]
fn nearest_int(v: f32) -> i32 {
    ((v + 12582912.0).to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// ggml's `make_qkx2_quants`: levels 0..=nmax for x ≈ scale·L − min, searching nstep + 1 scales
/// for the least weighted squared error. Returns (scale, min ≥ 0).
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    (rmin, rdelta, nstep): (f32, f32, i32),
) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l_out[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        best_error += weights[i] * (diff * diff);
    }
    let mut aux = [0u8; 32];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            aux[i] = l as u8;
            let (w, lf) = (weights[i], l as f32);
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * aux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * (diff * diff);
            }
            if cur_error < best_error {
                l_out[..n].copy_from_slice(&aux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Q4_K and Q5_K (`nmax` 15 or 31): per sub-block of 32 a scale and minimum searched with
/// weights |x| + rms, both quantized to 6 bits under f16 super-scales, then the levels redone
/// against the stored scales.
fn quantize_k4(v: &[f32], o: &mut [u8], nmax: i32, search: (f32, f32, i32)) {
    let mut levels = [0u8; QK_K];
    let (mut scales, mut mins) = ([0.0f32; 8], [0.0f32; 8]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        let x = &v[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &xi in x {
            sum_x2 += xi * xi;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let weights: [f32; 32] = std::array::from_fn(|l| av_x + x[l].abs());
        let (s, m) = make_qkx2_quants(nmax, x, &weights, &mut levels[32 * j..], search);
        (scales[j], mins[j]) = (s, m);
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let sc = &mut o[SCALES_AT..SCALES_AT + 12];
    sc.fill(0);
    for j in 0..8 {
        // uint8_t of an int: the low byte, as `as u8`.
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            sc[j] = ls;
            sc[j + 4] = lm;
        } else {
            sc[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
            sc[j - 4] |= (ls >> 4) << 6;
            sc[j] |= (lm >> 4) << 6;
        }
    }
    put_half(o, 0, max_scale / 63.0);
    put_half(o, 2, max_min / 63.0);
    let (d, dmin) = (half_at(o, 0), half_at(o, 2));
    for j in 0..8 {
        let (s, m) = scale_min_k4(j, &o[SCALES_AT..SCALES_AT + 12]);
        let dj = d * s as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin * m as f32;
        for i in 0..32 {
            let l = nearest_int((v[32 * j + i] + dm) / dj).clamp(0, nmax);
            levels[32 * j + i] = l as u8;
        }
    }
    if nmax == 15 {
        for (c, q) in o[Q4_QS_AT..Q4_QS_AT + 128].chunks_exact_mut(32).enumerate() {
            for (l, b) in q.iter_mut().enumerate() {
                *b = levels[64 * c + l] | (levels[64 * c + l + 32] << 4);
            }
        }
        return;
    }
    let (head, qs) = o.split_at_mut(Q5_QS_AT);
    let qh = &mut head[Q5_QH_AT..Q5_QH_AT + 32];
    qh.fill(0);
    for (c, q) in qs[..128].chunks_exact_mut(32).enumerate() {
        for (l, b) in q.iter_mut().enumerate() {
            let (l1, l2) = (levels[64 * c + l], levels[64 * c + l + 32]);
            qh[l] |= ((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1));
            *b = (l1 & 15) | ((l2 & 15) << 4);
        }
    }
}

pub(super) fn quantize_q4_k(v: &[f32], o: &mut [u8]) {
    quantize_k4(v, o, 15, (-1.0, 0.1, 20));
}

pub(super) fn quantize_q5_k(v: &[f32], o: &mut [u8]) {
    quantize_k4(v, o, 31, (-0.5, 0.1, 15));
}

/// ggml's `make_qx_quants` with weights x² (rmse_type 1): symmetric levels −nmax..nmax−1 stored
/// as L + nmax, the scale searched over 19 candidates. Returns the scale.
fn make_qx_quants(nmax: i32, x: &[f32], l_out: &mut [u8]) -> f32 {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &xi in x {
        if xi.abs() > amax {
            amax = xi.abs();
            max = xi;
        }
    }
    if amax < 1e-15 {
        l_out[..x.len()].fill(0);
        return 0.0;
    }
    let level = |iscale: f32, xi: f32| nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &xi in x {
            let l = level(iscale, xi) as f32;
            let w = xi * xi;
            sumlx += w * xi * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let mut iscale = -(nmax as f32) / max;
    for (o, &xi) in l_out.iter_mut().zip(x) {
        *o = (level(iscale, xi) + nmax) as u8;
    }
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (o, &xi) in l_out.iter_mut().zip(x) {
                *o = (level(iscale, xi) + nmax) as u8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

pub(super) fn quantize_q6_k(v: &[f32], o: &mut [u8]) {
    let mut levels = [0u8; QK_K];
    let mut scales = [0.0f32; 16];
    let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
    for (ib, s) in scales.iter_mut().enumerate() {
        *s = make_qx_quants(32, &v[16 * ib..16 * ib + 16], &mut levels[16 * ib..]);
        if s.abs() > max_abs_scale {
            max_abs_scale = s.abs();
            max_scale = *s;
        }
    }
    o.fill(0);
    if max_abs_scale < 1e-15 {
        return;
    }
    let iscale = -128.0 / max_scale;
    put_half(o, Q6_D_AT, 1.0 / iscale);
    for (ib, &s) in scales.iter().enumerate() {
        // int8_t of an int ≤ 127: the low byte, as `as i8`.
        o[Q6_SC_AT + ib] = nearest_int(iscale * s).min(127) as i8 as u8;
    }
    let d = half_at(o, Q6_D_AT);
    for j in 0..16 {
        let dj = d * (o[Q6_SC_AT + j] as i8) as f32;
        if dj == 0.0 {
            continue;
        }
        for i in 0..16 {
            let l = nearest_int(v[16 * j + i] / dj).clamp(-32, 31);
            levels[16 * j + i] = (l + 32) as u8;
        }
    }
    for h in 0..2 {
        let lv = &levels[128 * h..128 * h + 128];
        for l in 0..32 {
            let (q1, q2, q3, q4) = (lv[l], lv[l + 32], lv[l + 64], lv[l + 96]);
            o[64 * h + l] = (q1 & 15) | ((q3 & 15) << 4);
            o[64 * h + l + 32] = (q2 & 15) | ((q4 & 15) << 4);
            o[Q6_QH_AT + 32 * h + l] =
                (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::quant::{dequantize, quantize};
    use super::*;

    /// Root-mean-square error over σ of Gaussian-like rows (a sum of sines) for each format:
    /// a wrong scale, minimum or bit position moves it far past these bounds, which are 1.5x
    /// the measured 0.0606 (Q4_K), 0.0302 (Q5_K) and 0.0154 (Q6_K).
    #[test]
    fn k_quant_error_is_that_of_its_bits() {
        let x: Vec<f32> = (0..QK_K * 16)
            .map(|i| {
                let t = i as f32;
                (t * 0.37).sin() + 0.5 * (t * 1.91 + 0.3).sin() + 0.25 * (t * 0.053).cos()
            })
            .collect();
        let sigma = (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
        for (t, bound) in [
            (QuantType::Q4_K, 0.0606),
            (QuantType::Q5_K, 0.0302),
            (QuantType::Q6_K, 0.0154),
        ] {
            let mut q = vec![0u8; t.bytes_for(x.len())];
            quantize(t, &x, &mut q);
            let mut y = vec![0.0f32; x.len()];
            dequantize(t, &q, &mut y);
            let mse = x
                .iter()
                .zip(&y)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>();
            let rel = (mse / x.len() as f32).sqrt() / sigma;
            eprintln!("{}: rms error / sigma = {rel:.4}", t.name());
            assert!(rel <= 1.5 * bound, "{}: {rel}", t.name());
        }
    }
}
