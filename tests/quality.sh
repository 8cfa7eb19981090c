#!/usr/bin/env bash
# scripts/quality.sh, the int8 quality gate for trained weights, on a tiny
# fixture checkpoint standing in for them: it reports, passes within the
# allowed change, fails beyond it, and skips without checkpoints or text.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir "$tmp/checkpoints" "$tmp/text"
cp tests/fixtures/tiny_wrapped.pt "$tmp/checkpoints/CHAYA_62M_Phase2_Final.pt"
cp tests/fixtures/text.txt "$tmp/text/a.txt"
printf '\xff\xfe not UTF-8' >"$tmp/text/b.bin"
# CHAYA_SKIPS unset: the gate's own skip below is expected, not one of the suite's.
gate() {
  CHAYA_SKIPS= CHAYA_CHECKPOINTS="$tmp/checkpoints" CHAYA_TEXT="$tmp/text" CHAYA_QUALITY_OUT="$tmp/out" \
    bash scripts/quality.sh >"$tmp/stdout" 2>"$tmp/stderr"
}

gate || fail "the gate failed on the fixture: $(cat "$tmp/stdout" "$tmp/stderr")"
report="$tmp/out/report.md"
grep -q "^## CHAYA_62M_Phase2_Final" "$report" || fail "no section for the checkpoint"
grep -q "perplexity (.* tokens, windows of 256) | [0-9.]* | [0-9.]* ([+-]" "$report" ||
  fail "no perplexity row: $(cat "$report")"
grep -q "20 prompts × 32 tokens" "$report" || fail "no greedy agreement row"
grep -q "b.bin is not UTF-8; left out" "$tmp/stderr" || fail "the non-UTF-8 file was not named"
cmp -s "$tmp/out/text.txt" tests/fixtures/text.txt || fail "the scored text is not the fixture's"

# A change allowed of 0 fails (int8 never equals f32 exactly), naming it.
CHAYA_QUALITY_MAX_CHANGE=0 gate && fail "the gate passed with no change allowed"
grep -q "FAIL.*int8 perplexity" "$tmp/stdout" || fail "the failure does not say why"

# A text cap cuts at a character boundary (two tokens: perplexity is noise).
printf 'naïve café ' >"$tmp/text/a.txt"
CHAYA_QUALITY_BYTES=11 CHAYA_QUALITY_MAX_CHANGE=1 gate || fail "a capped text failed: $(cat "$tmp/stderr")"
[ "$(cat "$tmp/out/text.txt")" = "naïve caf" ] || fail "cap: '$(cat "$tmp/out/text.txt")'"

# Nothing to measure: skipped, not failed.
rm "$tmp/checkpoints/CHAYA_62M_Phase2_Final.pt"
gate || fail "the gate failed without checkpoints"
grep -q "^SKIPPED" "$tmp/stdout" || fail "no SKIPPED line: $(cat "$tmp/stdout")"
echo "quality gate: ok"
