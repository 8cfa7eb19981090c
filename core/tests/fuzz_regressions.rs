//! Replays the fuzzers' committed inputs on stable, through the same calls as
//! the fuzz targets (`fuzz/fuzz_targets/`): the seed corpora of the model-file
//! loader, and every crash input once fixed (`fuzz/regressions/<target>/`).

mod common;

use chaya::{LoadOptions, Logits, Model};
use common::repo_path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The files of `fuzz/<dir>`, sorted (none when it does not exist).
fn inputs(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = repo_path("fuzz").join(dir);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// What `fuzz_targets/model_file.rs` does with one input; whether it loaded.
fn load_and_run(data: &[u8]) -> bool {
    let options = LoadOptions {
        threads: 1,
        context_length: Some(8),
        prefill_chunk: None,
    };
    match Model::from_bytes(data, &options) {
        Ok(model) => {
            let mut session = model.session().expect("a loaded model makes sessions");
            let _ = session.feed(&[0], Logits::Last);
            true
        }
        Err(_) => false,
    }
}

#[test]
fn model_file_seeds_load_and_run() {
    let seeds = inputs("seeds/model_file");
    assert!(seeds.len() >= 4, "seed corpus missing");
    for (name, data) in seeds {
        assert_eq!(load_and_run(&data), name.starts_with("micro_"), "{name}");
    }
}

/// Panics anywhere in this test binary, caught or not (libFuzzer counts a
/// caught panic as a crash too: it aborts in the panic hook).
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
}

#[test]
fn model_file_regressions_fail_cleanly() {
    count_panics();
    let crashes = inputs("regressions/model_file");
    assert!(!crashes.is_empty());
    for (name, data) in crashes {
        assert!(!load_and_run(&data), "{name} loads");
        assert_eq!(PANICS.load(Ordering::SeqCst), 0, "{name} panicked");
    }
}

/// What `fuzz_targets/pt_import.rs` does with one input.
#[cfg(feature = "convert")]
fn import(data: &[u8], scratch: &std::path::Path) -> chaya::Result<()> {
    use chaya::import::{read_checkpoint, ConvertOptions};
    std::fs::write(scratch, data).unwrap();
    read_checkpoint(scratch, &ConvertOptions::default(), |_, _| {}).map(drop)
}

#[cfg(feature = "convert")]
#[test]
fn pt_import_regressions_fail_cleanly() {
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-regression.pt");
    let crashes = inputs("regressions/pt_import");
    assert!(!crashes.is_empty());
    for (name, data) in crashes {
        let err = import(&data, &scratch).expect_err(&name).to_string();
        assert!(err.contains("invalid checkpoint"), "{name}: {err}");
    }
    // The same pickle checks pass a good checkpoint.
    let good = std::fs::read(repo_path("tests/fixtures/micro_ok.pt")).unwrap();
    import(&good, &scratch).unwrap();
    let _ = std::fs::remove_file(scratch);
}
