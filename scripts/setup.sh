#!/usr/bin/env bash
# Installs every dependency of apilake on a fresh Debian 12 machine. Safe to re-run:
# apt skips what is installed, the DuckDB files are only fetched when missing or of the wrong version.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"

APT_PACKAGES=(
  build-essential cmake pkg-config git ca-certificates curl python3
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libcurl4-openssl-dev libssl-dev
  libsimdjson-dev
  libavro-dev avro-bin python3-avro
  libsqlite3-dev
  libyaml-cpp-dev
  libspdlog-dev libfmt-dev libcli11-dev
  libzstd-dev libsnappy-dev
  libgtest-dev googletest libgmock-dev libbenchmark-dev
  openssl
  # the dashboard's browser test (headless, driven by playwright-core from npm)
  chromium
  # bench/: the load driver and the seed's own stack as the API anchor (bench/anchors/)
  wrk python3-fastapi python3-uvicorn python3-uvloop python3-httptools python3-yaml
)
# npm: the machine's Node.js (nodesource) ships npm itself; Debian's npm conflicts with it.
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)

need_apt=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$p")
done
if ((${#need_apt[@]})); then
  echo "setup: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# DuckDB C API: header and library from two npm packages of the same version, checked against the
# registry's sha512 integrity values (see docs/dependencies.md).
DUCKDB_VERSION=1.4.4
DUCKDB_BINDINGS=1.4.4-r.4
dest="$here/third_party/duckdb"
if [ ! -f "$dest/VERSION" ] || [ "$(cat "$dest/VERSION")" != "$DUCKDB_VERSION" ] || [ ! -f "$dest/libduckdb.so" ]; then
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "duckdb@$DUCKDB_VERSION" "@duckdb/node-bindings-linux-x64@$DUCKDB_BINDINGS" >/dev/null)
  check() { # file expected-sha512-base64
    got="$(openssl dgst -sha512 -binary "$1" | base64 -w0)"
    [ "sha512-$got" = "$2" ] || { echo "setup: integrity mismatch for $1" >&2; exit 1; }
  }
  check "$tmp/duckdb-$DUCKDB_VERSION.tgz" 'sha512-hEJJ5hyVF0VLj3dmOLpsWrQR0b3d4Ykqtygm6iUXjHJDDnSqg/USKxcb5qvNrOhFYPgktayU6dXCtgPqcmmpog=='
  check "$tmp/duckdb-node-bindings-linux-x64-$DUCKDB_BINDINGS.tgz" 'sha512-jBTL/WvfwxLToFa/pVHfT6elMtltJGnc3wSuxZD9OfMltit9YUdVFS37vBFQzXMT1Z8OWjtSjMh+zPKxOwHLHA=='
  mkdir -p "$dest/include" "$dest/lib"
  tar -xzf "$tmp/duckdb-$DUCKDB_VERSION.tgz" -C "$tmp" package/src/duckdb/src/include/duckdb.h package/LICENSE
  cp "$tmp/package/src/duckdb/src/include/duckdb.h" "$dest/include/"
  cp "$tmp/package/LICENSE" "$dest/LICENSE"
  rm -rf "$tmp/package"
  tar -xzf "$tmp/duckdb-node-bindings-linux-x64-$DUCKDB_BINDINGS.tgz" -C "$tmp" package/libduckdb.so
  cp "$tmp/package/libduckdb.so" "$dest/lib/"
  echo "$DUCKDB_VERSION" > "$dest/VERSION"
  echo "setup: DuckDB $DUCKDB_VERSION in $dest"
fi
# npm packages pinned in package.json / package-lock.json (test servers, independent readers, web
# assets). Re-installed only when the lock file changes.
lock_sum="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$here/node_modules/.apilake-lock" ] || [ "$(cat "$here/node_modules/.apilake-lock")" != "$lock_sum" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" > "$here/node_modules/.apilake-lock"
fi
echo "setup: ok"
