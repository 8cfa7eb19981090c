#!/usr/bin/env bash
# Builds libchaya_uniffi.so (`mobile` profile) for the Android ABIs into
# chaya/src/main/jniLibs/<abi>/, where Gradle packages it into the AAR.
#
# Needs the Android NDK (found by cargo-ndk: ANDROID_NDK_HOME, or Android
# Studio's default location) and installs, when missing, cargo-ndk and the Rust
# targets. Usage: android/build-rust.sh [ABI...]   (default: arm64-v8a armeabi-v7a x86_64)
#
# The 64-bit libraries are linked for 16 KB pages (Android 15 devices with
# 16 KB pages, and Google Play, require it; NDK r28 and later do it by
# default, older ones need the flag) and checked afterwards with readelf.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ABIS=("$@")
((${#ABIS[@]})) || ABIS=(arm64-v8a armeabi-v7a x86_64)
# Oldest Android API level the library supports (the module's minSdk).
API_LEVEL=24
PAGE_FLAG=-Clink-arg=-Wl,-z,max-page-size=16384

# The Rust target of an ABI (a function, not an associative array: macOS's
# bash 3.2 has none).
triple() {
    case $1 in
        arm64-v8a) echo aarch64-linux-android ;;
        armeabi-v7a) echo armv7-linux-androideabi ;;
        x86_64) echo x86_64-linux-android ;;
        x86) echo i686-linux-android ;;
        *) return 1 ;;
    esac
}

targets=()
for abi in "${ABIS[@]}"; do
    target=$(triple "$abi") || {
        echo "unknown ABI $abi (one of arm64-v8a armeabi-v7a x86_64 x86)" >&2
        exit 2
    }
    targets+=(-t "$abi")
    rustup target add "$target"
done
command -v cargo-ndk >/dev/null || cargo install cargo-ndk

cd "$HERE/.."
# The `mobile` profile (Cargo.toml: size-optimized, fat LTO). Unstripped here;
# the Android Gradle plugin strips them when it packages an app.
CARGO_TARGET_AARCH64_LINUX_ANDROID_RUSTFLAGS=$PAGE_FLAG \
    CARGO_TARGET_X86_64_LINUX_ANDROID_RUSTFLAGS=$PAGE_FLAG \
    cargo ndk --platform "$API_LEVEL" "${targets[@]}" -o "$HERE/chaya/src/main/jniLibs" \
    build --profile mobile --no-default-features -p chaya-uniffi
ls -l "$HERE"/chaya/src/main/jniLibs/*/libchaya_uniffi.so

# Every LOAD segment of a 64-bit library aligned to at least 16 KB, read by
# readelf on PATH, else by the NDK's llvm-readelf: ANDROID_NDK_HOME's,
# ANDROID_NDK_ROOT's, or any NDK in the SDK (ANDROID_HOME, ANDROID_SDK_ROOT,
# Android Studio's default locations).
readelf=$(command -v llvm-readelf || command -v readelf || true)
if [[ -z $readelf ]]; then
    ndks=()
    for ndk in "${ANDROID_NDK_HOME:-}" "${ANDROID_NDK_ROOT:-}"; do
        if [[ -n $ndk ]]; then ndks+=("$ndk"); fi
    done
    for sdk in "${ANDROID_HOME:-}" "${ANDROID_SDK_ROOT:-}" "${HOME:-}/Library/Android/sdk" "${HOME:-}/Android/Sdk"; do
        if [[ -n $sdk ]]; then ndks+=("$sdk"/ndk/*); fi
    done
    for ndk in ${ndks[@]+"${ndks[@]}"}; do
        for candidate in "$ndk"/toolchains/llvm/prebuilt/*/bin/llvm-readelf; do
            if [[ -x $candidate ]]; then
                readelf=$candidate
                break 2
            fi
        done
    done
fi
for abi in "${ABIS[@]}"; do
    [[ $abi == arm64-v8a || $abi == x86_64 ]] || continue
    lib=$HERE/chaya/src/main/jniLibs/$abi/libchaya_uniffi.so
    if [[ -z $readelf ]]; then
        echo "error: no readelf to check $lib's 16 KB page alignment: put llvm-readelf or readelf on PATH," \
            "or set ANDROID_NDK_HOME (or ANDROID_HOME) to find the NDK's llvm-readelf" >&2
        exit 1
    fi
    for align in $("$readelf" -lW "$lib" | awk '$1 == "LOAD" { print $NF }'); do
        if ((align < 16384)); then
            echo "$lib: a LOAD segment aligned to $align bytes, not 16 KB (update cargo-ndk to 4 or the NDK to r28)" >&2
            exit 1
        fi
    done
done
