#!/usr/bin/env bash
# Runs scripts/bench-android.sh against stand-ins for cargo-ndk, rustup and
# adb, as there is no NDK or device here: cargo-ndk builds for the host (so
# rustup has no target to add) and, like cargo-ndk 4, keeps cargo's JSON
# messages to itself (the script finds the benchmark's file); adb keeps
# /data/local/tmp in a temporary directory and runs the device's commands
# there with the host's binaries, on a fake sysfs of 4 + 2 + 1 cores (1.8,
# 2.4 and 3.0 GHz). Checks what the script itself decides and uses: the CLI
# and benchmark it builds and runs (names, flags, output), the thread count
# (the 3 cores faster than the slowest class), the core the kernel benchmark
# is pinned to (cpu6, the fastest) and the results it keeps.
#
# Usage: tests/mobile/bench-android.sh   (under a minute once built, most of
# it the kernel benchmark's full run; ~5 minutes more from a clean target
# dir for the release kernel benchmark and criterion)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/device" "$work/out"
for cpu in 0 1 2 3 4 5 6; do
    mkdir -p "$work/sys/cpu$cpu/cpufreq"
    case $cpu in [0-3]) khz=1800000 ;; [4-5]) khz=2400000 ;; *) khz=3000000 ;; esac
    echo $khz >"$work/sys/cpu$cpu/cpufreq/cpuinfo_max_freq"
done

# The host build's target directory: CARGO_TARGET_DIR (relative to the
# repository, where the script runs cargo) or the repository's target/.
host_target=${CARGO_TARGET_DIR:-target}
[[ $host_target == /* ]] || host_target=$ROOT/$host_target

cat >"$work/bin/cargo-ndk" <<SH
#!/usr/bin/env bash
# cargo ndk [--platform N] [-t ABI]... COMMAND ARGS: COMMAND ARGS for the host,
# in $host_target; what the NDK build would leave in
# CARGO_TARGET_DIR/aarch64-linux-android/release is copied there: a built
# chaya, or a benchmark's executable (in deps/, beside an older stale one that
# fails when run). As cargo-ndk 4 does, cargo's JSON messages on stdout are
# not passed on.
set -euo pipefail
shift
args=()
while [[ \$# -gt 0 ]]; do
    case \$1 in --platform | -t) shift 2 ;; *) args+=("\$1"); shift ;; esac
done
CARGO_TARGET_DIR="$host_target" cargo "\${args[@]}" >"$work/cargo-stdout"
grep -v '^{' "$work/cargo-stdout" || true
out=\$CARGO_TARGET_DIR/aarch64-linux-android/release
mkdir -p "\$out/deps"
case \${args[0]} in
    build) cp "$host_target/release/chaya" "\$out/" ;;
    bench)
        printf '#!/bin/sh\nexit 1\n' >"\$out/deps/kernels-0123456789abcdef"
        chmod +x "\$out/deps/kernels-0123456789abcdef"
        touch -d 2000-01-01 "\$out/deps/kernels-0123456789abcdef"
        for exe in \$(sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' "$work/cargo-stdout"); do
            cp "\$exe" "\$out/deps/"
            [[ ! -f \$exe.d ]] || cp "\$exe.d" "\$out/deps/"
        done ;;
esac
SH

cat >"$work/bin/rustup" <<'SH'
#!/usr/bin/env bash
# rustup target add TARGET: nothing to install for host builds.
[[ "$1 $2" == "target add" ]] || { echo "rustup stand-in: $* not supported" >&2; exit 1; }
SH

cat >"$work/bin/adb" <<SH
#!/usr/bin/env bash
# adb get-state | push SRC DST | shell COMMAND, on a device in $work.
set -euo pipefail
device() { sed -e 's|/data/local/tmp|$work/device|g' -e 's|/sys/devices/system/cpu|$work/sys|g'; }
case \$1 in
    get-state) echo device ;;
    push) cp "\$2" "\$(device <<<"\$3")" ;;
    shell) bash -c "getprop() { echo \"stand-in \\\$1\"; }
        taskset() { echo \"\\\$1\" > $work/taskset-mask; shift; \"\\\$@\"; }
        \$(device <<<"\$2")" ;;
    *) echo "adb stand-in: \$1 not supported" >&2; exit 1 ;;
esac
SH
chmod +x "$work/bin/"*

cd "$ROOT"
PATH="$work/bin:$PATH" CARGO_TARGET_DIR="$work/target" CHAYA_BENCH_OUT="$work/out" \
    bash scripts/bench-android.sh models/chaya-tiny-random.safetensors --runs 1 --json \
    >"$work/log" 2>&1 || { cat "$work/log"; exit 1; }
results=$work/out
fail() { echo "FAIL: $*" >&2; cat "$work/log" >&2; exit 1; }
grep -q '^== chaya bench --threads 3 --runs 1$' "$work/log" || fail "threads not set to the 3 fast cores (or --json not dropped)"
[[ $(cat "$work/taskset-mask") == 40 ]] || fail "kernel benchmark not pinned to cpu6 (mask $(cat "$work/taskset-mask"))"
python3 - "$results/bench.json" <<'PY' || fail "bench.json"
import json, sys
bench = json.load(open(sys.argv[1]))
assert bench["threads"] == 3 and bench["runs"] == 1, bench
assert "decode at context 448" in bench["metrics"], bench["metrics"].keys()
PY
grep -q "prefill, 64 rows/portable" "$results/kernels.txt" || fail "kernels.txt has no portable prefill"
grep -q "stand-in ro.product.model" "$results/device.txt" || fail "device.txt"
grep -q "^cores' maximum frequencies (core kHz): 0 1800000 1 1800000 .* 6 3000000$" "$results/device.txt" ||
    fail "device.txt frequencies"
echo "bench-android.sh: threads 3, kernel benchmark on cpu6, results kept: ok"
