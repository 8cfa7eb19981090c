//! Dropping core sessions safely while their thread exits.
//!
//! tract's matrix-multiply op keeps per-thread scratch space and, when a session
//! state is dropped, looks it up in a thread-local without checking that the
//! thread-local still exists. Foreign runtimes can release the last reference to
//! a session from a thread's exit destructors, after Rust's thread-locals are
//! gone — e.g. Swift, when a `Thread` whose closure captured the session is
//! freed — and that lookup then panics (an uncatchable crash in Swift).
//! [`SafeDrop`] notices that case and drops its value on a fresh thread.

use std::ops::{Deref, DerefMut};

/// A thread-local with a destructor: `try_with` fails once this thread's
/// thread-locals are being destroyed.
struct Alive;

impl Drop for Alive {
    fn drop(&mut self) {}
}

thread_local! {
    static ALIVE: Alive = const { Alive };
}

/// Marks the current thread as one that runs inference (call before running
/// it), so that [`SafeDrop`] can tell when its thread-locals are gone.
pub(crate) fn mark_thread() {
    ALIVE.with(|_| ());
}

/// Owns a value whose drop must not run after the thread's thread-locals are
/// destroyed; dereferences to it.
#[derive(Debug)]
pub(crate) struct SafeDrop<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> SafeDrop<T> {
    pub(crate) fn new(value: T) -> Self {
        SafeDrop(Some(value))
    }
}

impl<T: Send + 'static> Deref for SafeDrop<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0
            .as_ref()
            .expect("SafeDrop holds its value until dropped")
    }
}

impl<T: Send + 'static> DerefMut for SafeDrop<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0
            .as_mut()
            .expect("SafeDrop holds its value until dropped")
    }
}

impl<T: Send + 'static> Drop for SafeDrop<T> {
    fn drop(&mut self) {
        let Some(value) = self.0.take() else { return };
        if ALIVE.try_with(|_| ()).is_ok() {
            return drop(value);
        }
        // Thread exit: drop it on a new thread. Should even that fail, the
        // value is leaked (dropping it here would panic inside tract).
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let value = std::mem::ManuallyDrop::new(value);
            let _ = std::thread::Builder::new()
                .name("chaya-drop".into())
                .spawn(move || drop(std::mem::ManuallyDrop::into_inner(value)));
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Records the thread it is dropped on.
    struct Probe(Arc<AtomicUsize>);

    impl Drop for Probe {
        fn drop(&mut self) {
            let alive = ALIVE.try_with(|_| ()).is_ok();
            self.0.store(if alive { 1 } else { 2 }, Ordering::SeqCst);
        }
    }

    thread_local! {
        /// Dropped with the thread's other thread-locals.
        static HELD_RAW: RefCell<Option<Probe>> = const { RefCell::new(None) };
        static HELD_SAFE: RefCell<Option<SafeDrop<Probe>>> = const { RefCell::new(None) };
    }

    /// Where a probe stored in a thread-local before `mark_thread` is dropped
    /// when its thread exits (thread-locals are destroyed last-first).
    fn dropped_at_thread_exit(safe: bool) -> usize {
        let seen = Arc::new(AtomicUsize::new(0));
        let probe = Probe(seen.clone());
        std::thread::spawn(move || {
            if safe {
                HELD_SAFE.with(|held| *held.borrow_mut() = Some(SafeDrop::new(probe)));
            } else {
                HELD_RAW.with(|held| *held.borrow_mut() = Some(probe));
            }
            mark_thread();
        })
        .join()
        .unwrap();
        let start = std::time::Instant::now();
        while seen.load(Ordering::SeqCst) == 0 && start.elapsed().as_secs() < 10 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        seen.load(Ordering::SeqCst)
    }

    #[test]
    fn drops_in_place_on_a_live_thread() {
        let seen = Arc::new(AtomicUsize::new(0));
        drop(SafeDrop::new(Probe(seen.clone())));
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn drops_on_another_thread_during_thread_exit() {
        // Without SafeDrop the probe is dropped after the thread-locals are gone…
        assert_eq!(dropped_at_thread_exit(false), 2);
        // …with it, on a helper thread where they are available.
        assert_eq!(dropped_at_thread_exit(true), 1);
    }
}
