#!/usr/bin/env bash
# Builds the Python wheel of the bindings (package `chaya`: bindings/python's
# module and a release libchaya_uniffi; bindings/pyproject.toml) with
# maturin, installed into a virtual environment under target/ when not on PATH.
#
# Usage: bash scripts/python-wheel.sh [OUT_DIR]   (default: target/wheels)
# Then: pip install OUT_DIR/chaya-*.whl; python3 -c 'import chaya'.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-target/wheels}
maturin=$(command -v maturin || true)
if [[ -z $maturin ]]; then
    tools=${CARGO_TARGET_DIR:-target}/python-tools
    [[ -x $tools/bin/maturin ]] || {
        python3 -m venv "$tools"
        "$tools/bin/pip" install --quiet "maturin>=1.9,<2"
    }
    maturin=$tools/bin/maturin
fi
# Not stripped: uniffi-bindgen reads the bindings' metadata from the library's
# symbols after the build (maturin's strip option removes them first).
"$maturin" build --release --manifest-path bindings/Cargo.toml --out "$out"
