//! The int8 kernel sets this CPU runs, side by side on one of CHAYA's
//! matrices (SwiGLU's `w1`, 2560 × 640), on one thread: decode (one
//! activation row through the 8-row tiles) and prefill (64 rows: packing and
//! panels). All sets compute the same numbers; this shows which is fastest
//! where the choice is open, e.g. `smmla` against `sdot` on a phone:
//! `cargo bench -p chaya --bench kernels`.

use std::hint::black_box;

use chaya::q8::{kernel_sets, Kernels, Q8Rows, PANEL_ROWS};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const ROWS: usize = 2560;
const COLS: usize = 640;
const PROMPT: usize = 64;

/// Deterministic int8 weights, `ROWS` rows of `COLS`.
fn weights() -> Vec<Vec<i8>> {
    (0..ROWS)
        .map(|j| {
            (0..COLS)
                .map(|i| ((i * 7 + j * 13) % 255) as i32 - 127)
                .map(|v| v as i8)
                .collect()
        })
        .collect()
}

/// `rows` quantized activation rows.
fn activations(rows: usize) -> Q8Rows {
    let x: Vec<f32> = (0..rows * COLS).map(|i| (i as f32 * 0.37).sin()).collect();
    Q8Rows::quantize(&x, COLS)
}

/// Every weight row through `k`'s decode tiles with one activation row.
fn decode(k: &Kernels, w: &[Vec<i8>], x: &Q8Rows) -> f32 {
    let mut total = 0.0;
    for rows in w.chunks_exact(8) {
        let tile = std::array::from_fn(|j| &rows[j][..]);
        total += (k.w8x1)(&tile, x.row(0), &[]).iter().sum::<f32>();
    }
    total
}

/// Every weight row packed and through `k`'s panels with every activation row.
fn prefill(k: &Kernels, w: &[Vec<i8>], x: &Q8Rows, packed: &mut Vec<i8>) -> f32 {
    let mut total = 0.0;
    for rows in w.chunks_exact(PANEL_ROWS) {
        let panel = std::array::from_fn(|j| &rows[j][..]);
        (k.pack)(&panel, packed);
        (k.panel)(&panel, packed, x, &mut |_, sums| {
            total += sums.iter().flatten().sum::<f32>()
        });
    }
    total
}

fn kernels(c: &mut Criterion) {
    let w = weights();
    let one = activations(1);
    let prompt = activations(PROMPT);
    let mut group = c.benchmark_group("decode, 1 row");
    group.throughput(Throughput::Elements((ROWS * COLS) as u64));
    for k in kernel_sets() {
        group.bench_function(k.name, |b| {
            b.iter(|| decode(k, black_box(&w), black_box(&one)))
        });
    }
    group.finish();
    let mut group = c.benchmark_group(format!("prefill, {PROMPT} rows"));
    group.throughput(Throughput::Elements((PROMPT * ROWS * COLS) as u64));
    let mut packed = Vec::new();
    for k in kernel_sets() {
        group.bench_function(k.name, |b| {
            b.iter(|| prefill(k, black_box(&w), black_box(&prompt), &mut packed))
        });
    }
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
