//! `chaya bench` end to end on the committed tiny model: every measurement
//! reported with one sample per run (speeds are not asserted: this is not a
//! timed test), and bad parameters rejected.

mod common;

fn bench(args: &[&str]) -> std::process::Output {
    let model = common::tiny_model();
    common::chaya(&[&["bench", "-m", &model, "--threads", "1"], args].concat())
}

#[test]
fn reports_every_measurement_once_per_run() {
    let output = bench(&["--runs", "2", "--decode-tokens", "2", "--json"]);
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(report["runs"], 2);
    assert_eq!(report["threads"], 1);
    assert_eq!(report["prefill_chunk"], 256);
    let kernels = report["int8_kernels"].as_str().unwrap();
    assert_eq!(kernels.split(" + ").next(), Some(chaya::q8::kernels().name));
    assert!(report["file_mb"].as_f64().unwrap() > 0.0);
    let metrics = report["metrics"].as_object().unwrap();
    // Each run's peak memory where the count can restart (Linux).
    let per_run_peaks = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let peak = per_run_peaks.then_some("peak resident memory");
    let names = [
        "load",
        "first token (16-token prompt)",
        "load + first token",
        "prefill 64 tokens",
        "prefill 256 tokens",
        "decode at context 64",
        "decode at context 200",
        "decode at context 448",
    ];
    let names: Vec<&str> = names.into_iter().chain(peak).collect();
    assert_eq!(metrics.len(), names.len());
    if let Some(peak) = peak {
        assert_eq!(metrics[peak]["max"], report["peak_rss_mb"]);
    }
    for &name in &names {
        let samples = metrics[name]["samples"].as_array().unwrap();
        assert_eq!(samples.len(), 2, "{name}");
        for sample in samples {
            let value = sample.as_f64().unwrap();
            assert!(value.is_finite() && value > 0.0, "{name}: {value}");
        }
        let (min, median, max) = (
            metrics[name]["min"].as_f64().unwrap(),
            metrics[name]["median"].as_f64().unwrap(),
            metrics[name]["max"].as_f64().unwrap(),
        );
        assert!(min <= median && median <= max, "{name}");
    }
    // Each run's load + first token spans its load and its first token.
    let samples = |name: &str| -> Vec<f64> {
        let samples = metrics[name]["samples"].as_array().unwrap();
        samples.iter().map(|s| s.as_f64().unwrap()).collect()
    };
    let (load, first, both) = (
        samples("load"),
        samples("first token (16-token prompt)"),
        samples("load + first token"),
    );
    for run in 0..both.len() {
        assert!(
            both[run] >= load[run] + first[run],
            "run {run}: {both:?} {load:?} {first:?}"
        );
    }
}

#[test]
fn rejects_zero_runs_and_zero_decode_tokens() {
    for args in [["--runs", "0"], ["--decode-tokens", "0"]] {
        let output = bench(&args);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("must be at least 1"), "{stderr}");
    }
}

#[test]
fn runs_with_the_prefill_chunk_asked_for_and_rejects_zero() {
    let output = bench(&[
        "--runs",
        "1",
        "--decode-tokens",
        "1",
        "--prefill-chunk",
        "100",
        "--json",
    ]);
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(report["prefill_chunk"], 100);

    let output = bench(&["--prefill-chunk", "0"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("prefill_chunk") && stderr.contains("1..=65536"),
        "{stderr}"
    );
}
