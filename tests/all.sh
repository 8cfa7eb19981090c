#!/usr/bin/env bash
# Every test of the project: Rust (unit, integration, reference fixtures,
# generated-header staleness), then the README's main command, then the
# int8 quality gate on trained weights, then the C ABI, then the uniffi bindings from Python, Kotlin (JVM) and Swift (Linux),
# then the mobile wrappers. Needs no PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
source tests/skip.sh
# Every check skipped on the way (tests/skip.sh), listed at the end.
CHAYA_SKIPS=$(mktemp)
export CHAYA_SKIPS
# A failed step shows the disk left too (a full disk fails builds mid-way).
trap 'status=$?; rm -f "$CHAYA_SKIPS"; ((status == 0)) || df -h . "${TMPDIR:-/tmp}"' EXIT
free_disk() { df -h --output=avail . | tail -1 | tr -d ' '; }
timed() { local t=$SECONDS; "$@"; echo "    ($(( SECONDS - t )) s; $(free_disk) free)"; }
# .ci/run is a one-shot run on a fresh machine (it sets CHAYA_CI): there the
# builds no later step uses are removed, so that the whole run fits its disk.
drop_builds() { [[ -z ${CHAYA_CI:-} ]] || (cd "${CARGO_TARGET_DIR:-target}" && rm -rf "$@"); }

step "format";  timed cargo fmt --all --check
step "clippy";  timed cargo clippy --workspace --all-targets --all-features -- -D warnings
# Broken or private intra-doc links fail here, as clippy's warnings do.
step "docs";    timed env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features
step "rust tests"; timed cargo test --workspace --all-features
# Under `cargo test` criterion runs each benchmark once, in the test build and
# untimed, so the benchmark cannot rot; built as the step above (the same
# profile and features), it costs seconds.
step "benchmarks run once (criterion, test mode): every int8 kernel set, every sampler chain"
timed cargo test --workspace --all-features --bench kernels --bench sampler
step "stress: 8 threads x 100 generations, random options and cancellations"
timed cargo test --workspace --all-features --test stress -- --ignored --nocapture
# Core without default features is what the mobile libraries ship: its tests
# run as aarch64 code under qemu (the phones' CPU), or on this host when qemu
# is missing (scripts/lib-size.sh builds it for the host either way).
step "aarch64 under qemu: int8 kernels (smmla, sdot and portable), core (without default features) and reference tests"
if command -v qemu-aarch64 >/dev/null && rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    timed bash tests/arm/run.sh
    drop_builds aarch64-unknown-linux-gnu
else
    skipped "aarch64 kernels and tests under qemu: needs qemu-user, gcc-aarch64-linux-gnu and the aarch64-unknown-linux-gnu target (.ci/run installs them)"
    step "core without default features, on this host instead"
    timed cargo test -p chaya --no-default-features --lib --test generate
fi
step "main job: scripts/demo.sh (default model; a checkpoint converted once)"; timed bash tests/demo.sh
step "int8 against f32 on CHAYA's trained weights (issue #4's gate; skipped until ../shared has them), then the gate's own test"
timed bash scripts/quality.sh
timed bash tests/quality.sh
step "C ABI";   timed bash tests/c/run.sh
step "bindings (Python, Kotlin, Swift)"; timed bash tests/bindings.sh
step "mobile library size (stripped, budget 8 MB)"; timed bash scripts/lib-size.sh 8
drop_builds mobile
step "mobile (Kotlin wrapper, Swift package, cargo check for Android)"; timed bash tests/mobile/run.sh
step "all tests passed"
if [[ -s $CHAYA_SKIPS ]]; then
    echo "    except these checks, skipped here:"
    sed 's/^/    - /' "$CHAYA_SKIPS"
fi
