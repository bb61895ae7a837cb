#!/usr/bin/env bash
# Sets up, builds and runs every test (unit + end to end against the real binary).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bash "$here/scripts/setup.sh"
bash "$here/scripts/build.sh"
cd "$here/build"
ctest --output-on-failure -j2 --timeout 600
