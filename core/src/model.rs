//! `Model`: a loaded CHAYA model, shared read-only by any number of sessions.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::graph::{build_body, build_head, into_plan, Plan};
use crate::model_file::{ModelFile, Weight};
use crate::parallel::ComputePool;
use crate::session::Session;
use crate::tokenizer::Tokenizer;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Reads one byte per page of the int8 weights, so a memory-mapped file's
/// pages are mapped now, while the tokenizer parses, instead of faulting one
/// by one during the first forward pass (a third of its time, measured).
fn prefault(tensors: &HashMap<String, Weight>) {
    const PAGE: usize = 4096;
    for weight in tensors.values() {
        if let Weight::Int8(matrix) = weight {
            let bytes = matrix.row_range(0, matrix.rows());
            for page in bytes.iter().step_by(PAGE) {
                std::hint::black_box(*page);
            }
        }
    }
}

/// How to load a model.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Compute threads per session; 0 picks the number of available cores.
    pub threads: usize,
    /// Attention window (KV cache capacity); `None` keeps the file's value.
    pub context_length: Option<usize>,
}

/// A loaded model: weights compiled into tract plans, plus the tokenizer.
/// Cheap to clone (shared); `Send + Sync`.
#[derive(Clone, Debug)]
pub struct Model {
    inner: Arc<ModelInner>,
}

#[derive(Debug)]
struct ModelInner {
    config: Config,
    tokenizer: Tokenizer,
    body: Plan,
    head: Plan,
    threads: usize,
    /// The threads both plans run on.
    pool: ComputePool,
}

impl Model {
    /// Loads a model file from a path, memory-mapped.
    ///
    /// A truncated or corrupt file gives [`Error::InvalidModel`] (its length is
    /// checked against the tensor table before mapping). int8 weights are read
    /// from the mapping for as long as the model lives, so the file must not be
    /// truncated or rewritten in place meanwhile: that can raise SIGBUS or
    /// change the weights. Replace model files by renaming a new file over them.
    pub fn load(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Model> {
        let start = std::time::Instant::now();
        let model = Self::from_file(ModelFile::read_path(path.as_ref())?, options)?;
        log::info!(
            "loaded {} in {:.0?}",
            path.as_ref().display(),
            start.elapsed()
        );
        Ok(model)
    }

    /// Loads a model file held in memory (e.g. an app asset).
    pub fn from_bytes(bytes: &[u8], options: &LoadOptions) -> Result<Model> {
        Self::from_file(ModelFile::read_bytes(bytes)?, options)
    }

    /// Compiles a decoded model file.
    pub fn from_file(file: ModelFile, options: &LoadOptions) -> Result<Model> {
        let mut config = file.config;
        if let Some(context_length) = options.context_length {
            if context_length == 0 || context_length > 1 << 16 {
                return Err(Error::InvalidOption {
                    name: "context_length",
                    reason: format!("{context_length} is not in 1..=65536"),
                });
            }
            config.context_length = context_length;
        }
        let threads = match options.threads {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n if n > 256 => {
                return Err(Error::InvalidOption {
                    name: "threads",
                    reason: format!("{n} is more than 256"),
                })
            }
            n => n,
        };
        let pool = ComputePool::new(threads)?;
        let executor = pool.tract_executor();
        // The tokenizer takes longer than the graphs: compile them on the core
        // its single-threaded part leaves free.
        let (tokenizer, plans) = Tokenizer::from_json_alongside(&file.tokenizer_json, || {
            let plans = build_body(&config, &file.tensors)
                .and_then(|body| into_plan(body, &executor))
                .and_then(|body| {
                    Ok((
                        body,
                        into_plan(build_head(&config, &file.tensors)?, &executor)?,
                    ))
                });
            prefault(&file.tensors);
            plans
        });
        let (body, head) = plans?;
        let tokenizer = tokenizer?;
        if tokenizer.vocab_size() != config.vocab_size {
            return Err(Error::InvalidModel(format!(
                "tokenizer has {} tokens but the model {}",
                tokenizer.vocab_size(),
                config.vocab_size
            )));
        }
        Ok(Model {
            inner: Arc::new(ModelInner {
                config,
                tokenizer,
                body,
                head,
                threads,
                pool,
            }),
        })
    }

    /// Hyper-parameters (with the effective context length).
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The tokenizer embedded in the model file.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.inner.tokenizer
    }

    /// Compute threads each session uses.
    pub fn threads(&self) -> usize {
        self.inner.threads
    }

    /// A new session with an empty KV cache.
    pub fn session(&self) -> Result<Session> {
        Session::new(self.clone())
    }

    pub(crate) fn body(&self) -> &Plan {
        &self.inner.body
    }

    pub(crate) fn head(&self) -> &Plan {
        &self.inner.head
    }

    pub(crate) fn pool(&self) -> &ComputePool {
        &self.inner.pool
    }
}
