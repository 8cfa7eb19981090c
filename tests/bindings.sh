#!/usr/bin/env bash
# Checks the UniFFI bindings end to end: the committed generated sources are
# current, then the Python, Kotlin (JVM) and Swift (Linux) tests run against the
# built library, and the Python tests again against the installed wheel.
# Fails on the first failure; prints each step's time.
#
# Usage: tests/bindings.sh [MODEL]   (default: models/chaya-tiny-random.safetensors)
# Environment: PROFILE, CHAYA_SWIFT_CHROOT, CHAYA_KOTLIN_HOME (see the scripts).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL=$(realpath "${1:-$ROOT/models/chaya-tiny-random.safetensors}")
cd "$ROOT"

step() {
    local name=$1 start=${EPOCHREALTIME/./}
    shift
    echo "==== bindings: $name"
    "$@"
    local us=$((${EPOCHREALTIME/./} - start))
    printf '==== bindings: %s passed in %d.%01d s\n' "$name" $((us / 1000000)) $((us / 100000 % 10))
}

step "generated sources are current" bindings/generate.sh --check
step "python" python3 tests/python/test_bindings.py "$MODEL"
step "python wheel (maturin, installed into a fresh venv)" tests/python/wheel.sh "$MODEL"
step "kotlin" tests/kotlin/run.sh "$MODEL"
step "swift" tests/swift/run.sh "$MODEL"
echo "==== bindings: all passed"
