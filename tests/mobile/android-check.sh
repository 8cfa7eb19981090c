#!/usr/bin/env bash
# Checks the Rust side of the Android build without the NDK: installs the
# standard library of each Android ABI's target (arm64-v8a, armeabi-v7a,
# x86_64: what android/build-rust.sh builds) and runs
# `cargo check -p chaya-uniffi --no-default-features --target TARGET` (the
# features build-rust.sh builds; type-checks every crate for Android; nothing
# is linked, so no NDK linker is needed), our crates' warnings as errors:
# code only some architectures use must be cfg'd to them.
#
# tract-linalg's build script assembles its kernels with a C compiler even
# for `cargo check`: Debian's clang (--target=TARGET24) stands in for the
# NDK's clang, and llvm-ar for its archiver.
#
# Usage: tests/mobile/android-check.sh   Prints SKIPPED for, and goes past, a
# target whose standard library cannot be installed (no rustup or no network).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGETS=(aarch64-linux-android armv7-linux-androideabi x86_64-linux-android)
CLANG_VERSION=14
# Oldest Android API level supported (android/build-rust.sh, the module's minSdk).
API_LEVEL=24

# .ci/run installs them; here as well when missing (sudo unless root, as there).
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v "clang-$CLANG_VERSION" >/dev/null || ! command -v "llvm-ar-$CLANG_VERSION" >/dev/null; then
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "clang-$CLANG_VERSION" "llvm-$CLANG_VERSION"
fi

cd "$ROOT"
source tests/skip.sh
for target in "${TARGETS[@]}"; do
    echo "== cargo check --target $target"
    if ! rustup target add "$target"; then
        skipped "cargo check for $target: cannot install its standard library"
        continue
    fi
    env=${target//-/_}
    env "CC_$env=clang-$CLANG_VERSION" "CFLAGS_$env=--target=$target$API_LEVEL" \
        "AR_$env=llvm-ar-$CLANG_VERSION" RUSTFLAGS="-D warnings" \
        cargo check -p chaya-uniffi --no-default-features --target "$target"
done
