#!/usr/bin/env bash
# Builds and runs the Kotlin binding test on the JVM (JNA + the built cdylib).
#
# Installs what is missing: a JDK (Debian default-jdk-headless), JNA (Debian
# libjna-java) and, when no kotlinc-jvm is on PATH, the Kotlin compiler (npm
# package kotlin-compiler, into $CHAYA_KOTLIN_HOME, default /var/cache/chaya/kotlin).
#
# Usage: tests/kotlin/run.sh [MODEL]   (default: models/chaya-tiny-random.safetensors)
# Environment: PROFILE (debug|release, default debug) selects the Rust build.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PROFILE=${PROFILE:-debug}
KOTLIN_VERSION=2.4.20
KOTLIN_HOME=${CHAYA_KOTLIN_HOME:-/var/cache/chaya/kotlin}
KOTLINC=$(command -v kotlinc-jvm || echo "$KOTLIN_HOME/node_modules/kotlin-compiler/bin/kotlinc-jvm")
JNA=/usr/share/java/jna.jar
MODEL=$(realpath "${1:-$ROOT/models/chaya-tiny-random.safetensors}")

phase_start=0
phase() {
    phase_name=$1
    phase_start=${EPOCHREALTIME/./}
    echo "== kotlin: $phase_name"
}
phase_done() {
    local us=$((${EPOCHREALTIME/./} - phase_start))
    printf '== kotlin: %s took %d.%01d s\n' "$phase_name" $((us / 1000000)) $((us / 100000 % 10))
}

phase "tools"
apt_updated=0
apt_install() {
    ((apt_updated)) || { apt-get update -qq; apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
command -v javac >/dev/null || apt_install default-jdk-headless
[[ -f $JNA ]] || apt_install libjna-java
if [[ ! -x $KOTLINC ]]; then
    mkdir -p "$KOTLIN_HOME"
    npm install --prefix "$KOTLIN_HOME" --no-audit --no-fund "kotlin-compiler@$KOTLIN_VERSION"
fi
"$KOTLINC" -version 2>&1 | tail -1
phase_done

phase "cargo build ($PROFILE)"
cd "$ROOT"
if [[ $PROFILE == release ]]; then
    cargo build -p chaya-uniffi --release
else
    cargo build -p chaya-uniffi
fi
phase_done

phase "kotlinc"
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
"$KOTLINC" -nowarn -classpath "$JNA" -include-runtime -d "$BUILD/test.jar" \
    bindings/kotlin/uniffi/chaya/chaya.kt tests/kotlin/Main.kt
phase_done

phase "run"
java -Djna.library.path="$ROOT/target/$PROFILE" -cp "$BUILD/test.jar:$JNA" MainKt "$MODEL"
phase_done
