#!/usr/bin/env bash
# Compiles the Android library's Kotlin (android/chaya/src/main/kotlin; Assets.kt
# against stand-ins for the android.content classes it uses, tests/mobile/kotlin/android)
# together with the generated bindings using kotlinc-jvm, and runs its tests
# (tests/mobile/kotlin/WrapperTest.kt) on the JVM against the host-built libchaya_uniffi.so.
#
# kotlinx-coroutines is the kotlinx-coroutines-core-jvm.jar that the Kotlin
# compiler's npm package ships in its lib/ (tests/kotlin/tools.sh).
#
# Usage: tests/mobile/kotlin.sh [MODEL]   (default: models/chaya-tiny-random.safetensors)
# Environment: PROFILE (debug|release, default debug) selects the Rust build.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PROFILE=${PROFILE:-debug}
MODEL=$(realpath "${1:-$ROOT/models/chaya-tiny-random.safetensors}")
WRAPPER=$ROOT/android/chaya/src/main/kotlin/ai/chaya

source "$ROOT/tests/kotlin/tools.sh"
COROUTINES=$KOTLIN_LIB/kotlinx-coroutines-core-jvm.jar
if [[ ! -f $COROUTINES ]]; then
    echo "no kotlinx-coroutines-core-jvm.jar in $KOTLIN_LIB" >&2
    exit 1
fi
echo "kotlinx-coroutines $(unzip -p "$COROUTINES" META-INF/kotlinx_coroutines_core.version)"

source "$ROOT/tests/build.sh"
build_workspace

BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
echo "== kotlinc (bindings + wrapper + tests)"
"$KOTLINC" -nowarn -classpath "$JNA:$COROUTINES" -include-runtime -d "$BUILD/test.jar" \
    bindings/kotlin/uniffi/chaya/chaya.kt "$WRAPPER"/*.kt tests/mobile/kotlin/android/*.kt \
    tests/kotlin/TestRunner.kt tests/mobile/kotlin/WrapperTest.kt
echo "== run"
java -Djna.library.path="$TARGET_DIR/$PROFILE" -cp "$BUILD/test.jar:$JNA:$COROUTINES" \
    ai.chaya.WrapperTestKt "$MODEL"
