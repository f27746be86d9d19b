"""The agent supervisor (agent_process.py) with the real bundled agent, no testbed."""

import asyncio
import gc
import json
import logging
import os
import signal
import sys
import time

from jupyterlab_remote_cluster.agent_process import AgentProcess

PIPE_BYTES = 64 * 1024  # a Linux pipe's buffer


class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_the_agents_output_is_drained_when_its_event_loop_is_gone(tmp_path, monkeypatch):
    """Headless callers (jupyter_client's run_sync, pytest) start the agent in one event
    loop and may not run it again for a long time (a blocking kernel client waits in it).
    The agent's log must reach the Jupyter log all the same: read by tasks of that idle
    loop, nothing of it arrives (and the agent piles it up in memory). Here the agent logs
    several pipes' worth after its loop went idle; every line must arrive."""
    settings = tmp_path / "settings" / "jupyterlab-remote-cluster"
    settings.mkdir(parents=True)
    # each read of the settings logs one line per invalid profile
    bad = [{"name": "bad name %03d %s" % (i, "x" * 100), "ssh": {"host": "h"}, "resources": {}} for i in range(100)]
    (settings / "profiles.jupyterlab-settings").write_text(json.dumps({"profiles": bad}))
    monkeypatch.setenv("JUPYTERLAB_SETTINGS_DIR", str(tmp_path / "settings"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    log = logging.getLogger("test-agent-process")
    log.setLevel(logging.INFO)
    collected = Collect()
    log.addHandler(collected)
    agent = AgentProcess(runtime_dir=tmp_path / "runtime", log=log)

    async def first():
        res = await agent.request("GET", "/api/v1/health")
        assert res.code == 200

    # a loop that is left alone afterwards (not closed: run_sync keeps one per thread)
    loop_a = asyncio.new_event_loop()
    loop_a.run_until_complete(first())

    async def many():
        for _ in range(20):
            res = await asyncio.wait_for(agent.request("GET", "/api/v1/profiles"), 20)
            assert res.code == 200 and len(json.loads(res.body)["errors"]) == 100

    try:
        asyncio.run(many())
        logged = sum(len(line) + 1 for line in collected.lines)
        assert logged > 2 * PIPE_BYTES, f"only {logged} bytes logged: the test did not fill a pipe"
    finally:
        loop_a.close()
        asyncio.run(agent.stop())


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def gone(pid):
    try:
        os.kill(pid, 0)
        return False
    except ProcessLookupError:
        return True


def test_an_agent_outlives_the_event_loop_that_started_it(tmp_path, monkeypatch):
    """A headless caller starts the agent in a loop that closes (asyncio.run). The agent must
    not be tied to that loop: its exit is seen, it is started again from the next caller's
    loop, and stopped from a third; nothing of the old process may raise "Event loop is
    closed" when collected (an asyncio transport did, inside whatever the interpreter was
    doing at the time: once inside ast.parse, failing it)."""
    monkeypatch.setenv("JUPYTERLAB_SETTINGS_DIR", str(tmp_path / "settings"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    agent = AgentProcess(runtime_dir=tmp_path / "runtime")
    assert asyncio.run(agent.request("GET", "/api/v1/health")).code == 200
    first = agent.owned_pid
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: agent.owned_pid is None, 10, "the supervisor to see the agent die")
    assert asyncio.run(agent.request("GET", "/api/v1/health")).code == 200
    second = agent.owned_pid
    assert second and second != first

    gc.collect()
    assert [u.exc_value for u in unraisable] == []
    asyncio.run(agent.stop())
    wait_for(lambda: gone(second), 10, "the agent to stop")
