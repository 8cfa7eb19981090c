# Sourced by the Kotlin test scripts: makes sure a JDK, JNA and the Kotlin
# compiler are here, installing what is missing, and sets
#   KOTLINC     the kotlinc-jvm command
#   KOTLIN_LIB  the compiler's lib/ (it bundles kotlinx-coroutines-core-jvm.jar)
#   JNA         JNA's jar (Debian libjna-java)
# The compiler is kotlinc-jvm on PATH, else npm's kotlin-compiler at version
# $KOTLIN_VERSION: the global one, or the one in $CHAYA_KOTLIN_HOME (default
# /var/cache/chaya/kotlin), installed there when neither is that version.

KOTLIN_VERSION=2.4.20
KOTLIN_HOME=${CHAYA_KOTLIN_HOME:-/var/cache/chaya/kotlin}
JNA=/usr/share/java/jna.jar

kotlin_apt_updated=0
kotlin_apt_install() {
    ((kotlin_apt_updated)) || { apt-get update -qq; kotlin_apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
command -v javac >/dev/null || kotlin_apt_install default-jdk-headless
[[ -f $JNA ]] || kotlin_apt_install libjna-java

# The version of the npm package kotlin-compiler in directory $1 (none if absent).
kotlin_npm_version() { sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$1/package.json" 2>/dev/null | head -1; }
KOTLINC=$(command -v kotlinc-jvm || true)
if [[ -z $KOTLINC ]]; then
    for kotlin_dir in "$(npm root -g 2>/dev/null)/kotlin-compiler" "$KOTLIN_HOME/node_modules/kotlin-compiler"; do
        if [[ -x $kotlin_dir/bin/kotlinc-jvm && $(kotlin_npm_version "$kotlin_dir") == "$KOTLIN_VERSION" ]]; then
            KOTLINC=$kotlin_dir/bin/kotlinc-jvm
            break
        fi
    done
fi
if [[ -z $KOTLINC ]]; then
    mkdir -p "$KOTLIN_HOME"
    npm install --prefix "$KOTLIN_HOME" --no-audit --no-fund "kotlin-compiler@$KOTLIN_VERSION"
    KOTLINC=$KOTLIN_HOME/node_modules/kotlin-compiler/bin/kotlinc-jvm
fi
KOTLIN_LIB=$(cd "$(dirname "$(realpath "$KOTLINC")")/../lib" && pwd)
"$KOTLINC" -version 2>&1 | tail -1
