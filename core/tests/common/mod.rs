//! Helpers shared by the integration tests.
#![allow(dead_code)]

use chaya::{LoadOptions, Model};
use std::path::PathBuf;

/// A path relative to the repository root.
pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// The committed small random-weight model (`models/chaya-tiny-random.safetensors`).
pub fn tiny_model(threads: usize) -> Model {
    let options = LoadOptions {
        threads,
        ..LoadOptions::default()
    };
    Model::load(repo_path("models/chaya-tiny-random.safetensors"), &options)
        .expect("the committed tiny model loads")
}
