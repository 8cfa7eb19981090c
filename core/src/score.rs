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
    /// A character the last generation cut off (not in the transcript) is
    /// not read. Scoring changes neither the transcript nor what later
    /// generations read: the next one continues from the same window with
    /// the same cached tokens as without the score (up to float rounding).
    /// When the text fits in the conversation's window and the cache holds
    /// only the conversation's tokens, the cache is reused: the text, the
    /// conversation's last token and those not cached yet are computed.
    /// Otherwise the window is read in a scratch cache; when the text does not
    /// fit, it is read after the end of the conversation that fills the last
    /// three quarters of the context window (all but the text's tokens when
    /// the text is longer). A text of `context_length` tokens or more is
    /// `InvalidInput`; an empty text gives no tokens. No cancel stops a score.
    pub fn score(&mut self, text: &str) -> Result<Vec<TokenLogprob>> {
        let model = self.model().clone();
        let ids = model.tokenizer().encode(text)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        check_scorable(ids.len(), model.config().context_length)?;
        let opens_with_eos = self.transcript().is_empty() || self.opens_with_eos();
        let mut context = self.conversation_tokens(self.transcript(), opens_with_eos)?;
        let conversation = context.len();
        context.extend_from_slice(&ids);
        let recompute_from = conversation - 1;
        let (start, _) = self.choose_window(&context, ids.len() + 1, recompute_from);
        let cached = self.tokens().len();
        let in_place = start == self.window_start()
            && self.cached_agreeing(&context[start..conversation]) == cached;
        if !in_place {
            // Moving the session's window, or replacing cached tokens the
            // transcript does not hold (a cut character's, generated tokens
            // that re-encode otherwise), would change the next generation's
            // decisions: read the window in a scratch session instead.
            return Session::new(model)?.score_after(&context[start..conversation], &ids);
        }
        let reused = self.place_window(&context, start, recompute_from);
        let scored = self.score_after(&context[start + reused..conversation], &ids);
        // The cached tokens as they were: the next generation decides as it would have.
        self.truncate(cached);
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

/// Fails with `InvalidInput` unless a text of `n_tokens` tokens and the one
/// token read before it fit a context window of `context_length`.
pub fn check_scorable(n_tokens: usize, context_length: usize) -> Result<()> {
    if n_tokens < context_length {
        return Ok(());
    }
    Err(Error::InvalidInput(format!(
        "the text's {n_tokens} tokens and one token before them do not fit the \
         context window ({context_length})"
    )))
}

/// `token` with its log-probability under the logits `row`.
fn score(row: &[f32], token: u32) -> TokenLogprob {
    TokenLogprob {
        token,
        logprob: log_softmax_at(row, token as usize) as f32,
    }
}
