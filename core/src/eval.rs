//! Perplexity of a text, with a fixed windowing so results are comparable,
//! and how closely one model follows another (e.g. int8 against f32): their
//! divergence on a text and their greedy agreement.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::session::{check_token_ids, Logits, Session};

/// Result of scoring a token sequence.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Perplexity {
    /// `exp(mean negative log-likelihood)`.
    pub perplexity: f64,
    /// Mean negative log-likelihood in nats.
    pub mean_nll: f64,
    /// Number of scored target tokens.
    pub n_targets: usize,
}

impl Perplexity {
    /// From the summed negative log-likelihood of `n_targets` tokens.
    fn from_nll(nll: f64, n_targets: usize) -> Self {
        let mean_nll = nll / n_targets as f64;
        Perplexity {
            perplexity: mean_nll.exp(),
            mean_nll,
            n_targets,
        }
    }
}

/// Scores `ids` in consecutive non-overlapping windows of `ctx` input tokens:
/// window `k` reads `ids[k·ctx .. k·ctx+ctx]` and predicts `ids[k·ctx+1 .. k·ctx+ctx+1]`
/// (the last window may be shorter). `progress` gets (targets done, total).
pub fn perplexity(
    session: &mut Session,
    ids: &[u32],
    ctx: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<Perplexity> {
    let vocab = check_scoring(session, ids, ctx)?;
    let total = ids.len() - 1;
    let mut nll = 0.0f64;
    for (start, end) in windows(total, ctx) {
        session.reset();
        let logits = session.feed(&ids[start..end], Logits::All)?;
        for (row, &target) in logits.chunks_exact(vocab).zip(&ids[start + 1..=end]) {
            nll -= log_softmax_at(row, target as usize);
        }
        progress(end, total);
    }
    Ok(Perplexity::from_nll(nll, total))
}

/// How a candidate model's next-token distributions on a text differ from a
/// reference model's, both read in [`perplexity`]'s windows.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Divergence {
    /// The reference model's perplexity of the text.
    pub reference: Perplexity,
    /// The candidate model's perplexity of the text.
    pub candidate: Perplexity,
    /// Mean over positions of KL(reference ‖ candidate) in nats: what the
    /// candidate's distribution loses of the reference's. Unlike perplexity,
    /// which errors in both directions can leave unchanged, it only grows
    /// (llama.cpp measures quantization with it).
    pub mean_kl: f64,
    /// The 99th percentile of KL over positions (nearest rank): the few
    /// positions where the candidate strays most, which a mean can hide.
    pub p99_kl: f64,
    /// The largest KL at any position.
    pub max_kl: f64,
    /// Fraction of positions where both models rank the same token first.
    pub top1: f64,
}

/// Scores `ids` with both models in [`perplexity`]'s windows and compares
/// their distributions at every position. `progress` gets (targets done, total).
pub fn divergence(
    reference: &mut Session,
    candidate: &mut Session,
    ids: &[u32],
    ctx: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<Divergence> {
    let vocab = check_scoring(reference, ids, ctx)?;
    if check_scoring(candidate, ids, ctx)? != vocab {
        return Err(Error::InvalidInput(
            "the two models' vocabularies differ".into(),
        ));
    }
    let total = ids.len() - 1;
    let (mut nll_reference, mut nll_candidate, mut same_top1) = (0.0, 0.0, 0);
    let mut kl = Vec::with_capacity(total);
    let mut p = Vec::with_capacity(vocab);
    for (start, end) in windows(total, ctx) {
        reference.reset();
        candidate.reset();
        let logits_r = reference.feed(&ids[start..end], Logits::All)?;
        let logits_c = candidate.feed(&ids[start..end], Logits::All)?;
        let rows = logits_r
            .chunks_exact(vocab)
            .zip(logits_c.chunks_exact(vocab));
        for ((r, c), &target) in rows.zip(&ids[start + 1..=end]) {
            let (norm_r, norm_c) = (softmax(r, &mut p), log_normalizer(c));
            let target = target as usize;
            nll_reference -= r[target] as f64 - norm_r;
            nll_candidate -= c[target] as f64 - norm_c;
            kl.push(
                r.iter()
                    .zip(c)
                    .zip(&p)
                    .map(|((&a, &b), &p)| p * ((a as f64 - norm_r) - (b as f64 - norm_c)))
                    .sum::<f64>(),
            );
            same_top1 += usize::from(argmax(r) == argmax(c));
        }
        progress(end, total);
    }
    Ok(Divergence {
        reference: Perplexity::from_nll(nll_reference, total),
        candidate: Perplexity::from_nll(nll_candidate, total),
        mean_kl: kl.iter().sum::<f64>() / total as f64,
        p99_kl: nearest_rank(&mut kl, 0.99),
        max_kl: nearest_rank(&mut kl, 1.0),
        top1: same_top1 as f64 / total as f64,
    })
}

/// The `q` quantile of non-empty `values` by nearest rank: the smallest
/// value with at least `q` of them at or below it. Sorts `values`.
fn nearest_rank(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// Checks that `ids` and `ctx` can be scored by `session`'s model; returns
/// its vocabulary size.
fn check_scoring(session: &Session, ids: &[u32], ctx: usize) -> Result<usize> {
    let config = session.model().config();
    let max = config.context_length;
    if ctx == 0 || ctx > max {
        return Err(Error::InvalidOption {
            name: "ctx",
            reason: format!("{ctx} is not in 1..={max}"),
        });
    }
    if ids.len() < 2 {
        return Err(Error::InvalidInput(
            "need at least two tokens to score".into(),
        ));
    }
    // Checked here as well as by `feed`: the last id is only ever a target.
    check_token_ids(ids, config.vocab_size)?;
    Ok(config.vocab_size)
}

/// The scoring windows over `total` targets: input ranges `start..end` of
/// at most `ctx` tokens, predicting `ids[start + 1..=end]`.
fn windows(total: usize, ctx: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..total)
        .step_by(ctx)
        .map(move |start| (start, (start + ctx).min(total)))
}

/// How closely a model `b` follows model `a`'s greedy continuations.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Agreement {
    /// Prompts compared.
    pub prompts: usize,
    /// Tokens continued per prompt.
    pub tokens: usize,
    /// Prompts whose whole greedy continuation is the same from both models.
    pub identical: usize,
    /// Mean over prompts of the tokens before the first difference: the
    /// length of the continuation both models, free-running, share.
    pub mean_shared_prefix: f64,
    /// Fraction of positions where `b`'s most likely token is `a`'s, with
    /// both reading `a`'s continuation (teacher-forced top-1 agreement).
    pub top1: f64,
}

/// Continues each prompt greedily with `a` for `tokens` tokens while `b`
/// reads the same tokens, and compares their most likely next tokens.
pub fn greedy_agreement(
    a: &Model,
    b: &Model,
    prompts: &[Vec<u32>],
    tokens: usize,
) -> Result<Agreement> {
    if prompts.is_empty() || prompts.iter().any(Vec::is_empty) || tokens == 0 {
        return Err(Error::InvalidInput(
            "need at least one non-empty prompt and one token".into(),
        ));
    }
    // Every prompt and its continuation (the last token is never fed) must
    // fit both windows: checked before any work.
    let ctx = a.config().context_length.min(b.config().context_length);
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if longest + tokens - 1 > ctx {
        return Err(Error::InvalidInput(format!(
            "a {longest}-token prompt and {tokens} tokens do not fit the context ({ctx})"
        )));
    }
    let (mut identical, mut shared, mut agreeing) = (0, 0, 0);
    for prompt in prompts {
        let (mut sa, mut sb) = (a.session()?, b.session()?);
        let (mut la, mut lb) = (
            sa.feed(prompt, Logits::Last)?,
            sb.feed(prompt, Logits::Last)?,
        );
        let mut first_difference = None;
        for i in 0..tokens {
            let (ta, tb) = (argmax(&la), argmax(&lb));
            if ta == tb {
                agreeing += 1;
            } else if first_difference.is_none() {
                first_difference = Some(i);
            }
            if i + 1 < tokens {
                la = sa.feed(&[ta], Logits::Last)?;
                lb = sb.feed(&[ta], Logits::Last)?;
            }
        }
        shared += first_difference.unwrap_or(tokens);
        identical += usize::from(first_difference.is_none());
    }
    Ok(Agreement {
        prompts: prompts.len(),
        tokens,
        identical,
        mean_shared_prefix: shared as f64 / prompts.len() as f64,
        top1: agreeing as f64 / (prompts.len() * tokens) as f64,
    })
}

/// Index of the largest logit (the first of equals, as greedy sampling picks).
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// `log softmax(row)[index]`, computed in f64.
pub fn log_softmax_at(row: &[f32], index: usize) -> f64 {
    row[index] as f64 - log_normalizer(row)
}

/// `ln Σ exp(row)` in f64, what log softmax subtracts from every logit.
fn log_normalizer(row: &[f32]) -> f64 {
    let max = row_max(row);
    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    max + sum.ln()
}

/// Puts `softmax(row)` in f64 into `probabilities` and returns
/// [`log_normalizer`]`(row)`, with one `exp` per logit for both.
fn softmax(row: &[f32], probabilities: &mut Vec<f64>) -> f64 {
    let max = row_max(row);
    probabilities.clear();
    probabilities.extend(row.iter().map(|&v| (v as f64 - max).exp()));
    let sum: f64 = probabilities.iter().sum();
    probabilities.iter_mut().for_each(|p| *p /= sum);
    max + sum.ln()
}

/// The largest value of `row`, in f64.
fn row_max(row: &[f32]) -> f64 {
    row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LoadOptions;

    #[test]
    fn scoring_rejects_a_final_target_outside_the_vocabulary() {
        let model = Model::load(crate::TINY_MODEL, &LoadOptions::default()).unwrap();
        let vocab = model.config().vocab_size as u32;
        let (mut a, mut b) = (model.session().unwrap(), model.session().unwrap());
        let ids = [1, 2, vocab];
        let invalid = |r: Result<()>| matches!(r, Err(Error::InvalidInput(m)) if m.contains("outside the vocabulary"));
        assert!(invalid(perplexity(&mut a, &ids, 8, |_, _| {}).map(drop)));
        assert!(invalid(
            divergence(&mut a, &mut b, &ids, 8, |_, _| {}).map(drop)
        ));
    }

    #[test]
    fn agreement_checks_the_context_before_any_work() {
        let options = LoadOptions {
            context_length: Some(8),
            ..LoadOptions::default()
        };
        let model = Model::load(crate::TINY_MODEL, &options).unwrap();
        let prompts = [vec![1, 2, 3], vec![4, 5]];
        assert!(greedy_agreement(&model, &model, &prompts, 6).is_ok());
        let err = greedy_agreement(&model, &model, &prompts, 7).unwrap_err();
        assert!(
            err.to_string().contains("do not fit the context (8)"),
            "{err}"
        );
    }

    #[test]
    fn nearest_rank_picks_the_smallest_value_covering_the_quantile() {
        let mut values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(nearest_rank(&mut values, 0.99), 99.0);
        assert_eq!(nearest_rank(&mut values, 1.0), 100.0);
        assert_eq!(nearest_rank(&mut values, 0.5), 50.0);
        let mut five = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(nearest_rank(&mut five, 0.5), 3.0);
        assert_eq!(nearest_rank(&mut five, 0.99), 5.0);
        assert_eq!(nearest_rank(&mut five, 0.0), 1.0);
    }

    #[test]
    fn softmax_gives_the_probabilities_log_softmax_gives_the_logs_of() {
        let row = [2.5f32, -1.0, 0.0, 7.25, -30.0, 7.25];
        let mut p = vec![9.0; 2];
        let norm = softmax(&row, &mut p);
        assert_eq!(norm, log_normalizer(&row));
        assert_eq!(p.len(), row.len());
        for (i, &p) in p.iter().enumerate() {
            let want = log_softmax_at(&row, i).exp();
            assert!(
                (p - want).abs() <= 1e-15 * want.max(1e-300),
                "{i}: {p} vs {want}"
            );
        }
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-15);
    }
}
