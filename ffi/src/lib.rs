//! # chaya-ffi — the C ABI of the CHAYA-v1 runtime
//!
//! A thin layer over the `chaya` crate: opaque handles, plain-data option and
//! summary structs, status codes and a thread-local error message. No model
//! logic lives here. The C header, `include/chaya.h`, is generated from these
//! sources by cbindgen (`cbindgen.toml`); `tests/header.rs` fails when it is
//! stale and rewrites it when run with `CHAYA_BLESS=1`.
//!
//! Every exported function catches panics (→ `CHAYA_ERR_PANIC`), checks its
//! pointers (→ `CHAYA_ERR_NULL_POINTER`) and records a message for
//! `chaya_last_error` when it fails.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
// The exported items carry their C names (`chaya_model`, `CHAYA_OK`, ...).
#![allow(non_camel_case_types)]

// cbindgen emits functions in source order: these modules are declared in the
// order of the header's sections (blank lines keep rustfmt from sorting them).
// Status codes and chaya_last_error.
mod status;

// Model handles.
mod model;

// Session handles.
mod session;

// Generation options.
mod options;

// Generation, summaries, cancellation.
mod generate;

// Scoring text.
mod score;

// Tokenizer access.
mod tokenize;

// Library-owned strings.
mod strings;

pub use generate::{
    chaya_cancel, chaya_cancel_token, chaya_cancel_token_cancel, chaya_cancel_token_free,
    chaya_cancel_token_new, chaya_generate, chaya_generate_with_cancel, chaya_stop_reason,
    chaya_summary, chaya_summary_free, chaya_token_callback,
};
pub use model::{
    chaya_context_length, chaya_load_options, chaya_load_options_default, chaya_model,
    chaya_model_free, chaya_model_load, chaya_model_load_from_memory, chaya_prefill_chunk,
    chaya_vocab_size,
};
pub use options::{chaya_options, chaya_options_compat, chaya_options_default};
pub use score::chaya_score;
pub use session::{chaya_session, chaya_session_free, chaya_session_new, chaya_session_reset};
pub use status::{chaya_last_error, chaya_status};
pub use strings::chaya_string_free;
pub use tokenize::{chaya_detokenize, chaya_tokenize};

use std::ffi::c_char;

// Handles are shared across threads by C callers: keep them Send + Sync.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<chaya_model>();
    send_sync::<chaya_session>();
    send_sync::<chaya_cancel_token>();
};

/// The library version ("MAJOR.MINOR.PATCH"), a static NUL-terminated string.
/// Never NULL; do not free it.
#[no_mangle]
pub extern "C" fn chaya_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
