//! Status codes, the thread-local error message, panic guards and pointer checks.

use chaya_core::Error;
use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashSet;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};

/// What a call did. Every function that can fail returns one; on anything but
/// CHAYA_OK, chaya_last_error() describes the failure.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum chaya_status {
    /// Success.
    CHAYA_OK = 0,
    /// A required pointer argument was NULL.
    CHAYA_ERR_NULL_POINTER = 1,
    /// A string argument (prompt, text, stop string; a path except on Unix,
    /// where a path may be any bytes) is not valid UTF-8.
    CHAYA_ERR_INVALID_UTF8 = 2,
    /// A load or generation option is out of range; the message names it.
    CHAYA_ERR_INVALID_OPTION = 3,
    /// The model file is malformed, truncated or not a CHAYA model.
    CHAYA_ERR_INVALID_MODEL = 4,
    /// A file could not be read; the message names the path.
    CHAYA_ERR_IO = 5,
    /// The tokenizer failed to load, encode or decode.
    CHAYA_ERR_TOKENIZER = 6,
    /// An input cannot be processed (e.g. a token id outside the vocabulary).
    CHAYA_ERR_INVALID_INPUT = 7,
    /// The inference engine failed.
    CHAYA_ERR_INFERENCE = 8,
    /// An output buffer is too small; the needed size was reported.
    CHAYA_ERR_BUFFER_TOO_SMALL = 9,
    /// The session is in use: another call (a generation, a score) is running
    /// on it, on another thread, or this call was made from inside a token callback.
    CHAYA_ERR_BUSY = 10,
    /// A bug: the library panicked. The handles involved stay usable (a session
    /// whose generation panicked is reset before its next use).
    CHAYA_ERR_PANIC = 11,
    /// A handle argument is not a live handle of its type: already freed (or
    /// never returned by this library). Detected as long as the freed memory
    /// has not been reused for a new handle; see chaya_session_free.
    CHAYA_ERR_INVALID_HANDLE = 12,
}

/// A failed call: its status and the message for chaya_last_error().
#[derive(Debug)]
pub struct Failure {
    /// The status returned to C.
    pub status: chaya_status,
    /// What went wrong, for people.
    pub message: String,
}

impl Failure {
    /// A failure with `status` and `message`.
    pub fn new(status: chaya_status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    /// Unless `count` values fit in a buffer of `cap`: BUFFER_TOO_SMALL
    /// naming them `what`.
    pub fn unless_fits(count: usize, cap: usize, what: &str) -> Result<(), Failure> {
        if count <= cap {
            return Ok(());
        }
        Err(Failure::new(
            chaya_status::CHAYA_ERR_BUFFER_TOO_SMALL,
            format!("{count} {what} do not fit in a buffer of {cap}"),
        ))
    }

    /// A NULL pointer passed as argument `name`.
    pub fn null(name: &str) -> Failure {
        Failure::new(
            chaya_status::CHAYA_ERR_NULL_POINTER,
            format!("`{name}` is NULL"),
        )
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        use chaya_status::*;
        let status = match &e {
            Error::Io { .. } => CHAYA_ERR_IO,
            Error::InvalidModel(_) | Error::InvalidCheckpoint(_) => CHAYA_ERR_INVALID_MODEL,
            Error::Tokenizer(_) => CHAYA_ERR_TOKENIZER,
            Error::InvalidOption { .. } => CHAYA_ERR_INVALID_OPTION,
            Error::InvalidInput(_) => CHAYA_ERR_INVALID_INPUT,
            Error::Inference(_) => CHAYA_ERR_INFERENCE,
        };
        Failure::new(status, e.to_string())
    }
}

/// Result of the bodies of exported functions.
pub type FfiResult<T> = Result<T, Failure>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `message` as this thread's last error (interior NULs become spaces).
pub(crate) fn set_last_error(message: &str) {
    let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // Fails only while the thread is being torn down; nothing to report then.
    let _ = LAST_ERROR.try_with(|last| *last.borrow_mut() = message);
}

/// Runs the body of an exported function that returns a status: catches
/// panics, records the error message (or clears it on success).
pub fn guard(body: impl FnOnce() -> FfiResult<()>) -> chaya_status {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            set_last_error("");
            return chaya_status::CHAYA_OK;
        }
        Ok(Err(failure)) => failure,
        Err(payload) => Failure::new(
            chaya_status::CHAYA_ERR_PANIC,
            format!("internal error (panic): {}", panic_message(&*payload)),
        ),
    };
    set_last_error(&failure.message);
    failure.status
}

/// Runs the body of an exported function that reports no status (getters,
/// free functions): a panic yields `fallback` and is recorded as the last error.
pub fn guard_or<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        set_last_error(&format!(
            "internal error (panic): {}",
            panic_message(&*payload)
        ));
        fallback
    })
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// The message of the last failed call made on the calling thread, or "" when
/// the last status-returning call on this thread succeeded.
///
/// Every function returning chaya_status sets it (clearing it on success);
/// functions returning no status leave it alone unless they panic or (the
/// free functions) detect a double free. The pointer
/// is owned by the library and stays valid until the next chaya_* call on the
/// same thread: copy the text to keep it. Never NULL.
#[no_mangle]
pub extern "C" fn chaya_last_error() -> *const c_char {
    const EMPTY: &CStr = c"";
    guard_or(EMPTY.as_ptr(), || {
        LAST_ERROR
            .try_with(|last| last.borrow().as_ptr())
            .unwrap_or(EMPTY.as_ptr())
    })
}

/// Addresses and types of the handles created and not yet freed, so that a
/// double free or a use after free is reported instead of touching freed
/// memory (until the allocator reuses the address for a new handle).
static LIVE_HANDLES: Mutex<Option<HashSet<(usize, TypeId)>>> = Mutex::new(None);

/// The live-handle set, locked (a panic while it was held cannot corrupt it).
fn live_handles() -> MutexGuard<'static, Option<HashSet<(usize, TypeId)>>> {
    LIVE_HANDLES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Boxes a new handle, records it as live and returns its pointer.
pub fn register<T: 'static>(handle: T) -> *mut T {
    let ptr = Box::into_raw(Box::new(handle));
    live_handles()
        .get_or_insert_with(HashSet::new)
        .insert((ptr as usize, TypeId::of::<T>()));
    ptr
}

/// Frees a live handle; records an error and leaves `ptr` alone when it is not
/// one (double free) or when `in_use` says a call still runs on it (a free
/// from inside that call's callback). NULL is a no-op.
///
/// # Safety
/// `ptr` is NULL or was returned by [`register`]; no other thread uses it.
pub unsafe fn unregister_and_free<T: 'static>(
    ptr: *mut T,
    name: &str,
    in_use: impl FnOnce(&T) -> bool,
) {
    if ptr.is_null() {
        return;
    }
    let key = (ptr as usize, TypeId::of::<T>());
    let mut live = live_handles();
    if !live.as_ref().is_some_and(|live| live.contains(&key)) {
        drop(live);
        set_last_error(&format!(
            "`{name}` is not a live handle (freed twice?): ignored"
        ));
        return;
    }
    // SAFETY: live, so not freed; read under the lock that frees take.
    if in_use(unsafe { &*ptr }) {
        drop(live);
        set_last_error(&format!(
            "`{name}` is in use by a running call (freed from its callback?): not freed"
        ));
        return;
    }
    live.as_mut().map(|live| live.remove(&key));
    drop(live);
    // SAFETY: boxed by `register` and, being live until now, freed only here.
    drop(unsafe { Box::from_raw(ptr) });
}

/// Runs `f` on a live handle, holding the live-handle lock so that a
/// concurrent free waits for it. For short calls only (chaya_cancel).
///
/// # Safety
/// `ptr` is NULL or a pointer that was returned by [`register`].
pub unsafe fn with_live<T: 'static, R>(
    ptr: *const T,
    name: &str,
    f: impl FnOnce(&T) -> R,
) -> FfiResult<R> {
    let live = live_handles();
    check_live(&live, ptr, name)?;
    // SAFETY: live, and it cannot be freed while the lock is held.
    Ok(f(unsafe { &*ptr }))
}

fn check_live<T: 'static>(
    live: &Option<HashSet<(usize, TypeId)>>,
    ptr: *const T,
    name: &str,
) -> FfiResult<()> {
    if ptr.is_null() {
        return Err(Failure::null(name));
    }
    let key = (ptr as usize, TypeId::of::<T>());
    if !live.as_ref().is_some_and(|live| live.contains(&key)) {
        return Err(Failure::new(
            chaya_status::CHAYA_ERR_INVALID_HANDLE,
            format!("`{name}` is not a live handle (used after being freed?)"),
        ));
    }
    Ok(())
}

/// A shared reference to a live handle passed as argument `name`:
/// CHAYA_ERR_NULL_POINTER for NULL, CHAYA_ERR_INVALID_HANDLE for a freed one.
///
/// # Safety
/// `ptr` is NULL or was returned by [`register`], and is not freed during `'a`.
pub unsafe fn handle<'a, T: 'static>(ptr: *const T, name: &str) -> FfiResult<&'a T> {
    check_live(&live_handles(), ptr, name)?;
    // SAFETY: live (checked) and not freed during 'a (caller).
    Ok(unsafe { &*ptr })
}

/// A UTF-8 string from a NUL-terminated C string argument named `name`.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string alive during `'a`.
pub unsafe fn utf8<'a>(ptr: *const c_char, name: &str) -> FfiResult<&'a str> {
    if ptr.is_null() {
        return Err(Failure::null(name));
    }
    // SAFETY: non-NULL and NUL-terminated (caller).
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes.to_str().map_err(|e| {
        Failure::new(
            chaya_status::CHAYA_ERR_INVALID_UTF8,
            format!("`{name}` is not valid UTF-8: {e}"),
        )
    })
}

/// A slice from a pointer and element count; with `len == 0` the pointer may
/// be NULL.
///
/// # Safety
/// When `len > 0`, `ptr` is NULL or points to `len` initialised elements
/// alive and unmutated during `'a`.
pub unsafe fn slice<'a, T>(ptr: *const T, len: usize, name: &str) -> FfiResult<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::null(name));
    }
    // SAFETY: non-NULL, `len` valid elements (caller); the total size of a
    // live allocation never exceeds isize::MAX.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Writes `value` through an out-pointer argument named `name`.
///
/// # Safety
/// `ptr` is NULL or valid for writing one `T` (the old value is not dropped).
pub unsafe fn write_out<T>(ptr: *mut T, value: T, name: &str) -> FfiResult<()> {
    if ptr.is_null() {
        return Err(Failure::null(name));
    }
    // SAFETY: non-NULL and writable (caller); `write` does not read the old value.
    unsafe { ptr.write(value) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        // SAFETY: chaya_last_error never returns NULL and the text is read at once.
        unsafe { CStr::from_ptr(chaya_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn guard_maps_results_and_panics() {
        let status = guard(|| {
            Err(Error::InvalidOption {
                name: "top_p",
                reason: "2 is not in (0, 1]".into(),
            }
            .into())
        });
        assert_eq!(status, chaya_status::CHAYA_ERR_INVALID_OPTION);
        assert!(last_error().contains("top_p"), "{}", last_error());

        assert_eq!(guard(|| Ok(())), chaya_status::CHAYA_OK);
        assert_eq!(last_error(), "");

        let status = guard(|| panic!("boom"));
        assert_eq!(status, chaya_status::CHAYA_ERR_PANIC);
        assert!(last_error().contains("boom"), "{}", last_error());
        assert_eq!(guard_or(7, || panic!("again")), 7);
    }

    #[test]
    fn messages_with_nul_are_kept() {
        guard(|| Err(Failure::new(chaya_status::CHAYA_ERR_IO, "a\0b")));
        assert_eq!(last_error(), "a b");
    }
}
