#!/usr/bin/env bash
# The Jupyter server for the Galata tests: its own settings (a profile for the running
# testbed), data and runtime dirs, so it shares nothing with a demo or a user's Lab.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ROOT="$REPO/ui-tests/.jupyter-root"
rm -rf "$ROOT"
mkdir -p "$ROOT/notebooks" "$ROOT/data" "$ROOT/runtime"
export JUPYTERLAB_SETTINGS_DIR="$ROOT/user-settings"
export JUPYTER_DATA_DIR="$ROOT/data"
export JUPYTER_RUNTIME_DIR="$ROOT/runtime"
export JUPYTERLAB_GALATA_ROOT_DIR="$ROOT/notebooks"
write_testbed_profile "$JUPYTERLAB_SETTINGS_DIR"
# A second profile whose known_hosts starts empty: the host-key dialogs get tested.
: > "$ROOT/known_hosts_empty"
python3 - "$JUPYTERLAB_SETTINGS_DIR/jupyterlab-remote-cluster/profiles.jupyterlab-settings" "$ROOT/known_hosts_empty" <<'PY'
import json, re, sys
path, known_hosts = sys.argv[1:]
text = re.sub(r"^\s*//.*$", "", open(path).read(), flags=re.M)
settings = json.loads(text)
fresh = dict(settings["profiles"][0], name="fresh-keys", title="Testbed (new host keys)")
fresh["ssh"] = dict(fresh["ssh"], knownHostsFiles=[known_hosts])
settings["profiles"].append(fresh)
json.dump(settings, open(path, "w"), indent=2)
PY
cd "$REPO/ui-tests"
exec jupyter lab --config jupyter_server_test_config.py
