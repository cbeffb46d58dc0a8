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

/// A bf16 weight [n, k] holding `wave(n·k, f, p)` rounded.
fn wave_weight(n: usize, k: usize, f: f32, p: f32) -> Tensor {
    let w = wave(n * k, f, p).into_iter().map(bf16::from_f32).collect();
    Tensor::owned_bf16("w", vec![n, k], w)
}

/// The variants that run on this CPU; says so in the test output.
fn variants() -> Vec<Isa> {
    let v = Isa::supported();
    let names: Vec<&str> = v.iter().map(|i| i.name()).collect();
    eprintln!("kernel variants run on this CPU: {}", names.join(", "));
    assert!(v.contains(&Isa::Portable));
    #[cfg(target_arch = "x86_64")]
    for isa in [Isa::Avx512, Isa::Avx512Bf16] {
        if v.contains(&isa) {
            assert!(avx512_for(isa).is_some(), "{isa:?} not dispatched");
        }
    }
    #[cfg(target_arch = "x86_64")]
    if v.contains(&Isa::Avx512Bf16) {
        assert!(native_bf16_for(Isa::Avx512Bf16).is_some());
    }
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
                    bf16: false,
                    int8: false,
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

/// Shapes around every blocking boundary of the GEMM (MR = 12 rows, NR = 32 columns, k in
/// pairs) and of the matrix-vector path (≤ 4 rows, groups of 4 weight rows, 16/32 lanes).
/// Shapes around every blocking boundary: 1–4 rows (matrix-vector), partial tiles and weight
/// blocks, k past several AMX k chunks (2048) and not a multiple of 32, more activation pairs
/// than one AMX task takes.
/// m = 21: the second 16 rows of its only pair hold 5 rows (the products must not skip them);
/// m = 5, 11–13, 40 and 300: pairs whose second 16 rows are all past m (skipped).
const SHAPES: [(usize, usize, usize); 11] = [
    (1, 33, 31),
    (21, 40, 64),
    (2, 5, 64),
    (4, 9, 17),
    (5, 32, 2),
    (11, 31, 33),
    (12, 64, 96),
    (13, 33, 1),
    (25, 70, 45),
    (40, 100, 577),
    (300, 70, 4400),
];

/// x·wᵀ in f64 over the given activations.
fn exact(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k)
                .map(|t| x[i * k + t] as f64 * w[j * k + t] as f64)
                .sum();
        }
    }
    out
}

/// Runs `linear` for one variant and mode.
fn run_linear(isa: Isa, bf16: bool, x: &[f32], m: usize, w: &Tensor) -> Vec<f32> {
    let scratch = Scratch::new(rayon::current_num_threads());
    let mut out = vec![0.0f32; m * w.shape[0]];
    let ex = Exec {
        isa,
        bf16,
        int8: false,
        scratch: &scratch,
    };
    linear(ex, x, m, w, None, &mut out);
    out
}

#[test]
fn every_variant_and_mode_of_bf16_linear_matches_f64() {
    for (m, n, k) in SHAPES {
        let x = wave(m * k, 0.23, 0.7);
        let wv: Vec<bf16> = wave(n * k, 0.071, 0.3)
            .into_iter()
            .map(bf16::from_f32)
            .collect();
        let wf: Vec<f32> = wv.iter().map(|v| v.to_f32()).collect();
        let w = Tensor::owned_bf16("w", vec![n, k], wv);
        let xr: Vec<f32> = x.iter().map(|&v| bf16::from_f32(v).to_f32()).collect();
        let (want_f32, want_bf16) = (exact(&x, &wf, m, n, k), exact(&xr, &wf, m, n, k));
        // f32 sums of k products of magnitude ≤ 1: the error stays below k·2⁻²³ (a generous
        // bound: the measured worst case is far smaller, and any wrong index is ≥ 1e-2 off).
        let tol = k as f64 * 1.2e-7 + 1e-6;
        for isa in variants() {
            for (bf16, want) in [(false, &want_f32), (true, &want_bf16)] {
                let got = run_linear(isa, bf16, &x, m, &w);
                for (idx, (g, e)) in got.iter().zip(want.iter()).enumerate() {
                    assert!(
                        (*g as f64 - e).abs() < tol,
                        "{isa:?} bf16={bf16} m={m} n={n} k={k} at {idx}: {g} vs {e}"
                    );
                }
            }
        }
        // The bf16 mode differs from the f32 one (the test would see a mode that is ignored).
        let d: f64 = want_f32
            .iter()
            .zip(&want_bf16)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            d > 10.0 * tol,
            "m={m} n={n} k={k}: modes too close to tell apart ({d})"
        );
    }
}

/// Development aid, not a claim (figures come from scripts/bench.sh): prints GFLOP/s of
/// products per variant and mode on SMOLVLM_RATE_THREADS threads (default 1). Built only with the `rate` feature:
/// `SMOLVLM_RATE_ISA=amx cargo test --release --features rate --lib gemm_rate -- --nocapture`.
#[cfg(feature = "rate")]
#[test]
fn gemm_rate() {
    let threads = std::env::var("SMOLVLM_RATE_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        for (m, n, k) in [
            (100usize, 1536usize, 576usize),
            (1024, 768, 768),
            (1, 1536, 576),
            (1024, 3072, 768),
            (1024, 768, 3072),
            (1128, 2048, 2048),
            (1128, 8192, 2048),
            (1128, 2048, 8192),
        ] {
            if std::env::var("SMOLVLM_RATE_M").is_ok_and(|v| v != m.to_string()) {
                continue;
            }
            let x = wave(m * k, 0.23, 0.7);
            let w = wave_weight(n, k, 0.071, 0.3);
            let scratch = Scratch::new(threads);
            let mut out = vec![0.0f32; m * n];
            let only = std::env::var("SMOLVLM_RATE_ISA").ok();
            for isa in Isa::supported() {
                if only.as_deref().is_some_and(|o| o != isa.name()) {
                    continue;
                }
                for bf16 in [false, true] {
                    if only.is_some() && !bf16 {
                        continue;
                    }
                    let ex = Exec {
                        isa,
                        bf16,
                        int8: false,
                        scratch: &scratch,
                    };
                    linear(ex, &x, m, &w, None, &mut out);
                    let flop: f64 = std::env::var("SMOLVLM_RATE_FLOP")
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(2e9);
                    let reps = (flop / (2.0 * (m * n * k) as f64)).ceil() as usize;
                    let t = std::time::Instant::now();
                    for _ in 0..reps {
                        linear(ex, &x, m, &w, None, &mut out);
                    }
                    let s = t.elapsed().as_secs_f64() / reps as f64;
                    eprintln!(
                        "{m}x{n}x{k} {:>10} bf16={bf16}: {:.1} GFLOP/s",
                        isa.name(),
                        2.0 * (m * n * k) as f64 / s / 1e9
                    );
                }
            }
        }
    });
}

#[test]
fn epilogues_equal_the_separate_passes_in_every_variant_and_mode() {
    let scratch = Scratch::new(rayon::current_num_threads());
    // n = 70: a partial weight block and a partial tile of output columns.
    let (n, k) = (70usize, 96usize);
    let w = wave_weight(n, k, 0.05, 0.3);
    let bias = wave(n, 0.7, 0.1);
    for isa in variants() {
        for bf16 in [false, true] {
            for m in [1usize, 40] {
                let ex = Exec {
                    isa,
                    bf16,
                    int8: false,
                    scratch: &scratch,
                };
                let x = wave(m * k, 0.23, 0.7);
                let resid = wave(m * n, 0.11, 0.5);
                let mut plain = vec![0.0f32; m * n];
                linear(ex, &x, m, &w, None, &mut plain);
                for (i, v) in plain.iter_mut().enumerate() {
                    *v += bias[i % n];
                }
                let mut want_act = plain.clone();
                gelu_tanh(isa, &mut want_act);
                let mut want_res = resid.clone();
                add_in_place(&mut want_res, &plain);

                let mut act = vec![0.0f32; m * n];
                let e = Epilogue {
                    bias: Some(&bias),
                    gelu: true,
                    ..Epilogue::default()
                };
                linear_with(ex, &x, m, &w, e, &mut act, &mut []);
                assert_eq!(act, want_act, "{isa:?} bf16={bf16} m={m}: bias + GELU");
                let (mut res, mut spare) = (resid.clone(), vec![0.0f32; m * n]);
                let e = Epilogue {
                    bias: Some(&bias),
                    accumulate: true,
                    ..Epilogue::default()
                };
                linear_with(ex, &x, m, &w, e, &mut res, &mut spare);
                assert_eq!(res, want_res, "{isa:?} bf16={bf16} m={m}: bias + residual");
                // The epilogue did something: a test of nothing would pass above too.
                assert_ne!(act, plain);
                assert_ne!(res, plain);
            }
        }
    }
}

#[test]
fn fused_products_equal_separate_ones_in_every_variant_and_mode() {
    let scratch = Scratch::new(rayon::current_num_threads());
    let k = 96;
    let ws: Vec<Tensor> = [70usize, 33, 33]
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let w = wave(n * k, 0.05 + 0.01 * i as f32, 0.3)
                .into_iter()
                .map(bf16::from_f32)
                .collect();
            Tensor::owned_bf16("w", vec![n, k], w)
        })
        .collect();
    for isa in variants() {
        for bf16 in [false, true] {
            for m in [1usize, 3, 40] {
                let x = wave(m * k, 0.23, 0.7);
                let ex = Exec {
                    isa,
                    bf16,
                    int8: false,
                    scratch: &scratch,
                };
                let mut sep: Vec<Vec<f32>> = ws.iter().map(|w| vec![0.0; m * w.shape[0]]).collect();
                for (w, o) in ws.iter().zip(sep.iter_mut()) {
                    linear(ex, &x, m, w, None, o);
                }
                let mut fused: Vec<Vec<f32>> =
                    ws.iter().map(|w| vec![0.0; m * w.shape[0]]).collect();
                let [a, b, c] = &mut fused[..] else {
                    unreachable!()
                };
                linear_fused(
                    ex,
                    &x,
                    m,
                    [
                        (&ws[0], Epilogue::default(), &mut a[..]),
                        (&ws[1], Epilogue::default(), &mut b[..]),
                        (&ws[2], Epilogue::default(), &mut c[..]),
                    ],
                );
                assert_eq!(sep, fused, "{isa:?} bf16={bf16} m={m}");
            }
        }
    }
}

#[test]
fn the_mlp_equals_its_two_products_in_every_variant_and_mode() {
    let scratch = Scratch::new(rayon::current_num_threads());
    // inter = 80 and m = 45: a partial weight block, a partial tile of the intermediate
    // features (padding pairs must be zeros) and a partial 32-row pair of blocks; m = 77
    // leaves a last 16-row block wholly past m.
    let (k, inter, n) = (72usize, 80usize, 40usize);
    let (w1, w2) = (
        wave_weight(inter, k, 0.05, 0.3),
        wave_weight(n, inter, 0.07, 0.9),
    );
    let (b1, b2) = (wave(inter, 0.7, 0.1), wave(n, 0.3, 0.2));
    for isa in variants() {
        for bf16 in [false, true] {
            for m in [3usize, 45, 77] {
                let ex = Exec {
                    isa,
                    bf16,
                    int8: false,
                    scratch: &scratch,
                };
                let x = wave(m * k, 0.23, 0.7);
                let resid = wave(m * n, 0.11, 0.5);
                let mut mid = vec![f32::NAN; m * inter];
                let act = Epilogue {
                    bias: Some(&b1),
                    gelu: true,
                    ..Epilogue::default()
                };
                linear_with(ex, &x, m, &w1, act, &mut mid, &mut []);
                let mut want = resid.clone();
                let e = Epilogue {
                    bias: Some(&b2),
                    accumulate: true,
                    ..Epilogue::default()
                };
                linear_with(ex, &mid, m, &w2, e, &mut want, &mut vec![0.0; m * n]);
                // The intermediate buffer starts as NaNs: any value the packed path failed to
                // write would show.
                let (mut got, mut xs, mut mid) =
                    (resid.clone(), x.clone(), vec![f32::NAN; m * inter]);
                mlp_gelu_residual(ex, &mut xs, m, (&w1, &b1), (&w2, &b2), &mut got, &mut mid);
                assert_eq!(got, want, "{isa:?} bf16={bf16} m={m}");
                assert_ne!(got, resid);
            }
        }
    }
}

mod attention;
mod int8;
mod quant;
