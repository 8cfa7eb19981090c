#!/usr/bin/env bash
# Builds ios/chayaFFI.xcframework, the binary target of Package.swift: the static
# libchaya_uniffi.a (`mobile` profile) for iOS devices (arm64), the iOS simulator (arm64 +
# x86_64) and macOS (arm64 + x86_64), with the uniffi C header and module map.
#
# Needs macOS with Xcode (xcodebuild, lipo); installs the Rust targets when missing.
# Usage: ios/build-xcframework.sh
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=$HERE/chayaFFI.xcframework
# Cargo's target directory (CARGO_TARGET_DIR, when set, as cargo itself uses it).
TARGET_DIR=$(cd "$ROOT" && mkdir -p "${CARGO_TARGET_DIR:-target}" && cd "${CARGO_TARGET_DIR:-target}" && pwd)
WORK=$TARGET_DIR/xcframework
# Oldest systems supported (Package.swift's platforms).
export IPHONEOS_DEPLOYMENT_TARGET=15.0 MACOSX_DEPLOYMENT_TARGET=12.0

TARGETS=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
rustup target add "${TARGETS[@]}"
cd "$ROOT"
for target in "${TARGETS[@]}"; do
    cargo build --profile mobile --no-default-features -p chaya-uniffi --target "$target"
done

lib() { echo "$TARGET_DIR/$1/mobile/libchaya_uniffi.a"; }
rm -rf "$WORK" "$OUT"
mkdir -p "$WORK/ios-simulator" "$WORK/macos" "$WORK/headers/chayaFFI"
lipo -create "$(lib aarch64-apple-ios-sim)" "$(lib x86_64-apple-ios)" -output "$WORK/ios-simulator/libchaya_uniffi.a"
lipo -create "$(lib aarch64-apple-darwin)" "$(lib x86_64-apple-darwin)" -output "$WORK/macos/libchaya_uniffi.a"

# In a subfolder of Headers, so the module map cannot collide with another XCFramework's.
cp bindings/swift/chayaFFI.h "$WORK/headers/chayaFFI/"
cp bindings/swift/chayaFFI.modulemap "$WORK/headers/chayaFFI/module.modulemap"

xcodebuild -create-xcframework \
    -library "$(lib aarch64-apple-ios)" -headers "$WORK/headers" \
    -library "$WORK/ios-simulator/libchaya_uniffi.a" -headers "$WORK/headers" \
    -library "$WORK/macos/libchaya_uniffi.a" -headers "$WORK/headers" \
    -output "$OUT"
du -sh "$OUT"
