//! Linear layers: products with a weight stored [n, k] as torch's `nn.Linear` keeps it, on
//! the variant and numeric mode of the call, with their epilogues (bias, GELU, residual).

use super::{add_in_place, blas, gelu_tanh, int8, math, scratch, Dot, Exec, Isa, Rows, Scratch};
#[cfg(target_arch = "x86_64")]
use super::{amx, amx_for, avx512_for, gemm, native_bf16_for};
use crate::weights::{Tensor, View};
use half::bf16;
use rayon::prelude::*;

/// Rows at or below this count use the matrix-vector path; above it a GEMM.
const MATVEC_MAX_ROWS: usize = 4;
/// Output features per matrix-vector task.
const MATVEC_CHUNK: usize = 16;
/// Cap on one task's widened weight block (floats): 8 MiB.
const WIDE_BLOCK_FLOATS: usize = 2 << 20;

/// What a product does to its f32 results before they are stored: + bias (per output
/// feature), then GELU (tanh form), then added to what `out` already holds (a residual). The
/// same operations in the same order as separate passes; the AMX GEMM does them as it writes.
#[derive(Clone, Copy, Default)]
pub(crate) struct Epilogue<'a> {
    pub bias: Option<&'a [f32]>,
    pub gelu: bool,
    pub accumulate: bool,
}

impl Epilogue<'_> {
    fn is_plain(&self) -> bool {
        self.bias.is_none() && !self.gelu && !self.accumulate
    }
}

/// out[m, n] = x[m, k] · wᵀ (+ bias), w stored [n, k] as in torch's `nn.Linear`.
pub(crate) fn linear(
    ex: Exec,
    x: &[f32],
    m: usize,
    w: &Tensor,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let e = Epilogue {
        bias,
        ..Epilogue::default()
    };
    linear_with(ex, x, m, w, e, out, &mut [])
}

/// out[m, n] = epilogue(x[m, k] · wᵀ), w stored [n, k]. Where the kernel cannot fuse an
/// accumulating epilogue, the product goes to `spare` ([m, n]) first; otherwise `spare` is
/// not touched and may be empty.
pub(crate) fn linear_with(
    ex: Exec,
    x: &[f32],
    m: usize,
    w: &Tensor,
    e: Epilogue,
    out: &mut [f32],
    spare: &mut [f32],
) {
    let n = w.shape[0];
    let k = w.numel() / n.max(1);
    assert_eq!(x.len(), m * k, "linear {}: input size", w.name);
    assert_eq!(out.len(), m * n, "linear {}: output size", w.name);
    assert!(
        e.bias.is_none_or(|b| b.len() == n),
        "linear {}: bias size",
        w.name
    );
    #[cfg(target_arch = "x86_64")]
    if let (View::BF16(wb), true, Some(a)) =
        (w.view(), ex.bf16 && m > MATVEC_MAX_ROWS, amx_for(ex.isa))
    {
        return amx::gemm_parts(a, ex.scratch, x, m, k, [(wb, out, e)]);
    }
    if !e.accumulate {
        product(ex, x, m, k, w, n, out);
        return finish(ex.isa, e, n, out, None);
    }
    assert!(
        spare.len() >= m * n,
        "linear {}: no room for the product",
        w.name
    );
    let res = &mut spare[..m * n];
    product(ex, x, m, k, w, n, res);
    finish(ex.isa, e, n, res, Some(out));
}

/// The vision MLP with its residual: out += gelu(x·w1ᵀ + b1)·w2ᵀ + b2, w1 [i, k], w2 [n, i].
/// `mid` ([m, i]) holds the intermediate activations; on AMX in the bf16 mode they go there
/// already rounded and packed for the second product (the same values that product would
/// pack), so they are neither transposed into rows nor packed again. Once the first product
/// has read x, it may serve as the second's spare room (see [`linear_with`]).
pub(crate) fn mlp_gelu_residual(
    ex: Exec,
    x: &mut [f32],
    m: usize,
    (w1, b1): (&Tensor, &[f32]),
    (w2, b2): (&Tensor, &[f32]),
    out: &mut [f32],
    mid: &mut [f32],
) {
    let act = Epilogue {
        bias: Some(b1),
        gelu: true,
        accumulate: false,
    };
    let residual = Epilogue {
        bias: Some(b2),
        gelu: false,
        accumulate: true,
    };
    let (inter, k) = (w1.shape[0], w1.numel() / w1.shape[0].max(1));
    #[cfg(target_arch = "x86_64")]
    if let (View::BF16(a), View::BF16(b), true, Some(t)) = (
        w1.view(),
        w2.view(),
        ex.bf16 && m > MATVEC_MAX_ROWS,
        amx_for(ex.isa),
    ) {
        // The packed rows are padded to whole tiles: tiny products may not fit in `mid`. Other
        // sizes are checked by the products themselves.
        let packed: &mut [u32] = bytemuck::cast_slice_mut(&mut *mid);
        if packed.len() >= amx::packed_len(m, inter) {
            amx::gemm_to_packed(t, ex.scratch, x, m, k, a, act, packed);
            return amx::gemm_packed(t, ex.scratch, packed, m, inter, [(b, out, residual)]);
        }
    }
    linear_with(ex, x, m, w1, act, mid, &mut []);
    linear_with(ex, mid, m, w2, residual, out, x);
}

fn product(ex: Exec, x: &[f32], m: usize, k: usize, w: &Tensor, n: usize, out: &mut [f32]) {
    match w.view() {
        View::Quant(t, wq) if ex.int8 => {
            let kernel = int8::Kernel::for_isa(ex.isa);
            int8::linear(ex.scratch, x, m, k, t, wq, n, out, kernel)
        }
        View::BF16(wb) if ex.bf16 => linear_bf16(ex, x, m, k, wb, n, out),
        view => linear_f32(ex, x, m, k, view, n, out),
    }
}

/// The epilogue as passes over a finished product `res` [·, n]: bias, GELU, then res added
/// into `acc` where the epilogue accumulates.
fn finish(isa: Isa, e: Epilogue, n: usize, res: &mut [f32], acc: Option<&mut [f32]>) {
    if let Some(b) = e.bias {
        res.par_chunks_mut(n).for_each(|row| {
            for (o, bb) in row.iter_mut().zip(b) {
                *o += bb;
            }
        });
    }
    if e.gelu {
        gelu_tanh(isa, res);
    }
    if let Some(acc) = acc {
        add_in_place(acc, res);
    }
}

/// Several products of the same input, e.g. q/k/v or gate/up, each through its epilogue: on
/// AMX (many rows, bf16 mode) with x packed once and all weight blocks in one parallel pass; for
/// one row and plain epilogues in a single parallel pass over all their output rows, so the
/// threads stream the weights back to back instead of meeting at a barrier per matrix;
/// otherwise one [`linear_with`] each. No epilogue here accumulates.
pub(crate) fn linear_fused<const N: usize>(
    ex: Exec,
    x: &[f32],
    m: usize,
    parts: [(&Tensor, Epilogue, &mut [f32]); N],
) {
    let k = x.len() / m.max(1);
    assert!(
        parts.iter().all(|(_, e, _)| !e.accumulate),
        "linear_fused accumulates"
    );
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(amx)) = (ex.bf16 && m > MATVEC_MAX_ROWS, amx_for(ex.isa)) {
        if parts.iter().all(|(w, e, o)| {
            matches!(w.view(), View::BF16(_))
                && o.len() * k == m * w.numel()
                && e.bias.is_none_or(|b| b.len() == w.shape[0])
        }) {
            let parts = parts.map(|(w, e, o)| match w.view() {
                View::BF16(wb) => (wb, o, e),
                _ => unreachable!("checked above"),
            });
            return amx::gemm_parts(amx, ex.scratch, x, m, k, parts);
        }
    }
    let simd = rows_f32(ex.isa).simd();
    if ex.int8
        && parts
            .iter()
            .any(|(w, _, _)| matches!(w.view(), View::Quant(..)))
    {
        return linear_fused_int8(ex, x, m, parts);
    }
    let fusable = m == 1
        && parts.iter().all(|(w, e, o)| {
            (matches!(w.view(), View::BF16(_) | View::F16(_)) || simd)
                && e.is_plain()
                && w.numel() == o.len() * k
                && w.shape[0] == o.len()
        });
    if !fusable {
        for (w, e, o) in parts {
            linear_with(ex, x, m, w, e, o, &mut []);
        }
        return;
    }
    let parts = parts.map(|(w, _, o)| (w, o));
    let all_bf16 = parts.iter().all(|(w, _)| matches!(w.view(), View::BF16(_)));
    let run = |rows: Rows, x: &[f32]| {
        parts.into_par_iter().for_each(|(w, o)| {
            let view = w.view();
            o.par_chunks_mut(MATVEC_CHUNK)
                .enumerate()
                .for_each(|(ci, oc)| {
                    for (g, og) in oc.chunks_mut(4).enumerate() {
                        let j = ci * MATVEC_CHUNK + g * 4;
                        rows.group(x, 1, k, view.slice(j * k, og.len() * k), og);
                    }
                });
        })
    };
    if ex.bf16 && all_bf16 {
        #[cfg(target_arch = "x86_64")]
        if let Some(t) = native_bf16_for(ex.isa) {
            return with_bf16_copy(ex.scratch, x, |xb| run(Rows::Native(t, xb), x));
        }
        return with_rounded_copy(ex.scratch, x, |xr| run(rows_f32(ex.isa), xr));
    }
    run(rows_f32(ex.isa), x)
}

/// [`linear_fused`] in the int8 mode: one row against block-quantized parts with plain
/// epilogues takes the int8 kernels' single pass; anything else is one [`linear_with`] each.
fn linear_fused_int8<const N: usize>(
    ex: Exec,
    x: &[f32],
    m: usize,
    parts: [(&Tensor, Epilogue, &mut [f32]); N],
) {
    let k = x.len() / m.max(1);
    let fusable = m == 1
        && parts.iter().all(|(w, e, o)| {
            matches!(w.view(), View::Quant(..))
                && e.is_plain()
                && w.numel() == o.len() * k
                && w.shape[0] == o.len()
        });
    if !fusable {
        for (w, e, o) in parts {
            linear_with(ex, x, m, w, e, o, &mut []);
        }
        return;
    }
    let kernel = int8::Kernel::for_isa(ex.isa);
    let mut views = parts.map(|(w, _, o)| match w.view() {
        View::Quant(t, wq) => (t, wq, o),
        _ => unreachable!("checked above"),
    });
    if !int8::linear_fused(ex.scratch, x, k, &mut views, kernel) {
        for (t, wq, o) in views {
            let n = o.len();
            int8::linear(ex.scratch, x, 1, k, t, wq, n, o, kernel);
        }
    }
}

/// The f32-mode dot variant for one to four rows.
fn rows_f32<'a>(isa: Isa) -> Rows<'a> {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = avx512_for(isa) {
        return Rows::Avx512(t);
    }
    Rows::Dot(Dot::for_isa(isa))
}

/// The bf16 mode: native products where the variant has them, else the f32 path on activations
/// rounded to bf16 (the same products, exact in f32).
fn linear_bf16(ex: Exec, x: &[f32], m: usize, k: usize, w: &[bf16], n: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = native_bf16_for(ex.isa) {
        if m > MATVEC_MAX_ROWS {
            gemm::gemm_bf16(gemm::Micro::Bf16(t), ex.scratch, x, m, k, w, n, out);
        } else {
            with_bf16_copy(ex.scratch, x, |xb| {
                matvec(Rows::Native(t, xb), x, m, k, View::BF16(w), n, out)
            });
        }
        return;
    }
    with_rounded_copy(ex.scratch, x, |xr| {
        linear_f32(ex, xr, m, k, View::BF16(w), n, out)
    });
}

/// Runs `f` on x rounded to bf16, in the scratch's staging buffer.
fn with_bf16_copy<R>(scratch: &Scratch, x: &[f32], f: impl FnOnce(&[bf16]) -> R) -> R {
    scratch.with_staging(|buf| {
        let u = scratch::take_u32(buf, x.len().div_ceil(2));
        let xb = &mut bytemuck::cast_slice_mut::<u32, u16>(u)[..x.len()];
        for (d, s) in xb.iter_mut().zip(x) {
            *d = math::bf16_bits(*s) as u16;
        }
        f(bytemuck::cast_slice(xb))
    })
}

/// Runs `f` on x rounded to bf16 and widened back to f32 (the bf16 mode on f32 kernels).
fn with_rounded_copy<R>(scratch: &Scratch, x: &[f32], f: impl FnOnce(&[f32]) -> R) -> R {
    scratch.with_staging(|buf| {
        let xr = scratch::take_u32(buf, x.len());
        for (d, s) in xr.iter_mut().zip(x) {
            *d = math::bf16_bits(*s) << 16;
        }
        f(bytemuck::cast_slice(xr))
    })
}

/// The f32 mode: f32 activations and accumulation over weights widened exactly.
fn linear_f32(ex: Exec, x: &[f32], m: usize, k: usize, view: View, n: usize, out: &mut [f32]) {
    let rows = rows_f32(ex.isa);
    // f32 weights need no widening: BLAS is the better one-row product only without SIMD rows.
    if m <= MATVEC_MAX_ROWS && (rows.simd() || !matches!(view, View::F32(_))) {
        return matvec(rows, x, m, k, view, n, out);
    }
    #[cfg(target_arch = "x86_64")]
    if let (View::BF16(wb), Some(t)) = (view, avx512_for(ex.isa)) {
        return gemm::gemm_bf16(gemm::Micro::F32(t), ex.scratch, x, m, k, wb, n, out);
    }
    blocked_sgemm(ex, x, m, k, view, n, out);
}

/// One to four activation rows: each task reads its weight rows once, for all rows.
fn matvec(rows: Rows, x: &[f32], m: usize, k: usize, view: View, n: usize, out: &mut [f32]) {
    let fill = |t: &mut [f32]| {
        t.par_chunks_mut(MATVEC_CHUNK * m)
            .enumerate()
            .for_each(|(ci, tc)| {
                for (g, tg) in tc.chunks_mut(4 * m).enumerate() {
                    let j = ci * MATVEC_CHUNK + g * 4;
                    rows.group(x, m, k, view.slice(j * k, tg.len() / m * k), tg);
                }
            })
    };
    if m == 1 {
        return fill(out);
    }
    let mut t = vec![0.0f32; n * m];
    fill(&mut t);
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = t[j * m + i];
        }
    }
}

/// Column blocks of the output, one task each: a block's weight rows are widened into the
/// worker's scratch (no f32 copy of the whole matrix) and multiplied there by BLAS.
fn blocked_sgemm(ex: Exec, x: &[f32], m: usize, k: usize, view: View, n: usize, out: &mut [f32]) {
    let threads = rayon::current_num_threads().max(1);
    let by_threads = n.div_ceil(threads * 2).next_multiple_of(16);
    let by_memory = (WIDE_BLOCK_FLOATS / k.max(1)).max(16);
    let block = by_threads.min(by_memory).clamp(1, n.max(1));
    let blocks = blas::ColumnBlocks::new(out, m, n, n);
    (0..n.div_ceil(block)).into_par_iter().for_each(|bi| {
        let (j0, nb) = (bi * block, block.min(n - bi * block));
        match view {
            // SAFETY: block bi writes only its own columns j0..j0+nb.
            View::F32(wf) => unsafe {
                blocks.sgemm(false, true, j0, nb, k, x, k, &wf[j0 * k..], k)
            },
            _ => ex.scratch.with(|slot| {
                let wide = scratch::take(&mut slot.a, nb * k);
                view.to_f32(j0 * k, wide);
                // SAFETY: block bi writes only its own columns j0..j0+nb.
                unsafe { blocks.sgemm(false, true, j0, nb, k, x, k, wide, k) }
            }),
        }
    });
}
