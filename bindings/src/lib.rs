//! # chaya-uniffi — Kotlin, Swift and Python bindings of the chaya runtime
//!
//! A thin [UniFFI](https://mozilla.github.io/uniffi-rs) adapter over the `chaya`
//! crate: every type here converts to or from its core counterpart and every
//! call forwards to core. The foreign sources generated from this crate live in
//! `bindings/kotlin`, `bindings/swift` and `bindings/python`
//! (`bindings/generate.sh`).
//!
//! The exported API (namespace `chaya`):
//! - [`Model`]: loaded from a path or from bytes with [`LoadOptions`]; tokenizes
//!   and opens sessions.
//! - [`Session`]: one conversation; [`Session::generate`] streams text to a
//!   foreign [`TokenSink`] and returns a [`GenerateSummary`];
//!   [`Session::cancel`] stops it from any thread; [`Session::score`] gives
//!   the log-probabilities ([`TokenLogprob`]) of a text that would continue it.
//! - [`CancelToken`]: cancels the one generation it is passed to, even before
//!   that generation starts.
//! - [`GenerateOptions`]: sampling settings with core's defaults.
//! - [`ChayaError`]: the typed error of every fallible call; a sink may throw
//!   [`TokenSinkError`] (or anything else) to stop with `ChayaError.Callback`.

#![warn(missing_docs)]

mod error;
mod model;
mod options;
mod session;
mod teardown;
#[cfg(test)]
mod tests;

pub use error::{ChayaError, TokenSinkError};
pub use model::Model;
pub use options::{
    compat_generate_options, default_generate_options, greedy_generate_options, GenerateOptions,
    LoadOptions, LogitBias,
};
pub use session::{CancelToken, GenerateSummary, Session, StopReason, TokenLogprob, TokenSink};

uniffi::setup_scaffolding!("chaya");
