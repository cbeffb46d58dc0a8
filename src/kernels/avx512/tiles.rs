//! Register-level data movement for the AMX paths: the 16×16 transpose, transposed tile
//! stores and the bf16 packing of activation rows.

use super::elementwise::{bf16_bits16, gelu16};
use super::{from_bh, mask16, Avx512, Avx512Bf16};
use crate::kernels::Epilogue;
use std::arch::x86_64::*;

impl Avx512 {
    /// Writes the transpose of a 16×16 f32 tile `t` (row-major) through the epilogue `e`:
    /// dst[c·ld + r] = t[r·16 + c] (+ bias[r], GELU, + dst[c·ld + r]) for c < cols, r < rows;
    /// `bias` starts at this tile's first column.
    ///
    /// # Safety
    /// `dst` is valid for reads and writes of `cols` rows of `rows` floats at stride `ld`, and
    /// nothing else touches those floats during the call.
    pub(crate) unsafe fn put_transposed(
        self,
        t: &[f32; 256],
        dst: *mut f32,
        ld: usize,
        (rows, cols): (usize, usize),
        bias: Option<&[f32]>,
        e: &Epilogue,
    ) {
        let rows = rows.min(16);
        assert!(bias.is_none_or(|b| b.len() >= rows));
        // SAFETY: the token proves AVX-512F; the caller bounds dst, the assert bias.
        unsafe { put_transposed(t, dst, ld, rows, cols.min(16), bias, e.gelu, e.accumulate) }
    }
}

/// # Safety
/// AVX-512F; as [`Avx512::put_transposed`], with bias (if any) holding ≥ rows floats.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn put_transposed(
    t: &[f32; 256],
    dst: *mut f32,
    ld: usize,
    rows: usize,
    cols: usize,
    bias: Option<&[f32]>,
    gelu: bool,
    accumulate: bool,
) {
    let mut r = [_mm512_setzero_ps(); 16];
    for (i, v) in r.iter_mut().enumerate() {
        // SAFETY: row i of the 256-float tile.
        *v = unsafe { _mm512_loadu_ps(t.as_ptr().add(16 * i)) };
    }
    transpose16(&mut r);
    let m = mask16(rows);
    // SAFETY: the caller's bias holds ≥ rows floats; the mask stops there.
    let b = bias.map(|b| unsafe { _mm512_maskz_loadu_ps(m, b.as_ptr()) });
    for (c, col) in r.iter().enumerate().take(cols) {
        let mut v = *col;
        if let Some(b) = b {
            v = _mm512_add_ps(v, b);
        }
        if gelu {
            v = gelu16(v);
        }
        let p = dst.wrapping_add(c * ld);
        // SAFETY: column c < cols goes to row c of dst, rows floats; the caller bounds it.
        unsafe {
            if accumulate {
                v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, p), v);
            }
            _mm512_mask_storeu_ps(p, m, v);
        }
    }
}

impl Avx512 {
    /// Packs output columns j0..j0 + 32 of a bf16 weight w [n, k] (past n: zeros) as k.div_ceil(2)
    /// rows of 32 u32: out[p·32 + c] = w[j0 + c][2p] | w[j0 + c][2p + 1] << 16 (a missing last
    /// value of an odd k is zero): the 16×16 transposes of the weight rows read as u32 pairs.
    pub(crate) fn pack_panel(
        self,
        w: &[half::bf16],
        n: usize,
        k: usize,
        j0: usize,
        out: &mut [u32],
    ) {
        let kp = k.div_ceil(2);
        assert!(w.len() >= n * k && out.len() >= kp * 32 && j0 < n.max(1));
        let rows = 32.min(n - j0);
        // SAFETY: the token proves AVX-512F; rows below `rows` hold k values each inside w, and
        // out holds kp·32 u32 (asserted).
        unsafe { pack_panel(w.as_ptr() as *const u16, k, j0, rows, out.as_mut_ptr()) };
        if k % 2 == 1 {
            for c in 0..32 {
                out[(kp - 1) * 32 + c] = if c < rows {
                    w[(j0 + c) * k + k - 1].to_bits() as u32
                } else {
                    0
                };
            }
        }
    }

    /// Columns of v [rows, cols] (row stride ldv) as the AMX B operand of P·v: `blocks` blocks
    /// of 16 columns, each kq pairs of rows, out[b·kq·16 + p·16 + c] = bf16(v[2p][16b + c]) |
    /// bf16(v[2p + 1][16b + c]) << 16; zeros past rows and cols.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn pack_cols(
        self,
        v: &[f32],
        ldv: usize,
        rows: usize,
        cols: usize,
        kq: usize,
        blocks: usize,
        out: &mut [u32],
    ) {
        assert!(rows <= 2 * kq && cols <= 16 * blocks && out.len() >= blocks * kq * 16);
        assert!(rows == 0 || v.len() >= (rows - 1) * ldv + cols);
        // SAFETY: the token proves AVX-512F; the asserts bound every access.
        unsafe { pack_cols(v.as_ptr(), ldv, rows, cols, kq, blocks, out.as_mut_ptr()) }
    }

    /// Rows of x [rows, cols] (stride ldx) rounded to bf16 (nearest even) into out [·, ld],
    /// zeros past cols up to ld and in every row of out past `rows`.
    pub(crate) fn rows_to_bf16(
        self,
        x: &[f32],
        ldx: usize,
        rows: usize,
        cols: usize,
        out: &mut [u16],
        ld: usize,
    ) {
        assert!(cols <= ld && out.len() >= rows * ld);
        assert!(rows == 0 || x.len() >= (rows - 1) * ldx + cols);
        out[rows * ld..].fill(0);
        // SAFETY: the token proves AVX-512F; the asserts bound every access.
        unsafe { rows_to_bf16(x.as_ptr(), ldx, rows, cols, out.as_mut_ptr(), ld) }
    }
}

/// # Safety
/// AVX-512F; as [`Avx512::pack_cols`].
#[target_feature(enable = "avx512f")]
unsafe fn pack_cols(
    v: *const f32,
    ldv: usize,
    rows: usize,
    cols: usize,
    kq: usize,
    blocks: usize,
    out: *mut u32,
) {
    for b in 0..blocks {
        let m = mask16(cols.saturating_sub(16 * b));
        for p in 0..kq {
            let row = |t: usize| {
                if t < rows && m != 0 {
                    // SAFETY: row t < rows, columns 16b.. masked to cols.
                    unsafe { _mm512_maskz_loadu_ps(m, v.add(t * ldv + 16 * b)) }
                } else {
                    _mm512_setzero_ps()
                }
            };
            let (lo, hi) = (bf16_bits16(row(2 * p)), bf16_bits16(row(2 * p + 1)));
            let pair = _mm512_or_si512(lo, _mm512_slli_epi32::<16>(hi));
            // SAFETY: b < blocks, p < kq: inside out's blocks·kq·16.
            unsafe { _mm512_storeu_si512(out.add((b * kq + p) * 16) as *mut _, pair) };
        }
    }
}

/// # Safety
/// AVX-512F; as [`Avx512::rows_to_bf16`].
#[target_feature(enable = "avx512f")]
unsafe fn rows_to_bf16(
    x: *const f32,
    ldx: usize,
    rows: usize,
    cols: usize,
    out: *mut u16,
    ld: usize,
) {
    for r in 0..rows {
        for c in (0..ld).step_by(16) {
            let (mx, mo) = (mask16(cols.saturating_sub(c)), mask16(ld - c));
            // SAFETY: row r < rows, columns masked to cols (loads) and ld (stores).
            unsafe {
                let v = _mm512_maskz_loadu_ps(mx, x.add(r * ldx + c));
                _mm512_mask_cvtepi32_storeu_epi16(
                    out.add(r * ld + c) as *mut i16,
                    mo,
                    bf16_bits16(v),
                );
            }
        }
    }
}

/// Transposes 16 vectors of 16 lanes in place: afterwards r[c] holds lane c of every input, in
/// order (bits are moved, never interpreted).
#[target_feature(enable = "avx512f")]
#[inline]
fn transpose16(r: &mut [__m512; 16]) {
    let mut s = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        s[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        s[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    let pd = _mm512_castps_pd;
    let ps = _mm512_castpd_ps;
    for i in 0..4 {
        r[4 * i] = ps(_mm512_unpacklo_pd(pd(s[4 * i]), pd(s[4 * i + 2])));
        r[4 * i + 1] = ps(_mm512_unpackhi_pd(pd(s[4 * i]), pd(s[4 * i + 2])));
        r[4 * i + 2] = ps(_mm512_unpacklo_pd(pd(s[4 * i + 1]), pd(s[4 * i + 3])));
        r[4 * i + 3] = ps(_mm512_unpackhi_pd(pd(s[4 * i + 1]), pd(s[4 * i + 3])));
    }
    for i in 0..2 {
        for j in 0..4 {
            s[8 * i + j] = _mm512_shuffle_f32x4::<0x88>(r[8 * i + j], r[8 * i + j + 4]);
            s[8 * i + j + 4] = _mm512_shuffle_f32x4::<0xdd>(r[8 * i + j], r[8 * i + j + 4]);
        }
    }
    for j in 0..8 {
        r[j] = _mm512_shuffle_f32x4::<0x88>(s[j], s[j + 8]);
        r[j + 8] = _mm512_shuffle_f32x4::<0xdd>(s[j], s[j + 8]);
    }
}

impl Avx512Bf16 {
    /// Packs 16 full activation rows (row stride ldx) for the AMX B tiles: out[p·16 + r] holds
    /// x[r][2p] | x[r][2p + 1] << 16 in bf16 (nearest even) for p < k.div_ceil(32)·16, values
    /// past k being zero.
    pub(crate) fn pack16(self, x: &[f32], ldx: usize, k: usize, out: &mut [u32]) {
        assert!(x.len() >= 15 * ldx + k && out.len() >= k.div_ceil(32) * 16 * 16);
        // SAFETY: the token proves AVX-512F and AVX512_BF16; the assert bounds every access.
        unsafe { pack16(x.as_ptr(), ldx, k, out.as_mut_ptr()) }
    }

    /// Writes a 16×16 f32 result tile `t` of an AMX product (row i = output feature i, column
    /// c = activation row c) through bias and GELU as the next product's packed activations:
    /// out[p·16 + c] = bf16(y(2p, c)) | bf16(y(2p + 1, c)) << 16 for p < 8, where y(i, c) =
    /// gelu(t[i·16 + c] + bias[i]) for features i < rows and 0 past them (the next product's
    /// zero padding of k). The same values, rounded the same way, as an f32 store followed by
    /// [`Avx512Bf16::pack16`]; no transpose is needed, since a feature pair is a row pair.
    pub(crate) fn put_packed(
        self,
        t: &[f32; 256],
        out: &mut [u32],
        rows: usize,
        bias: Option<&[f32]>,
        gelu: bool,
    ) {
        let rows = rows.min(16);
        assert!(out.len() >= 128 && bias.is_none_or(|b| b.len() >= rows));
        // SAFETY: the token proves AVX-512F/BW and AVX512_BF16; the assert bounds out and bias.
        unsafe { put_packed(t, out.as_mut_ptr(), rows, bias, gelu) }
    }
}

/// # Safety
/// AVX-512F/BW and AVX512_BF16; out valid for 128 u32 writes, bias (if any) for `rows` reads.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn put_packed(t: &[f32; 256], out: *mut u32, rows: usize, bias: Option<&[f32]>, gelu: bool) {
    // Word 2c takes the even feature's value of column c (low half of the conversion), word
    // 2c + 1 the odd one's (high half).
    let idx: [u16; 32] = std::array::from_fn(|w| ((w % 2) * 16 + w / 2) as u16);
    // SAFETY: idx holds 32 u16.
    let idx = unsafe { _mm512_loadu_si512(idx.as_ptr() as *const _) };
    let row = |i: usize| {
        if i >= rows {
            return _mm512_setzero_ps();
        }
        // SAFETY: row i < 16 of the tile; bias holds ≥ rows floats (the caller's contract).
        let mut v = unsafe { _mm512_loadu_ps(t.as_ptr().add(16 * i)) };
        if let Some(b) = bias {
            v = _mm512_add_ps(v, _mm512_set1_ps(b[i]));
        }
        if gelu {
            v = gelu16(v);
        }
        v
    };
    for p in 0..8 {
        let both = from_bh(_mm512_cvtne2ps_pbh(row(2 * p + 1), row(2 * p)));
        // SAFETY: pair p < 8 of the 128 u32 the caller provides.
        unsafe {
            _mm512_storeu_si512(
                out.add(16 * p) as *mut _,
                _mm512_permutexvar_epi16(idx, both),
            )
        };
    }
}

/// # Safety
/// AVX-512F and AVX512_BF16; x valid for 16 rows of k floats at stride ldx, out for
/// k.div_ceil(32)·16·16 u32.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pack16(x: *const f32, ldx: usize, k: usize, out: *mut u32) {
    for g in 0..k.div_ceil(32) {
        let left = k - 32 * g;
        let (mlo, mhi) = (mask16(left), mask16(left.saturating_sub(16)));
        let mut r = [_mm512_setzero_ps(); 16];
        for (i, v) in r.iter_mut().enumerate() {
            // SAFETY: row i, the unmasked floats of 32g..32g + 32 lie below k.
            let (lo, hi) = unsafe {
                (
                    _mm512_maskz_loadu_ps(mlo, x.add(i * ldx + 32 * g)),
                    _mm512_maskz_loadu_ps(mhi, x.add(i * ldx + 32 * g + 16)),
                )
            };
            // 32 bf16, lo's 16 first: lane j holds the pair (2j, 2j + 1) of this row's group.
            *v = _mm512_castsi512_ps(from_bh(_mm512_cvtne2ps_pbh(hi, lo)));
        }
        transpose16(&mut r);
        for (j, v) in r.iter().enumerate() {
            // SAFETY: pair 16g + j < k.div_ceil(32)·16, 16 u32 each.
            unsafe { _mm512_storeu_ps(out.add((16 * g + j) * 16) as *mut f32, *v) };
        }
    }
}

/// # Safety
/// AVX-512F; w valid for rows j0..j0 + rows of k u16 each (row stride k), out for
/// k.div_ceil(2)·32 u32. Pairs past k/2 are written as zeros (the caller fills an odd k's last).
#[target_feature(enable = "avx512f")]
unsafe fn pack_panel(w: *const u16, k: usize, j0: usize, rows: usize, out: *mut u32) {
    let (full, kp) = (k / 2, k.div_ceil(2));
    for p0 in (0..kp).step_by(16) {
        let m = mask16(full.saturating_sub(p0));
        for half in 0..2 {
            let mut r = [_mm512_setzero_ps(); 16];
            for (i, v) in r.iter_mut().enumerate() {
                let c = 16 * half + i;
                if c < rows {
                    // SAFETY: row j0 + c lies inside w; only pairs p0.. below k/2 (masked) are read.
                    *v = unsafe {
                        _mm512_maskz_loadu_ps(m, w.add((j0 + c) * k + 2 * p0) as *const f32)
                    };
                }
            }
            transpose16(&mut r);
            for (q, v) in r.iter().enumerate().take(kp - p0.min(kp)) {
                // SAFETY: pair p0 + q < kp, columns 16·half..16·half + 16 of its 32.
                unsafe { _mm512_storeu_ps(out.add((p0 + q) * 32 + 16 * half) as *mut f32, *v) };
            }
        }
    }
}
