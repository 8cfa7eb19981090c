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

/// Calls `work(i)` for every `i` in `0..count`, in parallel when the current
/// plan runs multithreaded.
pub fn for_each_index<F>(count: usize, work: F)
where
    F: Fn(usize) + Send + Sync,
{
    match current_tract_executor() {
        Executor::MultiThread(pool) => pool.install(|| (0..count).into_par_iter().for_each(work)),
        Executor::RayonGlobal => (0..count).into_par_iter().for_each(work),
        Executor::SingleThread => (0..count).for_each(work),
    }
}

/// Runs `work` on a thread of `executor`'s pool, so the parallel regions inside
/// it (tract's matmuls, [`for_each_chunk`]) fork from a pool thread: a decode
/// step has dozens of short regions, and entering the pool from outside hands
/// each one over to the pool and back, waking sleeping threads every time.
pub fn on_pool<R: Send>(executor: &Executor, work: impl FnOnce() -> R + Send) -> R {
    match executor {
        Executor::MultiThread(pool) => pool.install(work),
        _ => work(),
    }
}
