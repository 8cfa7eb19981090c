//! Runs independent chunks of work on the tract executor of the running plan
//! (its rayon pool), so custom ops use the thread count the model was loaded with.

use rayon::prelude::*;
use tract_linalg::multithread::{current_tract_executor, Executor};

/// Calls `work(index, chunk)` for every `chunk_len`-long chunk of `data`, in
/// parallel when the current plan runs multithreaded. Each chunk is processed
/// whole by one call, so results do not depend on the thread count.
pub fn for_each_chunk<T, F>(data: &mut [T], chunk_len: usize, work: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Send + Sync,
{
    let work = |(i, chunk): (usize, &mut [T])| work(i, chunk);
    match current_tract_executor() {
        Executor::MultiThread(pool) => {
            pool.install(|| data.par_chunks_mut(chunk_len).enumerate().for_each(work))
        }
        Executor::RayonGlobal => data.par_chunks_mut(chunk_len).enumerate().for_each(work),
        Executor::SingleThread => data.chunks_mut(chunk_len).enumerate().for_each(work),
    }
}

/// Runs `work(threads)` inside the current plan's thread pool, where `threads`
/// is the number of threads it may use (for libraries that split work on rayon).
pub fn with_pool<R: Send>(work: impl FnOnce(usize) -> R + Send) -> R {
    match current_tract_executor() {
        Executor::MultiThread(pool) => pool.install(|| work(pool.current_num_threads())),
        Executor::RayonGlobal => work(rayon::current_num_threads()),
        Executor::SingleThread => work(1),
    }
}
