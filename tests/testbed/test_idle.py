"""Idle reclaim on real Slurm (docs/allocation.md, "Idle sessions"): a session of a
profile with idleTimeout 1 is ended by its own helper after a minute without use (no
kernel busy, nothing done in JupyterLab, its processes idle), the job leaves the queue,
and the session says why and what that released. Keep running goes through the agent to
the helper."""

import time

from .conftest import agent_call, running_session, squeue, wait_state


def test_an_idle_session_ends_itself_and_says_what_it_released(jupyter_dirs):
    with running_session(
        jupyter_dirs,
        "rcit-idle",
        dask=False,
        idleTimeout=1,
        resources={"partition": "debug", "walltime": "00:30:00", "cpus": 2, "memory": "1G"},
    ) as s:
        sid = s["id"]
        # Keep running, through the agent to the helper: the clock restarts now
        code, kept = agent_call("POST", f"/api/v1/sessions/{sid}/activity", {"keep": True})
        kept_at = time.time()
        assert code == 200, kept
        assert kept["idle"]["timeoutMinutes"] == 1 and abs(kept["idle"]["keptAt"] / 1000 - kept_at) < 30, kept
        assert kept["idle"]["lastUseWhy"] == "kept running"
        code, body = agent_call("POST", f"/api/v1/sessions/{sid}/activity", {"keep": "yes"})
        assert code == 400 and "keep" in body["error"]["message"], body
        ended = wait_state(sid, ("ended",), 180)
        took = time.time() - kept_at
        # a minute after Keep running, give or take the helper's 10 s heartbeat and the agent's polling
        assert 55 <= took <= 150, took
        assert ended["reason"].startswith("idle for 1 min, released "), ended["reason"]
        assert ended["reason"].endswith(" core-hours"), ended["reason"]
        # 2 CPUs, ~29 of the 30 minutes left: about 1 core-hour given back
        assert 0.8 <= ended["endedIdle"]["coreHoursReleased"] <= 1.0, ended
        assert "RUNNING" not in squeue(s["jobId"])
        code, body = agent_call("POST", f"/api/v1/sessions/{sid}/activity", {})
        assert code == 409 and "ended" in body["error"]["message"], body
