//! Attention (f32 on every variant, bf16 on AMX tiles) against direct f64 sums, and the AVX-512
//! tile transpose it relies on.

use super::*;
use crate::weights::View;

#[test]
fn attention_matches_a_direct_sum() {
    let scratch = Scratch::new(rayon::current_num_threads());
    // Head sizes under one vector, and over four with a partial one (the decode kernel's
    // column passes); 1 and 3 query rows (decode), 6 (the general path).
    for (t_q, t_kv, nh, nkv, d) in [
        (3usize, 5usize, 4usize, 2usize, 8usize),
        (1, 37, 3, 1, 72),
        (6, 9, 2, 2, 64),
    ] {
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
        for isa in variants() {
            let mut out = vec![0.0f32; t_q * nh * d];
            let (ld_q, ld_kv) = (nh * d, nkv * d);
            attention(
                isa,
                false,
                &scratch,
                &q,
                ld_q,
                View::F32(&k),
                ld_kv,
                View::F32(&v),
                ld_kv,
                shape,
                &mut out,
                ld_q,
            );
            let want = attention_reference(&q, &k, &v, (t_q, t_kv, nh, nkv, d), t_kv - t_q, false);
            for (i, (g, w)) in out.iter().zip(&want).enumerate() {
                assert!((*g as f64 - w).abs() < 1e-5, "{isa:?} {d} [{i}] {g} vs {w}");
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn avx512_tile_transpose_matches_the_scalar_one() {
    let Some(t) = avx512::Avx512::new() else {
        eprintln!("no AVX-512 here: the transpose is not run");
        return;
    };
    let tile: [f32; 256] = std::array::from_fn(|i| i as f32);
    for (rows, cols) in [(16usize, 16usize), (5, 16), (16, 3), (1, 1), (7, 9)] {
        let ld = 19;
        let mut dst = vec![-1.0f32; 16 * ld];
        // SAFETY: dst holds 16 rows of ld ≥ 16 floats.
        unsafe {
            t.put_transposed(
                &tile,
                dst.as_mut_ptr(),
                ld,
                (rows, cols),
                None,
                &Epilogue::default(),
            )
        };
        for c in 0..16 {
            for r in 0..ld {
                let want = if c < cols && r < rows {
                    tile[r * 16 + c]
                } else {
                    -1.0
                };
                assert_eq!(
                    dst[c * ld + r],
                    want,
                    "rows={rows} cols={cols} at ({c},{r})"
                );
            }
        }
    }
}

/// The reference of one attention call in f64; with `bf16`, q, k, v and the unnormalised
/// probabilities are rounded to bf16 first.
fn attention_reference(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    (t_q, t_kv, nh, nkv, d): (usize, usize, usize, usize, usize),
    offset: usize,
    bf16: bool,
) -> Vec<f64> {
    let r = |x: f32| -> f64 {
        if bf16 {
            half::bf16::from_f32(x).to_f64()
        } else {
            x as f64
        }
    };
    let mut out = vec![0.0; t_q * nh * d];
    for i in 0..t_q {
        for h in 0..nh {
            let g = h / (nh / nkv);
            let visible = (offset + i + 1).min(t_kv);
            let s: Vec<f64> = (0..visible)
                .map(|j| {
                    (0..d)
                        .map(|c| r(q[i * nh * d + h * d + c]) * r(k[j * nkv * d + g * d + c]))
                        .sum::<f64>()
                        / (d as f64).sqrt()
                })
                .collect();
            let mx = s.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
            let z: f64 = e.iter().sum();
            for c in 0..d {
                // The bf16 mode rounds the unnormalised exponentials and divides the sum.
                out[i * nh * d + h * d + c] = (0..visible)
                    .map(|j| r(e[j] as f32) * r(v[j * nkv * d + g * d + c]))
                    .sum::<f64>()
                    / z;
            }
        }
    }
    out
}

#[test]
fn bf16_attention_on_tiles_matches_a_rounded_direct_sum() {
    if !Isa::supported().contains(&Isa::Amx) {
        eprintln!("no AMX here: the tile attention is not run");
        return;
    }
    let scratch = Scratch::new(rayon::current_num_threads());
    let mut worst = 0.0f64;
    for (t_q, t_kv, nh, nkv, d) in [
        (16usize, 16usize, 2usize, 1usize, 16usize),
        (33, 40, 4, 2, 64),
        (20, 20, 2, 2, 72),
    ] {
        let q = wave(t_q * nh * d, 0.31, 0.0);
        let k = wave(t_kv * nkv * d, 0.17, 1.0);
        let v = wave(t_kv * nkv * d, 0.29, 2.0);
        let offset = t_kv - t_q;
        let shape = AttnShape {
            t_q,
            t_kv,
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: d,
            causal_offset: Some(offset),
        };
        let mut out = vec![0.0f32; t_q * nh * d];
        attention(
            Isa::Amx,
            true,
            &scratch,
            &q,
            nh * d,
            View::F32(&k),
            nkv * d,
            View::F32(&v),
            nkv * d,
            shape,
            &mut out,
            nh * d,
        );
        let dims = (t_q, t_kv, nh, nkv, d);
        let want = attention_reference(&q, &k, &v, dims, offset, true);
        let unrounded = attention_reference(&q, &k, &v, dims, offset, false);
        // Measured 1.5e-8. The bound allows one probability whose f32 and f64 values round
        // to neighbouring bf16 (≤ 2⁻⁸·p·|v|, |v| ≤ 1); a wrong index or a dropped tile is off
        // by tenths. The result must also sit far closer to the rounded sum than to the
        // unrounded one (measured 1e-3 away): inputs left unrounded fail.
        let tol = 1.0 / 256.0;
        let (mut err, mut vs_f32) = (0.0f64, 0.0f64);
        for ((g, w), u) in out.iter().zip(&want).zip(&unrounded) {
            err = err.max((*g as f64 - w).abs());
            vs_f32 = vs_f32.max((*g as f64 - u).abs());
        }
        assert!(err < tol, "{dims:?}: {err} from the rounded reference");
        assert!(
            vs_f32 > 100.0 * err.max(1e-7),
            "{dims:?}: {vs_f32} from the unrounded sum"
        );
        worst = worst.max(err);
    }
    eprintln!("tile attention: worst {worst:.2e} from the bf16-rounded reference");
}

/// The bf16 mode's KV cache holds bf16: attention over it must equal attention over the same
/// values in f32, bit for bit, on every variant and mode (decode rows and tile-sized prefills;
/// a wrong row stride or group offset in the widening changes the result).
#[test]
fn bf16_keys_and_values_equal_their_f32_widening() {
    let scratch = Scratch::new(rayon::current_num_threads());
    for (t_q, t_kv, nh, nkv, d) in [
        (1usize, 37usize, 6usize, 2usize, 64usize),
        (20, 45, 4, 2, 64),
    ] {
        let q = wave(t_q * nh * d, 0.31, 0.0);
        let kb: Vec<bf16> = wave(t_kv * nkv * d, 0.17, 1.0)
            .into_iter()
            .map(bf16::from_f32)
            .collect();
        let vb: Vec<bf16> = wave(t_kv * nkv * d, 0.29, 2.0)
            .into_iter()
            .map(bf16::from_f32)
            .collect();
        let kf: Vec<f32> = kb.iter().map(|x| x.to_f32()).collect();
        let vf: Vec<f32> = vb.iter().map(|x| x.to_f32()).collect();
        let shape = AttnShape {
            t_q,
            t_kv,
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: d,
            causal_offset: Some(t_kv - t_q),
        };
        for isa in variants() {
            for bf16_mode in [false, true] {
                let run = |k: View, v: View| {
                    let mut out = vec![0.0f32; t_q * nh * d];
                    attention(
                        isa,
                        bf16_mode,
                        &scratch,
                        &q,
                        nh * d,
                        k,
                        nkv * d,
                        v,
                        nkv * d,
                        shape,
                        &mut out,
                        nh * d,
                    );
                    out
                };
                let from_f32 = run(View::F32(&kf), View::F32(&vf));
                let from_bf16 = run(View::BF16(&kb), View::BF16(&vb));
                assert!(
                    from_f32
                        .iter()
                        .zip(&from_bf16)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{isa:?} bf16 mode {bf16_mode} t_q {t_q}: bf16 keys/values differ from f32"
                );
            }
        }
    }
}
