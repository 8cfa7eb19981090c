#!/usr/bin/env bash
# Builds and runs the Swift binding test on Linux.
#
# Swift comes from Debian trixie's `swiftlang` package, in a chroot made by
# debootstrap and cached (tests/swift/chroot.sh). The generated Swift
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
PROFILE=${PROFILE:-debug}
SETUP_ONLY=0
if [[ ${1:-} == --setup ]]; then
    SETUP_ONLY=1
    shift
fi
MODEL=$(realpath "${1:-$ROOT/models/chaya-tiny-random.safetensors}")
source "$ROOT/tests/swift/chroot.sh"

PHASE_LABEL=swift
source "$ROOT/tests/phases.sh"

# --- Phase 1: the chroot with Swift -------------------------------------------
phase "chroot at $CHROOT"
swift_chroot_setup
phase_done
if ((SETUP_ONLY)); then
    exit 0
fi
swift_chroot_mount

# --- Phase 2: the host-built library ------------------------------------------
phase "cargo build ($PROFILE)"
source "$ROOT/tests/build.sh"
build_workspace
phase_done

# --- Phase 3: compile the test in the chroot ----------------------------------
phase "swiftc"
WORK=/chaya-swift-test
rm -rf "${CHROOT:?}$WORK"
mkdir -p "$CHROOT$WORK"
cp "$ROOT"/bindings/swift/* "$ROOT/tests/swift/main.swift" "$CHROOT$WORK/"
cp "$MODEL" "$CHROOT$WORK/"
# Without debug info: the debug build's is hundreds of megabytes.
objcopy --strip-debug "$TARGET_DIR/$PROFILE/libchaya_uniffi.so" "$CHROOT$WORK/libchaya_uniffi.so"
swift_chroot sh -c "
    cd $WORK &&
    swiftc -module-name ChayaTest \
        -Xcc -fmodule-map-file=$WORK/chayaFFI.modulemap -module-cache-path $WORK/module-cache \
        -L . -lchaya_uniffi -Xlinker -rpath -Xlinker $WORK \
        chaya.swift main.swift -o chaya-swift-test"
phase_done

phase "swiftc -typecheck: the README's Swift example"
mkdir -p "$CHROOT$WORK/readme"
bash "$ROOT/tests/readme_example.sh" swift > "$CHROOT$WORK/readme/main.swift"
swift_chroot sh -c "
    cd $WORK &&
    swiftc -typecheck -module-name ReadmeExample \
        -Xcc -fmodule-map-file=$WORK/chayaFFI.modulemap -module-cache-path $WORK/module-cache \
        chaya.swift readme/main.swift"
phase_done

# --- Phase 4: run --------------------------------------------------------------
phase "run"
swift_chroot "$WORK/chaya-swift-test" "$WORK/$(basename "$MODEL")"
phase_done
