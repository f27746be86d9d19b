#!/usr/bin/env bash
# The demo, from a fresh machine (as root): setup, start the testbed cluster, then run
# JupyterLab with the extension on http://127.0.0.1:${PORT:-8888}/ and print its URL.
# Ctrl-C stops JupyterLab; the cluster keeps running until `testbed/testbed stop`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

bash "$REPO/scripts/setup.sh"
source "$VENV/bin/activate"

log "testbed: start"
"$REPO/testbed/testbed" start
"$REPO/testbed/testbed" status || true

PORT="${PORT:-8888}"
DEMO_DIR="$REPO/.demo"
mkdir -p "$DEMO_DIR/notebooks"
# The demo's own Jupyter dirs: its settings hold a ready profile for the testbed.
export JUPYTERLAB_SETTINGS_DIR="$DEMO_DIR/user-settings"
export JUPYTER_DATA_DIR="$DEMO_DIR/data"
export JUPYTER_RUNTIME_DIR="$DEMO_DIR/runtime"
write_demo_profiles "$JUPYTERLAB_SETTINGS_DIR"
# A fresh token for this run; it is only in this process's environment and the URL.
TOKEN="$(python -c 'import secrets; print(secrets.token_hex(24))')"
export JUPYTER_TOKEN="$TOKEN"

cat <<MSG

  JupyterLab with jupyterlab-remote-cluster:
      http://127.0.0.1:${PORT}/lab?token=${TOKEN}

  Click "Testbed (Slurm)" in the Launcher's "Remote cluster" section: a Slurm job
  starts on the demo cluster and a notebook opens on a kernel on its compute node.
  The demo cluster (testbed) is running: laptop -> bastion -> login -> node1, node2.
  From a shell here:  ssh -F /run/rc-testbed/laptop/ssh_config login sinfo
  Stop JupyterLab with Ctrl-C; stop the cluster with: testbed/testbed stop

MSG
exec jupyter lab --no-browser --ip 127.0.0.1 --port "$PORT" --allow-root \
  --ServerApp.root_dir="$DEMO_DIR/notebooks"
