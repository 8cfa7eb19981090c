#!/usr/bin/env bash
# Prints the stripped size of the shared libraries an app ships:
# libchaya_uniffi.so (Kotlin/Swift/Python bindings) and libchaya.so (C ABI),
# built for the host with the `mobile` profile (what the Android and iOS
# scripts build). Neither has core's `convert` feature (PyTorch
# checkpoint import); only the CLI enables it.
#
# Usage: scripts/lib-size.sh
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${CARGO_TARGET_DIR:-target}/mobile
cargo build --profile mobile -p chaya-uniffi -p chaya-ffi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for lib in libchaya_uniffi.so libchaya.so; do
    strip -o "$out/$lib" "$dir/$lib"
    printf '%-20s %8d bytes stripped (%.2f MB), %d bytes as built\n' "$lib" \
        "$(stat -c %s "$out/$lib")" "$(echo "$(stat -c %s "$out/$lib") / 1048576" | bc -l)" "$(stat -c %s "$dir/$lib")"
done
