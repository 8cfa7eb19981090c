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

/// The contents of a UTF-8 text file, with an error naming the file.
pub fn read_text(path: &Path) -> anyhow::Result<String> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    String::from_utf8(bytes)
        .map_err(|e| anyhow::anyhow!("{} is not valid UTF-8: {e}", path.display()))
}
