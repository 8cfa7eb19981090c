//! Helpers shared by the CLI's end-to-end tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A path relative to the repository root.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// The committed tiny random-weight model.
pub fn tiny_model() -> String {
    repo_path("models/chaya-tiny-random.safetensors")
        .to_str()
        .unwrap()
        .to_string()
}

/// A fresh empty directory for one test, removed when dropped.
pub fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("chaya-cli-{tag}-"))
        .tempdir()
        .unwrap()
}

/// Runs `chaya args`.
pub fn chaya(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chaya"))
        .args(args)
        .output()
        .expect("chaya runs")
}

/// Runs `chaya args` with `input` on its standard input.
pub fn chaya_with_input(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chaya"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chaya runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Runs `chaya args` with its standard output going to `stdout`.
pub fn chaya_into(args: &[&str], stdout: impl Into<Stdio>) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chaya"))
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .expect("chaya runs")
}

/// The process's standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
