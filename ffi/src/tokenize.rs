//! The model's tokenizer: text to token ids and back.

use crate::model::chaya_model;
use crate::status::{chaya_status, guard, handle, slice, utf8, write_out, Failure};
use crate::strings::to_owned_c_string;
use std::ffi::c_char;

/// Encodes `text` (NUL-terminated UTF-8) into token ids, with no special
/// tokens added (the text `<|endoftext|>` itself reads as the end-of-text
/// token, as in the reference tokenizer).
///
/// The number of ids is stored in `*n_out`. When it exceeds `cap`, nothing is
/// written to `out` and CHAYA_ERR_BUFFER_TOO_SMALL is returned: call again with
/// a buffer of `*n_out` ids. `out` may be NULL when `cap` is 0 (to query the
/// size). Other statuses: CHAYA_ERR_NULL_POINTER, CHAYA_ERR_INVALID_UTF8,
/// CHAYA_ERR_TOKENIZER. Thread-safe.
///
/// # Safety
/// `model` is NULL or live; `text` is NULL or NUL-terminated; `out` is NULL or
/// writable for `cap` ids; `n_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chaya_tokenize(
    model: *const chaya_model,
    text: *const c_char,
    out: *mut u32,
    cap: usize,
    n_out: *mut usize,
) -> chaya_status {
    guard(|| {
        // SAFETY: NULL or writable (caller).
        unsafe { write_out(n_out, 0, "n_out") }?;
        // SAFETY: NULL or live (caller).
        let model = unsafe { handle(model, "model") }?;
        // SAFETY: NULL or NUL-terminated (caller).
        let text = unsafe { utf8(text, "text") }?;
        let ids = model.model.tokenizer().encode(text)?;
        // SAFETY: checked non-NULL and writable above.
        unsafe { n_out.write(ids.len()) };
        Failure::unless_fits(ids.len(), cap, "token ids")?;
        if !ids.is_empty() {
            if out.is_null() {
                return Err(Failure::null("out"));
            }
            // SAFETY: `out` is non-NULL and writable for `cap >= ids.len()` ids
            // (caller); a caller's buffer cannot overlap our new Vec.
            unsafe { std::ptr::copy_nonoverlapping(ids.as_ptr(), out, ids.len()) };
        }
        Ok(())
    })
}

/// Decodes `n` token ids into text, stored in `*out` as a new NUL-terminated
/// UTF-8 string to free with chaya_string_free (`*out` is NULL on failure).
/// When `len_out` is not NULL it receives the text's length in bytes: the
/// text can hold NUL characters (a token of byte 0), which strlen would miss.
///
/// Bytes that do not form valid UTF-8 (e.g. a lone part of a multi-byte
/// character) become U+FFFD. `ids` may be NULL when `n` is 0 (gives "").
/// Statuses: CHAYA_ERR_NULL_POINTER, CHAYA_ERR_INVALID_INPUT (an id outside
/// the vocabulary). Thread-safe.
///
/// # Safety
/// `model` is NULL or live; `ids` is NULL or readable for `n` ids; `out` is
/// NULL or writable; `len_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chaya_detokenize(
    model: *const chaya_model,
    ids: *const u32,
    n: usize,
    out: *mut *mut c_char,
    len_out: *mut usize,
) -> chaya_status {
    guard(|| {
        // SAFETY: NULL or writable (caller).
        unsafe { write_out(out, std::ptr::null_mut(), "out") }?;
        if !len_out.is_null() {
            // SAFETY: non-NULL and writable (caller).
            unsafe { len_out.write(0) };
        }
        // SAFETY: NULL or live (caller).
        let model = unsafe { handle(model, "model") }?;
        // SAFETY: NULL or `n` readable ids (caller).
        let ids = unsafe { slice(ids, n, "ids") }?;
        let text = model.model.tokenizer().decode(ids)?;
        // SAFETY: checked non-NULL and writable above.
        unsafe { out.write(to_owned_c_string(text.as_bytes())) };
        if !len_out.is_null() {
            // SAFETY: non-NULL and writable (caller).
            unsafe { len_out.write(text.len()) };
        }
        Ok(())
    })
}
