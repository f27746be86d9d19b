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
# A second profile whose known_hosts starts empty: the host-key dialogs get tested (its
# ssh_config asks about unknown keys; the testbed's says StrictHostKeyChecking yes).
: > "$ROOT/known_hosts_empty"
TESTBED_SSH_CONFIG="$("$REPO/testbed/testbed" env | sed -n 's/^RC_TESTBED_SSH_CONFIG=//p')"
printf 'Host *\n    StrictHostKeyChecking ask\n\nInclude %s\n' "$TESTBED_SSH_CONFIG" > "$ROOT/ssh_config_ask"
# A third whose SSH keepalives notice a cut link within seconds: the reconnect UI gets
# tested (first values win in ssh_config, so ours come before the testbed's hosts).
printf 'Host *\n    ServerAliveInterval 2\n    ServerAliveCountMax 2\n\nInclude %s\n' \
  "$TESTBED_SSH_CONFIG" > "$ROOT/ssh_config_fast_keepalive"
python3 - "$JUPYTERLAB_SETTINGS_DIR/jupyterlab-remote-cluster/profiles.jupyterlab-settings" "$ROOT/known_hosts_empty" "$ROOT/ssh_config_fast_keepalive" "$ROOT/ssh_config_ask" <<'PY'
import json, re, sys
path, known_hosts, fast_config, ask_config = sys.argv[1:]
text = re.sub(r"^\s*//.*$", "", open(path).read(), flags=re.M)
settings = json.loads(text)
fresh = dict(settings["profiles"][0], name="fresh-keys", title="Testbed (new host keys)")
fresh["ssh"] = dict(fresh["ssh"], knownHostsFiles=[known_hosts], configFile=ask_config)
settings["profiles"].append(fresh)
fast = dict(settings["profiles"][0], name="fast-keepalive", title="Testbed (fast keepalive)", dask=False)
fast["ssh"] = dict(fast["ssh"], configFile=fast_config)
fast["resources"] = dict(fast["resources"], walltime="00:20:00", memory="500M")
settings["profiles"].append(fast)
# A fourth whose idle sessions end after a minute: idle reclaim gets tested (idle.spec.ts).
idle = dict(settings["profiles"][0], name="idle-1min", title="Testbed (idle after 1 min)", dask=False, idleTimeout=1)
idle["resources"] = dict(idle["resources"], walltime="00:30:00", cpus=2, memory="500M")
settings["profiles"].append(idle)
# A fifth that lists where it may run: the fastest-start choice (allocation.spec.ts).
fastest = dict(settings["profiles"][0], name="fastest-start", title="Testbed (fastest start)", dask=False)
fastest["candidates"] = [{"partition": "big"}, {"partition": "sshonly", "walltime": "00:30:00"}]
settings["profiles"].append(fastest)
json.dump(settings, open(path, "w"), indent=2)
PY
cd "$REPO/ui-tests"
exec jupyter lab --config jupyter_server_test_config.py
