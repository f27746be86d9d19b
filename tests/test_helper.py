"""The remote helper (jupyterlab_remote_cluster/remote/helper/, run as a directory: the
agent runs the zipapp made of it), run for real.

The helper runs as a subprocess in a temporary session directory, with the testbed's
"cluster python" (/opt/rc-testbed/python, which has ipykernel + dask + distributed) when
it exists; kernels are reached with jupyter_client from this venv, as the agent's
provisioner would through its tunnels.
"""

import ast
import http.client
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from jupyterlab_remote_cluster.iopub_bridge import IopubBridge

from .tlsutil import make_tls

# A runnable directory (__main__.py + the package jrc_helper): `python HELPER serve ...`
HELPER = Path(__file__).resolve().parents[1] / "jupyterlab_remote_cluster" / "remote" / "helper"
# The testbed's cluster Python (testbed/testbed setup) has ipykernel, dask and distributed,
# as the remote side has; the Dask tests need it.
CLUSTER_PY = "/opt/rc-testbed/python/bin/python"
PY = CLUSTER_PY if os.access(CLUSTER_PY, os.X_OK) else sys.executable


def has_module(python, mod):
    return subprocess.run([python, "-c", "import " + mod], capture_output=True).returncode == 0


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes (its parent has not reaped it yet)
    try:
        return Path("/proc/%d/stat" % pid).read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def descendants(pid):
    """All live descendants of pid (from /proc)."""
    children = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().split(") ", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


@pytest.fixture(scope="session")
def tls_pems(tmp_path_factory):
    return make_tls(tmp_path_factory.mktemp("tls"))


TLS = {}  # filled once per run by the autouse fixture below (Session() needs no fixture argument)


@pytest.fixture(autouse=True)
def _tls(tls_pems):
    TLS.update(tls_pems)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=90):
        http.client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Session:
    """A helper process and its session directory."""

    def __init__(self, tmp_path, env=None, **config):
        self.dir = tmp_path / ("s-" + uuid.uuid4().hex[:6])
        self.dir.mkdir(mode=0o700)
        self.token = uuid.uuid4().hex + uuid.uuid4().hex
        cfg = {
            "sessionId": "t" + uuid.uuid4().hex[:6],
            "token": self.token,
            "python": PY,
            "workdir": str(tmp_path),
            "kernelEnv": {"RC_TEST_VAR": "hello"},
            "tls": dict(TLS),
            "proxyBase": "/remote-cluster/sessions/ab12/proxy",
            "daskWorkerThreads": 1,
        }
        # (a callable is given the session directory: config that names it)
        cfg.update({k: v(self.dir) if callable(v) else v for k, v in config.items()})
        cfgfile = self.dir / "config.json"
        cfgfile.write_text(json.dumps(cfg))
        cfgfile.chmod(0o600)
        self.log = open(self.dir.parent / (self.dir.name + ".log"), "wb")
        self.proc = subprocess.Popen(
            [PY, str(HELPER), "serve", "--session-dir", str(self.dir)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def state(self):
        try:
            return json.loads((self.dir / "state.json").read_text())
        except (OSError, ValueError):
            return {}

    def wait_status(self, status, timeout=60):
        def ok():
            st = self.state()
            if st.get("status") == "failed" and status != "failed":
                raise AssertionError("helper failed: %s\n%s" % (st.get("error"), self.output()))
            return st if st.get("status") == status else None

        return wait_for(ok, timeout, "status %s (%s)" % (status, self.output()[-2000:]))

    def output(self):
        self.log.flush()
        return (self.dir.parent / (self.dir.name + ".log")).read_text(errors="replace")

    def request(self, method, path, body=None, token=True, raw=None, headers=None):
        """One request on the control socket (as the agent sends it under node-ssh)."""
        conn = UnixHTTPConnection(self.state()["controlSocket"])
        h = dict(headers or {})
        if token is True:
            h["Authorization"] = "Bearer " + self.token
        elif token:
            h["Authorization"] = token
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            h["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        text = r.read().decode()
        conn.close()
        return r.status, (json.loads(text) if text else None), text

    def start_kernel(self, kernel_id, **body):
        """Start a kernel (POST /kernels, which must answer 201); a client connected to it."""
        status, res, _ = self.request("POST", "/kernels", {"kernelId": kernel_id, **body})
        assert status == 201, res
        return client_for(str(self.dir / "kernels" / kernel_id / "connection.json"))

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def session(tmp_path_factory, tls_pems):
    TLS.update(tls_pems)
    s = Session(tmp_path_factory.mktemp("helper"))
    s.wait_status("ready", 30)
    yield s
    s.close()


def client_for(conn_file):
    from jupyter_client import BlockingKernelClient

    kc = BlockingKernelClient()
    kc.load_connection_file(conn_file)
    kc.start_channels()
    kc.wait_for_ready(timeout=30)
    return kc


def execute(kc, code, timeout=30):
    """Run code; return (reply content, text of execute_result/stream outputs)."""
    outputs = []
    reply = kc.execute_interactive(
        code,
        timeout=timeout,
        output_hook=lambda m: outputs.append(
            m["content"].get("text") or m["content"].get("data", {}).get("text/plain", "")
        ),
    )
    return reply["content"], "".join(o for o in outputs if o)


def test_state_file(session):
    st = session.state()
    assert st["status"] == "ready"
    assert st["pid"] == session.proc.pid
    assert st["relayPort"] > 0 and abs(st["heartbeat"] - time.time()) < 30
    assert st["version"] == 2 and st["sessionId"].startswith("t")
    # the node-local runtime dir: unpredictable name, 0700, the control socket 0600 in it
    rt = Path(st["runtimeDir"])
    assert rt.parent == Path(os.environ.get("TMPDIR") or "/tmp") and rt.name.startswith("jrc-") and len(rt.name) > 8
    assert stat.S_IMODE(rt.stat().st_mode) == 0o700 and rt.stat().st_uid == os.getuid()
    assert st["controlSocket"] == str(rt / "control.sock")
    assert stat.S_IMODE(os.stat(st["controlSocket"]).st_mode) == 0o600
    for f in ("ca", "cert", "key"):
        assert stat.S_IMODE((rt / "tls" / (f + ".pem")).stat().st_mode) == 0o600
    assert stat.S_IMODE((session.dir / "state.json").stat().st_mode) == 0o600
    assert "dask" not in st and st["httpPorts"] == []
    assert not list(session.dir.glob("state.json.tmp*"))


def test_usage_counts_the_cpu_time_of_what_the_helper_started(tmp_path):
    """The efficiency card's figures: a kernel's CPU burn shows in state.json's usage, by
    the helper's own sampling of its process tree (/proc)."""
    s = Session(tmp_path)
    try:
        s.wait_status("ready", 30)
        kc = s.start_kernel("ku")
        try:
            before = wait_for(lambda: s.state().get("usage"), 30, "a first sample")
            content, _ = execute(
                kc, "import os, time\nos.nice(10)\nt = time.process_time()\nwhile time.process_time() - t < 3: pass"
            )
            assert content["status"] == "ok", content
            done = time.time()
            after = wait_for(
                lambda: (s.state().get("usage") or {}).get("at", 0) > done and s.state()["usage"], 30, "a sample after"
            )
        finally:
            kc.stop_channels()
    finally:
        s.close()
    burnt = after["cpuSeconds"] - before["cpuSeconds"]
    assert 2.7 <= burnt <= 6, (before, after)
    assert after["peakCores"] > 0.2 and after["peakRssBytes"] >= after["rssBytes"] > 10 * 2**20, after
    assert after["since"] <= before["at"] < after["at"]


def test_under_an_address_space_limit_processes_get_fewer_malloc_arenas():
    """Grid Engine's h_vmem is a limit on address space: the session's processes get
    MALLOC_ARENA_MAX=2 under one (a user's own value wins), and nothing without one."""
    import resource
    import subprocess

    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); from jrc_helper.common import fewer_malloc_arenas as f;"
        "print(json.dumps([f({}), f({'MALLOC_ARENA_MAX': '8'})]))"
    )

    def run(limit):
        def preexec():
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        out = subprocess.run(
            [sys.executable, "-c", code, str(HELPER)], capture_output=True, text=True, preexec_fn=preexec
        )
        return json.loads(out.stdout)

    assert run(2**33) == [{"MALLOC_ARENA_MAX": "2"}, {"MALLOC_ARENA_MAX": "8"}]
    assert run(resource.RLIM_INFINITY) == [{}, {"MALLOC_ARENA_MAX": "8"}]


def test_the_end_of_walltime_warning_is_reported_not_fatal(session):
    """Slurm's --signal=B:USR1@<s> reaches the helper (it replaced the batch shell):
    SIGUSR1's default action would end the session at once."""
    assert "endWarning" not in session.state()
    session.proc.send_signal(signal.SIGUSR1)
    st = wait_for(lambda: session.state().get("endWarning"), 10, "the warning in state.json")
    assert st["signal"] == "SIGUSR1" and abs(st["at"] - time.time()) < 10
    time.sleep(1)
    assert session.proc.poll() is None and session.state()["status"] == "ready"
    status, res, _ = session.request("GET", "/health")
    assert status == 200, res


@pytest.mark.parametrize(
    "token",
    [None, "Bearer wrong", "Bearer ", "Basic abc", "bearer {token}", "Bearer {token}x", "{token}"],
)
def test_unauthenticated_requests_are_refused(session, token):
    if token:
        token = token.replace("{token}", session.token)
    calls = [
        ("GET", "/health", None),
        ("POST", "/kernels", {"kernelId": "intruder"}),
        ("POST", "/kernels", {"kernelId": "intruder", "argv": ["/bin/touch", str(session.dir / "pwned")]}),
        ("GET", "/kernels/intruder", None),
        ("POST", "/kernels/intruder/signal", {"signal": "SIGKILL"}),
        ("DELETE", "/kernels/intruder", None),
        ("POST", "/shutdown", None),
        ("GET", "/nope", None),
    ]
    for method, path, body in calls:
        status, res, _ = session.request(method, path, body, token=token or False)
        assert status == 401, (method, path, status, res)
        assert res["error"]["code"] == "unauthorized"
    assert not (session.dir / "kernels" / "intruder").exists()
    assert not (session.dir / "pwned").exists()
    assert "intruder" not in session.state()["kernels"]
    assert session.proc.poll() is None  # /shutdown did nothing
    assert session.request("GET", "/health")[0] == 200


def test_bad_requests(session):
    st, res, _ = session.request("POST", "/kernels", raw=b"{not json")
    assert st == 400 and res["error"]["code"] == "invalid-json"
    st, res, _ = session.request("POST", "/kernels", raw=b"[1, 2]")
    assert st == 400 and res["error"]["code"] == "invalid-json"
    for kid in ["", "../etc", "a b", "x" * 65, "k/1", None, 5]:
        st, res, _ = session.request("POST", "/kernels", {"kernelId": kid})
        assert st == 400 and res["error"]["code"] == "invalid-kernel-id", (kid, res)
    assert not (session.dir / "etc").exists()
    st, res, _ = session.request("POST", "/kernels", {"kernelId": "k-argv", "argv": "python -c 1"})
    assert st == 400 and res["error"]["code"] == "invalid-argv"
    st, res, _ = session.request("POST", "/kernels", {"kernelId": "k-env", "env": {"A": 1}})
    assert st == 400 and res["error"]["code"] == "invalid-env"
    st, res, _ = session.request("GET", "/kernels/nosuch")
    assert st == 404 and res["error"]["code"] == "unknown-kernel"
    st, res, _ = session.request("DELETE", "/kernels/nosuch")
    assert st == 404
    st, res, _ = session.request("GET", "/kernels/bad..id")
    assert st == 400
    st, res, _ = session.request("GET", "/nope")
    assert st == 404 and res["error"]["code"] == "not-found"
    st, res, _ = session.request("GET", "/shutdown")
    assert st == 405
    assert session.proc.poll() is None


def test_kernel_that_dies_reports_its_log(session):
    t0 = time.monotonic()
    st, res, _ = session.request(
        "POST",
        "/kernels",
        {
            "kernelId": "k-dies",
            "argv": [PY, "-c", "import sys; print('no module named fancykernel'); sys.exit(3)"],
        },
    )
    assert st == 500, res
    assert res["error"]["code"] == "kernel-died"
    assert "no module named fancykernel" in res["error"]["message"]
    assert "code 3" in res["error"]["message"]
    assert time.monotonic() - t0 < 10
    st, res, _ = session.request("GET", "/kernels/k-dies")
    assert st == 200 and res["alive"] is False and res["exitCode"] == 3


def test_kernel_lifecycle(session):
    t0 = time.monotonic()
    st, res, text = session.request("POST", "/kernels", {"kernelId": "k1", "env": {"RC_REQ_VAR": "req"}})
    started = time.monotonic() - t0
    assert st == 201, res
    conn_file = session.dir / "kernels" / "k1" / "connection.json"
    info = json.loads(conn_file.read_text())
    # the key is only in the 0600 file, never on the wire
    assert len(info["key"]) >= 32 and info["key"] not in text and "key" not in res
    assert stat.S_IMODE(conn_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(conn_file.parent.stat().st_mode) & 0o777 == 0o700
    assert stat.S_IMODE(conn_file.parent.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((conn_file.parent / "kernel.log").stat().st_mode) == 0o600
    assert info["signature_scheme"] == "hmac-sha256" and info["transport"] == "ipc"
    assert res["kernelId"] == "k1" and res["transport"] == "ipc"
    # the kernel's sockets are in the private runtime dir, and it has no TCP port at all
    assert Path(info["ip"]).parent == Path(session.state()["runtimeDir"])
    assert set(res["ports"]) == {"shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"}
    # IOPub is reached through the kernel's keeper (jrc_iopub_keeper.py), the rest directly
    assert res["iopubKept"] is True and info["jrc_iopub_keeper_port"] > 0
    reached = dict(info, iopub_port=info["jrc_iopub_keeper_port"])
    assert all(res["ports"][n] == reached[n] > 0 for n in res["ports"])
    assert all(res["sockets"][n] == "%s-%d" % (info["ip"], reached[n]) for n in res["ports"])
    assert not tcp_listeners(res["pid"])
    pid = res["pid"]
    assert alive(pid) and os.getpgid(pid) == pid  # own process group
    assert session.state()["kernels"]["k1"] == {"pid": pid, "alive": True}

    # a second start of a running kernel id is refused
    st, res2, _ = session.request("POST", "/kernels", {"kernelId": "k1"})
    assert st == 409

    kc = client_for(str(conn_file))
    try:
        reply, out = execute(kc, "1+1")
        assert reply["status"] == "ok" and out == "2"
        # no debugger: debugpy would listen on a TCP port of the node (jrc_kernel.py)
        kinfo = kc.kernel_info(reply=True)["content"]
        assert "debugger" not in kinfo.get("supported_features", []), kinfo
        # a forked child's output still reaches IOPub (its pipe is a Unix socket now)
        reply, out = execute(
            kc,
            "import os, sys\nif os.fork() == 0:\n    print('from the child'); sys.stdout.flush(); os._exit(0)\nelse:\n    os.wait()\n",
        )
        assert "from the child" in out, out
        reply, out = execute(
            kc,
            "import os; print(os.getcwd(), os.environ['RC_TEST_VAR'], os.environ['RC_REQ_VAR'], oct(os.umask(0o22)))",
        )
        # files the user makes from the kernel follow the user's umask, not the helper's 0600 rule
        umask = os.umask(0o22)
        os.umask(umask)
        assert out.split() == [str(session.dir.parent), "hello", "req", oct(umask)]

        # interrupt a long sleep through the signal route
        msg_id = kc.execute("import time; time.sleep(60)")
        time.sleep(1.0)
        t1 = time.monotonic()
        st, res, _ = session.request("POST", "/kernels/k1/signal", {"signal": "SIGINT"})
        assert st == 200, res
        reply = kc.get_shell_msg(timeout=15)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert time.monotonic() - t1 < 5
        st, res, _ = session.request("POST", "/kernels/k1/signal", {"signal": "SIGSTOP"})
        assert st == 400 and res["error"]["code"] == "invalid-signal"
        # the kernel survived the interrupt
        assert execute(kc, "2+3")[1] == "5"
    finally:
        kc.stop_channels()

    st, res, _ = session.request("GET", "/kernels/k1")
    assert st == 200 and res["alive"] is True and res["exitCode"] is None
    st, res, _ = session.request("DELETE", "/kernels/k1")
    assert st == 200 and res["alive"] is False
    assert not alive(pid)
    assert not conn_file.exists()  # the key does not outlive the kernel
    st, res, _ = session.request("GET", "/kernels/k1")
    assert res["alive"] is False and res["exitCode"] is not None
    assert session.state()["kernels"]["k1"]["alive"] is False

    # a restart (same id, new process) keeps the key, so clients' sessions stay valid
    # behind the agent's unchanged local ports; the ports are new
    st, res, _ = session.request("POST", "/kernels", {"kernelId": "k1"})
    assert st == 201, res
    restarted = json.loads(conn_file.read_text())
    assert restarted["key"] == info["key"]
    assert res["pid"] != pid
    # a new kernel id gets a fresh key
    st, res2, _ = session.request("POST", "/kernels", {"kernelId": "k2"})
    assert st == 201, res2
    assert json.loads((session.dir / "kernels" / "k2" / "connection.json").read_text())["key"] != info["key"]
    assert session.request("DELETE", "/kernels/k2")[0] == 200
    assert session.request("DELETE", "/kernels/k1")[0] == 200
    assert started < 30


def test_private_files_required(tmp_path):
    d = tmp_path / "bad"
    d.mkdir(mode=0o700)
    cfg = d / "config.json"

    def run():
        r = subprocess.run([PY, str(HELPER), "serve", "--session-dir", str(d)], capture_output=True, timeout=30)
        return r.returncode, json.loads((d / "state.json").read_text())

    base = {"token": "x" * 32, "sessionId": "s1", "tls": dict(TLS)}
    cfg.write_text(json.dumps(base))
    cfg.chmod(0o644)  # the token would be readable by other users
    code, st = run()
    assert code == 1 and st["status"] == "failed"
    assert "other users" in st["error"] and "config" in st["error"]

    cfg.chmod(0o600)
    cfg.write_text(json.dumps(dict(base, token="short")))
    code, st = run()
    assert code == 1 and "token" in st["error"]

    cfg.write_text(json.dumps(dict(base, workdir=str(tmp_path / "missing"))))
    code, st = run()
    assert code == 1 and "missing" in st["error"]

    # an agent of the previous protocol gives no TLS material: refused, never run without
    cfg.write_text(json.dumps({k: v for k, v in base.items() if k != "tls"}))
    code, st = run()
    assert code == 1 and "tls" in st["error"]

    cfg.write_text(json.dumps(base))
    d.chmod(0o755)
    code, st = run()
    assert code == 1 and "session directory" in st["error"]


def test_shutdown_route(tmp_path):
    s = Session(tmp_path)
    try:
        s.wait_status("ready", 30)
        st, res, _ = s.request("POST", "/kernels", {"kernelId": "k"})
        assert st == 201, res
        pid = res["pid"]
        st, res, _ = s.request("POST", "/shutdown")
        assert st == 200 and res["status"] == "stopping"
        assert s.proc.wait(15) == 0
        assert not alive(pid)
        st = s.state()
        assert st["status"] == "stopping" and "shutdown" in st["reason"]
        assert st["kernels"]["k"]["alive"] is False
    finally:
        s.close()


def tcp_listeners(*pids):
    """(host, port) of every listening TCP socket of these processes and their descendants."""
    inodes = set()
    for pid in [p for root in pids for p in [root] + descendants(root)]:
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                host, port = f[1].rsplit(":", 1)
                out.append((host, int(port, 16)))
    return out


def plain_probe(port):
    """What a client without TLS gets from 127.0.0.1:port: an HTTP GET and a read."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"GET /json/identity.json HTTP/1.0\r\n\r\n")
        c.settimeout(3)
        try:
            return c.recv(4096)
        except (socket.timeout, ConnectionError):
            return b""


def test_dask_over_tls_with_a_private_dashboard_and_sigterm(tmp_path):
    s = Session(tmp_path, dask=True)
    try:
        st = s.wait_status("ready", 60)
        dask = st["dask"]
        assert dask["status"] == "running", dask
        path = "/remote-cluster/sessions/ab12/proxy/0/status"
        # (and, once the helper has asked it, how many workers and threads it has)
        assert [{k: p[k] for k in ("port", "name", "path")} for p in st["httpPorts"]] == [
            {"port": 0, "name": "dask-dashboard", "path": path}
        ]
        counted = wait_for(
            lambda: s.state()["httpPorts"][0].get("workers") == 1 and s.state()["httpPorts"][0], 20, "count"
        )
        assert counted["threads"] == 1, counted
        # the dashboard answers under the proxied prefix, on a 0600 socket in the runtime dir
        sock = st["httpSockets"]["0"]
        assert Path(sock).parent == Path(st["runtimeDir"]) and stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        conn = UnixHTTPConnection(sock, timeout=30)
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read().decode(errors="replace")
        assert r.status == 200 and r.getheader("Content-Type").startswith("text/html")
        assert "<html" in body.lower()
        conn.close()
        # the scheduler runs code for whoever connects: TLS only, on loopback
        address = dask["schedulerAddress"]
        assert address.startswith("tls://127.0.0.1:") and dask["tls"] is True
        # what listens on TCP: the relay and Dask's scheduler, nanny and worker, nothing
        # else (no dashboard, no worker HTTP server), and none of it answers in the clear
        # (the worker and its nanny come up a moment after the scheduler)
        listeners = wait_for(lambda: len(tcp_listeners(s.proc.pid)) >= 4 and tcp_listeners(s.proc.pid), 30, "worker")
        time.sleep(1)
        assert len(tcp_listeners(s.proc.pid)) == 4, tcp_listeners(s.proc.pid)
        for _host, port in listeners:
            assert b"HTTP/" not in plain_probe(port), port
        # a Dask client without the session's certificate is refused, over TLS or not
        outsider = subprocess.run(
            [
                PY,
                "-c",
                "import sys\nfrom distributed import Client\n"
                "for a in (sys.argv[1], sys.argv[1].replace('tls://', 'tcp://')):\n"
                "    try:\n        Client(a, timeout=5).close(); print('CONNECTED', a)\n"
                "    except Exception as e:\n        print('refused', a, type(e).__name__)\n",
                address,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        )
        assert outsider.stdout.count("refused") == 2 and "CONNECTED" not in outsider.stdout, (
            outsider.stdout + outsider.stderr
        )

        st_, res, _ = s.request("POST", "/kernels", {"kernelId": "kd"})
        assert st_ == 201, res
        kpid = res["pid"]
        kc = client_for(str(s.dir / "kernels" / "kd" / "connection.json"))
        try:
            reply, out = execute(kc, "import os; print(os.environ['DASK_SCHEDULER_ADDRESS'])")
            assert out.strip() == address
            reply, out = execute(
                kc,
                "from distributed import Client\n"
                "c = Client(timeout=30)\n"
                "print(c.submit(lambda x: x + 1, 41).result(timeout=30), sum(c.gather(c.map(abs, [-1, -2, 3]))))\n"
                "print(c.dashboard_link)",
                timeout=60,
            )
            assert reply["status"] == "ok", reply
            lines = out.split()
            assert lines[:2] == ["42", "6"], out
            assert lines[2] == path  # links in notebooks point at the proxied dashboard
            # the notebook's own LocalCluster works as anywhere else, but on the session's
            # TLS (in the clear on 127.0.0.1 it would run code for any user of the node),
            # its scratch space in the runtime dir, its dashboard offered under label 1
            reply, out = execute(
                kc,
                "from distributed import LocalCluster, Client\n"
                "lc = LocalCluster(n_workers=1, threads_per_worker=1)\n"
                "lcc = Client(lc)\n"
                "print(lc.scheduler_address.split(':')[0], lcc.submit(lambda: 7).result(timeout=30))\n"
                "print(os.environ['DASK_TEMPORARY_DIRECTORY'], lc.dashboard_link)",
                timeout=90,
            )
            assert reply["status"] == "ok", reply
            assert out.split()[:2] == ["tls", "7"], out
            assert Path(out.split()[2]).parent == Path(st["runtimeDir"])
            assert out.split()[3] == path.replace("/0/status", "/1/status"), out
            offered = wait_for(
                # (the scan may find the scheduler before its worker joined: wait for the count)
                lambda: [p for p in s.state().get("httpPorts", []) if p["port"] == 1 and p["workers"] == 1] or None,
                20,
                "dashboard 1",
            )
            assert offered == [
                {
                    "port": 1,
                    "name": "dask-notebook",
                    "path": path.replace("/0/status", "/1/status"),
                    "stripPrefix": True,
                    "pid": kpid,
                    "kernelId": "kd",
                    "workers": 1,
                    "threads": 1,
                }
            ], offered
            sock = s.state()["httpSockets"]["1"]
            assert Path(sock).parent == Path(st["runtimeDir"]) / "dashboards"
            # While the cluster computes, its identity still answers (Dask's own answers 500
            # while a heartbeat holds task metrics: the preload mends it), and the dashboard
            # stays offered through several scans (a scan that misses it twice withdraws it).
            reply, _ = execute(kc, "import time\nbusy = lcc.map(time.sleep, [0.02] * 300, pure=False)")
            assert reply["status"] == "ok", reply
            answers = []
            for _ in range(16):
                conn = UnixHTTPConnection(sock, timeout=30)
                conn.request("GET", "/json/identity.json")  # served at its root: the agent strips the prefix
                r = conn.getresponse()
                answers.append((r.status, r.read()))
                conn.close()
                assert any(p["port"] == 1 for p in s.state()["httpPorts"]), s.state()["httpPorts"]
                time.sleep(0.3)
            assert [a for a in answers if a[0] != 200] == [], answers
            assert {json.loads(body)["type"] for _, body in answers} == {"Scheduler"}
            reply, out = execute(kc, "print(len(lcc.gather(busy)))", timeout=60)
            assert out.split() == ["300"], out
            reply, out = execute(kc, "lcc.close(); lc.close()", timeout=60)
            assert reply["status"] == "ok", reply
            wait_for(lambda: not any(p["port"] == 1 for p in s.state().get("httpPorts", [])), 20, "withdrawal")
            assert not Path(sock).exists() and "1" not in s.state()["httpSockets"]
        finally:
            kc.stop_channels()

        children = descendants(s.proc.pid)
        assert kpid in children and len(children) >= 3  # kernel, scheduler, worker (+ nanny child)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        code = s.proc.wait(20)
        assert code == 128 + signal.SIGTERM
        assert time.monotonic() - t0 < 10
        wait_for(lambda: not any(alive(p) for p in children), 10, "children gone: %s" % children)
        st = s.state()
        assert st["status"] == "stopping" and "SIGTERM" in st["reason"]
        assert st["kernels"]["kd"]["alive"] is False and st["httpPorts"] == []
        assert st["dask"]["status"] == "stopped"
        assert not Path(st["runtimeDir"]).exists()  # sockets, TLS files, scratch: gone
    finally:
        s.close()


def test_workers_on_the_other_hosts_of_the_allocation(tmp_path):
    """Several nodes (docs/scale-out.md), played on one machine: the hosts command lists
    this host and another; the helper keeps its own worker and starts `helper worker` for
    the other through the launcher line, which here runs it locally and records what it was
    given. Both workers join over the session's TLS; the scheduler listens beyond loopback;
    SIGTERM stops the remote worker too and its private directory goes."""
    me = socket.gethostname()
    launched = tmp_path / "launched"

    def workers(session_dir):
        command = "%s %s worker --session-dir %s --name {name} --nthreads {threads}" % (PY, HELPER, session_dir)
        return {
            "hosts": "printf '%%s\\n' %s other-node %s" % (me, me),
            "launch": "echo {host} {threads} {name} >> %s && exec %s" % (launched, command),
        }

    s = Session(tmp_path, dask=True, daskWorkerThreads=2, workers=workers)
    try:
        st = s.wait_status("ready", 90)
        dask = st["dask"]
        assert dask["status"] == "running", dask
        assert dask["workers"] == [{"name": "rc-worker-0", "host": me}, {"name": "rc-worker-1", "host": "other-node"}]
        assert launched.read_text().split() == ["other-node", "2", "rc-worker-1"]
        assert not dask["schedulerAddress"].startswith("tls://127.0.0.1:"), dask
        kc = s.start_kernel("kw")
        try:
            reply, out = execute(
                kc,
                "from distributed import Client\n"
                "c = Client(timeout=30); c.wait_for_workers(2, timeout=60)\n"
                "w = c.scheduler_info()['workers'].values()\n"
                "print(sorted(x['name'] for x in w), sorted(x['nthreads'] for x in w))",
                timeout=120,
            )
            assert reply["status"] == "ok", reply
            assert out.strip() == "['rc-worker-0', 'rc-worker-1'] [2, 2]", out
        finally:
            kc.stop_channels()
        remote = {}
        for p in descendants(s.proc.pid):
            argv = Path("/proc/%d/cmdline" % p).read_text().split("\0")
            if "rc-worker-1" in argv:
                remote[p] = argv
        # the remote worker's private directory: where its Dask worker keeps its scratch
        local_dirs = [a[a.index("--local-directory") + 1] for a in remote.values() if "--local-directory" in a]
        assert local_dirs, remote
        private = Path(local_dirs[0]).parent
        assert private != Path(st["runtimeDir"]) and (private / "tls" / "key.pem").exists()
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(30) == 128 + signal.SIGTERM
        wait_for(lambda: not any(alive(p) for p in remote), 15, "remote worker gone")
        wait_for(lambda: not private.exists(), 10, "the remote worker's private directory removed")
    finally:
        s.close()


def test_dask_failure_is_not_fatal(tmp_path):
    # an interpreter without `distributed` (the project venv has none): Dask fails, kernels work
    venv_py = sys.executable
    # A precondition, not a skip: the project venv must stay without distributed.
    assert not has_module(venv_py, "distributed"), "this test needs an interpreter without distributed"
    s = Session(tmp_path, dask=True, python=venv_py)
    try:
        st = s.wait_status("ready", 60)
        assert st["dask"]["status"] == "failed"
        assert "distributed" in st["dask"]["error"]
        assert st["httpPorts"] == []
        code, res, _ = s.request("POST", "/kernels", {"kernelId": "k"})
        assert code == 201, res
        assert "DASK_SCHEDULER_ADDRESS" not in json.dumps(res)
    finally:
        s.close()


def test_helper_is_stdlib_only_and_py38():
    files = sorted(HELPER.rglob("*.py"))
    assert HELPER / "__main__.py" in files and HELPER / "jrc_helper" / "protocol.py" in files
    mods = set()
    for f in files:
        tree = ast.parse(f.read_text(), filename=str(f), feature_version=(3, 8))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:  # (relative: the package's own)
                mods.add(node.module.split(".")[0])
    allowed = set(sys.stdlib_module_names) | {"jrc_helper"}
    assert mods <= allowed, mods - allowed
    # the agent reads the protocol version from the files without running them: one line
    versions = [(f.name, line) for f in files for line in f.read_text().splitlines() if line.startswith("PROTOCOL_")]
    assert versions == [("protocol.py", "PROTOCOL_VERSION = 2")]


def test_the_helper_runs_as_a_zipapp_with_its_companions_next_to_it(tmp_path, monkeypatch):
    """What the agent uploads: helper.pyz (the *.py files of remote/helper/, with paths
    relative to it), and jrc_kernel.py, jrc_iopub_keeper.py, jrc_dask_private.py, jrc_carry.py
    next to it."""
    import zipfile

    code = tmp_path / "remote-d1"
    code.mkdir()
    with zipfile.ZipFile(code / "helper.pyz", "w") as z:
        for f in sorted(HELPER.rglob("*.py")):
            z.write(f, f.relative_to(HELPER).as_posix())
    for name in ("jrc_kernel.py", "jrc_iopub_keeper.py", "jrc_dask_private.py", "jrc_carry.py"):
        shutil.copy(HELPER.parent / name, code / name)
    monkeypatch.setitem(globals(), "HELPER", code / "helper.pyz")
    s = Session(tmp_path, connectivity="node-ssh", dask=False)
    try:
        s.wait_status("ready", 30)
        status, res, _ = s.request("GET", "/health")
        assert status == 200 and res["version"] == 2
        kc = s.start_kernel("z1")
        try:
            # the kernel's launcher is the companion next to helper.pyz
            kernel_log = (s.dir / "kernels" / "z1" / "kernel.log").read_text()
            assert " %s -f " % (code / "jrc_kernel.py") in kernel_log.splitlines()[0], kernel_log
            content, out = execute(kc, "print(6 * 7)")
            assert content["status"] == "ok" and out.strip() == "42"
        finally:
            kc.stop_channels()
    finally:
        s.close()


# --- elastic workers (dask-jobqueue) ------------------------------------------------------


def jobqueue_config(session_dir, cancel):
    return {
        "config": "slurm",
        "name": "jrc-w-t1",
        "cancel": cancel,
        "launcher": "%s %s job-worker --session-dir %s" % (PY, HELPER, session_dir),
        "queue": "debug",
        "walltime": "00:20:00",
        "cores": 2,
        "memory": "2G",
        "setup": ["module load python/3.11", "export RC_SETUP=1"],
        "extra": {"job-extra-directives": ["--comment=jrc-w-t1"]},
    }


def test_worker_jobs_are_preconfigured_join_on_tls_and_are_cancelled_with_the_session(tmp_path):
    """The kernels' dask-jobqueue config, the launcher a worker job runs (played here as
    a plain process: the worker joins the session's scheduler over TLS with its files in a
    private dir of its own), and the cancel command run when the helper stops."""
    marker = tmp_path / "cancelled"
    s = Session(
        tmp_path, dask=True, walltimeSeconds=3600, jobqueue=lambda d: jobqueue_config(d, "echo $0 > %s" % marker)
    )
    try:
        st = s.wait_status("ready", 60)
        assert st["elastic"] is True and st["dask"]["status"] == "running", st
        # the session's end by the node's clock: what the worker jobs' lifetime ends at
        assert st["endsAt"] == st["startedAt"] + 3600, st
        # listens beyond loopback: worker jobs on other nodes join it (mutual TLS only)
        assert not st["dask"]["schedulerAddress"].startswith("tls://127.0.0.1:"), st["dask"]
        kc = s.start_kernel("kj")
        try:
            reply, out = execute(
                kc,
                "import dask, json\nprint(json.dumps({k: dask.config.get('jobqueue.slurm.' + k) for k in\n"
                "  ('name', 'python', 'queue', 'walltime', 'cores', 'memory', 'log-directory', 'scheduler-options',\n"
                "   'job-script-prologue', 'job-extra-directives')}))",
            )
            assert reply["status"] == "ok", reply
            assert json.loads(out) == {
                "name": "jrc-w-t1",
                "python": "%s %s job-worker --session-dir %s" % (PY, HELPER, s.dir),
                "queue": "debug",
                "walltime": "00:20:00",
                "cores": 2,
                "memory": "2G",
                "log-directory": str(s.dir / "jobqueue"),
                "scheduler-options": {"protocol": "tls"},
                "job-script-prologue": ["module load python/3.11", "export RC_SETUP=1"],
                "job-extra-directives": ["--comment=jrc-w-t1"],
            }
            # a worker job's command line, as the agent's Add workers writes it
            job = subprocess.Popen(
                [PY, str(HELPER), "job-worker", "--session-dir", str(s.dir), "-m", "distributed.cli.dask_worker"]
                + ["--scheduler-file", str(s.dir / "dask-scheduler.json"), "--name", "jrc-w-t1-job", "--nthreads", "1"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            try:
                # the worker stops itself before the session's end, whatever the job's walltime
                worker_args = wait_for(
                    lambda: next(
                        (a for a in map(cmdline, descendants(job.pid)) if "distributed.cli.dask_worker" in a), None
                    ),
                    30,
                    "the job's dask worker",
                )
                lifetime = worker_args[worker_args.index("--lifetime") + 1]
                assert 3500 <= int(lifetime.rstrip("s")) <= 3570, worker_args
                reply, out = execute(
                    kc,
                    "from distributed import Client\nc = Client(timeout=30)\nc.wait_for_workers(2, timeout=60)\n"
                    "print(sorted(w['name'] for w in c.scheduler_info()['workers'].values()))",
                    timeout=90,
                )
                assert reply["status"] == "ok", reply
                assert out.strip() == "['jrc-w-t1-job', 'rc-worker-0']", out
                private = [
                    p
                    for p in Path(tempfile.gettempdir()).glob("jrc-*")
                    if p != Path(st["runtimeDir"]) and (p / "tls" / "key.pem").exists()
                ]
                assert private and all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in private), private
            finally:
                job.terminate()
                assert job.wait(30) is not None
        finally:
            kc.stop_channels()
        # only distributed's worker: the launcher runs nothing else
        bad = subprocess.run(
            [PY, str(HELPER), "job-worker", "--session-dir", str(s.dir), "-m", "http.server"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert bad.returncode == 2 and "distributed.cli.dask_worker only" in bad.stderr
    finally:
        s.close()
    assert marker.read_text().strip() == "sh", "the helper ran the cancel command when it stopped"


def cmdline(pid):
    try:
        return Path("/proc/%d/cmdline" % pid).read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def test_a_worker_job_starts_no_worker_when_the_session_is_about_to_end(tmp_path):
    d = tmp_path / "s"
    d.mkdir(mode=0o700)
    (d / "config.json").write_text(json.dumps({"tls": TLS}))
    (d / "config.json").chmod(0o600)
    (d / "state.json").write_text(json.dumps({"endsAt": time.time() + 80}))
    r = subprocess.run(
        [PY, str(HELPER), "job-worker", "--session-dir", str(d), "-m", "distributed.cli.dask_worker"]
        + ["--scheduler-file", str(d / "dask-scheduler.json")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0 and "the session ends in " in r.stderr, r.stderr


def test_a_notebooks_jobqueue_jobs_are_reported_until_it_closes_them(tmp_path):
    """Real dask-jobqueue in a kernel, its batch commands played by echo: every job it
    submits shows in state.json `workerJobs`, and leaves it when the cluster closes it."""
    if not has_module(PY, "dask_jobqueue"):
        pytest.fail("the cluster python %s has no dask_jobqueue (testbed/testbed setup installs it)" % PY)
    s = Session(tmp_path, jobqueue=lambda d: jobqueue_config(d, "true"))
    try:
        s.wait_status("ready", 60)
        kc = s.start_kernel("kq")
        try:
            reply, _ = execute(
                kc,
                "from dask_jobqueue import SLURMCluster\nfrom dask_jobqueue.slurm import SLURMJob\n"
                "SLURMJob.submit_command = 'echo Submitted batch job 4242'\nSLURMJob.cancel_command = 'true'\n"
                "cluster = SLURMCluster()\ncluster.scale(1)",
                timeout=60,
            )
            assert reply["status"] == "ok", reply
            wait_for(lambda: s.state().get("workerJobs") == ["4242"], 30, "the job reported")
            reply, _ = execute(kc, "cluster.close()", timeout=60)
            assert reply["status"] == "ok", reply
            wait_for(lambda: s.state().get("workerJobs") == [], 30, "the closed job withdrawn")
        finally:
            kc.stop_channels()
    finally:
        s.close()


def test_a_malformed_jobqueue_config_fails_the_helper_clearly(tmp_path):
    s = Session(tmp_path, jobqueue={"config": "slurm", "cores": "2"})
    try:
        st = s.wait_status("failed", 30)
        assert "jobqueue must hold" in st["error"], st["error"]
    finally:
        s.close()


# --- connectivity modes -------------------------------------------------------------------


def test_node_ssh_listens_on_private_unix_sockets_only(tmp_path):
    s = Session(tmp_path, connectivity="node-ssh", dask=False)
    try:
        st = s.wait_status("ready", 30)
        assert st["connectivity"] == "node-ssh" and "relayPort" not in st
        assert not tcp_listeners(s.proc.pid)
        status, res, _ = s.request("GET", "/health")
        assert status == 200 and res["status"] == "ready" and res["version"] == 2

        status, res, _ = s.request("POST", "/kernels", {"kernelId": "ipc1"})
        assert status == 201, res
        rt = Path(st["runtimeDir"])
        for path in res["sockets"].values():
            assert Path(path).parent == rt and stat.S_ISSOCK(os.stat(path).st_mode)
        kc = client_for(str(s.dir / "kernels" / "ipc1" / "connection.json"))
        try:
            content, out = execute(kc, "print(6 * 7)")
            assert content["status"] == "ok" and out.strip() == "42"
        finally:
            kc.stop_channels()
        # reverse needs a tunnel this session does not have; TCP kernels are no more
        status, res, _ = s.request("POST", "/kernels", {"kernelId": "r1", "reverse": True})
        assert status == 409 and res["error"]["code"] == "no-reverse-tunnel"
        status, res, _ = s.request("POST", "/kernels", {"kernelId": "x1", "transport": "tcp"})
        assert status == 400 and res["error"]["code"] == "invalid-transport"
    finally:
        s.close()
    assert not rt.exists(), "the runtime directory goes with the helper"


@pytest.mark.parametrize(
    "config, message",
    [
        ({"connectivity": "carrier-pigeon"}, "connectivity 'carrier-pigeon' is not one of"),
        ({"connectivity": "reverse"}, "connectivity reverse needs the login node's name"),
        ({"connectivity": "auto", "reverseHost": "login; rm -rf ~"}, "is not a host name"),
        ({"connectivity": "node-ssh", "sessionId": "../../etc"}, "sessionId must be"),
    ],
)
def test_bad_connectivity_config_fails_clearly(tmp_path, monkeypatch, config, message):
    monkeypatch.delenv("SLURM_SUBMIT_HOST", raising=False)
    s = Session(tmp_path, **config)
    try:
        st = s.wait_status("failed", 30)
        assert message in st["error"], st["error"]
    finally:
        s.close()


def test_reverse_tunnel_failure_fails_the_session_with_the_ssh_error(tmp_path):
    t = time.monotonic()
    s = Session(tmp_path, connectivity="reverse", reverseHost="no-such-login-host.invalid", dask=False)
    try:
        st = s.wait_status("failed", 40)
        assert "reverse tunnel to no-such-login-host.invalid failed" in st["error"], st["error"]
        assert "Could not resolve hostname" in st["error"], st["error"]
        assert time.monotonic() - t < 30
        assert s.proc.wait(10) == 1
        assert not Path(st["runtimeDir"]).exists()
    finally:
        s.close()


def test_auto_listens_for_every_mode_and_survives_a_failed_tunnel(tmp_path):
    s = Session(tmp_path, connectivity="auto", reverseHost="no-such-login-host.invalid", dask=False)
    try:
        st = s.wait_status("ready", 40)
        assert st["relayPort"] > 0 and st["controlSocket"]
        assert st["reverse"]["status"] == "failed" and "Could not resolve hostname" in st["reverse"]["error"]
        assert s.request("GET", "/health")[0] == 200
        with Relay(s) as r:
            assert r.http("GET", "/health")[0] == 200
    finally:
        s.close()


def test_runtime_dir_steps_around_what_another_user_put_there(tmp_path, request, monkeypatch):
    import importlib

    monkeypatch.syspath_prepend(str(HELPER))
    common = importlib.import_module("jrc_helper.common")
    # a short base, as /tmp is (pytest's tmp_path can be longer than the socket-path budget)
    base = Path(tempfile.mkdtemp(prefix="jrc-t-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    # what another user could plant at the old, predictable names
    (base / ("jrc-%d" % os.getuid())).write_text("")
    (base / "jrc-x").symlink_to(tmp_path)
    assert len(str(base)) < 40
    made = {common.make_runtime_dir([str(base)]) for _ in range(20)}
    assert len(made) == 20
    for d in made:
        p = Path(d)
        assert p.parent == base and not p.is_symlink() and stat.S_IMODE(p.stat().st_mode) == 0o700
    # bases that are missing, relative or too long for socket paths are skipped
    long_base = base / ("x" * 70)
    long_base.mkdir()
    d = common.make_runtime_dir([None, "relative", str(long_base), str(tmp_path / "missing"), str(base)])
    assert Path(d).parent == base
    with pytest.raises(RuntimeError, match="no private directory"):
        common.make_runtime_dir([str(tmp_path / "missing")])


# --- the relay (via-login, auto) ------------------------------------------------------------


def tls_context(tmp_path, pems=None, name="jrc-t"):
    """A client context as the agent has it: the session CA, and a client certificate."""
    pems = pems or TLS
    d = tmp_path / ("client-" + uuid.uuid4().hex[:6])
    d.mkdir()
    for k, v in pems.items():
        (d / (k + ".pem")).write_text(v)
    ctx = ssl.create_default_context(cafile=str(d / "ca.pem"))
    ctx.check_hostname = True
    if pems.get("cert"):
        ctx.load_cert_chain(str(d / "cert.pem"), str(d / "key.pem"))
    return ctx


class Relay:
    """Connections to a helper's relay, as the agent opens them."""

    def __init__(self, s, ctx=None, token=None):
        self.s = s
        self.port = s.state()["relayPort"]
        self.ctx = ctx or tls_context(s.dir.parent)
        self.token = s.token if token is None else token

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def connect(self, target):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=15)
        t = self.ctx.wrap_socket(raw, server_hostname="jrc-t")
        t.sendall(("CONNECT %s HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n" % (target, self.token)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = t.recv(1)
            if not chunk:
                break
            head += chunk
        status = int(head.split(b" ", 2)[1]) if head else 0
        return status, t, head

    def http(self, method, path):
        status, t, head = self.connect("control")
        assert status == 200, head
        t.sendall(
            (
                "%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 0\r\n\r\n"
                % (method, path, self.s.token)
            ).encode()
        )
        r = http.client.HTTPResponse(t)
        r.begin()
        body = r.read()
        t.close()
        return r.status, json.loads(body or b"{}")


def test_relay_wants_the_session_certificate_then_the_token(session, tmp_path):
    with Relay(session) as r:
        status, res = r.http("GET", "/health")
        assert status == 200 and res["status"] == "ready"
        st, t, head = r.connect("nothing/here")
        assert st == 404
        st, t, head = r.connect("kernel/nosuch/shell")
        assert st == 404
    with Relay(session, token="wrong" * 10) as r:
        st, t, head = r.connect("control")
        assert st == 401 and b"bearer" in head.lower() + t.recv(200)
    # no client certificate, or one of another CA: the handshake fails before any byte
    no_cert = tls_context(tmp_path, {"ca": TLS["ca"]})
    other = make_tls(tmp_path / "other", name="jrc-t")
    foreign = tls_context(tmp_path, dict(other, ca=TLS["ca"]))
    for ctx in (no_cert, foreign):
        # (TLS 1.3: the client finishes first; the server's alert arrives with the next read)
        try:
            st, t, head = Relay(session, ctx=ctx).connect("control")
        except (ssl.SSLError, ConnectionError):
            continue
        assert (st, head) == (0, b""), head
    # a server without the session's certificate is not believed either (the agent pins it)
    impostor_ca = tls_context(tmp_path, {"ca": other["ca"], "cert": TLS["cert"], "key": TLS["key"]})
    with pytest.raises(ssl.SSLCertVerificationError):
        Relay(session, ctx=impostor_ca).connect("control")
    # and in the clear it is not HTTP at all
    assert b"HTTP/" not in plain_probe(session.state()["relayPort"])


def test_kernel_through_the_relay(session, tmp_path):
    """Five local ports, each connection relayed (TLS, CONNECT kernel/<id>/<channel>) to
    the kernel's Unix sockets, as the agent does for via-login."""
    from jupyter_client import BlockingKernelClient

    st, res, _ = session.request("POST", "/kernels", {"kernelId": "kr"})
    assert st == 201, res
    info = json.loads((session.dir / "kernels" / "kr" / "connection.json").read_text())
    relay = Relay(session)
    names = {
        "shell_port": "shell",
        "iopub_port": "iopub",
        "stdin_port": "stdin",
        "control_port": "control",
        "hb_port": "hb",
    }
    servers = []

    def serve(listener, channel):
        while True:
            try:
                c, _ = listener.accept()
            except OSError:
                return
            status, t, head = relay.connect("kernel/kr/" + channel)
            assert status == 200, head
            t.setblocking(False)
            c.setblocking(False)
            threading.Thread(target=pump, args=(c, t), daemon=True).start()

    local = {}
    for port_name, channel in names.items():
        listener = socket.create_server(("127.0.0.1", 0))
        servers.append(listener)
        local[port_name] = listener.getsockname()[1]
        threading.Thread(target=serve, args=(listener, channel), daemon=True).start()
    # the relayed IOPub is the kernel's keeper: jupyter_client subscribes to a bridge, as
    # the provisioner arranges
    bridge = IopubBridge(logging.getLogger("test"))
    bridge.start(local["iopub_port"], {"shell": local["shell_port"], "stdin": local["stdin_port"]})
    kc = BlockingKernelClient()
    kc.load_connection_info(
        dict(
            local,
            iopub_port=bridge.port,
            shell_port=bridge.shell_port,
            stdin_port=bridge.stdin_port,
            ip="127.0.0.1",
            transport="tcp",
            key=info["key"],
            signature_scheme="hmac-sha256",
        )
    )
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=30)
        content, out = execute(kc, "import socket; print(sum(range(10)))")
        assert content["status"] == "ok" and out.strip() == "45"
    finally:
        kc.stop_channels()
        bridge.close()
        for srv in servers:
            srv.shutdown(socket.SHUT_RDWR)  # wakes its accept() (close() alone does not)
            srv.close()
        session.request("DELETE", "/kernels/kr")


def pump(a, b):
    """Copy both ways between two non-blocking sockets (one may be TLS) until one closes."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ, b)
    sel.register(b, selectors.EVENT_READ, a)
    try:
        while True:
            ready = sel.select(timeout=60) or [(k, 0) for k in []]
            if not ready:
                return
            for key, _ in ready:
                while True:
                    try:
                        data = key.fileobj.recv(65536)
                    except (ssl.SSLWantReadError, BlockingIOError):
                        break
                    if not data:
                        return
                    key.data.setblocking(True)
                    key.data.sendall(data)
                    key.data.setblocking(False)
    except OSError:
        return
    finally:
        a.close()
        b.close()
