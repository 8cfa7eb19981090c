//! Records of options: [`LoadOptions`], [`GenerateOptions`], [`LogitBias`].

/// How to load a model. Every field has a default, so `LoadOptions()` works.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct LoadOptions {
    /// Compute threads of the model, shared by its sessions, at most 256; 0
    /// picks the number of available cores.
    #[uniffi(default = 0)]
    pub threads: u32,
    /// Attention window (KV cache capacity) in 1..=65536; null keeps the file's value.
    #[uniffi(default = None)]
    pub context_length: Option<u32>,
    /// Most prompt tokens computed per forward pass, in 1..=65536; null uses
    /// 256. Smaller chunks lower a long prompt's peak memory and let `cancel`
    /// end its prefill sooner, at some speed.
    #[uniffi(default = None)]
    pub prefill_chunk: Option<u32>,
}

impl From<LoadOptions> for chaya::LoadOptions {
    fn from(options: LoadOptions) -> Self {
        chaya::LoadOptions {
            threads: options.threads as usize,
            context_length: options.context_length.map(|n| n as usize),
            prefill_chunk: options.prefill_chunk.map(|n| n as usize),
        }
    }
}

/// A bias added to one token's logit before sampling.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct LogitBias {
    /// The token id (below the vocabulary size).
    pub token_id: u32,
    /// Added to the logit; negative infinity bans the token.
    pub bias: f32,
}

/// How to generate. The field defaults are core's `GenerateOptions::default()`
/// (sensible chat/completion settings); see also `compat_generate_options` and
/// `greedy_generate_options`.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct GenerateOptions {
    /// Maximum number of new tokens (0..=1000000). With 0 the call only reads
    /// the prompt into the conversation and the cache, as before `Session.score`.
    #[uniffi(default = 128)]
    pub max_tokens: u32,
    /// Sampling temperature (0..=100); 0, or anything below 1e-6, means greedy.
    #[uniffi(default = 0.8)]
    pub temperature: f32,
    /// Keep only the k most likely tokens; 0 disables (at most the vocabulary size).
    #[uniffi(default = 40)]
    pub top_k: u32,
    /// Nucleus sampling threshold in (0, 1]; 1 disables.
    #[uniffi(default = 0.95)]
    pub top_p: f32,
    /// Minimum probability relative to the best token, in [0, 1); 0 disables.
    #[uniffi(default = 0.05)]
    pub min_p: f32,
    /// Repetition penalty in (0, 100]; 1 disables.
    #[uniffi(default = 1.1)]
    pub repetition_penalty: f32,
    /// Subtracted per occurrence of a token in the context (-100..=100).
    #[uniffi(default = 0.0)]
    pub frequency_penalty: f32,
    /// Subtracted once for a token present in the context (-100..=100).
    #[uniffi(default = 0.0)]
    pub presence_penalty: f32,
    /// The original CHAYA CLI's sampler order (temperature first) and
    /// sign-blind repetition penalty.
    #[uniffi(default = false)]
    pub compat: bool,
    /// Seed of the random draw; null picks one from the clock.
    #[uniffi(default = None)]
    pub seed: Option<u64>,
    /// Generation stops before any of these strings (at most 64, each 1 to 1024
    /// bytes); they are never emitted.
    #[uniffi(default = [])]
    pub stop_strings: Vec<String>,
    /// Stop at the end-of-text token.
    #[uniffi(default = true)]
    pub stop_at_eos: bool,
    /// Biases added to chosen tokens' logits (entries for one token add up).
    #[uniffi(default = [])]
    pub logit_bias: Vec<LogitBias>,
    /// When the context window is full, keep going by re-prefilling its last
    /// three quarters. With `false`, a generation that fills the window stops
    /// with stop reason `CONTEXT`; when the conversation with the new prompt
    /// does not fit the window, `generate` fails with error `InvalidInput`
    /// before generating anything.
    #[uniffi(default = true)]
    pub context_shift: bool,
    /// The penalties look at the last `penalty_last_n` tokens of the context;
    /// 0 means every token since the last reset (unlike llama.cpp's
    /// `repeat_last_n`, where 0 turns the penalties off).
    #[uniffi(default = 64)]
    pub penalty_last_n: u32,
}

impl From<GenerateOptions> for chaya::GenerateOptions {
    fn from(o: GenerateOptions) -> Self {
        chaya::GenerateOptions {
            max_tokens: o.max_tokens as usize,
            temperature: o.temperature,
            top_k: o.top_k as usize,
            top_p: o.top_p,
            min_p: o.min_p,
            repetition_penalty: o.repetition_penalty,
            frequency_penalty: o.frequency_penalty,
            presence_penalty: o.presence_penalty,
            penalty_last_n: o.penalty_last_n as usize,
            compat: o.compat,
            seed: o.seed,
            stop_strings: o.stop_strings,
            stop_at_eos: o.stop_at_eos,
            logit_bias: o
                .logit_bias
                .into_iter()
                .map(|b| (b.token_id, b.bias))
                .collect(),
            context_shift: o.context_shift,
        }
    }
}

impl From<chaya::GenerateOptions> for GenerateOptions {
    fn from(o: chaya::GenerateOptions) -> Self {
        let saturate = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        GenerateOptions {
            max_tokens: saturate(o.max_tokens),
            temperature: o.temperature,
            top_k: saturate(o.top_k),
            top_p: o.top_p,
            min_p: o.min_p,
            repetition_penalty: o.repetition_penalty,
            frequency_penalty: o.frequency_penalty,
            presence_penalty: o.presence_penalty,
            penalty_last_n: saturate(o.penalty_last_n),
            compat: o.compat,
            seed: o.seed,
            stop_strings: o.stop_strings,
            stop_at_eos: o.stop_at_eos,
            logit_bias: o
                .logit_bias
                .into_iter()
                .map(|(token_id, bias)| LogitBias { token_id, bias })
                .collect(),
            context_shift: o.context_shift,
        }
    }
}

/// Core's default options: the same values as the record's field defaults.
#[uniffi::export]
pub fn default_generate_options() -> GenerateOptions {
    chaya::GenerateOptions::default().into()
}

/// The original CHAYA CLI's defaults (compat sampling).
#[uniffi::export]
pub fn compat_generate_options() -> GenerateOptions {
    chaya::GenerateOptions::compat().into()
}

/// Greedy decoding: temperature 0, no repetition penalty.
#[uniffi::export]
pub fn greedy_generate_options() -> GenerateOptions {
    chaya::GenerateOptions::greedy().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_options_round_trip() {
        let mut core = chaya::GenerateOptions::compat();
        core.seed = Some(7);
        core.stop_strings = vec!["\n".into()];
        core.logit_bias = vec![(3, f32::NEG_INFINITY), (5, 1.5)];
        core.context_shift = false;
        let record = GenerateOptions::from(core.clone());
        assert_eq!(chaya::GenerateOptions::from(record), core);
    }

    #[test]
    fn load_options_convert() {
        let core = chaya::LoadOptions::from(LoadOptions {
            threads: 2,
            context_length: Some(64),
            prefill_chunk: Some(32),
        });
        assert_eq!(
            (core.threads, core.context_length, core.prefill_chunk),
            (2, Some(64), Some(32))
        );
    }
}
