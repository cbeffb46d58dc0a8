//! Attention of a few query rows (decode steps) over one KV group's keys and values, read in
//! place in f32 or bf16 (the bf16 mode's cache), widened in registers: the cache passes
//! through memory once per step and no widened copy is written.

use super::{mask16, widen_bf16, Avx512};
use half::bf16;
use std::arch::x86_64::*;

/// Rows of keys or values from one group's first column on, at a row stride given beside them.
#[derive(Clone, Copy)]
pub(crate) enum KvRows<'a> {
    F32(&'a [f32]),
    Bf16(&'a [bf16]),
}

impl KvRows<'_> {
    fn len(self) -> usize {
        match self {
            KvRows::F32(x) => x.len(),
            KvRows::Bf16(x) => x.len(),
        }
    }
}

impl Avx512 {
    /// scores[j] = q · k_j, where k_j is the q.len() values at j·ld of `k`.
    pub(crate) fn kv_scores(self, q: &[f32], k: KvRows, ld: usize, scores: &mut [f32]) {
        let (d, n) = (q.len(), scores.len());
        assert!(n == 0 || k.len() >= (n - 1) * ld + d);
        let (q, s) = (q.as_ptr(), scores.as_mut_ptr());
        // SAFETY: the token proves AVX-512F/BW/VL; the assert bounds every read of k, q holds d
        // values and scores n.
        unsafe {
            match k {
                KvRows::F32(k) => scores_by::<false>(q, d, k.as_ptr() as *const u8, ld, n, s),
                KvRows::Bf16(k) => scores_by::<true>(q, d, k.as_ptr() as *const u8, ld, n, s),
            }
        }
    }

    /// out = Σ_j p[j] · v_j, where v_j is the out.len() values at j·ld of `v`.
    pub(crate) fn kv_weighted_sum(self, p: &[f32], v: KvRows, ld: usize, out: &mut [f32]) {
        let (d, n) = (out.len(), p.len());
        assert!(n == 0 || v.len() >= (n - 1) * ld + d);
        let (p, o) = (p.as_ptr(), out.as_mut_ptr());
        // SAFETY: as in kv_scores; out holds d values.
        unsafe {
            match v {
                KvRows::F32(v) => sum_by::<false>(p, n, v.as_ptr() as *const u8, ld, d, o),
                KvRows::Bf16(v) => sum_by::<true>(p, n, v.as_ptr() as *const u8, ld, d, o),
            }
        }
    }
}

/// 16 values (masked) of a row at element `at`, widened to f32 when the rows are bf16.
///
/// # Safety
/// AVX-512F/BW/VL; the unmasked elements from `at` on are in bounds of the rows at `base`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
unsafe fn load<const BF16: bool>(base: *const u8, at: usize, m: __mmask16) -> __m512 {
    // SAFETY: per this function's contract; masked lanes are not read.
    unsafe {
        if BF16 {
            widen_bf16(_mm256_maskz_loadu_epi16(m, base.add(2 * at) as *const _))
        } else {
            _mm512_maskz_loadu_ps(m, base.add(4 * at) as *const f32)
        }
    }
}

/// # Safety
/// AVX-512F/BW/VL; q valid for d reads, k for rows 0..n of d at stride ld, s for n writes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn scores_by<const BF16: bool>(
    q: *const f32,
    d: usize,
    k: *const u8,
    ld: usize,
    n: usize,
    s: *mut f32,
) {
    let mut j = 0;
    // Four keys at a time: four independent FMA chains.
    while j < n {
        let keys = (n - j).min(4);
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut c = 0;
        while c < d {
            let m = mask16(d - c);
            // SAFETY: c + lanes ≤ d, within q and within each key row (the caller's bound).
            let qv = unsafe { _mm512_maskz_loadu_ps(m, q.add(c)) };
            for (r, a) in acc.iter_mut().enumerate().take(keys) {
                // SAFETY: as above.
                *a = _mm512_fmadd_ps(qv, unsafe { load::<BF16>(k, (j + r) * ld + c, m) }, *a);
            }
            c += 16;
        }
        for (r, a) in acc.iter().enumerate().take(keys) {
            // SAFETY: j + r < n.
            unsafe { *s.add(j + r) = _mm512_reduce_add_ps(*a) };
        }
        j += keys;
    }
}

/// # Safety
/// AVX-512F/BW/VL; p valid for n reads, v for rows 0..n of d at stride ld, o for d writes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn sum_by<const BF16: bool>(
    p: *const f32,
    n: usize,
    v: *const u8,
    ld: usize,
    d: usize,
    o: *mut f32,
) {
    // 64 output columns (four vectors) per pass over the rows.
    let mut c0 = 0;
    while c0 < d {
        let mut acc = [_mm512_setzero_ps(); 4];
        for j in 0..n {
            // SAFETY: j < n.
            let pj = _mm512_set1_ps(unsafe { *p.add(j) });
            for (i, a) in acc.iter_mut().enumerate() {
                let c = c0 + 16 * i;
                if c < d {
                    // SAFETY: the masked lanes stay below d, within row j (the caller's bound).
                    *a = _mm512_fmadd_ps(
                        pj,
                        unsafe { load::<BF16>(v, j * ld + c, mask16(d - c)) },
                        *a,
                    );
                }
            }
        }
        for (i, a) in acc.iter().enumerate() {
            let c = c0 + 16 * i;
            if c < d {
                // SAFETY: the masked lanes stay below d.
                unsafe { _mm512_mask_storeu_ps(o.add(c), mask16(d - c), *a) };
            }
        }
        c0 += 64;
    }
}
