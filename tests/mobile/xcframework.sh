#!/usr/bin/env bash
# Runs ios/build-xcframework.sh against stand-ins for rustup, cargo, lipo and
# xcodebuild, as there is no Xcode here: cargo leaves an empty static library
# where a build for each Apple target would, lipo and xcodebuild record their
# arguments and make their outputs. Checks the targets built, the slices
# merged, the header folder (chayaFFI.h and module.modulemap in a subfolder)
# handed to xcodebuild, and that CARGO_TARGET_DIR is where the libraries are
# looked for. The Swift package itself is tested by tests/mobile/swift.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"
cp -r "$ROOT/ios" "$work/ios"
mkdir -p "$work/bindings"
cp -r "$ROOT/bindings/swift" "$work/bindings/swift"
fail() { echo "FAIL: $*" >&2; cat "$work/log" >&2; exit 1; }

cat >"$work/bin/rustup" <<SH
#!/usr/bin/env bash
echo "rustup \$*" >>"$work/calls"
SH
cat >"$work/bin/cargo" <<SH
#!/usr/bin/env bash
# cargo build ... --target T: an empty static library where cargo would leave it.
set -euo pipefail
echo "cargo \$*" >>"$work/calls"
target=\${!#}
mkdir -p "\${CARGO_TARGET_DIR:-target}/\$target/mobile"
: >"\${CARGO_TARGET_DIR:-target}/\$target/mobile/libchaya_uniffi.a"
SH
cat >"$work/bin/lipo" <<SH
#!/usr/bin/env bash
echo "lipo \$*" >>"$work/calls"
for input in "\${@:2:\$#-3}"; do [[ -f \$input ]] || { echo "lipo: no \$input" >&2; exit 1; }; done
: >"\${@: -1}"
SH
cat >"$work/bin/xcodebuild" <<SH
#!/usr/bin/env bash
echo "xcodebuild \$*" >>"$work/calls"
while [[ \$# -gt 0 ]]; do
    case \$1 in
        -library) [[ -f \$2 ]] || { echo "xcodebuild: no \$2" >&2; exit 1; }; shift 2 ;;
        -headers) cp -r "\$2" "$work/headers-given"; shift 2 ;;
        -output) mkdir -p "\$2"; shift 2 ;;
        *) shift ;;
    esac
done
SH
chmod +x "$work/bin/"*

cd "$work"
PATH="$work/bin:$PATH" CARGO_TARGET_DIR="$work/cargo-target" bash ios/build-xcframework.sh >"$work/log" 2>&1 ||
    fail "build-xcframework.sh failed"
targets="aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin"
grep -qx "rustup target add $targets" calls || fail "rustup: $(grep rustup calls)"
for target in $targets; do
    grep -qx "cargo build --profile mobile --no-default-features -p chaya-uniffi --target $target" calls ||
        fail "no mobile build for $target"
done
lib() { echo "$work/cargo-target/$1/mobile/libchaya_uniffi.a"; }
grep -qx "lipo -create $(lib aarch64-apple-ios-sim) $(lib x86_64-apple-ios) -output $work/cargo-target/xcframework/ios-simulator/libchaya_uniffi.a" calls ||
    fail "simulator slices: $(grep lipo calls)"
grep -qx "lipo -create $(lib aarch64-apple-darwin) $(lib x86_64-apple-darwin) -output $work/cargo-target/xcframework/macos/libchaya_uniffi.a" calls ||
    fail "macOS slices: $(grep lipo calls)"
grep -q "^xcodebuild -create-xcframework -library $(lib aarch64-apple-ios) -headers " calls || fail "device slice: $(grep xcodebuild calls)"
grep -q " -output $work/ios/chayaFFI.xcframework$" calls || fail "output: $(grep xcodebuild calls)"
cmp -s headers-given/chayaFFI/module.modulemap "$ROOT/bindings/swift/chayaFFI.modulemap" || fail "module map"
cmp -s headers-given/chayaFFI/chayaFFI.h "$ROOT/bindings/swift/chayaFFI.h" || fail "header"
[[ -d ios/chayaFFI.xcframework ]] || fail "no XCFramework"
echo "ios/build-xcframework.sh: ok"
