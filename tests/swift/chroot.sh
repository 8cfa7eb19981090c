# Sourced by the Swift test scripts: the Debian trixie chroot with Swift
# (package `swiftlang`), made by debootstrap and cached at $CHAYA_SWIFT_CHROOT
# (default /var/cache/chaya/trixie-swift); a cached chroot is reused.
#
#   swift_chroot_setup   create the chroot, or check the cached one
#   swift_chroot_mount   mount /proc, /dev and /dev/pts in it (unmounted on exit)
#   swift_chroot CMD...  run CMD in the chroot with Swift on PATH
# Environment: DEBIAN_MIRROR overrides the Debian mirror used by debootstrap.
# Needs root (debootstrap, mount, chroot).

CHROOT=${CHAYA_SWIFT_CHROOT:-/var/cache/chaya/trixie-swift}
SWIFT_BIN=/usr/libexec/swift/bin
# Packages the tests need in the chroot; the marker file records what was installed.
SWIFT_CHROOT_PACKAGES="swiftlang libc6-dev"

if [[ $(id -u) != 0 ]]; then
    echo "the Swift tests need root (debootstrap, mount, chroot)" >&2
    exit 1
fi

SWIFT_CHROOT_MOUNTED=()
swift_chroot_unmount() {
    local i
    for ((i = ${#SWIFT_CHROOT_MOUNTED[@]} - 1; i >= 0; i--)); do
        umount -l "${SWIFT_CHROOT_MOUNTED[$i]}" 2>/dev/null || true
    done
    SWIFT_CHROOT_MOUNTED=()
}
trap swift_chroot_unmount EXIT

swift_chroot_mount_one() { # SOURCE TARGET [OPTIONS...]
    local target=$CHROOT/$2
    mkdir -p "$target"
    if ! mountpoint -q "$target"; then
        mount "${@:3}" "$1" "$target"
        SWIFT_CHROOT_MOUNTED+=("$target")
    fi
}

swift_chroot_mount() {
    swift_chroot_mount_one proc proc -t proc
    swift_chroot_mount_one /dev dev --bind
    swift_chroot_mount_one devpts dev/pts -t devpts
}

swift_chroot() {
    chroot "$CHROOT" /usr/bin/env PATH="$SWIFT_BIN:/usr/bin:/bin" HOME=/root "$@"
}

swift_chroot_setup() {
    local marker=$CHROOT/.chaya-swift-packages
    if [[ -f $marker && $(cat "$marker") == "$SWIFT_CHROOT_PACKAGES" ]]; then
        echo "reusing the cached chroot $CHROOT"
        return
    fi
    command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
    if [[ ! -x $CHROOT/usr/bin/apt-get ]]; then
        rm -rf "$CHROOT" "$CHROOT.partial"
        mkdir -p "$(dirname "$CHROOT")"
        debootstrap --variant=minbase trixie "$CHROOT.partial" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
        mv "$CHROOT.partial" "$CHROOT"
    fi
    cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"
    swift_chroot_mount
    chroot "$CHROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        sh -c "apt-get update && apt-get install -y --no-install-recommends $SWIFT_CHROOT_PACKAGES && apt-get clean"
    swift_chroot swiftc --version
    echo "$SWIFT_CHROOT_PACKAGES" >"$marker"
}
