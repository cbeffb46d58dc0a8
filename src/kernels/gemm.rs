//! Products of many activation rows with a bf16 weight, on the AVX-512 microkernels: weight
//! panels are packed per call (NR output columns, k in pairs: one u32 holds two consecutive
//! bf16 of a column), so no f32 copy of a matrix is ever made; activations are packed once per
//! call into MR-row blocks (f32, or bf16 pairs for the bf16 mode).

use super::avx512::{Avx512, Avx512Bf16, MR, NR};
use super::math::bf16_bits;
use super::scratch::{take_u32, Scratch};
use half::bf16;
use rayon::prelude::*;

/// Which microkernel a product runs.
#[derive(Clone, Copy)]
pub(crate) enum Micro {
    /// f32 activations, bf16 weights widened in registers.
    F32(Avx512),
    /// bf16 activations and weights (`vdpbf16ps`), f32 accumulation.
    Bf16(Avx512Bf16),
}

/// Panel rows (`kp`) for a depth of k: k rounded up to pairs.
fn pairs(k: usize) -> usize {
    k.div_ceil(2)
}

/// Packs output columns j0..j0 + NR of w [n, k] (past n: zeros) as kp rows of NR pairs.
fn pack_panel(w: &[bf16], n: usize, k: usize, j0: usize, out: &mut [u32]) {
    let kp = pairs(k);
    for c in 0..NR {
        let j = j0 + c;
        if j >= n {
            for p in 0..kp {
                out[p * NR + c] = 0;
            }
            continue;
        }
        let row = &w[j * k..(j + 1) * k];
        let mut it = row.chunks_exact(2);
        for (p, two) in (&mut it).enumerate() {
            out[p * NR + c] = two[0].to_bits() as u32 | (two[1].to_bits() as u32) << 16;
        }
        if let [last] = it.remainder() {
            out[(kp - 1) * NR + c] = last.to_bits() as u32;
        }
    }
}

/// Packs rows r0..r0 + MR of x [m, k] (past m: zeros) for the f32 microkernel: 2·kp rows of MR.
fn pack_rows_f32(x: &[f32], m: usize, k: usize, r0: usize, out: &mut [u32]) {
    let kp = pairs(k);
    out[..2 * kp * MR].fill(0);
    for r in 0..MR.min(m - r0) {
        let row = &x[(r0 + r) * k..(r0 + r + 1) * k];
        for (t, v) in row.iter().enumerate() {
            out[t * MR + r] = v.to_bits();
        }
    }
}

/// Packs rows r0..r0 + MR of x [m, k] rounded to bf16 pairs: kp rows of MR.
fn pack_rows_bf16(x: &[f32], m: usize, k: usize, r0: usize, out: &mut [u32]) {
    let kp = pairs(k);
    out[..kp * MR].fill(0);
    for r in 0..MR.min(m - r0) {
        let row = &x[(r0 + r) * k..(r0 + r + 1) * k];
        for (t, v) in row.iter().enumerate() {
            out[(t / 2) * MR + r] |= bf16_bits(*v) << (16 * (t % 2));
        }
    }
}

/// A row-major out [m, n] that the tasks of one product fill at once, each its own columns.
struct Out {
    ptr: *mut f32,
    m: usize,
    n: usize,
}

// SAFETY: each task writes only the columns of its own panel (and its own rows), so tasks
// never touch the same floats.
unsafe impl Send for Out {}
// SAFETY: as above.
unsafe impl Sync for Out {}

/// out[m, n] = x[m, k] · wᵀ for a bf16 weight w [n, k].
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_bf16(
    micro: Micro,
    scratch: &Scratch,
    x: &[f32],
    m: usize,
    k: usize,
    w: &[bf16],
    n: usize,
    out: &mut [f32],
) {
    assert!(
        x.len() == m * k && w.len() == n * k && out.len() == m * n,
        "gemm sizes"
    );
    if m == 0 || n == 0 {
        return;
    }
    let kp = pairs(k);
    let blocks = m.div_ceil(MR);
    let panels = n.div_ceil(NR);
    // Few panels (narrow outputs): also split the rows so every thread has work.
    let (row_chunks, per_chunk) = super::row_split(panels, blocks);
    let block_len = match micro {
        Micro::F32(_) => 2 * kp * MR,
        Micro::Bf16(_) => kp * MR,
    };
    scratch.with_shared(|xbuf| {
        let xp = take_u32(xbuf, blocks * block_len);
        xp.par_chunks_mut(block_len)
            .enumerate()
            .for_each(|(b, blk)| match micro {
                Micro::F32(_) => pack_rows_f32(x, m, k, b * MR, blk),
                Micro::Bf16(_) => pack_rows_bf16(x, m, k, b * MR, blk),
            });
        let xp = &*xp;
        let c = Out {
            ptr: out.as_mut_ptr(),
            m,
            n,
        };
        let c = &c;
        (0..panels * row_chunks).into_par_iter().for_each(|t| {
            let (p, rc) = (t / row_chunks, t % row_chunks);
            let (j0, nr) = (p * NR, NR.min(n - p * NR));
            let b_end = ((rc + 1) * per_chunk).min(blocks);
            if rc * per_chunk >= b_end {
                return;
            }
            scratch.with(|slot| {
                let wp = take_u32(&mut slot.packed, kp * NR);
                match micro {
                    Micro::F32(t) => t.pack_panel(w, n, k, j0, wp),
                    Micro::Bf16(_) => match Avx512::new() {
                        Some(t) => t.pack_panel(w, n, k, j0, wp),
                        None => pack_panel(w, n, k, j0, wp),
                    },
                }
                for b in rc * per_chunk..b_end {
                    let (r0, xb) = (b * MR, &xp[b * block_len..(b + 1) * block_len]);
                    let mr = MR.min(c.m - r0);
                    // SAFETY: rows r0..r0 + mr and columns j0..j0 + nr lie inside out [m, n]
                    // (r0 < m, j0 < n); this task alone writes them (its own panel and blocks).
                    unsafe {
                        let dst = c.ptr.add(r0 * c.n + j0);
                        match micro {
                            Micro::F32(t) => {
                                t.micro_f32(kp, bytemuck::cast_slice(xb), wp, dst, c.n, mr, nr)
                            }
                            Micro::Bf16(t) => t.micro_bf16(kp, xb, wp, dst, c.n, mr, nr),
                        }
                    }
                }
            });
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_panel_packing_equals_the_scalar_one() {
        let Some(t) = Avx512::new() else {
            eprintln!("no AVX-512 here: the vector panel packing is not run");
            return;
        };
        // Odd and even k, under and over 16 pairs; full, partial and last panels.
        for (n, k) in [(70usize, 45usize), (32, 64), (5, 3), (40, 33), (33, 1)] {
            let w: Vec<bf16> = (0..n * k)
                .map(|i| bf16::from_f32((i as f32 * 0.37).sin()))
                .collect();
            for j0 in (0..n).step_by(NR) {
                let mut want = vec![7u32; pairs(k) * NR];
                let mut got = vec![9u32; pairs(k) * NR];
                pack_panel(&w, n, k, j0, &mut want);
                t.pack_panel(&w, n, k, j0, &mut got);
                assert_eq!(got, want, "n {n} k {k} j0 {j0}");
            }
        }
    }
}
