//! Pillow's `Image.resize(..., LANCZOS)` on 8-bit RGB, reproduced bit for bit
//! (libImaging/Resample.c: separable two-pass convolution, 22-bit fixed-point coefficients,
//! each pass rounded and clipped to u8). The pass order follows Pillow ≥ 13, which runs the
//! vertical pass first when the height shrinks by more than twice the width's shrink; older
//! Pillow always ran the horizontal pass first (the results then differ by a few levels).

use rayon::prelude::*;

const PRECISION_BITS: u32 = 32 - 8 - 2;
const LANCZOS_SUPPORT: f64 = 3.0;

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

fn lanczos(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// For each output index: the first input index, the tap count, and fixed-point taps.
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    taps: Vec<i32>,
}

fn coeffs(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = LANCZOS_SUPPORT * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut taps = vec![0i32; out_size * ksize];
    let mut w = vec![0.0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) cast truncates toward zero; the clamps make the sign irrelevant.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut ww = 0.0;
        #[allow(clippy::needless_range_loop)] // mirrors Resample.c's loop
        for x in 0..xmax {
            w[x] = lanczos((x as f64 + xmin as f64 - center + 0.5) * ss);
            ww += w[x];
        }
        let k = &mut taps[xx * ksize..(xx + 1) * ksize];
        for x in 0..xmax {
            let v = if ww != 0.0 { w[x] / ww } else { w[x] };
            let f = v * (1u32 << PRECISION_BITS) as f64;
            k[x] = if v < 0.0 {
                (f - 0.5) as i32
            } else {
                (f + 0.5) as i32
            };
        }
        bounds.push((xmin, xmax));
    }
    Coeffs {
        ksize,
        bounds,
        taps,
    }
}

#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resamples rows `[y0, y0 + rows)` of `src` (w×h RGB) horizontally to `out_w`; output rows
/// in parallel (each is computed alone, so the result does not depend on the split).
fn horizontal(src: &[u8], w: usize, y0: usize, rows: usize, out_w: usize, c: &Coeffs) -> Vec<u8> {
    let mut out = vec![0u8; rows * out_w * 3];
    out.par_chunks_mut(out_w * 3)
        .enumerate()
        .for_each(|(y, orow)| {
            let line = &src[(y0 + y) * w * 3..(y0 + y + 1) * w * 3];
            for (xx, &(xmin, n)) in c.bounds.iter().enumerate() {
                let k = &c.taps[xx * c.ksize..xx * c.ksize + n];
                let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
                for (i, &kv) in k.iter().enumerate() {
                    let p = &line[(xmin + i) * 3..(xmin + i) * 3 + 3];
                    for ch in 0..3 {
                        acc[ch] = acc[ch].wrapping_add(p[ch] as i32 * kv);
                    }
                }
                let o = &mut orow[xx * 3..xx * 3 + 3];
                for ch in 0..3 {
                    o[ch] = clip8(acc[ch]);
                }
            }
        });
    out
}

/// Resamples `src` (w×h RGB) vertically to `out_h`, with bounds relative to row `y_shift`;
/// output rows in parallel, each accumulated tap by tap over the whole row.
fn vertical(src: &[u8], w: usize, out_h: usize, c: &Coeffs, y_shift: usize) -> Vec<u8> {
    let mut out = vec![0u8; out_h * w * 3];
    out.par_chunks_mut(w * 3).enumerate().for_each_init(
        || vec![0i32; w * 3],
        |acc, (yy, orow)| {
            let (ymin, n) = c.bounds[yy];
            let k = &c.taps[yy * c.ksize..yy * c.ksize + n];
            let ymin = ymin - y_shift;
            acc.fill(1i32 << (PRECISION_BITS - 1));
            for (i, &kv) in k.iter().enumerate() {
                let row = &src[(ymin + i) * w * 3..(ymin + i + 1) * w * 3];
                for (a, &p) in acc.iter_mut().zip(row) {
                    *a = a.wrapping_add(p as i32 * kv);
                }
            }
            for (o, &a) in orow.iter_mut().zip(acc.iter()) {
                *o = clip8(a);
            }
        },
    );
    out
}

/// Resizes packed RGB8 `src` (w×h) to out_w×out_h exactly as Pillow's LANCZOS does.
pub fn resize_rgb(src: &[u8], w: usize, h: usize, out_w: usize, out_h: usize) -> Vec<u8> {
    assert_eq!(src.len(), w * h * 3);
    assert!(w > 0 && h > 0 && out_w > 0 && out_h > 0);
    if (w, h) == (out_w, out_h) {
        return src.to_vec();
    }
    let cv = coeffs(h, out_h);
    if w == out_w {
        return vertical(src, w, out_h, &cv, 0);
    }
    let ch = coeffs(w, out_w);
    if h == out_h {
        return horizontal(src, w, 0, h, out_w, &ch);
    }
    let (dh, dw) = (h as i64 - out_h as i64, w as i64 - out_w as i64);
    if dh > 0 && dh > dw * 2 {
        let tmp = vertical(src, w, out_h, &cv, 0);
        return horizontal(&tmp, w, 0, out_h, out_w, &ch);
    }
    // The horizontal pass only covers the rows the vertical pass will read.
    let first = cv.bounds[0].0;
    let last = cv.bounds.last().map(|&(m, n)| m + n).unwrap_or(h);
    let tmp = horizontal(src, w, first, last - first, out_w, &ch);
    vertical(&tmp, out_w, out_h, &cv, first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_constant_images_survive() {
        let src: Vec<u8> = (0..5 * 4 * 3).map(|i| (i * 7 % 256) as u8).collect();
        assert_eq!(resize_rgb(&src, 5, 4, 5, 4), src);
        let flat = vec![77u8; 13 * 9 * 3];
        for (w, h) in [(40, 30), (3, 2), (13, 20), (1, 1)] {
            assert!(resize_rgb(&flat, 13, 9, w, h).iter().all(|&v| v == 77));
        }
    }
}
