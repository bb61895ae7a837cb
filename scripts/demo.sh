#!/usr/bin/env bash
# The main job: set up, build, and run the embedded pipeline with the offline demo upstream.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bash "$here/scripts/setup.sh"
bash "$here/scripts/build.sh"
cd "$here"
# The bundled github source declares bearer auth; the replay does not check the token.
export GITHUB_TOKEN="${GITHUB_TOKEN:-demo-token-not-checked-by-the-replay}"
exec build/apilake up --demo "$@"
