#!/usr/bin/env bash
# Builds and runs the Kotlin binding test on the JVM (JNA + the built cdylib).
#
# Installs what is missing (tests/kotlin/tools.sh): a JDK, JNA and the Kotlin compiler.
#
# Usage: tests/kotlin/run.sh [MODEL]   (default: models/chaya-tiny-random.safetensors)
# Environment: PROFILE (debug|release, default debug) selects the Rust build.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PROFILE=${PROFILE:-debug}
MODEL=$(realpath "${1:-$ROOT/models/chaya-tiny-random.safetensors}")

PHASE_LABEL=kotlin
source "$ROOT/tests/phases.sh"

phase "tools"
source "$ROOT/tests/kotlin/tools.sh"
phase_done

phase "cargo build ($PROFILE)"
source "$ROOT/tests/build.sh"
build_workspace
phase_done

phase "kotlinc (the tests, and the README's Kotlin example: compiled, not run)"
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
bash tests/readme_example.sh kotlin > "$BUILD/ReadmeExample.kt"
"$KOTLINC" -nowarn -classpath "$JNA" -include-runtime -d "$BUILD/test.jar" \
    bindings/kotlin/uniffi/chaya/chaya.kt tests/kotlin/TestRunner.kt tests/kotlin/Main.kt \
    "$BUILD/ReadmeExample.kt"
phase_done

phase "run"
java -Djna.library.path="$TARGET_DIR/$PROFILE" -cp "$BUILD/test.jar:$JNA" MainKt "$MODEL"
phase_done
