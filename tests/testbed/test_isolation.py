"""Nothing of alice's sessions is reachable by bob, another user of the cluster (issue 9,
docs/security.md), tested as bob would attack:

- bob with a job on alice's node, and bob on the login node, enumerate alice's sockets and
  try a Dask client, HTTP(S), ZMQ SUB/DEALER and a raw read on every one, while alice runs
  `print("secret-42")`; his own unprotected listeners (the controls) are reached by the same
  probes. Every connectivity mode on Slurm: via-login, node-ssh (node3), reverse (node4)
  and auto (attacker.py). Other batch systems: test_schedulers.py.
- bob plants files, his own directories and symlinks at the paths a session used to use
  and at Dask's default scratch space before alice's sessions start: they start anyway.
- a killed kernel leaves no port to take over; a killed helper's relay port taken by bob
  gets a TLS handshake that fails, never the token or a kernel message.
- the reverse tunnel checks the login node's host key whatever alice's cluster-side
  ssh_config says.
- a notebook's Dask `Client()` and the dashboard work for alice, over the session's TLS.
- a session of the previous release (protocol 1 helper) keeps working after an upgrade,
  with a warning that it lacks the protections.
"""

import json
import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .attacker import Probe, nothing_reached
from .conftest import TESTBED, agent_call, agent_kernel_client, wait_state

PYTHON = "/opt/rc-testbed/python/bin/python"
RES = {"walltime": "00:20:00", "cpus": 1, "memory": "600M"}
SECRET = "secret-42"
NO_SSL = "/usr/lib/python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so"
ALICE_UID = int(subprocess.run(["id", "-u", "alice"], capture_output=True, text=True).stdout)


def on(host, *cmd, user="alice", check=True, timeout=60):
    r = subprocess.run(
        [str(TESTBED), "exec", host, "--user", user, "--", *cmd], capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert r.returncode == 0, f"{cmd} on {host}: {r.stdout}{r.stderr}"
    return r


# What bob plants before alice's sessions start (/tmp is shared by the testbed's hosts):
# the fixed paths of earlier releases and Dask's default scratch space.
TRAPS = [
    ("file", f"/tmp/jrc-{ALICE_UID}"),
    ("dir", "/tmp/dask-scratch-space"),
    ("symlink", "/tmp/jrc-bob-link"),
]


@pytest.fixture(scope="module")
def bob_traps():
    for _kind, path in TRAPS:
        subprocess.run(["rm", "-rf", path], check=True)  # (as root: left by anyone before)
    for kind, path in TRAPS:
        if kind == "file":
            on("login", "sh", "-c", f"rm -rf {path}; echo bob > {path}", user="bob")
        elif kind == "dir":
            on("login", "sh", "-c", f"rm -rf {path}; mkdir -m 755 {path}; ln -s /home/bob {path}/worker-x", user="bob")
        else:
            on("login", "sh", "-c", f"rm -rf {path}; ln -s /home/bob {path}", user="bob")
    yield TRAPS
    for _kind, path in TRAPS:
        on("login", "rm", "-rf", path, user="bob", check=False)


@pytest.fixture(scope="module")
def profiles(jupyter_dirs, bob_traps):
    ssh_config = subprocess.run([str(TESTBED), "env"], capture_output=True, text=True).stdout
    ssh_config = re.search(r"RC_TESTBED_SSH_CONFIG=(.*)", ssh_config).group(1)

    def p(name, partition, mode, **extra):
        return {
            "name": name,
            "title": name,
            "ssh": {"host": "login", "configFile": ssh_config},
            "scheduler": "slurm",
            "resources": dict(RES, partition=partition),
            "python": PYTHON,
            "dask": True,
            "connectivity": mode,
            **extra,
        }

    path = Path(jupyter_dirs["JUPYTERLAB_SETTINGS_DIR"]) / "jupyterlab-remote-cluster" / "profiles.jupyterlab-settings"
    original = path.read_text()
    existing = json.loads("\n".join(line for line in original.splitlines() if not line.strip().startswith("//")))
    mine = [
        p("iso-via-login", "debug", "via-login"),
        p("iso-node-ssh", "sshonly", "node-ssh"),
        p("iso-reverse", "isolated", "reverse"),
        p("iso-auto", "debug", "auto"),
        p("iso-light", "debug", "via-login", dask=False),
        p("iso-reverse-light", "isolated", "reverse", dask=False),
        # a container image whose Python has no ssl module (the _ssl extension hidden)
        p("iso-nossl", "sshonly", "node-ssh", container=f"bwrap --dev-bind / / --ro-bind /dev/null {NO_SSL} --"),
    ]
    path.write_text(json.dumps({"profiles": [*existing["profiles"], *mine]}, indent=1))
    code, body = agent_call("GET", "/api/v1/profiles")
    assert code == 200 and not body.get("errors"), body
    yield {x["name"]: x for x in mine}
    path.write_text(original)


@pytest.fixture(scope="module")
def sessions(profiles):
    """One session per mode, submitted together (after bob planted his traps)."""
    ids = {}
    for name in ("iso-via-login", "iso-node-ssh", "iso-reverse", "iso-auto"):
        code, body = agent_call("POST", "/api/v1/sessions", {"profile": name})
        assert code == 201, body
        ids[name] = body["id"]
    yield ids
    for sid in ids.values():
        agent_call("DELETE", f"/api/v1/sessions/{sid}")


def running(sid, timeout=150):
    s = wait_state(sid, ("running", "ended"), timeout)
    assert s["state"] == "running", s
    return s


def start_kernel(sid):
    code, conn = agent_call("POST", f"/api/v1/sessions/{sid}/kernels", {})
    assert code == 201, conn
    return conn


def client(conn):
    return agent_kernel_client(conn)


def run(kc, code, timeout=90):
    out = []
    reply = kc.execute_interactive(
        code,
        timeout=timeout,
        output_hook=lambda m: out.append(m["content"].get("text") or "".join(m["content"].get("traceback") or [])),
    )
    assert reply["content"]["status"] == "ok", "".join(out)
    return "".join(out).strip()


def session_dir(sid):
    return f"/home/alice/.jupyter-remote-cluster/sessions/{sid}"


def helper_state(sid):
    return json.loads(on("login", "cat", f"{session_dir(sid)}/state.json").stdout)


def alice_listeners(node):
    """alice's listening TCP ports on `node` (what bob learns there from /proc/net/tcp)."""
    r = on(node, "cat", "/proc/net/tcp", "/proc/net/tcp6", user="bob")
    ports = []
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) > 7 and f[3] == "0A" and f[7] == str(ALICE_UID):
            ports.append((f[1].rsplit(":", 1)[0], int(f[1].rsplit(":", 1)[1], 16)))
    return ports


def wait_dask(sid, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = helper_state(sid)
        dask = st.get("dask") or {}
        if dask.get("status") == "running":
            return st
        assert dask.get("status") != "failed", dask
        time.sleep(1)
    raise AssertionError(f"no Dask in session {sid}: {helper_state(sid).get('dask')}")


@pytest.mark.parametrize(
    "profile, node_of, from_login",
    [
        ("iso-via-login", None, True),
        ("iso-node-ssh", "node3", False),
        ("iso-reverse", "node4", True),
        ("iso-auto", None, True),
    ],
)
def test_bob_reaches_nothing_of_alices_session(sessions, profile, node_of, from_login):
    sid = sessions[profile]
    s = running(sid)
    node = s["node"]
    if node_of:
        assert node == node_of, s
    conn = start_kernel(sid)
    st = wait_dask(sid)
    kc = client(conn)
    try:
        # Dask works for alice with no code (Client() from the environment)
        out = run(
            kc,
            "from distributed import Client\nc = Client()\n"
            "print(c.scheduler.address, c.submit(lambda x: x * 2, 21).result(), c.dashboard_link)",
        )
        address, answer, link = out.split()
        kernel_pid = int(run(kc, "import os; print(os.getpid())"))

        # bob, with a job on the node: what does /proc/net/tcp show of alice's?
        listeners = alice_listeners(node)
        files = [
            session_dir(sid),
            f"{session_dir(sid)}/config.json",
            f"{session_dir(sid)}/state.json",
            f"{session_dir(sid)}/kernels/{conn['kernelId']}/connection.json",
        ]
        if "runtimeDir" in st:
            files += [st["runtimeDir"], f"{st['runtimeDir']}/tls/key.pem"]
        probes = [Probe(node, uid=ALICE_UID, files=files)]
        if from_login:
            # bob on the login node: alice's ports on the node (a port scan would find them),
            # and the reverse tunnel's sockets there
            probes.append(Probe("login", tcp=[(node, p) for _, p in listeners], controls=False))
        for p in probes:
            p.ready()
        assert run(kc, f"print({SECRET!r})") == SECRET  # alice at work while bob listens
        results = [p.result() for p in probes]
    finally:
        kc.stop_channels()

    on_node = results[0]
    assert nothing_reached(on_node, SECRET) == []
    assert all(not v.startswith(("listed", "read")) for v in on_node["files"].values()), on_node["files"]
    if from_login:
        at_login = results[1]
        assert nothing_reached(at_login, SECRET) == []
        assert at_login["enumerated"]["tcp"], "bob on login had alice's ports to try"
    # the probes really tried alice's listeners: scheduler, worker, nanny (+ the relay in
    # via-login/auto), and her Unix sockets
    sched_port = int(st["dask"]["schedulerAddress"].rsplit(":", 1)[1])
    assert ["127.0.0.1", sched_port] in on_node["enumerated"]["tcp"], on_node["enumerated"]
    assert len(on_node["enumerated"]["tcp"]) >= 3, on_node["enumerated"]
    assert any(u.startswith(st["runtimeDir"] + "/") for u in on_node["enumerated"]["unix"]), on_node["enumerated"]
    if profile == "iso-reverse":
        assert any(u.startswith(st["reverse"]["dir"] + "/") for u in results[1]["enumerated"]["unix"]), results[1]
    # what alice got: Dask over TLS, links to the proxied dashboard, a kernel without TCP ports
    assert (
        address.startswith("tls://")
        and answer == "42"
        and re.search(r"/remote-cluster/proxied/[A-Za-z0-9_-]{43}/0/status$", link)
    ), out
    assert kernel_tcp_ports(node, kernel_pid) == []


def test_sessions_start_and_dask_works_despite_bobs_traps(sessions, bob_traps):
    """node-ssh, reverse and auto started although bob planted files, directories and
    symlinks where sessions used to put things; the traps are untouched (nothing of
    alice's went into them)."""
    for profile in ("iso-node-ssh", "iso-reverse", "iso-auto"):
        s = running(sessions[profile])
        st = wait_dask(sessions[profile])
        assert re.fullmatch(r"/tmp/jrc-\w{8}", st["runtimeDir"]), st["runtimeDir"]
        assert on(s["node"], "stat", "-c", "%a %U", st["runtimeDir"]).stdout.split() == ["700", "alice"]
    assert on("login", "cat", f"/tmp/jrc-{ALICE_UID}", user="bob").stdout.strip() == "bob"
    # nothing of alice's went into bob's scratch directory
    owners = on("login", "sh", "-c", "find /tmp/dask-scratch-space -mindepth 1 -printf '%u %p\\n'", user="bob").stdout
    assert "alice" not in owners and "worker-x" in owners, owners
    assert on("login", "readlink", "/tmp/jrc-bob-link", user="bob").stdout.strip() == "/home/bob"


def test_a_killed_or_restarted_kernel_leaves_no_port_to_take_over(profiles):
    """kill -9 of a kernel, then a restart, while bob binds every TCP port the kernel had
    and records: there is none (its channels are Unix sockets in the private directory),
    and alice's client works again behind the same local ports."""
    code, s = agent_call("POST", "/api/v1/sessions", {"profile": "iso-light"})
    assert code == 201, s
    sid = s["id"]
    try:
        s = running(sid)
        conn = start_kernel(sid)
        kc = client(conn)
        try:
            pid = int(run(kc, "import os; x = 1; print(os.getpid())"))
            held = kernel_tcp_ports(s["node"], pid)
            assert held == [], f"the kernel listens on TCP: {held}"
            on(s["node"], "kill", "-9", str(pid))
            recorder = Recorder(s["node"], held)  # (what a kernel freed: nothing)
            code, _ = agent_call("POST", f"/api/v1/kernels/{conn['kernelId']}/restart", {})
            assert code == 200
            code, again = agent_call("POST", f"/api/v1/sessions/{sid}/kernels", {"kernelId": conn["kernelId"]})
            assert code == 201 and again == conn, again
        finally:
            kc.stop_channels()
        # (a client that comes after the restart, as Jupyter's reconnecting websocket does)
        kc = client(conn)
        try:
            assert run(kc, "print('x' in globals())", timeout=60) == "False"  # a new kernel, same ports
            new_pid = int(run(kc, "import os; print(os.getpid())"))
            assert new_pid != pid and kernel_tcp_ports(s["node"], new_pid) == []
            assert recorder.stop() == []
        finally:
            kc.stop_channels()
    finally:
        agent_call("DELETE", f"/api/v1/sessions/{sid}")


def kernel_tcp_ports(node, pid):
    """TCP ports the process `pid` and its descendants listen on (their fds, /proc/net/tcp)."""
    script = (
        "import os, sys\npids = [int(sys.argv[1])]\ninodes = set()\n"
        "kids = {}\n"
        "for d in os.listdir('/proc'):\n"
        "    if d.isdigit():\n"
        "        try: kids.setdefault(int(open('/proc/%s/stat' % d).read().rsplit(') ', 1)[1].split()[1]), []).append(int(d))\n"
        "        except (OSError, IndexError): pass\n"
        "for p in pids: pids.extend(kids.get(p, []))\n"
        "for pid in pids:\n"
        "  try:\n"
        "    for fd in os.listdir('/proc/%d/fd' % pid):\n"
        "      t = os.readlink('/proc/%d/fd/%s' % (pid, fd))\n"
        "      if t.startswith('socket:['): inodes.add(t[8:-1])\n"
        "  except OSError: pass\n"
        "out = []\n"
        "for tb in ('/proc/net/tcp', '/proc/net/tcp6'):\n"
        "    for line in open(tb).read().splitlines()[1:]:\n"
        "        f = line.split()\n"
        "        if f[3] == '0A' and f[9] in inodes: out.append(int(f[1].rsplit(':', 1)[1], 16))\n"
        "print(out)"
    )
    return json.loads(on(node, PYTHON, "-c", script, str(pid)).stdout)


class BobsListener:
    """A program of bob's on `node` (its SCRIPT, run with `args`): it prints READY once it
    listens, and what it recorded when told to stop (a line on its stdin)."""

    SCRIPT = ""

    def __init__(self, node, *args):
        self.proc = subprocess.Popen(
            [str(TESTBED), "exec", node, "--user", "bob", "--", PYTHON, "-c", self.SCRIPT, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        assert line.startswith("READY"), line + self.proc.stderr.read()

    def stop(self):
        out, _ = self.proc.communicate("\n", timeout=30)
        return json.loads(out.strip().splitlines()[-1])


class Recorder(BobsListener):
    """bob binds `ports` on `node` (all interfaces) and records every connection."""

    SCRIPT = (
        "import json, socket, sys, threading, time\n"
        "seen = []\nsocks = []\n"
        "for p in json.loads(sys.argv[1]):\n"
        "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "    s.bind(('0.0.0.0', p)); s.listen(16); socks.append(s)\n"
        "def serve(s):\n"
        "    while True:\n"
        "        c, a = s.accept(); c.settimeout(2)\n"
        "        try: data = c.recv(65536)\n"
        "        except OSError: data = b''\n"
        "        seen.append([s.getsockname()[1], data.hex()])\n"
        "for s in socks: threading.Thread(target=serve, args=(s,), daemon=True).start()\n"
        "print('READY', flush=True)\n"
        "sys.stdin.readline()\n"
        "print(json.dumps(seen), flush=True)\n"
    )

    def __init__(self, node, ports):
        super().__init__(node, json.dumps(list(ports)))


def test_a_dead_helpers_relay_port_taken_by_bob_gets_nothing(profiles):
    """The helper is killed outright (OOM killer, node failure); bob binds its relay port
    with a TLS server of his own. alice's agent keeps asking for the kernel's status and
    her client reconnects: bob completes no handshake and receives no CONNECT, token or
    kernel message."""
    code, s = agent_call("POST", "/api/v1/sessions", {"profile": "iso-light"})
    assert code == 201, s
    sid = s["id"]
    try:
        s = running(sid)
        conn = start_kernel(sid)
        kc = client(conn)
        st = helper_state(sid)
        # (controlPort: the plain TCP control channel of protocol 1, for the record on main)
        port, node = st.get("relayPort") or st.get("controlPort"), s["node"]
        token = json.loads(on("login", "cat", f"{session_dir(sid)}/config.json").stdout)["token"]
        on(node, "kill", "-9", str(st["pid"]))
        bob = TlsRecorder(node, port)
        try:
            # the agent tries: kernel status (the provisioner's poll) and the client's reconnects
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline:
                agent_call("GET", f"/api/v1/kernels/{conn['kernelId']}")
                time.sleep(1)
        finally:
            kc.stop_channels()
            seen = bob.stop()
        assert seen["connections"] >= 1, "the agent never came to the port: the test proved nothing"
        assert token not in seen["raw"] and "Bearer" not in seen["raw"] and "CONNECT" not in seen["raw"], seen
        assert seen["handshakes"] == 0, seen
        assert seen["data"] == "", seen
    finally:
        agent_call("DELETE", f"/api/v1/sessions/{sid}")


class TlsRecorder(BobsListener):
    """bob serves TLS (a self-signed certificate named like a session's) on `port` and
    records connections, handshakes and what was sent."""

    SCRIPT = (
        "import json, os, socket, ssl, subprocess, sys, tempfile, threading\n"
        "d = tempfile.mkdtemp()\n"
        "subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',"
        " '-subj', '/CN=jrc-' + sys.argv[2], '-days', '1', '-keyout', d + '/k', '-out', d + '/c'], check=True, capture_output=True)\n"
        "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(d + '/c', d + '/k')\n"
        "seen = {'connections': 0, 'handshakes': 0, 'data': '', 'raw': '', 'errors': []}\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(16)\n"
        "def one(c):\n"
        "    seen['connections'] += 1\n"
        "    try: seen['raw'] += c.recv(65536, socket.MSG_PEEK).decode('latin-1')\n"
        "    except OSError: pass\n"
        "    try:\n"
        "        t = ctx.wrap_socket(c, server_side=True); seen['handshakes'] += 1\n"
        "        t.settimeout(3); seen['data'] += t.recv(65536).decode('latin-1')\n"
        "    except Exception as e: seen['errors'].append(type(e).__name__ + ': ' + str(e)[:120])\n"
        "def serve():\n"
        "    while True:\n"
        "        c, _ = s.accept(); c.settimeout(5); threading.Thread(target=one, args=(c,), daemon=True).start()\n"
        "threading.Thread(target=serve, daemon=True).start()\n"
        "print('READY', flush=True)\n"
        "sys.stdin.readline()\n"
        "print(json.dumps(seen), flush=True)\n"
    )

    def __init__(self, node, port):
        # (the port is free once the helper is gone, and its listening socket with it)
        super().__init__(node, str(port), "session")


def test_reverse_tunnel_checks_the_login_host_key_whatever_alices_ssh_config_says(profiles):
    """alice's ssh_config on the cluster turns host key checking off and points the known
    hosts at /dev/null: the job's tunnel must still refuse the (now unknown) login key."""
    cfg = "/home/alice/.ssh/config"
    had = on("login", "test", "-e", cfg, check=False).returncode == 0
    on("login", "sh", "-c", f"test -e {cfg} && cp -p {cfg} {cfg}.rc-test-saved; true")
    on(
        "login",
        "sh",
        "-c",
        f"umask 077; printf 'Host *\\n  StrictHostKeyChecking no\\n  UserKnownHostsFile /dev/null\\n"
        f"  GlobalKnownHostsFile /dev/null\\n' > {cfg}",
    )
    sid = None
    try:
        code, s = agent_call("POST", "/api/v1/sessions", {"profile": "iso-reverse-light"})
        assert code == 201, s
        sid = s["id"]
        s = wait_state(sid, ("running", "ended"), 120)
        assert s["state"] == "ended", s
        assert "Host key verification failed" in s["reason"], s["reason"]
    finally:
        if had:
            on("login", "mv", f"{cfg}.rc-test-saved", cfg)
        else:
            on("login", "rm", "-f", cfg)
        if sid:
            agent_call("DELETE", f"/api/v1/sessions/{sid}")


class StandaloneAgent:
    """An agent process of our own (not the test process's shared one), with a given
    helper, state dir and settings: what a user's agent is before and after an upgrade."""

    def __init__(self, workdir, settings_dir, helper):
        from jupyterlab_remote_cluster.node_runtime import agent_script, find_node

        self.socket = os.path.join(workdir, "agent.sock")
        os.makedirs(os.path.dirname(self.socket), mode=0o700, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                find_node(),
                str(agent_script()),
                "--socket",
                self.socket,
                "--settings-dir",
                settings_dir,
                "--kernels-dir",
                os.path.join(workdir, "kernels"),
                "--state-dir",
                os.path.join(workdir, "state"),
                "--helper",
                str(helper),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(os.path.join(workdir, "agent.log"), "ab"),
        )
        line = self.proc.stdout.readline()
        assert b'"ready"' in line, line
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # never a full pipe

    def call(self, method, path, body=None):
        import http.client

        class Conn(http.client.HTTPConnection):
            def connect(conn):
                conn.sock = socket.socket(socket.AF_UNIX)
                conn.sock.connect(self.socket)

        c = Conn("agent", timeout=180)
        c.request(
            method, path, body=None if body is None else json.dumps(body), headers={"Content-Type": "application/json"}
        )
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"{}")

    def wait_running(self, sid, timeout=150):
        deadline = time.monotonic() + timeout
        while True:
            s = self.call("GET", f"/api/v1/sessions/{sid}")[1]
            if s["state"] in ("running", "ended") or time.monotonic() > deadline:
                return s
            time.sleep(1)

    def stop(self):
        self.proc.stdin.close()  # the agent exits when its supervisor goes
        self.proc.wait(30)


def test_a_session_of_the_previous_release_keeps_running_and_says_it_is_unprotected(profiles, jupyter_dirs, tmp_path):
    """A job started by the previous release's helper (protocol 1) when the extension is
    upgraded: the new agent keeps talking to it (its kernel and variables, a new kernel)
    and says on the session that it lacks the protections; a new session gets them."""
    old_helper = Path(__file__).resolve().parent.parent / "fixtures" / "helper_protocol1.py"
    settings = jupyter_dirs["JUPYTERLAB_SETTINGS_DIR"]
    before = StandaloneAgent(str(tmp_path), settings, old_helper)
    sid = None
    try:
        code, s = before.call("POST", "/api/v1/sessions", {"profile": "iso-light"})
        assert code == 201, s
        sid = s["id"]
        s = before.wait_running(sid)
        assert s["state"] == "running", s
        assert helper_state(sid).get("version") == 1 and "controlPort" in helper_state(sid)
        code, conn = before.call("POST", f"/api/v1/sessions/{sid}/kernels", {})
        assert code == 201, conn
        kc = client(conn)
        try:
            assert run(kc, "x = 42; print('set')") == "set"
        finally:
            kc.stop_channels()
    finally:
        before.stop()

    after = StandaloneAgent(
        str(tmp_path),
        settings,
        Path(__file__).resolve().parents[2] / "jupyterlab_remote_cluster" / "remote" / "helper",
    )
    try:
        s = after.wait_running(sid)
        assert s["state"] == "running", s
        assert any("earlier version" in w and "start a new session" in w for w in s.get("warnings", [])), s
        ports = {k: conn[k] for k in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")}
        code, again = after.call(
            "POST", f"/api/v1/sessions/{sid}/kernels", {"kernelId": conn["kernelId"], "adoptPorts": ports}
        )
        assert code == 200, again
        kc = client(conn)
        try:
            assert run(kc, "print(x)") == "42"
        finally:
            kc.stop_channels()
        code, other = after.call("POST", f"/api/v1/sessions/{sid}/kernels", {})
        assert code == 201, other
        kc = client(other)
        try:
            assert run(kc, "print(6 * 7)") == "42"
        finally:
            kc.stop_channels()
        # a new session of the upgraded agent gets the current protocol, without the warning
        code, fresh = after.call("POST", "/api/v1/sessions", {"profile": "iso-light"})
        assert code == 201, fresh
        try:
            fresh = after.wait_running(fresh["id"])
            assert fresh["state"] == "running" and not fresh.get("warnings"), fresh
            assert helper_state(fresh["id"])["version"] == 2
        finally:
            after.call("DELETE", f"/api/v1/sessions/{fresh['id']}")
    finally:
        if sid:
            after.call("DELETE", f"/api/v1/sessions/{sid}")
        after.stop()


def test_without_tls_dask_does_not_start_and_the_session_says_why(profiles):
    """The session's Python cannot do TLS (here: a container without the ssl module):
    Dask is not started in the clear instead, the session says why, kernels work."""
    assert subprocess.run([PYTHON, "-c", "import _ssl"]).returncode == 0, f"{NO_SSL} moved: update the test"
    code, s = agent_call("POST", "/api/v1/sessions", {"profile": "iso-nossl"})
    assert code == 201, s
    sid = s["id"]
    try:
        s = running(sid)
        deadline = time.monotonic() + 90
        while not s.get("warnings") and time.monotonic() < deadline:
            time.sleep(1)
            s = agent_call("GET", f"/api/v1/sessions/{sid}")[1]
        assert any(
            "Dask did not start" in w and "never in the clear" in w and "ssl" in w for w in s.get("warnings", [])
        ), s
        assert not s.get("httpPorts"), s
        kc = client(start_kernel(sid))
        try:
            assert (
                run(kc, "import os, socket; print(socket.gethostname(), 'DASK_SCHEDULER_ADDRESS' in os.environ)")
                == "node3 False"
            )
        finally:
            kc.stop_channels()
        # nothing of Dask in the clear: nothing of the session on TCP at all
        assert kernel_tcp_ports("node3", helper_state(sid)["pid"]) == []
    finally:
        agent_call("DELETE", f"/api/v1/sessions/{sid}")
