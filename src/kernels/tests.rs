//! Every SIMD variant against the portable one, and both against f64 sums.

use super::*;
use crate::weights::Tensor;
use half::{bf16, f16};

fn dot(isa: Isa, x: &[f32], w: View<'_>) -> f32 {
    Dot::for_isa(isa).dot(x, w)
}

fn wave(n: usize, f: f32, p: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * f + p).sin()).collect()
}

/// The variants that run on this CPU; says so in the test output.
fn variants() -> Vec<Isa> {
    let v = Isa::supported();
    let names: Vec<&str> = v.iter().map(|i| i.name()).collect();
    eprintln!("kernel variants run on this CPU: {}", names.join(", "));
    assert!(v.contains(&Isa::Portable));
    #[cfg(target_arch = "x86_64")]
    if v.contains(&Isa::Avx2) {
        assert!(
            matches!(Dot::for_isa(Isa::Avx2), Dot::Avx2(_)),
            "AVX2 variant not dispatched"
        );
    }
    v
}

#[test]
fn every_variant_dot_matches_the_portable_one() {
    for isa in variants() {
        // Lengths around every unrolling boundary (8 and 16 lanes) and the real widths.
        for k in [1usize, 7, 8, 9, 15, 16, 17, 31, 33, 77, 576, 2048] {
            let x = wave(k, 0.37, 0.1);
            let wb: Vec<bf16> = wave(k, 0.11, 0.5).into_iter().map(bf16::from_f32).collect();
            let wh: Vec<f16> = wave(k, 0.13, 0.9).into_iter().map(f16::from_f32).collect();
            let exact_b: f64 = x.iter().zip(&wb).map(|(a, b)| *a as f64 * b.to_f64()).sum();
            let exact_h: f64 = x.iter().zip(&wh).map(|(a, b)| *a as f64 * b.to_f64()).sum();
            // f32 accumulation of k products of magnitude ≤ 1: error ≤ k·2⁻²⁴ per term bound.
            let tol = 1e-6 * k as f64 + 1e-6;
            let wf: Vec<f32> = wave(k, 0.17, 0.2);
            let exact_f: f64 = x.iter().zip(&wf).map(|(a, b)| *a as f64 * *b as f64).sum();
            let got_f = dot(isa, &x, View::F32(&wf)) as f64;
            assert!((got_f - exact_f).abs() < tol, "{isa:?} f32 k={k}");
            let got_b = dot(isa, &x, View::BF16(&wb)) as f64;
            let got_h = dot(isa, &x, View::F16(&wh)) as f64;
            let port_b = dot(Isa::Portable, &x, View::BF16(&wb)) as f64;
            let port_h = dot(Isa::Portable, &x, View::F16(&wh)) as f64;
            assert!((got_b - exact_b).abs() < tol, "{isa:?} bf16 k={k}");
            assert!((got_h - exact_h).abs() < tol, "{isa:?} f16 k={k}");
            assert!(
                (got_b - port_b).abs() < tol,
                "{isa:?} vs portable, bf16 k={k}"
            );
            assert!(
                (got_h - port_h).abs() < tol,
                "{isa:?} vs portable, f16 k={k}"
            );
        }
    }
}

#[test]
fn every_variant_linear_matches_f64() {
    let scratch = Scratch::new(rayon::current_num_threads());
    let (n, k) = (70usize, 45usize);
    let wf = wave(n * k, 0.071, 0.3);
    let bias = wave(n, 0.5, 0.2);
    for isa in variants() {
        for tensor in [
            Tensor::owned_f32("w", vec![n, k], wf.clone()),
            Tensor::owned_bf16(
                "w",
                vec![n, k],
                wf.iter().map(|&v| bf16::from_f32(v)).collect(),
            ),
            Tensor::owned_f16(
                "w",
                vec![n, k],
                wf.iter().map(|&v| f16::from_f32(v)).collect(),
            ),
        ] {
            let wv = tensor.to_f32_vec();
            // m = 1 and 3 take the matrix-vector paths, 9 the blocked sgemm path.
            for m in [1usize, 3, 9] {
                let x = wave(m * k, 0.23, 0.7);
                let mut out = vec![0.0f32; m * n];
                let ex = Exec {
                    isa,
                    scratch: &scratch,
                };
                linear(ex, &x, m, &tensor, Some(&bias), &mut out);
                for i in 0..m {
                    for j in 0..n {
                        let want: f64 = (0..k)
                            .map(|t| x[i * k + t] as f64 * wv[j * k + t] as f64)
                            .sum::<f64>()
                            + bias[j] as f64;
                        let got = out[i * n + j] as f64;
                        assert!(
                            (got - want).abs() < 1e-4,
                            "{isa:?} {:?} m={m} [{i},{j}]: {got} vs {want}",
                            tensor.dtype
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn attention_matches_a_direct_sum() {
    let scratch = Scratch::new(rayon::current_num_threads());
    let (t_q, t_kv, nh, nkv, d) = (3usize, 5usize, 4usize, 2usize, 8usize);
    let q = wave(t_q * nh * d, 0.31, 0.0);
    let k = wave(t_kv * nkv * d, 0.17, 1.0);
    let v = wave(t_kv * nkv * d, 0.29, 2.0);
    let shape = AttnShape {
        t_q,
        t_kv,
        n_heads: nh,
        n_kv_heads: nkv,
        head_dim: d,
        causal_offset: Some(t_kv - t_q),
    };
    let mut out = vec![0.0f32; t_q * nh * d];
    attention(
        &scratch,
        &q,
        nh * d,
        &k,
        nkv * d,
        &v,
        nkv * d,
        shape,
        &mut out,
        nh * d,
    );
    for i in 0..t_q {
        for h in 0..nh {
            let g = h / (nh / nkv);
            let visible = t_kv - t_q + i + 1;
            let s: Vec<f64> = (0..visible)
                .map(|j| {
                    (0..d)
                        .map(|c| {
                            q[i * nh * d + h * d + c] as f64 * k[j * nkv * d + g * d + c] as f64
                        })
                        .sum::<f64>()
                        / (d as f64).sqrt()
                })
                .collect();
            let mx = s.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
            let z: f64 = e.iter().sum();
            for c in 0..d {
                let want: f64 = (0..visible)
                    .map(|j| e[j] / z * v[j * nkv * d + g * d + c] as f64)
                    .sum();
                let got = out[i * nh * d + h * d + c] as f64;
                assert!((got - want).abs() < 1e-5, "[{i},{h},{c}] {got} vs {want}");
            }
        }
    }
}
