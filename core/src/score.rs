//! Scoring text as a continuation of a session's conversation: how likely
//! the model finds each of its tokens (to rank candidate completions, or to
//! tell how expected a user's text is).

use crate::error::{Error, Result};
use crate::eval::log_softmax_at;
use crate::session::{Logits, Session};

/// Text tokens whose logits one forward pass computes: the logits of every
/// scored position are `[tokens × vocab]` floats (12.9 MB for 64 tokens of
/// CHAYA's 50257), so a long text is scored in passes of this many.
const SCORE_PASS_TOKENS: usize = 64;

/// One token of scored text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenLogprob {
    /// The token's id.
    pub token: u32,
    /// Natural log of the token's probability given the conversation and the
    /// text's tokens before it (≤ 0).
    pub logprob: f32,
}

impl Session {
    /// The tokens of `text` (encoded on its own) with their log-probabilities
    /// as a continuation of the conversation; an empty conversation reads as
    /// one end-of-text token, as a generation with an empty prompt starts
    /// from. Sum the log-probabilities of two candidates to tell which the
    /// model finds likelier.
    ///
    /// Scoring changes neither the transcript nor what later generations
    /// read: the next one continues from the same window with the same cached
    /// tokens as without the score (up to float rounding). The conversation's
    /// cache is reused when the text fits in its window: only the text and
    /// the conversation's tokens not cached yet are computed. When it does not
    /// fit, the text is read after the end of the conversation that fills the
    /// last three quarters of the context window (all but the text's tokens
    /// when the text is longer), in a scratch cache. A text of
    /// `context_length` tokens or more is `InvalidInput`; an empty text gives
    /// no tokens. No cancel stops a score.
    pub fn score(&mut self, text: &str) -> Result<Vec<TokenLogprob>> {
        let model = self.model().clone();
        let ids = model.tokenizer().encode(text)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ctx = model.config().context_length;
        if ids.len() >= ctx {
            return Err(Error::InvalidInput(format!(
                "the text's {} tokens and one token before them do not fit the \
                 context window ({ctx})",
                ids.len()
            )));
        }
        let opens_with_eos = self.transcript().is_empty() || self.opens_with_eos();
        let mut context = self.conversation_tokens(self.transcript(), opens_with_eos)?;
        let conversation = context.len();
        context.extend_from_slice(&ids);
        let recompute_from = conversation - 1;
        let (start, _) = self.choose_window(&context, ids.len() + 1, recompute_from);
        if start != self.window_start() {
            // Moving the session's window would move the next generation's.
            return Session::new(model)?.score_after(&context[start..conversation], &ids);
        }
        let cached = self.tokens().len();
        let reused = self.place_window(&context, start, recompute_from);
        let scored = self.score_after(&context[start + reused..conversation], &ids);
        // As many cached tokens as before (or the conversation's, if fewer):
        // the next generation decides on its window as it would have.
        self.truncate(cached.min(conversation - start));
        scored
    }

    /// Feeds `conversation` (the window's tokens not cached yet, at least one)
    /// and then `ids`, returning the log-probability of each of `ids`.
    fn score_after(&mut self, conversation: &[u32], ids: &[u32]) -> Result<Vec<TokenLogprob>> {
        let vocab = self.model().config().vocab_size;
        let first = self.feed(conversation, Logits::Last)?;
        let mut scores = vec![score(&first, ids[0])];
        // Each fed text token's logits predict the next one; the last is not fed.
        let (inputs, targets) = (&ids[..ids.len() - 1], &ids[1..]);
        for (inputs, targets) in inputs
            .chunks(SCORE_PASS_TOKENS)
            .zip(targets.chunks(SCORE_PASS_TOKENS))
        {
            let rows = self.feed(inputs, Logits::All)?;
            let rows = rows.chunks_exact(vocab).zip(targets);
            scores.extend(rows.map(|(row, &target)| score(row, target)));
        }
        Ok(scores)
    }
}

/// `token` with its log-probability under the logits `row`.
fn score(row: &[f32], token: u32) -> TokenLogprob {
    TokenLogprob {
        token,
        logprob: log_softmax_at(row, token as usize) as f32,
    }
}
