#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) and prints, per target,
# the executions, the time and whether it crashed. Needs a nightly toolchain and
# cargo-fuzz (`rustup toolchain install nightly && cargo install cargo-fuzz`).
#
# Usage: bash fuzz/run.sh [SECONDS] [TARGET...]
# Working corpora grow in fuzz/corpus/ (not committed) from the committed seeds
# in fuzz/seeds/; crashes land in fuzz/artifacts/<target>/. A crash input, once
# fixed, is committed under fuzz/regressions/<target>/ and replayed by
# core/tests/fuzz_regressions.rs on stable.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

seconds="${1:-60}"
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(model_file pt_import tokenizer_decode generate_options)

cargo +nightly fuzz build 2>&1 | tail -1 || exit 1
mkdir -p logs
# The .pt importer starts from the small committed checkpoint fixtures.
mkdir -p corpus/pt_import
for f in micro_ok bad_missing_key bad_nan bad_shape bad_unknown_key not_a_checkpoint truncated \
    bad_short_storage micro_views_and_names micro_module_state micro_legacy micro_protocol4 micro_rope_base \
    micro_nested; do
    cp -n ../tests/fixtures/$f.pt corpus/pt_import/ 2>/dev/null || true
done

status=0
printf '\n%-18s %12s %8s %10s  %s\n' target executions seconds exec/s result
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "seeds/$target" "artifacts/$target"
    log="logs/$target.log"
    start=$SECONDS
    # -timeout: an input running 30 s counts as a hang; -rss_limit_mb: 3 GB.
    cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=3072 \
        -print_final_stats=1 >"$log" 2>&1
    code=$?
    elapsed=$(( SECONDS - start ))
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    runs="${runs:-?}"
    if [[ $code -eq 0 ]]; then
        result=ok
    else
        result="CRASH (see $log, fuzz/artifacts/$target/)"
        status=1
    fi
    rate=$([[ "$runs" =~ ^[0-9]+$ && $elapsed -gt 0 ]] && echo $(( runs / elapsed )) || echo ?)
    printf '%-18s %12s %8s %10s  %s\n' "$target" "$runs" "$elapsed" "$rate" "$result"
done
exit $status
