//! [`Model`]: a loaded model, shared by any number of sessions.

use crate::error::ChayaError;
use crate::options::LoadOptions;
use crate::session::Session;
use std::sync::Arc;

/// A loaded CHAYA model: weights compiled for the CPU, plus the tokenizer.
/// Thread-safe; open one `Session` per conversation.
#[derive(Debug, uniffi::Object)]
pub struct Model {
    inner: chaya::Model,
}

#[uniffi::export]
impl Model {
    /// Loads a model file (`.safetensors` with config and tokenizer inside),
    /// memory-mapped: while the model lives, replace the file by renaming a new
    /// one over it, never by rewriting it in place (that can crash the app).
    #[uniffi::constructor(default(options))]
    pub fn from_path(path: String, options: LoadOptions) -> Result<Arc<Model>, ChayaError> {
        let inner = chaya::Model::load(path, &options.into())?;
        Ok(Arc::new(Model { inner }))
    }

    /// Loads a model file held in memory (e.g. an app asset).
    #[uniffi::constructor(default(options))]
    pub fn from_bytes(bytes: Vec<u8>, options: LoadOptions) -> Result<Arc<Model>, ChayaError> {
        let inner = chaya::Model::from_vec(bytes, &options.into())?;
        Ok(Arc::new(Model { inner }))
    }

    /// Number of token ids.
    pub fn vocab_size(&self) -> u32 {
        to_u32(self.inner.config().vocab_size)
    }

    /// The attention window in tokens (the file's value or `LoadOptions.context_length`).
    pub fn context_length(&self) -> u32 {
        to_u32(self.inner.config().context_length)
    }

    /// Most prompt tokens computed per forward pass (256 or `LoadOptions.prefill_chunk`).
    pub fn prefill_chunk(&self) -> u32 {
        to_u32(self.inner.prefill_chunk())
    }

    /// The end-of-text token id.
    pub fn eos_token_id(&self) -> u32 {
        self.inner.config().eos_token_id
    }

    /// Compute threads of the model, shared by its sessions.
    pub fn threads(&self) -> u32 {
        to_u32(self.inner.threads())
    }

    /// Token ids of `text`, with no special tokens added (the text
    /// `<|endoftext|>` itself reads as the end-of-text token, as in the reference).
    pub fn encode(&self, text: String) -> Result<Vec<u32>, ChayaError> {
        Ok(self.inner.tokenizer().encode(&text)?)
    }

    /// The text of token ids (invalid UTF-8 becomes U+FFFD).
    pub fn decode(&self, ids: Vec<u32>) -> Result<String, ChayaError> {
        Ok(self.inner.tokenizer().decode(&ids)?)
    }

    /// A new session (conversation) with an empty context.
    pub fn new_session(&self) -> Result<Arc<Session>, ChayaError> {
        Ok(Arc::new(Session::new(self.inner.session()?)))
    }
}

/// `n` as u32, saturating (sizes here are far below `u32::MAX`).
pub(crate) fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
