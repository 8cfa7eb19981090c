#!/usr/bin/env bash
# The README's main command, end to end: `scripts/demo.sh` streams text from
# the default model, passes its flags on to `chaya generate`, and, given a
# checkpoint where the trained weights will be (a tiny fixture stands in for
# them), converts it once to int8 and generates with it, converting it again
# once the checkpoint is newer (CHAYA_CHECKPOINTS and CHAYA_CONVERTED given
# relative to the directory the demo is run from).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
chaya=${CARGO_TARGET_DIR:-target}/release/chaya

# The default model (the committed random one, or the trained weights once
# ../shared/models/ has them): some text, and the same as `chaya generate`.
bash scripts/demo.sh "Once upon a time" -n 8 --seed 7 >"$tmp/default.txt"
[ -s "$tmp/default.txt" ] || fail "the demo printed no text"
if ! ls ../shared/models/CHAYA_62M_Phase*_Final.pt >/dev/null 2>&1; then
  "$chaya" generate -m models/chaya-tiny-random.safetensors -p "Once upon a time" \
    -n 8 --seed 7 >"$tmp/direct.txt" 2>/dev/null
  cmp -s "$tmp/default.txt" "$tmp/direct.txt" ||
    fail "the demo's text differs from chaya generate's on the same model and flags"
fi

# A checkpoint where the trained weights go: converted once, then reused
# while it is older than the converted file.
mkdir "$tmp/checkpoints"
ckpt="$tmp/checkpoints/CHAYA_62M_Phase2_Final.pt"
cp tests/fixtures/tiny_wrapped.pt "$ckpt"
run_with_checkpoint() {
  CHAYA_CHECKPOINTS="$tmp/checkpoints" CHAYA_CONVERTED="$tmp/converted" \
    bash scripts/demo.sh "Hello" -n 8 --seed 7 >"$tmp/trained.txt" 2>"$tmp/trained.err"
}
run_with_checkpoint
converted="$tmp/converted/CHAYA_62M_Phase2_Final-int8.safetensors"
[ -f "$converted" ] || fail "the checkpoint was not converted to $converted"
grep -q "random-weight" "$tmp/trained.err" && fail "the demo fell back to the random model"
"$chaya" generate -m "$converted" -p "Hello" -n 8 --seed 7 >"$tmp/direct.txt" 2>/dev/null
cmp -s "$tmp/trained.txt" "$tmp/direct.txt" || fail "the demo did not generate with the converted checkpoint"
touch -d "1999-01-01" "$ckpt"
touch -d "2000-01-01" "$converted"
run_with_checkpoint
[ "$(stat -c %Y "$converted")" = "$(date -d 2000-01-01 +%s)" ] || fail "the checkpoint was converted again"
grep -q "wrote" "$tmp/trained.err" && fail "the second run converted again"
# A newer checkpoint is converted again; the directories, relative, are the
# caller's.
touch "$ckpt"
demo=$PWD/scripts/demo.sh
(cd "$tmp" && CHAYA_CHECKPOINTS=checkpoints CHAYA_CONVERTED=converted \
  bash "$demo" "Hello" -n 8 --seed 7 >"$tmp/trained.txt" 2>"$tmp/trained.err")
grep -qF "wrote $converted" "$tmp/trained.err" ||
  fail "a newer checkpoint was not converted again to $converted: $(cat "$tmp/trained.err")"
[ "$(stat -c %Y "$converted")" != "$(date -d 2000-01-01 +%s)" ] || fail "$converted was not replaced"
cmp -s "$tmp/trained.txt" "$tmp/direct.txt" || fail "the demo did not generate with the reconverted checkpoint"
echo "demo: default model and checkpoint conversion OK"
