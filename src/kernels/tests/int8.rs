//! The int8 mode: activation blocks, and every kernel's products against f64 sums of the
//! dequantized weights times the dequantized activation codes (the mode's definition).

use super::{variants, wave};
use crate::kernels::int8::{self, offset, Acts, Kernel, QA};
use crate::kernels::{linear, Exec, Scratch};
use crate::weights::quant::QuantType;
use crate::weights::quant::QK_K as QK;
use crate::weights::{Tensor, View};

/// (m, n, k): one to four rows and more (groups of four, partial ones), n across groups and
/// tasks, k with an odd count of 32-element blocks (the VNNI kernel's lone last block).
/// More than four rows take the GEMM path (weight rows unpacked once per task of 16), rows
/// of k ≥ 4096 (and all K-quant rows) regrouped first.
const SHAPES: [(usize, usize, usize); 9] = [
    (1, 5, 32),
    (2, 9, 96),
    (3, 17, 160),
    (4, 33, 576),
    (9, 40, 544),
    (1, 70, 2048),
    (5, 3, 32),
    (38, 21, 1056),
    (6, 18, 4128),
];
const K_SHAPES: [(usize, usize, usize); 6] = [
    (1, 5, 256),
    (2, 9, 512),
    (3, 17, 768),
    (7, 33, 256),
    (1, 40, 2048),
    (21, 19, 4352),
];

fn shapes(q: QuantType) -> Vec<(usize, usize, usize)> {
    if q.block_elems() == 32 {
        SHAPES.to_vec()
    } else {
        K_SHAPES.to_vec()
    }
}

/// The kernels this CPU runs, portable first; says so in the test output.
fn kernels() -> Vec<Kernel> {
    let mut v = vec![Kernel::Portable];
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = crate::kernels::avx512::Avx512Vnni::new() {
        v.push(Kernel::Vnni(t));
    }
    eprintln!("int8 kernels run on this CPU: {v:?}");
    v
}

#[test]
fn activation_blocks_hold_amax_over_127_and_rounded_codes() {
    // Blocks of 32 for the 32-element formats, of 256 for the K-quants.
    let mut x = wave(8 * QK, 0.37, 0.1);
    x[QK..2 * QK].fill(0.0);
    x[2 * QK] = -3.0;
    for t in [
        QuantType::Q8_0,
        QuantType::Q4_1,
        QuantType::Q6_K,
        QuantType::Q4_K,
    ] {
        let blk = int8::act_block(t);
        assert_eq!(blk, if t.block_elems() == 32 { QA } else { QK }, "{t:?}");
        let mut buf = Vec::new();
        let a = Acts::new(&mut buf, &x, 4, 2 * QK, t, Kernel::Portable);
        for (b, xb) in x.chunks(blk).enumerate() {
            let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            for (i, &v) in xb.iter().enumerate() {
                let want = if d == 0.0 {
                    0
                } else {
                    (v * (1.0 / d)).round_ties_even() as i8
                };
                assert_eq!(a.q[b * blk + i], want, "{t:?} block {b} [{i}]");
            }
            for l in 0..blk / 4 {
                let at = b * blk / 4 + l;
                let s: i32 = a.q[4 * at..4 * at + 4].iter().map(|&v| v as i32).sum();
                assert_eq!(a.dl[at], d, "{t:?} block {b} scale");
                assert_eq!(a.sum4[at], s, "{t:?} block {b} sum");
                assert_eq!(a.base[at], -offset(t) * s, "{t:?} block {b} base");
                assert_eq!(a.minx[at], d * s as f32, "{t:?} block {b} minimum term");
            }
        }
        for (c, &mb) in a.minb.iter().enumerate() {
            let s: i32 = a.q[QA * c..QA * (c + 1)].iter().map(|&v| v as i32).sum();
            assert_eq!(mb, a.dl[QA / 4 * c] * s as f32, "{t:?} 32-element term {c}");
        }
        assert_eq!(a.q[2 * QK], -127, "amax maps to ∓127");
        assert!(a.q[QK..2 * QK].iter().all(|&v| v == 0), "a zero block");
    }
}

#[test]
fn every_kernel_quantizes_activations_to_the_same_bits() {
    // Values at exact halves of a step too (ties go to even on every kernel).
    let mut x = wave(20 * QK, 0.61, 0.4);
    for (i, v) in x[..QA].iter_mut().enumerate() {
        *v = (i as f32 - 15.5) * 0.5;
    }
    x[5 * QK..6 * QK].fill(0.0);
    for t in [
        QuantType::Q8_0,
        QuantType::Q5_1,
        QuantType::Q6_K,
        QuantType::Q5_K,
    ] {
        let mut buf = Vec::new();
        let want = Acts::new(&mut buf, &x, 10, 2 * QK, t, Kernel::Portable);
        let want = (
            want.q.to_vec(),
            want.dl.to_vec(),
            want.sum4.to_vec(),
            want.base.to_vec(),
            want.minx.to_vec(),
            want.minb.to_vec(),
        );
        for kernel in kernels() {
            let mut buf = Vec::new();
            let a = Acts::new(&mut buf, &x, 10, 2 * QK, t, kernel);
            assert_eq!(a.q, &want.0[..], "{kernel:?} {t:?} codes");
            assert_eq!(a.dl, &want.1[..], "{kernel:?} {t:?} scales");
            assert_eq!(a.sum4, &want.2[..], "{kernel:?} {t:?} sums");
            assert_eq!(a.base, &want.3[..], "{kernel:?} {t:?} bases");
            assert_eq!(a.minx, &want.4[..], "{kernel:?} {t:?} minimum terms");
            assert_eq!(a.minb, &want.5[..], "{kernel:?} {t:?} block minimum terms");
        }
    }
}

/// Weights [n, k] in `q` and their dequantized values.
fn quantized(n: usize, k: usize, q: QuantType, phase: f32) -> (Tensor, Vec<f32>) {
    let dense = Tensor::owned_f32("w", vec![n, k], wave(n * k, 0.071, phase));
    let t = dense.quantized(q).unwrap();
    let wide = t.to_f32_vec();
    (t, wide)
}

/// Activations with outliers a hundred times the rest, as real decoders' hidden states have.
fn activations(n: usize) -> Vec<f32> {
    let mut x = wave(n, 0.23, 0.7);
    for v in x.iter_mut().step_by(97) {
        *v *= 100.0;
    }
    x
}

/// The worst |got − want| / (Σ|w·x| + 1e-30) over [m, n] against f64 sums of w times the
/// dequantized activation codes.
fn worst(got: &[f32], acts: &Acts, w: &[f32], (m, n, k): (usize, usize, usize)) -> f64 {
    let mut worst = 0.0f64;
    for i in 0..m {
        for j in 0..n {
            let (mut want, mut mag) = (0.0f64, 0.0f64);
            for t in 0..k {
                let xd = acts.dl[(i * k + t) / 4] as f64 * acts.q[i * k + t] as f64;
                want += xd * w[j * k + t] as f64;
                mag += (xd * w[j * k + t] as f64).abs();
            }
            let g = got[i * n + j] as f64;
            assert!(g.is_finite(), "[{i},{j}] not finite");
            worst = worst.max((g - want).abs() / (mag + 1e-30));
        }
    }
    worst
}

/// f32 sums of k/4 scaled lanes (the integer sums are exact): measured worst 3.8e-7 of
/// Σ|w·x| over both kernels and every format and shape here (4.5e-8 without the outliers);
/// the bound is 2.6x that, far below one activation step (1/254 of a block's amax).
const REL_TOL: f64 = 1e-6;

#[test]
fn every_int8_kernel_sums_dequantized_weights_times_activation_codes() {
    let scratch = Scratch::new(rayon::current_num_threads());
    let mut worst_seen = 0.0f64;
    for kernel in kernels() {
        for q in QuantType::ALL {
            for (m, n, k) in shapes(q) {
                let (t, wide) = quantized(n, k, q, 0.3);
                let View::Quant(tq, bytes) = t.view() else {
                    panic!("{q:?} not quantized")
                };
                assert_eq!(tq, q);
                let x = activations(m * k);
                let mut out = vec![f32::NAN; m * n];
                int8::linear(&scratch, &x, m, k, q, bytes, n, &mut out, kernel);
                let mut buf = Vec::new();
                let acts = Acts::new(&mut buf, &x, m, k, q, Kernel::Portable);
                let e = worst(&out, &acts, &wide, (m, n, k));
                assert!(e < REL_TOL, "{kernel:?} {q:?} m={m} n={n} k={k}: {e:e}");
                worst_seen = worst_seen.max(e);
            }
        }
    }
    eprintln!("worst relative difference: {worst_seen:e}");
}

#[test]
fn int8_mode_reaches_the_int8_kernels_on_every_variant() {
    let scratch = Scratch::new(rayon::current_num_threads());
    for isa in variants() {
        for q in [QuantType::Q8_0, QuantType::Q4_K] {
            let (m, n, k) = (3, 20, 512);
            let (t, wide) = quantized(n, k, q, 0.5);
            let x = wave(m * k, 0.19, 0.3);
            let ex = Exec {
                isa,
                bf16: false,
                int8: true,
                scratch: &scratch,
            };
            let mut out = vec![f32::NAN; m * n];
            linear(ex, &x, m, &t, None, &mut out);
            let mut buf = Vec::new();
            let acts = Acts::new(&mut buf, &x, m, k, q, Kernel::Portable);
            let e = worst(&out, &acts, &wide, (m, n, k));
            assert!(e < REL_TOL, "{isa:?} {q:?}: {e:e}");
            // Not the f32 mode's result: the activations were quantized.
            let ex = Exec { int8: false, ..ex };
            let mut f32_out = vec![f32::NAN; m * n];
            linear(ex, &x, m, &t, None, &mut f32_out);
            assert!(
                out.iter().zip(&f32_out).any(|(a, b)| a != b),
                "{isa:?} {q:?}"
            );
        }
    }
}

#[test]
fn fused_one_row_int8_products_equal_separate_ones() {
    use crate::kernels::{linear_fused, Epilogue};
    let scratch = Scratch::new(rayon::current_num_threads());
    let k = 512;
    let x = activations(k);
    // Two offset classes (Q4_K's 0, Q6_K's 32) share one pass; three fall back to one each.
    for formats in [
        [QuantType::Q4_K, QuantType::Q4_K, QuantType::Q6_K],
        [QuantType::Q8_0, QuantType::Q4_0, QuantType::Q6_K],
    ] {
        let ws: Vec<Tensor> = formats
            .iter()
            .zip([40, 8, 24])
            .enumerate()
            .map(|(i, (&q, n))| quantized(n, k, q, 0.2 * i as f32).0)
            .collect();
        for isa in variants() {
            let ex = Exec {
                isa,
                bf16: false,
                int8: true,
                scratch: &scratch,
            };
            let mut fused: Vec<Vec<f32>> = ws.iter().map(|w| vec![f32::NAN; w.shape[0]]).collect();
            let [a, b, c] = &mut fused[..] else {
                unreachable!()
            };
            let e = Epilogue::default();
            linear_fused(
                ex,
                &x,
                1,
                [
                    (&ws[0], e, &mut a[..]),
                    (&ws[1], e, &mut b[..]),
                    (&ws[2], e, &mut c[..]),
                ],
            );
            for (w, got) in ws.iter().zip(&fused) {
                let mut want = vec![f32::NAN; w.shape[0]];
                linear(ex, &x, 1, w, None, &mut want);
                assert_eq!(got, &want, "{isa:?} {formats:?}");
            }
        }
    }
}

/// Development aid, not a claim (figures come from scripts/bench.sh): int8-mode GOP/s of the
/// 1.8B and 135M decoders' prefill shapes per format on SMOLVLM_RATE_THREADS threads (default 2), best of the repetitions:
/// `SMOLVLM_RATE_Q=q4_k cargo test --release --features rate --lib int8_rate -- --nocapture`.
#[cfg(feature = "rate")]
#[test]
fn int8_rate() {
    let threads = std::env::var("SMOLVLM_RATE_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let only = std::env::var("SMOLVLM_RATE_Q").ok();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let scratch = Scratch::new(threads);
        for q in [QuantType::Q8_0, QuantType::Q4_K, QuantType::Q6_K] {
            if only
                .as_deref()
                .is_some_and(|o| !o.eq_ignore_ascii_case(q.name()))
            {
                continue;
            }
            for (m, n, k) in [
                (100usize, 2048usize, 2048usize),
                (100, 8192, 2048),
                (100, 2048, 8192),
                (122, 1536, 576),
                (122, 576, 1536),
            ] {
                if q.block_elems() == 256 && k % 256 != 0 {
                    continue;
                }
                let (t, _) = quantized(n, k, q, 0.3);
                let View::Quant(_, bytes) = t.view() else {
                    unreachable!()
                };
                let x = activations(m * k);
                let mut out = vec![0.0f32; m * n];
                // The portable oracle only where it is the sole kernel.
                let mut ks = kernels();
                if ks.len() > 1 {
                    ks.remove(0);
                }
                for kernel in ks {
                    int8::linear(&scratch, &x, m, k, q, bytes, n, &mut out, kernel);
                    let reps = (2e10 / (2.0 * (m * n * k) as f64)).ceil() as usize;
                    // The fastest repetition: this machine's neighbours take time.
                    let mut s = f64::MAX;
                    for _ in 0..reps {
                        let t0 = std::time::Instant::now();
                        int8::linear(&scratch, &x, m, k, q, bytes, n, &mut out, kernel);
                        s = s.min(t0.elapsed().as_secs_f64());
                    }
                    eprintln!(
                        "{q:?} {m}x{n}x{k} {kernel:?}: {:.1} GOP/s",
                        2.0 * (m * n * k) as f64 / s / 1e9
                    );
                }
            }
        }
    });
}
