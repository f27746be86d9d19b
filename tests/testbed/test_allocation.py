"""The allocation's hours on real Slurm (docs/allocation.md): Extend asks Slurm once and
says its answer; Slurm's end-of-walltime warning (SIGUSR1 to the batch shell, which the
helper replaced) is reported, never fatal; Continue in a new job gives a running successor
of the same profile and resources, linked both ways, whose kernels run in another job, or
with resources edited in the dialog."""

import time

import pytest

from .conftest import agent_call, on_login, running_session, session_kernel, wait_state


def run(kc, code: str, timeout: float = 60) -> str:
    out = []
    reply = kc.execute_interactive(
        code, timeout=timeout, output_hook=lambda m: out.append(m["content"].get("text") or "")
    )
    assert reply["content"]["status"] == "ok", "".join(out)
    return "".join(out).strip()


@pytest.fixture(scope="module")
def session(jupyter_dirs):
    with running_session(jupyter_dirs, "rcit-allocation", dask=False) as s:
        yield s


def time_limit(job_id: str) -> str:
    return on_login("squeue", "-h", "-j", job_id, "-o", "%l").strip()


def test_extend_asks_slurm_once_and_says_its_answer(session):
    before = time_limit(session["jobId"])
    code, answer = agent_call("POST", f"/api/v1/sessions/{session['id']}/extend", {"minutes": 30})
    assert code == 200, answer
    # a user may not raise a running job's limit on Slurm: its own refusal, not ours
    assert answer["granted"] is False and "denied" in answer["answer"].lower(), answer
    assert time_limit(session["jobId"]) == before
    code, body = agent_call("POST", f"/api/v1/sessions/{session['id']}/extend", {"minutes": 0})
    assert code == 400 and "minutes" in body["error"]["message"], body


def test_slurms_end_of_walltime_warning_is_reported_and_the_session_keeps_running(session):
    sid = session["id"]
    on_login("scancel", "--batch", "--signal=USR1", session["jobId"])
    deadline = time.monotonic() + 60
    s = {}
    while time.monotonic() < deadline:
        _, s = agent_call("GET", f"/api/v1/sessions/{sid}")
        if s.get("endWarnedAt"):
            break
        time.sleep(1)
    assert s.get("endWarnedAt") and abs(s["endWarnedAt"] / 1000 - time.time()) < 90, s
    assert s["state"] == "running" and "RUNNING" in on_login("squeue", "-h", "-j", session["jobId"], "-o", "%T")
    kc = session_kernel(sid)
    try:
        assert run(kc, "print(6 * 7)") == "42"
    finally:
        kc.stop_channels()


def usage_after(sid: str, t: float, timeout: float = 60) -> dict:
    """The session's usage (the efficiency card) as sampled after time `t`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, s = agent_call("GET", f"/api/v1/sessions/{sid}")
        if (s.get("usage") or {}).get("at", 0) > t:
            return s["usage"]
        time.sleep(1)
    raise AssertionError(f"no usage sampled after {t}: {s.get('usage')}")


def test_a_cell_burning_one_cpu_for_20_s_shows_20_s_in_the_card(session):
    sid = session["id"]
    kc = session_kernel(sid)
    try:
        before = usage_after(sid, time.time())
        # 20 s of CPU time (not wall time: the testbed's nodes share two cores), niced
        run(kc, "import os, time\nos.nice(10)\nt = time.process_time()\nwhile time.process_time() - t < 20: pass", 120)
        after = usage_after(sid, time.time())
    finally:
        kc.stop_channels()
    burnt = after["cpuSeconds"] - before["cpuSeconds"]
    assert 16 <= burnt <= 24, (before, after)
    assert after["peakCores"] >= 0.5 and after["cpus"] == 1 and after["peakRssBytes"] > 0, after


def test_continue_in_a_new_job_gives_a_linked_running_successor_in_another_job(session):
    sid = session["id"]
    code, nxt = agent_call("POST", f"/api/v1/sessions/{sid}/relaunch", {"continue": True})
    assert code == 201, nxt
    try:
        assert nxt["continues"] == sid and nxt["profile"] == session["profile"]
        assert nxt["resources"] == session["resources"]
        # one successor at a time
        code, body = agent_call("POST", f"/api/v1/sessions/{sid}/relaunch", {"continue": True})
        assert code == 409 and "already continued" in body["error"]["message"], body
        _, old = agent_call("GET", f"/api/v1/sessions/{sid}")
        assert old["continuedBy"] == nxt["id"], old
        nxt = wait_state(nxt["id"], ("running", "ended"), 120)
        assert nxt["state"] == "running", nxt
        kc = session_kernel(nxt["id"])
        try:
            assert run(kc, "import os; print(os.environ['SLURM_JOB_ID'])") == nxt["jobId"] != session["jobId"]
        finally:
            kc.stop_channels()
    finally:
        agent_call("DELETE", f"/api/v1/sessions/{nxt['id']}")


def test_continue_with_other_resources_submits_them_and_a_refusal_changes_nothing(session):
    """ "Continue with…": the successor asks Slurm for the edited resources; resources the
    agent or Slurm refuses submit nothing and leave the old session unlinked."""
    sid = session["id"]
    _, old = agent_call("GET", f"/api/v1/sessions/{sid}")
    if old.get("continuedBy"):  # the successor of the test before, cancelled
        wait_state(old["continuedBy"], ("ended",), 60)
    alices = lambda: sorted(on_login("squeue", "-h", "-u", "alice", "-o", "%i").split())  # noqa: E731
    before = alices()
    code, body = agent_call("POST", f"/api/v1/sessions/{sid}/relaunch", {"continue": True, "resources": {"cpus": -1}})
    assert code == 400 and "cpus" in body["error"]["message"], body
    code, body = agent_call(
        "POST", f"/api/v1/sessions/{sid}/relaunch", {"continue": True, "resources": {"partition": "nosuchpartition"}}
    )
    assert code >= 400 and "partition" in body["error"]["message"].lower(), body
    assert alices() == before
    _, now = agent_call("GET", f"/api/v1/sessions/{sid}")
    assert now.get("continuedBy") == old.get("continuedBy"), now
    code, nxt = agent_call(
        "POST", f"/api/v1/sessions/{sid}/relaunch", {"continue": True, "resources": {"walltime": "00:07:00"}}
    )
    assert code == 201, nxt
    try:
        assert nxt["continues"] == sid and nxt["resources"]["walltime"] == "00:07:00", nxt
        # what Slurm was asked for
        assert time_limit(nxt["jobId"]) == "7:00"
    finally:
        agent_call("DELETE", f"/api/v1/sessions/{nxt['id']}")
    # Relaunch of the ended successor: the same profile and (edited) resources, unlinked;
    # there is nothing to continue in an ended session
    ended = wait_state(nxt["id"], ("ended",), 60)
    assert ended["state"] == "ended", ended
    code, body = agent_call("POST", f"/api/v1/sessions/{nxt['id']}/relaunch", {"continue": True})
    assert code == 409 and "has ended" in body["error"]["message"], body
    code, again = agent_call("POST", f"/api/v1/sessions/{nxt['id']}/relaunch", {})
    assert code == 201, again
    try:
        assert again["profile"] == nxt["profile"] and again["resources"] == nxt["resources"], again
        assert "continues" not in again and time_limit(again["jobId"]) == "7:00"
    finally:
        agent_call("DELETE", f"/api/v1/sessions/{again['id']}")
