#!/usr/bin/env bash
# Checks the Rust side of the Android build without the NDK: installs the
# aarch64-linux-android standard library and runs
# `cargo check -p chaya-uniffi --no-default-features --target aarch64-linux-android`
# (the features android/build-rust.sh builds; type-checks every crate for
# Android; nothing is linked, so no NDK linker is needed).
#
# tract-linalg's build script assembles its arm64 kernels with a C compiler even
# for `cargo check`: Debian's clang (--target=aarch64-linux-android24) stands in
# for the NDK's clang, and llvm-ar for its archiver.
#
# Usage: tests/mobile/android-check.sh   Prints SKIPPED and succeeds when the
# target's standard library cannot be installed (no rustup or no network).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=aarch64-linux-android
CLANG_VERSION=14

if ! rustup target add "$TARGET"; then
    echo "SKIPPED: cannot install the $TARGET standard library"
    exit 0
fi
if ! command -v "clang-$CLANG_VERSION" >/dev/null || ! command -v "llvm-ar-$CLANG_VERSION" >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "clang-$CLANG_VERSION" "llvm-$CLANG_VERSION"
fi

export CC_aarch64_linux_android=clang-$CLANG_VERSION
export CFLAGS_aarch64_linux_android=--target=aarch64-linux-android24
export AR_aarch64_linux_android=llvm-ar-$CLANG_VERSION
cd "$ROOT"
cargo check -p chaya-uniffi --no-default-features --target "$TARGET"
