#!/usr/bin/env bash
# Generates the Kotlin, Swift and Python sources of the chaya bindings from the
# built library into bindings/kotlin, bindings/swift and bindings/python.
#
# Usage: bindings/generate.sh [--check]
#   --check  generate into a temporary directory and compare with the committed
#            sources; exit 1 (with a diff) when they are stale.
# Environment: PROFILE (debug|release, default debug) picks the Rust build.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PROFILE=${PROFILE:-debug}
CHECK=0
case ${1:-} in
    --check) CHECK=1 ;;
    "") ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac
cd "$ROOT"

# The whole workspace, as the tests build it (the library and uniffi-bindgen).
source tests/build.sh
build_workspace
LIB=$TARGET_DIR/$PROFILE/libchaya_uniffi.so
BINDGEN=$TARGET_DIR/$PROFILE/uniffi-bindgen

OUT=bindings
if ((CHECK)); then
    OUT=$(mktemp -d)
    trap 'rm -rf "$OUT"' EXIT
fi

for language in kotlin swift python; do
    rm -rf "${OUT:?}/$language"
    "$BINDGEN" generate --library "$LIB" --language "$language" --out-dir "$OUT/$language" --no-format
done

if ((CHECK)); then
    if diff -ru bindings/kotlin "$OUT/kotlin" && diff -ru bindings/swift "$OUT/swift" &&
        diff -ru bindings/python "$OUT/python"; then
        echo "bindings are up to date"
    else
        echo "bindings are stale: run bindings/generate.sh and commit the result" >&2
        exit 1
    fi
else
    echo "generated bindings/kotlin, bindings/swift and bindings/python from $LIB"
fi
