"""A Jupyter server that dies (kill -9: a crash, an OOM kill, a laptop that lost power)
or stops cleanly leaves its remote kernels running in their job. The next server lists
them as detached on the session, attaches one through `remote-cluster/kernels/attach`,
and the kernel's variables and process are the ones from before. A server configured
with `keep_kernels_on_stop=False` shuts them down instead, and the job stays.

Real parts only: `jupyter server` subprocesses with the extension, the agent they start,
the testbed's Slurm job, and the kernel reached through Jupyter's own kernel WebSocket.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from .conftest import TESTBED, on_login, squeue, write_testbed_profiles


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `jupyter server` process on 127.0.0.1 with its own token."""

    def __init__(self, env: dict, root: Path, log: Path, *args: str) -> None:
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--no-browser",
                f"--port={self.port}",
                "--ServerApp.port_retries=0",
                f"--ServerApp.root_dir={root}",
                "--allow-root",
                # A fixed token in argv is fine here: a throwaway server on loopback for one test.
                f"--IdentityProvider.token={self.token}",
                *args,
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    async def call(self, method: str, path: str, body=None, expect=(200, 201)) -> tuple[int, dict]:
        req = HTTPRequest(
            self.base + path,
            method=method,
            headers={"Authorization": f"token {self.token}"},
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
            request_timeout=300,
        )
        res = await AsyncHTTPClient().fetch(req, raise_error=False)
        data = json.loads(res.body) if res.body else {}
        assert expect is None or res.code in expect, (method, path, res.code, data)
        return res.code, data

    async def wait_up(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "jupyter server exited:\n" + self.log.read_text()[-3000:]
            try:
                code, _ = await self.call("GET", "/api/status", expect=None)
                if code == 200:
                    return
            except (ConnectionError, OSError):
                pass
            await asyncio.sleep(0.5)
        raise AssertionError("jupyter server did not come up:\n" + self.log.read_text()[-3000:])

    async def channels(self, kernel_id: str):
        """A kernel WebSocket of this server, as JupyterLab opens one."""
        return await websocket_connect(
            HTTPRequest(
                f"ws://127.0.0.1:{self.port}/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}",
                headers={"Authorization": f"token {self.token}"},
            )
        )

    @staticmethod
    async def run_on(ws, code: str, expression: str, timeout: float = 90) -> str:
        """Run a cell on an open kernel WebSocket; return `expression`'s repr after it. Read
        from the shell reply (user_expressions), not from IOPub output: a fresh IOPub
        subscription may miss what the kernel published before it joined."""
        msg_id = uuid.uuid4().hex
        ws.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": "test",
                        "session": uuid.uuid4().hex,
                        "date": "",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "buffers": [],
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": True,
                        "user_expressions": {"r": expression},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                }
            )
        )
        deadline = time.monotonic() + timeout
        while True:
            raw = await asyncio.wait_for(ws.read_message(), max(1.0, deadline - time.monotonic()))
            assert raw is not None, "kernel websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id or msg["msg_type"] != "execute_reply":
                continue
            content = msg["content"]
            assert content["status"] == "ok", content
            result = content["user_expressions"]["r"]
            assert result["status"] == "ok", result
            return result["data"]["text/plain"]

    async def execute(self, kernel_id: str, code: str, expression: str, timeout: float = 90) -> str:
        """`run_on` a WebSocket of its own."""
        ws = await self.channels(kernel_id)
        try:
            return await self.run_on(ws, code, expression, timeout)
        finally:
            ws.close()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


async def wait_session(server: Server, sid: str, ok, what: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    session: dict = {}
    while time.monotonic() < deadline:
        _, session = await server.call("GET", f"/remote-cluster/api/v1/sessions/{sid}")
        if ok(session):
            return session
        assert session["state"] != "ended", session
        await asyncio.sleep(1)
    raise AssertionError(f"session {sid}: {what} did not happen: {session}")


@pytest.fixture
def own_dirs(tmp_path):
    """Settings, data, runtime and config dirs of one user, shared by both servers but
    not with the other tests (their in-process agent must not serve our servers)."""
    status = subprocess.run([str(TESTBED), "status"], capture_output=True, text=True)
    assert status.returncode == 0, "the testbed is not running: testbed/testbed start\n" + status.stdout
    env = dict(os.environ)
    env.update(
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
    )
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"jupyterlab_remote_cluster": True}}})
    )
    (tmp_path / "root").mkdir()
    write_testbed_profiles(env["JUPYTERLAB_SETTINGS_DIR"])
    return env, tmp_path


def on_node(host: str, *cmd: str) -> int:
    return subprocess.run(
        [str(TESTBED), "exec", host, "--user", "alice", "--", *cmd], capture_output=True, timeout=60
    ).returncode


async def _scenario(env: dict, tmp: Path) -> None:
    servers: list[Server] = []

    def server(*args: str) -> Server:
        servers.append(Server(env, tmp / "root", tmp / f"server-{len(servers)}.log", *args))
        return servers[-1]

    session: dict = {}
    try:
        # A: a session, a kernel with state; then A is killed without any cleanup.
        a = server()
        await a.wait_up()
        _, session = await a.call("POST", "/remote-cluster/api/v1/sessions", {"profile": "testbed"})
        sid = session["id"]
        session = await wait_session(a, sid, lambda s: s["state"] == "running", "running")
        _, kernel = await a.call("POST", "/api/kernels", {"name": f"remote-cluster-session-{sid}"})
        before = await a.execute(kernel["id"], "import os, socket\nx = 42", "(os.getpid(), socket.gethostname())")
        pid, host = ast.literal_eval(before)  # the repr of (int, str)
        assert host in ("node1", "node2")
        _, session = await a.call("GET", f"/remote-cluster/api/v1/sessions/{sid}")
        [remote_kid] = session["kernels"]
        assert "detachedKernels" not in session
        a.kill()  # its agent follows it (stdin pipe)

        # B: lists the kernel as detached and attaches it; its state is intact.
        b = server()
        await b.wait_up()
        assert (await b.call("GET", "/api/kernels"))[1] == []
        session = await wait_session(
            b, sid, lambda s: s.get("detachedKernels") == [remote_kid], "the kernel listed as detached"
        )
        assert session["state"] == "running" and session["kernels"] == []
        # Bad requests change nothing.
        _, err = await b.call("POST", "/remote-cluster/kernels/attach", {"session": sid}, expect=(400,))
        assert "Expected" in err["error"]["message"]
        _, err = await b.call(
            "POST", "/remote-cluster/kernels/attach", {"session": sid, "kernel": "0123456789abcdef"}, expect=(409,)
        )
        assert "is not a detached kernel" in err["error"]["message"]
        assert (await b.call("GET", "/api/kernels"))[1] == []

        _, model = await b.call(
            "POST", "/remote-cluster/kernels/attach", {"session": sid, "kernel": remote_kid}, expect=(201,)
        )
        after = await b.execute(model["id"], "", "(x, os.getpid(), socket.gethostname())")
        assert ast.literal_eval(after) == (42, pid, host)
        _, session = await b.call("GET", f"/remote-cluster/api/v1/sessions/{sid}")
        assert session["kernels"] == [remote_kid] and "detachedKernels" not in session
        # Attached now: a second attach (another tab, another server) is refused.
        await b.call("POST", "/remote-cluster/kernels/attach", {"session": sid, "kernel": remote_kid}, expect=(409,))

        # A kernel shut down from Jupyter is gone for good: not listed, not detached.
        _, other = await b.call("POST", "/api/kernels", {"name": f"remote-cluster-session-{sid}"})
        other_pid = int(await b.execute(other["id"], "import os", "os.getpid()"))
        await b.call("DELETE", f"/api/kernels/{other['id']}", expect=(204,))
        session = await wait_session(b, sid, lambda s: s["kernels"] == [remote_kid], "the other kernel dropped", 60)
        assert "detachedKernels" not in session
        assert on_node(host, "kill", "-0", str(other_pid)) != 0

        # B stops cleanly (Ctrl-C): remote kernels are left running by default.
        t0 = time.monotonic()
        b.stop()
        assert b.proc.returncode == 0, b.log.read_text()[-3000:]
        assert time.monotonic() - t0 < 30
        assert on_node(host, "kill", "-0", str(pid)) == 0

        # C, told to shut remote kernels down on stop: attaches, then stops cleanly.
        c = server("--RemoteClusterExtension.keep_kernels_on_stop=False")
        await c.wait_up()
        await wait_session(c, sid, lambda s: s.get("detachedKernels") == [remote_kid], "detached after a clean stop")
        _, model = await c.call(
            "POST", "/remote-cluster/kernels/attach", {"session": sid, "kernel": remote_kid}, expect=(201,)
        )
        assert ast.literal_eval(await c.execute(model["id"], "", "(x, os.getpid())")) == (42, pid)
        c.stop()
        assert c.proc.returncode == 0, c.log.read_text()[-3000:]
        deadline = time.monotonic() + 30
        while on_node(host, "kill", "-0", str(pid)) == 0:
            assert time.monotonic() < deadline, "the kernel outlived a server told to shut it down"
            await asyncio.sleep(1)
        assert "RUNNING" in squeue(session["jobId"])  # the job (session) itself stays
    finally:
        for s in servers:
            s.stop()
        if session.get("jobId"):
            on_login("scancel", session["jobId"])


def test_kernels_outlive_their_jupyter_server_and_are_attached_by_the_next(own_dirs):
    env, tmp = own_dirs
    asyncio.run(_scenario(env, tmp))


async def _crash_scenario(env: dict, tmp: Path) -> None:
    server = Server(env, tmp / "root", tmp / "server.log")
    session: dict = {}
    ws = None
    try:
        await server.wait_up()
        _, session = await server.call("POST", "/remote-cluster/api/v1/sessions", {"profile": "testbed"})
        session = await wait_session(server, session["id"], lambda s: s["state"] == "running", "running")
        _, kernel = await server.call("POST", "/api/kernels", {"name": f"remote-cluster-session-{session['id']}"})
        ws = await server.channels(kernel["id"])
        pid, host = ast.literal_eval(
            await server.run_on(ws, "import os, socket", "(os.getpid(), socket.gethostname())")
        )
        assert on_node(host, "kill", "-9", str(pid)) == 0
        # Jupyter's restarter sees the kernel dead and restarts it (restart_kernel(now=True)):
        # the WebSocket opened before the crash must reach the new kernel, in the same job.
        deadline = time.monotonic() + 120
        while True:
            try:
                new_pid, new_host, job = ast.literal_eval(
                    await server.run_on(
                        ws, "import os, socket", "(os.getpid(), socket.gethostname(), os.environ['SLURM_JOB_ID'])", 10
                    )
                )
                break
            except (asyncio.TimeoutError, AssertionError):
                assert time.monotonic() < deadline, "the WebSocket opened before the crash never worked again"
        assert new_pid != pid and (new_host, job) == (host, session["jobId"])
    finally:
        if ws is not None:
            ws.close()
        server.stop()
        if session.get("jobId"):
            on_login("scancel", session["jobId"])


def test_a_kernel_killed_under_a_server_comes_back_on_the_same_websocket(own_dirs):
    env, tmp = own_dirs
    asyncio.run(_crash_scenario(env, tmp))
