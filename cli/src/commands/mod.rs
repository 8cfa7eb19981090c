//! One module per subcommand.

pub mod bench;
pub mod compare;
pub mod convert;
pub mod eval;
pub mod generate;
pub mod inspect;

use chaya::{LoadOptions, Model};
use std::path::Path;

/// Loads a model with `threads` compute threads (0 = all cores).
pub fn load_model(path: &Path, threads: usize) -> anyhow::Result<Model> {
    Ok(Model::load(
        path,
        &LoadOptions {
            threads,
            ..LoadOptions::default()
        },
    )?)
}
