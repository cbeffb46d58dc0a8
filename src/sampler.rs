//! Token choice: greedy, or HF-style repetition penalty → temperature → top-k → top-p → draw,
//! with a seeded ChaCha8 stream so a seed always gives the same tokens.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// How the next token is chosen. The default is greedy.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 = greedy.
    pub temperature: f32,
    /// 0 = off.
    pub top_k: usize,
    /// 1 = off.
    pub top_p: f32,
    /// 1 = off (transformers' RepetitionPenaltyLogitsProcessor over prompt + generated ids).
    pub repetition_penalty: f32,
    /// Seed of the random stream: the same seed gives the same tokens.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            seed: 0,
        }
    }
}

impl SamplingParams {
    /// Checks every value is in range (finite, non-negative temperature, top_p in (0, 1], ...).
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: &str| Err(crate::Error::invalid(m.to_string()));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("temperature must be a finite number >= 0");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p must be in (0, 1]");
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad("repetition_penalty must be a finite number > 0");
        }
        Ok(())
    }
}

/// Chooses tokens with one request's settings and random stream.
pub struct Sampler {
    p: SamplingParams,
    rng: ChaCha8Rng,
}

/// Index of the largest value; the first one on ties (torch.argmax).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

impl Sampler {
    /// A sampler whose stream starts from `p.seed`.
    pub fn new(p: SamplingParams) -> Sampler {
        let rng = ChaCha8Rng::seed_from_u64(p.seed);
        Sampler { p, rng }
    }

    /// The next token: greedy at temperature 0, else a draw from [`Sampler::distribution`].
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        if self.p.repetition_penalty != 1.0 {
            apply_repetition_penalty(logits, history, self.p.repetition_penalty);
        }
        if self.p.temperature == 0.0 {
            return argmax(logits) as u32;
        }
        let (cand, probs) = self.distribution(logits);
        let r = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let mut acc = 0.0;
        for (i, p) in probs.iter().enumerate() {
            acc += p;
            if r < acc {
                return cand[i];
            }
        }
        cand[probs.len() - 1]
    }

    /// The candidates and their probabilities after temperature, top-k and top-p, most likely
    /// first (ties by id), as transformers' warpers leave them.
    fn distribution(&self, logits: &[f32]) -> (Vec<u32>, Vec<f64>) {
        let mut cand: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, l / self.p.temperature))
            .collect();
        cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if self.p.top_k > 0 && self.p.top_k < cand.len() {
            cand.truncate(self.p.top_k);
        }
        let max = cand[0].1;
        let mut probs: Vec<f64> = cand.iter().map(|c| ((c.1 - max) as f64).exp()).collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if self.p.top_p < 1.0 {
            // Keep the smallest head whose mass reaches top_p (always at least one token).
            let mut acc = 0.0;
            let mut keep = probs.len();
            for (i, p) in probs.iter().enumerate() {
                acc += p;
                if acc >= self.p.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep);
            let t: f64 = probs.iter().sum();
            probs.iter_mut().for_each(|p| *p /= t);
        }
        (
            cand.into_iter().map(|c| c.0).take(probs.len()).collect(),
            probs,
        )
    }
}

/// RepetitionPenaltyLogitsProcessor: every id seen in `history` has its logit divided by
/// `penalty` when positive and multiplied by it when negative.
fn apply_repetition_penalty(logits: &mut [f32], history: &[u32], penalty: f32) {
    let mut seen = history.to_vec();
    seen.sort_unstable();
    seen.dedup();
    for &id in &seen {
        if let Some(l) = logits.get_mut(id as usize) {
            *l = if *l < 0.0 { *l * penalty } else { *l / penalty };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_first_max_and_penalty_applies() {
        let mut s = Sampler::new(SamplingParams::default());
        assert_eq!(s.sample(&mut [1.0, 3.0, 3.0, -1.0], &[]), 1);
        let mut s = Sampler::new(SamplingParams {
            repetition_penalty: 2.0,
            ..Default::default()
        });
        assert_eq!(s.sample(&mut [1.0, 3.0, 2.0], &[1]), 2);
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_logits() {
        let mut l = [3.0f32, -1.0, 0.0, 5.0, -4.0];
        apply_repetition_penalty(&mut l, &[0, 1, 2, 1, 99], 2.0);
        assert_eq!(l, [1.5, -2.0, 0.0, 5.0, -4.0]);
    }

    #[test]
    fn distribution_is_shift_safe_and_renormalised_after_top_p() {
        let s = Sampler::new(SamplingParams {
            temperature: 1.0,
            ..Default::default()
        });
        // exp(400) overflows: the softmax must subtract the maximum first.
        let (_, probs) = s.distribution(&[400.0, 399.0]);
        let e = std::f64::consts::E;
        assert!((probs[0] - e / (e + 1.0)).abs() < 1e-6, "{probs:?}");
        let s = Sampler::new(SamplingParams {
            temperature: 1.0,
            top_p: 0.5,
            ..Default::default()
        });
        assert_eq!(s.distribution(&[0.0; 4]), (vec![0, 1], vec![0.5, 0.5]));
    }

    #[test]
    fn temperature_divides_the_logits() {
        // logits [ln 3, 0]: at T = 1 the probabilities are 3/4 and 1/4; at T = 0.5, 9/10 and 1/10.
        let logits = [3f32.ln(), 0.0];
        for (t, want) in [
            (1.0f32, [0.75, 0.25]),
            (0.5, [0.9, 0.1]),
            (2.0, [0.634, 0.366]),
        ] {
            let s = Sampler::new(SamplingParams {
                temperature: t,
                ..Default::default()
            });
            let (cand, probs) = s.distribution(&logits);
            assert_eq!(cand, [0, 1]);
            for (p, w) in probs.iter().zip(want) {
                assert!((p - w).abs() < 1e-3, "T {t}: {probs:?}");
            }
        }
    }

    #[test]
    fn validate_takes_exactly_the_documented_ranges() {
        let with = |temperature: f32, top_p: f32, repetition_penalty: f32| {
            SamplingParams {
                temperature,
                top_p,
                repetition_penalty,
                ..Default::default()
            }
            .validate()
            .is_ok()
        };
        assert!(with(0.0, 1.0, 1.0) && with(2.5, 0.01, 0.5) && with(1.0, 1.0, 3.0));
        for t in [-0.01, f32::NAN, f32::INFINITY] {
            assert!(!with(t, 1.0, 1.0), "temperature {t}");
        }
        for p in [0.0, -0.5, 1.0001, f32::NAN] {
            assert!(!with(1.0, p, 1.0), "top_p {p}");
        }
        for r in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert!(!with(1.0, 1.0, r), "repetition_penalty {r}");
        }
    }

    /// TopPLogitsWarper keeps the smallest head whose mass reaches top_p: with four equal
    /// logits (probabilities exactly 0.25), top_p 0.5 keeps two tokens and 0.75 keeps three.
    #[test]
    fn top_p_keeps_the_head_that_reaches_the_mass_exactly() {
        for (top_p, kept) in [(0.5f32, 2usize), (0.75, 3), (0.2, 1)] {
            let mut seen = [0usize; 4];
            for seed in 0..200 {
                let mut s = Sampler::new(SamplingParams {
                    temperature: 1.0,
                    top_p,
                    seed,
                    ..Default::default()
                });
                seen[s.sample(&mut [0.0; 4], &[]) as usize] += 1;
            }
            for (i, &n) in seen.iter().enumerate() {
                assert_eq!(n > 0, i < kept, "top_p {top_p}: token {i} drawn {n} times");
            }
        }
    }

    #[test]
    fn same_seed_same_draws_and_top_k_1_is_greedy() {
        let p = SamplingParams {
            temperature: 1.0,
            seed: 42,
            ..Default::default()
        };
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let run = |p: SamplingParams| {
            let mut s = Sampler::new(p);
            (0..20)
                .map(|_| s.sample(&mut logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(p.clone()), run(p.clone()));
        let draws = run(p.clone());
        assert!(
            draws.iter().any(|&t| t != draws[0]),
            "sampling never varied"
        );
        let k1 = run(SamplingParams { top_k: 1, ..p });
        assert!(k1.iter().all(|&t| t as usize == argmax(&logits)));
    }
}
