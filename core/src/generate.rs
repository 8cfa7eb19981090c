//! Text generation: options, the streaming loop, and its summary.

use crate::error::{Error, Result};
use crate::sampler::{Sampler, SamplerChain};
use crate::session::Session;
use crate::stop_strings::{StopCheck, StopStrings};
use crate::utf8_stream::Utf8Stream;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Temperatures below this sample greedily: dividing logits by less can
/// overflow them to infinity, and the limit of sampling as the temperature
/// falls to 0 is greedy decoding anyway.
pub const MIN_TEMPERATURE: f32 = 1e-6;

/// How to generate. `GenerateOptions::default()` gives sensible chat/completion
/// settings; [`GenerateOptions::compat`] reproduces the original CHAYA CLI.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    /// Maximum number of new tokens (0..=1,000,000). With 0 the call only
    /// reads its prompt into the conversation and the cache (llama.cpp's
    /// `n_predict = 0`): what to do before [`Session::score`] or to restore a
    /// saved conversation ahead of its next turn.
    pub max_tokens: usize,
    /// Sampling temperature (0..=100); 0 means greedy, as does anything below
    /// [`MIN_TEMPERATURE`].
    pub temperature: f32,
    /// Keep only the k most likely tokens; 0 disables (≤ vocabulary size).
    pub top_k: usize,
    /// Nucleus sampling threshold in (0, 1]; 1 disables.
    pub top_p: f32,
    /// Minimum probability relative to the best token, in [0, 1); 0 disables.
    pub min_p: f32,
    /// Repetition penalty in (0, 100]; 1 disables.
    pub repetition_penalty: f32,
    /// Subtracted per occurrence of a token in the context (-100..=100).
    pub frequency_penalty: f32,
    /// Subtracted once for a token present in the context (-100..=100).
    pub presence_penalty: f32,
    /// The penalties look at the last `penalty_last_n` tokens of the context;
    /// 0 means every token since the last reset, as the original CLI (unlike
    /// llama.cpp's `repeat_last_n`, where 0 turns the penalties off).
    pub penalty_last_n: usize,
    /// Original CLI behaviour: its sampler order (temperature first) and its
    /// sign-blind repetition penalty.
    pub compat: bool,
    /// Seed of the random draw; `None` picks one from the clock.
    pub seed: Option<u64>,
    /// Generation stops before any of these strings; they are never emitted.
    /// At most 64, each of 1 to 1024 bytes.
    pub stop_strings: Vec<String>,
    /// Stop at the end-of-text token.
    pub stop_at_eos: bool,
    /// Added to the logits of chosen token ids (below the vocabulary size;
    /// entries for one id add up): finite biases, or `f32::NEG_INFINITY` to
    /// ban a token.
    pub logit_bias: Vec<(u32, f32)>,
    /// When the context window is full, keep going by re-prefilling its last
    /// three quarters; `false` stops with [`StopReason::Context`] instead (and
    /// a conversation that no longer fits is [`Error::InvalidInput`] before
    /// any token is generated).
    pub context_shift: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 128,
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repetition_penalty: 1.1,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            penalty_last_n: 64,
            compat: false,
            seed: None,
            stop_strings: Vec::new(),
            stop_at_eos: true,
            logit_bias: Vec::new(),
            context_shift: true,
        }
    }
}

impl GenerateOptions {
    /// The original CHAYA CLI's defaults (spec: "Reference generation behaviour").
    pub fn compat() -> Self {
        GenerateOptions {
            max_tokens: 150,
            temperature: 0.8,
            top_k: 50,
            top_p: 0.92,
            min_p: 0.0,
            repetition_penalty: 1.15,
            frequency_penalty: 0.3,
            presence_penalty: 0.5,
            penalty_last_n: 0,
            compat: true,
            ..GenerateOptions::default()
        }
    }

    /// Greedy decoding (temperature 0, no penalties).
    pub fn greedy() -> Self {
        GenerateOptions {
            temperature: 0.0,
            repetition_penalty: 1.0,
            ..GenerateOptions::default()
        }
    }

    /// Checks every value against its documented range.
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        let invalid = |name, reason: String| Err(Error::InvalidOption { name, reason });
        let within = |v: f32, lo: f32, hi: f32| v.is_finite() && v >= lo && v <= hi;
        if self.max_tokens > 1_000_000 {
            return invalid(
                "max_tokens",
                format!("{} is not in 0..=1000000", self.max_tokens),
            );
        }
        if !within(self.temperature, 0.0, 100.0) {
            return invalid(
                "temperature",
                format!("{} is not in 0..=100", self.temperature),
            );
        }
        if self.top_k > vocab_size {
            return invalid(
                "top_k",
                format!("{} exceeds the vocabulary ({vocab_size})", self.top_k),
            );
        }
        if !within(self.top_p, 0.0, 1.0) || self.top_p == 0.0 {
            return invalid("top_p", format!("{} is not in (0, 1]", self.top_p));
        }
        if !within(self.min_p, 0.0, 1.0) || self.min_p == 1.0 {
            return invalid("min_p", format!("{} is not in [0, 1)", self.min_p));
        }
        if !within(self.repetition_penalty, 0.0, 100.0) || self.repetition_penalty == 0.0 {
            return invalid(
                "repetition_penalty",
                format!("{} is not in (0, 100]", self.repetition_penalty),
            );
        }
        for (name, v) in [
            ("frequency_penalty", self.frequency_penalty),
            ("presence_penalty", self.presence_penalty),
        ] {
            if !within(v, -100.0, 100.0) {
                return invalid(name, format!("{v} is not in -100..=100"));
            }
        }
        if self.stop_strings.len() > 64
            || self
                .stop_strings
                .iter()
                .any(|s| s.is_empty() || s.len() > 1024)
        {
            return invalid(
                "stop_strings",
                "at most 64 strings of 1 to 1024 bytes".into(),
            );
        }
        for &(id, bias) in &self.logit_bias {
            if id as usize >= vocab_size {
                return invalid(
                    "logit_bias",
                    format!("token id {id} is outside the vocabulary ({vocab_size})"),
                );
            }
            if bias.is_nan() || bias == f32::INFINITY {
                return invalid(
                    "logit_bias",
                    format!("bias {bias} for token {id} must be finite or -inf"),
                );
            }
        }
        Ok(())
    }

    /// The tokens of `context` the penalties look at.
    pub fn penalty_window<'a>(&self, context: &'a [u32]) -> &'a [u32] {
        match self.penalty_last_n {
            0 => context,
            n => &context[context.len().saturating_sub(n)..],
        }
    }

    /// The sampler chain these options describe.
    pub fn sampler_chain(&self, seed: u64) -> SamplerChain {
        let mut steps = Vec::new();
        if !self.logit_bias.is_empty() {
            steps.push(Sampler::LogitBias(self.logit_bias.clone()));
        }
        let greedy = self.temperature < MIN_TEMPERATURE;
        let temperature = Sampler::Temperature(self.temperature);
        if self.compat && !greedy {
            steps.push(temperature.clone());
        }
        if self.repetition_penalty != 1.0 {
            steps.push(Sampler::Repetition {
                penalty: self.repetition_penalty,
                divide_always: self.compat,
            });
        }
        if self.frequency_penalty != 0.0 {
            steps.push(Sampler::Frequency(self.frequency_penalty));
        }
        if self.presence_penalty != 0.0 {
            steps.push(Sampler::Presence(self.presence_penalty));
        }
        if greedy {
            return SamplerChain::greedy(steps);
        }
        steps.extend([
            Sampler::TopK(self.top_k),
            Sampler::TopP(self.top_p),
            Sampler::MinP(self.min_p),
        ]);
        if !self.compat {
            steps.push(temperature);
        }
        SamplerChain::new(steps, seed)
    }
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `max_tokens` were generated.
    Length,
    /// The model produced the end-of-text token.
    EndOfText,
    /// A stop string appeared.
    StopString,
    /// The token callback returned `false` (unless the same piece completed a
    /// stop string: then [`StopReason::StopString`]).
    Callback,
    /// [`CancelHandle::cancel`] was called, or the call's [`CancelToken`]
    /// was cancelled.
    Cancelled,
    /// The context window is full and `context_shift` is off.
    Context,
}

/// What a generation did and how fast.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateSummary {
    /// All emitted text.
    pub text: String,
    /// Generated token ids (including a final end-of-text token, if any).
    pub tokens: Vec<u32>,
    /// Tokens of the new prompt text.
    pub prompt_tokens: usize,
    /// Context tokens whose cache entries were reused from the previous call.
    pub reused_tokens: usize,
    /// Context tokens computed by the prompt prefill.
    pub prefill_tokens: usize,
    /// Times the context (the prompt, or the conversation as it grew)
    /// overflowed and the window was re-prefilled with its last three quarters
    /// (counted also when a cancel stopped that prefill before its first pass).
    pub context_shifts: usize,
    /// Why generation stopped.
    pub stop_reason: StopReason,
    /// From the call to the first sampled token (zero when none was).
    pub time_to_first_token: Duration,
    /// Prompt prefill speed (the forward passes only, not tokenizing).
    pub prefill_tokens_per_second: f64,
    /// Speed of the generated tokens after the first.
    pub decode_tokens_per_second: f64,
}

/// Stops a running generation from any thread, within one forward pass (a
/// decode step, or [`Model::prefill_chunk`](crate::Model::prefill_chunk)
/// tokens of a prompt: 256 by default).
#[derive(Clone, Debug, Default)]
pub struct CancelHandle {
    /// [`IDLE`], [`RUNNING`] or [`CANCELLED`]: one atomic, so a cancel racing
    /// with the end of a generation can never land on the next one.
    state: Arc<AtomicU8>,
}

const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const CANCELLED: u8 = 2;

impl CancelHandle {
    /// Cancels the generation in progress; does nothing when none is running.
    pub fn cancel(&self) {
        let _ = self
            .state
            .compare_exchange(RUNNING, CANCELLED, Ordering::SeqCst, Ordering::SeqCst);
    }

    pub(crate) fn start(&self) {
        self.state.store(RUNNING, Ordering::SeqCst);
    }

    pub(crate) fn finish(&self) {
        self.state.store(IDLE, Ordering::SeqCst);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.state.load(Ordering::SeqCst) == CANCELLED
    }
}

/// Cancels one call, made before the call and passed to it
/// ([`Session::generate_with_cancel`]): once cancelled it stays cancelled, so
/// a cancel made before the call has started stops it before its first
/// forward pass, and a cancel made after it has ended reaches nothing else.
/// For callers that queue generations, where [`CancelHandle::cancel`] cannot
/// tell whether the one it is meant for has started yet.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// Cancels the call this token is (or will be) passed to, from any thread.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl Session {
    /// Continues the conversation with `prompt` and streams generated text to
    /// `on_text` as complete UTF-8 pieces; `on_text` returns `false` to stop.
    ///
    /// The session's context is everything generated or prompted since the last
    /// [`Session::reset`], plus `prompt`; cached positions shared with the
    /// previous call are reused, so only new tokens are prefilled.
    ///
    /// Text held back as a possible start of a stop string is delivered when
    /// generation ends without one, also after a cancel (it is output already
    /// generated, not a new token), but not after `on_text` returned `false`.
    /// Stop strings are matched within one call: a stop string split between
    /// two calls is not found. A call that fails leaves the transcript as it
    /// was, without its prompt or any text it streamed.
    pub fn generate(
        &mut self,
        prompt: &str,
        options: &GenerateOptions,
        on_text: impl FnMut(&str) -> bool,
    ) -> Result<GenerateSummary> {
        self.generate_with_cancel(prompt, options, &CancelToken::default(), on_text)
    }

    /// [`Session::generate`], also stopped by `cancel` (within one forward
    /// pass, as by [`CancelHandle::cancel`]; before any when it is cancelled
    /// already: the prompt joins the transcript, nothing is computed, stop
    /// reason [`StopReason::Cancelled`]).
    pub fn generate_with_cancel(
        &mut self,
        prompt: &str,
        options: &GenerateOptions,
        cancel: &CancelToken,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<GenerateSummary> {
        let start = Instant::now();
        let model = self.model().clone();
        let config = model.config();
        options.validate(config.vocab_size)?;
        let handle = self.cancel_handle();
        handle.start();
        let _running = scopeguard(|| handle.finish());
        let cancelled = || handle.is_cancelled() || cancel.is_cancelled();

        let prompt_tokens = model.tokenizer().encode(prompt)?.len();
        let conversation = format!("{}{prompt}", self.transcript());
        // A conversation begun with an empty prompt starts from end-of-text,
        // in this call and in every later one, so the cache stays reusable.
        let opens_with_eos = if self.transcript().is_empty() {
            prompt_tokens == 0
        } else {
            self.opens_with_eos()
        };
        let mut context = self.conversation_tokens(&conversation, opens_with_eos)?;
        // A character the last call left unfinished is continued by an empty
        // prompt (a prompt's text would make it invalid: dropped).
        let mut unfinished = self.unfinished().to_vec();
        let byte_tokens: Option<Vec<u32>> = unfinished
            .iter()
            .map(|&b| model.tokenizer().byte_token(b))
            .collect();
        match byte_tokens {
            Some(ids) if prompt.is_empty() => context.extend(ids),
            _ => unfinished.clear(),
        }
        if !options.context_shift && !self.fits(&context) {
            return Err(Error::InvalidInput(format!(
                "the conversation ({} tokens) exceeds the context window ({}) and \
                 context_shift is off; reset the session or shorten the prompt",
                context.len(),
                config.context_length
            )));
        }
        let seed = options.seed.unwrap_or_else(clock_seed);
        let mut sampler = options.sampler_chain(seed);
        let mut utf8 = Utf8Stream::resuming(unfinished);
        let mut stops = StopStrings::new(&options.stop_strings);
        let mut summary = GenerateSummary {
            text: String::new(),
            tokens: Vec::new(),
            prompt_tokens,
            reused_tokens: 0,
            prefill_tokens: 0,
            context_shifts: 0,
            stop_reason: StopReason::Length,
            time_to_first_token: Duration::ZERO,
            prefill_tokens_per_second: 0.0,
            decode_tokens_per_second: 0.0,
        };
        let prefill_start = Instant::now();
        let step = self.sync(&context, &cancelled)?;
        (summary.reused_tokens, summary.prefill_tokens) = (step.reused, step.fed);
        summary.context_shifts = usize::from(step.shifted);
        if step.fed > 0 {
            summary.prefill_tokens_per_second =
                step.fed as f64 / prefill_start.elapsed().as_secs_f64();
        }
        let mut logits = step.logits;
        let mut decode_start = Instant::now();
        // On an error below, the transcript is put back as it was before the call.
        let kept = self.transcript().len();
        self.set_transcript(conversation);
        self.set_opens_with_eos(opens_with_eos);

        if options.max_tokens == 0 && cancelled() {
            // As the loop's first check would say: the prompt may not all be read.
            summary.stop_reason = StopReason::Cancelled;
        }
        for i in 0..options.max_tokens {
            if cancelled() {
                summary.stop_reason = StopReason::Cancelled;
                break;
            }
            let token = sampler.sample(&logits, options.penalty_window(&context));
            if i == 0 {
                summary.time_to_first_token = start.elapsed();
                decode_start = Instant::now();
            }
            summary.tokens.push(token);
            context.push(token);
            if options.stop_at_eos && token == config.eos_token_id {
                summary.stop_reason = StopReason::EndOfText;
                break;
            }
            let bytes = model.tokenizer().token_bytes(token);
            let piece = utf8.push(self.rolled_back(kept, bytes)?);
            let (text, stopped) = match stops.push(&piece) {
                StopCheck::Continue(text) => (text, false),
                StopCheck::Stop(text) => (text, true),
            };
            let delivered = self.emit(&text, &mut summary, &mut on_text);
            if stopped {
                summary.stop_reason = StopReason::StopString;
                break;
            }
            if !delivered {
                summary.stop_reason = StopReason::Callback;
                break;
            }
            if i + 1 == options.max_tokens || cancelled() {
                continue;
            }
            if !options.context_shift && !self.fits(&context) {
                summary.stop_reason = StopReason::Context;
                break;
            }
            let step = self.sync(&context, &cancelled);
            let step = self.rolled_back(kept, step)?;
            summary.context_shifts += usize::from(step.shifted);
            logits = step.logits;
        }
        if summary.stop_reason != StopReason::StopString
            && summary.stop_reason != StopReason::Callback
        {
            // Text held back as a possible stop-string start is real output.
            let rest = stops.finish();
            self.emit(&rest, &mut summary, &mut on_text);
        } else {
            // The dropped text's tokens are cached: cut the cache back to what
            // the transcript encodes to, so the next call continues this window
            // (a disagreeing cache tail would make a shifted window start over).
            let transcript = self.conversation_tokens(self.transcript(), opens_with_eos);
            let transcript = self.rolled_back(kept, transcript)?;
            self.keep_agreeing(&transcript);
        }
        // Bytes of a character cut off by a limit are kept for the next call
        // rather than shown as U+FFFD; the model ending its text abandons them.
        let cut_off = matches!(
            summary.stop_reason,
            StopReason::Length | StopReason::Cancelled | StopReason::Context
        );
        self.set_unfinished(if cut_off { utf8.unfinished() } else { &[] });
        let decoded = summary.tokens.len().saturating_sub(1);
        if decoded > 0 {
            summary.decode_tokens_per_second =
                decoded as f64 / decode_start.elapsed().as_secs_f64();
        }
        log::info!(
            "generated {} tokens ({:?}), prefill {} reused {}",
            summary.tokens.len(),
            summary.stop_reason,
            summary.prefill_tokens,
            summary.reused_tokens
        );
        Ok(summary)
    }

    /// The tokens of `conversation`, behind the end-of-text token a
    /// conversation begun with an empty prompt opens with.
    pub(crate) fn conversation_tokens(
        &self,
        conversation: &str,
        opens_with_eos: bool,
    ) -> Result<Vec<u32>> {
        let model = self.model();
        let mut tokens = model.tokenizer().encode(conversation)?;
        if opens_with_eos {
            tokens.insert(0, model.config().eos_token_id);
        }
        Ok(tokens)
    }

    /// `result`, after cutting the transcript back to its first `kept` bytes
    /// if it is an error: a failed call leaves no prompt or text behind.
    fn rolled_back<T>(&mut self, kept: usize, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.truncate_transcript(kept);
        }
        result
    }

    /// Records emitted text in the summary and the transcript, then calls the callback.
    fn emit(
        &mut self,
        text: &str,
        summary: &mut GenerateSummary,
        on_text: &mut impl FnMut(&str) -> bool,
    ) -> bool {
        if text.is_empty() {
            return true;
        }
        summary.text.push_str(text);
        self.append_transcript(text);
        on_text(text)
    }
}

/// Runs a closure when dropped (also on early return).
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f()
            }
        }
    }
    Guard(Some(f))
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::Sampler;

    #[test]
    fn a_cancel_reaches_only_the_generation_running_when_it_is_made() {
        let handle = CancelHandle::default();
        handle.cancel();
        handle.start();
        assert!(!handle.is_cancelled(), "a cancel while idle is dropped");
        handle.cancel();
        assert!(handle.is_cancelled());
        handle.finish();
        handle.cancel();
        handle.start();
        assert!(!handle.is_cancelled(), "a cancel after the end is dropped");
    }

    /// Draws of `chain` on fixed pseudo-random logits over a context.
    fn draws(mut chain: SamplerChain) -> Vec<u32> {
        let logits: Vec<f32> = (0..300u32)
            .map(|i| ((i * 7919 % 1000) as f32 / 100.0).sin() * 4.0)
            .collect();
        let context = [3, 5, 5, 250];
        (0..64).map(|_| chain.sample(&logits, &context)).collect()
    }

    #[test]
    fn compat_is_the_original_chain_with_the_chosen_temperature_first() {
        for temperature in [0.5, 0.8, 3.0] {
            let options = GenerateOptions {
                temperature,
                ..GenerateOptions::compat()
            };
            let original = vec![
                Sampler::Temperature(temperature),
                Sampler::Repetition {
                    penalty: 1.15,
                    divide_always: true,
                },
                Sampler::Frequency(0.3),
                Sampler::Presence(0.5),
                Sampler::TopK(50),
                Sampler::TopP(0.92),
                Sampler::MinP(0.0),
            ];
            assert_eq!(
                draws(options.sampler_chain(9)),
                draws(SamplerChain::new(original, 9)),
                "temperature {temperature}"
            );
        }
    }

    #[test]
    fn temperatures_below_the_minimum_sample_greedily() {
        for compat in [false, true] {
            let base = GenerateOptions {
                compat,
                ..GenerateOptions::default()
            };
            let options = |temperature| GenerateOptions {
                temperature,
                ..base.clone()
            };
            let greedy = draws(options(0.0).sampler_chain(1));
            assert!(greedy.windows(2).all(|w| w[0] == w[1]));
            assert_eq!(draws(options(1e-40).sampler_chain(1)), greedy);
            assert_eq!(
                draws(options(MIN_TEMPERATURE / 2.0).sampler_chain(1)),
                greedy
            );
            assert_ne!(draws(options(1.0).sampler_chain(1)), greedy);
        }
    }
}
