#!/usr/bin/env bash
# Prints README.md's first ```LANG code block: the example the tests build.
#   bash tests/readme_example.sh c|kotlin|swift
set -euo pipefail
fence='```'
awk -v opening="$fence$1" -v closing="$fence" \
    '$0 == opening { inside = 1; next } inside && $0 == closing { exit } inside' \
    "$(dirname "$0")/../README.md"
