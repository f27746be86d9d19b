"""Fixtures for tests against the running testbed (`testbed/testbed start` first)."""

import json
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TESTBED = REPO / "testbed" / "testbed"


def read_testbed_env() -> dict:
    out = subprocess.run([str(TESTBED), "env"], check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def on_login(*cmd: str, user: str = "alice") -> str:
    return subprocess.run(
        [str(TESTBED), "exec", "login", "--user", user, "--", *cmd],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


def write_testbed_profiles(settings_dir: str) -> None:
    """The demo's profiles file (the testbed's clusters) in a JupyterLab settings dir."""
    subprocess.run(
        ["bash", "-c", f'source "{REPO}/scripts/lib.sh" && write_testbed_profile "{settings_dir}"'], check=True
    )


@pytest.fixture(scope="session")
def jupyter_dirs(tmp_path_factory):
    """Own settings (a testbed profile), data and runtime dirs, like a fresh user."""
    status = subprocess.run([str(TESTBED), "status"], capture_output=True, text=True)
    assert status.returncode == 0, "the testbed is not running: testbed/testbed start\n" + status.stdout
    root = tmp_path_factory.mktemp("jupyter")
    dirs = {
        "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"),
        "JUPYTER_DATA_DIR": str(root / "data"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
    }
    write_testbed_profiles(dirs["JUPYTERLAB_SETTINGS_DIR"])
    old = {k: os.environ.get(k) for k in dirs}
    os.environ.update(dirs)
    yield dirs
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class AgentLogFile:
    """Every agent's log (each server or headless caller starts its own) also in one file
    with timestamps, whatever Jupyter apps started by tests do to logging; a test that
    fails once in a full run says from it what the agent was doing."""

    path: Path | None = None

    def __init__(self, log):
        self._log = log
        self._f = open(AgentLogFile.path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (for the run)

    def _write(self, level: str, msg: str, *args) -> None:
        stamp = time.strftime("%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}"
        self._f.write(f"{stamp} {level} {msg % args if args else msg}\n")

    def __getattr__(self, name):
        return getattr(self._log, name)

    def _level(letter: str, name: str):  # noqa: N805 (makes the methods below)
        def log(self, msg, *args):
            self._write(letter, msg, *args)
            getattr(self._log, name)(msg, *args)

        return log

    debug = _level("D", "debug")
    info = _level("I", "info")
    warning = _level("W", "warning")
    error = _level("E", "error")


@pytest.fixture(scope="session", autouse=True)
def agent_log_file(tmp_path_factory):
    """Agents started from here on log to RC_TEST_LOGDIR/testbed-agent.log too (scripts/test.sh keeps it)."""
    from jupyterlab_remote_cluster.agent_process import AgentProcess

    AgentLogFile.path = Path(os.environ.get("RC_TEST_LOGDIR") or tmp_path_factory.mktemp("logs")) / "testbed-agent.log"
    init = AgentProcess.__init__

    def init_with_file(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.log = AgentLogFile(self.log)

    AgentProcess.__init__ = init_with_file
    from jupyterlab_remote_cluster import agent_process

    if agent_process._shared is not None:  # started by an earlier test module
        agent_process._shared.log = AgentLogFile(agent_process._shared.log)
    yield
    AgentProcess.__init__ = init


def agent_log_lines(*needles: str, last: int = 25) -> str:
    """The agent's last log lines that mention any of `needles` (for failure messages)."""
    if AgentLogFile.path is None or not AgentLogFile.path.exists():
        return "(no agent log)"
    lines = [
        line for line in AgentLogFile.path.read_text(errors="replace").splitlines() if any(n in line for n in needles)
    ]
    return "\n".join(lines[-last:])


def squeue(job_id: str) -> str:
    return on_login("squeue", "-h", "-j", job_id, "-o", "%i %T").strip()


def agent_call(method: str, path: str, body=None) -> tuple[int, dict]:
    """One request to this process's agent (started on demand): status and JSON body."""
    from jupyter_core.utils import run_sync

    from jupyterlab_remote_cluster.agent_process import get_agent

    data = None if body is None else json.dumps(body).encode()
    res = run_sync(get_agent().request)(method, path, data, {"Content-Type": "application/json"} if data else None)
    return res.code, json.loads(res.body or b"{}")


def wait_state(sid: str, states, timeout: float, interval: float = 1.0) -> dict:
    """The session once it is in one of `states`, or as it is when `timeout` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        code, s = agent_call("GET", f"/api/v1/sessions/{sid}")
        assert code == 200, s
        if s["state"] in states or time.monotonic() > deadline:
            return s
        time.sleep(interval)


def agent_kernel_client(conn: dict):
    """A ready client of a kernel the agent forwards (its POST .../kernels answer), as the
    provisioner connects one: IOPub, shell and stdin through a bridge when the node keeps
    the output (`iopub_kept`). stop_channels() also closes the bridge."""
    import logging

    from jupyter_client import BlockingKernelClient

    from jupyterlab_remote_cluster.iopub_bridge import IopubBridge

    info = dict(conn, ip="127.0.0.1", transport="tcp")
    bridge = None
    if conn.get("iopub_kept"):
        bridge = IopubBridge(logging.getLogger("tests"))
        bridge.start(conn["iopub_port"], {"shell": conn["shell_port"], "stdin": conn["stdin_port"]})
        info.update(iopub_port=bridge.port, shell_port=bridge.shell_port, stdin_port=bridge.stdin_port)
    kc = BlockingKernelClient()
    kc.load_connection_info(info)
    stop = kc.stop_channels

    def stop_channels():
        stop()
        if bridge is not None:
            bridge.close()

    kc.stop_channels = stop_channels
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return kc


def session_kernel(sid: str):
    """A new kernel in the running session `sid` (through the agent's API) and a ready
    client of it; stop its channels when done."""
    code, conn = agent_call("POST", f"/api/v1/sessions/{sid}/kernels", {})
    assert code == 201, conn
    return agent_kernel_client(conn)


@contextmanager
def kernel_client(kernel_name: str, ready_timeout: float = 120, **start):
    """A kernel of `kernel_name` (our provisioner, given `start` as jupyter_server gives
    its kernels: env, cwd) and a ready client; shut down after."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name=kernel_name)
    km.start_kernel(**start)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=ready_timeout)
        yield km, kc
    finally:
        kc.stop_channels()
        if km.has_kernel:
            km.shutdown_kernel(now=True)


def agent_proxy_path(public_path: str) -> str:
    """The agent's proxy path (`/proxy/<key>/<port>/...`) of a public proxied path
    (`<base>remote-cluster/proxied/<key>/<port>/...`, as in a session's httpPorts)."""
    marker = "/remote-cluster/proxied/"
    return "/proxy/" + public_path[public_path.index(marker) + len(marker) :]


def proxy_get(public_path: str) -> tuple[int, bytes]:
    """GET a proxied public path through this process's agent's proxy socket."""
    from jupyter_core.utils import run_sync

    from jupyterlab_remote_cluster.agent_process import get_agent

    res = run_sync(get_agent().proxy_request)("GET", agent_proxy_path(public_path))
    return res.code, res.body or b""


@contextmanager
def profile_added(jupyter_dirs, name: str, **fields):
    """A profile `name` (the first testbed profile with `fields` over it) in the settings
    the agent reads; the settings restored after."""
    path = Path(jupyter_dirs["JUPYTERLAB_SETTINGS_DIR"]) / "jupyterlab-remote-cluster" / "profiles.jupyterlab-settings"
    original = path.read_text()
    settings = json.loads("\n".join(line for line in original.splitlines() if not line.strip().startswith("//")))
    settings["profiles"].append({**settings["profiles"][0], "name": name, "title": name, **fields})
    path.write_text(json.dumps(settings, indent=1))
    try:
        yield
    finally:
        path.write_text(original)


@contextmanager
def running_session(jupyter_dirs, name: str, **fields):
    """A profile `name` (profile_added) and a session of it submitted and running;
    cancelled and the settings restored after. Yields the session."""
    with profile_added(jupyter_dirs, name, **fields), _running(name) as s:
        yield s


@contextmanager
def running_session_kernel(jupyter_dirs, name: str, **fields):
    """running_session, and a kernel client of it (stopped after). Yields (session, client)."""
    with running_session(jupyter_dirs, name, **fields) as s:
        kc = session_kernel(s["id"])
        try:
            yield s, kc
        finally:
            kc.stop_channels()


@contextmanager
def _running(name: str):
    sid = None
    try:
        code, s = agent_call("POST", "/api/v1/sessions", {"profile": name})
        assert code == 201, s
        sid = s["id"]
        s = wait_state(sid, ("running", "ended"), 120)
        assert s["state"] == "running", s
        yield s
    finally:
        if sid:
            agent_call("DELETE", f"/api/v1/sessions/{sid}")
