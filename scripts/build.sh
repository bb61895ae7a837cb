#!/usr/bin/env bash
# Configures and builds apilake into build/ (the binary is build/apilake). Warnings are errors in CI.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
werror=OFF; [ -n "${CI:-}" ] && werror=ON
cmake -S "$here" -B "$here/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAPILAKE_WERROR="$werror" >/dev/null
cmake --build "$here/build" -j"$(nproc)"
