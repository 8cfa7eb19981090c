//! Session handles: a conversation's KV cache over a shared model.

use crate::model::chaya_model;
use crate::status::{
    chaya_status, guard, guard_or, handle, register, unregister_and_free, write_out, Failure,
    FfiResult,
};
use chaya_core::{CancelHandle, Session};
use std::sync::{Mutex, MutexGuard, TryLockError};

/// A conversation with a model: its KV cache and transcript.
///
/// Opaque. Created by chaya_session_new, freed by chaya_session_free. Each
/// chaya_generate continues the conversation (the prompt is appended to what
/// was prompted and generated before); chaya_session_reset starts over.
///
/// Threads: a session runs one call at a time. A call made while another
/// (a generation, a score) runs on it, from another thread or from inside a
/// token callback, fails with CHAYA_ERR_BUSY instead of blocking, except
/// chaya_cancel, which may be called from any thread at any time. Distinct
/// sessions may generate from different threads at once; the forward passes
/// of one model's sessions take turns on the model's compute threads (with
/// threads = 1 each runs on its caller's thread, so they run in parallel).
pub struct chaya_session {
    /// Shares the session's cancel flag; read without the lock, so chaya_cancel
    /// works while chaya_generate holds the session.
    pub(crate) cancel: CancelHandle,
    pub(crate) session: Mutex<Session>,
}

impl chaya_session {
    /// Whether a call holds the session (a generation running, for instance).
    fn is_busy(&self) -> bool {
        matches!(self.session.try_lock(), Err(TryLockError::WouldBlock))
    }

    /// Takes the session for one call, or fails with CHAYA_ERR_BUSY.
    ///
    /// A session whose previous call panicked is reset: its cache may be
    /// inconsistent with its token list.
    pub(crate) fn lock(&self) -> FfiResult<MutexGuard<'_, Session>> {
        match self.session.try_lock() {
            Ok(session) => Ok(session),
            Err(TryLockError::WouldBlock) => Err(Failure::new(
                chaya_status::CHAYA_ERR_BUSY,
                "the session is busy: another call is using it",
            )),
            Err(TryLockError::Poisoned(poisoned)) => {
                let mut session = poisoned.into_inner();
                session.reset();
                self.session.clear_poison();
                Ok(session)
            }
        }
    }
}

/// Creates a session with an empty conversation on `model`, stored in `*out`
/// (NULL on failure). Free it with chaya_session_free.
///
/// The session shares the model's weights (no copy) and keeps them alive, so
/// the model handle may be freed before its sessions.
///
/// # Safety
/// `model` is NULL or a live model; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chaya_session_new(
    model: *const chaya_model,
    out: *mut *mut chaya_session,
) -> chaya_status {
    guard(|| {
        // SAFETY: NULL or writable (caller).
        unsafe { write_out(out, std::ptr::null_mut(), "out") }?;
        // SAFETY: NULL or live (caller).
        let model = unsafe { handle(model, "model") }?;
        let session = model.model.session()?;
        let session = register(chaya_session {
            cancel: session.cancel_handle(),
            session: Mutex::new(session),
        });
        // SAFETY: checked non-NULL and writable above.
        unsafe { out.write(session) };
        Ok(())
    })
}

/// Frees a session. NULL is a no-op.
///
/// A session a call is running on (a generation, even when this is called
/// from inside its own token callback) is not freed: the session stays live
/// and chaya_last_error() says so; free it once the call has returned. A free
/// racing with a call that starts on another thread is still undefined
/// behaviour. chaya_cancel may race with it safely. Freeing a session twice is detected and ignored
/// (chaya_last_error() says so), and any call on it afterwards, chaya_cancel
/// included, gives CHAYA_ERR_INVALID_HANDLE — as long as its memory has not
/// been reused for a new handle, so treat both as bugs to fix, not as an API.
///
/// # Safety
/// `session` is NULL or a pointer returned by chaya_session_new, not in use by
/// any other call.
#[no_mangle]
pub unsafe extern "C" fn chaya_session_free(session: *mut chaya_session) {
    // SAFETY: NULL or returned by `register`, not in use (caller).
    guard_or((), || unsafe {
        unregister_and_free(session, "session", chaya_session::is_busy)
    })
}

/// Forgets the conversation: the next chaya_generate starts from an empty
/// context. CHAYA_ERR_BUSY while a generation runs on the session.
///
/// # Safety
/// `session` is NULL or a live session.
#[no_mangle]
pub unsafe extern "C" fn chaya_session_reset(session: *mut chaya_session) -> chaya_status {
    guard(|| {
        // SAFETY: NULL or live (caller); only shared access is taken.
        let session = unsafe { handle(session, "session") }?;
        session.lock()?.reset();
        Ok(())
    })
}
