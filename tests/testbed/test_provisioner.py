"""The kernel provisioner with plain jupyter_client (no Jupyter server) on the testbed:
a profile kernelspec submits a Slurm job, the kernel runs on a compute node, interrupt
and restart work (restart = same job), shutdown cancels the job; a job cancelled from
outside makes the kernel dead, without hanging."""

import json
import time

import pytest

from .conftest import agent_call, agent_log_lines, kernel_client, on_login, squeue

KERNEL = "remote-cluster-testbed"


def run(kc, code: str, timeout: float = 60) -> tuple[dict, list[str]]:
    out: list[str] = []

    def hook(msg):
        c = msg["content"]
        if msg["msg_type"] == "stream":
            out.append(c["text"])
        elif msg["msg_type"] == "execute_result":
            out.append(c["data"]["text/plain"])
        elif msg["msg_type"] == "error":
            out.append(c["ename"])

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    return reply["content"], out


@pytest.fixture
def kernel(jupyter_dirs):
    # The agent wrote the profile's kernelspec when it read the settings; make sure it
    # exists by starting the agent and listing profiles first.
    agent_call("GET", "/api/v1/profiles")
    with kernel_client(KERNEL) as (km, kc):
        yield km, kc


def job_of(kc) -> str:
    _, out = run(kc, "import os; print(os.environ['SLURM_JOB_ID'])")
    return "".join(out).strip()


def test_profile_kernel_runs_on_a_node_and_restarts_in_the_same_job(kernel):
    km, kc = kernel
    _, out = run(kc, "import socket; print(socket.gethostname())")
    assert "".join(out).strip() in ("node1", "node2")
    job = job_of(kc)
    assert job.isdigit()
    assert "RUNNING" in squeue(job)

    # Interrupt a long cell: it ends with KeyboardInterrupt within seconds.
    kc.execute("import time; time.sleep(60)")
    time.sleep(2)
    t = time.monotonic()
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=30)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert time.monotonic() - t < 15

    # Restart: a new kernel in the same allocation, reachable with the same client.
    run(kc, "marker = 1")
    km.restart_kernel()
    kc.wait_for_ready(timeout=60)
    assert job_of(kc) == job
    content, out = run(kc, "print('marker' in globals())")
    assert "".join(out).strip() == "False"

    # Restart now (a kill: what jupyter_client's restarter does): the same client still
    # reaches the new kernel (it once came up behind new local ports and the client hung).
    run(kc, "marker = 2")
    km.restart_kernel(now=True)
    kc.wait_for_ready(timeout=60)
    assert job_of(kc) == job
    content, out = run(kc, "print('marker' in globals())")
    assert "".join(out).strip() == "False"

    # Shutdown of a profile kernel cancels its job.
    kc.stop_channels()
    km.shutdown_kernel()
    deadline = time.monotonic() + 60
    while "RUNNING" in squeue(job) and time.monotonic() < deadline:
        time.sleep(2)
    assert "RUNNING" not in squeue(job)


def test_scancel_from_outside_ends_the_kernel(kernel):
    km, kc = kernel
    job = job_of(kc)
    on_login("scancel", job)
    t = time.monotonic()
    while km.is_alive() and time.monotonic() - t < 90:
        time.sleep(2)
    from jupyter_core.utils import run_sync

    from jupyterlab_remote_cluster.agent_process import get_agent

    def session_of_job():
        sessions = json.loads(run_sync(get_agent().request)("GET", "/api/v1/sessions").body)["sessions"]
        return next(s for s in sessions if s.get("jobId") == job)

    if km.is_alive():
        s = session_of_job()
        raise AssertionError(
            f"the kernel of a cancelled job must be reported dead: {s}\n"
            + agent_log_lines(s["id"], f"job {job}:", "status of cluster")
        )
    assert time.monotonic() - t < 90

    # The session shows as ended, with the reason, within 60 s.
    while session_of_job()["state"] != "ended" and time.monotonic() - t < 60:
        time.sleep(2)
    ended = session_of_job()
    assert ended["state"] == "ended", ended
    assert ended["reason"]


def test_nbclient_runs_a_notebook_on_the_cluster_and_cancels_the_job(jupyter_dirs):
    """What `papermill -k remote-cluster-<profile>` relies on: no Jupyter server, no UI."""
    import nbformat
    from jupyter_core.utils import run_sync
    from nbclient import NotebookClient

    from jupyterlab_remote_cluster.agent_process import get_agent

    run_sync(get_agent().request)("GET", "/api/v1/profiles")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import socket, os; print(socket.gethostname(), os.environ['SLURM_JOB_ID'])"),
        nbformat.v4.new_code_cell("sum(range(10))"),
    ]
    NotebookClient(nb, kernel_name=KERNEL, timeout=120, startup_timeout=180).execute()
    host, job = nb.cells[0].outputs[0]["text"].split()
    assert host in ("node1", "node2")
    assert nb.cells[1].outputs[0]["data"]["text/plain"] == "45"
    deadline = time.monotonic() + 60
    while "RUNNING" in squeue(job) and time.monotonic() < deadline:
        time.sleep(2)
    assert "RUNNING" not in squeue(job), "the job of a profile kernel ends with the kernel"


def test_agent_crash_keeps_the_kernel_and_its_state(kernel):
    """The agent dies (kill -9): it is restarted, takes the kernel back on the same
    local ports, and the kernel's variables are still there."""
    import os
    import signal

    from jupyter_core.utils import run_sync

    from jupyterlab_remote_cluster.agent_process import get_agent

    km, kc = kernel
    run(kc, "x = 42")
    agent = get_agent()
    first = agent.owned_pid
    assert first
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        # Jupyter polls the provisioner; a restarted agent answers "unknown kernel",
        # and the provisioner hands the kernel back. Never reported dead meanwhile.
        assert km.is_alive()
        if agent.owned_pid not in (None, first):
            status = json.loads(
                run_sync(agent.request)("GET", f"/api/v1/kernels/{km.provisioner.remote_kernel_id}").body
            )
            if status.get("alive") is True:
                break
        time.sleep(1)
    assert agent.owned_pid not in (None, first)
    # ZMQ reconnects by itself; kernel_info until IOPub flows again (what Jupyter's
    # websocket handler does on reconnect, too).
    kc.wait_for_ready(timeout=60)
    _, out = run(kc, "print(x)", timeout=60)
    assert "".join(out).strip() == "42"
