//! Perplexity of a text, with a fixed windowing so results are comparable.

use crate::error::{Error, Result};
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

/// `log softmax(row)[index]`, computed in f64.
pub fn log_softmax_at(row: &[f32], index: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    row[index] as f64 - max - sum.ln()
}
