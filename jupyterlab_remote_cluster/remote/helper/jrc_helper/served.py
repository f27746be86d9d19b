"""What the session serves over HTTP to the agent's proxy (the served part of Helper).

Two kinds, each a Unix socket in the node-local 0700 runtime directory under a numeric
"port" label (the proxied URL's `<port>`; nothing of it is on TCP):
  - label 0: the session's own Dask dashboard (dask.py), served under the proxied prefix;
  - labels 1, 2, ...: the dashboards of Dask schedulers the session's kernels start
    (a notebook's LocalCluster, a dask-jobqueue cluster). The kernels' Dask configuration
    (kernel_dask_env) gives every scheduler they make the preload jrc_dask_private.py,
    which serves its dashboard on `<n>.sock` in `dashboards/`; this module finds them
    there, checks that the server is this user's and that it is a Dask scheduler
    (`/json/identity.json`), and offers it. Those dashboards know no prefix: the agent
    strips ours (`stripPrefix`).
The same configuration puts the kernels' own Dask on the session's mutual TLS: a
LocalCluster on 127.0.0.1 in the clear would run code for any user of the node.
"""

import json
import os
import re
import socket
import struct
import time

from .common import log

DASHBOARDS_DIR = "dashboards"
# the comm ports (TLS) of the Dask servers the session runs, as the preload records them
DASK_COMMS_DIR = "dask-comms"
SCAN_SECONDS = 2.0
# the session's own scheduler is asked for its worker count less often (workers that
# join it later: added jobs); its dashboard never changes
COUNT_SECONDS = 10.0
IDENTITY_TIMEOUT = 3.0
IDENTITY_MAX_BYTES = 4 << 20
# A socket that does not answer twice in a row (one scan apart) is a dead scheduler's:
# once only could be a scheduler between its bind and its listen.
STALE_MISSES = 2
LABEL_SOCKET_RE = re.compile(r"^([1-9][0-9]{0,2})\.sock$")
PPID_DEPTH = 64


def kernel_dask_env(tls, dashboards, comms, proxy_base, preload):
    """Dask configuration (environment) of everything the session's kernels run: every
    comm on mutual TLS with the session's certificate (clients, schedulers and workers
    alike), the private-HTTP preload on every scheduler, nanny and worker, and dashboard
    links to the proxied form (`{port}` is the label the preload gives)."""
    env = {
        "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": tls["ca"],
        "DASK_DISTRIBUTED__DASHBOARD__LINK": "%s/{port}/status" % proxy_base,
        "JRC_DASK_HTTP_DIR": dashboards,
        "JRC_DASK_COMM_DIR": comms,
    }
    for role in ("CLIENT", "SCHEDULER", "WORKER"):
        env["DASK_DISTRIBUTED__COMM__TLS__%s__CERT" % role] = tls["cert"]
        env["DASK_DISTRIBUTED__COMM__TLS__%s__KEY" % role] = tls["key"]
    for role in ("SCHEDULER", "WORKER", "NANNY"):
        env["DASK_DISTRIBUTED__%s__PRELOAD" % role] = json.dumps([preload])
    return env


class AnsweredWithoutIdentity(ValueError):
    """The server answered HTTP, with an error instead of its identity: it is alive (a
    scheduler without the preload's mended identity.json answers 500 while it computes)."""


def scheduler_identity(path, prefix="", timeout=IDENTITY_TIMEOUT):
    """(pid, identity) of the Dask scheduler serving HTTP on Unix socket `path` (under URL
    `prefix`: the session's own scheduler serves under the proxied one); raises
    OSError when nothing answers, AnsweredWithoutIdentity for an HTTP error, ValueError
    for a server that is not this user's or an answer that is not an identity."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(path)
        pid = 0
        if hasattr(socket, "SO_PEERCRED"):
            pid, uid, _gid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
            if uid != os.getuid():
                raise ValueError("%s is served by uid %d" % (path, uid))
        s.sendall(("GET %s/json/identity.json HTTP/1.0\r\nHost: localhost\r\n\r\n" % prefix).encode())
        data = b""
        while len(data) <= IDENTITY_MAX_BYTES:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        raise ValueError("%s: no identity (%r)" % (path, head[:80]))
    if head.split(b" ", 2)[1:2] != [b"200"]:
        raise AnsweredWithoutIdentity("%s: no identity (%r)" % (path, head[:80]))
    ident = json.loads(body.decode("utf-8"))
    if not isinstance(ident, dict):
        raise ValueError("%s: the identity is not an object" % path)
    return pid, ident


def parent_pid(pid):
    with open("/proc/%d/stat" % pid, "rb") as f:
        stat = f.read().decode("utf-8", "replace")
    # the command name (2nd field) may hold spaces and parentheses: split after the last ")"
    return int(stat[stat.rindex(")") + 2 :].split()[1])


class ServedMixin:
    """Helper's served ports (uses Helper's lock, config, runtime, kernels, http_sockets,
    state, write_state, forward_http, scan_worker_jobs)."""

    def setup_served(self):
        """The dashboards and Dask comm ports directories in the runtime dir (0700 as its
        parent: no one else can put a socket or a port in them)."""
        self.dashboards = os.path.join(self.runtime, DASHBOARDS_DIR)
        os.mkdir(self.dashboards, 0o700)
        self.dask_comms = os.path.join(self.runtime, DASK_COMMS_DIR)
        os.mkdir(self.dask_comms, 0o700)

    def is_dask_comm(self, port, pid):
        """Whether `port`, held by session process `pid`, is a comm port (TLS) a Dask
        server of the session recorded: one being written (no pid yet) counts."""
        try:
            with open(os.path.join(self.dask_comms, str(port))) as f:
                recorded = f.read(16).strip()
        except OSError:
            return False
        return not recorded or recorded == str(pid)

    def offer_http(self, label, sock, entry):
        """Serve `sock` under `label` (the relay, node-ssh and the reverse tunnel reach it)."""
        with self.lock:
            new = label not in self.http_sockets
            self.http_sockets[label] = sock
            self.served[label] = entry
        if new:
            self.forward_http(label, sock)
        self.publish_served()

    def withdraw_http(self, label):
        with self.lock:
            self.http_sockets.pop(label, None)
            gone = self.served.pop(label, None)
        if gone is not None:
            self.publish_served()

    def publish_served(self):
        with self.lock:
            ports = [self.served[k] for k in sorted(self.served, key=int)]
            sockets = dict(self.http_sockets)
        self.write_state(httpPorts=ports, httpSockets=sockets)

    def kernel_of(self, pid):
        """The id of the session's kernel that `pid` is (or descends from), or None."""
        with self.lock:
            kernels = {k.proc.pid: kid for kid, k in self.kernels.items()}
        for _ in range(PPID_DEPTH):
            if pid in kernels:
                return kernels[pid]
            if pid <= 1:
                return None
            try:
                pid = parent_pid(pid)
            except (OSError, ValueError):
                return None
        return None

    def watch_dashboards(self):
        """What the kernels start, every SCAN_SECONDS: Dask dashboards, web servers
        (webports.py), worker jobs."""
        while not self.stop_event.wait(SCAN_SECONDS):
            try:
                self.scan_dashboards()
                self.scan_web_ports()
                self.scan_worker_jobs()
            except Exception as e:  # noqa: BLE001 - the watcher must outlive one bad scan
                log("dashboards scan: %s" % e)

    def scan_dashboards(self):
        """Offer every kernel-started scheduler's dashboard, withdraw the dead ones."""
        try:
            names = os.listdir(self.dashboards)
        except OSError:
            return
        present = set()
        for name in names:
            m = LABEL_SOCKET_RE.match(name)
            if not m:
                continue
            label, path = m.group(1), os.path.join(self.dashboards, name)
            present.add(label)
            try:
                pid, ident = scheduler_identity(path)
            except AnsweredWithoutIdentity:
                # alive: what was offered stays as it was, and its count with it
                self.served_misses.pop(label, None)
                if label not in self.served:
                    present.discard(label)
                continue
            except (OSError, ValueError) as e:
                misses = self.served_misses.get(label, 0) + 1
                self.served_misses[label] = misses
                if misses >= STALE_MISSES:
                    # a dead scheduler's socket: its label is free for the next one
                    self.served_misses.pop(label, None)
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
                    present.discard(label)
                    if label in self.served:
                        log("dashboard %s withdrawn: %s" % (label, e))
                continue
            self.served_misses.pop(label, None)
            if ident.get("type") != "Scheduler":
                present.discard(label)
                continue
            entry = {
                "port": int(label),
                "name": "dask-notebook",
                "path": "%s/%s/status" % (self.config["proxyBase"], label),
                "stripPrefix": True,
                "pid": pid,
                "kernelId": self.kernel_of(pid) if pid else None,
                "workers": ident.get("n_workers", 0),
                "threads": ident.get("total_threads", 0),
            }
            if entry != self.served.get(label):
                if label not in self.served:
                    log("dashboard %s: a Dask scheduler of pid %s" % (label, pid))
                self.offer_http(label, path, entry)
        gone = [k for k, e in list(self.served.items()) if e.get("name") == "dask-notebook" and k not in present]
        for label in gone:
            self.withdraw_http(label)
        if time.monotonic() >= self.next_count:
            self.next_count = time.monotonic() + COUNT_SECONDS
            self.count_session_workers()

    def count_session_workers(self):
        """The session's own scheduler: how many workers it has now (added jobs join it)."""
        with self.lock:
            entry, sock = self.served.get("0"), self.http_sockets.get("0")
        if not (entry and sock):
            return
        try:
            _pid, ident = scheduler_identity(sock, "%s/0" % self.config["proxyBase"])
        except (OSError, ValueError):
            return
        counted = dict(entry, workers=ident.get("n_workers", 0), threads=ident.get("total_threads", 0))
        if counted != entry:
            self.offer_http("0", sock, counted)
