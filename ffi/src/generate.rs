//! Streaming generation, its summary, and cancellation.

use crate::options::chaya_options;
use crate::session::chaya_session;
use crate::status::{
    chaya_status, guard, guard_or, handle, register, unregister_and_free, utf8, with_live,
    write_out,
};
use crate::strings::{chaya_string_free, to_owned_c_string};
use chaya_core::{CancelToken, GenerateSummary, StopReason};
use std::ffi::{c_char, c_void};
use std::time::Instant;

/// Receives generated text as it is produced.
///
/// `utf8` points to `len` bytes of valid UTF-8 forming whole characters; it is
/// NOT NUL-terminated and is valid only during the call (copy it to keep it).
/// `user_data` is the pointer given to chaya_generate. Return true to go on,
/// false to stop the generation (its stop reason is then
/// CHAYA_STOP_CALLBACK, or CHAYA_STOP_STOP_STRING when the same piece
/// completed a stop string).
///
/// The callback runs on the thread that called chaya_generate. It may call
/// chaya_cancel and any function on the model, but any other call on the same
/// session fails with CHAYA_ERR_BUSY (chaya_session_free is refused and
/// leaves the session live). It must not unwind through the library: a C++ exception or a
/// longjmp leaving it is undefined behaviour, a Rust callback that panics
/// aborts the process.
pub type chaya_token_callback =
    Option<unsafe extern "C" fn(utf8: *const c_char, len: usize, user_data: *mut c_void) -> bool>;

/// Why a generation stopped.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum chaya_stop_reason {
    /// max_tokens tokens were generated.
    CHAYA_STOP_LENGTH = 0,
    /// The model produced its end-of-text token (with stop_at_eos).
    CHAYA_STOP_END_OF_TEXT = 1,
    /// A stop string appeared (it was not emitted).
    CHAYA_STOP_STOP_STRING = 2,
    /// The token callback returned false.
    CHAYA_STOP_CALLBACK = 3,
    /// chaya_cancel was called, or the call's cancel token was cancelled.
    CHAYA_STOP_CANCELLED = 4,
    /// The context window is full and the context_shift option is off.
    CHAYA_STOP_CONTEXT = 5,
}

impl From<StopReason> for chaya_stop_reason {
    fn from(reason: StopReason) -> Self {
        match reason {
            StopReason::Length => chaya_stop_reason::CHAYA_STOP_LENGTH,
            StopReason::EndOfText => chaya_stop_reason::CHAYA_STOP_END_OF_TEXT,
            StopReason::StopString => chaya_stop_reason::CHAYA_STOP_STOP_STRING,
            StopReason::Callback => chaya_stop_reason::CHAYA_STOP_CALLBACK,
            StopReason::Cancelled => chaya_stop_reason::CHAYA_STOP_CANCELLED,
            StopReason::Context => chaya_stop_reason::CHAYA_STOP_CONTEXT,
        }
    }
}

/// What a generation produced and how fast.
///
/// Filled by chaya_generate, which owns `text`: release it with
/// chaya_summary_free once done with the summary. On failure the summary is
/// zeroed (text NULL), and freeing it is still allowed.
#[repr(C)]
#[derive(Debug)]
pub struct chaya_summary {
    /// All generated text (everything passed to the token callback),
    /// NUL-terminated, owned by the summary. Generated text may itself contain
    /// NUL characters: text_len is its exact length.
    pub text: *mut c_char,
    /// Length of text in bytes, without the terminating NUL.
    pub text_len: usize,
    /// Tokens of the prompt given to this call.
    pub prompt_tokens: usize,
    /// Tokens generated (including a final end-of-text token, if any).
    pub generated_tokens: usize,
    /// Context tokens whose KV-cache entries were reused from previous calls
    /// on the session.
    pub reused_tokens: usize,
    /// Context tokens computed by the prompt prefill.
    pub prefill_tokens: usize,
    /// Times the context (the prompt, or the conversation as it grew)
    /// overflowed and the window was re-prefilled with its last three quarters.
    pub context_shifts: usize,
    /// Why the generation stopped.
    pub stop_reason: chaya_stop_reason,
    /// Milliseconds from the call to the first generated token (0 when none was).
    pub time_to_first_token_ms: f64,
    /// Milliseconds the whole chaya_generate call took.
    pub total_ms: f64,
    /// Prompt prefill speed in tokens per second (the forward passes only).
    pub prefill_tokens_per_second: f64,
    /// Speed of the generated tokens after the first, in tokens per second
    /// (0 when fewer than two were generated).
    pub decode_tokens_per_second: f64,
}

impl chaya_summary {
    /// The zeroed summary written before generating.
    fn empty() -> chaya_summary {
        chaya_summary {
            text: std::ptr::null_mut(),
            text_len: 0,
            prompt_tokens: 0,
            generated_tokens: 0,
            reused_tokens: 0,
            prefill_tokens: 0,
            context_shifts: 0,
            stop_reason: chaya_stop_reason::CHAYA_STOP_LENGTH,
            time_to_first_token_ms: 0.0,
            total_ms: 0.0,
            prefill_tokens_per_second: 0.0,
            decode_tokens_per_second: 0.0,
        }
    }

    /// The C form of `s`; allocates the text.
    fn from_core(s: &GenerateSummary, start: Instant) -> chaya_summary {
        chaya_summary {
            text: to_owned_c_string(s.text.as_bytes()),
            text_len: s.text.len(),
            prompt_tokens: s.prompt_tokens,
            generated_tokens: s.tokens.len(),
            reused_tokens: s.reused_tokens,
            prefill_tokens: s.prefill_tokens,
            context_shifts: s.context_shifts,
            stop_reason: s.stop_reason.into(),
            time_to_first_token_ms: s.time_to_first_token.as_secs_f64() * 1e3,
            total_ms: start.elapsed().as_secs_f64() * 1e3,
            prefill_tokens_per_second: s.prefill_tokens_per_second,
            decode_tokens_per_second: s.decode_tokens_per_second,
        }
    }
}

/// Continues the session's conversation with `prompt` and generates text,
/// streaming it to `on_token` (NULL: no streaming, read the summary's text).
///
/// The context is everything prompted and generated on the session since its
/// creation or last reset, followed by `prompt` (which may be empty); cached
/// tokens shared with the previous call are reused. `opts` may be NULL for the
/// defaults. `out_summary` may be NULL; otherwise it is overwritten (free a
/// previous summary first) and must be released with chaya_summary_free.
///
/// Returns CHAYA_OK whatever the stop reason (see the summary), or:
/// CHAYA_ERR_NULL_POINTER (session or prompt NULL, or an options array NULL
/// with a non-zero count), CHAYA_ERR_INVALID_UTF8 (prompt or a stop string),
/// CHAYA_ERR_INVALID_OPTION (the message names the field), CHAYA_ERR_BUSY (a
/// generation already runs on this session), CHAYA_ERR_TOKENIZER,
/// CHAYA_ERR_INVALID_INPUT, CHAYA_ERR_INFERENCE, CHAYA_ERR_PANIC.
///
/// Blocks until done; call chaya_cancel from another thread (or from the
/// callback) to stop early. Text held back as a possible start of a stop
/// string is passed to the callback when generation ends without one, also
/// after a cancel. A character cut in the middle by max_tokens, a cancel or a
/// full window is held back (neither passed on nor in the transcript) and
/// finished by the next call if its prompt is empty; a non-empty prompt drops
/// it. After a full window that call needs context_shift on (with it off the
/// conversation, longer than the window, is CHAYA_ERR_INVALID_INPUT). A call
/// that fails leaves the session's conversation as it was (without this
/// prompt), so it can be retried; after CHAYA_ERR_PANIC the session is reset.
///
/// # Safety
/// `session` is NULL or a live session; `prompt` is NULL or NUL-terminated;
/// `opts` is NULL or valid, its arrays valid for their counts; `on_token` is
/// NULL or a valid callback; `out_summary` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chaya_generate(
    session: *mut chaya_session,
    prompt: *const c_char,
    opts: *const chaya_options,
    on_token: chaya_token_callback,
    user_data: *mut c_void,
    out_summary: *mut chaya_summary,
) -> chaya_status {
    // SAFETY: the caller's guarantees, passed on; no token.
    unsafe {
        chaya_generate_with_cancel(
            session,
            prompt,
            opts,
            on_token,
            user_data,
            std::ptr::null(),
            out_summary,
        )
    }
}

/// chaya_generate, also stopped by `cancel` (NULL: like chaya_generate), a
/// token made for this call with chaya_cancel_token_new: cancelled before the
/// call or while it runs, from any thread, it stops this call only (within one
/// forward pass; before the first when it was cancelled already: nothing is
/// computed, the prompt joins the conversation, stop reason
/// CHAYA_STOP_CANCELLED). For callers that queue generations, where
/// chaya_cancel may come before the generation has started and do nothing.
/// Also CHAYA_ERR_INVALID_HANDLE for a freed token.
///
/// # Safety
/// As chaya_generate; `cancel` is NULL or a pointer returned by
/// chaya_cancel_token_new.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn chaya_generate_with_cancel(
    session: *mut chaya_session,
    prompt: *const c_char,
    opts: *const chaya_options,
    on_token: chaya_token_callback,
    user_data: *mut c_void,
    cancel: *const chaya_cancel_token,
    out_summary: *mut chaya_summary,
) -> chaya_status {
    let start = Instant::now();
    guard(|| {
        if !out_summary.is_null() {
            // SAFETY: non-NULL and writable (caller); the old value is not read.
            unsafe { out_summary.write(chaya_summary::empty()) };
        }
        // SAFETY: NULL or live (caller). Only shared access is taken: the
        // session itself is behind a mutex, so concurrent calls are sound.
        let session = unsafe { handle(session, "session") }?;
        // SAFETY: NULL or NUL-terminated (caller).
        let prompt = unsafe { utf8(prompt, "prompt") }?;
        // SAFETY: NULL or valid (caller).
        let options = match unsafe { opts.as_ref() } {
            // SAFETY: arrays valid for their counts (caller).
            Some(opts) => unsafe { opts.to_core() }?,
            None => Default::default(),
        };
        let cancel = match cancel.is_null() {
            true => CancelToken::default(),
            // SAFETY: NULL or returned by chaya_cancel_token_new (caller); its
            // flag is shared under the live-handle lock, so a racing free waits.
            false => unsafe { with_live(cancel, "cancel", |t| t.token.clone()) }?,
        };
        let mut session = session.lock()?;
        let summary = session.generate_with_cancel(prompt, &options, &cancel, |piece| {
            match on_token {
                // SAFETY: `on_token` is a valid callback (caller); `piece` outlives the
                // call. An `extern "C"` callback cannot unwind into this frame.
                Some(on_token) => unsafe {
                    on_token(piece.as_ptr().cast(), piece.len(), user_data)
                },
                None => true,
            }
        })?;
        if !out_summary.is_null() {
            // SAFETY: non-NULL and writable (caller); it holds the empty summary.
            unsafe { out_summary.write(chaya_summary::from_core(&summary, start)) };
        }
        Ok(())
    })
}

/// Frees the text owned by a summary and zeroes its text and text_len. NULL, or
/// a summary already freed this way, is a no-op.
///
/// # Safety
/// `summary` is NULL or points to a summary filled by chaya_generate (or
/// zeroed) whose text was not freed by other means.
#[no_mangle]
pub unsafe extern "C" fn chaya_summary_free(summary: *mut chaya_summary) {
    guard_or((), || {
        if summary.is_null() {
            return;
        }
        // SAFETY: non-NULL and valid (caller). Only the two fields are accessed,
        // through raw pointers: no reference to the whole struct is made, so a
        // stop_reason the caller overwrote cannot be an invalid enum value here.
        let text = unsafe {
            std::ptr::addr_of_mut!((*summary).text_len).write(0);
            std::ptr::addr_of_mut!((*summary).text).replace(std::ptr::null_mut())
        };
        // SAFETY: NULL or allocated by chaya_generate, not freed yet (caller).
        unsafe { chaya_string_free(text) };
    })
}

/// Asks the generation running on `session` to stop; it ends within one
/// forward pass (a decoding step, or a prefill chunk: 256 prompt tokens
/// unless chaya_load_options.prefill_chunk says otherwise) with stop reason
/// CHAYA_STOP_CANCELLED. Thread-safe: meant to
/// be called from another thread (or from the token callback) while
/// chaya_generate runs. Does nothing when no generation is running (it does
/// not cancel the next one). Safe to race with chaya_session_free: on a
/// session already freed it returns CHAYA_ERR_INVALID_HANDLE (as long as the
/// memory was not reused for a new session, in which case that one would be
/// cancelled: still a bug to fix in the caller).
///
/// # Safety
/// `session` is NULL or a pointer returned by chaya_session_new.
#[no_mangle]
pub unsafe extern "C" fn chaya_cancel(session: *const chaya_session) -> chaya_status {
    guard(|| {
        // SAFETY: NULL or returned by chaya_session_new (caller); checked live,
        // and held so while the flag is set. Only the cancel flag is touched,
        // never the session, which chaya_generate may be using.
        unsafe { with_live(session, "session", |s| s.cancel.cancel()) }
    })
}

/// A cancel for one chaya_generate_with_cancel call, made before the call.
///
/// Opaque. Created by chaya_cancel_token_new, freed by chaya_cancel_token_free.
/// Once cancelled it stays cancelled: make a new token for each call.
pub struct chaya_cancel_token {
    token: CancelToken,
}

/// Creates a token not cancelled yet, stored in `*out` (NULL on failure).
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chaya_cancel_token_new(out: *mut *mut chaya_cancel_token) -> chaya_status {
    guard(|| {
        // SAFETY: NULL or writable (caller).
        unsafe { write_out(out, std::ptr::null_mut(), "out") }?;
        let token = register(chaya_cancel_token {
            token: CancelToken::default(),
        });
        // SAFETY: checked non-NULL and writable above.
        unsafe { out.write(token) };
        Ok(())
    })
}

/// Cancels the call `token` is passed to, whether it runs already or starts
/// later. Thread-safe: meant to be called from any thread (or from the token
/// callback). Safe to race with chaya_cancel_token_free: on a token already
/// freed it returns CHAYA_ERR_INVALID_HANDLE, as long as the memory was not
/// reused for a new token, in which case that one would be cancelled (the
/// allocator reuses it soon): free a token only after its last cancel.
///
/// # Safety
/// `token` is NULL or a pointer returned by chaya_cancel_token_new.
#[no_mangle]
pub unsafe extern "C" fn chaya_cancel_token_cancel(
    token: *const chaya_cancel_token,
) -> chaya_status {
    // SAFETY: NULL or returned by chaya_cancel_token_new (caller); checked
    // live, and held so while the flag is set.
    guard(|| unsafe { with_live(token, "token", |t| t.token.cancel()) })
}

/// Frees a token. NULL is a no-op; a second free is detected and ignored
/// (chaya_last_error() says so) as long as the memory was not reused for a new
/// token, which it would free instead: treat it as a bug to fix. A call the
/// token was passed to keeps its own reference: freeing the token while the
/// call runs is allowed, but then it can no longer cancel it.
///
/// # Safety
/// `token` is NULL or a pointer returned by chaya_cancel_token_new.
#[no_mangle]
pub unsafe extern "C" fn chaya_cancel_token_free(token: *mut chaya_cancel_token) {
    // SAFETY: NULL or returned by `register` (caller). Its other uses (the
    // cancel, and the clone in chaya_generate_with_cancel) run under the
    // live-handle lock this free takes, so they never see it freed.
    guard_or((), || unsafe {
        unregister_and_free(token, "token", |_| false)
    })
}
