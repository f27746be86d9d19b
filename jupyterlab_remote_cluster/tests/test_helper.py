"""The remote helper (jupyterlab_remote_cluster/remote/helper.py), run for real.

The helper runs as a subprocess in a temporary session directory, with the testbed's
"cluster python" (/opt/rc-testbed/python, which has ipykernel + dask + distributed) when
it exists; kernels are reached with jupyter_client from this venv, as the agent's
provisioner would through its tunnels.
"""
import ast
import http.client
import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

HELPER = Path(__file__).resolve().parent.parent / "remote" / "helper.py"
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


class Session:
    """A helper process and its session directory."""

    def __init__(self, tmp_path, **config):
        self.dir = tmp_path / ("s-" + uuid.uuid4().hex[:6])
        self.dir.mkdir(mode=0o700)
        self.token = uuid.uuid4().hex + uuid.uuid4().hex
        cfg = {"sessionId": "t" + uuid.uuid4().hex[:6], "token": self.token, "python": PY,
               "workdir": str(tmp_path), "kernelEnv": {"RC_TEST_VAR": "hello"},
               "proxyBase": "/remote-cluster/sessions/ab12/proxy", "daskWorkerThreads": 1}
        cfg.update(config)
        cfgfile = self.dir / "config.json"
        cfgfile.write_text(json.dumps(cfg))
        cfgfile.chmod(0o600)
        self.log = open(self.dir.parent / (self.dir.name + ".log"), "wb")
        self.proc = subprocess.Popen(
            [PY, str(HELPER), "serve", "--session-dir", str(self.dir)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
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
        port = self.state()["controlPort"]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=90)
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
def session(tmp_path_factory):
    s = Session(tmp_path_factory.mktemp("helper"))
    s.wait_status("ready", 30)
    yield s
    s.close()


def client_for(conn_file):
    from jupyter_client import BlockingKernelClient

    kc = BlockingKernelClient()
    kc.load_connection_file(conn_file)
    kc.ip = "127.0.0.1"  # the kernel listens on 0.0.0.0; the agent would connect via its tunnel
    kc.start_channels()
    kc.wait_for_ready(timeout=30)
    return kc


def execute(kc, code, timeout=30):
    """Run code; return (reply content, text of execute_result/stream outputs)."""
    outputs = []
    reply = kc.execute_interactive(
        code, timeout=timeout,
        output_hook=lambda m: outputs.append(m["content"].get("text") or m["content"].get("data", {}).get("text/plain", "")),
    )
    return reply["content"], "".join(o for o in outputs if o)


def test_state_file(session):
    st = session.state()
    assert st["status"] == "ready"
    assert st["pid"] == session.proc.pid
    assert st["controlPort"] > 0 and abs(st["heartbeat"] - time.time()) < 30
    assert st["version"] == 1 and st["sessionId"].startswith("t")
    assert stat.S_IMODE((session.dir / "state.json").stat().st_mode) == 0o600
    assert "dask" not in st and st["httpPorts"] == []
    assert not list(session.dir.glob("state.json.tmp*"))


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
    st, res, _ = session.request("POST", "/kernels", {
        "kernelId": "k-dies",
        "argv": [PY, "-c", "import sys; print('no module named fancykernel'); sys.exit(3)"],
    })
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
    conn_file = Path(res["connectionFile"])
    info = json.loads(conn_file.read_text())
    # the key is only in the 0600 file, never on the wire
    assert len(info["key"]) >= 32 and info["key"] not in text and "key" not in res
    assert stat.S_IMODE(conn_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(conn_file.parent.stat().st_mode) & 0o777 == 0o700
    assert stat.S_IMODE(conn_file.parent.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((conn_file.parent / "kernel.log").stat().st_mode) == 0o600
    assert info["signature_scheme"] == "hmac-sha256" and info["transport"] == "tcp"
    assert res["ip"] == "0.0.0.0" and res["kernelId"] == "k1"
    assert set(res["ports"]) == {"shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"}
    assert all(res["ports"][n] == info[n] > 0 for n in res["ports"])
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
        reply, out = execute(kc, "import os; print(os.getcwd(), os.environ['RC_TEST_VAR'], os.environ['RC_REQ_VAR'], oct(os.umask(0o22)))")
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
    assert json.loads(Path(res2["connectionFile"]).read_text())["key"] != info["key"]
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

    cfg.write_text(json.dumps({"token": "x" * 32}))
    cfg.chmod(0o644)  # the token would be readable by other users
    code, st = run()
    assert code == 1 and st["status"] == "failed"
    assert "other users" in st["error"] and "config" in st["error"]

    cfg.chmod(0o600)
    cfg.write_text(json.dumps({"token": "short"}))
    code, st = run()
    assert code == 1 and "token" in st["error"]

    cfg.write_text(json.dumps({"token": "x" * 32, "workdir": str(tmp_path / "missing")}))
    code, st = run()
    assert code == 1 and "missing" in st["error"]

    cfg.write_text(json.dumps({"token": "x" * 32}))
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


def test_dask_and_sigterm(tmp_path):
    s = Session(tmp_path, dask=True)
    try:
        st = s.wait_status("ready", 60)
        dask = st["dask"]
        assert dask["status"] == "running", dask
        port = dask["dashboardPort"]
        path = "/remote-cluster/sessions/ab12/proxy/%d/status" % port
        assert st["httpPorts"] == [{"port": port, "name": "dask-dashboard", "path": path}]
        # the dashboard answers under the proxied prefix
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read().decode(errors="replace")
        assert r.status == 200 and r.getheader("Content-Type").startswith("text/html")
        assert "<html" in body.lower()
        conn.close()
        # the scheduler itself (which runs code for anyone who connects) is on loopback only
        assert dask["schedulerAddress"].startswith("tcp://127.0.0.1:")

        st_, res, _ = s.request("POST", "/kernels", {"kernelId": "kd"})
        assert st_ == 201, res
        kpid = res["pid"]
        kc = client_for(res["connectionFile"])
        try:
            reply, out = execute(kc, "import os; print(os.environ['DASK_SCHEDULER_ADDRESS'])")
            assert out.strip() == dask["schedulerAddress"]
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
    src = HELPER.read_text()
    tree = ast.parse(src, feature_version=(3, 8))
    mods = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mods.add(node.module.split(".")[0])
    assert mods <= set(sys.stdlib_module_names), mods - set(sys.stdlib_module_names)


# --- connectivity modes -------------------------------------------------------------------

class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=90):
        http.client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self.path = path

    def connect(self):
        import socket

        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def unix_request(s, method, path, body=None):
    conn = UnixHTTPConnection(s.state()["controlSocket"])
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Authorization": "Bearer " + s.token,
                                                    "Content-Type": "application/json"})
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    return r.status, (json.loads(text) if text else None)


def test_node_ssh_listens_on_private_unix_sockets_only(tmp_path):
    s = Session(tmp_path, connectivity="node-ssh", dask=False)
    try:
        st = s.wait_status("ready", 30)
        assert st["connectivity"] == "node-ssh" and st["controlPort"] is None
        sock_dir = Path(st["sockDir"])
        assert sock_dir == Path("/tmp/jrc-%d" % os.getuid()) / st["sessionId"]
        for d in (sock_dir, sock_dir.parent):
            assert stat.S_IMODE(d.stat().st_mode) == 0o700 and d.stat().st_uid == os.getuid()
        assert stat.S_IMODE(os.stat(st["controlSocket"]).st_mode) == 0o600
        status, res = unix_request(s, "GET", "/health")
        assert status == 200 and res["status"] == "ready"

        status, res = unix_request(s, "POST", "/kernels", {"kernelId": "ipc1", "transport": "ipc"})
        assert status == 201, res
        assert res["transport"] == "ipc" and res["ip"] == str(sock_dir / "k-ipc1")
        assert sorted(res["sockets"]) == sorted(res["ports"])
        for name, path in res["sockets"].items():
            assert path == "%s-%d" % (res["ip"], res["ports"][name]) and stat.S_ISSOCK(os.stat(path).st_mode)
        from jupyter_client import BlockingKernelClient

        kc = BlockingKernelClient()
        kc.load_connection_file(res["connectionFile"])
        assert kc.transport == "ipc"
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=30)
            content, out = execute(kc, "print(6 * 7)")
            assert content["status"] == "ok" and out.strip() == "42"
        finally:
            kc.stop_channels()
        # reverse needs a tunnel this session does not have; unknown transports are refused
        status, res = unix_request(s, "POST", "/kernels", {"kernelId": "r1", "transport": "ipc", "reverse": True})
        assert status == 409 and res["error"]["code"] == "no-reverse-tunnel"
        status, res = unix_request(s, "POST", "/kernels", {"kernelId": "x1", "transport": "udp"})
        assert status == 400 and res["error"]["code"] == "invalid-transport"
    finally:
        s.close()
    assert not sock_dir.exists(), "the socket directory goes with the helper"


def test_via_login_refuses_ipc_kernels(session):
    status, res, _ = session.request("POST", "/kernels", {"kernelId": "ipc2", "transport": "ipc"})
    assert status == 400 and res["error"]["code"] == "invalid-transport"
    assert "via-login" in res["error"]["message"]


@pytest.mark.parametrize("config, message", [
    ({"connectivity": "carrier-pigeon"}, "connectivity 'carrier-pigeon' is not one of"),
    ({"connectivity": "reverse"}, "connectivity reverse needs the login node's name"),
    ({"connectivity": "auto", "reverseHost": "login; rm -rf ~"}, "is not a host name"),
    ({"connectivity": "node-ssh", "sessionId": "../../etc"}, "sessionId must be"),
])
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
        assert not (Path("/tmp/jrc-%d" % os.getuid()) / json.loads((s.dir / "config.json").read_text())["sessionId"]).exists()
    finally:
        s.close()


def test_auto_listens_for_every_mode_and_survives_a_failed_tunnel(tmp_path):
    s = Session(tmp_path, connectivity="auto", reverseHost="no-such-login-host.invalid", dask=False)
    try:
        st = s.wait_status("ready", 40)
        assert st["controlPort"] > 0 and st["controlSocket"]
        assert st["reverse"]["status"] == "failed" and "Could not resolve hostname" in st["reverse"]["error"]
        assert s.request("GET", "/health")[0] == 200
        assert unix_request(s, "GET", "/health")[0] == 200
    finally:
        s.close()


def test_private_dir_refuses_what_another_user_could_control(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("rc_helper", HELPER)
    helper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helper)
    d = tmp_path / "mine"
    assert helper.private_dir(str(d)) == str(d) and stat.S_IMODE(d.stat().st_mode) == 0o700
    d.chmod(0o755)
    helper.private_dir(str(d))  # ours: made private again
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    link = tmp_path / "link"
    link.symlink_to(d)
    with pytest.raises(ValueError, match="not a directory owned by this user"):
        helper.private_dir(str(link))
    if os.getuid() == 0:
        other = tmp_path / "other"
        other.mkdir(mode=0o700)
        os.chown(other, 65534, 65534)
        with pytest.raises(ValueError, match="not a directory owned by this user"):
            helper.private_dir(str(other))
