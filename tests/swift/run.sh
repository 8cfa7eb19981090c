#!/usr/bin/env bash
# Builds and runs the Swift binding test on Linux.
#
# Swift comes from Debian trixie's `swiftlang` package, installed into a chroot
# made by debootstrap and cached at $CHAYA_SWIFT_CHROOT (default
# /var/cache/chaya/trixie-swift); a cached chroot is reused. The generated Swift
# sources, the FFI header and modulemap, the host-built libchaya_uniffi.so, the
# test main and the model are copied into the chroot, compiled with swiftc and run.
#
# Usage: tests/swift/run.sh [--setup] [MODEL]
#   --setup  only create (or check) the cached chroot.
#   MODEL    model file (default: models/chaya-tiny-random.safetensors).
# Environment: PROFILE (debug|release, default debug) selects the Rust build;
# DEBIAN_MIRROR overrides the Debian mirror used by debootstrap.
# Needs root (debootstrap, mount, chroot).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CHROOT=${CHAYA_SWIFT_CHROOT:-/var/cache/chaya/trixie-swift}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PROFILE=${PROFILE:-debug}
SWIFT_BIN=/usr/libexec/swift/bin
SETUP_ONLY=0
if [[ ${1:-} == --setup ]]; then
    SETUP_ONLY=1
    shift
fi
MODEL=$(realpath "${1:-$ROOT/models/chaya-tiny-random.safetensors}")

phase_start=0
phase() {
    phase_name=$1
    phase_start=${EPOCHREALTIME/./}
    echo "== swift: $phase_name"
}
phase_done() {
    local us=$((${EPOCHREALTIME/./} - phase_start))
    printf '== swift: %s took %d.%01d s\n' "$phase_name" $((us / 1000000)) $((us / 100000 % 10))
}

if [[ $(id -u) != 0 ]]; then
    echo "tests/swift/run.sh needs root (debootstrap, mount, chroot)" >&2
    exit 1
fi

MOUNTED=()
cleanup() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        umount -l "${MOUNTED[$i]}" 2>/dev/null || true
    done
}
trap cleanup EXIT
mount_in_chroot() { # mount_in_chroot SOURCE TARGET [OPTIONS...]
    local target=$CHROOT/$2
    mkdir -p "$target"
    if ! mountpoint -q "$target"; then
        mount "${@:3}" "$1" "$target"
        MOUNTED+=("$target")
    fi
}
mount_all() {
    mount_in_chroot proc proc -t proc
    mount_in_chroot /dev dev --bind
    mount_in_chroot devpts dev/pts -t devpts
}

# --- Phase 1: the chroot with Swift -------------------------------------------
phase "chroot at $CHROOT"
# Packages the test needs in the chroot; the marker file records what was installed.
PACKAGES="swiftlang libc6-dev"
MARKER=$CHROOT/.chaya-swift-packages
if [[ -f $MARKER && $(cat "$MARKER") == "$PACKAGES" ]]; then
    echo "reusing the cached chroot"
else
    command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
    if [[ ! -x $CHROOT/usr/bin/apt-get ]]; then
        rm -rf "$CHROOT" "$CHROOT.partial"
        mkdir -p "$(dirname "$CHROOT")"
        debootstrap --variant=minbase trixie "$CHROOT.partial" "$MIRROR"
        mv "$CHROOT.partial" "$CHROOT"
    fi
    cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"
    mount_all
    chroot "$CHROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        sh -c "apt-get update && apt-get install -y --no-install-recommends $PACKAGES"
    chroot "$CHROOT" "$SWIFT_BIN/swiftc" --version
    echo "$PACKAGES" >"$MARKER"
fi
phase_done
if ((SETUP_ONLY)); then
    exit 0
fi
mount_all

# --- Phase 2: the host-built library ------------------------------------------
phase "cargo build ($PROFILE)"
cd "$ROOT"
if [[ $PROFILE == release ]]; then
    cargo build -p chaya-uniffi --release
else
    cargo build -p chaya-uniffi
fi
phase_done

# --- Phase 3: compile the test in the chroot ----------------------------------
phase "swiftc"
WORK=/chaya-swift-test
rm -rf "${CHROOT:?}$WORK"
mkdir -p "$CHROOT$WORK"
cp "$ROOT"/bindings/swift/* "$ROOT/tests/swift/main.swift" "$CHROOT$WORK/"
cp "$MODEL" "$CHROOT$WORK/"
# Without debug info: the debug build's is hundreds of megabytes.
objcopy --strip-debug "$ROOT/target/$PROFILE/libchaya_uniffi.so" "$CHROOT$WORK/libchaya_uniffi.so"
chroot "$CHROOT" /usr/bin/env PATH="$SWIFT_BIN:/usr/bin:/bin" sh -c "
    cd $WORK &&
    swiftc -module-name ChayaTest \
        -Xcc -fmodule-map-file=$WORK/chayaFFI.modulemap -module-cache-path $WORK/module-cache \
        -L . -lchaya_uniffi -Xlinker -rpath -Xlinker $WORK \
        chaya.swift main.swift -o chaya-swift-test"
phase_done

# --- Phase 4: run --------------------------------------------------------------
phase "run"
chroot "$CHROOT" /usr/bin/env PATH="$SWIFT_BIN:/usr/bin:/bin" \
    "$WORK/chaya-swift-test" "$WORK/$(basename "$MODEL")"
phase_done
