#!/usr/bin/env bash
# Runs android/build-rust.sh against stand-ins for rustup and cargo-ndk, as
# there is no NDK here: cargo-ndk links a small C library per ABI with the
# host's gcc, honouring a max-page-size link flag only when build-rust.sh
# passes it in CARGO_TARGET_<triple>_RUSTFLAGS. Checks the Rust targets and
# cargo-ndk arguments the script uses, the libraries it leaves per ABI, its
# 16 KB page-alignment check (passing, and failing when the flag is not
# honoured; with no readelf on PATH, by the NDK's llvm-readelf found in the
# SDK, and failing without one) and its error for an unknown ABI.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/android"
cp "$ROOT/android/build-rust.sh" "$work/android/"
fail() { echo "FAIL: $*" >&2; cat "$work/log" >&2 2>/dev/null; exit 1; }

cat >"$work/bin/rustup" <<SH
#!/usr/bin/env bash
echo "rustup \$*" >>"$work/calls"
SH
cat >"$work/bin/cargo-ndk" <<SH
#!/usr/bin/env bash
# cargo ndk --platform N -t ABI... -o DIR build ARGS
set -euo pipefail
echo "cargo-ndk \$*" >>"$work/calls"
shift
abis=()
while [[ \$# -gt 0 ]]; do
    case \$1 in
        -t) abis+=("\$2"); shift 2 ;;
        -o) out=\$2; shift 2 ;;
        --platform) shift 2 ;;
        *) shift ;;
    esac
done
echo 'int chaya_stand_in(void) { return 1; }' >"$work/lib.c"
for abi in "\${abis[@]}"; do
    case \$abi in
        arm64-v8a) flags=\${CARGO_TARGET_AARCH64_LINUX_ANDROID_RUSTFLAGS:-} ;;
        x86_64) flags=\${CARGO_TARGET_X86_64_LINUX_ANDROID_RUSTFLAGS:-} ;;
        *) flags= ;;
    esac
    link=(-Wl,-z,max-page-size=4096)
    [[ \$flags == *max-page-size=16384* && -z \${IGNORE_FLAGS:-} ]] && link=(-Wl,-z,max-page-size=16384)
    mkdir -p "\$out/\$abi"
    gcc -shared -fPIC "\${link[@]}" "$work/lib.c" -o "\$out/\$abi/libchaya_uniffi.so"
done
SH
chmod +x "$work/bin/"*
build() { PATH="$work/bin:$PATH" bash "$work/android/build-rust.sh" "$@" >"$work/log" 2>&1; }

build || fail "build-rust.sh failed"
for target in aarch64-linux-android armv7-linux-androideabi x86_64-linux-android; do
    grep -qx "rustup target add $target" "$work/calls" || fail "no rustup target add $target"
done
grep -qx -- "cargo-ndk ndk --platform 24 -t arm64-v8a -t armeabi-v7a -t x86_64 -o $work/android/chaya/src/main/jniLibs build --profile mobile --no-default-features -p chaya-uniffi" "$work/calls" ||
    fail "cargo ndk called as: $(grep cargo-ndk "$work/calls")"
for abi in arm64-v8a armeabi-v7a x86_64; do
    [[ -f $work/android/chaya/src/main/jniLibs/$abi/libchaya_uniffi.so ]] || fail "no library for $abi"
done

IGNORE_FLAGS=1 build x86_64 && fail "a 4 KB-aligned 64-bit library passed"
grep -q "x86_64/libchaya_uniffi.so: a LOAD segment aligned to 0x1000 bytes, not 16 KB" "$work/log" ||
    fail "the alignment failure does not name the library"
# 32-bit ABIs are not held to 16 KB pages.
IGNORE_FLAGS=1 build armeabi-v7a || fail "armeabi-v7a alone failed"

# No readelf on PATH (cargo and every other command of /usr/bin and /bin
# are), and no NDK (HOME moved, for Android Studio's default SDK): the check
# fails instead of being skipped; with an NDK in ANDROID_HOME, its
# llvm-readelf (the host's, here) does the check.
mkdir "$work/tools"
for tool in "$(command -v cargo)" /usr/bin/* /bin/*; do
    case ${tool##*/} in *readelf*) ;; *) [[ -e $work/tools/${tool##*/} ]] || ln -s "$tool" "$work/tools/" ;; esac
done
host_readelf=$(command -v llvm-readelf || command -v readelf)
no_readelf() {
    env -u ANDROID_NDK_HOME -u ANDROID_NDK_ROOT -u ANDROID_SDK_ROOT HOME="$work" PATH="$work/bin:$work/tools" \
        RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" \
        "$@" bash "$work/android/build-rust.sh" x86_64 >"$work/log" 2>&1
}
no_readelf env -u ANDROID_HOME && fail "no readelf, and the alignment check passed"
grep -q "error: no readelf to check .*x86_64/libchaya_uniffi.so's 16 KB page alignment" "$work/log" ||
    fail "the missing readelf is not named"
ndk_bin=$work/sdk/ndk/27.0.12077973/toolchains/llvm/prebuilt/linux-x86_64/bin
mkdir -p "$ndk_bin"
ln -s "$host_readelf" "$ndk_bin/llvm-readelf"
no_readelf env ANDROID_HOME="$work/sdk" || fail "the NDK's llvm-readelf in ANDROID_HOME was not used"
no_readelf env ANDROID_HOME="$work/sdk" IGNORE_FLAGS=1 && fail "a 4 KB-aligned library passed the NDK's llvm-readelf"
grep -q "x86_64/libchaya_uniffi.so: a LOAD segment aligned to 0x1000 bytes" "$work/log" ||
    fail "the NDK's llvm-readelf did not check the library"

build mips && fail "an unknown ABI was accepted"
grep -q "unknown ABI mips" "$work/log" || fail "the unknown ABI is not named"
echo "android/build-rust.sh: ok"
