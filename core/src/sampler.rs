//! `SamplerChain`: small composable samplers applied in order to the logits of
//! one position, ending in a seeded draw (or argmax when greedy).

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::HashMap;

/// One token id with its (adjusted) logit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Token id.
    pub id: u32,
    /// Logit after the samplers so far.
    pub logit: f32,
}

/// One step of a [`SamplerChain`].
#[derive(Clone, Debug, PartialEq)]
pub enum Sampler {
    /// Adds a bias to chosen token ids (`-inf` bans a token).
    LogitBias(Vec<(u32, f32)>),
    /// Penalizes every token already in the context. `divide_always` is the
    /// original CHAYA CLI's rule (logit / penalty whatever its sign); otherwise
    /// positive logits are divided and negative ones multiplied.
    Repetition {
        /// Penalty factor (1 = off).
        penalty: f32,
        /// Apply the original CLI's sign-blind rule.
        divide_always: bool,
    },
    /// Subtracts `penalty × count` for each occurrence in the context.
    Frequency(f32),
    /// Subtracts `penalty` once for any token present in the context.
    Presence(f32),
    /// Keeps the `k` most likely tokens (0 = off).
    TopK(usize),
    /// Keeps the smallest set of most likely tokens whose probability reaches `p`.
    TopP(f32),
    /// Keeps tokens at least `p` times as likely as the most likely one.
    MinP(f32),
    /// Divides logits by a temperature (> 0).
    Temperature(f32),
    /// Temperature falling linearly from `from` to `to` over `steps` tokens (the
    /// original CLI's "dynamic" schedule).
    DynamicTemperature {
        /// Temperature of the first token.
        from: f32,
        /// Temperature of the last token.
        to: f32,
        /// Number of tokens the schedule spans.
        steps: usize,
    },
}

/// Samplers applied in order, then a draw from the remaining candidates.
/// A chain with `greedy` set ends with argmax instead of a draw.
#[derive(Clone, Debug)]
pub struct SamplerChain {
    steps: Vec<Sampler>,
    greedy: bool,
    rng: ChaCha8Rng,
}

impl SamplerChain {
    /// A chain of `steps` ending in a draw seeded with `seed`.
    pub fn new(steps: Vec<Sampler>, seed: u64) -> SamplerChain {
        SamplerChain {
            steps,
            greedy: false,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// A chain of `steps` ending in argmax (lowest id wins ties).
    pub fn greedy(steps: Vec<Sampler>) -> SamplerChain {
        SamplerChain {
            steps,
            greedy: true,
            rng: ChaCha8Rng::seed_from_u64(0),
        }
    }

    /// Picks the next token from `logits`, given the `context` tokens so far and
    /// the index of this token in the generation (`step`, for schedules).
    pub fn sample(&mut self, logits: &[f32], context: &[u32], step: usize) -> u32 {
        let mut candidates: Vec<Candidate> = logits
            .iter()
            .enumerate()
            .map(|(id, &logit)| Candidate {
                id: id as u32,
                logit,
            })
            .collect();
        let mut counts: HashMap<u32, usize> = HashMap::new();
        let penalized = self.steps.iter().any(|s| {
            matches!(
                s,
                Sampler::Repetition { .. } | Sampler::Frequency(_) | Sampler::Presence(_)
            )
        });
        if penalized {
            for &id in context {
                *counts.entry(id).or_default() += 1;
            }
        }
        for step_sampler in &self.steps {
            apply(step_sampler, &mut candidates, &counts, step);
        }
        candidates.retain(|c| c.logit > f32::NEG_INFINITY);
        if candidates.is_empty() {
            // Everything was banned: fall back to the raw argmax rather than fail.
            return argmax(
                &logits
                    .iter()
                    .enumerate()
                    .map(|(i, &l)| Candidate {
                        id: i as u32,
                        logit: l,
                    })
                    .collect::<Vec<_>>(),
            );
        }
        if self.greedy {
            return argmax(&candidates);
        }
        let probs = softmax(&candidates);
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let mut cumulative = 0.0;
        for (c, p) in candidates.iter().zip(&probs) {
            cumulative += p;
            if u < cumulative {
                return c.id;
            }
        }
        candidates.last().expect("non-empty").id
    }
}

/// Applies one sampler to the candidates in place.
fn apply(
    sampler: &Sampler,
    candidates: &mut Vec<Candidate>,
    counts: &HashMap<u32, usize>,
    step: usize,
) {
    match *sampler {
        Sampler::LogitBias(ref biases) => {
            for &(id, bias) in biases {
                if let Some(c) = candidates.iter_mut().find(|c| c.id == id) {
                    c.logit += bias;
                }
            }
        }
        Sampler::Repetition {
            penalty,
            divide_always,
        } => {
            for c in candidates.iter_mut().filter(|c| counts.contains_key(&c.id)) {
                c.logit = if divide_always || c.logit > 0.0 {
                    c.logit / penalty
                } else {
                    c.logit * penalty
                };
            }
        }
        Sampler::Frequency(penalty) => {
            for c in candidates.iter_mut() {
                if let Some(&n) = counts.get(&c.id) {
                    c.logit -= penalty * n as f32;
                }
            }
        }
        Sampler::Presence(penalty) => {
            for c in candidates.iter_mut().filter(|c| counts.contains_key(&c.id)) {
                c.logit -= penalty;
            }
        }
        Sampler::TopK(k) => {
            if k > 0 && k < candidates.len() {
                // Partition around the k-th best first: O(n), then sort only k.
                candidates.select_nth_unstable_by(k - 1, descending);
                candidates.truncate(k);
                sort_descending(candidates);
            }
        }
        Sampler::TopP(p) => {
            if p < 1.0 {
                sort_descending(candidates);
                let probs = softmax(candidates);
                let mut cumulative = 0.0;
                let keep = probs
                    .iter()
                    .position(|q| {
                        cumulative += q;
                        cumulative >= p as f64
                    })
                    .map_or(candidates.len(), |i| i + 1);
                candidates.truncate(keep);
            }
        }
        Sampler::MinP(p) => {
            if p > 0.0 {
                let max = candidates
                    .iter()
                    .map(|c| c.logit)
                    .fold(f32::NEG_INFINITY, f32::max);
                // p_i ≥ p · p_max  ⇔  logit_i ≥ logit_max + ln p
                let threshold = max + p.ln();
                candidates.retain(|c| c.logit >= threshold);
            }
        }
        Sampler::Temperature(t) => candidates.iter_mut().for_each(|c| c.logit /= t),
        Sampler::DynamicTemperature { from, to, steps } => {
            let progress = if steps > 1 {
                (step.min(steps - 1)) as f32 / (steps - 1) as f32
            } else {
                0.0
            };
            let t = from + (to - from) * progress;
            candidates.iter_mut().for_each(|c| c.logit /= t);
        }
    }
}

/// Sorts by logit, highest first; ties keep the lower id first.
fn sort_descending(candidates: &mut [Candidate]) {
    candidates.sort_by(descending);
}

/// The order of [`sort_descending`]: a total order, so selections are deterministic.
fn descending(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

/// Probabilities of the candidates (f64 for stable sums).
fn softmax(candidates: &[Candidate]) -> Vec<f64> {
    let max = candidates
        .iter()
        .map(|c| c.logit)
        .fold(f32::NEG_INFINITY, f32::max) as f64;
    let exps: Vec<f64> = candidates
        .iter()
        .map(|c| (c.logit as f64 - max).exp())
        .collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// The candidate with the highest logit; the lowest id among ties.
fn argmax(candidates: &[Candidate]) -> u32 {
    let mut best = candidates[0];
    for &c in &candidates[1..] {
        if c.logit > best.logit || (c.logit == best.logit && c.id < best.id) {
            best = c;
        }
    }
    best.id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(logits: &[f32]) -> Vec<Candidate> {
        logits
            .iter()
            .enumerate()
            .map(|(i, &l)| Candidate {
                id: i as u32,
                logit: l,
            })
            .collect()
    }

    fn ids(c: &[Candidate]) -> Vec<u32> {
        let mut ids: Vec<u32> = c.iter().map(|c| c.id).collect();
        ids.sort();
        ids
    }

    fn run(sampler: Sampler, logits: &[f32], context: &[u32]) -> Vec<Candidate> {
        let mut c = cands(logits);
        let mut counts = HashMap::new();
        for &id in context {
            *counts.entry(id).or_default() += 1;
        }
        apply(&sampler, &mut c, &counts, 0);
        c
    }

    #[test]
    fn top_k_keeps_the_k_best_and_breaks_ties_by_lower_id() {
        assert_eq!(
            ids(&run(Sampler::TopK(2), &[1.0, 3.0, 3.0, 3.0], &[])),
            vec![1, 2]
        );
        assert_eq!(run(Sampler::TopK(0), &[1.0, 2.0], &[]).len(), 2);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        // probabilities ≈ 0.665, 0.245, 0.090
        let logits = [2.0f32, 1.0, 0.0];
        assert_eq!(ids(&run(Sampler::TopP(0.5), &logits, &[])), vec![0]);
        assert_eq!(ids(&run(Sampler::TopP(0.9), &logits, &[])), vec![0, 1]);
        assert_eq!(ids(&run(Sampler::TopP(0.95), &logits, &[])), vec![0, 1, 2]);
    }

    #[test]
    fn min_p_filters_relative_to_the_best() {
        let logits = [0.0f32, -0.5, -3.0]; // relative probabilities 1, 0.61, 0.05
        assert_eq!(ids(&run(Sampler::MinP(0.1), &logits, &[])), vec![0, 1]);
        assert_eq!(ids(&run(Sampler::MinP(0.7), &logits, &[])), vec![0]);
    }

    #[test]
    fn penalties_follow_their_definitions() {
        let logits = [2.0f32, -2.0, 1.0];
        let rep = run(
            Sampler::Repetition {
                penalty: 2.0,
                divide_always: false,
            },
            &logits,
            &[0, 1],
        );
        assert_eq!(
            rep.iter().map(|c| c.logit).collect::<Vec<_>>(),
            vec![1.0, -4.0, 1.0]
        );
        let compat = run(
            Sampler::Repetition {
                penalty: 2.0,
                divide_always: true,
            },
            &logits,
            &[0, 1],
        );
        assert_eq!(
            compat.iter().map(|c| c.logit).collect::<Vec<_>>(),
            vec![1.0, -1.0, 1.0]
        );
        let freq = run(Sampler::Frequency(0.3), &logits, &[2, 2, 2]);
        assert!((freq[2].logit - 0.1).abs() < 1e-6);
        let pres = run(Sampler::Presence(0.5), &logits, &[2, 2, 2]);
        assert_eq!(pres[2].logit, 0.5);
    }

    #[test]
    fn bias_can_ban_all_but_one() {
        let bias = Sampler::LogitBias(vec![(0, f32::NEG_INFINITY), (1, f32::NEG_INFINITY)]);
        let mut chain = SamplerChain::new(vec![bias], 7);
        for _ in 0..20 {
            assert_eq!(chain.sample(&[5.0, 5.0, -5.0], &[], 0), 2);
        }
    }

    #[test]
    fn greedy_takes_the_lowest_id_among_ties() {
        assert_eq!(
            SamplerChain::greedy(vec![]).sample(&[1.0, 3.0, 3.0], &[], 0),
            1
        );
    }

    #[test]
    fn temperature_scales_and_the_dynamic_schedule_interpolates() {
        assert_eq!(
            run(Sampler::Temperature(0.5), &[1.0, 0.0], &[])[0].logit,
            2.0
        );
        let schedule = Sampler::DynamicTemperature {
            from: 1.0,
            to: 0.5,
            steps: 3,
        };
        for (step, want) in [(0, 1.0), (1, 1.0 / 0.75), (2, 2.0), (9, 2.0)] {
            let mut c = cands(&[1.0]);
            apply(&schedule, &mut c, &HashMap::new(), step);
            assert!((c[0].logit - want).abs() < 1e-6, "step {step}");
        }
    }

    #[test]
    fn draws_follow_the_distribution_and_the_seed() {
        let logits = [0.0f32, (3.0f32).ln()]; // p = 0.25, 0.75
        let mut chain = SamplerChain::new(vec![], 42);
        let n = 4000;
        let ones = (0..n)
            .filter(|_| chain.sample(&logits, &[], 0) == 1)
            .count();
        assert!((ones as f64 / n as f64 - 0.75).abs() < 0.03, "{ones}");
        let draw = |seed| {
            let mut chain = SamplerChain::new(vec![], seed);
            (0..64)
                .map(|_| chain.sample(&[0.0; 8], &[], 0))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }
}
