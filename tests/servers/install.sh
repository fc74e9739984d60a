#!/usr/bin/env bash
# Installs the RTMP servers that tests/interop.rs publishes to, each at a pinned version, into one
# directory (default: target/interop-servers; the tests look there, or in $CAMPUSH_INTEROP_SERVERS):
#   DIR/node/node_modules   node-media-server, exactly as package-lock.json says (npm ci)
#   DIR/venv                a Python venv with pyrtmp and rtmplite3, and prometheus-client (the
#                           text-format parser tests/health.rs uses) (requirements.txt)
# Needs node + npm and python3 with venv (Debian: nodejs npm python3-venv). Skips the work when
# DIR already holds what these pins describe and it still runs. Reads nothing from stdin.
#
# Usage: tests/servers/install.sh [DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
dest=${1:-${CAMPUSH_INTEROP_SERVERS:-${CARGO_TARGET_DIR:-$repo/target}/interop-servers}}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

pins=$(cat "$here/package.json" "$here/package-lock.json" "$here/requirements.txt" | sha256sum)
pins=${pins%% *}
if [ "$(cat "$dest/installed" 2>/dev/null)" = "$pins" ] &&
    [ -f "$dest/node/node_modules/node-media-server/package.json" ] &&
    "$dest/venv/bin/python" -c 'import pyrtmp, rtmplite3.rtmp, prometheus_client.parser' </dev/null 2>/dev/null; then
    echo "interop servers already installed in $dest"
    exit 0
fi
rm -f "$dest/installed"

echo "node-media-server (npm ci) into $dest/node"
mkdir -p "$dest/node"
cp "$here/package.json" "$here/package-lock.json" "$dest/node/"
(cd "$dest/node" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error </dev/null)

# Debian's own python3 when there is one: python3-venv is installed for it.
python=python3
if [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; fi
echo "pyrtmp, rtmplite3 and prometheus-client (pip) into $dest/venv, with $($python --version)"
rm -rf "$dest/venv"
$python -m venv "$dest/venv"
"$dest/venv/bin/pip" install --no-input --disable-pip-version-check --quiet --no-deps --use-pep517 \
    -r "$here/requirements.txt" </dev/null
"$dest/venv/bin/python" -c 'import pyrtmp, rtmplite3.rtmp, prometheus_client.parser' </dev/null

echo "$pins" >"$dest/installed"
echo "interop servers installed in $dest"
