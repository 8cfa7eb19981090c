#!/usr/bin/env bash
# Measures CHAYA on an Android device over adb: `chaya bench` (load, first
# token, prefill, decode, peak memory) and core's int8 kernel benchmark (every
# kernel set the device's CPU runs, side by side on one core: `smmla` against
# `sdot`, and both against the portable code).
#
#   scripts/bench-android.sh [MODEL.safetensors] [chaya bench options...]
#
# MODEL defaults to a full-size CHAYA with random weights (speed does not depend
# on the values), made here by benches/make_random_checkpoint.py (numpy,
# safetensors) and converted to int8. `chaya bench` gets `--threads` set to the
# device's performance cores, as the Kotlin wrapper's phoneLoadOptions() picks
# them, unless the options given set it. The kernel benchmark runs pinned to
# the fastest core.
#
# Needs the Android NDK (found by cargo-ndk, as for android/build-rust.sh) and
# adb with a device attached (ANDROID_SERIAL picks one of several); installs
# cargo-ndk and the Rust target when missing. Prints the device, both results,
# and keeps them in bench-android/ (device.txt, bench.json, kernels.txt; the
# directory CHAYA_BENCH_OUT names instead, if set).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-linux-android
API_LEVEL=24
DIR=/data/local/tmp/chaya
OUT=${CHAYA_BENCH_OUT:-bench-android}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

model=
if [[ $# -gt 0 && $1 != -* ]]; then
    model=$1
    shift
fi

rustup target add "$TARGET"
command -v cargo-ndk >/dev/null || cargo install cargo-ndk
adb get-state >/dev/null
mkdir -p "$OUT"

if [[ -z $model ]]; then
    model=$OUT/chaya-62m-random-int8.safetensors
    if [[ ! -f $model ]]; then
        cargo build --release -p chaya-cli
        python3 benches/make_random_checkpoint.py "$OUT/chaya-62m-random.safetensors"
        "$TARGET_DIR/release/chaya" convert "$OUT/chaya-62m-random.safetensors" -o "$model"
        rm "$OUT/chaya-62m-random.safetensors"
    fi
fi

ndk() { cargo ndk --platform "$API_LEVEL" -t arm64-v8a "$@"; }
ndk build --release -p chaya-cli
kernels=$(ndk bench -p chaya --bench kernels --no-run --message-format=json |
    sed -n 's/.*"name":"kernels".*"executable":"\([^"]*\)".*/\1/p')
# cargo-ndk 4 and later keep cargo's JSON to themselves (they print its
# messages rendered): then the newest kernels-HASH executable the build left.
if [[ -z $kernels ]]; then
    for file in "$TARGET_DIR/$TARGET/release/deps"/kernels-*; do
        [[ -f $file && -x $file && ${file##*/} != *.* ]] || continue
        [[ -n $kernels && ! $file -nt $kernels ]] || kernels=$file
    done
fi
[[ -n $kernels ]] || { echo "could not find the kernel benchmark's executable" >&2; exit 1; }

adb shell "mkdir -p $DIR"
adb push "$TARGET_DIR/$TARGET/release/chaya" "$DIR/chaya"
adb push "$kernels" "$DIR/kernels"
adb push "$model" "$DIR/model.safetensors"

# Each core's maximum frequency; the performance cores are those faster than
# the slowest class (at most 4; half the cores when all are alike), and the
# kernel benchmark runs on the fastest core.
freqs=$(adb shell 'grep -H . /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq' |
    tr -d '\r' | sed -n 's|.*/cpu\([0-9]*\)/cpufreq/cpuinfo_max_freq:\([0-9]*\)$|\1 \2|p')
read -r threads fastest < <(awk '
    NR == 1 || $2 < min { min = $2 }
    NR == 1 || $2 > max { max = $2; fastest = $1 }
    { f[NR] = $2 }
    END {
        for (i in f) if (f[i] > min) n++
        if (n == 0) n = int(NR / 2)
        if (n < 1) n = 1
        if (n > 4) n = 4
        print n, fastest + 0
    }' <<<"$freqs")
# The options given, without --json (always passed), and --threads added.
options=()
threads_given=false
for arg in "$@"; do
    [[ $arg == --threads* ]] && threads_given=true
    [[ $arg == --json ]] || options+=("$arg")
done
# (${a[@]+...}: macOS's bash 3.2 calls an empty array unbound under set -u.)
$threads_given || options=(--threads "$threads" ${options[@]+"${options[@]}"})
set -- ${options[@]+"${options[@]}"}

{
    adb shell 'getprop ro.product.manufacturer; getprop ro.product.model; getprop ro.soc.model;
        getprop ro.build.version.release; grep -m1 Features /proc/cpuinfo || true' | tr -d '\r'
    echo "cores' maximum frequencies (core kHz):" $freqs
} | tee "$OUT/device.txt"

echo "== chaya bench $*"
adb shell "cd $DIR && ./chaya bench -m model.safetensors --json $*" | tr -d '\r' | tee "$OUT/bench.json"

echo "== kernel benchmark on cpu$fastest"
adb shell "cd $DIR && CRITERION_HOME=$DIR/criterion taskset $(printf '%x' $((1 << fastest))) ./kernels --bench --noplot" |
    tr -d '\r' | tee "$OUT/kernels.txt"
echo "results in $OUT/"
