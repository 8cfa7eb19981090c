#!/usr/bin/env bash
# Tests the Python wheel as a user gets it: builds it (scripts/python-wheel.sh),
# checks that its module is the committed bindings/python/chaya.py, installs it
# into a fresh virtual environment (offline: --no-index) and runs the binding
# tests and the README's Python example against the installed package, from
# outside the repository.
#
# Usage: bash tests/python/wheel.sh [MODEL]   (default: models/chaya-tiny-random.safetensors)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MODEL=$(realpath "${1:-$ROOT/models/chaya-tiny-random.safetensors}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

bash "$ROOT/scripts/python-wheel.sh" "$work/wheels"
wheels=("$work"/wheels/chaya-*.whl)
((${#wheels[@]} == 1)) && [[ -f ${wheels[0]} ]] || {
    echo "error: expected one wheel in $work/wheels" >&2
    exit 1
}
echo "wheel: $(basename "${wheels[0]}") ($(du -h "${wheels[0]}" | cut -f1))"
python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("chaya/chaya.py"))' \
    "${wheels[0]}" | cmp - "$ROOT/bindings/python/chaya.py" || {
    echo "error: the wheel's chaya/chaya.py is not bindings/python/chaya.py" >&2
    exit 1
}

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check --no-index "${wheels[0]}"
cd "$work"
"$work/venv/bin/python" "$ROOT/tests/python/test_bindings.py" "$MODEL" --installed

echo "README's Python example, with the tiny model as its chaya-62m.safetensors"
bash "$ROOT/tests/readme_example.sh" python > example.py
ln -s "$MODEL" chaya-62m.safetensors
"$work/venv/bin/python" example.py > example.out
[[ -s example.out ]] || { echo "error: the README's Python example printed nothing" >&2; exit 1; }
echo "wheel: passed"
