//! Stress: 8 threads × 100 generations on one shared model, with random (valid
//! and invalid) options, random cancellations from other threads, sessions
//! dropped mid-conversation and texts scored between calls. No deadlock, no
//! panic, only typed errors, and resident memory flat after warm-up.
//!
//! Not in the quick run (`#[ignore]`); `tests/all.sh` runs it with `--ignored`.

mod common;

use chaya::{CancelToken, Error, GenerateOptions, StopReason};
use common::tiny_model;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Barrier;
use std::time::Duration;

const THREADS: usize = 8;
const GENERATIONS: usize = 100;
const WARM_UP: usize = 20;

const PROMPTS: &[&str] = &[
    "The old lighthouse",
    "Once upon a time",
    "héllo wörld ✨ 🚀",
    "東京の天気は",
    "",
    "a",
];

/// Resident memory of this process in KB (Linux).
fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn uniform(rng: &mut ChaCha8Rng) -> f32 {
    (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32
}

/// Options drawn at random; about one in five is out of range.
fn random_options(rng: &mut ChaCha8Rng, vocab: usize) -> GenerateOptions {
    let mut options = GenerateOptions {
        max_tokens: rng.next_u32() as usize % 41,
        temperature: uniform(rng) * 1.5,
        top_k: rng.next_u32() as usize % 60,
        top_p: 0.05 + uniform(rng) * 0.95,
        min_p: uniform(rng) * 0.3,
        repetition_penalty: 0.8 + uniform(rng),
        frequency_penalty: uniform(rng),
        presence_penalty: uniform(rng),
        compat: rng.next_u32().is_multiple_of(5),
        seed: Some(rng.next_u64()),
        stop_strings: if rng.next_u32().is_multiple_of(3) {
            vec!["e".into(), "the".into()]
        } else {
            Vec::new()
        },
        logit_bias: vec![(rng.next_u32() % vocab as u32, uniform(rng) * 4.0 - 2.0)],
        ..GenerateOptions::default()
    };
    match rng.next_u32() % 10 {
        0 => options.top_p = 0.0,
        1 => options.temperature = f32::NAN,
        _ => {}
    }
    options
}

#[test]
#[ignore = "stress test: tests/all.sh runs it with --ignored"]
fn eight_threads_share_a_model_under_random_load() {
    let model = tiny_model(1);
    let vocab = model.config().vocab_size;
    let warmed_up = Barrier::new(THREADS + 1);
    let finished = Barrier::new(THREADS + 1);
    let (mut ok, mut typed_errors, mut cancelled) = (0, 0, 0);
    let rss = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|worker| {
                let (model, warmed_up, finished) = (&model, &warmed_up, &finished);
                scope.spawn(move || {
                    let mut rng = ChaCha8Rng::seed_from_u64(worker as u64);
                    let mut session = model.session().unwrap();
                    let mut counts = (0, 0, 0);
                    for i in 0..GENERATIONS {
                        if i == WARM_UP {
                            warmed_up.wait();
                        }
                        if rng.next_u32().is_multiple_of(5) {
                            session = model.session().unwrap(); // drop mid-conversation
                        }
                        let options = random_options(&mut rng, vocab);
                        let prompt = PROMPTS[rng.next_u32() as usize % PROMPTS.len()];
                        let cancel_after = rng
                            .next_u32()
                            .is_multiple_of(4)
                            .then(|| Duration::from_micros(rng.next_u32() as u64 % 3000));
                        // Half the cancels through the session's handle, half
                        // through the call's token (which may be cancelled
                        // before the call starts).
                        let by_token = rng.next_u32().is_multiple_of(2);
                        let handle = session.cancel_handle();
                        let token = CancelToken::default();
                        let result = std::thread::scope(|inner| {
                            if let Some(delay) = cancel_after {
                                let token = token.clone();
                                inner.spawn(move || {
                                    std::thread::sleep(delay);
                                    match by_token {
                                        true => token.cancel(),
                                        false => handle.cancel(),
                                    }
                                });
                            }
                            session.generate_with_cancel(prompt, &options, &token, |_| true)
                        });
                        match result {
                            Ok(summary) if summary.stop_reason == StopReason::Cancelled => {
                                counts.2 += 1
                            }
                            Ok(_) => counts.0 += 1,
                            Err(Error::InvalidOption { .. } | Error::InvalidInput(_)) => {
                                counts.1 += 1
                            }
                            Err(other) => panic!("untyped failure: {other}"),
                        }
                        // Scoring in whatever state the call left (a shifted
                        // window, a prefill cut by a cancel) keeps the conversation.
                        if rng.next_u32().is_multiple_of(3) {
                            let text = PROMPTS[rng.next_u32() as usize % PROMPTS.len()];
                            let transcript = session.transcript().to_string();
                            let scores = session.score(text).expect("a short text scores");
                            assert_eq!(session.transcript(), transcript);
                            assert!(scores
                                .iter()
                                .all(|s| s.logprob.is_finite() && s.logprob <= 0.0));
                        }
                    }
                    finished.wait();
                    counts
                })
            })
            .collect();
        warmed_up.wait();
        let after_warm_up = rss_kb();
        finished.wait();
        let at_end = rss_kb();
        for worker in workers {
            let (o, e, c) = worker.join().expect("no worker panics");
            (ok, typed_errors, cancelled) = (ok + o, typed_errors + e, cancelled + c);
        }
        (after_warm_up, at_end)
    });
    let (after_warm_up, at_end) = rss;
    println!(
        "{} generations: {ok} ok, {cancelled} cancelled, {typed_errors} typed errors; \
         RSS {after_warm_up} KB after warm-up, {at_end} KB at the end",
        THREADS * GENERATIONS
    );
    assert_eq!(ok + typed_errors + cancelled, THREADS * GENERATIONS);
    assert!(ok > 0 && typed_errors > 0, "the mix exercises both paths");
    assert!(
        at_end <= after_warm_up + 16 * 1024,
        "resident memory grew from {after_warm_up} KB to {at_end} KB"
    );
}
