//! The time to pick one token from CHAYA's 50 257 logits, beside the floor
//! every chain pays (greedy argmax, no penalties): the default options
//! (repetition penalty, top-k 40, top-p 0.95, min-p 0.05), the same with
//! top-k off (top-p then ranks the whole vocabulary), greedy with the
//! default penalty, and the original CLI's chain (`--compat`: three penalties). A decoded token's forward pass takes ~3 ms on a laptop
//! CPU: `cargo bench -p chaya --bench sampler`.

use std::hint::black_box;

use chaya::sampler::SamplerChain;
use chaya::GenerateOptions;
use criterion::{criterion_group, criterion_main, Criterion};

const VOCAB: usize = 50_257;
const CONTEXT: usize = 256;

/// Deterministic logits shaped like a language model's: roughly normal with
/// a standard deviation of 3, so a few hundred tokens hold most of the mass.
fn logits() -> Vec<f32> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..VOCAB)
        .map(|_| 3.0 * ((0..12).map(|_| uniform()).sum::<f32>() - 6.0))
        .collect()
}

/// `CONTEXT` token ids spread over the vocabulary, some repeated.
fn context() -> Vec<u32> {
    (0..CONTEXT as u32)
        .map(|i| (i * 7919) % 4099 * 11)
        .collect()
}

fn sampler(c: &mut Criterion) {
    let (logits, context) = (logits(), context());
    let chains = [
        ("greedy argmax", SamplerChain::greedy(vec![])),
        (
            "greedy, repetition penalty",
            GenerateOptions {
                temperature: 0.0,
                ..Default::default()
            }
            .sampler_chain(1),
        ),
        ("default", GenerateOptions::default().sampler_chain(1)),
        (
            "default, top-k off",
            GenerateOptions {
                top_k: 0,
                ..Default::default()
            }
            .sampler_chain(1),
        ),
        ("compat", GenerateOptions::compat().sampler_chain(1)),
    ];
    let mut group = c.benchmark_group("sample one token");
    for (name, mut chain) in chains {
        group.bench_function(name, |b| {
            b.iter(|| chain.sample(black_box(&logits), black_box(&context)))
        });
    }
    group.finish();
}

criterion_group!(benches, sampler);
criterion_main!(benches);
