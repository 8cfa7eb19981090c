//! Generation options as a plain C struct.

use crate::status::{chaya_status, slice, Failure, FfiResult};
use chaya_core::GenerateOptions;
use std::ffi::{c_char, CStr};

/// How to generate. Start from chaya_options_default() (or
/// chaya_options_compat()) and change fields: a zeroed struct is not valid.
///
/// Ranges are checked by chaya_generate, which fails with
/// CHAYA_ERR_INVALID_OPTION and a message naming the field. The arrays are
/// borrowed for the duration of the chaya_generate call only.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct chaya_options {
    /// Maximum number of new tokens, 0..=1000000. With 0 the call only reads
    /// the prompt into the conversation and the cache, as before chaya_score.
    pub max_tokens: u32,
    /// Sampling temperature, 0..=100; 0 (or anything below 1e-6) means greedy
    /// (always the most likely token).
    pub temperature: f32,
    /// Keep only the k most likely tokens; 0 disables; at most the vocabulary
    /// size.
    pub top_k: u32,
    /// Nucleus sampling threshold in (0, 1]; 1 disables.
    pub top_p: f32,
    /// Minimum probability relative to the most likely token, in [0, 1); 0
    /// disables.
    pub min_p: f32,
    /// Repetition penalty, in (0, 100]; 1 disables.
    pub repetition_penalty: f32,
    /// Subtracted from a token's logit per occurrence in the context,
    /// -100..=100.
    pub frequency_penalty: f32,
    /// Subtracted once from the logit of a token present in the context,
    /// -100..=100.
    pub presence_penalty: f32,
    /// Reproduce the original CHAYA command line: its sampler order
    /// (temperature first) and its sign-blind repetition penalty.
    pub compat: bool,
    /// Use `seed` for the random draws (reproducible output); when false a seed
    /// is taken from the clock.
    pub has_seed: bool,
    /// Seed of the random draws, used when has_seed is true.
    pub seed: u64,
    /// Generation stops before any of these NUL-terminated UTF-8 strings, which
    /// are never emitted: at most 64 strings of 1 to 1024 bytes. May be NULL
    /// when n_stop_strings is 0.
    pub stop_strings: *const *const c_char,
    /// Number of entries in stop_strings.
    pub n_stop_strings: usize,
    /// Stop when the model produces its end-of-text token.
    pub stop_at_eos: bool,
    /// Token ids whose logits are biased; each below the vocabulary size. May
    /// be NULL when n_logit_bias is 0.
    pub logit_bias_ids: *const u32,
    /// Added to the logit of the token at the same index in logit_bias_ids:
    /// finite, or -INFINITY to ban the token. May be NULL when n_logit_bias is
    /// 0.
    pub logit_bias_values: *const f32,
    /// Number of entries in logit_bias_ids and logit_bias_values (entries for
    /// one id add up).
    pub n_logit_bias: usize,
    /// When the context window fills up, keep going by re-prefilling its most
    /// recent three quarters; when false, stop with CHAYA_STOP_CONTEXT instead
    /// (and fail with CHAYA_ERR_INVALID_INPUT if the conversation, what the
    /// session holds plus the prompt, does not fit).
    pub context_shift: bool,
    /// The penalties look at the last penalty_last_n tokens of the context; 0
    /// means every token since the session's last reset (llama.cpp's
    /// repeat_last_n, except that there 0 turns the penalties off).
    pub penalty_last_n: u32,
}

impl chaya_options {
    /// The C form of options without stop strings or logit biases.
    fn from_core(o: &GenerateOptions) -> chaya_options {
        debug_assert!(o.stop_strings.is_empty() && o.logit_bias.is_empty());
        chaya_options {
            max_tokens: o.max_tokens.try_into().unwrap_or(u32::MAX),
            temperature: o.temperature,
            top_k: o.top_k.try_into().unwrap_or(u32::MAX),
            top_p: o.top_p,
            min_p: o.min_p,
            repetition_penalty: o.repetition_penalty,
            frequency_penalty: o.frequency_penalty,
            presence_penalty: o.presence_penalty,
            compat: o.compat,
            has_seed: o.seed.is_some(),
            seed: o.seed.unwrap_or(0),
            stop_strings: std::ptr::null(),
            n_stop_strings: 0,
            stop_at_eos: o.stop_at_eos,
            logit_bias_ids: std::ptr::null(),
            logit_bias_values: std::ptr::null(),
            n_logit_bias: 0,
            context_shift: o.context_shift,
            penalty_last_n: o.penalty_last_n.try_into().unwrap_or(u32::MAX),
        }
    }

    /// The core options these describe (ranges are checked later, by core).
    ///
    /// # Safety
    /// The array pointers are NULL or valid for their counts, and each stop
    /// string pointer is NULL or NUL-terminated.
    pub(crate) unsafe fn to_core(self) -> FfiResult<GenerateOptions> {
        // SAFETY: NULL or `n_stop_strings` pointers (caller).
        let stops = unsafe { slice(self.stop_strings, self.n_stop_strings, "stop_strings") }?;
        let stop_strings = stops
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                if s.is_null() {
                    return Err(Failure::null(&format!("stop_strings[{i}]")));
                }
                // SAFETY: non-NULL and NUL-terminated (caller).
                let s = unsafe { CStr::from_ptr(s) };
                s.to_str().map(str::to_owned).map_err(|e| {
                    Failure::new(
                        chaya_status::CHAYA_ERR_INVALID_UTF8,
                        format!("`stop_strings[{i}]` is not valid UTF-8: {e}"),
                    )
                })
            })
            .collect::<FfiResult<Vec<_>>>()?;
        // SAFETY: NULL or `n_logit_bias` elements each (caller).
        let ids = unsafe { slice(self.logit_bias_ids, self.n_logit_bias, "logit_bias_ids") }?;
        // SAFETY: as above.
        let values = unsafe {
            slice(
                self.logit_bias_values,
                self.n_logit_bias,
                "logit_bias_values",
            )
        }?;
        Ok(GenerateOptions {
            max_tokens: self.max_tokens as usize,
            temperature: self.temperature,
            top_k: self.top_k as usize,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            penalty_last_n: self.penalty_last_n as usize,
            compat: self.compat,
            seed: self.has_seed.then_some(self.seed),
            stop_strings,
            stop_at_eos: self.stop_at_eos,
            logit_bias: ids.iter().copied().zip(values.iter().copied()).collect(),
            context_shift: self.context_shift,
        })
    }
}

/// The default options (chat/completion settings): max_tokens 128,
/// temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, repetition_penalty 1.1,
/// no frequency or presence penalty, penalties over the last 64 tokens,
/// compat off, no seed, no stop strings,
/// stop at end of text, no logit bias, context shift on.
#[no_mangle]
pub extern "C" fn chaya_options_default() -> chaya_options {
    chaya_options::from_core(&GenerateOptions::default())
}

/// The original CHAYA command line's settings (compat on): max_tokens 150,
/// temperature 0.8, top_k 50, top_p 0.92, min_p 0, repetition_penalty 1.15,
/// frequency_penalty 0.3, presence_penalty 0.5, penalties over every token
/// (penalty_last_n 0), no seed, stop at end of text.
#[no_mangle]
pub extern "C" fn chaya_options_compat() -> chaya_options {
    chaya_options::from_core(&GenerateOptions::compat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_mirror_core() {
        // SAFETY: no arrays.
        let default = unsafe { chaya_options_default().to_core() }.unwrap();
        assert_eq!(default, GenerateOptions::default());
        // SAFETY: no arrays.
        let compat = unsafe { chaya_options_compat().to_core() }.unwrap();
        assert_eq!(compat, GenerateOptions::compat());
    }

    #[test]
    fn arrays_are_converted_and_checked() {
        let stops = [c"\n\n".as_ptr(), c"END".as_ptr()];
        let ids = [1u32, 2];
        let values = [0.5f32, f32::NEG_INFINITY];
        let o = chaya_options {
            stop_strings: stops.as_ptr(),
            n_stop_strings: 2,
            logit_bias_ids: ids.as_ptr(),
            logit_bias_values: values.as_ptr(),
            n_logit_bias: 2,
            has_seed: true,
            seed: 7,
            ..chaya_options_default()
        };
        // SAFETY: arrays valid for their counts.
        let core = unsafe { o.to_core() }.unwrap();
        assert_eq!(core.stop_strings, ["\n\n", "END"]);
        assert_eq!(core.logit_bias, [(1, 0.5), (2, f32::NEG_INFINITY)]);
        assert_eq!(core.seed, Some(7));

        let bad = [c"ok".as_ptr(), std::ptr::null()];
        let o = chaya_options {
            stop_strings: bad.as_ptr(),
            n_stop_strings: 2,
            ..chaya_options_default()
        };
        // SAFETY: arrays valid for their counts.
        let err = unsafe { o.to_core() }.unwrap_err();
        assert_eq!(err.status, chaya_status::CHAYA_ERR_NULL_POINTER);
        assert!(err.message.contains("stop_strings[1]"), "{}", err.message);

        let o = chaya_options {
            n_logit_bias: 1,
            ..chaya_options_default()
        };
        // SAFETY: NULL arrays are checked.
        let err = unsafe { o.to_core() }.unwrap_err();
        assert_eq!(err.status, chaya_status::CHAYA_ERR_NULL_POINTER);
    }
}
