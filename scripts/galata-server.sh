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
cd "$REPO/ui-tests"
exec jupyter lab --config jupyter_server_test_config.py
