//! The error type of every fallible call in this crate.

/// Why a call failed. Each variant carries a message meant for people.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("I/O error on {path}: {cause}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error: part of the message, so not also a
        /// `source()` (error reporters would print it twice).
        cause: std::io::Error,
    },
    /// The model file is malformed, truncated or inconsistent.
    #[error("invalid model file: {0}")]
    InvalidModel(String),
    /// A checkpoint to convert is malformed or does not hold a CHAYA model.
    #[error("invalid checkpoint: {0}")]
    InvalidCheckpoint(String),
    /// The tokenizer could not be loaded or could not encode/decode.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    /// A generation or load option is out of range.
    #[error("invalid option `{name}`: {reason}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// An input (prompt, token ids, text) cannot be processed.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The inference engine failed.
    #[error("inference failed: {0}")]
    Inference(String),
}

impl Error {
    /// An I/O error with the path it happened on.
    pub(crate) fn io(path: impl AsRef<std::path::Path>, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            cause,
        }
    }
}

impl From<tract_core::prelude::TractError> for Error {
    fn from(e: tract_core::prelude::TractError) -> Self {
        Error::Inference(format!("{e:#}"))
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
