"""jupyterlab-remote-cluster: run JupyterLab kernels on HPC compute nodes over SSH.

The Python side is deliberately thin (docs/architecture.md): it starts and supervises
the Node agent, forwards the authenticated /remote-cluster/ routes to it, and (later)
provides the kernel provisioner. SSH, scheduler and session logic live in the agent.
"""

try:
    from ._version import __version__
except ImportError:  # running from a source tree that was never built
    __version__ = "dev"


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "jupyterlab-remote-cluster"}]


def _jupyter_server_extension_points():
    from .server import RemoteClusterExtension

    return [{"module": "jupyterlab_remote_cluster", "app": RemoteClusterExtension}]
