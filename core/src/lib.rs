//! # chaya — the CHAYA-v1 language model on device
//!
//! Loads a single-file CHAYA model (safetensors with config and tokenizer
//! inside), compiles it into tract graphs with a KV cache, and runs it on CPU.
//!
//! ```no_run
//! use chaya::{LoadOptions, Logits, Model};
//! let model = Model::load("chaya.safetensors", &LoadOptions::default())?;
//! let mut session = model.session()?;
//! let ids = model.tokenizer().encode("Once upon a time")?;
//! let logits = session.feed(&ids, Logits::Last)?;
//! assert_eq!(logits.len(), model.config().vocab_size);
//! # Ok::<(), chaya::Error>(())
//! ```
//!
//! Cargo features:
//! - `tract-threads` (default): tract's own ops (norms, elementwise, float
//!   matmuls) run on the model's threads too; without it they run on one of
//!   them, while the int8 matmuls and attention use all threads either way.
//!   With it, loading a model with several threads lowers tract-linalg's
//!   process-wide threshold for threading a matrix-vector product
//!   ([`LoadOptions::threads`]).
//! - `any-tokenizer` (default): tokenizers other than GPT-2-style byte-level
//!   BPE, through the `tokenizers` deserializer; without it such a file is an
//!   [`Error::Tokenizer`].
//! - `convert`: import of the published PyTorch checkpoints (`import`,
//!   reading torch zips with `pytorch`).
//!
//! The mobile libraries leave out the default features (1.6 and 0.4 MB of
//! code; README, "Mobile").

#![warn(missing_docs)]

pub mod amx;
pub mod attention;
pub mod config;
pub mod error;
pub mod eval;
pub mod generate;
pub mod graph;
#[cfg(feature = "convert")]
pub mod import;
pub mod int8;
pub mod model;
pub mod model_file;
pub mod parallel;
#[cfg(feature = "convert")]
mod pytorch;
pub mod q8;
pub mod quant;
pub mod rope;
pub mod sampler;
pub mod score;
pub mod session;
pub mod stop_strings;
pub mod tokenizer;
pub mod utf8_stream;
pub mod vector;

/// The committed tiny random-weight model the unit tests load.
#[cfg(test)]
const TINY_MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../models/chaya-tiny-random.safetensors"
);

pub use config::Config;
pub use error::{Error, Result};
pub use generate::{
    CancelHandle, CancelToken, GenerateOptions, GenerateSummary, StopReason, MIN_TEMPERATURE,
};
pub use model::{LoadOptions, Model};
pub use score::TokenLogprob;
pub use session::{Logits, Session};
pub use tokenizer::Tokenizer;

/// The README's Rust example, compiled by `cargo test --doc` so it stays in
/// step with the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExample;
