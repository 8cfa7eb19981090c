//! Property tests: any options, prompt or token ids either work or give a typed
//! error — never a panic.

mod common;

use chaya::sampler::SamplerChain;
use chaya::{Error, GenerateOptions, LoadOptions, Model, StopReason};
use common::repo_path;
use proptest::prelude::*;
use std::sync::OnceLock;

/// The tiny model with a 24-token window, so short runs shift the context,
/// and 5-token prefill chunks, so prompts and shifts take several passes.
fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        let options = LoadOptions {
            threads: 1,
            context_length: Some(24),
            prefill_chunk: Some(5),
        };
        Model::load(repo_path("models/chaya-tiny-random.safetensors"), &options).unwrap()
    })
}

/// Values no option accepts, or only at its edge.
fn hostile() -> impl Strategy<Value = f32> {
    prop_oneof![
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        Just(-1.0f32),
        Just(0.0f32),
        Just(1.0f32),
        any::<f32>(),
    ]
}

/// A value of `range` most of the time, a hostile one otherwise.
fn knob(range: std::ops::Range<f32>) -> impl Strategy<Value = f32> {
    prop_oneof![6 => range, 1 => hostile()]
}

/// Any text, weighted towards what a tokenizer finds hard.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z ]{0,40}",
        "(<\\|endoftext\\|>|🚀|東京|é|\u{200d}|\r\n| {2,5}|\u{0}){0,12}",
        "\\PC{0,200}",
    ]
}

fn options() -> impl Strategy<Value = GenerateOptions> {
    let sampling = (
        prop_oneof![6 => 1usize..64, 1 => 0usize..2_000_000],
        knob(0.0..2.0),
        prop_oneof![6 => 0usize..100, 1 => 0usize..60_000],
        knob(0.01..1.0),
        knob(0.0..0.5),
    );
    let penalties = (
        knob(0.5..2.0),
        knob(-2.0..2.0),
        knob(-2.0..2.0),
        any::<bool>(),
        any::<Option<u64>>(),
        prop_oneof![0usize..8, Just(64), any::<usize>()],
    );
    let rest = (
        prop::collection::vec(prop_oneof![4 => text(), 1 => Just(String::new())], 0..3),
        any::<bool>(),
        prop::collection::vec(
            (
                prop_oneof![6 => 0u32..50_257, 1 => any::<u32>()],
                prop_oneof![4 => knob(-5.0..5.0), 1 => Just(f32::NEG_INFINITY)],
            ),
            0..4,
        ),
        any::<bool>(),
    );
    (sampling, penalties, rest).prop_map(
        |(
            (max_tokens, temperature, top_k, top_p, min_p),
            (repetition_penalty, frequency_penalty, presence_penalty, compat, seed, penalty_last_n),
            (stop_strings, stop_at_eos, logit_bias, context_shift),
        )| GenerateOptions {
            max_tokens,
            temperature,
            top_k,
            top_p,
            min_p,
            repetition_penalty,
            frequency_penalty,
            presence_penalty,
            penalty_last_n,
            compat,
            seed,
            stop_strings,
            stop_at_eos,
            logit_bias,
            context_shift,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Valid options generate (at most 4 tokens here); invalid ones are an
    /// `InvalidOption` error from both `validate` and `generate`.
    #[test]
    fn any_options_generate_or_fail_typed(options in options(), prompt in text()) {
        let model = model();
        let mut session = model.session().unwrap();
        match options.validate(model.config().vocab_size) {
            Ok(()) => {
                let options = GenerateOptions { max_tokens: options.max_tokens.min(4), ..options };
                match session.generate(&prompt, &options, |_| true) {
                    Ok(summary) => {
                        prop_assert!(summary.tokens.len() <= options.max_tokens);
                        prop_assert!(summary.stop_reason != StopReason::Cancelled);
                    }
                    Err(Error::InvalidInput(_)) => prop_assert!(!options.context_shift),
                    Err(other) => prop_assert!(false, "untyped failure: {other}"),
                }
            }
            Err(Error::InvalidOption { name, .. }) => {
                let again = session.generate(&prompt, &options, |_| true);
                let same = matches!(again, Err(Error::InvalidOption { name: n, .. }) if n == name);
                prop_assert!(same, "generate disagrees with validate on `{}`", name);
            }
            Err(other) => prop_assert!(false, "validate gave {other}"),
        }
    }

    /// Any prompts, in any number of turns, generate greedily; the transcript
    /// holds every prompt and every emitted piece.
    #[test]
    fn any_prompts_generate(prompts in prop::collection::vec(text(), 1..4)) {
        let model = model();
        let mut session = model.session().unwrap();
        let options = GenerateOptions { max_tokens: 3, ..GenerateOptions::greedy() };
        let mut transcript = String::new();
        for prompt in &prompts {
            let summary = session.generate(prompt, &options, |_| true);
            let summary = summary.map_err(|e| TestCaseError::fail(e.to_string()))?;
            transcript.push_str(prompt);
            transcript.push_str(&summary.text);
        }
        prop_assert_eq!(session.transcript(), transcript);
    }

    /// Encoding is lossless for any text; decoding any ids works in the
    /// vocabulary and is an `InvalidInput` error outside it.
    #[test]
    fn tokenizer_round_trips_and_rejects_bad_ids(
        text in text(),
        ids in prop::collection::vec(prop_oneof![0u32..50_257, any::<u32>()], 0..32),
    ) {
        let tokenizer = model().tokenizer();
        let encoded = tokenizer.encode(&text).unwrap();
        prop_assert_eq!(tokenizer.decode(&encoded).unwrap(), text);
        let in_vocab = ids.iter().all(|&id| (id as usize) < tokenizer.vocab_size());
        match tokenizer.decode(&ids) {
            Ok(_) => prop_assert!(in_vocab),
            Err(Error::InvalidInput(_)) => prop_assert!(!in_vocab),
            Err(other) => prop_assert!(false, "{other}"),
        }
    }

    /// The sampler chain of any valid options picks an id in range from any
    /// logits, NaN and infinities included.
    #[test]
    fn sampler_picks_in_range_from_any_logits(
        options in options(),
        logits in prop::collection::vec(prop_oneof![4 => -20.0f32..20.0, 1 => hostile()], 1..64),
        context in prop::collection::vec(0u32..64, 0..16),
        seed in any::<u64>(),
    ) {
        let mut options = options;
        options.top_k = options.top_k.min(logits.len());
        options.logit_bias.retain(|&(id, _)| (id as usize) < logits.len());
        prop_assume!(options.validate(logits.len()).is_ok());
        let mut chain: SamplerChain = options.sampler_chain(seed);
        for _ in 0..3 {
            let id = chain.sample(&logits, &context);
            prop_assert!((id as usize) < logits.len());
        }
    }
}
