#!/usr/bin/env bash
# A JupyterLab with real authentication (a token, XSRF, origin checks), unlike Galata's own
# server: for tests of what a web page can do to it (tests/proxied-content.spec.ts).
# Port 8897; the token comes from $JUPYTER_TOKEN. One profile: the testbed's, whose Dask
# scheduler also serves an attacker's page (fixtures/rc_evilpage.py).
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
: "${JUPYTER_TOKEN:?set JUPYTER_TOKEN}"
ROOT="$REPO/ui-tests/.jupyter-secure-root"
rm -rf "$ROOT"
mkdir -p "$ROOT/notebooks" "$ROOT/data" "$ROOT/runtime" "$ROOT/workspaces"
export JUPYTERLAB_SETTINGS_DIR="$ROOT/user-settings" JUPYTER_DATA_DIR="$ROOT/data" JUPYTER_RUNTIME_DIR="$ROOT/runtime"
write_testbed_profile "$JUPYTERLAB_SETTINGS_DIR"
# The attacker's route module where the job's Python finds it (the shared home).
EVIL_DIR=/home/alice/.rc-ui-tests
install -d -o alice -g alice -m 700 "$EVIL_DIR"
install -o alice -g alice -m 600 "$REPO/ui-tests/fixtures/rc_evilpage.py" "$EVIL_DIR/rc_evilpage.py"
python3 - "$JUPYTERLAB_SETTINGS_DIR/jupyterlab-remote-cluster/profiles.jupyterlab-settings" "$EVIL_DIR" <<'PY'
import json, re, sys
path, evil_dir = sys.argv[1:]
settings = json.loads(re.sub(r"^\s*//.*$", "", open(path).read(), flags=re.M))
routes = ["distributed.http.scheduler.prometheus", "distributed.http.scheduler.info",
          "distributed.http.scheduler.json", "distributed.http.health", "distributed.http.proxy",
          "distributed.http.statics", "rc_evilpage"]
p = settings["profiles"][0]
p["setup"] = [f"export PYTHONPATH={evil_dir}", "export DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES='%s'" % json.dumps(routes)]
json.dump(settings, open(path, "w"), indent=2)
PY
cd "$ROOT"
exec jupyter lab --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port=8897 --ServerApp.port_retries=0 \
  --ServerApp.allow_root=True --ServerApp.root_dir="$ROOT/notebooks" --LabApp.news_url=None \
  --LabApp.workspaces_dir="$ROOT/workspaces"
