#!/usr/bin/env bash
# The main job: generate text with the default model, on a fresh machine.
#
#   bash scripts/demo.sh ["prompt"] [more `chaya generate` flags...]
#
# Uses the trained CHAYA-v1 weights when ../shared/models/ has them (converted
# to int8 into models/, not committed, once and again whenever the checkpoint
# is newer); otherwise the repository's own tiny RANDOM-weight model, whose
# text is random tokens by design. CHAYA_CHECKPOINTS and CHAYA_CONVERTED
# override those two directories (relative ones are taken from the directory
# the script is run from).
set -euo pipefail
from_here() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
checkpoints=../shared/models
converted=models
[ -z "${CHAYA_CHECKPOINTS:-}" ] || checkpoints=$(from_here "$CHAYA_CHECKPOINTS")
[ -z "${CHAYA_CONVERTED:-}" ] || converted=$(from_here "$CHAYA_CONVERTED")
cd "$(dirname "$0")/.."

prompt="${1:-Once upon a time}"
shift || true
cargo build --release -p chaya-cli
chaya=${CARGO_TARGET_DIR:-target}/release/chaya

model=models/chaya-tiny-random.safetensors
for name in CHAYA_62M_Phase2_Final CHAYA_62M_Phase1_Final; do
  ckpt="$checkpoints/$name.pt"
  if [ -f "$ckpt" ]; then
    model="$converted/$name-int8.safetensors"
    if [ ! -f "$model" ] || [ "$ckpt" -nt "$model" ]; then
      mkdir -p "$converted"
      "$chaya" convert "$ckpt" -o "$model"
    fi
    break
  fi
done
if [ "$model" = models/chaya-tiny-random.safetensors ]; then
  echo "note: no trained weights in $checkpoints/; using the tiny random-weight model (random text)" >&2
fi
exec "$chaya" generate -m "$model" -p "$prompt" "$@"
