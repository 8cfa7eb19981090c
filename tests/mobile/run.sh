#!/usr/bin/env bash
# The mobile packaging tests that run without the Android SDK/NDK or Xcode: the
# Kotlin coroutine wrapper on the JVM, the Swift package on Linux,
# `cargo check` for Android, android/build-rust.sh against a stand-in
# cargo-ndk, ios/build-xcframework.sh against stand-ins for cargo and Xcode's
# tools, and scripts/bench-android.sh against stand-ins for cargo-ndk and
# adb. Fails on the first failure; prints each step's time.
#
# Usage: tests/mobile/run.sh [MODEL]   (default: models/chaya-tiny-random.safetensors)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

step() {
    local name=$1 start=${EPOCHREALTIME/./}
    shift
    echo "==== mobile: $name"
    "$@"
    local us=$((${EPOCHREALTIME/./} - start))
    printf '==== mobile: %s passed in %d.%01d s\n' "$name" $((us / 1000000)) $((us / 100000 % 10))
}

step "kotlin wrapper (JVM)" tests/mobile/kotlin.sh "$@"
step "swift package (Linux)" tests/mobile/swift.sh
step "cargo check for Android" tests/mobile/android-check.sh
step "android/build-rust.sh (stand-in cargo-ndk): targets, libraries, 16 KB pages" tests/mobile/android-build.sh
step "ios/build-xcframework.sh (stand-in cargo, lipo, xcodebuild)" tests/mobile/xcframework.sh
step "device benchmark script (stand-in adb)" tests/mobile/bench-android.sh
echo "==== mobile: all passed"
