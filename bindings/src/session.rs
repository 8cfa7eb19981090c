//! [`Session`]: one conversation, streaming generation to a [`TokenSink`].

use crate::error::{ChayaError, TokenSinkError};
use crate::model::to_u32;
use crate::options::GenerateOptions;
use crate::teardown::{mark_thread, SafeDrop};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

/// Receives generated text as it is produced, implemented in the foreign language.
#[uniffi::export(foreign)]
pub trait TokenSink: Send + Sync {
    /// Called with each new piece of text (whole UTF-8 characters, never empty).
    /// Returns `true` to go on, `false` to stop (stop reason `CALLBACK`, or
    /// `STOP_STRING` when the same piece completed a stop string). If it
    /// throws, generation stops as if it returned `false` (the text it received
    /// stays in the transcript) and `generate` fails with `ChayaError.Callback`.
    fn on_token(&self, text: String) -> Result<bool, TokenSinkError>;
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum StopReason {
    /// `max_tokens` were generated.
    Length,
    /// The model produced the end-of-text token.
    EndOfText,
    /// A stop string appeared.
    StopString,
    /// The token sink returned `false` (unless the same piece completed a stop
    /// string: then `StopString`).
    Callback,
    /// `Session.cancel` was called, or the call's `CancelToken` was cancelled.
    Cancelled,
    /// The context window is full and `context_shift` is off.
    Context,
}

impl From<chaya::StopReason> for StopReason {
    fn from(reason: chaya::StopReason) -> Self {
        match reason {
            chaya::StopReason::Length => StopReason::Length,
            chaya::StopReason::EndOfText => StopReason::EndOfText,
            chaya::StopReason::StopString => StopReason::StopString,
            chaya::StopReason::Callback => StopReason::Callback,
            chaya::StopReason::Cancelled => StopReason::Cancelled,
            chaya::StopReason::Context => StopReason::Context,
        }
    }
}

/// What a generation did and how fast.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct GenerateSummary {
    /// All emitted text (the concatenation of the pieces given to the sink).
    pub text: String,
    /// Generated token ids (including a final end-of-text token, if any).
    pub tokens: Vec<u32>,
    /// Tokens of the new prompt text.
    pub prompt_tokens: u32,
    /// Context tokens whose cache entries were reused from the previous call.
    pub reused_tokens: u32,
    /// Context tokens computed by the prompt prefill.
    pub prefill_tokens: u32,
    /// Times the context (the prompt, or the conversation as it grew)
    /// overflowed and the window was re-prefilled with its last three quarters.
    pub context_shifts: u32,
    /// Why generation stopped.
    pub stop_reason: StopReason,
    /// Milliseconds from the call to the first sampled token (0 when none was).
    pub time_to_first_token_ms: f64,
    /// Prompt prefill speed in tokens per second (the forward passes only).
    pub prefill_tokens_per_second: f64,
    /// Speed of the generated tokens after the first.
    pub decode_tokens_per_second: f64,
}

impl From<chaya::GenerateSummary> for GenerateSummary {
    fn from(s: chaya::GenerateSummary) -> Self {
        GenerateSummary {
            text: s.text,
            tokens: s.tokens,
            prompt_tokens: to_u32(s.prompt_tokens),
            reused_tokens: to_u32(s.reused_tokens),
            prefill_tokens: to_u32(s.prefill_tokens),
            context_shifts: to_u32(s.context_shifts),
            stop_reason: s.stop_reason.into(),
            time_to_first_token_ms: s.time_to_first_token.as_secs_f64() * 1000.0,
            prefill_tokens_per_second: s.prefill_tokens_per_second,
            decode_tokens_per_second: s.decode_tokens_per_second,
        }
    }
}

/// One token of text scored by `Session.score`.
#[derive(Clone, Copy, Debug, PartialEq, uniffi::Record)]
pub struct TokenLogprob {
    /// The token's id.
    pub token: u32,
    /// Natural log of the token's probability given the conversation and the
    /// text's tokens before it (≤ 0).
    pub logprob: f32,
}

impl From<chaya::TokenLogprob> for TokenLogprob {
    fn from(s: chaya::TokenLogprob) -> Self {
        TokenLogprob {
            token: s.token,
            logprob: s.logprob,
        }
    }
}

/// Cancels one `Session.generate` call it is passed to, from any thread: once
/// cancelled it stays cancelled, so it also stops a call that has not started
/// yet (before any computation) and never reaches another call.
#[derive(Debug, Default, uniffi::Object)]
pub struct CancelToken(chaya::CancelToken);

#[uniffi::export]
impl CancelToken {
    /// A token not cancelled yet.
    #[uniffi::constructor]
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the call this token is passed to within one forward pass, or
    /// before it starts.
    pub fn cancel(&self) {
        self.0.cancel();
    }

    /// Whether `cancel` was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// One conversation over a `Model`: its context (KV cache) carries over
/// from one `generate` to the next until `reset`.
///
/// One call runs at a time: `generate`, `score`, `reset` or `transcript` while another
/// of them runs (a generation, say, also from inside its sink) fails with
/// `ChayaError.Busy`. `cancel` works from any thread at any time.
#[derive(Debug, uniffi::Object)]
pub struct Session {
    inner: Mutex<SafeDrop<chaya::Session>>,
    /// Outside the mutex, so `cancel` never waits for a running generation.
    cancel: chaya::CancelHandle,
}

impl Session {
    pub(crate) fn new(session: chaya::Session) -> Session {
        Session {
            cancel: session.cancel_handle(),
            inner: Mutex::new(SafeDrop::new(session)),
        }
    }

    /// The core session, or `Busy` when a call holds it.
    fn lock(&self, call: &str) -> Result<MutexGuard<'_, SafeDrop<chaya::Session>>, ChayaError> {
        match self.inner.try_lock() {
            Ok(guard) => Ok(guard),
            Err(TryLockError::WouldBlock) => Err(ChayaError::Busy {
                message: format!("cannot {call}: another call is using the session"),
            }),
            // A panic in core left the context in an unknown state: start over.
            Err(TryLockError::Poisoned(poisoned)) => {
                self.inner.clear_poison();
                let mut guard = poisoned.into_inner();
                guard.reset();
                Ok(guard)
            }
        }
    }
}

#[uniffi::export]
impl Session {
    /// Appends `prompt` to the conversation and generates a continuation,
    /// streaming each new piece of text to `sink`. Blocks until generation
    /// stops; call it off the UI thread.
    ///
    /// A character cut in the middle by `max_tokens`, a cancel or a full
    /// window is held back (neither streamed nor in the transcript) and
    /// finished by the next call if its prompt is empty (after a full window,
    /// a call with `context_shift` on); a non-empty prompt drops it. A call
    /// that fails in the library leaves the transcript as it was, so it can be
    /// retried.
    ///
    /// `cancel`, made before the call, stops this call only, also when it is
    /// cancelled before the call has started (then nothing is computed and the
    /// prompt joins the transcript): what a caller that queues generations
    /// needs, where `Session.cancel` could come too early and do nothing.
    #[uniffi::method(default(cancel = None))]
    pub fn generate(
        &self,
        prompt: String,
        options: GenerateOptions,
        sink: Arc<dyn TokenSink>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<GenerateSummary, ChayaError> {
        let mut session = self.lock("generate")?;
        mark_thread();
        let mut sink_error = None;
        let cancel = cancel.map(|token| token.0.clone()).unwrap_or_default();
        let summary = session.generate_with_cancel(&prompt, &options.into(), &cancel, |text| {
            match sink.on_token(text.to_owned()) {
                Ok(go_on) => go_on,
                Err(error) => {
                    sink_error = Some(error);
                    false
                }
            }
        })?;
        match sink_error {
            Some(error) => Err(error.into()),
            None => Ok(summary.into()),
        }
    }

    /// Stops the running generation within one forward pass, a decode step or
    /// a prefill chunk (256 prompt tokens unless `LoadOptions.prefill_chunk`
    /// says otherwise; stop reason `CANCELLED`); does nothing when none runs.
    /// Callable from any thread.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Forgets the conversation: the next `generate` starts from an empty context.
    pub fn reset(&self) -> Result<(), ChayaError> {
        self.lock("reset")?.reset();
        Ok(())
    }

    /// The tokens of `text` (encoded on its own) with their log-probabilities
    /// as a continuation of the conversation (of one end-of-text token when
    /// it is empty): sum them to rank candidate continuations. Neither the
    /// conversation nor what later generations read changes; the
    /// conversation's cache is reused when the text fits in its window. A
    /// text reaching the context length fails with `InvalidInput`, an empty
    /// one gives an empty list; `cancel` does not stop a score. Blocks; call
    /// it off the UI thread.
    pub fn score(&self, text: String) -> Result<Vec<TokenLogprob>, ChayaError> {
        let mut session = self.lock("score")?;
        mark_thread();
        let scores = session.score(&text)?;
        Ok(scores.into_iter().map(Into::into).collect())
    }

    /// The conversation so far: prompts and generated text since the last
    /// reset, without a character held back unfinished.
    pub fn transcript(&self) -> Result<String, ChayaError> {
        Ok(self.lock("read the transcript")?.transcript().to_owned())
    }
}
