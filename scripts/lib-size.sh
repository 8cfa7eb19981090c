#!/usr/bin/env bash
# Prints the stripped size of the shared libraries an app ships:
# libchaya_uniffi.so (Kotlin/Swift/Python bindings) and libchaya.so (C ABI),
# built for the host as the Android and iOS scripts build them: the `mobile`
# profile, without default features (no `tract-threads`, no `any-tokenizer`;
# README, "Mobile"). Neither has core's `convert` feature (PyTorch checkpoint
# import); only the CLI enables it.
#
# Usage: scripts/lib-size.sh [MAX_MB]   With MAX_MB (MB = 2^20 bytes), fails
# when a stripped library is larger (tests/all.sh checks the 8 MB budget).
# For aarch64 (the code Android's arm64-v8a runs, linked by GNU ld instead of
# the NDK's lld): TARGET=aarch64-unknown-linux-gnu scripts/lib-size.sh
# (needs gcc-aarch64-linux-gnu and the rustup target).
set -euo pipefail
cd "$(dirname "$0")/.."
max_mb=${1:-}

dir=${CARGO_TARGET_DIR:-target}
cross=
target_args=()
if [[ -n ${TARGET:-} ]]; then
    cross=${TARGET%%-unknown-*}-linux-gnu-
    export "CARGO_TARGET_$(echo "$TARGET" | tr a-z- A-Z_)_LINKER=${cross}gcc" "CC_${TARGET//-/_}=${cross}gcc"
    dir=$dir/$TARGET
    target_args=(--target "$TARGET")
fi
dir=$dir/mobile
cargo build --profile mobile --no-default-features -p chaya-uniffi -p chaya-ffi "${target_args[@]}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
for lib in libchaya_uniffi.so libchaya.so; do
    "${cross}strip" -o "$out/$lib" "$dir/$lib"
    bytes=$(stat -c %s "$out/$lib")
    printf '%-20s %8d bytes stripped (%.2f MB), %d bytes as built\n' "$lib" \
        "$bytes" "$(echo "$bytes / 1048576" | bc -l)" "$(stat -c %s "$dir/$lib")"
    if [[ -n $max_mb ]] && (( bytes > max_mb * 1048576 )); then
        echo "    $lib is over the $max_mb MB budget" >&2
        status=1
    fi
done
exit $status
