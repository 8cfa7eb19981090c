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
pub mod q8;
pub mod quant;
pub mod rope;
pub mod sampler;
pub mod session;
pub mod stop_strings;
pub mod tokenizer;
pub mod utf8_stream;
pub mod vector;

pub use config::Config;
pub use error::{Error, Result};
pub use generate::{CancelHandle, GenerateOptions, GenerateSummary, StopReason};
pub use model::{LoadOptions, Model};
pub use session::{Logits, Session};
pub use tokenizer::Tokenizer;
