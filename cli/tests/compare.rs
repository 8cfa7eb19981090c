//! `chaya compare` end to end: the fixture checkpoint converted to f32 and
//! int8, then compared.

mod common;

use common::{chaya, repo_path};
use std::path::Path;

fn convert(dir: &Path, dtype: &str) -> String {
    let out = dir.join(format!("tiny-{dtype}.safetensors"));
    let fixture = repo_path("tests/fixtures/tiny_wrapped.pt");
    let (fixture, out_str) = (fixture.to_str().unwrap(), out.to_str().unwrap());
    let status = chaya(&["convert", fixture, "-o", out_str, "--dtype", dtype]);
    assert!(status.status.success(), "{status:?}");
    out_str.to_string()
}

fn compare(args: &[&str]) -> serde_json::Value {
    let output = chaya(&[&["compare", "--json"], args].concat());
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

#[test]
fn compares_int8_with_f32_and_a_model_with_itself() {
    let scratch = common::temp_dir("compare");
    let dir = scratch.path();
    let (f32_file, int8_file) = (convert(dir, "f32"), convert(dir, "int8"));
    let text = repo_path("tests/fixtures/text.txt");
    let text = text.to_str().unwrap();

    let same = compare(&[&f32_file, &f32_file, "-n", "8"]);
    assert_eq!(same["agreement"]["top1"], 1.0);
    assert_eq!(
        same["agreement"]["identical"], 20,
        "the 20 built-in prompts"
    );
    assert!(same.get("text").is_none());
    let same = compare(&[
        &f32_file, &f32_file, "-n", "1", "--text", text, "--ctx", "32",
    ]);
    assert_eq!(same["text"]["divergence"]["mean_kl"], 0.0, "{same}");
    assert_eq!(same["text"]["relative_change"], 0.0, "{same}");

    let int8 = compare(&[
        &f32_file, &int8_file, "-n", "8", "--text", text, "--ctx", "32",
    ]);
    let top1 = int8["agreement"]["top1"].as_f64().unwrap();
    assert!((0.8..=1.0).contains(&top1), "{int8}");
    let change = int8["text"]["relative_change"].as_f64().unwrap();
    assert!(change.abs() < 0.01, "{int8}");
    let kl = int8["text"]["divergence"]["mean_kl"].as_f64().unwrap();
    assert!(kl > 0.0 && kl < 0.01, "{int8}");

    let bad = chaya(&["compare", &f32_file, &int8_file, "-n", "0"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("at least one"));
}
