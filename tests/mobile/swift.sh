#!/usr/bin/env bash
# Builds the Swift package ios/ (bindings + async wrapper) with `swift build` and
# runs its XCTest tests with `swift test`, on Linux in the trixie chroot
# (tests/swift/chroot.sh), against the host-built libchaya_uniffi.so. On Linux
# Package.swift takes the native library as a system library instead of the
# XCFramework.
#
# Usage: tests/mobile/swift.sh
# Environment: PROFILE (debug|release, default debug) selects the Rust build.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PROFILE=${PROFILE:-debug}
source "$ROOT/tests/swift/chroot.sh"

swift_chroot_setup
swift_chroot_mount

source "$ROOT/tests/build.sh"
build_workspace

# The package's files, symlinks resolved (they point outside ios/); its .build is
# kept between runs.
WORK=/chaya-mobile-swift
rm -rf "${CHROOT:?}$WORK/lib" "$CHROOT$WORK/package/Sources" "$CHROOT$WORK/package/Tests"
mkdir -p "$CHROOT$WORK/lib" "$CHROOT$WORK/package"
cp -rL ios/Package.swift ios/Sources ios/Tests "$CHROOT$WORK/package/"
# Without debug info: the debug build's is hundreds of megabytes.
objcopy --strip-debug "$TARGET_DIR/$PROFILE/libchaya_uniffi.so" "$CHROOT$WORK/lib/libchaya_uniffi.so"

LINK=(-Xlinker -L"$WORK/lib" -Xlinker -rpath -Xlinker "$WORK/lib")
echo "== swift build"
swift_chroot swift build --package-path "$WORK/package" "${LINK[@]}"
echo "== swift test"
# A generation that fails to stop would run for 1M tokens: the cancel tests end
# the process after 60 s (their watchdog); the timeout bounds everything else.
swift_chroot timeout 1200 swift test --package-path "$WORK/package" "${LINK[@]}"
