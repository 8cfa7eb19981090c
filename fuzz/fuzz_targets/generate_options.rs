//! Generation options and prompts from arbitrary bytes: validation, then two
//! short turns on the committed tiny model with a 16-token window (so context
//! shifts happen). Any input either generates or gives a typed error.
#![no_main]

use arbitrary::Arbitrary;
use chaya::{Error, GenerateOptions, LoadOptions, Model};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

#[derive(Arbitrary, Debug)]
struct Input {
    max_tokens: u32,
    temperature: f32,
    top_k: u32,
    top_p: f32,
    min_p: f32,
    repetition_penalty: f32,
    frequency_penalty: f32,
    presence_penalty: f32,
    compat: bool,
    seed: Option<u64>,
    stop_strings: Vec<String>,
    stop_at_eos: bool,
    logit_bias: Vec<(u32, f32)>,
    context_shift: bool,
    prompt: String,
    follow_up: String,
}

fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../models/chaya-tiny-random.safetensors"
        );
        let options = LoadOptions {
            threads: 1,
            context_length: Some(16),
            prefill_chunk: None,
        };
        Model::load(path, &options).expect("the committed tiny model")
    })
}

fuzz_target!(|input: Input| {
    let model = model();
    let options = GenerateOptions {
        max_tokens: input.max_tokens as usize,
        temperature: input.temperature,
        top_k: input.top_k as usize,
        top_p: input.top_p,
        min_p: input.min_p,
        repetition_penalty: input.repetition_penalty,
        frequency_penalty: input.frequency_penalty,
        presence_penalty: input.presence_penalty,
        compat: input.compat,
        seed: input.seed,
        stop_strings: input.stop_strings,
        stop_at_eos: input.stop_at_eos,
        logit_bias: input.logit_bias,
        context_shift: input.context_shift,
    };
    if options.validate(model.config().vocab_size).is_err() {
        return;
    }
    // Valid options generate (briefly: at most 6 tokens a turn).
    let options = GenerateOptions {
        max_tokens: options.max_tokens.min(6),
        ..options
    };
    let mut session = model.session().expect("sessions");
    for prompt in [&input.prompt, &input.follow_up] {
        match session.generate(prompt, &options, |piece| !piece.is_empty()) {
            Ok(summary) => assert!(summary.tokens.len() <= options.max_tokens),
            // A prompt too long for the window without context shift.
            Err(Error::InvalidInput(_)) if !options.context_shift => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
});
