//! AMX products of many activation rows with a bf16 weight read in place (outᵀ = W·xᵀ).

use super::{pack_x, Amx, Epilogue, Out, Tiles, KS, WB, XB};
use crate::kernels::scratch::{take, take_u32, Scratch, Slot};
use half::bf16;
use rayon::prelude::*;

/// k steps per chunk (k = 2048): partial sums leave the tiles once per chunk, and a weight
/// chunk (32 rows × 2048 bf16, 128 KiB) stays in L2 while the task's activation pairs pass
/// over it. Chunks of 256 (an L1-sized weight chunk) spent more on partial sums than they saved
/// (SmolVLM-Instruct shapes, 1128-token prefill on 2 threads, single runs: 7.4–7.5 s at 8 steps,
/// 5.5–5.7 s at 64 with 8 pairs per task).
const CHUNK_STEPS: usize = 64;
/// Most activation pairs (32 rows each) and weight blocks (32 rows each) per task: a task's
/// partial sums (≤ 256 KiB) and the activations of a chunk stay in L2, and each weight chunk
/// brought from memory is used for up to 8 pairs.
const TASK_PAIRS: usize = 8;
const TASK_BLOCKS: usize = 8;

fn prefetch(p: *const bf16) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
    // SAFETY: a prefetch reads nothing architecturally and never faults, whatever the address.
    unsafe { _mm_prefetch::<_MM_HINT_T1>(p as *const i8) };
}

/// One task: weight blocks `blocks` (32 rows each) of one part × activation pairs `pairs`.
struct Task {
    blocks: std::ops::Range<usize>,
    pairs: std::ops::Range<usize>,
}

/// Output columns of `t.blocks` × rows of `t.pairs`, k chunk by k chunk: each weight chunk (in
/// place, or a zero-padded copy where the block is short or k is not whole tiles) meets every
/// activation pair of the task; partial sums between chunks wait in `acc` (4 KiB per
/// block × pair).
#[allow(clippy::too_many_arguments)]
fn task(
    tiles: &Tiles,
    w: &[bf16],
    n: usize,
    k: usize,
    kpad: usize,
    xp: &[u32],
    t: &Task,
    (c, e): (&Out, &Epilogue),
    slot: &mut Slot,
) {
    let kq = kpad / 2;
    let steps = kpad / KS;
    let (np, nb) = (t.pairs.len(), t.blocks.len());
    let acc = take(&mut slot.b, np * nb * 1024);
    let pad: &mut [bf16] =
        bytemuck::cast_slice_mut(take_u32(&mut slot.packed, WB * CHUNK_STEPS * KS / 2));
    let mut buf = [0.0f32; 1024];
    let mut tail = [bf16::ZERO; WB * KS];
    for s0 in (0..steps).step_by(CHUNK_STEPS) {
        let s1 = (s0 + CHUNK_STEPS).min(steps);
        for (bi, wb) in t.blocks.clone().enumerate() {
            let j0 = wb * WB;
            // A source for steps s0..s1: W in place (row stride k; a last step that is not a
            // whole tile comes from `tail`, zero-padded), or a padded copy of a short block.
            let whole = k / KS;
            let in_place = j0 + WB <= n;
            let (a, sa): (&[bf16], usize) = if in_place {
                if s1 > whole {
                    for (r, row) in tail.chunks_exact_mut(KS).enumerate() {
                        let src = &w[(j0 + r) * k + whole * KS..(j0 + r + 1) * k];
                        row[..src.len()].copy_from_slice(src);
                        row[src.len()..].fill(bf16::ZERO);
                    }
                }
                (&w[j0 * k + s0 * KS..(j0 + WB) * k], k)
            } else {
                let width = (s1 - s0) * KS;
                let (c0, c1) = (s0 * KS, (s1 * KS).min(k));
                for r in 0..WB {
                    let row = &mut pad[r * width..(r + 1) * width];
                    let len = if j0 + r < n { c1.saturating_sub(c0) } else { 0 };
                    if len > 0 {
                        row[..len].copy_from_slice(&w[(j0 + r) * k + c0..][..len]);
                    }
                    row[len..].fill(bf16::ZERO);
                }
                (&pad[..WB * width], width)
            };
            // The next weight chunk this task reads (the next block, or the first block at the
            // next chunk), brought to L2 a few lines per step: its first touch would otherwise
            // stall on memory while the tiles wait.
            let next = if bi + 1 < nb {
                Some((t.blocks.start + bi + 1, s0))
            } else if s1 < steps {
                Some((t.blocks.start, s1))
            } else {
                None
            };
            let next = next.filter(|&(b, _)| (b + 1) * WB <= n);
            let next_base = next.map(|(b, sn)| w[b * WB * k + sn * KS..].as_ptr());
            let row_lines = (CHUNK_STEPS * KS * 2).div_ceil(64);
            let lines = WB * row_lines;
            let per_step = lines.div_ceil(np * (s1 - s0));
            let mut line = 0;
            for (pi, pair) in t.pairs.clone().enumerate() {
                let (b0, b1) = (&xp[2 * pair * kq * 16..], &xp[(2 * pair + 1) * kq * 16..]);
                // A last pair whose second block of 16 rows lies wholly past m (98 rows: 4
                // pairs, the last holding 2) skips that block's products.
                let half = pair * XB + 16 >= c.m;
                let part: &mut [f32; 1024] = (&mut acc[(bi * np + pi) * 1024..][..1024])
                    .try_into()
                    .expect("1024-float block");
                if s0 == 0 {
                    tiles.zero();
                } else {
                    tiles.load(part);
                }
                for s in s0..s1 {
                    if let Some(base) = next_base {
                        for l in line..(line + per_step).min(lines) {
                            let p = base.wrapping_add((l / row_lines) * k + (l % row_lines) * 32);
                            prefetch(p);
                        }
                        line += per_step;
                    }
                    let (b0, b1) = (&b0[s * 256..], &b1[s * 256..]);
                    if in_place && s >= whole {
                        tiles.step_on(&tail[..], &tail[16 * KS..], KS, b0, b1, half);
                    } else {
                        let (ra, rb) = (&a[(s - s0) * KS..], &a[16 * sa + (s - s0) * KS..]);
                        tiles.step_on(ra, rb, sa, b0, b1, half);
                    }
                }
                if s1 < steps {
                    tiles.store(part);
                } else {
                    tiles.store(&mut buf);
                    // SAFETY: this task alone owns columns j0..j0 + 32 of these rows.
                    unsafe { c.put(tiles.0 .0, &buf, j0, pair * XB, e) };
                }
            }
        }
    }
}

/// Products of x rounded to bf16 with bf16 weights on AMX tiles; several of the same x (q/k/v,
/// gate/up) pack x once and run the weight blocks of all parts as the tasks of one parallel
/// pass. Part i: out_i [m, n_i] = x · w_iᵀ through epilogue i, w_i [n_i, k].
pub(crate) fn gemm_parts<const N: usize>(
    amx: Amx,
    scratch: &Scratch,
    x: &[f32],
    m: usize,
    k: usize,
    parts: [(&[bf16], &mut [f32], Epilogue); N],
) {
    assert_eq!(x.len(), m * k, "amx gemm input size");
    if m == 0 || k == 0 {
        return;
    }
    let kq = k.next_multiple_of(KS) / 2;
    scratch.with_shared(|xbuf| {
        let xp = take_u32(xbuf, m.div_ceil(XB) * 2 * kq * 16);
        pack_rows(amx, x, m, k, xp);
        run_parts(
            amx,
            scratch,
            xp,
            m,
            k,
            parts.map(|(w, o, e)| (w, Dest::Rows(o), e)),
        );
    });
}

/// As [`gemm_parts`] with x already packed (by [`gemm_to_packed`]): `xp` holds
/// [`packed_len`](m, k) values.
pub(crate) fn gemm_packed<const N: usize>(
    amx: Amx,
    scratch: &Scratch,
    xp: &[u32],
    m: usize,
    k: usize,
    parts: [(&[bf16], &mut [f32], Epilogue); N],
) {
    assert!(xp.len() >= packed_len(m, k), "amx gemm packed input size");
    if m == 0 || k == 0 {
        return;
    }
    run_parts(
        amx,
        scratch,
        xp,
        m,
        k,
        parts.map(|(w, o, e)| (w, Dest::Rows(o), e)),
    );
}

/// x · wᵀ through `e` (bias, GELU; no accumulation), w [n, k], written as the packed
/// activations of a next product of depth n: `out` holds at least [`packed_len`](m, n) values.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_to_packed(
    amx: Amx,
    scratch: &Scratch,
    x: &[f32],
    m: usize,
    k: usize,
    w: &[bf16],
    e: Epilogue,
    out: &mut [u32],
) {
    assert_eq!(x.len(), m * k, "amx gemm input size");
    let n = w.len() / k.max(1);
    assert!(
        !e.accumulate && out.len() >= packed_len(m, n),
        "amx packed output"
    );
    if m == 0 || k == 0 || n == 0 {
        return;
    }
    let kq = k.next_multiple_of(KS) / 2;
    scratch.with_shared(|xbuf| {
        let xp = take_u32(xbuf, m.div_ceil(XB) * 2 * kq * 16);
        pack_rows(amx, x, m, k, xp);
        run_parts(amx, scratch, xp, m, k, [(w, Dest::Packed(out), e)]);
    });
}

/// The u32 count of m activation rows of depth k packed for the tiles: whole 32-row pairs of
/// blocks, k padded to whole tiles.
pub(crate) fn packed_len(m: usize, k: usize) -> usize {
    m.div_ceil(XB) * 2 * (k.next_multiple_of(KS) / 2) * 16
}

fn pack_rows(amx: Amx, x: &[f32], m: usize, k: usize, xp: &mut [u32]) {
    let kq = k.next_multiple_of(KS) / 2;
    xp.par_chunks_mut(kq * 16)
        .enumerate()
        .for_each(|(b, blk)| pack_x(amx.1, x, k, m, k, b * 16, kq, blk));
}

/// Where a part's results go.
enum Dest<'a> {
    Rows(&'a mut [f32]),
    Packed(&'a mut [u32]),
}

fn run_parts<const N: usize>(
    amx: Amx,
    scratch: &Scratch,
    xp: &[u32],
    m: usize,
    k: usize,
    mut parts: [(&[bf16], Dest, Epilogue); N],
) {
    let ns: [usize; N] = std::array::from_fn(|i| parts[i].0.len() / k.max(1));
    for (i, (w, o, e)) in parts.iter().enumerate() {
        let fits = match o {
            Dest::Rows(o) => o.len() == m * ns[i],
            Dest::Packed(o) => o.len() >= packed_len(m, ns[i]),
        };
        assert!(w.len() == ns[i] * k && fits, "amx gemm sizes");
        assert!(
            e.bias.is_none_or(|b| b.len() == ns[i]),
            "amx gemm bias size"
        );
    }
    let kpad = k.next_multiple_of(KS);
    let pairs = m.div_ceil(XB);
    // Tasks: activation chunks of ≤ TASK_PAIRS pairs × per-part runs of `per` weight blocks,
    // `per` as large as TASK_BLOCKS allows while the pool still gets about 4 tasks per thread.
    let blocks: [usize; N] = std::array::from_fn(|i| ns[i].div_ceil(WB));
    let total: usize = blocks.iter().sum();
    let pchunks = pairs.div_ceil(TASK_PAIRS);
    // Pairs spread evenly over the chunks (7 pairs: 4 + 3, not 6 + 1).
    let per_pchunk = pairs.div_ceil(pchunks);
    let threads = rayon::current_num_threads().max(1);
    let per = (total * pchunks)
        .div_ceil(4 * threads)
        .clamp(1, TASK_BLOCKS);
    let runs: [usize; N] = std::array::from_fn(|i| blocks[i].div_ceil(per));
    let per_chunk: usize = runs.iter().sum();
    // From here on the outputs are written only through these.
    let outs: [Out; N] = std::array::from_fn(|i| match &mut parts[i].1 {
        Dest::Rows(o) => Out {
            ptr: o.as_mut_ptr(),
            m,
            n: ns[i],
            ld: ns[i],
            packed: None,
        },
        Dest::Packed(o) => Out {
            ptr: o.as_mut_ptr() as *mut f32,
            m,
            n: ns[i],
            ld: 0,
            packed: Some((amx.1, ns[i].next_multiple_of(KS) / 2)),
        },
    });
    let ws: [&[bf16]; N] = std::array::from_fn(|i| parts[i].0);
    let es: [Epilogue; N] = std::array::from_fn(|i| parts[i].2);
    let (outs, ws, es) = (&outs, &ws, &es);
    (0..pchunks * per_chunk).into_par_iter().for_each(|t| {
        let (pc, mut run) = (t / per_chunk, t % per_chunk);
        let mut part = 0;
        while run >= runs[part] {
            run -= runs[part];
            part += 1;
        }
        let t = Task {
            blocks: run * per..((run + 1) * per).min(blocks[part]),
            pairs: pc * per_pchunk..((pc + 1) * per_pchunk).min(pairs),
        };
        scratch.with(|slot| {
            let tiles = Tiles::config(amx);
            task(
                &tiles,
                ws[part],
                ns[part],
                k,
                kpad,
                xp,
                &t,
                (&outs[part], &es[part]),
                slot,
            );
        });
    });
}

/// Development aid, not a claim (figures come from scripts/bench.sh): the ceiling of this
/// file's tile step on one core with every operand in L1 (rotating over 28 KiB, so no load
/// repeats its address), and of its products alone.
/// `cargo test --release --features rate --lib amx_step_ceiling -- --nocapture`.
#[cfg(all(test, feature = "rate"))]
mod rate {
    use super::*;

    #[test]
    fn amx_step_ceiling() {
        let Some(amx) = Amx::new() else {
            eprintln!("no AMX here: nothing measured");
            return;
        };
        let a = vec![bf16::from_f32(0.5); 8 * 1024];
        let b = vec![0x3f00_3f00u32; 8 * 512];
        let tiles = Tiles::config(amx);
        let n = 200_000;
        for _ in 0..3 {
            tiles.zero();
            let t = std::time::Instant::now();
            for i in 0..n {
                let o = i % 7;
                let (a0, b0) = (&a[o * 1024..], &b[o * 512..]);
                tiles.step_on(a0, &a0[512..], 32, b0, &b0[256..], false);
            }
            let s = t.elapsed().as_secs_f64() / n as f64;
            // Four products of 16×16×32 multiply-adds per step.
            let flop = 4.0 * 16.0 * 16.0 * 32.0 * 2.0;
            eprintln!(
                "AMX 2×2 tile step, operands in L1: {:.1} ns per step, {:.0} GFLOP/s per core",
                s * 1e9,
                flop / s / 1e9
            );
        }
    }
}
