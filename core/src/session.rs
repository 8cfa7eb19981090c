//! `Session`: one conversation's KV cache over a shared [`Model`].

use crate::error::{Error, Result};
use crate::generate::CancelHandle;
use crate::model::Model;
use tract_core::internal::*;

/// Most tokens one forward pass computes unless
/// [`LoadOptions::prefill_chunk`](crate::LoadOptions::prefill_chunk) says
/// otherwise: longer inputs are fed in chunks.
///
/// A pass's activations grow with its token count (SwiGLU's alone is 2.6 MB
/// for 256 tokens), so chunks bound a long prompt's memory, as llama.cpp's
/// `n_ubatch` and MLC's `prefill_chunk_size` do; 256 keeps whole the
/// 256-token prefill measured against ONNX Runtime. With every pass on one
/// thread ([`ComputePool::run`](crate::parallel::ComputePool::run)), a
/// 481-token prompt peaked at 109-112 MB resident in passes of 256 tokens
/// against 112-119 MB in one pass (the 2-core VM measured, glibc;
/// docs/performance.md), at the same speed.
pub const DEFAULT_PREFILL_CHUNK: usize = 256;

/// Which positions to compute logits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position (generation).
    Last,
    /// Every fed position (scoring text).
    All,
}

/// A sequence of tokens held in a KV cache, extended a few tokens at a time.
///
/// Position `i` of the cache holds token `tokens()[i]`; feeding appends at the
/// end, [`Session::truncate`] rewinds without recomputing anything before the cut.
#[derive(Debug)]
pub struct Session {
    model: Model,
    state: TypedSimpleState,
    /// Tokens in the cache, position 0 first.
    tokens: Vec<u32>,
    /// Index in the conversation's tokens of the token at cache position 0
    /// (non-zero once the context overflowed).
    window_start: usize,
    /// Prompts and generated text since the last reset.
    transcript: String,
    /// The first bytes of a character the last generation ended in the
    /// middle of (not in the transcript): a continuation with an empty
    /// prompt finishes it.
    unfinished: Vec<u8>,
    /// Whether the conversation began with an empty prompt, which the model
    /// reads as one end-of-text token (kept in front of the later contexts).
    opens_with_eos: bool,
    cancel: CancelHandle,
}

/// Result of [`Session::sync`].
pub(crate) struct SyncStep {
    /// Logits of the last context token.
    pub logits: Vec<f32>,
    /// Cached positions kept.
    pub reused: usize,
    /// Tokens computed (after a cancel, possibly fewer than the window's new ones).
    pub fed: usize,
    /// Whether the context overflowed and the window moved.
    pub shifted: bool,
}

/// Rejects an id outside a vocabulary of `vocab_size` tokens.
pub(crate) fn check_token_ids(ids: &[u32], vocab_size: usize) -> Result<()> {
    match ids.iter().find(|&&id| id as usize >= vocab_size) {
        Some(bad) => Err(Error::InvalidInput(format!(
            "token id {bad} is outside the vocabulary ({vocab_size})"
        ))),
        None => Ok(()),
    }
}

impl Session {
    /// An empty session on `model`.
    pub fn new(model: Model) -> Result<Session> {
        let state = model.body().spawn()?;
        Ok(Session {
            model,
            state,
            tokens: Vec::new(),
            window_start: 0,
            transcript: String::new(),
            unfinished: Vec::new(),
            opens_with_eos: false,
            cancel: CancelHandle::default(),
        })
    }

    /// The model this session runs.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Tokens currently in the cache, position 0 first.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Forgets every cached token after the first `len`.
    pub fn truncate(&mut self, len: usize) {
        self.tokens.truncate(len);
    }

    /// Empties the cache and forgets the conversation.
    pub fn reset(&mut self) {
        self.tokens.clear();
        self.window_start = 0;
        self.transcript.clear();
        self.unfinished.clear();
        self.opens_with_eos = false;
    }

    /// A handle that cancels this session's generation from any thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// The conversation so far: prompts and generated text since the last
    /// reset (a character a generation stopped in the middle of is not in it
    /// until a continuation with an empty prompt finishes it).
    pub fn transcript(&self) -> &str {
        &self.transcript
    }

    pub(crate) fn set_transcript(&mut self, text: String) {
        self.transcript = text;
    }

    pub(crate) fn unfinished(&self) -> &[u8] {
        &self.unfinished
    }

    pub(crate) fn set_unfinished(&mut self, bytes: &[u8]) {
        self.unfinished = bytes.to_vec();
    }

    pub(crate) fn opens_with_eos(&self) -> bool {
        self.opens_with_eos
    }

    pub(crate) fn set_opens_with_eos(&mut self, opens_with_eos: bool) {
        self.opens_with_eos = opens_with_eos;
    }

    pub(crate) fn truncate_transcript(&mut self, len: usize) {
        self.transcript.truncate(len);
    }

    pub(crate) fn append_transcript(&mut self, text: &str) {
        self.transcript.push_str(text);
    }

    /// Forgets the cached tokens after the first that disagree with the
    /// window of `context`: after text generated and fed was dropped (a stop
    /// string), the cache then holds only what the conversation re-encodes to.
    pub(crate) fn keep_agreeing(&mut self, context: &[u32]) {
        let window = context.get(self.window_start..).unwrap_or_default();
        self.tokens.truncate(self.cached_agreeing(window));
    }

    /// How many cached tokens, from position 0, agree with `window`.
    pub(crate) fn cached_agreeing(&self, window: &[u32]) -> usize {
        self.tokens
            .iter()
            .zip(window)
            .take_while(|(a, b)| a == b)
            .count()
    }

    /// Whether `context` fits the window without a shift.
    pub(crate) fn fits(&self, context: &[u32]) -> bool {
        context.len() - self.kept_window_start(context) <= self.model.config().context_length
    }

    /// Where the window of `context` starts if it does not shift: at 0 when
    /// all of it fits (re-encoding a shifted conversation can merge tokens
    /// until it does), else where it started while the cache still agrees
    /// with `context` there (all but its last token, which the next text can
    /// merge into), else at 0 as in a fresh session: re-encoding can move
    /// every later token, leaving the old start inside other text.
    fn kept_window_start(&self, context: &[u32]) -> usize {
        let start = self.window_start;
        if context.len() <= self.model.config().context_length || start >= context.len() {
            return 0;
        }
        let agreeing = self.cached_agreeing(&context[start..]);
        if agreeing + 1 >= self.tokens.len() {
            start
        } else {
            0
        }
    }

    /// Makes the cache hold the most recent window of `context` (all of it when
    /// it fits) and returns the logits of its last token; once `cancelled`
    /// says so (it is asked before each pass of [`Model::prefill_chunk`]
    /// tokens), stops there (no logits when it stops before the first pass).
    ///
    /// Cached positions that agree with the window are kept, so only new tokens
    /// are computed. CHAYA's keys cannot be shifted to new positions (spec), so
    /// when the window would outgrow the context length the session keeps the
    /// last three quarters of the context and re-prefills them from position 0.
    pub(crate) fn sync(
        &mut self,
        context: &[u32],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<SyncStep> {
        let recompute_from = context.len() - 1;
        let (start, shifted) = self.choose_window(context, 1, recompute_from);
        let reused = self.place_window(context, start, recompute_from);
        let window = &context[start..];
        // A pass per chunk here, so a cancel ends a long prompt's prefill
        // after the pass it arrives in; the cache keeps what was computed.
        let (mut logits, mut fed) = (Vec::new(), 0);
        for chunk in window[reused..].chunks(self.model.prefill_chunk()) {
            if cancelled() {
                break;
            }
            logits = self.feed(chunk, Logits::Last)?;
            fed += chunk.len();
        }
        Ok(SyncStep {
            logits,
            reused,
            fed,
            shifted,
        })
    }

    /// The window of `context` the cache is to hold: its start in `context`
    /// and whether the context overflowed. The window keeps the cache's start
    /// ([`Session::kept_window_start`]) if that leaves `context`'s position
    /// `recompute_from` (whose logits the caller needs) in it and the window
    /// fits; else a shifted window holds the last three quarters of the
    /// context, and at least `min_window` tokens.
    pub(crate) fn choose_window(
        &self,
        context: &[u32],
        min_window: usize,
        recompute_from: usize,
    ) -> (usize, bool) {
        debug_assert!(
            (1..=context.len()).contains(&min_window)
                && (context.len() - min_window..context.len()).contains(&recompute_from)
        );
        let ctx = self.model.config().context_length;
        let start = Some(self.kept_window_start(context))
            .filter(|&start| start <= recompute_from)
            .unwrap_or(0);
        if context.len() - start <= ctx {
            return (start, false);
        }
        let start = context.len() - (ctx - ctx / 4).max(min_window);
        log::info!(
            "context overflow: re-prefilling the last {} tokens",
            context.len() - start
        );
        (start, true)
    }

    /// Moves the cache to the window of `context` beginning at `start`,
    /// keeping the cached tokens that agree with it, at most those before
    /// `context`'s position `recompute_from`; returns how many it kept.
    pub(crate) fn place_window(
        &mut self,
        context: &[u32],
        start: usize,
        recompute_from: usize,
    ) -> usize {
        let shared = if start == self.window_start {
            self.cached_agreeing(&context[start..])
        } else {
            0
        };
        let reused = shared.min(recompute_from - start);
        self.tokens.truncate(reused);
        self.window_start = start;
        reused
    }

    /// Where the cache's window begins in the conversation's tokens.
    pub(crate) fn window_start(&self) -> usize {
        self.window_start
    }

    /// Appends `ids` to the cache and returns the logits of the last position
    /// (`[vocab]`) or of every fed position (`[ids.len() × vocab]`, row-major).
    ///
    /// Computed [`Model::prefill_chunk`] tokens per forward pass; on an error the
    /// cache is left as it was.
    pub fn feed(&mut self, ids: &[u32], logits: Logits) -> Result<Vec<f32>> {
        let config = self.model.config();
        if ids.is_empty() {
            return Err(Error::InvalidInput("no tokens to feed".into()));
        }
        check_token_ids(ids, config.vocab_size)?;
        let pos = self.tokens.len();
        if pos + ids.len() > config.context_length {
            return Err(Error::InvalidInput(format!(
                "{} tokens do not fit after {pos} cached ones in a context of {}",
                ids.len(),
                config.context_length
            )));
        }
        let fed = self.feed_chunks(ids, logits);
        if fed.is_err() {
            self.tokens.truncate(pos);
        }
        fed
    }

    /// [`Session::feed`] of checked `ids`, [`Model::prefill_chunk`] tokens per pass.
    fn feed_chunks(&mut self, ids: &[u32], logits: Logits) -> Result<Vec<f32>> {
        let chunks = ids.chunks(self.model.prefill_chunk());
        let last = chunks.len() - 1;
        let rows = match logits {
            Logits::All => ids.len(),
            Logits::Last => 1,
        };
        let len = rows.saturating_mul(self.model.config().vocab_size);
        let mut out = Vec::new();
        out.try_reserve_exact(len).map_err(|_| {
            Error::InvalidInput(format!(
                "the logits of {rows} positions ({len} values) do not fit in memory"
            ))
        })?;
        for (i, chunk) in chunks.enumerate() {
            let hidden = self.run_body(chunk)?;
            match logits {
                Logits::All => self.run_head(hidden, &mut out)?,
                Logits::Last if i == last => {
                    let hidden = hidden.slice(0, chunk.len() - 1, chunk.len())?;
                    self.run_head(hidden.into_tvalue(), &mut out)?;
                }
                Logits::Last => {}
            }
        }
        Ok(out)
    }

    /// Appends `ids` to the cache and returns their final hidden states
    /// (`[ids.len() × e_dim]`).
    fn run_body(&mut self, ids: &[u32]) -> Result<TValue> {
        let pos = tensor0(self.tokens.len() as i64);
        let input = tensor1(&ids.iter().map(|&id| id as i64).collect::<Vec<_>>());
        let (model, state) = (&self.model, &mut self.state);
        let hidden = model
            .pool()
            .run(|| state.run(tvec![input.into_tvalue(), pos.into_tvalue()]));
        // On failure the cache may hold partial rows past the cached tokens;
        // they are unreachable because `tokens` was not extended.
        let hidden = hidden?.remove(0);
        self.tokens.extend_from_slice(ids);
        Ok(hidden)
    }

    /// Appends to `out` the logits (`[N × vocab]`, row-major) of `N` final
    /// hidden states.
    fn run_head(&self, hidden: TValue, out: &mut Vec<f32>) -> Result<()> {
        let head = self.model.head();
        let logits = self.model.pool().run(|| head.run(tvec![hidden]))?.remove(0);
        out.extend_from_slice(logits.try_as_plain_ram()?.as_slice::<f32>()?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LoadOptions;

    #[test]
    fn a_cancel_stops_a_prefill_between_chunks_and_the_next_call_resumes() {
        let chunk = 100;
        let options = LoadOptions {
            prefill_chunk: Some(chunk),
            ..LoadOptions::default()
        };
        let model = Model::load(crate::TINY_MODEL, &options).unwrap();
        let mut session = model.session().unwrap();
        let context: Vec<u32> = (0..2 * chunk as u32 + 40).collect();
        let never = || false;

        let stopped = session.sync(&context, &|| true).unwrap();
        assert_eq!((stopped.reused, stopped.fed), (0, 0));
        assert!(stopped.logits.is_empty());
        assert!(session.tokens().is_empty());

        // Cancelled during the first pass: the second does not run.
        let asked = std::cell::Cell::new(0);
        let after_one_pass = || {
            asked.set(asked.get() + 1);
            asked.get() > 1
        };
        let stopped = session.sync(&context, &after_one_pass).unwrap();
        assert_eq!((stopped.reused, stopped.fed), (0, chunk));
        assert_eq!(session.tokens(), &context[..chunk]);

        let resumed = session.sync(&context, &never).unwrap();
        assert_eq!((resumed.reused, resumed.fed), (chunk, chunk + 40));
        let whole = model.session().unwrap().sync(&context, &never).unwrap();
        assert_eq!(whole.fed, context.len());
        let worst = resumed
            .logits
            .iter()
            .zip(&whole.logits)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{worst}");
    }
}
