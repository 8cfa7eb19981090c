//! `SamplerChain`: small composable samplers applied in order to the logits of
//! one position, ending in a seeded draw (or argmax when greedy).

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

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

    /// Picks the next token from `logits`, given the `context` tokens so far.
    ///
    /// # Panics
    /// If `logits` is empty (a model's never are: one per vocabulary token).
    pub fn sample(&mut self, logits: &[f32], context: &[u32]) -> u32 {
        if self.greedy && self.steps.is_empty() {
            return plain_greedy(logits);
        }
        let mut candidates: Vec<Candidate> = logits
            .iter()
            .enumerate()
            .map(|(id, &logit)| Candidate {
                id: id as u32,
                logit,
            })
            .collect();
        let penalized = self.steps.iter().any(|s| {
            matches!(
                s,
                Sampler::Repetition { .. } | Sampler::Frequency(_) | Sampler::Presence(_)
            )
        });
        let counts = if penalized {
            occurrences(context, logits.len())
        } else {
            Vec::new()
        };
        for step in &self.steps {
            apply(step, &mut candidates, &counts);
        }
        candidates.retain(|c| c.logit > f32::NEG_INFINITY);
        if candidates.is_empty() {
            // Everything was banned: fall back to the raw argmax rather than fail.
            return raw_argmax(logits);
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

/// How often each token id occurs in `context`, indexed by id: a dense
/// table, as the penalties look up every candidate (a hash map's lookups
/// took ~0.5 ms per token). Ids at or past `vocab` are not counted.
fn occurrences(context: &[u32], vocab: usize) -> Vec<u32> {
    let mut counts = vec![0; vocab];
    for &id in context {
        if let Some(n) = counts.get_mut(id as usize) {
            *n += 1;
        }
    }
    counts
}

/// Where token `id` is among the candidates: at index `id` while they are
/// the whole vocabulary in id order (as the chain starts), else by a scan.
fn position(candidates: &[Candidate], id: u32) -> Option<usize> {
    match candidates.get(id as usize) {
        Some(c) if c.id == id => Some(id as usize),
        _ => candidates.iter().position(|c| c.id == id),
    }
}

/// Applies one sampler to the candidates in place; `counts[id]` is how often
/// token `id` occurs in the context (empty when no penalty needs it).
fn apply(sampler: &Sampler, candidates: &mut Vec<Candidate>, counts: &[u32]) {
    let count = |id: u32| counts.get(id as usize).copied().unwrap_or(0);
    match *sampler {
        Sampler::LogitBias(ref biases) => {
            for &(id, bias) in biases {
                if let Some(i) = position(candidates, id) {
                    candidates[i].logit += bias;
                }
            }
        }
        Sampler::Repetition {
            penalty,
            divide_always,
        } => {
            for c in candidates.iter_mut().filter(|c| count(c.id) > 0) {
                c.logit = if divide_always || c.logit > 0.0 {
                    c.logit / penalty
                } else {
                    c.logit * penalty
                };
            }
        }
        Sampler::Frequency(penalty) => {
            for c in candidates.iter_mut() {
                let n = count(c.id);
                if n > 0 {
                    c.logit -= penalty * n as f32;
                }
            }
        }
        Sampler::Presence(penalty) => {
            for c in candidates.iter_mut().filter(|c| count(c.id) > 0) {
                c.logit -= penalty;
            }
        }
        Sampler::TopK(k) => {
            if k > 0 && k < candidates.len() {
                rank_best(candidates, k);
                candidates.truncate(k);
            }
        }
        Sampler::TopP(p) => {
            if p < 1.0 {
                let keep = nucleus(candidates, p);
                candidates.truncate(keep);
            }
        }
        Sampler::MinP(p) => {
            if p > 0.0 {
                let max = max_logit(candidates);
                // p_i ≥ p · p_max  ⇔  logit_i ≥ logit_max + ln p
                let threshold = max + p.ln();
                candidates.retain(|c| c.logit >= threshold);
            }
        }
        Sampler::Temperature(t) => candidates.iter_mut().for_each(|c| c.logit /= t),
    }
}

/// Sorts by logit, highest first; ties keep the lower id first.
fn sort_descending(candidates: &mut [Candidate]) {
    // No two candidates are equal (ids differ), so an unstable sort is exact.
    candidates.sort_unstable_by(descending);
}

/// The order of [`sort_descending`]: a total order, so selections are deterministic.
fn descending(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

/// Moves the `k` best candidates (`0 < k <= len`) to the front, sorted
/// best first (ties: lower id first); the rest follow in no order. Only the
/// candidates at or above a floor are partitioned around their k-th best
/// (O(n)), and only `k` are sorted. The floor is the logit a strided sample
/// of about [`FLOOR_SAMPLE`] candidates ranks a little below where the k-th
/// best is expected; if fewer than `k` reach it, all are partitioned.
fn rank_best(candidates: &mut [Candidate], k: usize) {
    let n = candidates.len();
    let mut sample: Vec<f32> = candidates
        .iter()
        .step_by((n / FLOOR_SAMPLE).max(1))
        .map(|c| c.logit)
        .collect();
    let rank = (2 * k * sample.len() / n + 8).min(sample.len());
    let floor = *sample
        .select_nth_unstable_by(rank - 1, |a, b| b.total_cmp(a))
        .1;
    let mut above = 0;
    for i in 0..n {
        if candidates[i].logit.total_cmp(&floor).is_ge() {
            candidates.swap(i, above);
            above += 1;
        }
    }
    // At least k at or above the floor: the k best are among them.
    let front = &mut candidates[..if above >= k { above } else { n }];
    if k < front.len() {
        front.select_nth_unstable_by(k - 1, descending);
    }
    sort_descending(&mut front[..k]);
}

/// Candidates [`rank_best`] samples for its floor.
const FLOOR_SAMPLE: usize = 1024;

/// Candidates [`nucleus`] ranks first; it ranks [`RANK_GROWTH`] times as
/// many each time their probability falls short.
const RANKED_FIRST: usize = 64;

/// See [`RANKED_FIRST`].
const RANK_GROWTH: usize = 16;

/// Sorts the most likely candidates first (ties: lower id first) and returns
/// how many it takes for their probability to reach `p` (all of them if
/// rounding keeps the sum below it). Only the best [`RANKED_FIRST`], then
/// [`RANK_GROWTH`] times as many, and so on, are ranked ([`rank_best`])
/// until their mass reaches `p`: a peaked distribution costs a few passes
/// over the vocabulary instead of sorting it.
fn nucleus(candidates: &mut [Candidate], p: f32) -> usize {
    let n = candidates.len();
    let max = max_logit(candidates);
    let weight = |c: &Candidate| relative_weight(c.logit, max);
    let total: f64 = candidates.iter().map(weight).sum();
    let mut ranked = RANKED_FIRST.min(n);
    while ranked > 0 {
        rank_best(candidates, ranked);
        let mut cumulative = 0.0;
        let reached = candidates[..ranked].iter().position(|c| {
            cumulative += weight(c) / total;
            cumulative >= p as f64
        });
        match reached {
            Some(i) => return i + 1,
            None if ranked == n => break,
            None => ranked = (ranked * RANK_GROWTH).min(n),
        }
    }
    n
}

/// The highest logit among the candidates (-inf for none).
fn max_logit(candidates: &[Candidate]) -> f32 {
    candidates
        .iter()
        .map(|c| c.logit)
        .fold(f32::NEG_INFINITY, f32::max)
}

/// `exp(logit - max)`, the unnormalized probability of a logit when the
/// highest is `max`. A +∞ logit (a temperature near 0 or a huge bias
/// overflows) takes all the probability, shared with any other +∞: the limit
/// of the softmax, where `∞ - ∞` would make every probability NaN.
fn relative_weight(logit: f32, max: f32) -> f64 {
    if max == f32::INFINITY {
        f64::from(u8::from(logit == f32::INFINITY))
    } else {
        (logit as f64 - max as f64).exp()
    }
}

/// Probabilities of the candidates (f64 for stable sums).
fn softmax(candidates: &[Candidate]) -> Vec<f64> {
    let max = max_logit(candidates);
    let exps: Vec<f64> = candidates
        .iter()
        .map(|c| relative_weight(c.logit, max))
        .collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// What a greedy chain without steps picks, without building candidates: the
/// highest logit above -∞ (the lowest id among ties, never NaN), else the
/// raw [`argmax`].
fn plain_greedy(logits: &[f32]) -> u32 {
    let mut best: Option<(usize, f32)> = None;
    for (id, &logit) in logits.iter().enumerate() {
        if logit > best.map_or(f32::NEG_INFINITY, |(_, b)| b) {
            best = Some((id, logit));
        }
    }
    best.map_or_else(|| raw_argmax(logits), |(id, _)| id as u32)
}

/// [`argmax`] of every logit, banned or not.
fn raw_argmax(logits: &[f32]) -> u32 {
    let candidates: Vec<Candidate> = logits
        .iter()
        .enumerate()
        .map(|(i, &logit)| Candidate {
            id: i as u32,
            logit,
        })
        .collect();
    argmax(&candidates)
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
        apply(&sampler, &mut c, &occurrences(context, logits.len()));
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

    /// Deterministic logits on a grid of 0.25 (so many tie) spread by `spread`.
    fn grid_logits(n: usize, spread: f32, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
                (unit * spread * 4.0).round() / 4.0
            })
            .collect()
    }

    /// The candidates sorted best first, lower id first among ties.
    fn sorted(logits: &[f32]) -> Vec<Candidate> {
        let mut all = cands(logits);
        all.sort_by(descending);
        all
    }

    #[test]
    fn top_k_equals_sorting_every_candidate() {
        for (n, seed) in [(50, 1), (3000, 2), (50_257, 3)] {
            for spread in [2.0, 40.0] {
                let logits = grid_logits(n, spread, seed);
                for k in [1, 40, 1000, n - 1].into_iter().filter(|&k| k < n) {
                    let want: Vec<Candidate> = sorted(&logits).into_iter().take(k).collect();
                    assert_eq!(run(Sampler::TopK(k), &logits, &[]), want, "n {n}, k {k}");
                }
            }
        }
    }

    #[test]
    fn top_k_is_exact_when_the_sampled_floor_is_too_high() {
        // Every candidate the floor's strided sample sees is high, the rest
        // low: fewer than k reach the floor, so all must be ranked.
        let n = 50_257;
        let stride = n / FLOOR_SAMPLE;
        let logits: Vec<f32> = (0..n)
            .map(|i| {
                if i % stride == 0 {
                    10.0
                } else {
                    (i % 7) as f32
                }
            })
            .collect();
        let k = 2000;
        let want: Vec<Candidate> = sorted(&logits).into_iter().take(k).collect();
        assert_eq!(run(Sampler::TopK(k), &logits, &[]), want);
    }

    #[test]
    fn top_p_equals_sorting_every_candidate() {
        // From nearly flat (43 699 of 50 257 kept: everything sorted) to peaked
        // (25 kept: the first ranking suffices), through each growth step.
        for (spread, p) in [
            (0.5, 0.9),
            (8.0, 0.95),
            (30.0, 0.95),
            (60.0, 0.5),
            (200.0, 0.1),
        ] {
            let logits = grid_logits(50_257, spread, 7);
            let all = sorted(&logits);
            let probs = softmax(&all);
            let mut cumulative = 0.0;
            let keep = probs
                .iter()
                .position(|q| {
                    cumulative += q;
                    cumulative >= p
                })
                .map_or(all.len(), |i| i + 1);
            let got = run(Sampler::TopP(p as f32), &logits, &[]);
            assert_eq!(got, all[..keep], "spread {spread}: {} kept", got.len());
        }
    }

    #[test]
    fn penalties_ignore_context_ids_outside_the_vocabulary() {
        let rep = Sampler::Repetition {
            penalty: 2.0,
            divide_always: false,
        };
        let got = run(rep, &[2.0, 1.0], &[1, 7, u32::MAX]);
        assert_eq!(got.iter().map(|c| c.logit).collect::<Vec<_>>(), [2.0, 0.5]);
    }

    #[test]
    fn bias_finds_its_token_after_the_candidates_are_reordered() {
        let steps = vec![Sampler::TopK(3), Sampler::LogitBias(vec![(1, 10.0)])];
        let mut chain = SamplerChain::greedy(steps);
        // Top-3 sorts ids 3, 2, 1 first; the bias then lifts id 1 above them.
        assert_eq!(chain.sample(&[0.0, 1.0, 2.0, 3.0], &[]), 1);
    }

    #[test]
    fn bias_can_ban_all_but_one() {
        let bias = Sampler::LogitBias(vec![(0, f32::NEG_INFINITY), (1, f32::NEG_INFINITY)]);
        let mut chain = SamplerChain::new(vec![bias], 7);
        for _ in 0..20 {
            assert_eq!(chain.sample(&[5.0, 5.0, -5.0], &[]), 2);
        }
    }

    #[test]
    fn plain_greedy_picks_what_the_candidate_path_picks() {
        let special = [f32::NAN, f32::NEG_INFINITY, f32::INFINITY, 3.0, -1.0];
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for case in 0..2000 {
            let len = 1 + case % 7;
            let logits: Vec<f32> = (0..len)
                .map(|_| special[(rng.next_u64() % special.len() as u64) as usize])
                .collect();
            // An empty bias changes nothing but takes the candidate path.
            let general = SamplerChain::greedy(vec![Sampler::LogitBias(vec![])]);
            assert_eq!(
                SamplerChain::greedy(vec![]).sample(&logits, &[]),
                { general }.sample(&logits, &[]),
                "{logits:?}"
            );
        }
    }

    #[test]
    fn greedy_takes_the_lowest_id_among_ties() {
        assert_eq!(
            SamplerChain::greedy(vec![]).sample(&[1.0, 3.0, 3.0], &[]),
            1
        );
    }

    #[test]
    fn temperature_scales() {
        assert_eq!(
            run(Sampler::Temperature(0.5), &[1.0, 0.0], &[])[0].logit,
            2.0
        );
    }

    #[test]
    fn draws_that_overflow_to_infinity_pick_the_overflowing_tokens() {
        // Huge biases overflow to +inf under the temperature: a draw must pick
        // one of those tokens (evenly), never the worst candidate.
        let logits = [1.0f32, 3.0, 3.0, -2.0];
        let bias = Sampler::LogitBias(vec![(1, 3.0e38), (2, f32::MAX)]);
        for nucleus in [1.0, 0.9] {
            let steps = vec![
                bias.clone(),
                Sampler::Temperature(0.5),
                Sampler::TopP(nucleus),
            ];
            let mut chain = SamplerChain::new(steps, 3);
            let picks: Vec<u32> = (0..200).map(|_| chain.sample(&logits, &[])).collect();
            assert!(picks.iter().all(|&id| id == 1 || id == 2), "{picks:?}");
            assert!(picks.contains(&1) && picks.contains(&2), "{picks:?}");
        }
    }

    #[test]
    fn draws_follow_the_distribution_and_the_seed() {
        let logits = [0.0f32, (3.0f32).ln()]; // p = 0.25, 0.75
        let mut chain = SamplerChain::new(vec![], 42);
        let n = 4000;
        let ones = (0..n).filter(|_| chain.sample(&logits, &[]) == 1).count();
        assert!((ones as f64 / n as f64 - 0.75).abs() < 0.03, "{ones}");
        let draw = |seed| {
            let mut chain = SamplerChain::new(vec![], seed);
            (0..64)
                .map(|_| chain.sample(&[0.0; 8], &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }
}
