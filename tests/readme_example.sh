#!/usr/bin/env bash
# Prints README.md's first ```LANG code block: the example the tests build.
# Fails when README.md has no such block, or an empty one.
#   bash tests/readme_example.sh c|kotlin|swift|python
set -euo pipefail
fence='```'
awk -v opening="$fence$1" -v closing="$fence" '
    $0 == opening { inside = 1; next }
    inside && $0 == closing { exit }
    inside { print; lines++ }
    END { if (!lines) { print "README.md has no " opening " example" > "/dev/stderr"; exit 1 } }
' "$(dirname "$0")/../README.md"
