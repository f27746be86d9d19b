"""Names shared with the frontend and the agent (src/common/routes.ts is the source;
tests/test_contracts.py checks that these are the same values)."""

import re
from typing import Optional

URL_NAMESPACE = "remote-cluster"
# The resource of jupyter_server's authorizer for this project's actions (profile kernels too)
AUTH_RESOURCE = URL_NAMESPACE
KERNEL_NAME_PREFIX = "remote-cluster-"
SESSION_KERNEL_INFIX = "session-"
KERNELSPEC_MARKER = "jupyterlab_remote_cluster"
PROVISIONER_NAME = "remote-cluster-provisioner"
REMOTE_KERNEL_SEPARATOR = "--"
DEFAULT_REMOTE_KERNEL = "python3"


def profile_kernel_name(profile: str) -> str:
    """A profile's kernelspec (a new job with its defaults)."""
    return KERNEL_NAME_PREFIX + re.sub(r"[^a-z0-9._-]", "-", profile.lower())


def stable_kernel_name(profile: str, remote: str = DEFAULT_REMOTE_KERNEL) -> str:
    """A stable kernelspec: `profile`'s kernel `remote`, in a running session of it or a new
    job; the name a notebook is saved with, the same whatever the job."""
    return f"{profile_kernel_name(profile)}{REMOTE_KERNEL_SEPARATOR}{remote.lower()}"


def session_kernel_name(session: str, remote: Optional[str] = None) -> str:
    """The kernelspec the agent writes for a running session: its default Python, or
    `remote`, another kernelspec of the job's environment."""
    base = f"{KERNEL_NAME_PREFIX}{SESSION_KERNEL_INFIX}{session}"
    return f"{base}{REMOTE_KERNEL_SEPARATOR}{remote.lower()}" if remote else base
