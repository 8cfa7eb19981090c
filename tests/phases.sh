# Timed phases for the binding test scripts (sourced): `phase NAME` announces
# a phase, `phase_done` prints how long it took; lines start with
# "== $PHASE_LABEL:".
phase_start=0
phase() {
    phase_name=$1
    phase_start=${EPOCHREALTIME/./}
    echo "== $PHASE_LABEL: $phase_name"
}
phase_done() {
    local us=$((${EPOCHREALTIME/./} - phase_start))
    printf '== %s: %s took %d.%01d s\n' "$PHASE_LABEL" "$phase_name" $((us / 1000000)) $((us / 100000 % 10))
}
