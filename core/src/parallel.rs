//! The model's compute threads, and the parallel loops custom ops run on them.
//!
//! A [`ComputePool`] is a rayon pool owned by one model. A forward pass runs
//! whole on its first thread ([`ComputePool::run`]) while the others stay
//! awake as its `Team`: the loops here hand their tasks to that team when
//! called from the thread running the pass, and run serially anywhere else,
//! so an op uses exactly the thread count the model was loaded with, never
//! the caller's own rayon pool.
//!
//! The team spins instead of sleeping: a forward pass has dozens of parallel
//! loops separated by short serial ops, and on the 2-core Xeon VM measured,
//! a sleeping thread took ~50 µs to wake (longer when the host was busy);
//! rayon's own joins put the waiting thread to sleep ~90 times per 256-token
//! prefill, and its time varied twice as much as ONNX Runtime's, whose pool
//! spins too. But a helper that finds itself on the same CPU as another
//! thread of its team naps briefly instead of spinning (where the OS says
//! which CPU a thread is on): Linux may put a woken helper on the core of
//! the thread with the work and leave it there for tens of milliseconds
//! while the other core idles, and a spinning helper then takes half of that
//! core (on the 2-core VM measured, the first forward pass after a load
//! took 29-31 ms instead of 14 in a quarter of the loads, slower than one
//! thread's 25 ms). Waking from the nap, a thread is placed again, on an
//! idle core where the scheduler finds one; where it does not, the nap at
//! least leaves the core to the thread with the work.

use crate::error::{Error, Result};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tract_linalg::multithread::Executor;

/// The smallest matrix-vector product (in multiply-adds) tract splits over
/// the pool. An f32 model decodes through tract's GEMV, and at tract's
/// default (2^21) only its head (50257 × 192) was split: every matrix of its
/// body (640 × 640 to 2560 × 640) ran on one thread. At 2^18 all of them are:
/// f32 decode 53-56 → 80-99 tok/s on a 2-core Xeon, 2 threads (`chaya
/// bench`, alternating runs). int8 models do not use tract's GEMV.
#[cfg(feature = "tract-threads")]
const GEMV_THREADING_MACS: usize = 1 << 18;

thread_local! {
    /// The team of the forward pass this thread runs, if any (null inside a
    /// parallel loop's task: nested loops run serially).
    static TEAM: Cell<*const Team> = const { Cell::new(ptr::null()) };
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
            .build()
            .map(|pool| ComputePool(Some(Arc::new(pool))))
            .map_err(|e| Error::Inference(format!("cannot start {threads} compute threads: {e}")))
    }

    /// The executor tract's own ops use inside a plan: this pool when tract is
    /// built multithreaded (feature `tract-threads`), else the calling thread.
    /// With a pool, it also lowers tract's process-wide threshold for
    /// splitting a matrix-vector product to `GEMV_THREADING_MACS` (never
    /// raising it).
    pub fn tract_executor(&self) -> Executor {
        match &self.0 {
            #[cfg(feature = "tract-threads")]
            Some(pool) => {
                use tract_linalg::multithread::{
                    current_threading_mac_threshold, set_threading_mac_threshold,
                };
                set_threading_mac_threshold(
                    current_threading_mac_threshold().min(GEMV_THREADING_MACS),
                );
                Executor::MultiThread(pool.clone())
            }
            _ => Executor::SingleThread,
        }
    }

    /// Runs `work` (a forward pass) on the pool's first thread, with the
    /// others as its `Team` until it returns; called from inside a pass,
    /// runs `work` right there.
    ///
    /// Every pass runs on the same thread so that its activations come and go
    /// in one malloc arena: glibc gives each thread its own, and a freed
    /// activation stays in its thread's arena, so passes landing on either
    /// thread (rayon's `install` takes whichever is free) left two arenas
    /// holding a prompt's worth of activations (peak RSS 118-124 MB instead
    /// of 110 for a 481-token prompt on the 2-core VM measured).
    pub fn run<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        let Some(pool) = &self.0 else {
            return work();
        };
        if pool.current_thread_index().is_some() {
            // Already inside a pass or one of its tasks: its loops apply.
            return work();
        }
        let team = Arc::new(Team::new(pool.current_num_threads()));
        let (finished, result) = mpsc::sync_channel(1);
        let pass: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
            let outcome = catch_unwind(AssertUnwindSafe(work));
            // The receiver waits below until this arrives.
            let _ = finished.send(outcome);
        });
        // SAFETY (the lifetime): `pass` borrows from this call's caller, and
        // this call returns only once `pass` has sent its result or been
        // dropped unrun (its sender gone): never while it can still run.
        let pass: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(pass) };
        let pass = Mutex::new(Some(pass));
        // One job per thread, each in that thread's own queue (so a helper
        // cannot take another's); one that starts after the pass returns at
        // once. Not scoped: the pass never waits for a helper to wake up
        // just to leave.
        pool.spawn_broadcast(move |thread| {
            if thread.index() != PASS_THREAD {
                return team.help_while_running(thread.index());
            }
            let pass = pass.lock().map(|mut pass| pass.take());
            if let Ok(Some(pass)) = pass {
                team.note_cpu(Some(PASS_THREAD));
                let _finished = ClearOnDrop(&team.running);
                let outer = TEAM.replace(&*team);
                pass();
                TEAM.set(outer);
            }
        });
        match result.recv() {
            Ok(Ok(value)) => value,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => panic!("the compute pool dropped a forward pass"),
        }
    }
}

/// The pool thread every forward pass runs on ([`ComputePool::run`]).
const PASS_THREAD: usize = 0;

/// The threads of a forward pass: the one running it publishes each parallel
/// loop here as a [`Region`], and the others take its tasks as they spin.
struct Team {
    /// Threads in the pool, the owner included.
    threads: usize,
    /// Whether the pass is still running.
    running: AtomicBool,
    /// The loop being run, or null.
    region: AtomicPtr<Region<'static>>,
    /// Helpers that may be reading `region`'s loop.
    helping: AtomicUsize,
    /// The CPU each pool thread was last seen on while in the pass
    /// ([`NO_CPU`] if unknown or gone), by rayon thread index.
    cpus: Box<[AtomicUsize]>,
}

/// A [`Team::cpus`] entry for no CPU.
const NO_CPU: usize = usize::MAX;

impl Team {
    fn new(threads: usize) -> Team {
        Team {
            threads,
            running: AtomicBool::new(true),
            region: AtomicPtr::default(),
            helping: AtomicUsize::new(0),
            cpus: (0..threads).map(|_| AtomicUsize::new(NO_CPU)).collect(),
        }
    }

    /// Records the CPU pool thread `index` runs on now; returns it.
    fn note_cpu(&self, index: Option<usize>) -> usize {
        let cpu = current_cpu().unwrap_or(NO_CPU);
        if let Some(slot) = index.and_then(|i| self.cpus.get(i)) {
            slot.store(cpu, Ordering::Relaxed);
        }
        cpu
    }

    /// Whether another thread of the team was last seen on `cpu`.
    fn shares_cpu(&self, index: usize, cpu: usize) -> bool {
        cpu != NO_CPU
            && self
                .cpus
                .iter()
                .enumerate()
                .any(|(i, slot)| i != index && slot.load(Ordering::Relaxed) == cpu)
    }
}

/// The CPU this thread is running on, where the OS says.
fn current_cpu() -> Option<usize> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: no arguments; returns -1 on failure.
        usize::try_from(unsafe { libc::sched_getcpu() }).ok()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        None
    }
}

/// One parallel loop: tasks `0..count`, claimed by the threads a run of
/// them at a time.
struct Region<'a> {
    task: &'a (dyn Fn(usize) + Sync),
    count: usize,
    threads: usize,
    next: AtomicUsize,
    done: AtomicUsize,
    panicked: AtomicBool,
}

/// How long a helper spins finding no work before it gives up on the pass
/// (and returns to rayon, which lets it sleep): far longer than the serial
/// stretches inside a pass (RoPE and the cache writes of a 512-token prompt
/// take ~0.5 ms), so a helper stays for the whole pass; the bound is for
/// rayon running a helper nested inside a job it was waiting on.
const SPIN_IDLE: Duration = Duration::from_millis(5);

/// Idle spins between a helper's checks of which CPU it is on.
const SPINS_PER_CPU_CHECK: u32 = 256;

/// How long a helper sharing a CPU with its team naps: any sleep will do,
/// what matters is the wake-up, where the scheduler looks for an idle core.
const SHARED_CPU_NAP: Duration = Duration::from_micros(50);

impl Team {
    /// Runs `task(i)` for `i` in `0..count` on this thread and the helpers;
    /// returns when all are done (and panics if one did).
    fn run(&self, count: usize, task: &(dyn Fn(usize) + Sync)) {
        self.note_cpu(rayon::current_thread_index());
        let region = Region {
            task,
            count,
            threads: self.threads,
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
        };
        let published: *const Region = &region;
        // SAFETY (the lifetime): the pointer is withdrawn, and every helper
        // that could have read it has left, before `region` is dropped.
        self.region
            .store(published.cast_mut().cast(), Ordering::SeqCst);
        region.work();
        spin_until(|| region.done.load(Ordering::Acquire) == count);
        self.region.store(ptr::null_mut(), Ordering::SeqCst);
        spin_until(|| self.helping.load(Ordering::SeqCst) == 0);
        assert!(
            !region.panicked.load(Ordering::Relaxed),
            "a parallel task panicked"
        );
    }

    /// Takes tasks of the published loop, if any; whether it ran one.
    fn help(&self) -> bool {
        self.helping.fetch_add(1, Ordering::SeqCst);
        let region = self.region.load(Ordering::SeqCst);
        // SAFETY: a published region lives until `helping` drops back (`run`).
        let ran = !region.is_null() && unsafe { &*region }.work();
        self.helping.fetch_sub(1, Ordering::SeqCst);
        ran
    }

    /// A spare thread's job during a forward pass: runs the team's tasks and
    /// the pool's other pending work (tract's own parallel ops) as they
    /// appear, spinning in between (napping when on the CPU of another
    /// thread of the team), while the pass runs; returns early after
    /// [`SPIN_IDLE`] without work. `index` is this thread's in the pool.
    fn help_while_running(&self, index: usize) {
        let mut idle_since = Instant::now();
        let mut spins_to_cpu_check = 0;
        while self.running.load(Ordering::Acquire) {
            if self.help() || rayon::yield_now() == Some(rayon::Yield::Executed) {
                idle_since = Instant::now();
            } else if idle_since.elapsed() > SPIN_IDLE {
                break;
            } else if spins_to_cpu_check > 0 {
                spins_to_cpu_check -= 1;
                std::hint::spin_loop();
            } else if self.shares_cpu(index, self.note_cpu(Some(index))) {
                // Checked again right after the nap.
                std::thread::sleep(SHARED_CPU_NAP);
            } else {
                spins_to_cpu_check = SPINS_PER_CPU_CHECK;
            }
        }
        if let Some(slot) = self.cpus.get(index) {
            slot.store(NO_CPU, Ordering::Relaxed);
        }
    }
}

impl Region<'_> {
    /// Runs unclaimed tasks until none is left; whether it ran any. Each
    /// claim takes a share of what is left (guided scheduling): few claims
    /// for a loop of many small tasks (the output head's 1571 in decode;
    /// every claim moves a cache line between cores), single tasks at the
    /// end so the threads finish close together.
    fn work(&self) -> bool {
        let mut ran = false;
        let mut first = self.next.load(Ordering::Relaxed);
        while first < self.count {
            let take = ((self.count - first) / (2 * self.threads)).max(1);
            match self.next.compare_exchange_weak(
                first,
                first + take,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.run_tasks(first..first + take);
                    ran = true;
                    first += take;
                }
                Err(now) => first = now,
            }
        }
        ran
    }

    /// Runs the claimed tasks `tasks` (a panic is recorded for `run`), then
    /// counts them done.
    fn run_tasks(&self, tasks: std::ops::Range<usize>) {
        let count = tasks.len();
        let outer = TEAM.replace(ptr::null());
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| tasks.for_each(self.task))) {
            self.panicked.store(true, Ordering::Relaxed);
            drop_quietly(payload);
        }
        TEAM.set(outer);
        self.done.fetch_add(count, Ordering::Release);
    }
}

/// Drops a panic's payload without letting its `Drop` unwind out of the loop
/// (which would free a region its helpers still read); a payload that panics
/// again while dropped is leaked.
fn drop_quietly(payload: Box<dyn std::any::Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

/// Spins until `done()`, yielding the CPU after the first few checks (another
/// thread may need it to finish).
fn spin_until(done: impl Fn() -> bool) {
    let mut spins = 0;
    while !done() {
        if spins < 64 {
            std::hint::spin_loop();
            spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

/// Clears its flag when dropped, also when unwinding.
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Calls `work(i)` for every `i` in `0..count`, in parallel on the team of
/// the forward pass this thread runs ([`ComputePool::run`]), else serially.
pub fn for_each_index<F>(count: usize, work: F)
where
    F: Fn(usize) + Send + Sync,
{
    let team = TEAM.get();
    if team.is_null() || count <= 1 {
        (0..count).for_each(work)
    } else {
        // SAFETY: TEAM points to the team of the `run` this thread is inside,
        // which keeps it alive until it returns.
        unsafe { &*team }.run(count, &work)
    }
}

/// Calls `work(index, chunk)` for every `chunk_len`-long chunk of `data`, as
/// [`for_each_index`]. Each chunk is processed whole by one call, so results
/// do not depend on the thread count.
pub fn for_each_chunk<T, F>(data: &mut [T], chunk_len: usize, work: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Send + Sync,
{
    assert!(chunk_len > 0, "chunks must not be empty");
    let (len, base) = (data.len(), SharedSlice(data.as_mut_ptr()));
    for_each_index(len.div_ceil(chunk_len), |i| {
        let start = i * chunk_len;
        // SAFETY: chunk i lies within `data`, and each index is run once, so
        // the chunks handed out never overlap.
        let chunk =
            unsafe { std::slice::from_raw_parts_mut(base.at(start), chunk_len.min(len - start)) };
        work(i, chunk)
    })
}

/// `(0..count).map(work)` collected in order, computed as [`for_each_index`].
pub fn map_index<T, F>(count: usize, work: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize) -> T + Send + Sync,
{
    let mut slots: Vec<Option<T>> = (0..count).map(|_| None).collect();
    for_each_chunk(&mut slots, 1, |i, slot| slot[0] = Some(work(i)));
    slots.into_iter().flatten().collect()
}

/// A slice's start, shared by tasks that each use a disjoint part of it.
struct SharedSlice<T>(*mut T);

// SAFETY: tasks touch disjoint elements (see `for_each_chunk`), and T: Send.
unsafe impl<T: Send> Sync for SharedSlice<T> {}

impl<T> SharedSlice<T> {
    /// Element `i`'s address (a method, so closures capture the whole wrapper).
    fn at(&self, i: usize) -> *mut T {
        self.0.wrapping_add(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "tract-threads")]
    fn a_pool_lets_tract_split_every_gemv_of_the_f32_body() {
        let _ = ComputePool::new(2).unwrap().tract_executor();
        // The smallest: the attention output, 640 × 640.
        assert!(tract_linalg::multithread::current_threading_mac_threshold() <= 640 * 640);
    }

    #[test]
    fn every_index_runs_once_on_every_thread_count() {
        for threads in [1, 2, 3] {
            let pool = ComputePool::new(threads).unwrap();
            for count in [0, 1, 2, 7, 100] {
                let seen = Mutex::new(vec![0u32; count]);
                pool.run(|| for_each_index(count, |i| seen.lock().unwrap()[i] += 1));
                assert_eq!(seen.into_inner().unwrap(), vec![1; count]);
            }
        }
    }

    #[test]
    fn chunks_and_maps_cover_the_data_in_order() {
        let pool = ComputePool::new(2).unwrap();
        let mut data: Vec<usize> = vec![0; 23];
        pool.run(|| {
            for_each_chunk(&mut data, 5, |i, chunk| {
                assert_eq!(chunk.len(), if i == 4 { 3 } else { 5 });
                chunk.iter_mut().for_each(|v| *v = i);
            })
        });
        assert_eq!(data, (0..23).map(|j| j / 5).collect::<Vec<_>>());
        let squares = pool.run(|| map_index(50, |i| i * i));
        assert_eq!(squares, (0..50).map(|i| i * i).collect::<Vec<_>>());
    }

    #[test]
    fn loops_use_the_team_only_on_the_thread_running_the_pass() {
        let pool = ComputePool::new(2).unwrap();
        let threads = |count| {
            let seen = Mutex::new(std::collections::HashSet::new());
            for_each_index(count, |_| {
                std::thread::sleep(Duration::from_millis(1));
                seen.lock().unwrap().insert(std::thread::current().id());
            });
            seen.into_inner().unwrap().len()
        };
        // Outside `run`, and nested inside a task: this thread only.
        assert_eq!(threads(20), 1);
        let nested = pool.run(|| map_index(2, |_| threads(10)));
        assert_eq!(nested, [1, 1]);
        // Inside `run`: the spare thread joins in. Whether it does in one
        // given pass is up to the scheduler (a helper finding no loop for
        // `SPIN_IDLE` leaves the pass; under qemu on a busy host it once
        // started too late for a 200-task loop), so it has a few passes.
        assert!((0..20).any(|_| pool.run(|| threads(200)) == 2));
    }

    #[test]
    fn every_pass_runs_on_the_same_pool_thread_and_nested_ones_in_place() {
        let pool = ComputePool::new(2).unwrap();
        let here = || std::thread::current().id();
        let threads: std::collections::HashSet<_> = (0..50).map(|_| pool.run(here)).collect();
        assert_eq!(threads.len(), 1);
        let pass_thread = *threads.iter().next().unwrap();
        assert_ne!(pass_thread, here());
        assert_eq!(pool.run(|| pool.run(here)), pass_thread);
    }

    #[test]
    fn a_thread_shares_a_cpu_only_with_another_thread_seen_there() {
        let team = Team::new(3);
        team.cpus[0].store(5, Ordering::Relaxed);
        team.cpus[2].store(7, Ordering::Relaxed);
        assert!(team.shares_cpu(1, 5));
        assert!(team.shares_cpu(1, 7));
        assert!(!team.shares_cpu(0, 5), "its own entry does not count");
        assert!(!team.shares_cpu(1, 6));
        assert!(!team.shares_cpu(1, NO_CPU));
    }

    /// Confines the calling thread (and threads it starts later) to the CPU
    /// it runs on.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn pin_to_current_cpu() {
        let cpu = current_cpu().expect("sched_getcpu works here");
        // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET stays in bounds
        // for CPU numbers below CPU_SETSIZE, which sched_getcpu returns.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            let size = std::mem::size_of::<libc::cpu_set_t>();
            assert_eq!(libc::sched_setaffinity(0, size, &set), 0);
        }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn threads_on_one_cpu_see_each_other_and_passes_still_run_every_task() {
        std::thread::spawn(|| {
            pin_to_current_cpu();
            let team = Arc::new(Team::new(2));
            let cpu = team.note_cpu(Some(0));
            let other = team.clone();
            let shared = std::thread::spawn(move || other.shares_cpu(1, other.note_cpu(Some(1))));
            assert!(shared.join().unwrap(), "both threads are on CPU {cpu}");
            assert!(!team.shares_cpu(0, cpu + 1));

            // Two compute threads on one CPU: the helper naps instead of
            // spinning, and every pass still runs each task once.
            let pool = ComputePool::new(2).unwrap();
            for count in [1, 5, 200] {
                let seen = Mutex::new(vec![0u32; count]);
                pool.run(|| {
                    for_each_index(count, |i| {
                        std::hint::black_box((0..20_000).sum::<u64>());
                        seen.lock().unwrap()[i] += 1
                    })
                });
                assert_eq!(seen.into_inner().unwrap(), vec![1; count]);
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_panicking_task_panics_the_pass_and_the_pool_still_works() {
        let pool = ComputePool::new(2).unwrap();
        let failed = catch_unwind(AssertUnwindSafe(|| {
            pool.run(|| for_each_index(10, |i| assert_ne!(i, 7)))
        }));
        assert!(failed.is_err());
        assert_eq!(pool.run(|| map_index(4, |i| i + 1)), [1, 2, 3, 4]);
    }

    #[test]
    fn a_panic_payload_that_panics_when_dropped_stays_inside_the_loop() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("dropping the payload");
            }
        }
        let pool = ComputePool::new(2).unwrap();
        for panicking in [0, 57] {
            let failed = catch_unwind(AssertUnwindSafe(|| {
                pool.run(|| {
                    for_each_index(100, |i| {
                        if i == panicking {
                            std::panic::panic_any(Bomb)
                        }
                    })
                })
            }));
            let message = failed.unwrap_err();
            assert_eq!(
                message.downcast_ref::<&str>(),
                Some(&"a parallel task panicked")
            );
        }
        assert_eq!(pool.run(|| map_index(4, |i| i + 1)), [1, 2, 3, 4]);
    }
}
