//! The model's compute threads, and the parallel loops custom ops run on them.
//!
//! A [`ComputePool`] is a rayon pool owned by one model. A forward pass runs
//! whole on one of its threads ([`ComputePool::run`]); the loops here split
//! their work across the pool only when called from one of its threads, so an
//! op uses exactly the thread count the model was loaded with, never the
//! caller's own rayon pool.

use crate::error::{Error, Result};
use rayon::prelude::*;
use std::cell::Cell;
use std::sync::Arc;
use tract_linalg::multithread::Executor;

thread_local! {
    /// Whether this thread belongs to a [`ComputePool`].
    static IN_COMPUTE_POOL: Cell<bool> = const { Cell::new(false) };
}

/// A model's compute threads: a rayon pool, or none to compute on the caller's thread.
#[derive(Clone, Debug)]
pub struct ComputePool(Option<Arc<rayon::ThreadPool>>);

impl ComputePool {
    /// `threads` compute threads (no pool for one).
    pub fn new(threads: usize) -> Result<ComputePool> {
        if threads <= 1 {
            return Ok(ComputePool(None));
        }
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("chaya-compute-{i}"))
            .num_threads(threads)
            .start_handler(|_| IN_COMPUTE_POOL.set(true))
            .build()
            .map(|pool| ComputePool(Some(Arc::new(pool))))
            .map_err(|e| Error::Inference(format!("cannot start {threads} compute threads: {e}")))
    }

    /// The executor tract's own ops use inside a plan: this pool when tract is
    /// built multithreaded (feature `tract-threads`), else the calling thread.
    pub fn tract_executor(&self) -> Executor {
        match &self.0 {
            #[cfg(feature = "tract-threads")]
            Some(pool) => Executor::MultiThread(pool.clone()),
            _ => Executor::SingleThread,
        }
    }

    /// Runs `work` on one of the pool's threads, so the parallel regions inside
    /// it fork from a pool thread: a decode step has dozens of short regions,
    /// and entering the pool from outside for each would hand every one over
    /// to the pool and back, waking sleeping threads each time.
    pub fn run<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        match &self.0 {
            Some(pool) => pool.install(work),
            None => work(),
        }
    }
}

/// Calls `work(index, chunk)` for every `chunk_len`-long chunk of `data`, in
/// parallel when called on a [`ComputePool`]'s thread. Each chunk is processed
/// whole by one call, so results do not depend on the thread count.
pub fn for_each_chunk<T, F>(data: &mut [T], chunk_len: usize, work: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Send + Sync,
{
    let work = |(i, chunk): (usize, &mut [T])| work(i, chunk);
    if IN_COMPUTE_POOL.get() {
        data.par_chunks_mut(chunk_len).enumerate().for_each(work)
    } else {
        data.chunks_mut(chunk_len).enumerate().for_each(work)
    }
}

/// Calls `work(i)` for every `i` in `0..count`, in parallel when called on a
/// [`ComputePool`]'s thread.
pub fn for_each_index<F>(count: usize, work: F)
where
    F: Fn(usize) + Send + Sync,
{
    if IN_COMPUTE_POOL.get() {
        (0..count).into_par_iter().for_each(work)
    } else {
        (0..count).for_each(work)
    }
}

/// `(0..count).map(work)` collected in order, computed in parallel when
/// called on a [`ComputePool`]'s thread.
pub fn map_index<T, F>(count: usize, work: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize) -> T + Send + Sync,
{
    if IN_COMPUTE_POOL.get() {
        (0..count).into_par_iter().map(work).collect()
    } else {
        (0..count).map(work).collect()
    }
}
