"""Jupyter server for the Galata tests (never use for anything else: auth is off)."""

from jupyterlab.galata import configure_jupyter_server

configure_jupyter_server(c)  # noqa: F821
c.ServerApp.port = 8899  # noqa: F821  (8888 stays free for the demo)
c.ServerApp.allow_root = True  # noqa: F821  (CI runs as root)
c.ServerApp.ip = "127.0.0.1"  # noqa: F821
