#!/usr/bin/env bash
# The main job: generate text with the default model, on a fresh machine.
#
#   bash scripts/demo.sh ["prompt"] [more `chaya generate` flags...]
#
# Uses the trained CHAYA-v1 weights when ../shared/models/ has them (converted
# once to int8 into models/, not committed); otherwise the repository's own
# tiny RANDOM-weight model, whose text is random tokens by design.
# CHAYA_CHECKPOINTS and CHAYA_CONVERTED override those two directories.
set -euo pipefail
cd "$(dirname "$0")/.."

prompt="${1:-Once upon a time}"
shift || true
checkpoints="${CHAYA_CHECKPOINTS:-../shared/models}"
converted="${CHAYA_CONVERTED:-models}"
cargo build --release -p chaya-cli
chaya=target/release/chaya

model=models/chaya-tiny-random.safetensors
for name in CHAYA_62M_Phase2_Final CHAYA_62M_Phase1_Final; do
  if [ -f "$checkpoints/$name.pt" ]; then
    model="$converted/$name-int8.safetensors"
    if [ ! -f "$model" ]; then
      mkdir -p "$converted"
      "$chaya" convert "$checkpoints/$name.pt" -o "$model"
    fi
    break
  fi
done
if [ "$model" = models/chaya-tiny-random.safetensors ]; then
  echo "note: no trained weights in $checkpoints/; using the tiny random-weight model (random text)" >&2
fi
exec "$chaya" generate -m "$model" -p "$prompt" "$@"
