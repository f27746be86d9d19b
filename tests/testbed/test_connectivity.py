"""Connectivity modes on the testbed: node3 (partition sshonly) accepts only SSH from the
cluster network, node4 (partition isolated) accepts nothing but can reach login:22.

- node-ssh: a kernel on node3 over Unix sockets in a private dir, reached by an SSH hop
  login -> node3; the dashboard through the proxy; bob cannot connect to the sockets.
- via-login to node3 fails with a clear error.
- reverse: a kernel on node4 through the job's tunnel to login; a broken tunnel fails the
  session quickly with ssh's message.
- auto: node-ssh on node3, reverse on node4, remembered per profile.
- cancel removes the sockets, the tunnel and its login-side directory; after a SIGKILL
  of the helper and its tunnel, the agent removes that directory when the job ends.
"""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from jupyterlab_remote_cluster.agent_process import get_agent

from .conftest import TESTBED, agent_call, agent_kernel_client, proxy_get, read_testbed_env, squeue

RES = {"walltime": "00:20:00", "cpus": 1, "memory": "500M"}


def profiles(ssh_config: str) -> list:
    def p(name, partition, mode, dask=False, **extra):
        d = {
            "name": name,
            "title": name,
            "ssh": {"host": "login", "configFile": ssh_config},
            "scheduler": "slurm",
            "resources": dict(RES, partition=partition),
            "python": "/opt/rc-testbed/python/bin/python",
            "dask": dask,
            "connectivity": mode,
        }
        d.update(extra)
        return d

    return [
        # the conftest's profile, kept: other test modules may share this agent
        {
            "name": "testbed",
            "title": "Testbed (Slurm)",
            "ssh": {"host": "login", "configFile": ssh_config},
            "scheduler": "slurm",
            "resources": {"partition": "debug", "walltime": "01:00:00", "cpus": 1, "memory": "1G"},
            "python": "/opt/rc-testbed/python/bin/python",
            "dask": True,
        },
        p("conn-node-ssh", "sshonly", "node-ssh", dask=True),
        p("conn-via-login-node3", "sshonly", "via-login"),
        p("conn-reverse", "isolated", "reverse", dask=True),
        # a login node name that does not exist: the tunnel cannot come up
        p("conn-reverse-broken", "isolated", "reverse", reverseHost="no-such-login"),
        # the profile's reverseHost wins over the job's submit host (login's address here)
        p("conn-reverse-host", "isolated", "reverse", reverseHost="198.18.2.1"),
        p("conn-node-ssh-lite", "sshonly", "node-ssh"),
        p("conn-reverse-lite", "isolated", "reverse"),
        p("conn-auto-node3", "sshonly", "auto"),
        p("conn-auto-node4", "isolated", "auto"),
    ]


@pytest.fixture(scope="module")
def agent_dirs(jupyter_dirs):
    env = read_testbed_env()
    f = Path(jupyter_dirs["JUPYTERLAB_SETTINGS_DIR"]) / "jupyterlab-remote-cluster" / "profiles.jupyterlab-settings"
    f.write_text(json.dumps({"profiles": profiles(env["RC_TESTBED_SSH_CONFIG"])}, indent=1))
    yield jupyter_dirs


def on(host, *cmd, user="alice", check=True):
    r = subprocess.run(
        [str(TESTBED), "exec", host, "--user", user, "--", *cmd], capture_output=True, text=True, timeout=60
    )
    if check:
        assert r.returncode == 0, f"{cmd} on {host}: {r.stdout}{r.stderr}"
    return r


def start_session(profile, timeout=120):
    code, s = agent_call("POST", "/api/v1/sessions", {"profile": profile})
    assert code == 201, s
    deadline = time.monotonic() + timeout
    while s["state"] not in ("running", "ended") and time.monotonic() < deadline:
        time.sleep(1)
        s = agent_call("GET", f"/api/v1/sessions/{s['id']}")[1]
    return s


def wait_dashboard(sid, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = agent_call("GET", f"/api/v1/sessions/{sid}")[1]
        dash = [p for p in s.get("httpPorts") or [] if p["name"] == "dask-dashboard"]
        if dash:
            return dash[0]
        time.sleep(2)
    pytest.fail(f"no dashboard reported: {s}")


def cancel(sid):
    agent_call("DELETE", f"/api/v1/sessions/{sid}")


def start_kernel(sid):
    code, conn = agent_call("POST", f"/api/v1/sessions/{sid}/kernels", {})
    return code, conn


def execute(conn, code_text, timeout=60):
    kc = agent_kernel_client(conn)
    try:
        out = []

        def hook(msg):
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])

        reply = kc.execute_interactive(code_text, timeout=timeout, output_hook=hook)
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(out).strip()
    finally:
        kc.stop_channels()


def helper_state(sid):
    home = on("login", "sh", "-c", 'printf %s "$HOME"').stdout
    return json.loads(on("login", "cat", f"{home}/.jupyter-remote-cluster/sessions/{sid}/state.json").stdout)


CONNECT = (
    "import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
    "try:\n    s.connect(sys.argv[1])\nexcept OSError as e:\n    print(type(e).__name__); sys.exit(3)\nprint('connected')"
)


def kernel_under(s, node, mode):
    """A kernel in running session `s`, which must be on `node` through `mode`."""
    assert s["state"] == "running" and s["node"] == node, s
    assert s.get("connectivity") == mode
    code, conn = start_kernel(s["id"])
    assert code == 201, conn
    assert execute(conn, "import socket; print(socket.gethostname())") == node
    return conn


def kernel_sockets(listing):
    """The kernel channel sockets in a directory listing (ipykernel names them <ip>-<n>)."""
    return [n for n in listing if re.fullmatch(r"k\d+-\d+", n)]


def bob_connect(host, path):
    return on(host, "/opt/rc-testbed/python/bin/python", "-c", CONNECT, path, user="bob", check=False)


def test_node_ssh_kernel_on_node3_private_sockets_dashboard_and_cleanup(agent_dirs):
    s = start_session("conn-node-ssh")
    sid = s["id"]
    try:
        kernel_under(s, "node3", "node-ssh")

        st = helper_state(sid)
        sock_dir, control = st["runtimeDir"], st["controlSocket"]
        assert "relayPort" not in st, "node-ssh: no TCP endpoint"
        # private: 0700, alice's, an unpredictable name; the kernel's sockets are in there
        assert re.fullmatch(r"/tmp/jrc-\w{8}", sock_dir), sock_dir
        assert on("node3", "stat", "-c", "%a %U", sock_dir).stdout.split() == ["700", "alice"]
        listing = on("node3", "ls", sock_dir).stdout.split()
        # the five channels and the IOPub keeper (jrc_iopub_keeper.py)
        assert "control.sock" in listing and len(kernel_sockets(listing)) == 6, listing
        # the dashboard: a socket in there too, answering through the proxy
        dash = wait_dashboard(sid)
        code, body = proxy_get(dash["path"])
        assert code == 200 and b"bokeh" in body.lower()
        dash_sock = helper_state(sid)["httpSockets"][str(dash["port"])]
        assert os.path.dirname(dash_sock) == sock_dir
        # another user on the node cannot connect to any of them
        for path in (control, *(os.path.join(sock_dir, k) for k in kernel_sockets(listing)), dash_sock):
            r = bob_connect("node3", path)
            assert r.returncode == 3 and "PermissionError" in r.stdout, (path, r.stdout, r.stderr)
        # ... while alice can (the same check would pass for anyone if the sockets were open)
        r = on("node3", "/opt/rc-testbed/python/bin/python", "-c", CONNECT, control, check=False)
        assert r.stdout.strip() == "connected", r.stdout + r.stderr
    finally:
        cancel(sid)
    deadline = time.monotonic() + 30
    while on("node3", "test", "-e", sock_dir, check=False).returncode == 0 and time.monotonic() < deadline:
        time.sleep(1)
    assert on("node3", "test", "-e", sock_dir, check=False).returncode != 0, "the socket dir must go with the session"


def test_via_login_to_node3_fails_with_a_clear_error(agent_dirs):
    s = start_session("conn-via-login-node3")
    try:
        assert s["state"] == "running" and s["node"] == "node3", s
        t = time.monotonic()
        code, err = start_kernel(s["id"])
        assert code >= 400, err
        msg = json.dumps(err)
        assert "connectivity via-login" in msg and "node3" in msg, msg
        assert "Connection refused" in msg or "refused" in msg.lower(), msg
        assert time.monotonic() - t < 30
    finally:
        cancel(s["id"])


def test_reverse_kernel_on_node4_through_the_tunnel(agent_dirs):
    s = start_session("conn-reverse")
    sid = s["id"]
    try:
        kernel_under(s, "node4", "reverse")

        st = helper_state(sid)
        rev = st["reverse"]
        assert rev["status"] == "up", rev
        login_dir = rev["dir"]
        assert on("login", "stat", "-c", "%a %U", login_dir).stdout.split() == ["700", "alice"]
        assert re.fullmatch(r"/tmp/jrc-\w{10}", login_dir), login_dir
        listing = on("login", "ls", login_dir).stdout.split()
        assert "control.sock" in listing and len(kernel_sockets(listing)) == 5, listing
        r = bob_connect("login", rev["controlSocket"])
        assert r.returncode == 3 and "PermissionError" in r.stdout, r.stdout + r.stderr

        dash = wait_dashboard(sid)
        code, body = proxy_get(dash["path"])
        assert code == 200 and b"bokeh" in body.lower()
        master = f"{st['runtimeDir']}/ssh.ctl"
        assert on("node4", "pgrep", "-u", "alice", "-f", master, check=False).returncode == 0
    finally:
        cancel(sid)
    # (the helper stops the tunnel's master, then removes its runtime dir: wait for all three)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        on("login", "test", "-e", login_dir, check=False).returncode == 0
        or on("node4", "pgrep", "-u", "alice", "-f", master, check=False).returncode == 0
        or on("node4", "test", "-e", st["runtimeDir"], check=False).returncode == 0
    ):
        time.sleep(1)
    assert on("login", "test", "-e", login_dir, check=False).returncode != 0, "login-side sockets left behind"
    assert on("node4", "pgrep", "-u", "alice", "-f", master, check=False).returncode != 0, "ssh master left running"
    assert on("node4", "test", "-e", st["runtimeDir"], check=False).returncode != 0, "node-side sockets left behind"


def test_broken_reverse_tunnel_fails_the_session_quickly_with_the_ssh_error(agent_dirs):
    t = time.monotonic()
    s = start_session("conn-reverse-broken", timeout=90)
    try:
        assert s["state"] == "ended", s
        assert "reverse tunnel" in s["reason"] and "no-such-login" in s["reason"], s["reason"]
        assert "Could not resolve hostname" in s["reason"], s["reason"]
        assert time.monotonic() - t < 60
        assert "RUNNING" not in squeue(s["jobId"])
    finally:
        cancel(s["id"])


def test_auto_picks_node_ssh_on_node3_and_reverse_on_node4_and_remembers(agent_dirs):
    remembered = Path(agent_dirs["JUPYTER_DATA_DIR"]) / "remote-cluster" / "connectivity.json"
    if remembered.exists():
        remembered.unlink()  # (a rerun in the same data dir starts fresh)
    sessions = []
    try:
        for profile, node, expected in (
            ("conn-auto-node3", "node3", "node-ssh"),
            ("conn-auto-node4", "node4", "reverse"),
        ):
            s = start_session(profile)
            sessions.append(s["id"])
            assert s["state"] == "running" and s["node"] == node, s
            # The mode is found as soon as the session runs, before any kernel (the sidebar shows it).
            deadline = time.monotonic() + 40
            while agent_call("GET", f"/api/v1/sessions/{s['id']}")[1].get("connectivity") != expected:
                assert time.monotonic() < deadline, agent_call("GET", f"/api/v1/sessions/{s['id']}")[1]
                time.sleep(1)
            code, conn = start_kernel(s["id"])
            assert code == 201, conn
            assert execute(conn, "import socket; print(socket.gethostname())") == node
            s = agent_call("GET", f"/api/v1/sessions/{s['id']}")[1]
            assert s["connectivity"] == expected, s
        saved = json.loads(remembered.read_text())
        assert saved.get("conn-auto-node3") == "node-ssh" and saved.get("conn-auto-node4") == "reverse", saved

        # A later session of the node4 profile starts with reverse: no waiting for
        # via-login and node-ssh, which node4's firewall leaves unanswered (8 s each).
        s = start_session("conn-auto-node4")
        sessions.append(s["id"])
        assert s["state"] == "running", s
        t = time.monotonic()
        code, conn = start_kernel(s["id"])
        took = time.monotonic() - t
        assert code == 201, conn
        assert agent_call("GET", f"/api/v1/sessions/{s['id']}")[1]["connectivity"] == "reverse"
        assert took < 8, f"the remembered mode should be tried first (kernel start took {took:.1f} s)"
    finally:
        for sid in sessions:
            cancel(sid)


@pytest.mark.parametrize("profile, node", [("conn-node-ssh-lite", "node3"), ("conn-reverse-lite", "node4")])
def test_agent_crash_keeps_a_kernel_on_unix_sockets(agent_dirs, profile, node):
    """kill -9 of the agent: the restarted one takes the kernel back on the same local
    ports, through the node connection / the tunnel, and its variables are still there."""
    import signal

    s = start_session(profile)
    sid = s["id"]
    try:
        assert s["state"] == "running" and s["node"] == node, s
        code, conn = start_kernel(sid)
        assert code == 201, conn
        assert execute(conn, "x = 42; print('set')") == "set"
        agent = get_agent()
        first = agent.owned_pid
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                code, body = agent_call("GET", "/api/v1/health")
                if code == 200 and agent.owned_pid not in (None, first):
                    break
            except Exception:  # noqa: BLE001 - the agent is restarting
                pass
            time.sleep(1)
        assert agent.owned_pid not in (None, first)
        ports = {k: conn[k] for k in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")}
        code, again = agent_call(
            "POST", f"/api/v1/sessions/{sid}/kernels", {"kernelId": conn["kernelId"], "adoptPorts": ports}
        )
        assert code == 200, again
        assert {k: again[k] for k in ports} == ports
        assert execute(conn, "print(x)") == "42"
    finally:
        cancel(sid)


def test_reverse_host_from_the_profile(agent_dirs):
    s = start_session("conn-reverse-host")
    try:
        assert s["state"] == "running" and s["node"] == "node4", s
        code, conn = start_kernel(s["id"])
        assert code == 201, conn
        assert execute(conn, "import socket; print(socket.gethostname())") == "node4"
        assert helper_state(s["id"])["reverse"]["host"] == "198.18.2.1"
    finally:
        cancel(s["id"])


@pytest.mark.parametrize("profile", ["conn-node-ssh-lite", "conn-reverse-lite"])
def test_kernel_restart_on_unix_sockets_keeps_the_local_ports(agent_dirs, profile):
    s = start_session(profile)
    sid = s["id"]
    try:
        assert s["state"] == "running", s
        code, conn = start_kernel(sid)
        assert code == 201, conn
        assert execute(conn, "x = 1; print('set')") == "set"
        code, _ = agent_call("POST", f"/api/v1/kernels/{conn['kernelId']}/restart", {})
        assert code == 200
        code, again = agent_call("POST", f"/api/v1/sessions/{sid}/kernels", {"kernelId": conn["kernelId"]})
        assert code == 201, again
        assert again == conn  # same local ports and key: Jupyter's clients stay valid
        assert execute(conn, "print('x' in globals())") == "False"  # a new kernel behind them
        if profile == "conn-reverse-lite":
            # the old kernel's login-side sockets went with it: five for the new one
            login_dir = helper_state(sid)["reverse"]["dir"]
            assert len(kernel_sockets(on("login", "ls", login_dir).stdout.split())) == 5
    finally:
        cancel(sid)


def test_a_job_killed_outright_leaves_no_reverse_sockets_on_login(agent_dirs):
    """SIGKILL to the helper and its tunnel (an OOM kill, a node failure) gives them no
    chance to clean up the tunnel's directory on login; the agent removes it when it sees
    the job end. (scancel --signal=KILL is not it: Slurm lets the helper clean up.)"""
    s = start_session("conn-reverse-lite")
    sid = s["id"]
    try:
        assert s["state"] == "running" and s["node"] == "node4", s
        st = helper_state(sid)
        login_dir, runtime = st["reverse"]["dir"], st["runtimeDir"]
        assert on("login", "test", "-S", f"{login_dir}/control.sock", check=False).returncode == 0
        # Every process of this session (helper and kernels name the session dir, the ssh
        # master its runtime dir); "[x]yz" keeps pkill from matching the shell that runs it.
        on("node4", "pkill", "-KILL", "-f", f"[{sid[0]}]{sid[1:]}|[{runtime[0]}]{runtime[1:]}")
        deadline = time.monotonic() + 240
        while s["state"] != "ended":
            assert time.monotonic() < deadline, s
            time.sleep(3)
            s = agent_call("GET", f"/api/v1/sessions/{sid}")[1]
        assert on("login", "test", "-e", login_dir, check=False).returncode != 0, f"{login_dir} left on login"
    finally:
        cancel(sid)
