//! `Model`: a loaded CHAYA model, shared read-only by any number of sessions.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::graph::{build_body, build_head, into_plan, Plan};
use crate::model_file::{ModelFile, Weight};
use crate::parallel::ComputePool;
use crate::session::{Session, DEFAULT_PREFILL_CHUNK};
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

/// Hands the pages glibc keeps after loading back to the system.
///
/// Compiling the graphs and parsing the tokenizer free tens of MB of
/// temporaries that glibc's arenas keep resident; trimming them lowered the
/// peak of a later generation by ~3 MB (96.7 to 93.7 MB for 200 tokens, int8)
/// and an f32 model's resident memory while generating by ~15 MB. Other C
/// libraries return memory their own way.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `value` when it is in 1..=65536 (token counts), else an option error.
fn in_token_range(name: &'static str, value: usize) -> Result<usize> {
    if (1..=1 << 16).contains(&value) {
        Ok(value)
    } else {
        Err(Error::InvalidOption {
            name,
            reason: format!("{value} is not in 1..=65536"),
        })
    }
}

/// How to load a model.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Compute threads of the model, shared by its sessions, at most 256; 0
    /// picks the number of available cores. With more than one (and the default
    /// `tract-threads` feature), loading lowers tract-linalg's process-wide
    /// threshold for splitting a matrix-vector product over threads to 2^18
    /// multiply-adds, so that an f32 model's decode uses them all; a program
    /// that also runs its own tract models shares that setting.
    pub threads: usize,
    /// Attention window (KV cache capacity), in 1..=65536; `None` keeps the
    /// file's value.
    pub context_length: Option<usize>,
    /// Most prompt tokens one forward pass computes, in 1..=65536; `None`
    /// uses [`DEFAULT_PREFILL_CHUNK`]. Smaller chunks lower a long prompt's
    /// peak memory and let a cancel end its prefill sooner, at some speed.
    pub prefill_chunk: Option<usize>,
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
    prefill_chunk: usize,
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

    /// Loads a model file held in memory (e.g. an app asset); its int8
    /// weights are copied.
    pub fn from_bytes(bytes: &[u8], options: &LoadOptions) -> Result<Model> {
        Self::from_file(ModelFile::read_bytes(bytes)?, options)
    }

    /// Loads a model file from memory it takes over: int8 weights are read in
    /// place, so loading needs no second copy of them.
    pub fn from_vec(bytes: Vec<u8>, options: &LoadOptions) -> Result<Model> {
        Self::from_file(ModelFile::read_vec(bytes)?, options)
    }

    /// Compiles a decoded model file.
    pub fn from_file(file: ModelFile, options: &LoadOptions) -> Result<Model> {
        let mut config = file.config;
        if let Some(context_length) = options.context_length {
            config.context_length = in_token_range("context_length", context_length)?;
        }
        let prefill_chunk = match options.prefill_chunk {
            None => DEFAULT_PREFILL_CHUNK,
            Some(n) => in_token_range("prefill_chunk", n)?,
        };
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
        drop(file.tensors);
        release_freed_memory();
        Ok(Model {
            inner: Arc::new(ModelInner {
                config,
                tokenizer,
                body,
                head,
                threads,
                prefill_chunk,
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

    /// Compute threads of the model, shared by its sessions.
    pub fn threads(&self) -> usize {
        self.inner.threads
    }

    /// Most prompt tokens a session computes per forward pass.
    pub fn prefill_chunk(&self) -> usize {
        self.inner.prefill_chunk
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_load_options_are_rejected_by_name() {
        let with = |change: fn(&mut LoadOptions)| {
            let mut options = LoadOptions::default();
            change(&mut options);
            options
        };
        let cases = [
            ("threads", with(|o| o.threads = 257)),
            ("context_length", with(|o| o.context_length = Some(0))),
            ("context_length", with(|o| o.context_length = Some(65537))),
            ("prefill_chunk", with(|o| o.prefill_chunk = Some(0))),
            ("prefill_chunk", with(|o| o.prefill_chunk = Some(65537))),
        ];
        for (expected, options) in cases {
            match Model::load(crate::TINY_MODEL, &options) {
                Err(Error::InvalidOption { name, .. }) => assert_eq!(name, expected),
                other => panic!("{options:?}: expected InvalidOption, got {other:?}"),
            }
        }
        let options = LoadOptions {
            prefill_chunk: Some(65536),
            context_length: Some(65536),
            threads: 1,
        };
        let model = Model::load(crate::TINY_MODEL, &options).unwrap();
        assert_eq!(
            (model.prefill_chunk(), model.config().context_length),
            (65536, 65536)
        );
        let model = Model::load(crate::TINY_MODEL, &LoadOptions::default()).unwrap();
        assert_eq!(model.prefill_chunk(), DEFAULT_PREFILL_CHUNK);
    }

    #[test]
    fn loads_from_a_path_bytes_or_a_vec_give_the_same_logits() {
        let options = LoadOptions {
            threads: 1,
            ..LoadOptions::default()
        };
        let bytes = std::fs::read(crate::TINY_MODEL).unwrap();
        let models = [
            Model::load(crate::TINY_MODEL, &options).unwrap(),
            Model::from_bytes(&bytes, &options).unwrap(),
            Model::from_vec(bytes.clone(), &options).unwrap(),
        ];
        let logits: Vec<Vec<f32>> = models
            .iter()
            .map(|m| {
                m.session()
                    .unwrap()
                    .feed(&[1, 2, 3], crate::Logits::Last)
                    .unwrap()
            })
            .collect();
        assert_eq!(logits[0], logits[1]);
        assert_eq!(logits[0], logits[2]);
        let truncated = bytes[..bytes.len() - 1].to_vec();
        assert!(matches!(
            Model::from_vec(truncated, &options),
            Err(Error::InvalidModel(_))
        ));
    }
}
