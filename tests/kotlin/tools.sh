# Sourced by the Kotlin test scripts: makes sure a JDK, JNA and the Kotlin
# compiler are here, installing what is missing, and sets
#   KOTLINC     the kotlinc-jvm command
#   KOTLIN_LIB  the compiler's lib/ (it bundles kotlinx-coroutines-core-jvm.jar)
#   JNA         JNA's jar (Debian libjna-java)
# The compiler is the first kotlinc-jvm of version $KOTLIN_VERSION among the
# one on PATH, npm's global kotlin-compiler and the one in $CHAYA_KOTLIN_HOME
# (default ~/.cache/chaya/kotlin), installed there when none is.

KOTLIN_VERSION=2.4.20
KOTLIN_HOME=${CHAYA_KOTLIN_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/chaya/kotlin}
JNA=/usr/share/java/jna.jar

kotlin_apt_updated=0
kotlin_apt_install() {
    ((kotlin_apt_updated)) || { apt-get update -qq; kotlin_apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
command -v javac >/dev/null || kotlin_apt_install default-jdk-headless
[[ -f $JNA ]] || kotlin_apt_install libjna-java

# The version kotlinc-jvm $1 reports ("info: kotlinc-jvm 2.4.20 (JRE ...)").
kotlinc_version() { "$1" -version 2>&1 | sed -n 's/.*kotlinc-jvm \([0-9][0-9.]*\).*/\1/p' | head -1; }
KOTLINC=
for kotlin_candidate in "$(command -v kotlinc-jvm || true)" \
    "$(npm root -g 2>/dev/null)/kotlin-compiler/bin/kotlinc-jvm" \
    "$KOTLIN_HOME/node_modules/kotlin-compiler/bin/kotlinc-jvm"; do
    if [[ -x $kotlin_candidate && $(kotlinc_version "$kotlin_candidate") == "$KOTLIN_VERSION" ]]; then
        KOTLINC=$kotlin_candidate
        break
    fi
done
if [[ -z $KOTLINC ]]; then
    mkdir -p "$KOTLIN_HOME"
    npm install --prefix "$KOTLIN_HOME" --no-audit --no-fund "kotlin-compiler@$KOTLIN_VERSION"
    KOTLINC=$KOTLIN_HOME/node_modules/kotlin-compiler/bin/kotlinc-jvm
fi
KOTLIN_LIB=$(cd "$(dirname "$(realpath "$KOTLINC")")/../lib" && pwd)
"$KOTLINC" -version 2>&1 | tail -1
