# Sourced by the Kotlin test scripts: makes sure a JDK, JNA and the Kotlin
# compiler are here, installing what is missing, and sets
#   KOTLINC     the kotlinc-jvm command
#   KOTLIN_LIB  the compiler's lib/ (it bundles kotlinx-coroutines-core-jvm.jar)
#   JNA         JNA's jar (Debian libjna-java)
# The compiler is kotlinc-jvm on PATH, else npm's global kotlin-compiler, else the
# npm package kotlin-compiler installed into $CHAYA_KOTLIN_HOME (default
# /var/cache/chaya/kotlin).

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

KOTLINC=$(command -v kotlinc-jvm || true)
if [[ -z $KOTLINC ]]; then
    KOTLINC=$(npm root -g 2>/dev/null)/kotlin-compiler/bin/kotlinc-jvm
    [[ -x $KOTLINC ]] || KOTLINC=$KOTLIN_HOME/node_modules/kotlin-compiler/bin/kotlinc-jvm
fi
if [[ ! -x $KOTLINC ]]; then
    mkdir -p "$KOTLIN_HOME"
    npm install --prefix "$KOTLIN_HOME" --no-audit --no-fund "kotlin-compiler@$KOTLIN_VERSION"
fi
KOTLIN_LIB=$(cd "$(dirname "$(realpath "$KOTLINC")")/../lib" && pwd)
"$KOTLINC" -version 2>&1 | tail -1
