//! [`ChayaError`]: the error every fallible binding call throws.

/// Why a call failed. Each variant carries a message meant for people; in the
/// foreign languages it is the exception's message.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum ChayaError {
    /// Reading a file failed (e.g. the model file does not exist).
    #[error("{message}")]
    Io {
        /// What failed, with the path.
        message: String,
    },
    /// The model file is malformed, truncated or inconsistent.
    #[error("{message}")]
    InvalidModel {
        /// What is wrong with the file.
        message: String,
    },
    /// The tokenizer could not be loaded or could not encode/decode.
    #[error("{message}")]
    Tokenizer {
        /// What the tokenizer reported.
        message: String,
    },
    /// A load or generation option is out of range; the message names it.
    #[error("{message}")]
    InvalidOption {
        /// The option's name and what is wrong with its value.
        message: String,
    },
    /// An input (prompt, token ids, text) cannot be processed.
    #[error("{message}")]
    InvalidInput {
        /// What is wrong with the input.
        message: String,
    },
    /// The inference engine failed.
    #[error("{message}")]
    Inference {
        /// What the engine reported.
        message: String,
    },
    /// The session is already running a call (e.g. `generate` from two threads,
    /// or from inside its own token sink).
    #[error("{message}")]
    Busy {
        /// Which call was refused.
        message: String,
    },
    /// The token sink threw; generation stopped.
    #[error("{message}")]
    Callback {
        /// What the sink threw.
        message: String,
    },
}

/// An error a `TokenSink` may throw to stop generation. Any other
/// exception it throws arrives as one too; `generate` then fails with
/// `ChayaError.Callback`.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum TokenSinkError {
    /// The sink failed.
    #[error("{reason}")]
    Failed {
        /// What went wrong.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for TokenSinkError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        TokenSinkError::Failed {
            reason: error.reason,
        }
    }
}

impl From<TokenSinkError> for ChayaError {
    fn from(error: TokenSinkError) -> Self {
        ChayaError::Callback {
            message: format!("the token sink failed: {error}"),
        }
    }
}

impl From<chaya::Error> for ChayaError {
    fn from(error: chaya::Error) -> Self {
        let message = error.to_string();
        match error {
            chaya::Error::Io { .. } => ChayaError::Io { message },
            chaya::Error::InvalidModel(_) | chaya::Error::InvalidCheckpoint(_) => {
                ChayaError::InvalidModel { message }
            }
            chaya::Error::Tokenizer(_) => ChayaError::Tokenizer { message },
            chaya::Error::InvalidOption { .. } => ChayaError::InvalidOption { message },
            chaya::Error::InvalidInput(_) => ChayaError::InvalidInput { message },
            chaya::Error::Inference(_) => ChayaError::Inference { message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_variant_and_the_message() {
        let core = chaya::Error::InvalidOption {
            name: "temperature",
            reason: "-1 is not in 0..=100".into(),
        };
        let error = ChayaError::from(core);
        assert!(matches!(error, ChayaError::InvalidOption { .. }));
        assert_eq!(
            error.to_string(),
            "invalid option `temperature`: -1 is not in 0..=100"
        );
    }
}
