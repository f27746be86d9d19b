#!/usr/bin/env python3
"""jupyterlab-remote-cluster remote helper.

Runs inside the batch job on the compute node: `python helper.py serve --session-dir DIR`.
It starts kernels (and optionally a Dask scheduler + one worker) on request of the agent,
which reaches it over an authenticated HTTP/JSON control channel.

Why one stdlib-only file: the agent uploads it by SFTP at submit time and the cluster's
own Python runs it (3.8+). ipykernel/distributed are only imported by the child processes
it starts, with the interpreter named in config.json.

Nothing of a session is reachable by another user of the node (docs/security.md): the
control channel, the kernels and the Dask dashboard listen on Unix sockets in a node-local
0700 directory with an unpredictable name; Dask speaks mutual TLS with the session's own
CA; the one TCP endpoint for the agent (via-login, auto) is a TLS relay that wants the
session's client certificate and token before it relays to those sockets.

Session directory (on the shared home, 0700, made by the agent):
  config.json   0600, written by the agent: sessionId, token, tls (the session's CA and
                certificate, PEM), python, workdir, kernelEnv, dask, proxyBase, daskWorkerThreads, (optional) bindAddress, daskHost,
                connectivity (via-login | node-ssh | reverse | auto), reverseHost
  state.json    0600, written here atomically: version, status, host, runtimeDir,
                controlSocket, relayPort, heartbeat, ...
  kernels/<id>/connection.json (0600, dir 0700) and kernel.log
  dask-scheduler.json, dask-scheduler.log, dask-worker.log
Node-local runtime directory (never on the shared home; a Unix socket is only reachable
on the host that bound it): mkdtemp under $TMPDIR or /tmp, e.g. /tmp/jrc-k3x9a0q2 (0700):
  control.sock, dashboard.sock, kernel sockets k<n>-<port>, ssh.ctl, tls/, dask-*/
On the login node, for reverse/auto: another mkdtemp directory, made through the tunnel.
See docs/remote-helper.md for the protocol and docs/connectivity.md for the modes.
"""

import argparse
import asyncio
import hmac
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler

# The agent-helper protocol (state.json "version"). 1: TCP kernels and control (before
# the isolation work); 2: everything on private Unix sockets, TLS relay, Dask over TLS.
PROTOCOL_VERSION = 2
HEARTBEAT_SECONDS = 10
KERNEL_START_TIMEOUT = 60.0
KERNEL_KILL_GRACE = 5.0  # DELETE: SIGTERM, then SIGKILL after this
STOP_GRACE = 3.0  # shutdown/SIGTERM: Slurm's KillWait may be short; be done well before it
DASK_START_TIMEOUT = 60.0
MAX_BODY = 1 << 20
REQUEST_TIMEOUT = 30  # seconds a client may take to send its request (no slowloris)
LOG_TAIL_BYTES = 4000

KERNEL_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PROXY_BASE_RE = re.compile(r"^(/[A-Za-z0-9._~%+-]+)*$")
PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
CONNECTIVITY = ("via-login", "node-ssh", "reverse", "auto")
SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
TUNNEL_START_TIMEOUT = 30.0
RELAY_HEAD_TIMEOUT = 15.0  # seconds for a relay client's TLS handshake and CONNECT line
RELAY_HEAD_MAX = 16384
# Unix socket paths are limited to 107 bytes: a runtime base longer than this is skipped
# (the longest name in it is the kernel sockets' "k<n>-<port>").
RUNTIME_BASE_MAX = 64
# The helper's companions, uploaded with it into the same versioned directory; they run
# in the session's Python (with ipykernel / distributed), the helper stays stdlib-only.
HERE = os.path.dirname(os.path.abspath(__file__))
KERNEL_LAUNCHER = os.path.join(HERE, "jrc_kernel.py")
DASK_PRELOAD = os.path.join(HERE, "jrc_dask_private.py")
DASHBOARD_LABEL = "0"  # the Dask dashboard's "port" in proxied URLs (it has no TCP port)
KERNEL_CHANNELS = {
    "shell": "shell_port",
    "iopub": "iopub_port",
    "stdin": "stdin_port",
    "control": "control_port",
    "hb": "hb_port",
}
# The reverse tunnel's ssh: no prompts, host keys checked whatever the user's ssh config
# on the cluster says, and nothing of the node forwarded to the login node but our sockets.
REVERSE_SSH_OPTIONS = [
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "UpdateHostKeys=no",
    "-o",
    "ControlPersist=no",
    "-o",
    "PermitLocalCommand=no",
    "-o",
    "ForwardAgent=no",
    "-o",
    "ForwardX11=no",
    "-o",
    "RequestTTY=no",
]


def log(msg):
    # stderr is the job's error file (the agent shows its tail when a session fails).
    sys.stderr.write("[rc-helper %s] %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), msg))
    sys.stderr.flush()


class ApiError(Exception):
    """An error answered as JSON: {"error": {"code", "message"}} (same shape as the agent's)."""

    def __init__(self, status, code, message):
        Exception.__init__(self, message)
        self.status = status
        self.code = code
        self.message = message


def write_private(path, data):
    """Write bytes to `path` atomically with mode 0600 (tmp file + os.replace).

    Why: readers (the agent over SFTP) must never see a half-written file, and the
    files hold secrets or ports that only this user may read.
    """
    tmp = "%s.tmp.%d.%d" % (path, os.getpid(), threading.get_ident())
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)  # shared homes are often NFS: make the replace point at real data
    finally:
        os.close(fd)
    os.replace(tmp, path)


def open_log(path):
    """Append-only log file, 0600 whatever the umask (we leave the umask to the user's kernels)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")


def tail(path, limit=LOG_TAIL_BYTES):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def kill_group(pgid, sig):
    """Signal a whole process group (kernels spawn children: multiprocessing, shells)."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def group_alive(pgid):
    return kill_group(pgid, 0)


def stop_processes(procs, grace):
    """SIGTERM each process group, wait up to `grace` s, then SIGKILL what is left.

    `procs` are Popen objects started with start_new_session (pgid == pid).
    """
    for p in procs:
        kill_group(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        # wait for the leader *and* its group (a kernel's children may outlive it)
        while time.monotonic() < deadline and (p.poll() is None or group_alive(p.pid)):
            time.sleep(0.05)
    for p in procs:
        if p.poll() is None or group_alive(p.pid):
            kill_group(p.pid, signal.SIGKILL)
    for p in procs:
        try:
            p.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass


def make_runtime_dir(bases):
    """The session's node-local private directory: a fresh mkdtemp under the first usable
    base (e.g. $TMPDIR, then /tmp).

    Why mkdtemp: a name another user of the node can predict can be taken first (a file,
    his own directory, a symlink) and block or capture the session; mkdtemp picks an
    unpredictable name, creates it 0700 and fails rather than reuse anything that exists.
    """
    errors = []
    for base in bases:
        if not base or not os.path.isabs(base) or len(base) > RUNTIME_BASE_MAX:
            continue
        try:
            return tempfile.mkdtemp(prefix="jrc-", dir=base)
        except OSError as e:
            errors.append("%s: %s" % (base, e))
    raise RuntimeError("no private directory for sockets: %s" % ("; ".join(errors) or "no usable temporary directory"))


def write_tls_files(directory, tls):
    """The session's CA, certificate and key as 0600 files in a 0700 dir (Dask and the
    relay read files). Returns {"ca", "cert", "key"} paths."""
    os.mkdir(directory, 0o700)
    paths = {}
    for name in ("ca", "cert", "key"):
        paths[name] = os.path.join(directory, name + ".pem")
        write_private(paths[name], tls[name].encode())
    return paths


class ReverseTunnel:
    """An OpenSSH master from this node to the login node; forwards are added on demand
    (`ssh -S ctl -O forward -R login-socket:node-socket`), so the agent reaches sockets
    of this node through Unix sockets on the login node (for nodes nobody can connect to).
    BatchMode and StrictHostKeyChecking forced: no prompts, an unknown host key or a
    missing key fails at once."""

    def __init__(self, host, ctl, log_path):
        self.host = host
        self.ctl = ctl
        self.log_path = log_path
        self.proc = None
        self.remote_dir = None

    def _ssh(self, *args, timeout=20):
        return subprocess.run(
            ["ssh", "-S", self.ctl] + REVERSE_SSH_OPTIONS + list(args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
        )

    def start(self):
        logf = open_log(self.log_path)
        try:
            self.proc = subprocess.Popen(
                ["ssh", "-M", "-S", self.ctl, "-N"]
                + REVERSE_SSH_OPTIONS
                + [
                    "-o",
                    "ExitOnForwardFailure=yes",
                    "-o",
                    "ConnectTimeout=10",
                    "-o",
                    "ServerAliveInterval=15",
                    "-o",
                    "ServerAliveCountMax=4",
                    self.host,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=logf,
                start_new_session=True,
            )
        except OSError as e:
            raise RuntimeError("cannot run ssh: %s" % e) from e
        finally:
            logf.close()
        deadline = time.monotonic() + TUNNEL_START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "ssh %s exited with code %s: %s"
                    % (self.host, self.proc.returncode, tail(self.log_path, 600).strip() or "no message")
                )
            if os.path.exists(self.ctl) and self._ssh("-O", "check", self.host, timeout=10).returncode == 0:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    "ssh %s did not come up within %d s: %s"
                    % (self.host, TUNNEL_START_TIMEOUT, tail(self.log_path, 600).strip())
                )
            time.sleep(0.1)
        # The login side's private directory (a Unix socket is reachable only on the host
        # that bound it, so it must live on the login node, not on the shared home), with
        # an unpredictable name for the same reason as the node's (make_runtime_dir).
        r = self._ssh(self.host, "umask 077 && mktemp -d /tmp/jrc-XXXXXXXXXX")
        out = r.stdout.decode("utf-8", "replace").strip()
        if r.returncode != 0 or not re.match(r"^/tmp/jrc-[A-Za-z0-9]{10}$", out):
            raise RuntimeError(
                "cannot create the socket directory on %s: %s"
                % (self.host, r.stderr.decode("utf-8", "replace").strip() or out)
            )
        self.remote_dir = out

    def forward(self, remote_socket, target):
        """target: a node-side socket path."""
        r = self._ssh("-O", "forward", "-R", "%s:%s" % (remote_socket, target), self.host)
        if r.returncode != 0:
            raise RuntimeError(
                "reverse forward %s failed: %s" % (remote_socket, r.stderr.decode("utf-8", "replace").strip())
            )
        return remote_socket

    def cancel(self, remote_socket, target):
        self._ssh("-O", "cancel", "-R", "%s:%s" % (remote_socket, target), self.host)
        self._ssh(self.host, "rm -f -- %s" % shlex.quote(remote_socket))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        rm = "rm -rf -- %s" % shlex.quote(self.remote_dir) if self.remote_dir else None
        try:
            if self.alive():
                if rm:
                    rm = None if self._ssh(self.host, rm, timeout=10).returncode == 0 else rm
                self._ssh("-O", "exit", self.host, timeout=10)
        except (OSError, subprocess.SubprocessError) as e:
            log("closing the reverse tunnel: %s" % e)
        stop_processes([self.proc], 2.0)
        if rm:
            # scancel signals the whole job, our master too: the login-side sockets are
            # removed over a new connection then
            try:
                r = subprocess.run(
                    ["ssh"] + REVERSE_SSH_OPTIONS + ["-o", "ConnectTimeout=5", self.host, rm],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    timeout=10,
                )
                if r.returncode != 0:
                    log(
                        "cannot remove %s on %s: %s"
                        % (self.remote_dir, self.host, r.stderr.decode("utf-8", "replace").strip())
                    )
            except (OSError, subprocess.SubprocessError) as e:
                log("cannot remove %s on %s: %s" % (self.remote_dir, self.host, e))


class Relay:
    """The agent's one TCP endpoint on the node (via-login, auto): TLS that requires the
    session's client certificate (the agent's; verified against the session CA), then
    `CONNECT <target>` with the session's token, then the bytes of a private Unix socket:
      control                  the control channel (HTTP, as on control.sock)
      kernel/<id>/<channel>    a kernel's ZMQ socket (shell, iopub, stdin, control, hb)
      http/<port>              an HTTP service of the session (the Dask dashboard: 0)
    Nobody without the session's key completes the handshake, and the token never
    crosses the network in the clear. Runs an asyncio loop in a thread of its own:
    asyncio's TLS is the stdlib's one that streams both ways at once safely. Bytes are
    handed from one transport to the other in the protocols' callbacks (no stream
    buffers in between), with each side's flow control pausing the other."""

    def __init__(self, helper, host, tls_paths):
        import ssl  # here, not at the top: a Python without ssl still runs node-ssh/reverse

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(tls_paths["cert"], tls_paths["key"])
        ctx.load_verify_locations(tls_paths["ca"])
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx = ctx
        self.helper = helper
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.loop = asyncio.new_event_loop()
        self.server = None
        self.ready = threading.Event()

    def start(self):
        threading.Thread(target=self._run, name="relay", daemon=True).start()
        self.ready.wait(10)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        try:
            self.server = self.loop.run_until_complete(
                self.loop.create_server(
                    lambda: RelayConnection(self),
                    sock=self.sock,
                    ssl=self.ctx,
                    ssl_handshake_timeout=RELAY_HEAD_TIMEOUT,
                )
            )
        finally:
            self.ready.set()
        self.loop.run_forever()

    def stop(self):
        def close():
            if self.server is not None:
                self.server.close()
            self.loop.stop()

        try:
            self.loop.call_soon_threadsafe(close)
        except RuntimeError:  # the loop is already closed
            pass

    def target(self, head):
        """The socket a CONNECT head asks for, after checking the token (ApiError if not)."""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[0] != "CONNECT" or not parts[2].startswith("HTTP/1."):
            raise ApiError(405, "method-not-allowed", "only CONNECT is served here")
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if not bearer_ok(headers.get("authorization", ""), self.helper.config["token"]):
            raise ApiError(401, "unauthorized", "missing or wrong bearer token")
        return self.helper.relay_target(parts[1])


class RelayConnection(asyncio.Protocol):
    """One client of the relay, after its TLS handshake: its CONNECT head, then its bytes
    to the target's Unix socket and back. Either side's end closes both (asyncio's TLS
    cannot be half-closed)."""

    def __init__(self, relay):
        self.relay = relay
        self.tls = None
        self.head = b""
        self.pending = None  # bytes that came after the head, while the target connects
        self.upstream = None  # the target's transport
        self.timer = None

    def connection_made(self, transport):
        self.tls = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timer = self.relay.loop.call_later(RELAY_HEAD_TIMEOUT, transport.abort)

    def data_received(self, data):
        if self.upstream is not None:
            self.upstream.write(data)
        elif self.pending is not None:
            self.pending.append(data)
        else:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > RELAY_HEAD_MAX:
                    self.tls.abort()  # not a client of ours: nothing to answer
                return
            self.timer.cancel()
            head, rest = self.head[: end + 4], self.head[end + 4 :]
            self.pending = [rest] if rest else []
            try:
                path = self.relay.target(head)
            except ApiError as e:
                self.answer(e.status, e.message)
                return
            self.relay.loop.create_task(self.connect(path, head.split(b" ", 2)[1].decode("latin-1")))

    async def connect(self, path, target):
        try:
            transport, up = await self.relay.loop.create_unix_connection(lambda: RelayUpstream(self), path)
        except OSError as e:
            self.answer(502, "cannot connect to %s: %s" % (target, e))
            return
        if self.tls.is_closing():
            transport.close()
            return
        self.tls.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for data in self.pending:
            transport.write(data)
        self.pending = None
        self.upstream = transport
        up.open()

    def answer(self, status, message):
        self.tls.write(relay_answer(status, message))
        self.tls.close()

    def connection_lost(self, exc):
        if self.timer is not None:
            self.timer.cancel()
        if self.upstream is not None:
            self.upstream.close()

    # the TLS side cannot take more for now: stop reading the target, and on again
    def pause_writing(self):
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self):
        if self.upstream is not None:
            self.upstream.resume_reading()


class RelayUpstream(asyncio.Protocol):
    """The target's side of a relayed connection."""

    def __init__(self, client):
        self.client = client
        self.early = []  # what the target said before the client got its "200"

    def open(self):
        for data in self.early:
            self.client.tls.write(data)
        self.early = None

    def data_received(self, data):
        if self.early is not None:
            self.early.append(data)
        else:
            self.client.tls.write(data)

    def connection_lost(self, exc):
        self.client.tls.close()  # after what is buffered for it

    def pause_writing(self):
        self.client.tls.pause_reading()

    def resume_writing(self):
        self.client.tls.resume_reading()


def relay_answer(status, message):
    body = message.encode("utf-8", "replace")
    return b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
        status,
        b"Error",
        len(body),
        body,
    )


def bearer_ok(header, token):
    prefix = "Bearer "
    offered = header[len(prefix) :].encode("utf-8", "replace") if header.startswith(prefix) else b""
    # constant time: the comparison does not tell an attacker how much of it matched
    return hmac.compare_digest(offered, token.encode())


class Kernel:
    def __init__(self, kid, proc, kdir, started_at, key):
        self.kid = kid
        # Kept in memory only, for a restart under the same id (see start_kernel).
        self.key = key
        self.proc = proc
        self.dir = kdir
        self.connection_file = os.path.join(kdir, "connection.json")
        self.log_path = os.path.join(kdir, "kernel.log")
        self.started_at = started_at
        self.sockets = {}  # channel port name -> node-local socket path, once it listens
        self.reverse_forwards = []  # (login socket, node socket) to cancel when it stops

    def alive(self):
        return self.proc.poll() is None

    def info(self):
        code = self.proc.poll()
        return {"pid": self.proc.pid, "alive": code is None, "exitCode": code}


class Helper:
    def __init__(self, session_dir):
        self.dir = os.path.abspath(session_dir)
        self.lock = threading.RLock()
        self.kernels = {}
        self.dask_procs = []  # [scheduler, worker] Popen objects
        self.dask_env = {}  # extra env for kernels once Dask runs
        self.stop_event = threading.Event()
        self.stop_reason = None
        self.exit_code = 0
        self.server = None  # the control server (Unix socket)
        self.relay = None  # Relay (via-login, auto)
        self.runtime = None  # node-local private dir (make_runtime_dir)
        self.tls = None  # paths of the session's CA, certificate and key in it
        self.http_sockets = {}  # proxied port label -> Unix socket (the dashboard: "0")
        self.kernel_seq = 0
        self.tunnel = None  # ReverseTunnel (reverse, auto)
        self.config = {}
        self.state = {
            "version": PROTOCOL_VERSION,
            "sessionId": None,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "startedAt": time.time(),
            "heartbeat": time.time(),
            "status": "starting",
            "httpPorts": [],
            "kernels": {},
        }

    # --- state.json ---------------------------------------------------------------------
    def write_state(self, **changes):
        with self.lock:
            self.state.update(changes)
            self.state["heartbeat"] = time.time()
            self.state["kernels"] = {kid: {"pid": k.proc.pid, "alive": k.alive()} for kid, k in self.kernels.items()}
            data = json.dumps(self.state, indent=1, sort_keys=True).encode()
            try:
                write_private(os.path.join(self.dir, "state.json"), data)
            except OSError as e:  # a full or flaky shared home must not kill the kernels
                log("cannot write state.json: %s" % e)

    def fail(self, message):
        log("failed: %s" % message)
        self.write_state(status="failed", error=message)

    # --- configuration --------------------------------------------------------------------
    def check_private(self, path, what):
        st = os.stat(path)
        if st.st_uid != os.getuid():
            raise ValueError("%s %s is not owned by this user" % (what, path))
        if st.st_mode & 0o077:
            raise ValueError(
                "%s %s is accessible by other users (mode %o); it must be private (0700 dir, 0600 files)"
                % (what, path, st.st_mode & 0o777)
            )

    def load_config(self):
        self.check_private(self.dir, "session directory")
        path = os.path.join(self.dir, "config.json")
        if not os.path.exists(path):
            raise ValueError("config.json missing in %s" % self.dir)
        self.check_private(path, "config file")  # it holds the control token
        with open(path, "rb") as f:
            try:
                c = json.loads(f.read().decode("utf-8"))
            except ValueError as e:
                raise ValueError("config.json is not valid JSON: %s" % e) from e
        if not isinstance(c, dict):
            raise ValueError("config.json must be a JSON object")

        def opt(key, typ, default):
            v = c.get(key)
            if v is None:
                return default
            # (bool is an int in Python: do not take true for a thread count)
            if not isinstance(v, typ) or (typ is not bool and isinstance(v, bool)):
                raise ValueError("config.json: %r must be of type %s" % (key, typ.__name__))
            return v

        cfg = {}
        cfg["sessionId"] = opt("sessionId", str, "")
        cfg["token"] = opt("token", str, "")
        if len(cfg["token"]) < 16:
            raise ValueError("config.json: token missing or shorter than 16 characters")
        cfg["python"] = opt("python", str, "") or sys.executable
        cfg["workdir"] = os.path.expanduser(opt("workdir", str, "") or "~")
        if not os.path.isdir(cfg["workdir"]):
            raise ValueError("working directory %s does not exist" % cfg["workdir"])
        env = opt("kernelEnv", dict, {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise ValueError("config.json: kernelEnv must map strings to strings")
        cfg["kernelEnv"] = env
        cfg["dask"] = opt("dask", bool, False)
        base = opt("proxyBase", str, "").rstrip("/")
        if not PROXY_BASE_RE.match(base):
            raise ValueError("config.json: proxyBase %r is not a URL path like /a/b" % base)
        cfg["proxyBase"] = base
        threads = opt("daskWorkerThreads", int, 0)
        if threads < 0:
            raise ValueError("config.json: daskWorkerThreads must be a positive integer")
        cfg["daskWorkerThreads"] = threads
        mode = opt("connectivity", str, "via-login")
        if mode not in CONNECTIVITY:
            raise ValueError("config.json: connectivity %r is not one of %s" % (mode, ", ".join(CONNECTIVITY)))
        cfg["connectivity"] = mode
        if not SESSION_ID_RE.match(cfg["sessionId"]):
            raise ValueError("config.json: sessionId must be 1-64 of [A-Za-z0-9_-]")
        host = opt("reverseHost", str, "") or os.environ.get("SLURM_SUBMIT_HOST", "")
        if host and not HOST_RE.match(host):
            raise ValueError("config.json: reverseHost %r is not a host name" % host)
        if mode == "reverse" and not host:
            raise ValueError(
                "connectivity reverse needs the login node's name: set reverseHost (no SLURM_SUBMIT_HOST in this job)"
            )
        cfg["reverseHost"] = host
        tls = opt("tls", dict, None)
        if not (
            isinstance(tls, dict)
            and all(isinstance(tls.get(k), str) and "-----BEGIN" in tls[k] for k in ("ca", "cert", "key"))
        ):
            raise ValueError(
                "config.json: tls must hold the session's ca, cert and key (PEM); "
                "this helper is newer than the agent that wrote it"
            )
        cfg["tls"] = tls
        # Where the relay listens (via-login, auto): the agent connects from the login
        # node. A plain SSH host gets 127.0.0.1 from the agent (it comes in by SSH).
        cfg["bindAddress"] = opt("bindAddress", str, "0.0.0.0")
        # The Dask scheduler and worker (mutual TLS): only this node needs them.
        cfg["daskHost"] = opt("daskHost", str, "127.0.0.1")
        self.config = cfg
        self.state["sessionId"] = cfg["sessionId"]

    # --- kernels ------------------------------------------------------------------------
    def child_env(self, extra=None):
        env = dict(os.environ)
        env.update(self.config["kernelEnv"])
        if extra:
            env.update(extra)
        # Dask's scratch space of anything the session runs (a notebook's own LocalCluster
        # included) in the private runtime directory: /tmp/dask-scratch-space is shared by
        # every user of the node, and another one can take it first.
        env["DASK_TEMPORARY_DIRECTORY"] = os.path.join(self.runtime, "dask")
        env.update(self.dask_env)
        return env

    def start_kernel(self, body):
        kid = body.get("kernelId")
        if not isinstance(kid, str) or not KERNEL_ID_RE.match(kid):
            raise ApiError(400, "invalid-kernel-id", "kernelId must be 1-64 of [A-Za-z0-9_-]")
        python = self.config["python"]
        argv = body.get("argv")
        if argv is None:
            # ipykernel, with its IOPub pipe on a Unix socket and no debugpy (jrc_kernel.py)
            argv = [python, KERNEL_LAUNCHER, "-f", "{connection_file}"]
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
            raise ApiError(400, "invalid-argv", "argv must be a non-empty list of strings")
        env = body.get("env") or {}
        if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
            raise ApiError(400, "invalid-env", "env must map strings to strings")
        cwd = body.get("cwd") or self.config["workdir"]
        if not isinstance(cwd, str):
            raise ApiError(400, "invalid-cwd", "cwd must be a string")
        cwd = os.path.expanduser(cwd)
        if not os.path.isdir(cwd):
            raise ApiError(400, "invalid-cwd", "working directory %s does not exist" % cwd)
        # Kernels listen on Unix sockets in the private runtime dir, whatever the mode
        # (a TCP port on a shared node is open to every user there, and one a crashed
        # kernel released can be taken by another user). With reverse, each socket is
        # also forwarded to the login node.
        if body.get("transport", "ipc") != "ipc":
            raise ApiError(400, "invalid-transport", "kernels listen on Unix sockets only (transport ipc)")
        reverse = body.get("reverse") is True
        if reverse and not (self.tunnel and self.tunnel.alive()):
            raise ApiError(
                409,
                "no-reverse-tunnel",
                "no reverse tunnel to the login node: %s"
                % ((self.state.get("reverse") or {}).get("error") or "not started in this mode"),
            )

        with self.lock:
            if self.stop_event.is_set():
                raise ApiError(409, "stopping", "the session is stopping")
            old = self.kernels.get(kid)
            if old is not None and old.alive():
                raise ApiError(409, "kernel-exists", "kernel %s is already running" % kid)
            if old is not None:
                self.cancel_reverse_forwards(old)
            kdir = os.path.join(self.dir, "kernels", kid)
            for d in (os.path.dirname(kdir), kdir):  # (makedirs' mode covers only the leaf)
                os.makedirs(d, mode=0o700, exist_ok=True)
                os.chmod(d, 0o700)
            cf = os.path.join(kdir, "connection.json")
            # A fresh key per kernel; a restart (same id) keeps its key, so the clients'
            # sessions stay valid behind the agent's unchanged local ports. The kernel
            # names its sockets "<ip>-<n>" itself; a short prefix per start keeps the
            # paths under the 107-byte limit and apart from a dead predecessor's.
            key = old.key if old is not None and old.key else secrets.token_hex(32)
            self.kernel_seq += 1
            info = {
                "ip": os.path.join(self.runtime, "k%d" % self.kernel_seq),
                "transport": "ipc",
                "signature_scheme": "hmac-sha256",
                "key": key,
                "kernel_name": "",
            }
            for name in PORT_NAMES:
                info[name] = 0
            write_private(cf, json.dumps(info, indent=1).encode())
            argv = [a.replace("{connection_file}", cf) for a in argv]
            # JPY_PARENT_PID: ipykernel exits by itself if this helper dies (even SIGKILL).
            kenv = self.child_env(dict(env, JPY_PARENT_PID=str(os.getpid()), JRC_IOPUB_PIPE=info["ip"] + "-pipe"))
            log_path = os.path.join(kdir, "kernel.log")
            logf = open_log(log_path)
            logf.write(("--- kernel %s starting %s: %s\n" % (kid, time.ctime(), " ".join(argv))).encode())
            logf.flush()
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=kenv,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own group: signals reach children
                )
            except OSError as e:
                raise ApiError(500, "kernel-start-failed", "cannot start %s: %s" % (argv[0], e)) from e
            finally:
                logf.close()
            kernel = Kernel(kid, proc, kdir, time.time(), key)
            self.kernels[kid] = kernel
        self.write_state()
        log("kernel %s started, pid %d" % (kid, proc.pid))

        ports = self.wait_for_ports(kernel, info["key"])
        # ipykernel's ipc endpoints are "<ip>-<port>"
        socks = {n: "%s-%d" % (info["ip"], p) for n, p in ports.items()}
        with self.lock:
            kernel.sockets = dict(socks)
        res = {"kernelId": kid, "pid": proc.pid, "transport": "ipc", "ports": ports}
        if reverse:
            try:
                for n, path in list(socks.items()):
                    remote = "%s/%s" % (self.tunnel.remote_dir, os.path.basename(path))
                    self.tunnel.forward(remote, path)
                    kernel.reverse_forwards.append((remote, path))
                    socks[n] = remote
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                self.delete_kernel(kid)
                raise ApiError(502, "reverse-forward-failed", str(e)) from e
        res["sockets"] = socks
        self.write_state()
        return res

    def relay_target(self, target):
        """The Unix socket a relay client may CONNECT to (ApiError 404 for anything else)."""
        parts = target.split("/")
        with self.lock:
            if parts == ["control"]:
                return self.server.server_address
            if len(parts) == 3 and parts[0] == "kernel" and parts[2] in KERNEL_CHANNELS:
                k = self.kernels.get(parts[1])
                path = k.sockets.get(KERNEL_CHANNELS[parts[2]]) if k is not None and k.alive() else None
                if path:
                    return path
                raise ApiError(404, "unknown-kernel", "no running kernel %s" % parts[1])
            if len(parts) == 2 and parts[0] == "http" and parts[1] in self.http_sockets:
                return self.http_sockets[parts[1]]
        raise ApiError(404, "not-found", "nothing to connect to at %r" % target)

    def wait_for_ports(self, kernel, key):
        deadline = time.monotonic() + KERNEL_START_TIMEOUT
        while True:
            try:
                with open(kernel.connection_file, "rb") as f:
                    info = json.loads(f.read().decode("utf-8"))
                ports = {n: int(info.get(n) or 0) for n in PORT_NAMES}
                if all(ports.values()) and info.get("key") == key:
                    return ports
            except (OSError, ValueError):
                pass  # not rewritten yet, or caught mid-write
            if not kernel.alive():
                raise ApiError(
                    500,
                    "kernel-died",
                    "kernel exited with code %s before it was ready; kernel.log ends with:\n%s"
                    % (kernel.proc.returncode, tail(kernel.log_path)),
                )
            if time.monotonic() > deadline or self.stop_event.is_set():
                stop_processes([kernel.proc], 1.0)
                raise ApiError(
                    504,
                    "kernel-timeout",
                    "kernel did not report its ports within %d s; kernel.log ends with:\n%s"
                    % (KERNEL_START_TIMEOUT, tail(kernel.log_path)),
                )
            time.sleep(0.05)

    def get_kernel(self, kid):
        if not KERNEL_ID_RE.match(kid):
            raise ApiError(400, "invalid-kernel-id", "kernelId must be 1-64 of [A-Za-z0-9_-]")
        with self.lock:
            k = self.kernels.get(kid)
        if k is None:
            raise ApiError(404, "unknown-kernel", "no kernel %s in this session" % kid)
        return k

    def signal_kernel(self, kid, body):
        k = self.get_kernel(kid)
        name = body.get("signal")
        if name not in SIGNALS:
            raise ApiError(400, "invalid-signal", "signal must be one of %s" % ", ".join(sorted(SIGNALS)))
        if not k.alive():
            raise ApiError(409, "kernel-dead", "kernel %s is not running" % kid)
        kill_group(k.proc.pid, SIGNALS[name])
        return {"kernelId": kid, "signal": name}

    def cancel_reverse_forwards(self, k):
        for remote, path in k.reverse_forwards if self.tunnel else []:
            try:
                self.tunnel.cancel(remote, path)
            except (OSError, subprocess.SubprocessError) as e:
                log("cancel reverse forward %s: %s" % (remote, e))
        k.reverse_forwards = []

    def delete_kernel(self, kid):
        k = self.get_kernel(kid)
        stop_processes([k.proc], KERNEL_KILL_GRACE)
        self.cancel_reverse_forwards(k)
        try:
            os.unlink(k.connection_file)  # the key is useless now; do not leave it lying around
        except OSError:
            pass
        self.write_state()
        log("kernel %s stopped (exit %s)" % (kid, k.proc.returncode))
        return dict(k.info(), kernelId=kid)

    # --- Dask -----------------------------------------------------------------------------
    def start_dask(self):
        """Scheduler + one worker (with its nanny), on mutual TLS with the session's CA:
        nobody without the session's certificate can connect to them (a Dask scheduler
        runs code for whoever does). Their HTTP servers are kept off TCP by the preload
        module (jrc_dask_private.py): the dashboard is served on dashboard.sock in the
        runtime dir, under the proxied prefix. Failure is recorded in state.dask, never
        fatal; there is no plaintext fallback."""
        cfg = self.config
        sched_file = os.path.join(self.dir, "dask-scheduler.json")
        prefix = "%s/%s" % (cfg["proxyBase"], DASHBOARD_LABEL)
        dash_sock = os.path.join(self.runtime, "dashboard.sock")
        tls = ["--tls-ca-file", self.tls["ca"], "--tls-cert", self.tls["cert"], "--tls-key", self.tls["key"]]
        # Nothing of theirs may fall back to an unencrypted comm.
        env = self.child_env({"DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True"})
        self.write_state(dask={"status": "starting"})
        try:
            if not os.path.isfile(DASK_PRELOAD):
                raise RuntimeError("%s is missing: it keeps the dashboard private" % DASK_PRELOAD)
            try:
                os.unlink(sched_file)
            except FileNotFoundError:
                pass
            argv = [
                cfg["python"],
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                cfg["daskHost"],
                "--port",
                "0",
                "--protocol",
                "tls",
                *tls,
                "--preload",
                DASK_PRELOAD,
                # the dashboard is served under the proxied path, so its links work
                "--dashboard-prefix",
                prefix,
                "--scheduler-file",
                sched_file,
            ]
            sched = self._spawn_dask(argv, "dask-scheduler.log", dict(env, JRC_DASK_HTTP_SOCKET=dash_sock))
            info = self._wait_scheduler_file(sched, sched_file)
            address = info["address"]
            if not address.startswith("tls://") or not os.path.exists(dash_sock):
                raise RuntimeError(
                    "the scheduler came up at %s %s the dashboard socket"
                    % (address, "with" if os.path.exists(dash_sock) else "without")
                )
            threads = cfg["daskWorkerThreads"] or _int(os.environ.get("SLURM_CPUS_ON_NODE")) or 1
            argv = [
                cfg["python"],
                "-m",
                "distributed.cli.dask_worker",
                "--scheduler-file",
                sched_file,
                "--nthreads",
                str(threads),
                "--nworkers",
                "1",
                "--host",
                cfg["daskHost"],
                "--protocol",
                "tls",
                *tls,
                "--preload",
                DASK_PRELOAD,
                "--no-dashboard",
                "--name",
                "rc-worker-0",
                "--local-directory",
                os.path.join(self.runtime, "dask-worker-0"),
                "--death-timeout",
                "60",  # exits by itself if the scheduler is gone
            ]
            self._spawn_dask(argv, "dask-worker.log", env)
            path = "%s/status" % prefix
            with self.lock:
                self.dask_env = {
                    # Client() in a notebook connects with no argument, over the session's
                    # TLS; require-encryption is not forced on kernels, so their own
                    # LocalCluster() works as anywhere else
                    "DASK_SCHEDULER_ADDRESS": address,
                    "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": self.tls["ca"],
                    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": self.tls["cert"],
                    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": self.tls["key"],
                    # links printed in notebooks point at the proxied dashboard
                    "DASK_DISTRIBUTED__DASHBOARD__LINK": path,
                }
                self.http_sockets[DASHBOARD_LABEL] = dash_sock
            self.forward_http(DASHBOARD_LABEL, dash_sock)
            self.write_state(
                dask={
                    "status": "running",
                    "schedulerAddress": address,
                    "dashboardPath": path,
                    "workerThreads": threads,
                    "tls": True,
                },
                httpPorts=[{"port": int(DASHBOARD_LABEL), "name": "dask-dashboard", "path": path}],
                httpSockets=dict(self.http_sockets),
            )
            log("dask scheduler %s (TLS), dashboard on %s" % (address, dash_sock))
        except Exception as e:  # noqa: BLE001 - kernels must keep working without Dask
            with self.lock:
                procs = list(self.dask_procs)
                self.dask_procs = []
            stop_processes(procs, 1.0)
            msg = "Dask did not start: %s%s" % (e, self.tls_hint())
            log(msg)
            self.write_state(dask={"status": "failed", "error": msg}, httpPorts=[])

    def tls_hint(self):
        """Why Dask failed, when it is that the session's Python cannot speak TLS."""
        try:
            r = subprocess.run(
                [self.config["python"], "-c", "import ssl"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=30,
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        if r.returncode == 0:
            return ""
        last = (r.stderr.decode("utf-8", "replace").strip().splitlines() or ["no ssl module"])[-1]
        return " (Dask runs only over TLS, never in the clear, and %s cannot do TLS: %s)" % (
            self.config["python"],
            last,
        )

    def forward_http(self, label, path):
        """reverse/auto: an HTTP socket also on the login node."""
        if not (self.tunnel and self.tunnel.alive()):
            return
        try:
            remote = self.tunnel.forward("%s/http-%s" % (self.tunnel.remote_dir, label), path)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            log("dashboard through the reverse tunnel: %s" % e)
            return
        with self.lock:
            rev = dict(self.state.get("reverse") or {})
            rev["httpSockets"] = dict(rev.get("httpSockets") or {}, **{label: remote})
            self.state["reverse"] = rev

    # --- connectivity -----------------------------------------------------------------------
    def setup_connectivity(self):
        """Listen as the mode needs; raises (RuntimeError/OSError/ValueError) when it cannot.

        Every mode: the node-local runtime dir (mkdtemp, 0700) with the control channel on
        control.sock, and the session's TLS files.
        via-login: the TLS relay on bindAddress (0.0.0.0): the agent comes from the login node.
        node-ssh:  nothing more (the agent comes in by SSH to this node: streamlocal).
        reverse:   an ssh master to the login node forwarding a socket in a mkdtemp dir
                   there to control.sock; a failing tunnel fails the session.
        auto:      the relay and the tunnel if they come up: the agent tries via-login,
                   node-ssh, reverse and keeps the first that answers.
        """
        mode = self.config["connectivity"]
        self.runtime = make_runtime_dir([os.environ.get("TMPDIR"), "/tmp"])
        self.tls = write_tls_files(os.path.join(self.runtime, "tls"), self.config["tls"])
        path = os.path.join(self.runtime, "control.sock")
        self.server = UnixControlServer(path, self)
        self.write_state(runtimeDir=self.runtime, controlSocket=path)
        log("control channel on %s" % path)
        if mode in ("via-login", "auto"):
            try:
                self.relay = Relay(self, self.config["bindAddress"], self.tls)
            except (ImportError, OSError, ValueError) as e:
                msg = "the TLS relay cannot start (%s: %s)" % (type(e).__name__, e)
                if mode == "via-login":
                    raise RuntimeError(
                        msg + "; via-login never runs unencrypted: use connectivity node-ssh or reverse"
                    ) from e
                log(msg + " (auto: the other modes remain)")
            else:
                self.relay.start()
                self.write_state(relayPort=self.relay.port)
                log("TLS relay on %s:%d" % (self.config["bindAddress"], self.relay.port))
        if mode not in ("reverse", "auto"):
            return
        try:
            if not self.config["reverseHost"]:
                raise RuntimeError("no login node name (reverseHost or SLURM_SUBMIT_HOST)")
            self.tunnel = ReverseTunnel(
                self.config["reverseHost"],
                os.path.join(self.runtime, "ssh.ctl"),
                os.path.join(self.dir, "reverse-ssh.log"),
            )
            self.tunnel.start()
            remote = self.tunnel.forward(self.tunnel.remote_dir + "/control.sock", path)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            msg = "reverse tunnel to %s failed: %s" % (self.config["reverseHost"] or "the login node", e)
            if self.tunnel:
                self.tunnel.stop()
            self.tunnel = None
            self.write_state(reverse={"status": "failed", "error": msg})
            if mode == "reverse":
                raise RuntimeError(msg) from e
            log(msg + " (auto: the other modes remain)")
            return
        self.write_state(
            reverse={
                "status": "up",
                "host": self.config["reverseHost"],
                "dir": self.tunnel.remote_dir,
                "controlSocket": remote,
            }
        )
        log("reverse tunnel to %s: %s" % (self.config["reverseHost"], remote))

    def _spawn_dask(self, argv, logname, env):
        logf = open_log(os.path.join(self.dir, logname))
        try:
            p = subprocess.Popen(
                argv,
                cwd=self.config["workdir"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            logf.close()
        with self.lock:
            self.dask_procs.append(p)
        return p

    def _wait_scheduler_file(self, proc, path):
        deadline = time.monotonic() + DASK_START_TIMEOUT
        while True:
            try:
                with open(path) as f:
                    info = json.load(f)
                if info.get("address"):
                    return info
            except (OSError, ValueError):
                pass
            if proc.poll() is not None:
                raise RuntimeError(
                    "the scheduler exited with code %s; dask-scheduler.log ends with:\n%s"
                    % (proc.returncode, tail(os.path.join(self.dir, "dask-scheduler.log"), 1500))
                )
            if time.monotonic() > deadline:
                raise RuntimeError("the scheduler did not write %s within %d s" % (path, DASK_START_TIMEOUT))
            if self.stop_event.is_set():
                raise RuntimeError("session stopping")
            time.sleep(0.1)

    def check_dask(self):
        """Heartbeat: notice a scheduler that died after start (the UI should say so)."""
        with self.lock:
            procs = list(self.dask_procs)
            dask = self.state.get("dask") or {}
        if dask.get("status") == "running" and procs and procs[0].poll() is not None:
            msg = "Dask scheduler exited with code %s" % procs[0].returncode
            log(msg)
            self.write_state(dask=dict(dask, status="failed", error=msg), httpPorts=[])

    # --- lifecycle ------------------------------------------------------------------------
    def request_stop(self, reason, code=0):
        with self.lock:
            if self.stop_reason is None:
                self.stop_reason = reason
                self.exit_code = code
        self.stop_event.set()

    def on_signal(self, signum, frame):
        name = signal.Signals(signum).name
        self.request_stop("received %s (job cancelled or walltime reached)" % name, 128 + signum)

    def cleanup(self):
        # Write "stopping" first: Slurm may SIGKILL us a few seconds after SIGTERM.
        self.write_state(status="stopping", reason=self.stop_reason)
        # Relay, tunnel and sockets first: quick, and after Slurm's KillWait (SIGKILL) we
        # cannot clean up any more. The processes still running lose their sockets and
        # the session's TLS key on disk; they are stopped next.
        self.close_connectivity()
        if self.runtime:
            shutil.rmtree(self.runtime, ignore_errors=True)  # sockets, TLS files, Dask scratch
        with self.lock:
            procs = [k.proc for k in self.kernels.values()] + list(self.dask_procs)
        stop_processes(procs, STOP_GRACE)
        with self.lock:
            for k in self.kernels.values():
                try:
                    os.unlink(k.connection_file)  # keys of dead kernels: nothing to keep
                except OSError:
                    pass
            if (self.state.get("dask") or {}).get("status") == "running":
                self.state["dask"] = dict(self.state["dask"], status="stopped")
        self.write_state(status="stopping", reason=self.stop_reason, httpPorts=[])
        log("stopped: %s" % self.stop_reason)

    def close_connectivity(self):
        """The relay and the tunnel (with its login-side sockets) go."""
        relay, self.relay = self.relay, None
        if relay:
            relay.stop()
        tunnel, self.tunnel = self.tunnel, None
        if tunnel:
            tunnel.stop()
            with self.lock:
                if self.state.get("reverse"):
                    self.state["reverse"] = dict(self.state["reverse"], status="closed")

    def serve(self):
        try:
            self.load_config()
        except (OSError, ValueError) as e:
            self.fail(str(e))
            return 1
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        # A plain-host session may be started from an SSH session that goes away later.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.write_state(status="starting", connectivity=self.config["connectivity"])
        try:
            self.setup_connectivity()
        except (OSError, ValueError, RuntimeError) as e:
            self.fail("cannot listen (connectivity %s): %s" % (self.config["connectivity"], e))
            self.close_connectivity()
            if self.runtime:
                shutil.rmtree(self.runtime, ignore_errors=True)
            return 1
        threading.Thread(target=self.server.serve_forever, name="control", daemon=True).start()
        log("session %s ready to serve (connectivity %s)" % (self.config["sessionId"], self.config["connectivity"]))
        if self.config["dask"] and not self.stop_event.is_set():
            self.start_dask()
        if not self.stop_event.is_set():
            self.write_state(status="ready")
        next_beat = time.monotonic() + HEARTBEAT_SECONDS
        # The main thread only waits: signal handlers run here, the servers run in threads.
        while not self.stop_event.wait(0.5):
            if time.monotonic() >= next_beat:
                self.check_dask()
                self.write_state()
                next_beat = time.monotonic() + HEARTBEAT_SECONDS
        # After the stop decision, further SIGTERMs must not interrupt the cleanup.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.cleanup()
        self.server.shutdown()
        return self.exit_code


class UnixControlServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The control channel on a Unix socket (0600 in the 0700 runtime dir: only this
    user, and the agent by SSH or through the relay). The token is checked all the same."""

    daemon_threads = True

    def __init__(self, path, helper):
        self.helper = helper
        try:
            os.unlink(path)  # a stale socket of an earlier helper of this session
        except FileNotFoundError:
            pass
        socketserver.UnixStreamServer.__init__(self, path, ControlHandler)
        os.chmod(path, 0o600)


class ControlHandler(BaseHTTPRequestHandler):
    server_version = "rc-helper/%d" % PROTOCOL_VERSION
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT

    def address_string(self):
        # a Unix-socket peer has no address ("" instead of (host, port))
        return self.client_address[0] if isinstance(self.client_address, tuple) else "unix"

    def log_message(self, fmt, *args):
        log("%s %s" % (self.address_string(), fmt % args))

    def _send(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status, code, message):
        self._send(status, {"error": {"code": code, "message": message}})

    def _authorized(self):
        return bearer_ok(self.headers.get("Authorization", ""), self.server.helper.config["token"])

    def _body(self):
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            raise ApiError(411, "length-required", "send a Content-Length, not a chunked body")
        try:
            n = int(length or 0)
        except ValueError:
            raise ApiError(400, "bad-request", "invalid Content-Length") from None
        if n < 0 or n > MAX_BODY:
            raise ApiError(413, "too-large", "request body larger than %d bytes" % MAX_BODY)
        raw = self.rfile.read(n) if n else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw.decode("utf-8"))
        except ValueError as e:
            raise ApiError(400, "invalid-json", "request body is not valid JSON: %s" % e) from e
        if not isinstance(body, dict):
            raise ApiError(400, "invalid-json", "request body must be a JSON object")
        return body

    def _discard_body(self):
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        if 0 < n <= MAX_BODY and not self.headers.get("Transfer-Encoding"):
            try:
                self.rfile.read(n)
            except OSError:
                pass

    def _handle(self, method):
        if not self._authorized():
            # Refused, and the connection dropped afterwards. A declared body (bounded) is
            # read first: closing a socket with unread data resets it, and the client would
            # then lose the answer (or get EPIPE while still sending).
            self.close_connection = True
            self._discard_body()
            self._error(401, "unauthorized", "missing or wrong bearer token")
            return
        helper = self.server.helper
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        parts = path.strip("/").split("/")
        try:
            body = self._body() if method in ("POST", "DELETE") else {}
            if path == "/health" and method == "GET":
                with helper.lock:
                    st = helper.state
                    res = {
                        "version": PROTOCOL_VERSION,
                        "status": st["status"],
                        "sessionId": st["sessionId"],
                        "pid": os.getpid(),
                        "host": st["host"],
                        "uptimeSeconds": round(time.time() - st["startedAt"], 1),
                        "kernels": {kid: k.info() for kid, k in helper.kernels.items()},
                        "dask": st.get("dask"),
                    }
                self._send(200, res)
            elif path == "/kernels" and method == "POST":
                self._send(201, helper.start_kernel(body))
            elif path == "/kernels" and method == "GET":
                with helper.lock:
                    self._send(200, {kid: k.info() for kid, k in helper.kernels.items()})
            elif len(parts) == 2 and parts[0] == "kernels" and method == "GET":
                self._send(200, helper.get_kernel(parts[1]).info())
            elif len(parts) == 2 and parts[0] == "kernels" and method == "DELETE":
                self._send(200, helper.delete_kernel(parts[1]))
            elif len(parts) == 3 and parts[0] == "kernels" and parts[2] == "signal" and method == "POST":
                self._send(200, helper.signal_kernel(parts[1], body))
            elif path == "/shutdown" and method == "POST":
                self.close_connection = True
                self._send(200, {"status": "stopping"})  # answer first: the process exits soon
                helper.request_stop("shutdown requested by the agent", 0)
            elif path in ("/health", "/kernels", "/shutdown") or (parts[0] == "kernels" and len(parts) in (2, 3)):
                self._error(405, "method-not-allowed", "%s not allowed on %s" % (method, path))
            else:
                self._error(404, "not-found", "no route %s" % path)
        except ApiError as e:
            self._error(e.status, e.code, e.message)
        except Exception as e:  # noqa: BLE001 - answer, log, keep serving
            log("error in %s %s: %s" % (method, path, traceback.format_exc()))
            self._error(500, "internal", "%s: %s" % (type(e).__name__, e))

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PUT(self):
        self._handle("PUT")


def _int(s):
    try:
        return int(s)
    except (TypeError, ValueError):
        return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description="jupyterlab-remote-cluster remote helper")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the session's control channel")
    serve.add_argument("--session-dir", required=True)
    args = parser.parse_args(argv)
    if args.command != "serve":
        parser.print_help()
        return 2
    if not os.path.isdir(args.session_dir):
        log("session directory %s does not exist" % args.session_dir)
        return 2
    return Helper(args.session_dir).serve()


if __name__ == "__main__":
    sys.exit(main())
