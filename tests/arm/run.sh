#!/usr/bin/env bash
# Runs core/src/q8.rs's tests as aarch64 code under qemu-user: on a CPU with
# the dot-product and int8 matrix-multiply extensions (max: the `smmla` and
# `sdot` kernels), on one with the dot-product extension only (neoverse-n1:
# `sdot`) and on one without either (cortex-a53: the portable fallback).
# The module only needs std, so it is compiled alone, with rustc, outside
# the workspace. Then core's unit,
# generation and PyTorch-reference tests, built for aarch64 as the mobile
# libraries are (no default features), under qemu with both extensions:
# the whole model on tract's arm64 kernels and ours. Left to the host: the
# converter's own checkpoint-variant tests, and the int8-vs-f32 divergence
# statistics (float64 arithmetic on logits that the int8 and f32 reference
# tests pin here already; its ~200 M calls of exp took 6 of the 13 minutes
# the reference tests ran under emulation).
#
# Needs: rustup target add aarch64-unknown-linux-gnu
#        apt-get install qemu-user gcc-aarch64-linux-gnu
# The q8 part takes seconds; core's tests about 15 minutes (5 to build,
# 10 to run under emulation, most of it the reference tests). .ci/run installs the tools.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/lib.rs" <<RS
#[path = "$repo/core/src/q8.rs"]
pub mod q8;

/// The CPU qemu emulates has the features its kernels were picked for
/// (EXPECT: what \`-cpu\` must give), so no kernel drops out unseen.
#[test]
fn cpu() {
    let found = format!(
        "dotprod={} i8mm={}",
        std::arch::is_aarch64_feature_detected!("dotprod"),
        std::arch::is_aarch64_feature_detected!("i8mm")
    );
    assert_eq!(found, std::env::var("EXPECT").unwrap());
}
RS
for opt in 0 3; do
    rustc --edition 2021 --test --target aarch64-unknown-linux-gnu \
        -C linker=aarch64-linux-gnu-gcc -C opt-level=$opt -D warnings \
        "$work/lib.rs" -o "$work/q8-test"
    for cpu in max neoverse-n1 cortex-a53; do
        case $cpu in
            max) expect="dotprod=true i8mm=true" ;;
            neoverse-n1) expect="dotprod=true i8mm=false" ;;
            cortex-a53) expect="dotprod=false i8mm=false" ;;
        esac
        echo "== opt-level $opt, qemu -cpu $cpu ($expect)"
        EXPECT=$expect qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu $cpu "$work/q8-test" --show-output
    done
done

echo "== core's tests for aarch64 (no default features), qemu -cpu max"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu max"
cd "$repo"
cargo test -p chaya --no-default-features --features convert --target aarch64-unknown-linux-gnu \
    --lib --test generate --test reference -- \
    --skip every_checkpoint_variant_gives_identical_logits \
    --skip half_precision_checkpoints_match_their_references \
    --skip divergence_of_int8_from_f32_matches_the_simulation
