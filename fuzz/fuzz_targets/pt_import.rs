//! The `.pt` / safetensors checkpoint importer on arbitrary file contents
//! (it reads from a path, so each input goes through a temporary file).
#![no_main]

use chaya::import::{read_checkpoint, ConvertOptions};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn scratch_file() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("chaya-fuzz-pt-{}.pt", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch_file();
    std::fs::write(path, data).expect("temporary file is writable");
    let _ = read_checkpoint(path, &ConvertOptions::default(), |_, _| {});
});
