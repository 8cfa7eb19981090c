//! Resource limits of the model-file loader: truncated files, absurd headers and
//! files larger than memory fail with a clear error, never a fault or an abort.

mod common;

use chaya::model_file::ModelFile;
use chaya::{Config, LoadOptions, Model};
use common::repo_path;
use std::io::Write;
use tempfile::NamedTempFile;

fn tiny_model_bytes() -> Vec<u8> {
    std::fs::read(repo_path("models/chaya-tiny-random.safetensors")).unwrap()
}

fn load_error(path: &std::path::Path) -> String {
    Model::load(path, &LoadOptions::default())
        .unwrap_err()
        .to_string()
}

/// A safetensors header (length prefix included) for `tensors` laid out back to back.
fn header(metadata: serde_json::Value, tensors: &[(&str, &str, Vec<usize>)]) -> Vec<u8> {
    let mut table = serde_json::Map::new();
    table.insert("__metadata__".into(), metadata);
    let mut offset = 0usize;
    for (name, dtype, shape) in tensors {
        let width = if *dtype == "F32" { 4 } else { 1 };
        let end = offset + width * shape.iter().product::<usize>();
        table.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let text = serde_json::Value::Object(table).to_string();
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(text.as_bytes());
    bytes
}

#[test]
fn file_truncated_mid_tensor_is_a_clear_error() {
    let good = tiny_model_bytes();
    let file = NamedTempFile::new().unwrap();
    let header_end = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    for cut in [good.len() - 1, good.len() - 100_000, good.len() / 2, 1000] {
        std::fs::write(file.path(), &good[..cut]).unwrap();
        let err = load_error(file.path());
        assert!(
            err.contains("invalid model file") && err.contains("truncated"),
            "cut at {cut}: {err}"
        );
        if cut >= header_end {
            assert!(err.contains("in tensor `"), "names the cut tensor: {err}");
        } else {
            assert!(err.contains("the header needs"), "{err}");
        }
        let from_bytes = Model::from_bytes(&good[..cut], &LoadOptions::default()).unwrap_err();
        assert!(from_bytes.to_string().contains("invalid model file"));
    }
    let mut longer = good.clone();
    longer.extend_from_slice(b"trailing");
    std::fs::write(file.path(), &longer).unwrap();
    assert!(load_error(file.path()).contains("8 bytes after the last tensor"));
}

#[test]
fn absurd_header_lengths_are_clear_errors() {
    let file = NamedTempFile::new().unwrap();
    for n in [u64::MAX, 1 << 40, 100_000_001] {
        let mut bytes = n.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        std::fs::write(file.path(), &bytes).unwrap();
        let err = load_error(file.path());
        assert!(err.contains("header length"), "{n}: {err}");
        assert!(Model::from_bytes(&bytes, &LoadOptions::default()).is_err());
    }
    // A header longer than the file.
    let mut bytes = 1000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(file.path(), &bytes).unwrap();
    assert!(load_error(file.path()).contains("truncated: the header needs 1008 bytes"));
    // A tensor table describing a terabyte in a tiny file.
    let mut bytes = header(
        serde_json::json!({}),
        &[("w", "F32", vec![1 << 20, 1 << 18])],
    );
    bytes.extend_from_slice(&[0; 64]);
    std::fs::write(file.path(), &bytes).unwrap();
    let err = load_error(file.path());
    assert!(err.contains("truncated in tensor `w`"), "{err}");
}

/// Total memory of this machine in bytes (Linux), if known.
fn mem_total() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = info
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[test]
fn model_file_larger_than_memory_is_a_clear_error() {
    // A sparse file whose f32 embedding alone needs several times this machine's
    // memory once decoded. With the kernel's default heuristic overcommit such
    // an allocation is refused up front, which the loader must report.
    let overcommit = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap_or_default();
    let Some(memory) = mem_total().filter(|_| overcommit.trim() == "0") else {
        eprintln!("skipped: needs Linux with heuristic overcommit (vm.overcommit_memory = 0)");
        return;
    };
    let vocab = 1 << 20;
    let e_dim = ((4 * memory) / (4 * vocab as u64)).next_power_of_two() as usize;
    assert!(
        e_dim <= 1 << 20,
        "the machine has more memory than a config can describe"
    );
    let config = Config {
        vocab_size: vocab,
        e_dim,
        d_model: 2,
        n_layers: 1,
        n_heads: 1,
        ffn_dim: 2,
        context_length: 8,
        train_context: 8,
        rope_base: 10000.0,
        norm_eps: 1e-8,
        eos_token_id: 0,
    };
    let metadata = serde_json::json!({
        "format": "chaya-v1",
        "config": serde_json::to_string(&config).unwrap(),
        "tokenizer": "{}",
    });
    let shapes = config.tensor_shapes();
    let tensors: Vec<(&str, &str, Vec<usize>)> = shapes
        .iter()
        .map(|(name, shape)| (name.as_str(), "F32", shape.clone()))
        .collect();
    let head = header(metadata, &tensors);
    let data: u64 = shapes
        .iter()
        .map(|(_, s)| 4 * s.iter().product::<usize>() as u64)
        .sum();
    let file = NamedTempFile::new().unwrap();
    let mut f = std::fs::File::create(file.path()).unwrap();
    f.write_all(&head).unwrap();
    if f.set_len(head.len() as u64 + data).is_err() {
        eprintln!("skipped: the file system refuses a sparse file of {data} bytes");
        return;
    }
    drop(f);
    let err = ModelFile::read_path(file.path()).unwrap_err().to_string();
    assert!(err.contains("do not fit in memory"), "{err}");
}
