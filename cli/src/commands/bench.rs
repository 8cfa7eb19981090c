//! `chaya bench`: load time, time to first token, prefill and decode speed,
//! peak memory — each measured over repeated runs, reported as median and spread.
//!
//! The first token is timed right after loading (what an app waits for);
//! prefill and decode on a model that has already run a prompt of that length
//! once, as `benches/peers.py` times its peers (in warm sessions).

use crate::progress;
use chaya::eval::argmax;
use chaya::{Logits, Model, Session};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Model file.
    #[arg(short, long)]
    model: PathBuf,
    #[command(flatten)]
    load: super::LoadArgs,
    /// Repetitions of each measurement.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Tokens decoded per decode measurement.
    #[arg(long, default_value_t = 32)]
    decode_tokens: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// One measured quantity over all runs.
struct Metric {
    name: &'static str,
    unit: &'static str,
    samples: Vec<f64>,
}

impl Metric {
    fn median(&self) -> f64 {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        }
    }

    fn min(&self) -> f64 {
        self.samples.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn max(&self) -> f64 {
        self.samples
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

/// Deterministic prompt ids spread over the vocabulary.
fn prompt(len: usize, vocab: usize) -> Vec<u32> {
    (0..len).map(|i| ((i * 7919 + 13) % vocab) as u32).collect()
}

/// Seconds to prefill `ids` into a fresh session and pick the next token.
fn time_prefill(model: &Model, ids: &[u32]) -> anyhow::Result<f64> {
    let mut session = model.session()?;
    let start = Instant::now();
    argmax(&session.feed(ids, Logits::Last)?);
    Ok(start.elapsed().as_secs_f64())
}

/// Prefill speed (tokens/s) of a `len`-token prompt, timed after one untimed
/// prefill of the same length.
fn warm_prefill_speed(model: &Model, len: usize) -> anyhow::Result<f64> {
    let ids = prompt(len, model.config().vocab_size);
    time_prefill(model, &ids)?;
    Ok(len as f64 / time_prefill(model, &ids)?)
}

/// Decode speed (tokens/s) of `n` greedy tokens after a `context`-token prefill.
fn time_decode(model: &Model, context: usize, n: usize) -> anyhow::Result<f64> {
    let mut session: Session = model.session()?;
    let mut next =
        argmax(&session.feed(&prompt(context, model.config().vocab_size), Logits::Last)?);
    let start = Instant::now();
    for _ in 0..n {
        next = argmax(&session.feed(&[next], Logits::Last)?);
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// The int8 kernel set this CPU runs (`avx2`, `sdot`, ...), with AMX tiles
/// where prefill uses them: what an int8 model's speed depends on.
fn int8_kernels() -> String {
    let name = chaya::q8::kernels().name;
    if chaya::amx::available() {
        format!("{name} + amx")
    } else {
        name.to_string()
    }
}

/// Starts this process's peak resident memory count again from what is
/// resident now (Linux: `clear_refs`); whether it could.
fn restart_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak resident memory of this process in MB (Linux), if known.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    anyhow::ensure!(args.decode_tokens > 0, "--decode-tokens must be at least 1");
    let options = args.load.options();
    let file_mb = std::fs::metadata(&args.model)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.model.display()))?
        .len() as f64
        / 1e6;
    let metric = |name, unit| Metric {
        name,
        unit,
        samples: Vec::new(),
    };
    let mut load = metric("load", "ms");
    let mut ttft = metric("first token (16-token prompt)", "ms");
    let mut load_ttft = metric("load + first token", "ms");
    let mut prefill64 = metric("prefill 64 tokens", "tok/s");
    let mut prefill256 = metric("prefill 256 tokens", "tok/s");
    let mut decode64 = metric("decode at context 64", "tok/s");
    let mut decode200 = metric("decode at context 200", "tok/s");
    let mut decode448 = metric("decode at context 448", "tok/s");
    let mut peak = metric("peak resident memory", "MB");

    let bar = progress::bar("benchmarking", "runs");
    bar.set_length(args.runs as u64);
    let (mut threads, mut prefill_chunk) = (0, 0);
    for _ in 0..args.runs {
        // Each run's own peak where the count can restart, else one for all.
        let per_run = restart_peak_rss();
        let start = Instant::now();
        let model = Model::load(&args.model, &options)?;
        load.samples.push(start.elapsed().as_secs_f64() * 1e3);
        let vocab = model.config().vocab_size;
        let first = time_prefill(&model, &prompt(16, vocab))? * 1e3;
        ttft.samples.push(first);
        load_ttft.samples.push(start.elapsed().as_secs_f64() * 1e3);
        (threads, prefill_chunk) = (model.threads(), model.prefill_chunk());
        let context_length = model.config().context_length;
        anyhow::ensure!(
            context_length >= 448 + args.decode_tokens,
            "the model's context ({context_length}) is too short for this benchmark"
        );
        prefill64.samples.push(warm_prefill_speed(&model, 64)?);
        prefill256.samples.push(warm_prefill_speed(&model, 256)?);
        decode64
            .samples
            .push(time_decode(&model, 64, args.decode_tokens)?);
        decode200
            .samples
            .push(time_decode(&model, 200, args.decode_tokens)?);
        decode448
            .samples
            .push(time_decode(&model, 448, args.decode_tokens)?);
        if let Some(mb) = peak_rss_mb().filter(|_| per_run) {
            peak.samples.push(mb);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    let per_run_peaks = !peak.samples.is_empty();
    let process_peak = if per_run_peaks {
        Some(peak.max())
    } else {
        peak_rss_mb()
    };
    let mut metrics = vec![
        load, ttft, load_ttft, prefill64, prefill256, decode64, decode200, decode448,
    ];
    if per_run_peaks {
        metrics.push(peak);
    }
    if args.json {
        let entries: serde_json::Map<String, serde_json::Value> = metrics
            .iter()
            .map(|m| {
                let value = serde_json::json!({
                    "unit": m.unit, "median": m.median(), "min": m.min(), "max": m.max(),
                    "samples": m.samples,
                });
                (m.name.to_string(), value)
            })
            .collect();
        let report = serde_json::json!({
            "model": args.model.display().to_string(),
            "file_mb": file_mb,
            "threads": threads,
            "prefill_chunk": prefill_chunk,
            "int8_kernels": int8_kernels(),
            "runs": args.runs,
            "peak_rss_mb": process_peak,
            "metrics": entries,
        });
        outln!("{report:#}");
        return Ok(());
    }
    outln!(
        "{} ({file_mb:.1} MB), {threads} threads, prefill chunks of {prefill_chunk}, int8 kernels {}, {} runs",
        args.model.display(),
        int8_kernels(),
        args.runs
    );
    outln!(
        "{:<32} {:>10} {:>21}",
        "measurement",
        "median",
        "min .. max"
    );
    for m in &metrics {
        outln!(
            "{:<32} {:>10.1} {:>9.1} .. {:<9.1} {}",
            m.name,
            m.median(),
            m.min(),
            m.max(),
            m.unit
        );
    }
    if let Some(peak) = process_peak.filter(|_| !per_run_peaks) {
        outln!("{:<32} {peak:>10.1} MB (all runs)", "peak resident memory");
    }
    Ok(())
}
