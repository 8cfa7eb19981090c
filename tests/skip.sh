# Sourced by the test scripts: `skipped REASON` reports a check that could not
# run here. It prints "SKIPPED: REASON" and, under tests/all.sh (which sets
# CHAYA_SKIPS to a file), records it so the final summary lists every skip.
skipped() {
    echo "SKIPPED: $*"
    if [[ -n ${CHAYA_SKIPS:-} ]]; then
        echo "$*" >>"$CHAYA_SKIPS"
    fi
}
