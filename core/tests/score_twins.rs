//! Scoring changes nothing a later call sees: twin sessions on the committed
//! tiny model get the same random calls (prompts empty, merging into the
//! text before, overflowing; cut characters forced through logit biases;
//! stop strings; cancels; resets; context shift on and off; max_tokens 0),
//! one of them scoring random texts between calls. After every call their
//! summaries, transcripts and cached tokens must be equal.

mod common;

use chaya::{CancelToken, GenerateOptions, LoadOptions, Model, Session};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Text to draw prompts and scored texts from.
const TEXT: &str = "The keeper of the lighthouse counted the ships that passed each night, \
    and wrote their names in a book that nobody read. One winter a ship came without a \
    name, its sails grey as the fog. héllo wörld ✨ 🚀 東京の天気は";

/// Short pieces, some of which merge with the text before them.
const PIECES: &[&str] = &[
    "",
    "a",
    "er",
    " keep",
    "é",
    "だ",
    "<|endoftext|>",
    " ",
    "\n",
    "the",
    "ing",
    "🚀",
    "\u{FFFD}",
];

/// A call made on both twins (scores only on one).
#[derive(Debug)]
enum Call {
    Generate {
        prompt: String,
        options: GenerateOptions,
        cancelled: bool,
    },
    Reset,
    Score(String),
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items[rng.next_u32() as usize % items.len()]
}

fn random_text(rng: &mut ChaCha8Rng) -> String {
    match rng.next_u32() % 3 {
        0 => pick(rng, PIECES).to_string(),
        1 => (0..rng.next_u32() % 8).map(|_| pick(rng, PIECES)).collect(),
        _ => {
            let chars: Vec<char> = TEXT.chars().collect();
            let from = rng.next_u32() as usize % chars.len();
            let len = rng.next_u32() as usize % 200;
            chars[from..(from + len).min(chars.len())].iter().collect()
        }
    }
}

fn random_options(rng: &mut ChaCha8Rng, model: &Model) -> GenerateOptions {
    let mut options = GenerateOptions {
        max_tokens: rng.next_u32() as usize % 16,
        temperature: [0.0, 0.8][rng.next_u32() as usize % 2],
        seed: Some(rng.next_u64()),
        stop_at_eos: rng.next_u32().is_multiple_of(2),
        context_shift: !rng.next_u32().is_multiple_of(4),
        ..GenerateOptions::default()
    };
    if rng.next_u32().is_multiple_of(3) {
        options.stop_strings = vec![pick(rng, &["e", "the", " k", "é"]).to_string()];
    }
    if rng.next_u32().is_multiple_of(3) {
        // Lead and continuation bytes: characters cut off and continued.
        let byte = [0xE3u8, 0x81, 0xA0, 0xC3, 0xA9, 0xF0, 0x9F][rng.next_u32() as usize % 7];
        options.logit_bias = vec![(model.tokenizer().byte_token(byte).unwrap(), 100.0)];
    }
    options
}

fn random_calls(rng: &mut ChaCha8Rng, model: &Model, n: usize) -> Vec<Call> {
    let mut calls = Vec::new();
    for _ in 0..n {
        while rng.next_u32().is_multiple_of(2) {
            calls.push(Call::Score(random_text(rng)));
        }
        calls.push(match rng.next_u32() % 20 {
            0 => Call::Reset,
            _ => Call::Generate {
                prompt: random_text(rng),
                options: random_options(rng, model),
                cancelled: rng.next_u32().is_multiple_of(10),
            },
        });
    }
    calls
}

/// The summary's fields (or the error) as text, to compare.
fn generate(
    session: &mut Session,
    prompt: &str,
    options: &GenerateOptions,
    cancelled: bool,
) -> String {
    let token = CancelToken::default();
    if cancelled {
        token.cancel();
    }
    match session.generate_with_cancel(prompt, options, &token, |_| true) {
        Ok(s) => format!(
            "{:?}",
            (
                s.text,
                s.tokens,
                s.reused_tokens,
                s.prefill_tokens,
                s.context_shifts,
                s.stop_reason
            )
        ),
        Err(e) => format!("{e}"),
    }
}

/// Runs `calls` on twins; panics at the first difference, showing the calls so far.
fn check_twins(model: &Model, calls: &[Call]) {
    let (mut scored, mut twin) = (model.session().unwrap(), model.session().unwrap());
    for (i, call) in calls.iter().enumerate() {
        let so_far = || format!("after {:#?}", &calls[..=i]);
        let (a, b) = match call {
            Call::Reset => {
                scored.reset();
                twin.reset();
                continue;
            }
            Call::Score(text) => {
                let before = (scored.transcript().to_string(), scored.tokens().to_vec());
                if let Ok(scores) = scored.score(text) {
                    let valid = scores
                        .iter()
                        .all(|s| s.logprob.is_finite() && s.logprob <= 0.0);
                    assert!(valid, "{scores:?} {}", so_far());
                }
                let after = (scored.transcript().to_string(), scored.tokens().to_vec());
                assert_eq!(after, before, "{}", so_far());
                continue;
            }
            Call::Generate {
                prompt,
                options,
                cancelled,
            } => (
                generate(&mut scored, prompt, options, *cancelled),
                generate(&mut twin, prompt, options, *cancelled),
            ),
        };
        assert_eq!(a, b, "{}", so_far());
        assert_eq!(scored.transcript(), twin.transcript(), "{}", so_far());
        assert_eq!(scored.tokens(), twin.tokens(), "{}", so_far());
    }
}

#[test]
fn scoring_between_random_calls_changes_nothing_the_next_call_sees() {
    let path = common::repo_path("models/chaya-tiny-random.safetensors");
    for (context_length, prefill_chunk) in [(64, None), (24, Some(5))] {
        let options = LoadOptions {
            threads: 1,
            context_length: Some(context_length),
            prefill_chunk,
        };
        let model = Model::load(&path, &options).unwrap();
        for seed in 0..30 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            check_twins(&model, &random_calls(&mut rng, &model, 20));
        }
    }
}
