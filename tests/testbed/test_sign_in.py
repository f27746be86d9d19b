"""A login that needs a person is never tried without one (issue 10), against bob's real
bastion: sshd with publickey + keyboard-interactive through PAM (pam_oath TOTP).

A "tab" is a listener on the agent's event stream that answers the one-time-code prompts
(what JupyterLab does with a dialog). With no tab, a dropped link must wait in
"sign-in needed" and the bastion's sshd log must show no failed keyboard-interactive
attempt and no retries; with a tab, a reconnect asks exactly once.

pam_oath accepts each 30 s time step once (replays are refused): every login here uses a
code of a step later than the last one used.
"""

import asyncio
import json
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
from tornado.httpclient import HTTPRequest
from tornado.simple_httpclient import SimpleAsyncHTTPClient
from tornado.websocket import websocket_connect

from .conftest import TESTBED, agent_call
from .conftest import read_testbed_env as _testbed_env

PROFILE = "bob-otp"


class Totp:
    """Codes for bob's TOTP secret, each of a time step after the last one used."""

    def __init__(self, secret_file: str) -> None:
        self.secret = Path(secret_file).read_text().strip()
        self.last_step = -1

    def fresh(self) -> str:
        while int(time.time() // 30) <= self.last_step:
            time.sleep(0.5)
        self.last_step = int(time.time() // 30)
        return subprocess.run(
            ["oathtool", "--totp", self.secret], check=True, capture_output=True, text=True
        ).stdout.strip()


class Tab:
    """A JupyterLab tab as the agent sees it: a listener on its event stream that answers
    one-time-code prompts with `answer()` and remembers every event."""

    def __init__(self, socket_path: str, answer) -> None:
        self.socket_path = socket_path
        self.answer = answer
        self.events: list[dict] = []
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> "Tab":
        self._thread.start()
        assert self._ready.wait(30), "the event stream did not open"
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def prompts(self) -> list[dict]:
        return [e["prompt"] for e in list(self.events) if e["type"] == "prompt"]

    async def _run(self) -> None:
        from jupyterlab_remote_cluster.agent_process import UnixSocketResolver

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        resolver = UnixSocketResolver(socket_path=self.socket_path)
        ws = await websocket_connect(HTTPRequest("ws://agent/api/v1/events"), resolver=resolver)
        http = SimpleAsyncHTTPClient(force_instance=True, resolver=resolver)
        self._ready.set()
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            while True:
                read = asyncio.ensure_future(ws.read_message())
                done, _ = await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    read.cancel()
                    return
                raw = read.result()
                if raw is None:
                    return
                event = json.loads(raw)
                self.events.append(event)
                if event["type"] == "prompt" and event["prompt"]["kind"] == "keyboard-interactive":
                    code = await asyncio.get_running_loop().run_in_executor(None, self.answer)
                    await http.fetch(
                        HTTPRequest(
                            f"http://agent/api/v1/prompts/{event['prompt']['id']}",
                            method="POST",
                            body=json.dumps({"answers": [code]}),
                            headers={"Content-Type": "application/json"},
                        )
                    )
        finally:
            # a tab that closes: the agent must see the stream end before this loop does
            ws.close()
            for _ in range(50):
                if ws.close_code is not None:
                    break
                await asyncio.sleep(0.1)
            if ws.protocol is not None:
                ws.protocol.stream.close()
            http.close()


def bastion_log() -> str:
    env = _testbed_env()
    state = Path(env["RC_TESTBED_SSH_CONFIG"]).parent.parent
    return (state / "ssh" / "bastion" / "sshd.log").read_text(errors="replace")


def bob_logins(log: str) -> int:
    """Logins of bob's that reached the bastion (each passes publickey first)."""
    return len(re.findall(r"Postponed publickey for bob from", log))


def failed_otp(log: str) -> list[str]:
    return re.findall(r".*(?:Failed keyboard-interactive|authentication failure|Failed password).*bob.*", log)


def cut_bobs_link() -> None:
    """bob's SSH connection to the bastion ends (its sshd processes there are killed)."""
    subprocess.run([str(TESTBED), "exec", "bastion", "--", "pkill", "-f", "^sshd: bob"], check=False, timeout=30)


def connection() -> dict:
    for e in agent_call("GET", "/api/v1/connections")[1]["connections"]:
        if e["cluster"] == PROFILE:
            return e
    return {}


def wait_for(what: str, cond, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


@pytest.fixture
def bob_profile(jupyter_dirs):
    settings = (
        Path(jupyter_dirs["JUPYTERLAB_SETTINGS_DIR"]) / "jupyterlab-remote-cluster" / "profiles.jupyterlab-settings"
    )
    original = settings.read_text()
    data = json.loads("\n".join(line for line in original.splitlines() if not line.strip().startswith("//")))
    data["profiles"].append(
        {
            "name": PROFILE,
            "ssh": {"host": "login-bob", "configFile": _testbed_env()["RC_TESTBED_SSH_CONFIG"]},
            "scheduler": "slurm",
            "resources": {"partition": "debug", "walltime": "00:10:00", "cpus": 1, "memory": "300M"},
            "python": "/opt/rc-testbed/python/bin/python",
            "dask": False,
        }
    )
    settings.write_text(json.dumps(data, indent=1))
    try:
        yield
    finally:
        settings.write_text(original)


def test_a_login_that_needs_a_person_waits_for_one(bob_profile):
    from jupyterlab_remote_cluster.agent_process import get_agent

    totp = Totp(_testbed_env()["RC_TESTBED_BOB_TOTP"])
    agent_call("GET", "/api/v1/health")  # (starts the agent)
    socket_path = get_agent().socket_path
    failed_before = failed_otp(bastion_log())
    session = None
    try:
        # 1. With a tab: the submit asks for the code once, and the job is queued.
        with Tab(socket_path, totp.fresh) as tab:
            code, session = agent_call("POST", "/api/v1/sessions", {"profile": PROFILE})
            assert code == 201, session
            assert len(tab.prompts()) == 1, tab.prompts()
            assert "bob" in tab.prompts()[0]["title"] or "bob" in json.dumps(tab.prompts()[0])

        # 2. No tab, and the link drops: it waits for sign-in. No code is sent (no empty
        # answers), and nothing retries: polls, reconnects and kernels start no login.
        logins = bob_logins(bastion_log())
        cut_bobs_link()
        wait_for("sign-in-needed", lambda: connection().get("state") == "sign-in-needed", 60)
        assert "no JupyterLab is open" in connection()["message"]
        logins_waiting = bob_logins(bastion_log())
        assert logins_waiting - logins <= 1  # the one reconnect attempt that found nobody
        time.sleep(20)  # polls (every few seconds for a young session) would log in again
        assert bob_logins(bastion_log()) == logins_waiting
        assert connection()["state"] == "sign-in-needed"

        # 3. A tab opens: nothing is asked until the user signs in; then exactly once.
        with Tab(socket_path, totp.fresh) as tab:
            time.sleep(3)
            assert tab.prompts() == []
            code, _ = agent_call("POST", f"/api/v1/connections/{PROFILE}/sign-in")
            assert code == 202
            agent_call("POST", f"/api/v1/connections/{PROFILE}/sign-in")  # a double click: one login
            wait_for("connected", lambda: connection().get("state") == "connected", 90)
            assert len(tab.prompts()) == 1

            # 4. With the tab open, the link drops again: the reconnect asks exactly once.
            cut_bobs_link()
            wait_for("reconnected", lambda: len(tab.prompts()) == 2 and connection().get("state") == "connected", 120)
            time.sleep(5)
            assert len(tab.prompts()) == 2
            closed = [e for e in tab.events if e["type"] == "prompt-closed"]
            assert len(closed) == 2  # each answered prompt was withdrawn from every tab

            # no failed keyboard-interactive attempt in the whole story
            assert failed_otp(bastion_log()) == failed_before
            code, ended = agent_call("DELETE", f"/api/v1/sessions/{session['id']}")
            assert code == 200, ended
            session = None
    finally:
        if session is not None:
            subprocess.run(
                [str(TESTBED), "exec", "login", "--user", "bob", "--", "scancel", "--name", f"jrc-{session['id'][:4]}"],
                check=False,
                timeout=60,
            )
