#!/usr/bin/env bash
# Builds libchaya_uniffi.so (`mobile` profile) for the Android ABIs into
# chaya/src/main/jniLibs/<abi>/, where Gradle packages it into the AAR.
#
# Needs the Android NDK (found by cargo-ndk: ANDROID_NDK_HOME, or Android
# Studio's default location) and installs, when missing, cargo-ndk and the Rust
# targets. Usage: android/build-rust.sh [ABI...]   (default: arm64-v8a armeabi-v7a x86_64)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ABIS=("$@")
((${#ABIS[@]})) || ABIS=(arm64-v8a armeabi-v7a x86_64)
# Oldest Android API level the library supports (the module's minSdk).
API_LEVEL=24

declare -A TRIPLE=(
    [arm64-v8a]=aarch64-linux-android
    [armeabi-v7a]=armv7-linux-androideabi
    [x86_64]=x86_64-linux-android
    [x86]=i686-linux-android
)
targets=()
for abi in "${ABIS[@]}"; do
    [[ -n ${TRIPLE[$abi]:-} ]] || { echo "unknown ABI $abi (one of ${!TRIPLE[*]})" >&2; exit 2; }
    targets+=(-t "$abi")
    rustup target add "${TRIPLE[$abi]}"
done
command -v cargo-ndk >/dev/null || cargo install cargo-ndk

cd "$HERE/.."
# The `mobile` profile (Cargo.toml: size-optimized, fat LTO). Unstripped here;
# the Android Gradle plugin strips them when it packages an app.
cargo ndk --platform "$API_LEVEL" "${targets[@]}" -o "$HERE/chaya/src/main/jniLibs" \
    build --profile mobile --no-default-features -p chaya-uniffi
ls -l "$HERE"/chaya/src/main/jniLibs/*/libchaya_uniffi.so
