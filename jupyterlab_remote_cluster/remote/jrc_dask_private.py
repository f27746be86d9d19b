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
    imports its preloads again) listens nowhere;
  - every comm port a server listens on (scheduler, worker, nanny: TLS only) is recorded
    as `<port>` (holding the pid) in $JRC_DASK_COMM_DIR, the moment it listens: the
    helper's scan for web servers (webports.py) never sends its HTTP probe there, which
    Dask would log as a failed TLS handshake into the notebook that runs the cluster.
It also mends the scheduler's `/json/identity.json`, which the helper reads to find and
count the notebooks' schedulers: Dask answers it 500 while a worker's last heartbeat holds
task metrics (their keys are tuples, which JSON cannot encode), i.e. while the cluster
computes; those keys are left out instead.

Dask's own dashboard TLS would encrypt, but it does not authenticate clients, and a TCP
port on a shared node can be connected to by every user of the node.

A kernel's dask-jobqueue cluster (its scheduler runs in the kernel's process, so this
preload is imported there) also gets its submitted job ids recorded: one empty file per
job in $JRC_WORKER_JOBS_DIR (node-local, 0700), removed when the cluster closes the job.
The helper reports them, and the agent counts them in its one batched status query.

`dask_setup` checks the outcome: a server of a distributed release whose HTTP server
listens on TCP in spite of the patch stops instead of serving. It runs in the session's
Python (with distributed), never in the helper, which stays stdlib-only.
"""

import os
import socket

SOCKET_ENV = "JRC_DASK_HTTP_SOCKET"
DIR_ENV = "JRC_DASK_HTTP_DIR"
COMM_DIR_ENV = "JRC_DASK_COMM_DIR"
JOBS_ENV = "JRC_WORKER_JOBS_DIR"
MAX_LABEL = 999
JOB_ID_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


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


def _comm_ports(server):
    ports = []
    for listener in getattr(server, "listeners", []):
        try:
            ports.append(int(listener.get_host_port()[1]))
        except (AttributeError, ValueError, TypeError, IndexError):
            pass  # not a TCP listener (inproc, ucx)
    return ports


def _mark_comm_ports(server, present):
    """Record (or forget) the TCP ports `server` listens on; never fails the server."""
    directory = os.environ.get(COMM_DIR_ENV)
    if not directory:
        return
    for port in _comm_ports(server):
        path = os.path.join(directory, str(port))
        try:
            if present:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(str(os.getpid()))
            else:
                os.unlink(path)
        except OSError:
            pass


def _identity_json_get(self):
    import json

    self.set_header("Content-Type", "application/json; charset=UTF-8")
    self.write(json.dumps(self.server.identity(), skipkeys=True, default=str))


def _patch():
    from distributed.core import Server
    from distributed.http.scheduler import json as scheduler_json
    from distributed.node import ServerNode

    if not hasattr(ServerNode, "start_http_server"):
        raise RuntimeError(
            "this release of distributed has no ServerNode.start_http_server: cannot keep the Dask dashboard off TCP"
        )
    ServerNode.start_http_server = _private_start_http_server
    scheduler_json.IdentityJSON.get = _identity_json_get
    listen = Server.listen
    if getattr(listen, "_jrc_records", False):
        return

    async def recorded_listen(self, *args, **kwargs):
        # marked before anything else runs on this loop: the listener binds synchronously
        await listen(self, *args, **kwargs)
        _mark_comm_ports(self, True)

    recorded_listen._jrc_records = True
    Server.listen = recorded_listen


_patch()


def _mark_job(directory, job_id, present):
    """Record (or forget) one submitted worker job; never fails the cluster for it."""
    import re

    if not job_id or not re.match(JOB_ID_RE, str(job_id)):
        return
    path = os.path.join(directory, str(job_id))
    try:
        if present:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        else:
            os.unlink(path)
    except OSError:
        pass


def _record_worker_jobs(directory):
    """Wrap dask-jobqueue's Job.start and Job.close (once per process) so that every job
    this process's clusters submit is recorded in `directory` until they close it."""
    import sys

    job = getattr(sys.modules.get("dask_jobqueue.core"), "Job", None)
    if job is None or getattr(job.start, "_jrc_records", False):
        return
    start, close = job.start, job.close

    async def recorded_start(self):
        try:
            await start(self)
        finally:
            _mark_job(directory, self.job_id, True)

    async def recorded_close(self):
        try:
            await close(self)
        finally:
            _mark_job(directory, self.job_id, False)

    recorded_start._jrc_records = True
    job.start, job.close = recorded_start, recorded_close


def dask_setup(server):
    if type(server).__name__ == "Scheduler" and os.environ.get(JOBS_ENV):
        _record_worker_jobs(os.environ[JOBS_ENV])
    http = getattr(server, "http_server", None)
    sockets = list(getattr(http, "_sockets", {}).values()) if http is not None else []
    tcp = [s for s in sockets if s.family in (socket.AF_INET, socket.AF_INET6)]
    if tcp:
        raise RuntimeError(
            "the HTTP server of %s listens on TCP %s despite the preload: refusing to run"
            % (type(server).__name__, [s.getsockname() for s in tcp])
        )


def dask_teardown(server):
    _mark_comm_ports(server, False)
