#!/usr/bin/env bash
# The main job: generate text with the default model, on a fresh machine.
#
#   bash scripts/demo.sh ["prompt"] [more `chaya generate` flags...]
#
# Uses the trained CHAYA-v1 weights when ../shared/models/ has them (converted
# once to int8 into models/, not committed); otherwise the repository's own
# tiny RANDOM-weight model, whose text is random tokens by design.
set -euo pipefail
cd "$(dirname "$0")/.."

prompt="${1:-Once upon a time}"
shift || true
cargo build --release -p chaya-cli
chaya=target/release/chaya

model=models/chaya-tiny-random.safetensors
for checkpoint in ../shared/models/CHAYA_62M_Phase2_Final.pt ../shared/models/CHAYA_62M_Phase1_Final.pt; do
  if [ -f "$checkpoint" ]; then
    model="models/$(basename "$checkpoint" .pt)-int8.safetensors"
    [ -f "$model" ] || "$chaya" convert "$checkpoint" -o "$model"
    break
  fi
done
if [ "$model" = models/chaya-tiny-random.safetensors ]; then
  echo "note: no trained weights in ../shared/models/; using the tiny random-weight model (random text)" >&2
fi
exec "$chaya" generate -m "$model" -p "$prompt" "$@"
