//! ggml's block formats as GGUF stores them: the 32-element ones (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1)
//! here and the 256-element K-quants (Q4_K, Q5_K, Q6_K) in `kquant`. Quantization computes what
//! ggml's reference functions compute (so a file written here holds the bytes llama.cpp's
//! `llama-quantize` would write) and dequantization the values ggml's `dequantize_row_*` gives.
//! A leaf module: the kernels expand blocks with the same formulas.

use super::kquant;
use half::f16;

/// Elements per block of the 32-element formats.
pub const QK: usize = 32;
/// Elements per super-block of the K-quants.
pub const QK_K: usize = 256;

/// A block format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)] // ggml's names
pub enum QuantType {
    /// 8-bit: an f16 scale and 32 signed bytes; w = d·q.
    Q8_0,
    /// 4-bit: an f16 scale and 32 nibbles; w = d·(q − 8).
    Q4_0,
    /// 4-bit with a minimum: f16 scale and minimum, 32 nibbles; w = d·q + m.
    Q4_1,
    /// 5-bit: an f16 scale, the 32 fifth bits, 32 nibbles; w = d·(q − 16).
    Q5_0,
    /// 5-bit with a minimum: f16 scale and minimum, fifth bits, nibbles; w = d·q + m.
    Q5_1,
    /// 4-bit super-blocks of 256: eight 6-bit scales and minimums under two f16 ones;
    /// w = d·s_j·q − dmin·m_j.
    Q4_K,
    /// 5-bit super-blocks of 256, scaled as Q4_K.
    Q5_K,
    /// 6-bit super-blocks of 256: sixteen int8 scales under an f16 one; w = d·s_j·(q − 32).
    Q6_K,
}

impl QuantType {
    /// Every format, in the order of the names below.
    pub const ALL: [QuantType; 8] = [
        QuantType::Q8_0,
        QuantType::Q4_0,
        QuantType::Q4_1,
        QuantType::Q5_0,
        QuantType::Q5_1,
        QuantType::Q4_K,
        QuantType::Q5_K,
        QuantType::Q6_K,
    ];

    /// Bytes of one block.
    pub const fn block_bytes(self) -> usize {
        match self {
            QuantType::Q8_0 => 34,
            QuantType::Q4_0 => 18,
            QuantType::Q4_1 => 20,
            QuantType::Q5_0 => 22,
            QuantType::Q5_1 => 24,
            QuantType::Q4_K => 144,
            QuantType::Q5_K => 176,
            QuantType::Q6_K => 210,
        }
    }

    /// Elements of one block: [`QK`] or [`QK_K`].
    pub const fn block_elems(self) -> usize {
        match self {
            QuantType::Q4_K | QuantType::Q5_K | QuantType::Q6_K => QK_K,
            _ => QK,
        }
    }

    /// The name llama.cpp uses, lower case: `q8_0`, `q4_k`, …
    pub fn name(self) -> &'static str {
        match self {
            QuantType::Q8_0 => "q8_0",
            QuantType::Q4_0 => "q4_0",
            QuantType::Q4_1 => "q4_1",
            QuantType::Q5_0 => "q5_0",
            QuantType::Q5_1 => "q5_1",
            QuantType::Q4_K => "q4_k",
            QuantType::Q5_K => "q5_k",
            QuantType::Q6_K => "q6_k",
        }
    }

    /// Parses [`QuantType::name`] (any case).
    pub fn from_name(s: &str) -> Option<QuantType> {
        Self::ALL
            .into_iter()
            .find(|q| q.name().eq_ignore_ascii_case(s))
    }

    /// Bytes of `n` elements (n a multiple of [`QuantType::block_elems`]).
    pub fn bytes_for(self, n: usize) -> usize {
        n / self.block_elems() * self.block_bytes()
    }

    /// The format a row of `k` elements is stored in when this one is asked for: itself when `k`
    /// fills its blocks, else the 32-element format llama.cpp's quantizer falls back to (Q4_K →
    /// Q5_0, Q5_K → Q5_1, Q6_K → Q8_0); None when not even that fits.
    pub fn for_row(self, k: usize) -> Option<QuantType> {
        let t = if k.is_multiple_of(self.block_elems()) {
            self
        } else {
            match self {
                QuantType::Q4_K => QuantType::Q5_0,
                QuantType::Q5_K => QuantType::Q5_1,
                QuantType::Q6_K => QuantType::Q8_0,
                t => t,
            }
        };
        (k > 0 && k.is_multiple_of(t.block_elems())).then_some(t)
    }
}

pub(crate) fn half_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// The scale (and minimum, 0 for the formats without one) of a 32-element block.
#[inline]
pub(crate) fn scale_min(t: QuantType, block: &[u8]) -> (f32, f32) {
    match t {
        QuantType::Q4_1 | QuantType::Q5_1 => (half_at(block, 0), half_at(block, 2)),
        _ => (half_at(block, 0), 0.0),
    }
}

/// Expands one block into its `t.block_elems()` f32 weights (`out` that long), the values
/// ggml's `dequantize_row_*` computes: d·q is exact in f32 (an 11-bit scale times a ≤ 8-bit
/// integer), so one rounding at most (the minimum's + m).
#[inline]
pub(crate) fn dequantize_block(t: QuantType, block: &[u8], out: &mut [f32]) {
    let (d, m) = scale_min(t, block);
    match t {
        QuantType::Q8_0 => {
            for (o, &q) in out.iter_mut().zip(&block[2..34]) {
                *o = d * (q as i8) as f32;
            }
        }
        QuantType::Q4_0 | QuantType::Q4_1 => {
            let (qs, off) = if t == QuantType::Q4_0 {
                (&block[2..18], 8)
            } else {
                (&block[4..20], 0)
            };
            for (j, &b) in qs.iter().enumerate() {
                out[j] = d * ((b & 15) as i32 - off) as f32 + m;
                out[j + 16] = d * ((b >> 4) as i32 - off) as f32 + m;
            }
        }
        QuantType::Q5_0 | QuantType::Q5_1 => {
            let (at, off) = if t == QuantType::Q5_0 {
                (2, 16)
            } else {
                (4, 0)
            };
            let qh = u32::from_le_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]]);
            for (j, &b) in block[at + 4..at + 20].iter().enumerate() {
                let lo = (b & 15) as i32 | (((qh >> j) & 1) << 4) as i32;
                let hi = (b >> 4) as i32 | (((qh >> (j + 16)) & 1) << 4) as i32;
                out[j] = d * (lo - off) as f32 + m;
                out[j + 16] = d * (hi - off) as f32 + m;
            }
        }
        QuantType::Q4_K | QuantType::Q5_K | QuantType::Q6_K => {
            kquant::dequantize_block(t, block, out)
        }
    }
}

/// Dequantizes `out.len()` elements (whole blocks) from `bytes`.
///
/// # Panics
/// When `out.len()` is not a multiple of the block size or `bytes` holds fewer blocks.
pub fn dequantize(t: QuantType, bytes: &[u8], out: &mut [f32]) {
    let (bb, be) = (t.block_bytes(), t.block_elems());
    assert!(out.len().is_multiple_of(be) && bytes.len() >= out.len() / be * bb);
    for (o, blk) in out.chunks_exact_mut(be).zip(bytes.chunks_exact(bb)) {
        dequantize_block(t, blk, o);
    }
}

/// Quantizes `x` (whole blocks) into `out` as ggml's `quantize_row_*_ref` does.
///
/// # Panics
/// When `x.len()` is not a multiple of the block size or `out` is not that many blocks long.
pub fn quantize(t: QuantType, x: &[f32], out: &mut [u8]) {
    let (bb, be) = (t.block_bytes(), t.block_elems());
    assert!(x.len().is_multiple_of(be) && out.len() == x.len() / be * bb);
    for (v, o) in x.chunks_exact(be).zip(out.chunks_exact_mut(bb)) {
        match t {
            QuantType::Q8_0 => quantize_q8_0(v, o),
            QuantType::Q4_0 => quantize_q4_0(v, o),
            QuantType::Q4_1 => quantize_q4_1(v, o),
            QuantType::Q5_0 => quantize_q5_0(v, o),
            QuantType::Q5_1 => quantize_q5_1(v, o),
            QuantType::Q4_K => kquant::quantize_q4_k(v, o),
            QuantType::Q5_K => kquant::quantize_q5_k(v, o),
            QuantType::Q6_K => kquant::quantize_q6_k(v, o),
        }
    }
}

pub(super) fn put_half(o: &mut [u8], at: usize, v: f32) {
    o[at..at + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
}

fn quantize_q8_0(v: &[f32], o: &mut [u8]) {
    let amax = v.iter().fold(0.0f32, |a, x| a.max(x.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_half(o, 0, d);
    for (q, x) in o[2..].iter_mut().zip(v) {
        // roundf: halves away from zero, as f32::round.
        *q = (x * id).round() as i8 as u8;
    }
}

/// The value of largest magnitude, with its sign (the first one on ties).
fn signed_max(v: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &x in v {
        if amax < x.abs() {
            amax = x.abs();
            max = x;
        }
    }
    max
}

/// The minimum and maximum, as ggml scans for them.
fn min_max(v: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &x in v {
        min = if x < min { x } else { min };
        max = if x > max { x } else { max };
    }
    (min, max)
}

fn quantize_q4_0(v: &[f32], o: &mut [u8]) {
    let d = signed_max(v) / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_half(o, 0, d);
    for j in 0..QK / 2 {
        // (int8_t)(x + 8.5f) truncates toward zero; the argument is ≥ 0.5 here.
        let q0 = ((v[j] * id + 8.5) as i8).min(15) as u8;
        let q1 = ((v[j + QK / 2] * id + 8.5) as i8).min(15) as u8;
        o[2 + j] = q0 | (q1 << 4);
    }
}

fn quantize_q4_1(v: &[f32], o: &mut [u8]) {
    let (min, max) = min_max(v);
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_half(o, 0, d);
    put_half(o, 2, min);
    for j in 0..QK / 2 {
        let q0 = (((v[j] - min) * id + 0.5) as i8).min(15) as u8;
        let q1 = (((v[j + QK / 2] - min) * id + 0.5) as i8).min(15) as u8;
        o[4 + j] = q0 | (q1 << 4);
    }
}

/// Packs 32 five-bit values: nibbles of elements j and j + 16 share byte j, the fifth bits
/// form a little-endian u32 at `at`.
fn pack_q5(q: &[u8; QK], o: &mut [u8], at: usize) {
    let mut qh = 0u32;
    for j in 0..QK / 2 {
        let (a, b) = (q[j], q[j + QK / 2]);
        o[at + 4 + j] = (a & 15) | ((b & 15) << 4);
        qh |= (((a >> 4) & 1) as u32) << j | (((b >> 4) & 1) as u32) << (j + QK / 2);
    }
    o[at..at + 4].copy_from_slice(&qh.to_le_bytes());
}

fn quantize_q5_0(v: &[f32], o: &mut [u8]) {
    let d = signed_max(v) / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_half(o, 0, d);
    let mut q = [0u8; QK];
    for (qi, &x) in q.iter_mut().zip(v) {
        *qi = ((x * id + 16.5) as i8).min(31) as u8;
    }
    pack_q5(&q, o, 2);
}

fn quantize_q5_1(v: &[f32], o: &mut [u8]) {
    let (min, max) = min_max(v);
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_half(o, 0, d);
    put_half(o, 2, min);
    let mut q = [0u8; QK];
    for (qi, &x) in q.iter_mut().zip(v) {
        // (uint8_t)(x + 0.5f), unclamped as in ggml: the argument lies in [0.5, 31.5].
        *qi = ((x - min) * id + 0.5) as u8;
    }
    pack_q5(&q, o, 4);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(n: usize, f: f32, p: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * f + p).sin() * 0.3).collect()
    }

    #[test]
    fn the_error_of_each_format_is_within_its_step() {
        let x = wave(QK * 40, 0.173, 0.4);
        for t in QuantType::ALL.into_iter().filter(|t| t.block_elems() == QK) {
            let mut q = vec![0u8; t.bytes_for(x.len())];
            quantize(t, &x, &mut q);
            let mut y = vec![0.0f32; x.len()];
            dequantize(t, &q, &mut y);
            for (b, (xb, yb)) in x.chunks(QK).zip(y.chunks(QK)).enumerate() {
                let (lo, hi) = xb
                    .iter()
                    .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
                let amax = lo.abs().max(hi.abs());
                // One step: amax/127 (Q8_0), amax/8 (Q4_0), amax/16 (Q5_0), (max−min)/15
                // (Q4_1), (max−min)/31 (Q5_1); the scale is rounded to f16 (2⁻¹¹ relative), so
                // each bound carries that margin too.
                let step = match t {
                    QuantType::Q8_0 => amax / 127.0,
                    QuantType::Q4_0 => amax / 8.0,
                    QuantType::Q5_0 => amax / 16.0,
                    QuantType::Q4_1 => (hi - lo) / 15.0,
                    _ => (hi - lo) / 31.0,
                };
                // Q4_0's levels are −8..7 steps (Q5_0's −16..15): the extreme opposite the one
                // that set the scale is clamped and may be off by a whole step (as in ggml).
                let steps = if matches!(t, QuantType::Q4_0 | QuantType::Q5_0) {
                    1.0
                } else {
                    0.5
                };
                let bound = steps * step + amax * 2e-3 + 1e-7;
                for (a, b2) in xb.iter().zip(yb) {
                    assert!((a - b2).abs() <= bound, "{t:?} block {b}: {a} vs {b2}");
                }
            }
        }
    }

    #[test]
    fn blocks_hold_ggml_bytes() {
        // Hand-worked: Q8_0 of 0, 1, …, 31 scaled by 1/31: amax = 1, d = 1/127.
        let x: Vec<f32> = (0..32).map(|i| i as f32 / 31.0).collect();
        let mut q = [0u8; 34];
        quantize(QuantType::Q8_0, &x, &mut q);
        assert_eq!(f16::from_le_bytes([q[0], q[1]]), f16::from_f32(1.0 / 127.0));
        assert_eq!(q[2 + 31] as i8, 127);
        assert_eq!(q[2 + 1] as i8, (127.0f32 / 31.0).round() as i8);
        // Q4_0: the extreme is −1 (first of the largest magnitude), d = 1/8, −1 → q 0.
        let mut x = vec![0.0f32; 32];
        x[3] = -1.0;
        x[20] = 0.5;
        let mut q = [0u8; 18];
        quantize(QuantType::Q4_0, &x, &mut q);
        assert_eq!(f16::from_le_bytes([q[0], q[1]]).to_f32(), 0.125);
        assert_eq!(q[2 + 3] & 15, 0);
        assert_eq!(q[2 + 4] >> 4, 12); // 0.5·8 + 8
        assert_eq!(q[2] & 15, 8);
        // Q4_1: min −1, max 0.5, d = 0.1; the minimum is stored.
        let mut q = [0u8; 20];
        quantize(QuantType::Q4_1, &x, &mut q);
        assert_eq!(
            f16::from_le_bytes([q[2], q[3]]).to_f32(),
            -1.0,
            "Q4_1 minimum"
        );
        assert_eq!(q[4 + 3] & 15, 0);
        assert_eq!(q[4 + 4] >> 4, 15);
        let mut y = [0.0f32; 32];
        dequantize_block(QuantType::Q4_1, &q, &mut y);
        assert!((y[20] - 0.5).abs() < 1e-3 && y[3] == -1.0);
    }

    #[test]
    fn an_all_zero_block_quantizes_to_zeros() {
        for t in QuantType::ALL {
            let mut q = vec![0xAAu8; t.block_bytes()];
            quantize(t, &vec![0.0; t.block_elems()], &mut q);
            let mut y = vec![1.0f32; t.block_elems()];
            dequantize_block(t, &q, &mut y);
            assert!(y.iter().all(|&v| v == 0.0), "{t:?}");
        }
    }
}
