//! One module per subcommand.

pub mod bench;
pub mod compare;
pub mod convert;
pub mod eval;
pub mod generate;
pub mod inspect;
pub mod score;

use chaya::{LoadOptions, Model};
use std::path::Path;

/// How every command that runs a model loads it.
#[derive(clap::Args)]
pub struct LoadArgs {
    /// Compute threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Most prompt tokens per forward pass (default 256); smaller lowers a
    /// long prompt's peak memory, at some speed.
    #[arg(long)]
    prefill_chunk: Option<usize>,
}

impl LoadArgs {
    /// The load options these flags ask for.
    pub fn options(&self) -> LoadOptions {
        LoadOptions {
            threads: self.threads,
            prefill_chunk: self.prefill_chunk,
            ..LoadOptions::default()
        }
    }

    /// Loads the model file at `path` with these options.
    pub fn load(&self, path: &Path) -> anyhow::Result<Model> {
        Ok(Model::load(path, &self.options())?)
    }
}

/// The contents of a UTF-8 text file, with an error naming the file.
pub fn read_text(path: &Path) -> anyhow::Result<String> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    String::from_utf8(bytes)
        .map_err(|e| anyhow::anyhow!("{} is not valid UTF-8: {e}", path.display()))
}
