//! Products with block-format weights: every variant, one to many rows, both numeric modes,
//! against f64 sums over the dequantized weights (the f32 mode's definition for them).

use super::{variants, wave};
use crate::kernels::{linear, linear_fused, Epilogue, Exec, Scratch};
use crate::weights::quant::QuantType;
use crate::weights::Tensor;

/// (m, n, k): 1–4 rows take the matrix-vector path (groups of 4 weight rows, partial ones
/// included), 9 and 40 the blocked GEMM; k from one block to many.
const SHAPES: [(usize, usize, usize); 7] = [
    (1, 5, 32),
    (2, 9, 64),
    (3, 17, 96),
    (4, 33, 576),
    (1, 70, 2048),
    (9, 40, 160),
    (40, 7, 1536),
];

/// The same paths with rows of the K-quants' 256-element blocks.
const K_SHAPES: [(usize, usize, usize); 7] = [
    (1, 5, 256),
    (2, 9, 512),
    (3, 17, 256),
    (4, 33, 768),
    (1, 70, 2048),
    (9, 40, 256),
    (40, 7, 1536),
];

fn shapes(q: QuantType) -> [(usize, usize, usize); 7] {
    if q.block_elems() == 32 {
        SHAPES
    } else {
        K_SHAPES
    }
}

fn quantized(n: usize, k: usize, q: QuantType, phase: f32) -> (Tensor, Vec<f32>) {
    let dense = Tensor::owned_f32("w", vec![n, k], wave(n * k, 0.071, phase));
    let t = dense.quantized(q).unwrap();
    let wide = t.to_f32_vec();
    (t, wide)
}

fn check(got: &[f32], x: &[f32], w: &[f32], (m, n, k): (usize, usize, usize), what: &str) {
    // f32 sums of k products of magnitude ≤ 1, against f64.
    let tol = 1e-6 * k as f64 + 1e-6;
    for i in 0..m {
        for j in 0..n {
            let want: f64 = (0..k)
                .map(|t| x[i * k + t] as f64 * w[j * k + t] as f64)
                .sum();
            let g = got[i * n + j] as f64;
            assert!((g - want).abs() < tol, "{what} [{i},{j}]: {g} vs {want}");
        }
    }
}

#[test]
fn every_variant_multiplies_blocks_as_their_dequantized_values() {
    let scratch = Scratch::new(rayon::current_num_threads());
    for isa in variants() {
        for q in QuantType::ALL {
            for (m, n, k) in shapes(q) {
                let (t, wide) = quantized(n, k, q, 0.3);
                let x = wave(m * k, 0.23, 0.7);
                for bf16 in [false, true] {
                    let ex = Exec {
                        isa,
                        bf16,
                        int8: false,
                        scratch: &scratch,
                    };
                    let mut out = vec![f32::NAN; m * n];
                    linear(ex, &x, m, &t, None, &mut out);
                    let what = format!("{isa:?} {q:?} bf16={bf16} m={m} n={n} k={k}");
                    check(&out, &x, &wide, (m, n, k), &what);
                }
            }
        }
    }
}

#[test]
fn fused_one_row_products_read_blocks_too() {
    let scratch = Scratch::new(rayon::current_num_threads());
    for isa in variants() {
        for q in QuantType::ALL {
            let k = if q.block_elems() == 32 { 320 } else { 512 };
            let (a, wa) = quantized(48, k, q, 0.1);
            let (b, wb) = quantized(16, k, q, 0.9);
            let x = wave(k, 0.37, 0.2);
            let (mut oa, mut ob) = (vec![f32::NAN; 48], vec![f32::NAN; 16]);
            let ex = Exec {
                isa,
                bf16: false,
                int8: false,
                scratch: &scratch,
            };
            let e = Epilogue::default();
            linear_fused(ex, &x, 1, [(&a, e, &mut oa[..]), (&b, e, &mut ob[..])]);
            check(&oa, &x, &wa, (1, 48, k), &format!("{isa:?} {q:?} fused a"));
            check(&ob, &x, &wb, (1, 16, k), &format!("{isa:?} {q:?} fused b"));
        }
    }
}
