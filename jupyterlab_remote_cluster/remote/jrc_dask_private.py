"""Dask preload of jupyterlab-remote-cluster: no HTTP server of a session's Dask on TCP.

The helper starts the session's scheduler and worker with `--preload <this file>`.
distributed imports preloads while it builds a scheduler or worker, before that server
starts its HTTP server (the dashboard, /health, /metrics); importing this module replaces
`ServerNode.start_http_server`, so that:
  - the scheduler serves its HTTP application (the dashboard) on the Unix socket named by
    $JRC_DASK_HTTP_SOCKET (0600, in the session's 0700 runtime directory), which only
    the user, and the agent through SSH or the helper's relay, can connect to;
  - a scheduler a notebook starts (LocalCluster, a dask-jobqueue cluster: the helper puts
    this preload in the kernels' Dask config) serves it on `<n>.sock` in the directory
    $JRC_DASK_HTTP_DIR, with the first free n from 1: its proxied "port" label. The helper
    finds it there and offers it in the sidebar; the dashboard link Dask prints names the
    label (`services["dashboard"]` is what Dask formats `{port}` with);
  - every other server (workers, started by a nanny in a process of their own that
    imports its preloads again) listens nowhere.
Dask's own dashboard TLS would encrypt, but it does not authenticate clients, and a TCP
port on a shared node can be connected to by every user of the node.

`dask_setup` checks the outcome: a server of a distributed release whose HTTP server
listens on TCP in spite of the patch stops instead of serving. It runs in the session's
Python (with distributed), never in the helper, which stays stdlib-only.
"""

import os
import socket

SOCKET_ENV = "JRC_DASK_HTTP_SOCKET"
DIR_ENV = "JRC_DASK_HTTP_DIR"
MAX_LABEL = 999


def _bind_free_label(directory):
    """The first `<n>.sock` free in `directory`, bound (bind fails on an existing path, so
    two schedulers never get the same n); returns (n, path, socket)."""
    import errno

    from tornado.netutil import bind_unix_socket

    for n in range(1, MAX_LABEL + 1):
        path = os.path.join(directory, "%d.sock" % n)
        if os.path.lexists(path):
            continue
        try:
            return n, path, bind_unix_socket(path, mode=0o600)
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
    raise RuntimeError("no free dashboard socket in %s" % directory)


def _private_start_http_server(self, routes, dashboard_address, default_port=0, ssl_options=None):
    from distributed.http.routing import RoutingApplication
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_unix_socket

    self.http_application = RoutingApplication(routes)
    self.http_server = HTTPServer(self.http_application)
    scheduler = type(self).__name__ == "Scheduler"
    path = os.environ.get(SOCKET_ENV) if scheduler else None
    label = 0
    if path:
        self.http_server.add_socket(bind_unix_socket(path, mode=0o600))
    elif scheduler and os.environ.get(DIR_ENV):
        label, path, sock = _bind_free_label(os.environ[DIR_ENV])
        self.http_server.add_socket(sock)
    # What distributed reads back: `services["dashboard"].port` names the dashboard in the
    # scheduler's identity (clients need the key) and is the `{port}` of its link: the
    # proxied label (0: the session's scheduler), not a TCP port.
    self.http_server.address, self.http_server.port = path or "", label
    self.services["dashboard"] = self.http_server


def _patch():
    from distributed.node import ServerNode

    if not hasattr(ServerNode, "start_http_server"):
        raise RuntimeError(
            "this release of distributed has no ServerNode.start_http_server: cannot keep the Dask dashboard off TCP"
        )
    ServerNode.start_http_server = _private_start_http_server


_patch()


def dask_setup(server):
    http = getattr(server, "http_server", None)
    sockets = list(getattr(http, "_sockets", {}).values()) if http is not None else []
    tcp = [s for s in sockets if s.family in (socket.AF_INET, socket.AF_INET6)]
    if tcp:
        raise RuntimeError(
            "the HTTP server of %s listens on TCP %s despite the preload: refusing to run"
            % (type(server).__name__, [s.getsockname() for s in tcp])
        )
