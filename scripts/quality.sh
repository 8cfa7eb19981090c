#!/usr/bin/env bash
# int8 against f32 on CHAYA's trained weights (issue #4's quality target):
# for each published checkpoint in ../shared/models/, converts it to f32 and
# to int8, runs `chaya compare` on the text in ../shared/text/, writes a
# report and fails when int8's perplexity is more than 1% from f32's.
# Without checkpoints or text it says so and exits 0: random weights say
# nothing about quantization quality.
#
#   bash scripts/quality.sh
#
# CHAYA_CHECKPOINTS and CHAYA_TEXT name other directories; CHAYA_QUALITY_BYTES
# caps the text scored (default 400000 bytes, ~100k tokens, from the start of
# the files in name order); CHAYA_QUALITY_MAX_CHANGE is the largest relative
# perplexity change allowed (default 0.01); the report goes to
# CHAYA_QUALITY_OUT (default target/quality).
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/skip.sh

checkpoints="${CHAYA_CHECKPOINTS:-../shared/models}"
text_dir="${CHAYA_TEXT:-../shared/text}"
max_bytes="${CHAYA_QUALITY_BYTES:-400000}"
max_change="${CHAYA_QUALITY_MAX_CHANGE:-0.01}"
out="${CHAYA_QUALITY_OUT:-target/quality}"

found=()
for name in CHAYA_62M_Phase1_Final CHAYA_62M_Phase2_Final; do
  [ -f "$checkpoints/$name.pt" ] && found+=("$name")
done
texts=()
if [ -d "$text_dir" ]; then
  while IFS= read -r -d '' file; do texts+=("$file"); done \
    < <(find "$text_dir" -maxdepth 1 -type f -print0 | sort -z)
fi
if [ ${#found[@]} -eq 0 ] || [ ${#texts[@]} -eq 0 ]; then
  skipped "int8 quality on trained weights: needs CHAYA_62M_Phase{1,2}_Final.pt in $checkpoints/" \
    "and text in $text_dir/ (checkpoints: ${#found[@]}, text files: ${#texts[@]})"
  exit 0
fi

cargo build --release -p chaya-cli
chaya=${CARGO_TARGET_DIR:-target}/release/chaya
mkdir -p "$out"
# The first max_bytes of the files, cut at a character boundary; files that
# are not UTF-8 are left out, with a note.
python3 - "$out/text.txt" "$max_bytes" "${texts[@]}" <<'EOF'
import sys
out, limit, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
parts, size = [], 0
for path in paths:
    try:
        text = open(path, encoding="utf-8").read()
    except UnicodeDecodeError:
        print(f"note: {path} is not UTF-8; left out", file=sys.stderr)
        continue
    text = text.encode()[: limit - size].decode("utf-8", "ignore")
    parts.append(text)
    size += len(text.encode())
    if size >= limit:
        break
open(out, "w", encoding="utf-8").write("\n".join(parts))
EOF

report="$out/report.md"
echo "# int8 against f32 on CHAYA's trained weights ($(date -u +%F), $(wc -c <"$out/text.txt") bytes of $text_dir)" >"$report"
status=0
for name in "${found[@]}"; do
  for dtype in f32 int8; do
    "$chaya" convert "$checkpoints/$name.pt" -o "$out/$name-$dtype.safetensors" --dtype "$dtype"
  done
  "$chaya" compare "$out/$name-f32.safetensors" "$out/$name-int8.safetensors" \
    --text "$out/text.txt" --json >"$out/$name.json"
  python3 - "$out/$name.json" "$name" "$max_change" >>"$report" <<'EOF' || status=1
import json, sys
path, name, max_change = sys.argv[1], sys.argv[2], float(sys.argv[3])
report = json.load(open(path))
agreement, text = report["agreement"], report["text"]
d = text["divergence"]
change = text["relative_change"]
print(f"""
## {name}

| | f32 | int8 |
|---|---:|---:|
| perplexity ({d["reference"]["n_targets"]} tokens, windows of {text["ctx"]}) | {d["reference"]["perplexity"]:.4f} | {d["candidate"]["perplexity"]:.4f} ({100 * change:+.3f}%) |
| greedy, {agreement["prompts"]} prompts × {agreement["tokens"]} tokens: top-1 agreement (teacher-forced) | | {100 * agreement["top1"]:.1f}% |
| shared greedy prefix; continuations identical | | {agreement["mean_shared_prefix"]:.1f} tokens; {agreement["identical"]} of {agreement["prompts"]} |
| on the text: KL divergence from f32, mean (99th percentile); same top-1 token | | {d["mean_kl"]:.2e} nats ({d["p99_kl"]:.2e}); {100 * d["top1"]:.2f}% |
""")
if abs(change) > max_change:
    print(f"**FAIL**: int8 perplexity {100 * change:+.3f}% from f32, allowed ±{100 * max_change:g}%")
    sys.exit(1)
EOF
done
cat "$report"
exit "$status"
