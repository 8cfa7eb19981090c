//! Model handles: loading, freeing, and read-only queries.

use crate::status::chaya_status;
use crate::status::{
    guard, guard_or, handle, register, slice, unregister_and_free, write_out, Failure, FfiResult,
};
use chaya_core::{LoadOptions, Model};
use std::ffi::{c_char, CStr};
use std::path::PathBuf;

/// A loaded model (weights compiled for inference, plus its tokenizer).
///
/// Opaque. Created by chaya_model_load or chaya_model_load_from_memory, freed
/// by chaya_model_free. Immutable once loaded: every function taking a
/// `const chaya_model *` may be called from any number of threads at once.
pub struct chaya_model {
    pub(crate) model: Model,
}

/// How to load a model. Get the defaults from chaya_load_options_default()
/// and change fields from there.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct chaya_load_options {
    /// Compute threads of the model, shared by its sessions; at most 256; 0
    /// uses every available core.
    pub threads: u32,
    /// Attention window (KV-cache capacity) in tokens, 1..=65536; 0 keeps the
    /// model file's value. A longer conversation shifts the window or stops
    /// (chaya_options.context_shift).
    pub context_length: u32,
    /// Most prompt tokens computed per forward pass, 1..=65536; 0 uses 256.
    /// Smaller chunks lower a long prompt's peak memory and let chaya_cancel
    /// end its prefill sooner, at some speed.
    pub prefill_chunk: u32,
}

/// The default load options: all cores, the model file's context length,
/// 256-token prefill chunks.
#[no_mangle]
pub extern "C" fn chaya_load_options_default() -> chaya_load_options {
    chaya_load_options {
        threads: 0,
        context_length: 0,
        prefill_chunk: 0,
    }
}

/// Options from a possibly-NULL pointer (NULL means the defaults).
///
/// # Safety
/// `opts` is NULL or points to a valid `chaya_load_options`.
unsafe fn load_options(opts: *const chaya_load_options) -> LoadOptions {
    // SAFETY: NULL or valid (caller).
    let opts = unsafe { opts.as_ref() }
        .copied()
        .unwrap_or(chaya_load_options_default());
    LoadOptions {
        threads: opts.threads as usize,
        context_length: (opts.context_length != 0).then_some(opts.context_length as usize),
        prefill_chunk: (opts.prefill_chunk != 0).then_some(opts.prefill_chunk as usize),
    }
}

/// Loads and boxes a model, storing it in `*out` (NULL on failure).
///
/// # Safety
/// `out` is NULL or valid for writing a pointer.
unsafe fn load_into(
    out: *mut *mut chaya_model,
    load: impl FnOnce() -> FfiResult<Model>,
) -> chaya_status {
    guard(|| {
        // SAFETY: NULL or writable (caller).
        unsafe { write_out(out, std::ptr::null_mut(), "out") }?;
        let model = register(chaya_model { model: load()? });
        // SAFETY: checked non-NULL and writable just above.
        unsafe { out.write(model) };
        Ok(())
    })
}

/// Loads a model file (`.safetensors` in the CHAYA single-file format) from
/// `path`.
///
/// On Unix `path` is taken as bytes, in any encoding; elsewhere it must be
/// UTF-8. `opts` may be NULL for the defaults. On success `*out` receives a
/// new model to free with chaya_model_free; on failure `*out` is set to NULL
/// and the status says why: CHAYA_ERR_IO (the message names the path),
/// CHAYA_ERR_INVALID_MODEL, CHAYA_ERR_INVALID_OPTION, CHAYA_ERR_TOKENIZER,
/// CHAYA_ERR_INFERENCE (the compute threads could not start or the graphs
/// did not compile), CHAYA_ERR_INVALID_UTF8 (outside Unix: path is not
/// UTF-8), CHAYA_ERR_NULL_POINTER (path or out is NULL). Loading is slow
/// (weights are compiled): do it once and share the model. The file is
/// memory-mapped while the model lives: replace it by renaming a new file
/// over it, never by truncating or rewriting it in place (reading a cut page
/// raises SIGBUS).
///
/// # Safety
/// `path` is NULL or NUL-terminated; `opts` is NULL or valid; `out` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn chaya_model_load(
    path: *const c_char,
    opts: *const chaya_load_options,
    out: *mut *mut chaya_model,
) -> chaya_status {
    let load = || {
        if path.is_null() {
            return Err(Failure::null("path"));
        }
        // SAFETY: non-NULL and NUL-terminated (caller).
        let path = path_from_c(unsafe { CStr::from_ptr(path) })?;
        // SAFETY: NULL or valid (caller).
        let options = unsafe { load_options(opts) };
        Ok(Model::load(path, &options)?)
    };
    // SAFETY: NULL or writable (caller).
    unsafe { load_into(out, load) }
}

/// A file system path from C bytes: any bytes on Unix, UTF-8 elsewhere.
fn path_from_c(path: &CStr) -> FfiResult<PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(std::ffi::OsStr::from_bytes(path.to_bytes()).into())
    }
    #[cfg(not(unix))]
    {
        path.to_str().map(PathBuf::from).map_err(|e| {
            Failure::new(
                chaya_status::CHAYA_ERR_INVALID_UTF8,
                format!("`path` is not valid UTF-8: {e}"),
            )
        })
    }
}

/// Loads a model from a model file's bytes held in memory (e.g. an app asset).
///
/// The bytes are copied: the buffer may be freed as soon as this returns.
/// Statuses and ownership as for chaya_model_load (minus CHAYA_ERR_IO and
/// CHAYA_ERR_INVALID_UTF8).
///
/// # Safety
/// `data` is NULL or points to `len` readable bytes; `opts` is NULL or valid;
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn chaya_model_load_from_memory(
    data: *const u8,
    len: usize,
    opts: *const chaya_load_options,
    out: *mut *mut chaya_model,
) -> chaya_status {
    let load = || {
        if data.is_null() {
            return Err(Failure::null("data"));
        }
        // SAFETY: `len` readable bytes (caller), not mutated during the call.
        let bytes = unsafe { slice(data, len, "data") }?;
        // SAFETY: NULL or valid (caller).
        let options = unsafe { load_options(opts) };
        Ok(Model::from_bytes(bytes, &options)?)
    };
    // SAFETY: NULL or writable (caller).
    unsafe { load_into(out, load) }
}

/// Frees a model. NULL is a no-op.
///
/// Sessions created from the model keep what they need alive: they remain
/// usable, and must still be freed with chaya_session_free. Freeing a model
/// twice is detected and ignored (chaya_last_error() says so), and using it
/// after this call gives CHAYA_ERR_INVALID_HANDLE, as long as its memory has
/// not been reused for a new handle: do not rely on it.
///
/// # Safety
/// `model` is NULL or a pointer returned by chaya_model_load*, and no other
/// thread is using it.
#[no_mangle]
pub unsafe extern "C" fn chaya_model_free(model: *mut chaya_model) {
    // SAFETY: NULL or returned by `register`, unused elsewhere (caller).
    guard_or((), || unsafe {
        unregister_and_free(model, "model", |_| false)
    })
}

/// Number of token ids in the model's vocabulary (token ids are
/// 0..vocab_size-1). Returns 0 when `model` is NULL or not live.
///
/// # Safety
/// `model` is NULL or a live model.
#[no_mangle]
pub unsafe extern "C" fn chaya_vocab_size(model: *const chaya_model) -> usize {
    guard_or(0, || {
        // SAFETY: NULL or live (caller).
        unsafe { handle(model, "model") }.map_or(0, |m| m.model.config().vocab_size)
    })
}

/// The model's effective context length in tokens (after the load option).
/// Returns 0 when `model` is NULL or not live.
///
/// # Safety
/// `model` is NULL or a live model.
#[no_mangle]
pub unsafe extern "C" fn chaya_context_length(model: *const chaya_model) -> usize {
    guard_or(0, || {
        // SAFETY: NULL or live (caller).
        unsafe { handle(model, "model") }.map_or(0, |m| m.model.config().context_length)
    })
}

/// Most prompt tokens the model's sessions compute per forward pass (after
/// the load option). Returns 0 when `model` is NULL or not live.
///
/// # Safety
/// `model` is NULL or a live model.
#[no_mangle]
pub unsafe extern "C" fn chaya_prefill_chunk(model: *const chaya_model) -> usize {
    guard_or(0, || {
        // SAFETY: NULL or live (caller).
        unsafe { handle(model, "model") }.map_or(0, |m| m.model.prefill_chunk())
    })
}
