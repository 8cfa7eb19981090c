//! Perplexity of a text, with a fixed windowing so results are comparable,
//! and greedy agreement between two models (e.g. int8 against f32).

use crate::error::{Error, Result};
use crate::model::Model;
use crate::session::{Logits, Session};

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

/// Scores `ids` in consecutive non-overlapping windows of `ctx` input tokens:
/// window `k` reads `ids[k·ctx .. k·ctx+ctx]` and predicts `ids[k·ctx+1 .. k·ctx+ctx+1]`
/// (the last window may be shorter). `progress` gets (targets done, total).
pub fn perplexity(
    session: &mut Session,
    ids: &[u32],
    ctx: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<Perplexity> {
    let max = session.model().config().context_length;
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
    let vocab = session.model().config().vocab_size;
    let total = ids.len() - 1;
    let mut nll = 0.0f64;
    let mut done = 0;
    for start in (0..total).step_by(ctx) {
        let end = (start + ctx).min(total);
        session.reset();
        let logits = session.feed(&ids[start..end], Logits::All)?;
        for (row, &target) in logits.chunks_exact(vocab).zip(&ids[start + 1..=end]) {
            nll -= log_softmax_at(row, target as usize);
        }
        done += end - start;
        progress(done, total);
    }
    let mean_nll = nll / total as f64;
    Ok(Perplexity {
        perplexity: mean_nll.exp(),
        mean_nll,
        n_targets: total,
    })
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
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    row[index] as f64 - max - sum.ln()
}
