#!/usr/bin/env bash
# Tests the C API from C: builds the chaya-ffi crate, compiles
# tests/c/test_chaya.c (API tests and a misuse suite) against the shared and the
# static library, runs both on the tiny random model, compiles and runs the
# README's C example, then runs the shared build under valgrind (installed
# with apt-get when missing and possible; skipped otherwise) and under
# AddressSanitizer (skipped without its runtime).
#
# Usage: bash tests/c/run.sh [PROFILE]     PROFILE: dev (default, reuses the test build), release, ...
# Exits non-zero on any failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source tests/skip.sh

profile="${1:-dev}"
case "$profile" in
    release) cargo_flags=(--release); profile_dir=release ;;
    # --all-targets: the features `cargo test` built the dependencies with (tests/build.sh).
    dev | debug) cargo_flags=(--all-targets); profile_dir=debug ;;
    *) cargo_flags=(--profile "$profile"); profile_dir="$profile" ;;
esac
target_dir="${CARGO_TARGET_DIR:-target}"
lib_dir="$target_dir/$profile_dir"
out_dir="$target_dir/c-tests/$profile_dir"
model=models/chaya-tiny-random.safetensors
cc="${CC:-cc}"

step() { printf '\n==> %s\n' "$*"; }
run() { printf '+ %s\n' "$*"; "$@"; }

[[ -f "$model" ]] || { echo "error: $model not found" >&2; exit 1; }

step "Building the C library (profile $profile)"
run cargo build --workspace --all-features "${cargo_flags[@]}"
for lib in "$lib_dir/libchaya.so" "$lib_dir/libchaya.a"; do
    [[ -f "$lib" ]] || { echo "error: $lib was not built" >&2; exit 1; }
done

mkdir -p "$out_dir"
cflags=(-std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wpedantic -Werror -g -O1 -I ffi/include)

step "Checking that the header compiles as C++ (cpp_compat)"
if command -v "${CXX:-c++}" >/dev/null; then
    run "${CXX:-c++}" -std=c++11 -Wall -Wextra -Werror -fsyntax-only -x c++ -I ffi/include ffi/include/chaya.h
else
    skipped "the C header as C++: no C++ compiler"
fi

step "Compiling against the shared library"
abs_lib_dir="$(cd "$lib_dir" && pwd)"
run "$cc" "${cflags[@]}" tests/c/test_chaya.c -o "$out_dir/test_chaya_shared" \
    -L "$lib_dir" -lchaya -Wl,-rpath,"$abs_lib_dir" -lpthread -lm

step "Compiling against the static library"
run "$cc" "${cflags[@]}" tests/c/test_chaya.c -o "$out_dir/test_chaya_static" \
    "$lib_dir/libchaya.a" -lpthread -ldl -lm -Wl,-z,noexecstack

step "Running the shared-library test"
run "$out_dir/test_chaya_shared" "$model"

step "Running the static-library test"
run "$out_dir/test_chaya_static" "$model"

step "Compiling and running the README's C example (with the tiny model as its chaya-62m.safetensors)"
bash tests/readme_example.sh c > "$out_dir/readme_example.c"
run "$cc" "${cflags[@]}" "$out_dir/readme_example.c" -o "$out_dir/readme_example" \
    -L "$lib_dir" -lchaya -Wl,-rpath,"$abs_lib_dir" -lpthread -lm
example_run="$out_dir/readme-example-run"
mkdir -p "$example_run"
ln -sf "$(realpath "$model")" "$example_run/chaya-62m.safetensors"
(cd "$example_run" && ../readme_example > text.txt)
[[ -s "$example_run/text.txt" ]] || { echo "error: the README's C example printed no text" >&2; exit 1; }
echo "README example printed $(wc -c < "$example_run/text.txt") bytes"

step "Running the shared-library test under valgrind"
if ! command -v valgrind >/dev/null && command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
    echo "valgrind missing: installing it with apt-get"
    apt-get install -y -qq valgrind >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq valgrind >/dev/null 2>&1; } \
        || true
fi
if command -v valgrind >/dev/null; then
    # --fair-sched: valgrind runs one thread at a time, and its default lock
    # lets a thread that loops on short calls (the misuse suite's chaya_cancel
    # spinner) take it back again and again: one CI run starved the main
    # thread for 13 minutes (25 s otherwise, as with the fair ticket lock).
    run valgrind --fair-sched=yes --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect \
        --show-leak-kinds=definite,indirect --error-exitcode=1 \
        --suppressions=tests/c/valgrind.supp \
        "$out_dir/test_chaya_shared" "$model"
    echo "valgrind: no errors, no definite or indirect leaks"
else
    skipped "the C tests under valgrind: valgrind not available"
fi

step "Running the shared-library test under AddressSanitizer"
# The C program is instrumented; the Rust library is not, but ASan replaces
# malloc/free for the whole process: double or invalid frees and leaks anywhere
# (LeakSanitizer) are reported, as are bad accesses from C.
if echo 'int main(void) { return 0; }' \
    | "$cc" -fsanitize=address -x c - -o "$out_dir/asan_probe" 2>/dev/null \
    && "$out_dir/asan_probe"; then
    run "$cc" "${cflags[@]}" -fsanitize=address -fno-omit-frame-pointer tests/c/test_chaya.c \
        -o "$out_dir/test_chaya_asan" -L "$lib_dir" -lchaya -Wl,-rpath,"$abs_lib_dir" -lpthread -lm
    ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:exitcode=1 run "$out_dir/test_chaya_asan" "$model"
    echo "AddressSanitizer: no errors, no leaks"
else
    skipped "the C tests under AddressSanitizer: no runtime for $cc (Debian: libasan8, or clang with libclang-rt-14-dev)"
fi

step "C API tests passed"
