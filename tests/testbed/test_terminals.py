"""Terminals in a job (issue 13, item 2), on the testbed's real Slurm, through the agent as
JupyterLab reaches them: the shell runs on the session's node inside the job, a client
that drops and attaches again finds the same shell and gets what it missed, closing it
ends the shell. A login-node terminal runs Slurm's commands there. (Across a real link
cut: test_link_cut.py.)"""

import time

from .conftest import agent_call, running_session
from .terminal_client import TerminalClient


def test_a_terminal_runs_in_the_job_and_outlives_its_client(jupyter_dirs):
    with running_session(jupyter_dirs, "rcit-terminals", dask=False) as s:
        t = TerminalClient(s["id"])
        t.type('echo "H=$(hostname) J=$SLURM_JOB_ID P=$$"\r')
        screen = t.read_until(f"H={s['node']} J={s['jobId']} P=")
        pid = screen.split(" P=")[-1].split()[0]
        # the session lists it (the Running panel shows it under the session)
        assert agent_call("GET", f"/api/v1/sessions/{s['id']}")[1]["terminals"] == [t.tid]

        # the client goes; the shell prints on meanwhile; the next client gets exactly that
        t.type("sleep 2; echo missed-$((40+2))\r")
        t.read_until("echo missed-$((40+2))")  # (the shell has it: echoed)
        t.close()
        time.sleep(3)
        t.attach()
        t.read_until("missed-42")
        assert t.screen.count(f"P={pid}") == 1  # nothing it had came again
        t.type("echo again=$$\r")
        t.read_until(f"again={pid}")

        code, res = agent_call("GET", f"/api/v1/sessions/{s['id']}/terminals")
        assert code == 200 and [x["terminalId"] for x in res["terminals"]] == [t.tid]
        code, res = agent_call("DELETE", f"/api/v1/sessions/{s['id']}/terminals/{t.tid}")
        assert code == 200, res
        assert t.wait_closed(15)[0] == 4000  # the shell ended: do not attach again
        assert agent_call("GET", f"/api/v1/sessions/{s['id']}/terminals")[1]["terminals"] == []
        assert agent_call("GET", f"/api/v1/sessions/{s['id']}")[1]["terminals"] == []


def test_a_login_node_terminal_runs_the_clusters_commands(jupyter_dirs):
    t = TerminalClient(profile="testbed")
    try:
        t.type('echo "H=$(hostname) U=$(id -un)"; squeue --version\r')
        t.read_until("H=login U=alice")
        t.read_until("slurm-wlm ")  # (Debian's squeue --version: "slurm-wlm 22.05.8")
        code, res = agent_call("GET", "/api/v1/profiles/testbed/terminals")
        assert code == 200 and [x["terminalId"] for x in res["terminals"]] == [t.tid]
        # a page reload: a new client gets the screen so far
        t.close()
        again = TerminalClient(profile="testbed", tid=t.tid)
        again.read_until("H=login U=alice")
        assert agent_call("DELETE", f"/api/v1/profiles/testbed/terminals/{t.tid}")[0] == 200
        assert again.wait_closed(15)[0] == 4000
    finally:
        t.close()
    assert agent_call("GET", "/api/v1/profiles/testbed/terminals")[1]["terminals"] == []
