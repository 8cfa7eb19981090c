//! Scoring text as a continuation of a session's conversation.

use crate::session::chaya_session;
use crate::status::{chaya_status, guard, handle, utf8, write_out, Failure};
use chaya_core::score::check_scorable;
use std::ffi::c_char;

/// Scores `text` (NUL-terminated UTF-8) as a continuation of the session's
/// conversation (of one end-of-text token when it is empty): writes the ids
/// of its tokens (encoded on its own, as chaya_tokenize gives them) to
/// `tokens` and the natural log of each one's probability, given the
/// conversation and the text's tokens before it, to `logprobs`. Sum them to
/// rank candidate continuations. Neither the conversation nor what later
/// generations read changes; the conversation's cache is reused when the
/// text fits in its window (see `Session::score` of the Rust crate for
/// windows). chaya_cancel does not stop a score.
///
/// The number of tokens is stored in `*n_out`. When it exceeds `cap`, nothing
/// is computed or written to the arrays and CHAYA_ERR_BUFFER_TOO_SMALL is
/// returned: call again with room for `*n_out` tokens. `tokens` and
/// `logprobs` may be NULL when `cap` is 0 (to query the count). An empty text
/// has no tokens. Other statuses: CHAYA_ERR_NULL_POINTER,
/// CHAYA_ERR_INVALID_UTF8, CHAYA_ERR_INVALID_INPUT (a text of the context
/// length in tokens or more, also to a size query; `*n_out` holds its
/// count), CHAYA_ERR_BUSY, CHAYA_ERR_TOKENIZER, CHAYA_ERR_INFERENCE.
///
/// # Safety
/// `session` is NULL or live; `text` is NULL or NUL-terminated; `tokens` and
/// `logprobs` are NULL or writable for `cap` values; `n_out` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn chaya_score(
    session: *mut chaya_session,
    text: *const c_char,
    tokens: *mut u32,
    logprobs: *mut f32,
    cap: usize,
    n_out: *mut usize,
) -> chaya_status {
    guard(|| {
        // SAFETY: NULL or writable (caller).
        unsafe { write_out(n_out, 0, "n_out") }?;
        // SAFETY: NULL or live (caller); the session is behind a mutex.
        let session = unsafe { handle(session, "session") }?;
        // SAFETY: NULL or NUL-terminated (caller).
        let text = unsafe { utf8(text, "text") }?;
        let mut session = session.lock()?;
        let count = session.model().tokenizer().encode(text)?.len();
        // SAFETY: checked non-NULL and writable above.
        unsafe { n_out.write(count) };
        // Before the buffer check: a size query must not invite a retry.
        check_scorable(count, session.model().config().context_length)?;
        Failure::unless_fits(count, cap, "scored tokens")?;
        if count == 0 {
            return Ok(());
        }
        if tokens.is_null() {
            return Err(Failure::null("tokens"));
        }
        if logprobs.is_null() {
            return Err(Failure::null("logprobs"));
        }
        for (i, score) in session.score(text)?.iter().take(count).enumerate() {
            // SAFETY: both non-NULL and writable for `cap >= count` values
            // (caller), and `score` gives the `count` tokens encoded above.
            unsafe {
                tokens.add(i).write(score.token);
                logprobs.add(i).write(score.logprob);
            }
        }
        Ok(())
    })
}
