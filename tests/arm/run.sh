#!/usr/bin/env bash
# Runs core/src/q8.rs's tests as aarch64 code under qemu-user: once on a CPU
# with the dot-product extension (the `sdot` kernels) and once without it
# (cortex-a53: the portable fallback). The module only needs std, so it is
# compiled alone, with rustc, outside the workspace.
#
# Needs: rustup target add aarch64-unknown-linux-gnu
#        apt-get install qemu-user gcc-aarch64-linux-gnu
# Takes a few seconds once those are installed (.ci/run installs them).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/lib.rs" <<RS
#[path = "$repo/core/src/q8.rs"]
pub mod q8;

#[test]
fn cpu() {
    println!("dotprod: {}", std::arch::is_aarch64_feature_detected!("dotprod"));
}
RS
for opt in 0 3; do
    rustc --edition 2021 --test --target aarch64-unknown-linux-gnu \
        -C linker=aarch64-linux-gnu-gcc -C opt-level=$opt -D warnings \
        "$work/lib.rs" -o "$work/q8-test"
    for cpu in max cortex-a53; do
        echo "== opt-level $opt, qemu -cpu $cpu"
        qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu $cpu "$work/q8-test" --show-output
    done
done
